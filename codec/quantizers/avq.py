"""Additive vector quantizer with beam-search encoding.

``M`` full-dimensional codebooks; the reconstruction is the sum of one
codeword from every codebook.  Encoding is a beam search over the union of the
codebooks not yet used: starting from the empty sum, each of ``M`` steps
expands every hypothesis by every codeword of every unused codebook and keeps
the ``beam`` best distinct hypotheses by the weighted error of the partial sum.
Hypotheses reaching the same set of codewords in a different order are merged
(Zobrist keys), so the beam holds distinct partial sums.  The greedy search
(``beam=1``) is run as well and the better result is kept per vector, so a
wider beam is never worse than greedy; the two searches share the first step's
distances (the same for both).  Indices are returned in codebook order.

Operation count per vector (``ops_per_vector``): ``3D`` per weighted distance,
``ceil(log2(B + 1))`` compares per candidate for the best-``B`` selection,
``D`` per residual update, with ``h_s`` hypotheses entering step ``s``
(``h_0 = 1``, then ``min(B, C(M, s) K**s)``)::

    D + sum_s [h_s (M - s) K (3D + ceil(log2(B + 1))) + h_{s+1} D]
      (+ the same sum with B = 1 for the greedy path, less its first step's
       M K 3D shared distances, and 2 M D for the final comparison when B > 1)
"""

from __future__ import annotations

import functools
import math
import threading
from typing import NamedTuple

import numpy as np

from codec.errors import ParameterError

from .base import (
    FloatArray,
    IntArray,
    Quantizer,
    better_of,
    smallest_sorted,
    sq_norms,
    sum_codewords,
    weighted_error,
)

_ZOBRIST_SEED = 0x5EED_AD17
# |g| and |c2| below this make g + c2 finite, so that the candidates of a used
# codebook are exactly +inf (see _argmin_last)
_FINITE_BOUND = 1e300
_FEW = 4096  # (t + 1) * T up to which t + 1 successive minima beat smallest_sorted
# largest product buffer (values) a thread keeps between searches: an encode
# chunk's (2 MB), not a training chunk's.  Where malloc hands freed blocks back
# to the system (glibc's default, not the CLI's), a fresh buffer per search is
# paged in again every time: Quantizer.encode of many rows takes a third less
# time with the kept one
_KEEP_BUFFER = 1 << 19


@functools.cache
def _zobrist(size: int) -> np.ndarray:
    """Keys of ``size`` codewords (cached: making the generator costs more than a step)."""
    rng = np.random.default_rng(_ZOBRIST_SEED)
    keys = rng.integers(1, np.iinfo(np.int64).max, size=size, dtype=np.int64)
    keys.flags.writeable = False
    return keys


def _smallest_few(cand: FloatArray, t: int) -> IntArray:
    """:func:`~codec.quantizers.base.smallest_sorted` by ``t + 1`` successive minima.

    Where the ``t + 1`` smallest values of a row are distinct, the positions of
    the ``t`` smallest in increasing order are the result of any selection
    algorithm; rows with a tie among them (or NaN) take ``smallest_sorted``,
    which gives their tie order.  ``cand`` (C-contiguous) is changed meanwhile
    and restored: no copy is made.
    """
    n, total = cand.shape
    flat = cand.reshape(-1)
    off = np.arange(n) * total
    pos = np.empty((t + 1, n), dtype=np.int64)
    vals = np.empty((t + 1, n))
    for i in range(t + 1):
        best = np.argmin(cand, axis=1)
        best += off
        pos[i] = best
        vals[i] = flat[best]
        flat[best] = np.inf
    for i in range(t, -1, -1):  # last first: a value taken twice was inf the second time
        flat[pos[i]] = vals[i]
    out: IntArray = pos[:t].T - off[:, None]
    ok = (vals[1:] > vals[:-1]).all(axis=0)
    if not ok.all():
        slow = np.flatnonzero(~ok)
        out[slow] = smallest_sorted(cand[slow], t)
    return out


