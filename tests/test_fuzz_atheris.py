"""benchmarks/fuzz_atheris.py: the harnesses keep the contract on the seed corpus; a short
coverage-guided run of each finds nothing (skipped without atheris, the ``fuzz`` extra)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "fuzz_atheris.py"
SEEDS = ROOT / "tests" / "fuzz_corpus"


def _load():
    spec = importlib.util.spec_from_file_location("fuzz_atheris", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("target", ["container", "frame", "stream"])
def test_seed_corpus_keeps_the_contract(target):
    fz = _load()
    seeds = sorted((SEEDS / target).iterdir())
    assert len(seeds) >= 10
    result = fz.replay(target, [SEEDS / target], measure_coverage=False)
    assert result["inputs"] == len(seeds) and result["failures"] == []
    assert result["slowest_s"] < fz.TIME_LIMIT_S and result["peak_max_mb"] < 50


def test_harness_checks_are_real():
    fz = _load()
    fz._import_codec(instrument=False)
    fz._check_signal(np.zeros(5), 5)
    for bad, n in ((np.zeros(4), 5), (np.full(5, np.nan), 5), (np.full(5, 1.5), 5)):
        with pytest.raises(AssertionError):
            fz._check_signal(bad, n)
    # arbitrary bytes reach each harness without anything but CodecError escaping
    rng = np.random.default_rng(14)
    for _ in range(30):
        blob = rng.bytes(int(rng.integers(0, 300)))
        for harness in fz.HARNESSES.values():
            harness(blob)


@pytest.mark.parametrize("target", ["container", "frame", "stream"])
def test_short_atheris_run_finds_nothing(target, tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    res = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "fuzz",
            target,
            "-runs=150",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(SEEDS / target),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Done 150 runs" in res.stderr and "cov:" in res.stderr
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
