"""The noise filler's level per bin from the entropy model (codec.residual.noisefill, format 8)."""

from __future__ import annotations

import numpy as np
import pytest

import codec
from codec.pipeline import Tools
from codec.residual import noisefill
from codec.residual.rangecoder import SCALE_MIN_LOG2, SCALE_STEPS_PER_OCTAVE
from codec.residual.tcx import TCX, TcxConfig, _frame_kappas, _gain_step, _grid_index

N = 320


@pytest.mark.parametrize("b", [0.01, 0.2, 0.7, 3.0, 50.0])
def test_conditional_rms_is_the_laplacians_given_the_dead_zone(b: float) -> None:
    t = noisefill.THRESHOLD
    v = np.linspace(0.0, t, 200_001)
    w = np.exp(-v / b)
    numeric = np.sqrt(np.trapezoid(v * v * w, v) / np.trapezoid(w, v))
    assert noisefill.conditional_rms(b) == pytest.approx(numeric, rel=1e-6)


def test_conditional_rms_limits_and_shape() -> None:
    small = np.array([1e-6, 1e-4, 1e-3])
    assert np.allclose(noisefill.conditional_rms(small), np.sqrt(2) * small, rtol=1e-3)
    assert noisefill.conditional_rms(1e6) == pytest.approx(
        noisefill.THRESHOLD / np.sqrt(3), rel=1e-4
    )
    assert noisefill.conditional_rms(0.0) > 0  # floored, finite
    # the series (t < 1/2) and the closed form meet without a step
    t = np.array([0.5 * (1 - 1e-9), 0.5 * (1 + 1e-9)])
    below, above = noisefill.conditional_rms(noisefill.THRESHOLD / t)
    assert below == pytest.approx(above, rel=1e-8)
    grid = np.geomspace(1e-3, 1e3, 200)
    rho = noisefill.conditional_rms(grid)
    assert np.all(np.diff(rho) > 0) and np.all(rho < noisefill.THRESHOLD / np.sqrt(3))
    assert noisefill.conditional_rms(np.ones((3, 5))).shape == (3, 5)


def test_factor_steps_and_index() -> None:
    f = noisefill.factor(np.arange(8))
    assert f[0] == 0.0 and f[noisefill.CENTRE] == noisefill.SHARE
    assert np.allclose(f[2:] / f[1:-1], 2 ** (1 / noisefill.STEPS_PER_OCTAVE))
    rng = np.random.default_rng(0)
    rho = rng.uniform(0.1, 0.4, (4, 50))
    sign = rng.choice([-1.0, 1.0], (4, 50))
    mask = np.ones((4, 50), dtype=bool)
    mask[3] = False  # no zeroed bin: no noise
    scale = np.array([1.0, 2.0, 2**-0.5, 1.0])  # the values' level against ρ's
    v = scale[:, None] * rho * sign
    got = noisefill.factor_index(v, rho, mask, 3)
    assert got.tolist() == [4, 7, 2, 0]  # 0 dB, +6 dB (clipped to 7), -3 dB, none
    assert noisefill.factor_index(np.zeros((1, 50)), rho[:1], mask[:1], 3).tolist() == [0]


def _frames(config: TcxConfig, x: np.ndarray) -> tuple[TCX, list[bytes], np.ndarray]:
    tcx = TCX(config)
    coefs = tcx.analyze(x)
    a = np.zeros((coefs.shape[0], 17))
    a[:, 0] = 1.0
    a[:, 1] = -0.9  # a tilted envelope: the model shape is not flat
    env = np.zeros((coefs.shape[0], 4), dtype=np.int64)
    return tcx, tcx.encode(coefs, a, env, [6] * 4, 61), a


@pytest.mark.parametrize("model_fill", [True, False])
def test_the_decoded_noise_is_the_models_level(speech, monkeypatch, model_fill: bool) -> None:
    """Decoded with the noise and with ν forced to 0: the difference lies in the
    zeroed bins from 1 kHz up only, and its magnitude there is exactly
    α(ν) ρ(κ r_k) (format 8) or ν 0.035 r_k (the tool off, format 7)."""
    x, _ = speech
    config = TcxConfig(coded_bins=N, short_blocks=False, side_model="", model_fill=model_fill)
    tcx, frames, a = _frames(config, x[: 16000 * 3])
    _, fields, _ = tcx.read_side(frames, [6] * 4)
    nf = fields["noise"]
    assert (nf > 0).mean() > 0.5
    filled, _ = tcx.decode(frames, [6] * 4, lambda idx: a)
    orig_decode_fields = tcx.read_side

    def no_noise(fr, bits):
        idx, f, decs = orig_decode_fields(fr, bits)
        f = dict(f)
        f["noise"] = np.zeros_like(f["noise"])
        return idx, f, decs

    monkeypatch.setattr(tcx, "read_side", no_noise)
    plain, _ = tcx.decode(frames, [6] * 4, lambda idx: a)
    shaping, ratio = tcx.envelopes(a)
    ratio = tcx._harmonic(ratio, None)
    step = _gain_step(fields["gain"])[:, None]
    diff = (filled - plain) * shaping / step  # in units of the step, shaped domain
    zero = plain == 0.0
    k = np.arange(N)
    assert not np.any(diff[:, k < tcx._nf_start])
    assert not np.any(diff[~zero])
    if model_fill:
        # ρ at the scale of each bin's coding table (the 1/8-octave grid)
        grid = _grid_index(_frame_kappas()[fields["kappa"]][:, None] * ratio)
        table_scale = 2.0 ** (SCALE_MIN_LOG2 + grid / SCALE_STEPS_PER_OCTAVE)
        expect = noisefill.factor(nf)[:, None] * noisefill.conditional_rms(table_scale)
    else:
        expect = (nf * 0.035)[:, None] * ratio
    sel = zero & (k >= tcx._nf_start)
    assert np.allclose(np.abs(diff[sel]), np.broadcast_to(expect, diff.shape)[sel], rtol=1e-9)


def test_the_noise_never_exceeds_what_a_zeroed_bin_can_hold(speech) -> None:
    """Format 8's fill stays below α T / √3 in every bin, however large the model
    scale (format 7's grew with r_k without bound)."""
    x, _ = speech
    config = TcxConfig(coded_bins=N, short_blocks=False, side_model="")
    tcx, frames, a = _frames(config, x[: 16000 * 3])
    _, fields, _ = tcx.read_side(frames, [6] * 4)
    coefs, _ = tcx.decode(frames, [6] * 4, lambda idx: a)
    shaping, _ = tcx.envelopes(a)
    v = coefs * shaping / _gain_step(fields["gain"])[:, None]
    small = np.abs(v) < 0.999  # the noise (the values are whole steps)
    bound = noisefill.factor(fields["noise"])[:, None] * noisefill.THRESHOLD / np.sqrt(3)
    assert small.any()
    assert np.all(np.abs(v[small]) <= np.broadcast_to(bound, v.shape)[small] + 1e-9)


def test_the_switch_changes_the_stream_and_both_decode(speech) -> None:
    x, sr = speech
    on = codec.encode(x[: 2 * sr], sr, 24.4)
    off = codec.encode(x[: 2 * sr], sr, 24.4, tools=Tools(model_fill=False))
    assert on != off
    y_on, _ = codec.decode(on, enhance=False)
    y_off, _ = codec.decode(off, tools=Tools(model_fill=False), enhance=False)
    assert y_on.shape == y_off.shape and np.all(np.isfinite(y_on)) and np.all(np.isfinite(y_off))
    assert not np.allclose(y_on, y_off)
