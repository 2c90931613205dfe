"""Residual (multi-stage) vector quantizer.

``M`` full-dimensional codebooks are applied in sequence, each to the residual
left by the previous stages; the reconstruction is the sum of the chosen
codewords.  Search is greedy (``beam=1``) or M-best (``beam=B > 1``): after
every stage the ``B`` partial paths with the smallest weighted residual error
are kept.  Because M-best can prune the greedy path, the greedy path is also
computed and the better of the two results is returned, so ``beam > 1`` is
never worse than greedy.

Operation count per vector (``ops_per_vector``), ``3D`` per weighted distance,
one compare per candidate, ``ceil(log2(B + 1))`` compares per candidate for
selecting the best ``B`` of a list, ``D`` per residual update, and ``h_m``
hypotheses entering stage ``m`` (``h_0 = 1``, later ``min(B, K**m)``)::

    greedy:  D + M (K*3D + K + D)
    M-best:  D + sum_m [h_m K (3D + ceil(log2(B+1))) + h_{m+1} D]
               + M (K*3D + K + D) + 2 M D     (greedy safeguard + final comparison)
"""

from __future__ import annotations

import math

import numpy as np

from codec.errors import ParameterError

from .base import (
    FloatArray,
    IntArray,
    Quantizer,
    argmin_rows,
    better_of,
    smallest_sorted,
    sq_norms,
    sum_codewords,
    weighted_error,
)


def rvq_greedy(r: FloatArray, w: FloatArray | None, codebooks: list[FloatArray]) -> IntArray:
    """Greedy sequential residual search.

    Parameters
    ----------
    r : ndarray, shape (n, D)
    w : ndarray, shape (n, D), optional
    codebooks : list of ndarray, shape (K, D)

    Returns
    -------
    ndarray of int64, shape (n, M)
    """
    res = r.copy()
    out = np.empty((r.shape[0], len(codebooks)), dtype=np.int64)
    for m, c in enumerate(codebooks):
        wr = res if w is None else w * res
        i = np.argmin(sq_norms(c, w) - 2.0 * (wr @ c.T), axis=1)
        out[:, m] = i
        res -= c[i]
    return out


def rvq_mbest(
    r: FloatArray, w: FloatArray | None, codebooks: list[FloatArray], beam: int
) -> IntArray:
    """M-best residual search keeping ``beam`` paths per stage (no greedy safeguard)."""
    n, d = r.shape
    rows = np.arange(n)[:, None]
    res = r[:, None, :].copy()
    err = weighted_error(r, np.zeros_like(r), w)[:, None]
    codes = np.zeros((n, 1, 0), dtype=np.int64)
    for m, c in enumerate(codebooks):
        h, k = res.shape[1], c.shape[0]
        wr = res if w is None else w[:, None, :] * res
        # err - 2 cross + |c|^2 in place: (-2 c) scales each product and sum exactly,
        # and -2 cross + err is err - 2 cross
        cand3 = (wr.reshape(n * h, d) @ (-2.0 * c.T)).reshape(n, h, k)
        cand3 += err[:, :, None]
        cand3 += sq_norms(c, w)[:, None, :]
        cand = cand3.reshape(n, h * k)
        keep = 1 if m == len(codebooks) - 1 else min(beam, h * k)
        if keep == 1:
            sel = argmin_rows(cand)[:, None]
        elif keep < h * k:
            sel = smallest_sorted(cand, keep)
        else:
            sel = np.argsort(cand, axis=1, kind="stable")
        parent, kk = sel // k, sel % k
        res = res[rows, parent] - c[kk]
        wres = res * res if w is None else w[:, None, :] * res * res
        err = wres.sum(axis=2)
        codes = np.concatenate([codes[rows, parent], kk[:, :, None]], axis=2)
    return codes[:, 0, :]


def rvq_search(
    r: FloatArray, w: FloatArray | None, codebooks: list[FloatArray], beam: int = 1
) -> IntArray:
    """Greedy (``beam == 1``) or M-best search, never worse than greedy.

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
    """
    greedy = rvq_greedy(r, w, codebooks)
    if beam <= 1 or len(codebooks) == 1:
        return greedy
    best = rvq_mbest(r, w, codebooks, beam)
    return better_of(r, w, codebooks, best, greedy)


class RVQ(Quantizer):
    """Residual vector quantizer with greedy or M-best search.

    Parameters
    ----------
    codebooks : sequence of array_like, shape (K, D)
    mean : array_like, shape (D,), optional
    beam : int, default 1
        M-best width; 1 means greedy.
    **kwargs
        See :class:`~codec.quantizers.base.Quantizer`.
    """

    variant = "rvq"
    uses_beam = True
    default_beam = 1

    def _check_codebooks(self, cbs: list[FloatArray]) -> int:
        d = cbs[0].shape[1]
        if any(c.shape[1] != d for c in cbs):
            raise ParameterError("rvq codebooks must all have the vector dimension")
        return int(d)

    def _work_per_row(self) -> int:
        return self.beam * self.codebook_size

    def _search(self, r: FloatArray, w: FloatArray | None) -> IntArray:
        return rvq_search(r, w, self._codebooks, self.beam)

    def _reconstruct(self, idx: IntArray) -> FloatArray:
        return sum_codewords(self._codebooks, idx)

    def ops_per_vector(self) -> int:
        """Operation count of the search as implemented (see module docstring)."""
        d, k, m_st, b = self.dim, self.codebook_size, self.stages, self.beam
        greedy = m_st * (k * 3 * d + k + d)
        if b <= 1 or m_st == 1:
            return d + greedy
        sel = math.ceil(math.log2(b + 1))
        total, h = d, 1
        for m in range(m_st):
            nxt = 1 if m == m_st - 1 else min(b, h * k)
            total += h * k * (3 * d + sel) + nxt * d
            h = nxt
        return total + greedy + 2 * m_st * d  # + final comparison of the two paths
