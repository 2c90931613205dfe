"""benchmarks/fuzz_decoder.py runs and finds no failure in a short seeded run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_decoder.py"


def _load_fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_decoder", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_short_fuzz_run_has_no_failures(tmp_path, capsys):
    fuzzer = _load_fuzzer()
    out = tmp_path / "fuzz.json"
    status = fuzzer.main(["--cases", "50", "--seed", "7", "--quiet", "--json", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert summary["failures"] == [], printed
    assert status == 0, printed
    counts = summary["counts"]
    assert sum(sum(row.values()) for row in counts.values()) == 50
    assert sum(row["detected"] for row in counts.values()) > 0
    assert summary["peak_max_bytes"] < 50 * 2**20
    assert "FAILURE" in printed and "seed 7" in printed


def test_cases_replay_deterministically():
    fuzzer = _load_fuzzer()
    corpus = fuzzer.build_corpus()
    for index in (0, 3, 11):
        assert fuzzer.mutate(2026, index, corpus)[2] == fuzzer.mutate(2026, index, corpus)[2]
