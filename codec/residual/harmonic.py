"""Harmonic model for the entropy coder: the expected spectrum gets a comb at the pitch.

When the pitch tool is on in a frame, its lag ``T`` is in the frame before
the spectrum, so the decoder knows where the harmonics fall: bin ``k``
(centre ``(k + 1/2) 25`` Hz) lies at the phase ``2π (k + 1/2) T / 640`` of the
harmonic comb. The model's expected magnitude of each bin is multiplied by

    h_k = 1 + β(k) cos(2π (k + 1/2) T / 640),   β(k) = depth · max(0, 1 - f_k / f_max),

raising the expected magnitude on the harmonics and lowering it between them,
so the range coder spends fewer bits where the comb is predictable (as the
harmonic model of the EVS arithmetic coder does). ``β`` fades with frequency
because an integer lag at 16 kHz drifts off the higher harmonics. Frames with
the tool off get ``h_k = 1``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["harmonic_shape"]

FloatArray = npt.NDArray[np.float64]


def harmonic_shape(
    lags: npt.ArrayLike,
    on: npt.ArrayLike,
    n_bins: int,
    *,
    depth: float,
    f_max: float = 4000.0,
) -> FloatArray:
    """Multiplicative model shape ``h`` of shape (n, n_bins) (ones where ``on`` is False)."""
    lag = np.asarray(lags, dtype=np.float64).reshape(-1, 1)
    k = np.arange(n_bins) + 0.5
    freq = k * 8000.0 / n_bins
    beta = depth * np.maximum(0.0, 1.0 - freq / f_max)
    h = np.ones((lag.shape[0], n_bins))
    # only where it can differ from 1: the rows that are on, the bins where beta != 0
    # (elsewhere 1 + 0 * cos(.) is 1 exactly)
    rows = np.flatnonzero(np.broadcast_to(np.asarray(on).reshape(-1), lag.shape[:1]))
    cols = np.flatnonzero(beta)
    if rows.size and cols.size:
        b, kc = beta[cols], k[cols]
        h[np.ix_(rows, cols)] = 1.0 + b[None, :] * np.cos(
            2.0 * np.pi * kc[None, :] * lag[rows] / (2.0 * n_bins)
        )
    return h
