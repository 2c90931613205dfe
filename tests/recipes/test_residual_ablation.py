"""recipes/residual_ablation.py on the two sample files: tables, resume, tool switches."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # recipes/ is not installed; plain `pytest` lacks the repo root
    sys.path.insert(0, str(ROOT))

from recipes import residual_ablation as recipe  # noqa: E402

SAMPLES = ROOT / "samples"


def test_ablation_writes_tables_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "abl"
    args = ["--data", str(SAMPLES), "--out", str(out), "--bitrates", "8", "--jobs", "1"]
    assert recipe.main([*args, "--configs", "none,all", "--quiet"]) == 0
    rows = list(csv.DictReader((out / "per_file.csv").open()))
    assert len(rows) == 4 and {r["config"] for r in rows} == {"none", "all"}
    assert all(1.0 < float(r["pesq_wb"]) < 4.7 for r in rows)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    none, full = summary["none"]["8"]["pesq_wb"]["mean"], summary["all"]["8"]["pesq_wb"]["mean"]
    assert none != full  # the switches reach the codec
    md = (out / "results.md").read_text()
    assert "(shipped)" in md and "| 8 kbit/s |" in md

    # a second run finds every cell in the cache and computes nothing
    def fail(job):
        raise AssertionError("recomputed a cached cell")

    monkeypatch.setattr(recipe, "run_cell", fail)
    assert recipe.main([*args, "--configs", "all", "--quiet"]) == 0
    assert len(list(csv.DictReader((out / "per_file.csv").open()))) == 2


def test_ablation_rejects_unknown_config(tmp_path):
    with pytest.raises(SystemExit):
        recipe.main(["--data", str(SAMPLES), "--out", str(tmp_path), "--configs", "bogus"])