def _select(
    cand: FloatArray, keys: np.ndarray, zob: np.ndarray, keep: int, max_dup: int
) -> tuple[np.ndarray, FloatArray]:
    """Best ``keep`` distinct candidates per row.

    Parameters
    ----------
    cand : ndarray, shape (n, h * MK)
        Candidate errors (``inf`` for invalid candidates), C-contiguous.
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

    Notes
    -----
    The ``t = keep * max_dup`` best candidates are those of ``argpartition``
    ordered by a stable ``argsort`` of their values: ties keep the order
    ``argpartition`` gives them.  In a beam, exact ties are common (a set
    reached from two parents often has the same error to the last bit, though
    not the same residual), so the selection needs that order; only when
    ``max_dup == 1`` (no two candidates are the same set) does a faster exact
    selection stand in.
    """
    n, total = cand.shape
    t = min(total, keep * max_dup)
    rows = np.arange(n)[:, None]
    off = rows * total
    if max_dup == 1 and t < total:
        if (t + 1) * total <= _FEW:
            pos = _smallest_few(cand, t)
        else:
            pos = smallest_sorted(cand, t)
        return pos, cand.reshape(-1)[pos + off]
    if t < total:
        pos = np.argpartition(cand, t - 1, axis=1)[:, :t]
    else:
        pos = np.broadcast_to(np.arange(total), (n, total))
    pos = pos + off  # flat positions from here on
    vals = cand.reshape(-1)[pos]
    order = np.argsort(vals, axis=1, kind="stable")
    order += rows * t
    pos = pos.reshape(-1)[order]
    vals = vals.reshape(-1)[order]
    if max_dup == 1:
        return pos[:, :keep] - off, vals[:, :keep]
    mk, h = zob.shape[0], keys.shape[1]
    loc = pos - off
    key = keys.reshape(-1)[loc // mk + rows * h] ^ zob[loc % mk]
    # a duplicate has the key of an earlier (better) candidate: after a stable
    # sort of the keys, each but the first of a run of equal keys
    korder = np.argsort(key, axis=1, kind="stable")
    korder += rows * t
    ksorted = key.reshape(-1)[korder]
    bad = ~np.isfinite(vals)
    bad.reshape(-1)[korder[:, 1:]] |= ksorted[:, 1:] == ksorted[:, :-1]
    good = ~bad
    good &= np.cumsum(good, axis=1) <= keep
    if np.count_nonzero(good) == n * keep:  # keep good ones in every row: the first of them
        order = np.flatnonzero(good).reshape(n, keep)
    else:  # the good ones, then the bad ones, in order
        order = np.argsort(bad, axis=1, kind="stable")[:, :keep]
        order += rows * t
    pos = pos.reshape(-1)[order] - off
    vals = vals.reshape(-1)[order]
    vals[bad.reshape(-1)[order]] = np.inf
    return pos, vals


class _Tables(NamedTuple):
    """Per-call constants of the search, shared by the greedy and the beam pass."""

    flat: FloatArray  # (MK, D) the codewords
    flat_t: FloatArray  # (D, MK) -2 times their transpose
    c2: FloatArray  # (1 or n, 1, M, K) weighted squared norms
    zob: np.ndarray  # (MK,) codeword keys
    t_max: float  # max |flat_t| (nan if one is nan)
    c2_max: float  # max |c2| (nan if one is nan)


def _tables(codebooks: list[FloatArray], w: FloatArray | None) -> _Tables:
    m_st, k = len(codebooks), codebooks[0].shape[0]
    flat = np.concatenate(codebooks, axis=0)
    flat_t = -2.0 * flat.T
    c2 = sq_norms(flat, w).reshape(-1, 1, m_st, k)
    t_max = float(np.abs(flat_t).max(initial=0.0))
    c2_max = float(np.abs(c2).max(initial=0.0))
    return _Tables(flat, flat_t, c2, _zobrist(m_st * k), t_max, c2_max)


def _first_step(r: FloatArray, w: FloatArray | None, tab: _Tables) -> tuple[FloatArray, FloatArray]:
    """Candidate errors of the first step, shape (n, MK), and the error of the empty sum."""
    n, d = r.shape
    res = r[:, None, :].copy()
    wr = res if w is None else w[:, None, :] * res
    cand = wr.reshape(n, d) @ tab.flat_t
    cand += tab.c2.reshape(-1, cand.shape[1])
    err = weighted_error(r, np.zeros_like(r), w)[:, None]
    cand += err  # no codebook is used yet
    return cand, err


def _argmin_full(
    g: FloatArray, tab: _Tables, base: FloatArray, rows: np.ndarray
) -> tuple[np.ndarray, FloatArray]:
    """``argmin`` of each row of ``g + c2 + base`` (shape (n, h, M, K)) and the minima."""
    n = g.shape[0]
    c2 = tab.c2 if tab.c2.shape[0] == 1 else tab.c2[rows]
    cand = ((g + c2) + base[:, :, :, None]).reshape(n, -1)
    best = np.argmin(cand, axis=1)
    return best, cand[np.arange(n), best]


def _argmin_last(
    g: FloatArray,
    tab: _Tables,
    base: FloatArray,
    used: np.ndarray,
    err: FloatArray,
    wr: FloatArray,
) -> tuple[np.ndarray, FloatArray]:
    """:func:`_argmin_full` of the last step, from each hypothesis' unused codebook alone.

    A hypothesis of finite error came from finite candidates only, so it uses
    all codebooks but one.  That codebook's candidates are formed alone (the
    same sums in the same order, so the same values) and keep their order in
    the row.  The others are ``g + c2 + inf``, exactly ``+inf`` when ``g + c2``
    is finite, which the bounds ``|g| <= D max|wr| max|flat_t|`` and ``|c2|``
    guarantee.  So the first minimum of a row is the same one unless it is
    ``+inf`` (the first ``+inf`` may lie in a used codebook): those rows, and a
    step with an infinite error or a failed bound, take the full path.
    """
    n, h, m_st, k = g.shape
    rows = np.arange(n)
    g_max = wr.shape[-1] * float(np.abs(wr).max(initial=0.0)) * tab.t_max
    if not (g_max < _FINITE_BOUND and tab.c2_max < _FINITE_BOUND) or not np.isfinite(err).all():
        return _argmin_full(g, tab, base, rows)
    free = np.argmin(used, axis=2)  # (n, h) the unused codebook
    blocks = (np.arange(n * h) * m_st).reshape(n, h) + free
    cand = np.take(g.reshape(-1, k), blocks.reshape(-1), axis=0).reshape(n, h, k)
    c2_blocks = free if tab.c2.shape[0] == 1 else free + rows[:, None] * m_st
    cand += np.take(tab.c2.reshape(-1, k), c2_blocks.reshape(-1), axis=0).reshape(n, h, k)
    cand += err[:, :, None]  # the base of an unused codebook
    cand = cand.reshape(n, h * k)
    best = np.argmin(cand, axis=1)
    val = cand[rows, best]
    parent = best // k
    sel = parent * (m_st * k) + free[rows, parent] * k + best % k
    slow = np.flatnonzero(val == np.inf)
    if slow.size:
        sel[slow], val[slow] = _argmin_full(g[slow], tab, base[slow], slow)
    return sel, val


def _keep(m_st: int, k: int, beam: int, s: int) -> int:
    """Hypotheses kept by step ``s`` (1 at the last step)."""
    return 1 if s == m_st - 1 else min(beam, math.comb(m_st, s + 1) * k ** (s + 1))


_WORK = threading.local()


def _buffer(n: int, codebooks: list[FloatArray], beam: int) -> FloatArray:
    """Room for the products of ``n`` rows' hypotheses, shape (>= n h, MK), per thread."""
    m_st, k = len(codebooks), codebooks[0].shape[0]
    size = n * max(_keep(m_st, k, beam, s) for s in range(m_st)) * m_st * k
    buf: FloatArray | None = getattr(_WORK, "buf", None)
    if buf is None or buf.size < size:
        buf = np.empty(size)
        if size <= _KEEP_BUFFER:
            _WORK.buf = buf
    return buf[:size].reshape(-1, m_st * k)


def _beam_pass(
    r: FloatArray,
    w: FloatArray | None,
    tab: _Tables,
    beam: int,
    first: tuple[FloatArray, FloatArray],
    buf: FloatArray,
) -> IntArray:
    """:func:`avq_beam` given the tables, the first step and a product buffer.

    Every step forms its candidate errors as ``(wr @ flat_t + c2) + base``, the
    same BLAS product of the same operands and the same sums in the same order
    at every step, so the values are the same to the last bit whatever else
    changes; the selections are exact (:func:`_select`, :func:`_argmin_last`);
    and the codes are read off the chosen hypothesis' path at the end.
    """
    n, d = r.shape
    m_st, mk = tab.c2.shape[2], tab.flat.shape[0]
    k = mk // m_st
    rows = np.arange(n)[:, None]
    cand, err = first
    res = r[:, None, :]
    wr = res
    keys = np.zeros((n, 1), dtype=np.int64)
    used = np.zeros((n, 1, m_st), dtype=bool)
    path: list[tuple[np.ndarray, np.ndarray]] = []  # (parent, codeword) of each step
    for s in range(m_st):
        h = res.shape[1]
        last = s == m_st - 1
        keep = _keep(m_st, k, beam, s)
        if s > 0:
            # the same product as wr @ flat_t, written into the buffer
            g = np.matmul(wr.reshape(n * h, d), tab.flat_t, out=buf[: n * h])
            g = g.reshape(n, h, m_st, k)
            base = np.where(used, np.inf, err[:, :, None])  # (n, h, M)
            if last:
                best, _ = _argmin_last(g, tab, base, used, err, wr)
                path.append((best[:, None] // mk, best[:, None] % mk))
                break
            g += tab.c2
            g += base[:, :, :, None]
            cand = g.reshape(n, h * mk)
        if keep == 1:
            best = np.argmin(cand, axis=1)
            sel, err = best[:, None], cand[rows[:, 0], best][:, None]
        else:
            sel, err = _select(cand, keys, tab.zob, keep, min(s + 1, h))
        parent, j = sel // mk, sel % mk
        path.append((parent, j))
        if last:
            break
        jf = j.reshape(-1)
        if h == keep == 1:  # the greedy pass (no keys needed): one hypothesis, its own parent
            used[rows[:, 0], 0, jf // k] = True
            res = res - np.take(tab.flat, jf, axis=0)[:, None, :]
        else:
            # hypotheses' rows by flat index: np.take of whole rows is the cheapest gather
            src = (parent + rows * h).reshape(-1)
            used = np.take(used.reshape(n * h, m_st), src, axis=0)
            used[np.arange(n * keep), jf // k] = True
            used = used.reshape(n, keep, m_st)
            keys = np.take(keys.reshape(-1), src).reshape(n, keep) ^ tab.zob[j]
            res = np.take(res.reshape(n * h, d), src, axis=0)
            res -= np.take(tab.flat, jf, axis=0)
            res = res.reshape(n, keep, d)
        wr = res if w is None else w[:, None, :] * res
        exact = (wr * res).sum(axis=2)  # w res res, as the weighted error
        err = np.where(np.isfinite(err), exact, np.inf)
    # the codes along the chosen hypothesis' ancestry, first step first (a later
    # step overwrites an earlier one's codebook, as in a copied code array)
    r0, slot = rows[:, 0], np.zeros(n, dtype=np.int64)
    chosen = []
    for parent, j in reversed(path):
        chosen.append(j[r0, slot])
        slot = parent[r0, slot]
    codes = np.full((n, m_st), -1, dtype=np.int64)
    for jj in reversed(chosen):
        codes[r0, jj // k] = jj % k
    return codes


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
    tab = _tables(codebooks, w)
    buf = _buffer(r.shape[0], codebooks, beam)
    return _beam_pass(r, w, tab, beam, _first_step(r, w, tab), buf)


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
    tab = _tables(codebooks, w)
    first = _first_step(r, w, tab)  # the same for both passes
    buf = _buffer(r.shape[0], codebooks, beam)
    greedy = _beam_pass(r, w, tab, 1, first, buf)
    if beam <= 1:
        return greedy
    best = _beam_pass(r, w, tab, beam, first, buf)
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
        d, k, m_st = self.dim, self.codebook_size, self.stages
        total = d + self._search_ops(1)
        if self.beam > 1:  # the greedy path reuses the first step's distances
            total += self._search_ops(self.beam) - m_st * k * 3 * d + 2 * m_st * d
        return total
