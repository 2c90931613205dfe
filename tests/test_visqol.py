"""codec.metrics.visqol_speech on known cases (skipped without visqol-python)."""

from __future__ import annotations

import numpy as np
import pytest

from codec.metrics import visqol_speech

pytest.importorskip("visqol")


def test_visqol_scores_identity_high_and_noise_low(speech):
    x, sr = speech
    x = x[: 4 * sr]
    rng = np.random.default_rng(0)
    same = visqol_speech(x, x, sr)
    noisy = visqol_speech(x, x + 0.05 * rng.standard_normal(x.size), sr)
    assert same > 4.3
    assert noisy < 2.5
    delayed = visqol_speech(x, np.r_[np.zeros(40), x[:-40]], sr)  # aligned first
    assert delayed > 4.0
