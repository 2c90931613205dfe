"""The AVQ beam search's fast paths against the search as first written.

The reference below is the beam search before its speed work (shared first
step, successive minima, the last step over the unused codebook only, sorted
key de-duplication), kept verbatim: the fast search must pick the same
codewords for every input, exact ties included, since the order of tied
hypotheses decides which residuals later steps see.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from codec.quantizers.avq import avq_beam, avq_search
from codec.quantizers.base import FloatArray, IntArray, better_of, sq_norms, weighted_error

_ZOBRIST_SEED = 0x5EED_AD17


def _zobrist_ref(size: int) -> np.ndarray:
    rng = np.random.default_rng(_ZOBRIST_SEED)
    return rng.integers(1, np.iinfo(np.int64).max, size=size, dtype=np.int64)


def _select_ref(
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


def avq_beam_ref(
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
    zob = _zobrist_ref(mk)
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
            sel, err = _select_ref(cand, keys, zob, keep, min(s + 1, h))
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


def avq_search_ref(
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
    greedy = avq_beam_ref(r, w, codebooks, 1)
    if beam <= 1:
        return greedy
    best = avq_beam_ref(r, w, codebooks, beam)
    return better_of(r, w, codebooks, best, greedy)


def _same(r, w, cbs, beam):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for new, ref in ((avq_search, avq_search_ref), (avq_beam, avq_beam_ref)):
            got, want = new(r, w, cbs, beam), ref(r, w, cbs, beam)
            assert got.dtype == want.dtype and np.array_equal(got, want), (new.__name__, beam)


@pytest.mark.parametrize("seed", range(6))
def test_random_shapes(seed):
    rng = np.random.default_rng(seed)
    for _ in range(6):
        m = int(rng.integers(2, 7))
        k = int(rng.choice([2, 3, 8, 16, 64, 128]))
        k = min(k, 1024 // m)
        d, n = int(rng.integers(1, 17)), int(rng.choice([1, 2, 7, 64, 130]))
        cbs = [rng.standard_normal((k, d)) * 0.7**i for i in range(m)]
        r = rng.standard_normal((n, d))
        for w in (None, rng.uniform(0.1, 4.0, (n, d))):
            for beam in (1, 2, 8, 16):
                _same(r, w, cbs, beam)


@pytest.mark.parametrize("seed", range(6))
def test_integer_data_with_exact_ties(seed):
    """Small integers: exact arithmetic, so tied candidates of every kind (the
    same set from two parents, equal errors of different sets)."""
    rng = np.random.default_rng(100 + seed)
    for trial in range(8):
        m, k = int(rng.integers(2, 6)), int(rng.choice([2, 3, 4, 16, 64]))
        d, n, lim = int(rng.integers(1, 9)), int(rng.choice([1, 5, 33, 128])), 1 + trial % 3
        cbs = [rng.integers(-lim, lim + 1, (k, d)).astype(float) for _ in range(m)]
        r = rng.integers(-3 * lim, 3 * lim + 1, (n, d)).astype(float)
        w = None if trial % 3 == 0 else rng.integers(1, 4, (n, d)).astype(float)
        for beam in (1, 2, 4, 8, 16):
            _same(r, w, cbs, beam)


def test_duplicates_zeros_and_extreme_values():
    rng = np.random.default_rng(7)
    m, k, d, n = 4, 16, 6, 40
    cbs = [rng.standard_normal((k, d)) for _ in range(m)]
    cbs[0][3] = cbs[0][5]
    cbs[1][:] = cbs[1][0]  # a constant codebook
    idx = rng.integers(0, k, (n, m))
    r = sum(cbs[i][idx[:, i]] for i in range(m))  # exact codeword sums
    w = rng.uniform(0.5, 2.0, (n, d))
    same_cbs = [cbs[0]] * m  # identical codebooks
    zeros = [np.zeros((k, d)) for _ in range(m)]
    cases = [(r, w, cbs), (r, None, same_cbs), (r, w, zeros), (np.zeros((n, d)), w, cbs)]
    for weights in (np.zeros((n, d)), np.full((n, d), 1e200), np.full((n, d), 1e-300)):
        cases.append((r, weights, cbs))
    big = r.copy()
    big[::3] = 1e160  # errors that overflow to inf
    huge = [c * 1e155 for c in cbs]
    bad = r.copy()
    bad[1, 2], bad[4, 0] = np.inf, np.nan
    cases += [(big, w, cbs), (r, w, huge), (bad, w, cbs)]
    for rr, ww, cc in cases:
        for beam in (1, 4, 8):
            _same(rr, ww, cc, beam)


def test_shipped_codebook_on_dev_like_vectors(speech):
    """The codec's own AVQ (4 x 64, D = 16, beam 8) on LSF vectors of speech."""
    from codec.analysis import lpc_of_frames, lpc_to_lsf
    from codec.registry import load_envelope

    x, _ = speech
    frames = np.lib.stride_tricks.sliding_window_view(x, 480)[::320][:300]
    lsf = lpc_to_lsf(lpc_of_frames(frames * np.hanning(480)[None, :]).a)
    q = load_envelope("avq-4x6").quantizer
    r = lsf - q.mean
    w = np.ones_like(r) / (1.0 + np.arange(16))
    _same(r, w, q.codebooks, q.beam)
