"""Additive vector quantizer with beam-search encoding.

``M`` full-dimensional codebooks; the reconstruction is the sum of one
codeword from every codebook.  Encoding is a beam search over the union of the
codebooks not yet used: starting from the empty sum, each of ``M`` steps
expands every hypothesis by every codeword of every unused codebook and keeps
the ``beam`` best distinct hypotheses by the weighted error of the partial sum.
Hypotheses reaching the same set of codewords in a different order are merged
(Zobrist keys), so the beam holds distinct partial sums.  The greedy search
(``beam=1``) is run as well and the better result is kept per vector, so a
wider beam is never worse than greedy.  Indices are returned in codebook order.

Operation count per vector (``ops_per_vector``): ``3D`` per weighted distance,
``ceil(log2(B + 1))`` compares per candidate for the best-``B`` selection,
``D`` per residual update, with ``h_s`` hypotheses entering step ``s``
(``h_0 = 1``, then ``min(B, C(M, s) K**s)``)::

    D + sum_s [h_s (M - s) K (3D + ceil(log2(B + 1))) + h_{s+1} D]
      (+ the same sum with B = 1 for the greedy path and 2 M D for the final
       comparison when B > 1)
"""

from __future__ import annotations

import math

import numpy as np

from codec.errors import ParameterError

from .base import (
    FloatArray,
    IntArray,
    Quantizer,
    better_of,
    sq_norms,
    sum_codewords,
    weighted_error,
)

_ZOBRIST_SEED = 0x5EED_AD17


def _zobrist(size: int) -> np.ndarray:
    rng = np.random.default_rng(_ZOBRIST_SEED)
    return rng.integers(1, np.iinfo(np.int64).max, size=size, dtype=np.int64)


