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
    "decoder",
    "bitrate_kbps",
    "loss_rate",
    "burst",
    "seed",
    "lost_frames",
    "frames",
    "pesq_wb",
    "psnr_db",
    "visqol",
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
    assert set(s["results"]) == {"interpolate"} and s["decoders"] == ["interpolate"]
    assert set(s["results"]["interpolate"]) == {"0", "0.1"}
    for res in s["results"]["interpolate"].values():
        assert res["n"] == 2 and res["n_failed"] == 0
        for metric in ("pesq_wb", "psnr_db"):
            st = res[metric]
            assert set(st) == {"mean", "median", "q025", "q975"}
            assert st["q025"] <= st["median"] <= st["q975"]
            assert st["q025"] <= st["mean"] <= st["q975"]
    zero, ten = s["results"]["interpolate"]["0"], s["results"]["interpolate"]["0.1"]
    assert zero["actual_loss"] == 0.0 and zero["lost_frames"] == 0
    assert 0.0 < ten["actual_loss"] < 0.3
    assert ten["lost_frames"] == sum(int(r["lost_frames"]) for r in rows if r["loss_rate"] == "0.1")
    assert zero["pesq_wb"]["mean"] > 2.5
    assert zero["pesq_wb"]["mean"] > ten["pesq_wb"]["mean"]

    md = (out / "summary.md").read_text()
    assert (
        "| decoder | loss rate |" in md and "| interpolate | 10 % |" in md and "Failures" not in md
    )
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
    ten = s["results"]["interpolate"]["0.1"]
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


def test_burst_mask() -> None:
    assert np.array_equal(recipe.loss_mask(500, 0.1, seed=3), codec.simulate_loss(500, 0.1, seed=3))
    m = recipe.loss_mask(20000, 0.1, seed=3, burst=3)
    assert 0.09 < m.mean() < 0.11
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, m.astype(int), 0])))[::2]
    assert runs.min() >= 3  # losses come in runs of at least 3 frames


def test_decoders_side_by_side(tmp_path: Path) -> None:
    """causal and interpolate on the same masks: identical without loss; the Opus
    anchors run when opus-tools are installed and are left out with a note otherwise."""
    out = tmp_path / "out"
    decoders = "causal,interpolate,opus,opusdec-loss"
    assert recipe.main([*FAST, "--limit", "1", "--decoders", decoders, "--out", str(out)]) == 0
    rows = _rows(out)
    by = {(r["decoder"], r["loss_rate"]): r for r in rows}
    assert by[("causal", "0.0")]["pesq_wb"] == by[("interpolate", "0.0")]["pesq_wb"]
    assert by[("causal", "0.1")]["lost_frames"] == by[("interpolate", "0.1")]["lost_frames"]
    s = _summary(out)
    if recipe.opus_missing_note() is None:
        assert set(s["results"]) == set(decoders.split(","))
        assert by[("opus", "0.1")]["lost_frames"] == by[("causal", "0.1")]["lost_frames"]
        assert by[("opusdec-loss", "0.1")]["lost_frames"] == ""  # opusdec's own pattern
        assert all(r["error"] == "" for r in rows)
    else:
        assert set(s["results"]) == {"causal", "interpolate"}


def test_opus_anchor_skips_without_opus_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(recipe.shutil, "which", lambda name: None)
    out = tmp_path / "out"
    args = [*FAST, "--limit", "1", "--decoders", "interpolate,opus,opusdec-loss"]
    assert recipe.main([*args, "--out", str(out)]) == 0
    assert "Opus anchors skipped" in capsys.readouterr().err
    assert set(_summary(out)["results"]) == {"interpolate"}
    assert {r["decoder"] for r in _rows(out)} == {"interpolate"}


def test_opus_same_pattern_decoder() -> None:
    if recipe.opus_missing_note() is not None:
        pytest.skip("opus-tools not installed")
    import soundfile as sf

    x, sr = sf.read(SAMPLES / "vctk_p233_female.wav", dtype="float64")
    with recipe.tempfile.TemporaryDirectory() as tmp:
        data = recipe._opus_encode(x, 13.2, Path(tmp))
        n = len(recipe.ogg_packets(data)) - 2
        clean = recipe.opus_decode_lost(data, np.zeros(n, dtype=bool))
        lost = np.zeros(n, dtype=bool)
        lost[100] = True
        y = recipe.opus_decode_lost(data, lost)
    assert y.shape == clean.shape  # a lost packet is concealed for its own 20 ms
    assert np.array_equal(y[: 99 * 320], clean[: 99 * 320])
    assert not np.allclose(y[100 * 320 : 101 * 320], clean[100 * 320 : 101 * 320])


def test_visqol_column(tmp_path: Path) -> None:
    """``--visqol`` scores every decode with ViSQOL too; loss lowers it."""
    pytest.importorskip("visqol")
    out = tmp_path / "fl"
    assert recipe.main([*FAST, "--limit", "1", "--visqol", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    res = summary["results"]["interpolate"]
    v0, v10 = res["0"]["visqol"]["mean"], res["0.1"]["visqol"]["mean"]
    assert 1.0 <= v10 < v0 <= 5.0
    assert "ViSQOL mean" in (out / "summary.md").read_text()
    with (out / "per_file.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(float(r["visqol"]) > 1.0 for r in rows)


def test_post_filter_decoder(tmp_path: Path) -> None:
    """``interpolate+pf`` decodes the same masks with the trained post-filter on."""
    out = tmp_path / "out"
    args = [*FAST, "--limit", "1", "--decoders", "interpolate,interpolate+pf", "--out", str(out)]
    assert recipe.main(args) == 0
    by = {(r["decoder"], r["loss_rate"]): r for r in _rows(out)}
    assert by[("interpolate", "0.1")]["lost_frames"] == by[("interpolate+pf", "0.1")]["lost_frames"]
    assert by[("interpolate", "0.0")]["psnr_db"] != by[("interpolate+pf", "0.0")]["psnr_db"]
    assert set(_summary(out)["results"]) == {"interpolate", "interpolate+pf"}
