"""Rate-distortion optimised quantization (RDOQ) of the shaped MDCT bins: encoder only.

The dead-zone quantizer of :mod:`codec.residual.tcx` rounds every bin the
same way, whatever the entropy model says it will cost. RDOQ instead picks,
for each bin, the magnitude among ``m - 1``, ``m`` and ``m + 1`` (``m``: the
dead-zone magnitude) that minimises

    J = (|v| - m')**2 + λ * bits(m')

where ``v`` is the bin in units of the step Δ (so the error is measured in the
perceptually shaped domain, where the shaping makes squared error the
perceptual measure), ``bits`` its cost under the frame's model (the sign
included) and λ the price of a bit in Δ². High-rate theory gives
``λ = 2 ln 2 / 12 ≈ 0.116`` (``dD/dR`` of a uniform quantizer). A bin the
model expects small (between formants, between harmonics) is therefore
dropped to zero sooner than the fixed dead zone drops it, and one it expects
large keeps its value; the rate loop then spends the bits saved on a finer
Δ. The decoder does not change: it reads the values, whatever chose them.
Magnitudes above the model's escape threshold are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = ["LAMBDA_HIGH_RATE", "rdo_magnitudes"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LAMBDA_HIGH_RATE = 2.0 * np.log(2.0) / 12.0
"""λ of a uniform quantizer at high rate, in Δ² per bit (about 0.116)."""


def rdo_magnitudes(
    v: FloatArray,
    mag: IntArray,
    bits: Callable[[IntArray], FloatArray],
    lam: float,
    max_mag: int,
) -> IntArray:
    """Magnitudes minimising ``(v - m)**2 + lam * bits(m)`` over ``m`` in ``mag - 1 .. mag + 1``.

    Parameters
    ----------
    v : ndarray of float
        ``|x| / Δ`` of every bin.
    mag : ndarray of int, same shape
        The starting magnitudes (e.g. the dead-zone quantizer's).
    bits : callable
        ``bits(m)`` -> cost in bits of magnitude ``m`` (same shape as ``v``) in each bin.
    lam : float
        Price of a bit, in Δ².
    max_mag : int
        Candidates stay in ``[0, max_mag]``; bins whose ``mag`` exceeds it are kept.
    """
    keep = mag > max_mag
    base = np.minimum(mag, max_mag)
    best = base.copy()
    best_j = (v - base) ** 2 + lam * bits(base)
    for step in (-1, 1):
        cand = np.clip(base + step, 0, max_mag)
        j = (v - cand) ** 2 + lam * bits(cand)
        better = j < best_j
        best = np.where(better, cand, best)
        best_j = np.where(better, j, best_j)
    return np.where(keep, mag, best).astype(np.int64)