def _select(
    cand: FloatArray, keys: np.ndarray, zob: np.ndarray, keep: int, max_dup: int
) -> tuple[np.ndarray, FloatArray]:
    """Best ``keep`` distinct candidates per row.

    Parameters
    ----------
    cand : ndarray, shape (n, h * MK)
        Candidate errors (``inf`` for invalid candidates).
    keys : ndarray of int64, shape (n, h)
        Set keys of the parent hypotheses.
    zob : ndarray of int64, shape (MK,)
        Keys of the codewords; a candidate's key is ``keys[parent] ^ zob[j]``.
    keep : int
    max_dup : int
        Maximum number of parents that can produce the same set.

    Returns
    -------
    sel : ndarray of int64, shape (n, keep)
        Candidate positions, best first.
    err : ndarray, shape (n, keep)
        Their errors, ``inf`` for padding slots (duplicates or invalid).
    """
    n, total = cand.shape
    t = min(total, keep * max_dup)
    if t < total:
        pos = np.argpartition(cand, t - 1, axis=1)[:, :t]
    else:
        pos = np.broadcast_to(np.arange(total), (n, total))
    vals = np.take_along_axis(cand, pos, axis=1)
    order = np.argsort(vals, axis=1, kind="stable")
    pos = np.take_along_axis(pos, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    if max_dup > 1:
        mk = zob.shape[0]
        k = np.take_along_axis(keys, pos // mk, axis=1) ^ zob[pos % mk]
        same = k[:, :, None] == k[:, None, :]
        same &= np.tri(t, t, -1, dtype=bool)  # equal to an earlier (better) one
        bad = same.any(axis=2)
        bad |= ~np.isfinite(vals)
        order = np.argsort(bad, axis=1, kind="stable")[:, :keep]
        pos = np.take_along_axis(pos, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        vals[np.take_along_axis(bad, order, axis=1)] = np.inf
    else:
        pos, vals = pos[:, :keep], vals[:, :keep]
    return pos, vals


def avq_beam(
    r: FloatArray, w: FloatArray | None, codebooks: list[FloatArray], beam: int
) -> IntArray:
    """Beam search without the greedy safeguard (``beam=1`` is the greedy search).

    Parameters
    ----------
    r : ndarray, shape (n, D)
    w : ndarray, shape (n, D), optional
    codebooks : list of ndarray, shape (K, D)
    beam : int

    Returns
    -------
    ndarray of int64, shape (n, M)
    """
    n, d = r.shape
    m_st, k = len(codebooks), codebooks[0].shape[0]
    mk = m_st * k
    flat_t = -2.0 * np.concatenate(codebooks, axis=0).T  # (D, MK)
    flat = np.concatenate(codebooks, axis=0)
    zob = _zobrist(mk)
    c2 = sq_norms(flat, w).reshape(-1, 1, m_st, k)  # (1 or n, 1, M, K)
    rows = np.arange(n)[:, None]
    res = r[:, None, :].copy()
    err = weighted_error(r, np.zeros_like(r), w)[:, None]
    codes = np.full((n, 1, m_st), -1, dtype=np.int64)
    keys = np.zeros((n, 1), dtype=np.int64)
    for s in range(m_st):
        h = res.shape[1]
        wr = res if w is None else w[:, None, :] * res
        cand = (wr.reshape(n * h, d) @ flat_t).reshape(n, h, m_st, k)
        cand += c2
        base = np.where(codes >= 0, np.inf, err[:, :, None])  # (n, h, M)
        cand += base[:, :, :, None]
        cand = cand.reshape(n, h * mk)
        last = s == m_st - 1
        keep = 1 if last else min(beam, math.comb(m_st, s + 1) * k ** (s + 1))
        if keep == 1:
            sel = np.argmin(cand, axis=1)[:, None]
            err = np.take_along_axis(cand, sel, axis=1)
        else:
            sel, err = _select(cand, keys, zob, keep, min(s + 1, h))
        parent, j = sel // mk, sel % mk
        codes = codes[rows, parent]
        np.put_along_axis(codes, (j // k)[:, :, None], (j % k)[:, :, None], axis=2)
        if last:
            break
        keys = keys[rows, parent] ^ zob[j]
        res = res[rows, parent] - flat[j]
        exact = (res * res if w is None else w[:, None, :] * res * res).sum(axis=2)
        err = np.where(np.isfinite(err), exact, np.inf)
    return codes[:, 0, :]


def avq_search(
    r: FloatArray, w: FloatArray | None, codebooks: list[FloatArray], beam: int = 8
) -> IntArray:
    """Beam search that is never worse than the greedy search.

    Parameters
    ----------
    r : ndarray, shape (n, D)
        Mean-removed vectors.
    w : ndarray, shape (n, D), optional
    codebooks : list of ndarray, shape (K, D)
    beam : int

    Returns
    -------
    ndarray of int64, shape (n, M)
        Column ``m`` is the index into codebook ``m``.
    """
    greedy = avq_beam(r, w, codebooks, 1)
    if beam <= 1:
        return greedy
    best = avq_beam(r, w, codebooks, beam)
    return better_of(r, w, codebooks, best, greedy)


class AVQ(Quantizer):
    """Additive vector quantizer with beam-search encoding.

    Parameters
    ----------
    codebooks : sequence of array_like, shape (K, D)
    mean : array_like, shape (D,), optional
    beam : int, default 8
        Beam width of the encoder.
    **kwargs
        See :class:`~codec.quantizers.base.Quantizer`.
    """

    variant = "avq"
    uses_beam = True
    default_beam = 8

    def _check_codebooks(self, cbs: list[FloatArray]) -> int:
        d = cbs[0].shape[1]
        if any(c.shape[1] != d for c in cbs):
            raise ParameterError("avq codebooks must all have the vector dimension")
        return int(d)

    def _work_per_row(self) -> int:
        return self.beam * self.stages * self.codebook_size

    def _search(self, r: FloatArray, w: FloatArray | None) -> IntArray:
        return avq_search(r, w, self._codebooks, self.beam)

    def _reconstruct(self, idx: IntArray) -> FloatArray:
        return sum_codewords(self._codebooks, idx)

    def _search_ops(self, beam: int) -> int:
        d, k, m_st = self.dim, self.codebook_size, self.stages
        sel = math.ceil(math.log2(beam + 1))
        total, h = 0, 1
        for s in range(m_st):
            nxt = 1 if s == m_st - 1 else min(beam, math.comb(m_st, s + 1) * k ** (s + 1))
            total += h * (m_st - s) * k * (3 * d + sel) + nxt * d
            h = nxt
        return total

    def ops_per_vector(self) -> int:
        """Operation count of the search as implemented (see module docstring)."""
        total = self.dim + self._search_ops(1)
        if self.beam > 1:
            total += self._search_ops(self.beam) + 2 * self.stages * self.dim
        return total
