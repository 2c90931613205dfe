"""TCX's array kernels against their definitions written out plainly, bit for bit:
the envelopes, the noise filler's signs and the harmonic model."""

from __future__ import annotations

import numpy as np

from codec.residual.harmonic import apply_harmonic, harmonic_shape
from codec.residual.tcx import N_BINS, TCX, TcxConfig, frame_signs


def test_envelopes_are_the_formula() -> None:
    rng = np.random.default_rng(2)
    a = np.vstack([np.r_[1.0, 0.3 * rng.standard_normal((40, 16))[i]] for i in range(40)])
    a[0] = np.r_[1.0, np.zeros(16)]
    for cfg in (TcxConfig(), TcxConfig(gamma=0.92, tilt=0.0)):
        shaping, ratio = TCX(cfg).envelopes(a)
        gam = cfg.gamma ** np.arange(17)
        spec_w = np.abs(np.fft.rfft(a * gam, 4 * N_BINS, axis=-1)[:, 1 : 2 * N_BINS : 2])
        spec = np.abs(np.fft.rfft(a, 4 * N_BINS, axis=-1)[:, 1 : 2 * N_BINS : 2])
        w = np.pi * (np.arange(N_BINS) + 0.5) / N_BINS
        mu = cfg.tilt
        tilt = 1.0 / np.sqrt(1.0 + mu * mu - 2.0 * mu * np.cos(w))
        ref_shaping = np.maximum(spec_w * tilt, 1e-9)
        ref_ratio = ref_shaping / np.maximum(spec, 1e-9)
        ref_ratio = ref_ratio / ref_ratio.mean(axis=-1, keepdims=True)
        np.testing.assert_array_equal(shaping, ref_shaping)
        np.testing.assert_array_equal(ratio, ref_ratio)


def test_frame_signs_are_splitmix64() -> None:
    mask = (1 << 64) - 1

    def sign(x: int) -> float:
        z = (x + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        return 1.0 if z >> 63 else -1.0

    index = [0, 1, 7, 12345, 2**40 + 3]
    for n_bins in (N_BINS, 80):
        s = frame_signs(index, n_bins)
        ref = [[sign(i * n_bins + k) for k in range(n_bins)] for i in index]
        assert s.dtype == np.float64 and s.shape == (len(index), n_bins)
        np.testing.assert_array_equal(s, ref)


def test_harmonic_model_is_the_formula() -> None:
    rng = np.random.default_rng(9)
    n = 60
    lags = rng.integers(32, 288, n).astype(float)
    lags[:10] = 100.0  # repeated lags share one comb
    on = rng.random(n) < 0.6
    for depth, f_max in ((0.5, 4000.0), (0.3, 8000.0), (0.0, 4000.0)):
        k = np.arange(N_BINS) + 0.5
        beta = depth * np.maximum(0.0, 1.0 - k * 8000.0 / N_BINS / f_max)
        ref = np.ones((n, N_BINS))
        cols = np.flatnonzero(beta)
        for i in np.flatnonzero(on):  # frame by frame
            arg = 2.0 * np.pi * k[cols] * lags[i] / (2.0 * N_BINS)
            ref[i, cols] = 1.0 + beta[cols] * np.cos(arg)
        h = harmonic_shape(lags, on, N_BINS, depth=depth, f_max=f_max)
        np.testing.assert_array_equal(h, ref)
        x = rng.random((n, N_BINS))
        np.testing.assert_array_equal(
            apply_harmonic(x.copy(), lags, on, depth=depth, f_max=f_max), x * ref
        )
