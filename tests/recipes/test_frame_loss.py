"""recipes/frame_loss.py: outputs, actual loss, PESQ without loss, failure counting (fast mode).

Runs the recipe's ``main`` in this process on the two files of ``samples/``
(5 s and 6 s) at loss rates 0 and 0.1.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # recipes/ is not installed; plain `pytest` lacks the repo root
    sys.path.insert(0, str(ROOT))

import codec  # noqa: E402
from recipes import frame_loss as recipe  # noqa: E402

SAMPLES = ROOT / "samples"
FAST = ["--data", str(SAMPLES), "--limit", "2", "--jobs", "1", "--quiet", "--loss", "0,0.1"]
COLUMNS = [
    "file",
    "bitrate_kbps",
    "loss_rate",
    "seed",
    "lost_frames",
    "frames",
    "pesq_wb",
    "psnr_db",
    "error",
]
DECODE = codec.decode


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "per_file.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def _summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return data


def test_fast_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert recipe.main([*FAST, "--out", str(out)]) == 0

    rows = _rows(out)
    assert len(rows) == 4  # 2 files x 2 loss rates x 1 seed
    assert {r["file"] for r in rows} == {"librispeech_1034_male.wav", "vctk_p233_female.wav"}
    assert all(r["error"] == "" for r in rows)
    for r in rows:
        assert float(r["bitrate_kbps"]) == 13.2 and r["seed"] == "0"
        frames, lost = int(r["frames"]), int(r["lost_frames"])
        assert frames > 200 and 0 <= lost <= frames
        assert 1.0 <= float(r["pesq_wb"]) <= 4.7
        assert np.isfinite(float(r["psnr_db"]))
        if float(r["loss_rate"]) == 0.0:
            assert lost == 0
            assert float(r["pesq_wb"]) > 2.5

    s = _summary(out)
    assert s["n_files"] == 2 and s["n_rows"] == 4 and s["n_failed"] == 0
    assert s["failures"] == [] and s["loss_rates"] == [0.0, 0.1] and s["seeds"] == [0]
    assert set(s["results"]) == {"0", "0.1"}
    for res in s["results"].values():
        assert res["n"] == 2 and res["n_failed"] == 0
        for metric in ("pesq_wb", "psnr_db"):
            st = res[metric]
            assert set(st) == {"mean", "median", "q025", "q975"}
            assert st["q025"] <= st["median"] <= st["q975"]
            assert st["q025"] <= st["mean"] <= st["q975"]
    zero, ten = s["results"]["0"], s["results"]["0.1"]
    assert zero["actual_loss"] == 0.0 and zero["lost_frames"] == 0
    assert 0.0 < ten["actual_loss"] < 0.3
    assert ten["lost_frames"] == sum(int(r["lost_frames"]) for r in rows if r["loss_rate"] == "0.1")
    assert zero["pesq_wb"]["mean"] > 2.5
    assert zero["pesq_wb"]["mean"] > ten["pesq_wb"]["mean"]

    md = (out / "summary.md").read_text()
    assert "| loss rate |" in md and "| 10 % |" in md and "Failures" not in md
    assert (out / "pesq_vs_loss.png").stat().st_size > 1000
    assert not list(out.glob(".*.tmp"))


def test_failures_are_counted_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoder that fails on any lost frame: the 0.1 rows fail, the run goes on."""

    def decode(data: bytes, *, lost: Any = None, **kw: Any) -> Any:
        if lost is not None and np.any(lost):
            raise RuntimeError("injected concealment failure")
        return DECODE(data, lost=lost, **kw)

    monkeypatch.setattr(codec, "decode", decode)
    out = tmp_path / "out"
    assert recipe.main([*FAST, "--limit", "1", "--out", str(out)]) == 0
    rows = _rows(out)
    assert [r["loss_rate"] for r in rows] == ["0.0", "0.1"]
    assert rows[0]["error"] == "" and float(rows[0]["pesq_wb"]) > 2.5
    assert rows[1]["error"].startswith("decode: RuntimeError: injected")
    assert rows[1]["pesq_wb"] == "" and int(rows[1]["lost_frames"]) > 0
    s = _summary(out)
    assert s["n_failed"] == 1 and len(s["failures"]) == 1
    ten = s["results"]["0.1"]
    assert (ten["n"], ten["n_failed"]) == (0, 1)
    assert ten["pesq_wb"]["mean"] is None and ten["actual_loss"] > 0
    assert "injected" in ten["errors"][0]
    assert "Failures (1)" in (out / "summary.md").read_text()


def test_pattern_seed_stable_and_per_file() -> None:
    a = recipe.pattern_seed(0, "dev/a.flac")
    assert a == recipe.pattern_seed(0, "a.flac")  # base name only: folder or manifest alike
    assert a != recipe.pattern_seed(0, "dev/b.flac")
    assert a != recipe.pattern_seed(1, "dev/a.flac")
    digest = hashlib.sha256(b"svq-frame-loss\x000\x00a.flac").digest()
    assert a == int.from_bytes(digest[:8], "big")
