"""svq train --predictive: the .cb file carries the predictor; the codec encodes with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from codec.cli import main
from codec.quantizers import PredictiveQuantizer, load_codebook

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.mark.parametrize("kind,safety", [("ma", []), ("ar", ["--safety-net"])])
def test_train_predictive_writes_a_predictive_codebook(tmp_path, capsys, kind, safety):
    cb = tmp_path / "p.cb"
    args = ["train", "--data", str(SAMPLES), "--variant", "rvq", "--stages", "2", "--bits", "4"]
    assert main([*args, "--predictive", kind, *safety, "--out", str(cb), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"{kind}-predictive" in out and "training-set SD" in out
    pq = load_codebook(cb)
    assert isinstance(pq, PredictiveQuantizer) and pq.kind == kind
    assert pq.bits == 8 + (1 if safety else 0)
    assert pq.matrix.shape == (16, 16)
    wav = next(SAMPLES.glob("*.wav"))
    # the codec takes it (tests/test_predictive_codec.py)
    assert main(["encode", str(wav), str(tmp_path / "a.svq"), "--codebook", str(cb), "-q"]) == 0


def test_safety_net_needs_predictive(tmp_path, capsys):
    args = ["train", "--data", str(SAMPLES), "--safety-net", "--out", str(tmp_path / "x.cb")]
    assert main(args) == 2
    assert "--safety-net needs --predictive" in capsys.readouterr().err
