"""codec.metrics.dnsmos on known cases (skipped without speechmos / onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest

from codec.errors import ParameterError
from codec.metrics import dnsmos

pytest.importorskip("speechmos")
pytest.importorskip("onnxruntime")


def test_dnsmos_clean_speech_high_and_noise_low(speech):
    x, sr = speech
    rng = np.random.default_rng(0)
    clean = dnsmos(x, sr)
    noisy = dnsmos(x + 0.05 * rng.standard_normal(x.size), sr)
    noise = dnsmos(0.1 * rng.standard_normal(x.size), sr)
    # clean read speech sits near the top of what DNSMOS gives real recordings (~3.3)
    assert clean.ovrl > 3.0 and clean.sig > 3.3 and clean.bak > 3.7
    assert noisy.ovrl < clean.ovrl - 1.0
    assert noisy.bak < 2.5
    assert noise.ovrl < 1.5
    for v in (*clean, *noisy, *noise):
        assert 1.0 <= v <= 5.0


def test_dnsmos_is_deterministic_and_resamples(speech):
    x, sr = speech
    x = x[: 5 * sr]
    assert dnsmos(x, sr) == dnsmos(x.copy(), sr)
    import soxr

    x48 = soxr.resample(x, sr, 48000)
    assert abs(dnsmos(x48, 48000).ovrl - dnsmos(x, sr).ovrl) < 0.1


def test_dnsmos_refuses_bad_input():
    with pytest.raises(ParameterError):
        dnsmos(np.zeros((2, 100)), 16000)
    with pytest.raises(ParameterError):
        dnsmos(np.zeros(0), 16000)
