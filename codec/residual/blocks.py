"""Short blocks for transient frames (block switching, since format 6).

A 20 ms MDCT frame spreads its quantization noise over the whole window: in a
frame where the speech starts (or stops), the noise is heard before the onset
(pre-echo), where the input is quiet. A frame the encoder finds transient is
coded as four short MDCTs instead (80 coefficients each, hop 5 ms), so that
the noise of each 5 ms block stays in its block: the quiet blocks before an
onset quantize mostly to zero (CELT codes transients the same way, RFC 6716
§4.3.7).

The short blocks keep the long frame's edges. The long window of frame ``k``
is non-zero on ``[kN - L, (k+1)N)`` (``N`` = 320, ``L`` = 80, see
:mod:`codec.residual.mdct`); block ``j`` (``j < 4``) windows
``[kN - L + 80 j, kN + 80 (j+1))`` with a full sine window of 160 samples, whose
rise and fall are the long window's slopes (the short blocks need ``L`` equal
to the short hop). Time-domain aliasing therefore cancels with the neighbouring
frames whatever their kind, and the four short transforms span the same
320-dimensional space as the long one: the map between a frame's long and
short coefficients is orthogonal (:func:`to_short` and :func:`to_long`, inverse
to each other). So the coder swaps a transient frame's coefficients in the
MDCT domain, and the MDCT framing, its streaming state and the decoder's
overlap-add do not change.

The short coefficients are interleaved, coefficient ``i`` of block ``j`` at
position ``4 i + j``: position ``p`` then lies near the long bin ``p`` in
frequency (within 100 Hz), so the envelope's shaping and the entropy model of
the long frame still fit it. The harmonic model is off in a transient frame
(100 Hz bins do not resolve the harmonics).

The encoder's decision (:func:`split`, :func:`detect`): a frame is transient when its loudest
short block carries more than :data:`TRANSIENT_RATIO` times the energy of its
quietest one. It is sent as one raw bit after the envelope indices.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from codec.errors import ParameterError
from codec.residual import mdct

__all__ = [
    "SHORT_BLOCKS",
    "TRANSIENT_RATIO",
    "block_energies",
    "detect",
    "split",
    "to_long",
    "to_short",
]

FloatArray = npt.NDArray[np.float64]

SHORT_BLOCKS = 4
"""Short blocks per transient frame (80 coefficients, 5 ms each)."""
TRANSIENT_RATIO = 4.0
"""A frame is transient when its loudest short block has more than this many
times the energy of its quietest (6 dB; screened 2 / 4 / 8 / 20 on 24 dev files,
RESULTS.md §1)."""
_FLOOR = 1e-6
"""Frames with less energy per coefficient than this are never transient (digital silence)."""


@functools.cache
def _windows(n: int, overlap: int) -> tuple[FloatArray, FloatArray, int]:
    h = n // SHORT_BLOCKS
    if overlap != h:
        raise ParameterError(
            f"short blocks need the MDCT overlap to equal the short hop ({h}), not {overlap}"
        )
    return mdct.mdct_window(n, overlap), mdct.mdct_window(h, h), (n - overlap) // 2


def to_short(coefs: npt.ArrayLike, overlap: int = mdct.DEFAULT_OVERLAP) -> FloatArray:
    """The short-block coefficients (interleaved) of frames given by their long
    MDCT coefficients, shape (..., N) -> (..., N)."""
    c = np.asarray(coefs, dtype=np.float64)
    return _interleave(mdct.dct4(_folded(c, overlap)))


def _folded(c: FloatArray, overlap: int) -> FloatArray:
    """Each short block's span of the frames' windowed time signal (with the
    long window's edge aliasing), windowed and folded: the input of its short
    MDCT's DCT-IV, shape (..., N) -> (..., 4, N / 4)."""
    n = c.shape[-1]
    wl, ws, pad = _windows(n, overlap)
    h = n // SHORT_BLOCKS
    t = mdct.imdct(c, wl)
    seg = np.stack([t[..., pad + h * j : pad + h * j + 2 * h] for j in range(SHORT_BLOCKS)], -2)
    return mdct.fold(seg, ws)


def _interleave(s: FloatArray) -> FloatArray:
    """Short coefficients (..., blocks, N / 4) interleaved to (..., N)."""
    shape = (*s.shape[:-2], s.shape[-2] * s.shape[-1])
    return np.asarray(np.swapaxes(s, -1, -2).reshape(shape), dtype=np.float64)


def to_long(coefs: npt.ArrayLike, overlap: int = mdct.DEFAULT_OVERLAP) -> FloatArray:
    """The long MDCT coefficients of frames given by their short-block
    coefficients (the inverse of :func:`to_short`), shape (..., N) -> (..., N)."""
    c = np.asarray(coefs, dtype=np.float64)
    n = c.shape[-1]
    wl, ws, pad = _windows(n, overlap)
    h = n // SHORT_BLOCKS
    # (contiguous: the same numbers, and the transform runs faster on it)
    s = np.ascontiguousarray(np.swapaxes(c.reshape(*c.shape[:-1], h, SHORT_BLOCKS), -1, -2))
    seg = mdct.imdct(s, ws)  # (..., blocks, 2h)
    t = np.zeros((*c.shape[:-1], 2 * n))
    for j in range(SHORT_BLOCKS):
        t[..., pad + h * j : pad + h * j + 2 * h] += seg[..., j, :]
    return mdct.mdct(t, wl)


def block_energies(short: npt.ArrayLike) -> FloatArray:
    """Energy of each short block of interleaved short coefficients, (..., N) -> (..., 4)."""
    s = np.asarray(short, dtype=np.float64)
    parts = [np.sum(s[..., j::SHORT_BLOCKS] ** 2, axis=-1) for j in range(SHORT_BLOCKS)]
    return np.stack(parts, axis=-1)


def split(
    coefs: npt.ArrayLike,
    ratio: float = TRANSIENT_RATIO,
    overlap: int = mdct.DEFAULT_OVERLAP,
) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """Which frames (rows of long MDCT coefficients, shape (n, N)) to code as
    short blocks, and the short coefficients of those frames (:func:`to_short`
    of them, from the same folded samples)."""
    c = np.asarray(coefs, dtype=np.float64)
    if c.shape[0] == 0:
        return np.zeros(0, dtype=bool), np.zeros((0, c.shape[-1]))
    folded = _folded(c, overlap)
    # each block's energy from its folded samples (the short MDCT's input: the
    # same energy, without the transforms)
    e = np.sum(folded**2, axis=-1)
    loud = e.sum(axis=-1) > _FLOOR * c.shape[-1]
    short = np.asarray(loud & (e.max(axis=-1) > ratio * e.min(axis=-1)), dtype=bool)
    return short, _interleave(mdct.dct4(folded[short]))


def detect(
    coefs: npt.ArrayLike,
    ratio: float = TRANSIENT_RATIO,
    overlap: int = mdct.DEFAULT_OVERLAP,
) -> npt.NDArray[np.bool_]:
    """Which frames (rows of long MDCT coefficients) to code as short blocks
    (:func:`split`'s decision)."""
    return split(coefs, ratio, overlap)[0]
