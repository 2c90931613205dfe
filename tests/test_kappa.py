"""The encoder's estimate of the entropy model's spread κ (format 3)."""

from __future__ import annotations

import numpy as np

import codec
from codec.pipeline import Tools
from codec.residual import tcx as tcx_module
from codec.residual.tcx import TCX


def test_kappa_bias_codes_speech_in_fewer_bits(speech, monkeypatch):
    """With the codec's real envelopes, the biased κ estimate spends fewer bits."""
    x, sr = speech
    seen = []
    original = TCX.encode

    def spy(self, coefs, a_q, *args, **kwargs):
        seen.append((self, coefs, a_q))
        return original(self, coefs, a_q, *args, **kwargs)

    monkeypatch.setattr(TCX, "encode", spy)
    codec.encode(x[: sr * 2], sr, 13.2, tools=Tools(pitch=False, harmonic=False))
    coder, coefs, a_q = seen[0]
    shaping, ratio = coder.envelopes(a_q)
    xs = coefs * shaping
    # a step of about half the shaped RMS, as at the middle bitrates
    rms = np.sqrt((xs[:, :120] ** 2).mean(axis=-1)) + 1e-12
    gain = np.rint(8 * np.log2(rms / 2)).astype(np.int64) + 128
    q = coder._quantize(xs, tcx_module._gain_step(gain))
    assert np.count_nonzero(q) > 1000
    assert tcx_module.KAPPA_BIAS == 2
    biased, *_ = coder._cost(q, ratio)
    monkeypatch.setattr(tcx_module, "KAPPA_BIAS", 0)
    plain, *_ = coder._cost(q, ratio)
    assert biased.sum() < 0.99 * plain.sum()
