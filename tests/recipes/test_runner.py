"""recipes.runner and the bitrate_vs_pesq Dask path against the serial path (local cluster)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recipes import bitrate_vs_pesq as recipe  # noqa: E402
from recipes.runner import run_units  # noqa: E402

pytest.importorskip("dask.distributed")

SAMPLES = ROOT / "samples"
SCORES = ("pesq_wb", "psnr_db", "measured_kbps", "payload_kbps", "lag", "error")


def _square(x: int) -> int:
    return x * x


def test_run_units_serial_and_local_cluster_agree() -> None:
    units = list(range(23))
    serial = list(run_units(_square, units))
    assert serial == [u * u for u in units]
    parallel = list(run_units(_square, units, workers=2, window=3))
    assert sorted(parallel) == serial


def test_unreachable_scheduler_is_one_line_error() -> None:
    with pytest.raises(RuntimeError, match="cannot reach the Dask scheduler") as info:
        list(run_units(_square, [1], scheduler="tcp://127.0.0.1:9", connect_timeout="2s"))
    assert "\n" not in str(info.value)


def _rows(out: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with (out / "per_file.csv").open(newline="") as fh:
        return {(r["file"], r["config"], r["bitrate_kbps"]): r for r in csv.DictReader(fh)}


def test_recipe_dask_path_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # cells are keyed by a hash of codec/'s sources; pin it against concurrent edits of codec/
    monkeypatch.setattr(recipe, "codec_fingerprint", lambda: "pinned")
    base = [
        "--data", str(SAMPLES), "--variants", "", "--limit", "2", "--bitrates", "13.2",
        "--no-anchors", "--metrics", "pesq,psnr", "--quiet",
    ]  # fmt: skip
    par, ser = tmp_path / "dask", tmp_path / "serial"
    assert recipe.main([*base, "--workers", "2", "--out", str(par)]) == 0
    assert recipe.main([*base, "--workers", "1", "--out", str(ser)]) == 0
    a, b = _rows(par), _rows(ser)
    assert len(a) == 2 and a.keys() == b.keys()
    for key in a:
        assert a[key]["error"] == ""
        for col in SCORES:
            assert a[key][col] == b[key][col], (key, col)
    # resumable per cell: a second Dask run reuses every cell
    assert recipe.main([*base, "--workers", "2", "--out", str(par)]) == 0
    s = json.loads((par / "summary.json").read_text())
    assert s["cells_computed"] == 0 and s["cells_reused"] == 2
