"""RDOQ (codec.residual.rdoq): an encoder-only option of the TCX quantizer."""

from __future__ import annotations

import numpy as np

import codec.pipeline as pipeline
from codec.residual import tcx as tcx_module
from codec.residual.rdoq import LAMBDA_HIGH_RATE, rdo_magnitudes


def test_rdo_magnitudes_trade_error_for_bits():
    v = np.array([0.8, 0.8, 2.4, 2.6, 20.0])
    mag = np.array([1, 1, 2, 3, 20])
    # bin 0: a one costs 10 bits, so at lambda 0.1 it is dropped; bin 1: 1 bit, kept
    costs = np.array([[0.1, 10.0, 12.0, 14.0], [1.0, 1.0, 3.0, 5.0]] + [[1.0, 2.0, 3.0, 4.0]] * 3)

    def bits(m):
        return costs[np.arange(v.size), np.minimum(m, 3)]

    out = rdo_magnitudes(v, mag, bits, 0.1, max_mag=3)
    # bin 3: 2 would save 1 bit (0.1) for 0.2 more squared error, so it stays 3
    assert out.tolist() == [0, 1, 2, 3, 20]
    assert rdo_magnitudes(v, mag, bits, 0.3, max_mag=3).tolist() == [0, 1, 2, 2, 20]
    # at lambda 0 it is nearest rounding within one step of the start
    assert rdo_magnitudes(v, mag, bits, 0.0, max_mag=3).tolist() == [1, 1, 2, 3, 20]


def _coder(lam):
    base = tcx_module.TCX(tcx_module.TcxConfig(coded_bins=120))
    return tcx_module.TCX(base.config._replace(rdo_lambda=lam))


def test_rdoq_off_is_the_dead_zone_quantizer():
    rng = np.random.default_rng(0)
    xs = rng.laplace(size=(6, 320)) * 3
    ratio = np.exp(rng.normal(size=(6, 320)) * 0.3)
    step = np.full(6, 0.7)
    off = _coder(0.0)
    assert np.array_equal(off._quantize(xs, step, ratio), off._quantize(xs, step))


def test_rdoq_lowers_the_rate_distortion_cost():
    """At one step size, RDOQ's values cost less in error + λ x bits than the dead zone's."""
    rng = np.random.default_rng(1)
    shape = np.linspace(4, 0.5, 320)
    xs = rng.laplace(size=(20, 320)) * shape
    ratio = np.repeat((shape / shape.mean())[None, :], 20, axis=0)
    step = np.full(20, 1.0)
    out = {}
    for lam in (0.0, LAMBDA_HIGH_RATE):
        coder = _coder(lam)
        q = coder._quantize(xs, step, ratio)
        bits, *_ = coder._cost(q, ratio)
        out[lam] = (float(bits.sum()), float(((xs[:, :120] - q[:, :120]) ** 2).sum()))
    (b0, e0), (b1, e1) = out[0.0], out[LAMBDA_HIGH_RATE]
    assert e1 + LAMBDA_HIGH_RATE * b1 < e0 + LAMBDA_HIGH_RATE * b0
    assert b1 != b0 and e1 != e0


def test_rdoq_streams_decode_with_the_unchanged_decoder(speech, monkeypatch):
    """The decoder reads RDOQ's values as any others: encode with it, decode without."""
    import codec

    x, sr = speech
    x = x[: 2 * sr]
    orig = pipeline._residual_coder

    def with_rdoq(cid, mode, tools):
        c = orig(cid, mode, tools)
        c.config = c.config._replace(rdo_lambda=LAMBDA_HIGH_RATE)
        return c

    plain = codec.encode(x, sr, 13.2)
    monkeypatch.setattr(pipeline, "_residual_coder", with_rdoq)
    data = codec.encode(x, sr, 13.2)
    monkeypatch.setattr(pipeline, "_residual_coder", orig)
    assert data != plain and len(data) == len(plain)
    y, _ = codec.decode(data)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert np.corrcoef(x, y)[0, 1] > 0.8
