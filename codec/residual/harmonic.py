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

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["apply_harmonic", "harmonic_shape"]

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
    n = np.asarray(lags).size
    return apply_harmonic(np.ones((n, n_bins)), lags, on, depth=depth, f_max=f_max)


def _bins(n_bins: int, depth: float, f_max: float) -> tuple[int, FloatArray, FloatArray]:
    """The bins where ``β != 0`` (``0 .. c - 1``: ``|β|`` falls with frequency, to 0 from
    ``f_max`` on), their ``β`` and ``2π (k + 1/2)``."""
    k = np.arange(n_bins) + 0.5
    freq = k * 8000.0 / n_bins
    beta = depth * np.maximum(0.0, 1.0 - freq / f_max)
    c = int(np.flatnonzero(beta)[-1]) + 1 if beta.any() else 0
    b, arg = beta[:c], np.asarray(2.0 * np.pi * k[:c], dtype=np.float64)
    b.flags.writeable = arg.flags.writeable = False
    return c, b, arg


# _bins of the few configurations in use (for Python float parameters, which give
# the same arrays whenever they compare equal); read-only
_cached_bins = functools.lru_cache(maxsize=32)(_bins)

# from how many rows the comb is computed once per distinct lag: below, once per row
# (the same numbers, elementwise), as np.unique costs more than it saves
_UNIQUE_FROM = 8


def apply_harmonic(
    x: FloatArray,
    lags: npt.ArrayLike,
    on: npt.ArrayLike,
    *,
    depth: float,
    f_max: float = 4000.0,
) -> FloatArray:
    """``x * harmonic_shape(lags, on, x.shape[1], ...)`` computed in ``x`` (shape (n,
    n_bins), float64; returned): only where ``h`` can differ from 1, the rows that
    are on and the bins where ``β != 0`` (elsewhere ``1 + 0 cos(.)`` is 1, and
    ``x * 1`` is ``x``)."""
    n_bins = x.shape[-1]
    lag = np.asarray(lags, dtype=np.float64).reshape(-1)
    rows = np.flatnonzero(np.broadcast_to(np.asarray(on).reshape(-1), lag.shape))
    if type(depth) is float and type(f_max) is float:
        c, b, arg = _cached_bins(n_bins, depth, f_max)
    else:
        c, b, arg = _bins(n_bins, depth, f_max)
    if not (rows.size and c):
        return x
    # the comb of each distinct lag once (elementwise, so the same numbers as
    # frame by frame), then a row per frame
    if rows.size < _UNIQUE_FROM:
        lag_set, row_of = lag[rows], None
    else:
        lag_set, row_of = np.unique(lag[rows], return_inverse=True)
    comb = 1.0 + b[None, :] * np.cos(arg[None, :] * lag_set[:, None] / (2.0 * n_bins))
    part = x[rows, :c]
    part *= comb if row_of is None else comb[row_of]
    x[rows, :c] = part
    return x
