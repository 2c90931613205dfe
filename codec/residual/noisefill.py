"""The noise filler's level per bin from the entropy model (format 8).

The decoder fills the coded band's zeroed bins (from 1 kHz up) with noise of
pseudo-random sign. Up to format 7 its amplitude in bin ``k`` was ``ν r_k``:
one level per frame (``ν``, sent), times the model shape. That level grows
with ``r_k`` without bound, although a bin quantized to zero was smaller than
the dead zone's threshold ``T`` (``|v| < T = 0.5 + θ`` in units of the step):
under a formant or a harmonic, where the model expects large values, the
noise was louder than anything the bin can have held, and in the valleys it
was too quiet.

Since format 8 the level follows what the model says a zeroed bin held. Bin
``k``'s value is a Laplacian of mean magnitude ``b_k = κ r_k`` (the scale
its symbol is coded with, :mod:`codec.residual.tcx`); given that it was
quantized to zero, its root mean square is

    ρ(b)² = E[v² | |v| < T] = b² (2 - e^(-t) (t² + 2t + 2)) / (1 - e^(-t)),   t = T / b,

which is ``√2 b`` for a small scale and ``T / √3`` (a uniform variable) for a
large one. ``ρ`` is taken at the scale of the table that codes the bin (``b_k``
on the coder's grid of 1/8 octave, :func:`codec.residual.tcx._fill_table`), so
that encoder and decoder look it up instead of evaluating it per bin. The
decoder fills bin ``k`` with ``α ρ(b_k)``, where the per-frame
factor ``α`` is the 3-bit ``ν`` field: ``α = 0.35 · 2^((ν - 4) / 4)`` (1.5 dB
steps around the share 0.35 of the measured level that PESQ preferred since
format 1), ``ν = 0`` no noise. The encoder measures, over the zeroed bins,
the ratio of the values' RMS to ``ρ``'s and sends the nearest ``ν``.

Only numbers the decoder already has enter ``ρ`` (κ, the model shape with its
harmonic comb, a fixed ``T``): no new field, and the same bits as before.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "THRESHOLD",
    "SHARE",
    "STEPS_PER_OCTAVE",
    "CENTRE",
    "conditional_rms",
    "factor",
    "factor_index",
    "index_of_sums",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

THRESHOLD = 0.7
"""``T``: the magnitude (in steps) below which the encoder's dead-zone quantizer
gives zero, ``0.5 + θ`` for the dead zone θ = 0.2 (a fixed number of the
format: the encoder's θ may change without changing the decoder)."""
SHARE = 0.35
"""``α`` at ``ν = CENTRE``: the share of the measured level the noise gets."""
STEPS_PER_OCTAVE = 4
CENTRE = 4


def conditional_rms(scale: npt.ArrayLike, threshold: float = THRESHOLD) -> FloatArray:
    """``ρ(b)``: the RMS of a Laplacian of mean magnitude ``b`` given ``|v| < T``.

    Any shape; scales at or below 1e-9 give the small-scale limit ``√2 b``.
    """
    b = np.maximum(np.asarray(scale, dtype=np.float64), 1e-9)
    t = threshold / b
    # 2 - e^(-t) (t² + 2t + 2) = Σ_{n>=3} (-1)^(n+1) (n-1)(n-2)/n! t^n: the
    # series below t = 1/2 (the closed form cancels there), the closed form above
    ts = np.minimum(t, _SERIES_BELOW)
    f_series = np.zeros_like(ts)
    for n in range(_SERIES_TERMS + 2, 2, -1):  # summed from the smallest term up
        f_series += _SERIES[n] * ts**n
    e = np.exp(-t)
    f = np.where(t < _SERIES_BELOW, f_series, 2.0 - e * (t * t + 2.0 * t + 2.0))
    m2 = b * b * f / -np.expm1(-t)
    return np.asarray(np.sqrt(np.maximum(m2, 0.0)), dtype=np.float64)


_SERIES_BELOW = 0.5
_SERIES_TERMS = 16  # (1/2)^19 / 19!: far below a double's resolution of t³/3
_SERIES = {
    n: (-1.0) ** (n + 1) * (n - 1) * (n - 2) / math.factorial(n)
    for n in range(3, _SERIES_TERMS + 3)
}


def factor(index: npt.ArrayLike) -> FloatArray:
    """``α`` of each ``ν`` index (0: no noise)."""
    i = np.asarray(index, dtype=np.float64)
    alpha = SHARE * 2.0 ** ((i - CENTRE) / STEPS_PER_OCTAVE)
    return np.asarray(np.where(i > 0, alpha, 0.0), dtype=np.float64)


def factor_index(
    v: FloatArray, rho: FloatArray, mask: npt.NDArray[np.bool_], bits: int
) -> IntArray:
    """The encoder's ``ν`` per frame: ``SHARE`` times the ratio of the RMS of the
    values ``v`` to that of ``rho`` over the bins ``mask`` marks (all (n, w)),
    to the nearest 1.5 dB step; 0 where a frame has no such bin or no level."""
    m = mask.astype(np.float64)
    return index_of_sums((v * v * m).sum(axis=-1), (rho * rho * m).sum(axis=-1), bits)


def index_of_sums(num: FloatArray, den: FloatArray, bits: int) -> IntArray:
    """:func:`factor_index` of the sums of ``v²`` (``num``) and of ``ρ²`` (``den``)
    over each frame's masked bins."""
    ok = (num > 0.0) & (den > 0.0)
    ratio = np.sqrt(np.where(ok, num, 1.0) / np.where(ok, den, 1.0))
    j = np.rint(STEPS_PER_OCTAVE * np.log2(ratio)) + CENTRE
    j = np.clip(j, 1, (1 << bits) - 1)
    return np.asarray(np.where(ok, j, 0), dtype=np.int64)
