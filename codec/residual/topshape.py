"""The time envelope of the noise-filled top band in transient frames (format 7).

Above its coded band (:attr:`codec.modes.Mode.coded_bins`) a mode sends no
values, only one level per frame; the decoder fills the band with noise under
the spectral envelope at that level. In a transient frame (four short blocks,
:mod:`codec.residual.blocks`) that noise used to have the same level in all
four 5 ms blocks, so the quiet blocks before an onset or after an offset were
filled as loudly as the loud one. That is audible as a smear and is what
PESQ's disturbance sees most: a band that carries too much energy in a
32 ms frame (RESULTS.md §1, format 6's oracle).

Format 7 sends the top band's loudness in each block of a transient frame:
2 raw bits per block right after the transient flag, the block's level below
the frame's loudest block in 6 dB steps (0, -6, -12 and -18 dB or less),
computed by the encoder from its own top-band coefficients. Encoder and
decoder then scale the model shape of block ``j``'s top-band bins by that
block's gain (the gains normalised to a mean square of one, so that the
frame's top-band level, measured by the encoder after the shaping, keeps its
meaning), and the noise the decoder draws follows the block levels. Values
below the top band and frames without short blocks are unchanged. (AMR-WB
sends its 6.4-7 kHz band's gain per 5 ms subframe at 23.85 kbit/s for the
same reason.)

The short blocks' coefficients are interleaved (coefficient ``i`` of block
``j`` at ``4 i + j``, :func:`codec.residual.blocks.to_short`), so block
``j``'s top-band bins are those at positions ``p >= lo`` with ``p % 4 == j``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from codec.residual.blocks import SHORT_BLOCKS

__all__ = ["LEVEL_BITS", "MAX_LEVEL", "levels", "gains", "apply", "field_bits"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LEVEL_BITS = 2
"""Raw bits of one block's level."""
MAX_LEVEL = (1 << LEVEL_BITS) - 1
"""The deepest level: -18 dB (or less) below the loudest block (one step is
half the amplitude, 6.02 dB)."""


def field_bits() -> list[int]:
    """The widths of the raw fields a transient frame carries (one per block)."""
    return [LEVEL_BITS] * SHORT_BLOCKS


def _block_of(lo: int, n_bins: int) -> IntArray:
    return np.arange(lo, n_bins) % SHORT_BLOCKS


def levels(xs: FloatArray, lo: int) -> IntArray:
    """Each block's level (0 to :data:`MAX_LEVEL`, in halvings of amplitude
    below the loudest block) of the top band (bins ``lo`` on) of transient
    frames' interleaved coefficients ``xs`` (k, n_bins); all 0 where the band
    is silent or absent."""
    x = np.asarray(xs, dtype=np.float64)
    k, n_bins = x.shape
    out = np.zeros((k, SHORT_BLOCKS), dtype=np.int64)
    if lo >= n_bins or k == 0:
        return out
    block = _block_of(lo, n_bins)
    top = x[:, lo:] ** 2
    energy = np.stack([top[:, block == j].mean(axis=1) for j in range(SHORT_BLOCKS)], axis=1)
    loudest = energy.max(axis=1, keepdims=True)
    live = loudest[:, 0] > 0.0
    # halvings of amplitude below the loudest block: log2 of the amplitude ratio
    drop = 0.5 * np.log2(loudest[live] / np.maximum(energy[live], 1e-300))
    out[live] = np.clip(np.rint(drop), 0, MAX_LEVEL).astype(np.int64)
    return out


def gains(lv: npt.ArrayLike) -> FloatArray:
    """The amplitude gain of each block for levels ``lv`` (k, 4): ``2 ** -level``,
    normalised to a mean square of one over the frame's blocks."""
    g = np.exp2(-np.asarray(lv, dtype=np.float64))
    return np.asarray(g / np.sqrt(np.mean(g * g, axis=-1, keepdims=True)), dtype=np.float64)


def apply(ratio: FloatArray, lv: npt.ArrayLike, lo: int) -> FloatArray:
    """The model shape ``ratio`` (k, n_bins) of transient frames with block
    ``j``'s top-band bins (from ``lo`` on) scaled by its gain (:func:`gains`
    of the levels ``lv``, (k, 4)); the bins below ``lo`` are unchanged."""
    r = np.array(ratio, dtype=np.float64, copy=True)
    n_bins = r.shape[-1]
    if lo >= n_bins or r.shape[0] == 0:
        return r
    g = gains(lv)
    r[:, lo:] *= g[:, _block_of(lo, n_bins)]
    return r
