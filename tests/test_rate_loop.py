"""The TCX rate loop decides without trial coding what trial coding decides."""

from __future__ import annotations

import numpy as np
import pytest

import codec
from codec.residual import tcx as tcx_module
from codec.residual.pitch import PitchParams
from codec.residual.tcx import TCX


def _captured(speech, monkeypatch, rate):
    """The arguments of the first TCX.encode call of a 2 s encoding."""
    x, sr = speech
    seen = []
    original = TCX.encode

    def spy(self, *args, **kwargs):
        seen.append((self, args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TCX, "encode", spy)
    codec.encode(x[: 2 * sr], sr, rate)
    monkeypatch.setattr(TCX, "encode", original)
    return seen[0]


def _setup(coder, coefs, a_q, env_idx, env_bits, frame_bytes, pitch):
    side, fixed = coder.side_info(env_idx, env_bits, pitch)
    shaping, ratio = coder.envelopes(a_q)
    ratio = coder._harmonic(ratio, pitch)
    return coefs * shaping, ratio, side, fixed, 8 * frame_bytes


@pytest.mark.parametrize("rate", [8.0, 32.0])
@pytest.mark.parametrize("sure_bits", [1e-6, 1e3])
def test_rate_loop_equals_trial_coding(speech, monkeypatch, rate, sure_bits):
    """From start gains around, below and above the estimate (so that the loop
    goes coarser as well as finer), and with every decision left to trial coding
    (``sure_bits`` 1000), the gains and payloads are those of coding by trial."""
    coder, args, kwargs = _captured(speech, monkeypatch, rate)
    coefs, a_q, env_idx, env_bits, frame_bytes = args
    pitch = kwargs.get("pitch") or PitchParams.off(coefs.shape[0])
    xs, ratio, side, fixed, budget = _setup(
        coder, coefs, a_q, env_idx, env_bits, frame_bytes, pitch
    )
    monkeypatch.setattr(tcx_module, "_SURE_BITS", sure_bits)
    rng = np.random.default_rng(1)
    n = xs.shape[0]
    # the finest gain whose ideal cost fits, frame by frame
    estimate = np.full(n, 255)
    for g in range(254, -1, -1):
        bits = coder._total_cost(xs, ratio, np.full(n, g))
        estimate = np.where(fixed + bits <= budget - 2, g, estimate)
    for shift in (-6, -1, 0, 2):
        gain = np.clip(estimate + shift + rng.integers(-1, 2, n), 0, 255)
        cannot_fit = rng.random(n) < 0.3
        final, coded = coder._rate_loop(xs, ratio, gain, cannot_fit, side, fixed, budget)
        frames = coder._code_frames(xs, ratio, final, coded, gain, cannot_fit, side, frame_bytes)
        for i in range(n):
            ref = coder._rate_loop_frame(
                xs[i], ratio[i], int(gain[i]), bool(cannot_fit[i]), side[i], budget
            )
            assert frames[i] == ref + bytes(frame_bytes - len(ref)), (shift, i)
        if sure_bits > 1:
            assert coded  # decided by trial coding
