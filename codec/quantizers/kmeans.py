"""Numpy k-means / LBG training for every quantizer variant.

* Weighted Lloyd iterations: assignment by weighted distance, per-dimension
  weighted centroids ``c_kd = sum_n w_nd x_nd / sum_n w_nd`` over the cluster.
* Initialisation: k-means++ (weighted D^2 sampling) on a random subsample of at
  most ``max(init_sample, 4K)`` vectors; for ``K > 1024`` distinct random
  training vectors (k-means++ would cost ``O(N K^2)``).
* Empty clusters are re-seeded at the vectors with the largest current error.
* VQ: direct.  PVQ: one k-means per sub-space.
* RVQ: k-means stage by stage on the residuals, then joint refinement rounds:
  re-encode with the full RVQ search, then update each stage's codebook as the
  weighted centroids of its targets ``x - sum_{j != m} c_j``.
* AVQ: initialised like RVQ (greedy residual k-means), then rounds of
  beam-search encoding and a joint weighted least-squares update of all
  codebooks (per output dimension an ``MK x MK`` system with a small ridge
  pulling towards the previous codebooks, which also keeps unused codewords).

Refinement (RVQ/AVQ): on large data the ``refine_iters`` rounds use fresh random
subsets of ``refine_sample`` vectors (stochastic alternation: the beam search
over all data is the expensive part and the alternation converges slowly, so
many cheap rounds beat a few full ones), then ``final_iters`` full-data rounds.
The best codebooks by full-data training error (initial ones included) are
returned, so refinement never makes the training error worse.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .avq import avq_search
from .base import (
    FloatArray,
    IntArray,
    ProgressBar,
    TrainOptions,
    chunk_rows,
    nearest,
    sum_codewords,
    weighted_error,
    weighted_sqdist,
)
from .pvq import split_bounds
from .rvq import rvq_search

SearchFn = Callable[[FloatArray, FloatArray | None, list[FloatArray], int], IntArray]


def _chunked_search(
    search: SearchFn, r: FloatArray, w: FloatArray | None, cbs: list[FloatArray], beam: int
) -> IntArray:
    rows = chunk_rows(beam * len(cbs) * cbs[0].shape[0])
    out = np.empty((r.shape[0], len(cbs)), dtype=np.int64)
    for s in range(0, r.shape[0], rows):
        e = min(r.shape[0], s + rows)
        out[s:e] = search(r[s:e], None if w is None else w[s:e], cbs, beam)
    return out


def kmeanspp(
    x: FloatArray, k: int, w: FloatArray | None, rng: np.random.Generator, sample: int = 20000
) -> FloatArray:
    """Weighted k-means++ seeding (random distinct vectors when ``k > 1024``).

    Parameters
    ----------
    x : ndarray, shape (N, d)
    k : int
    w : ndarray, shape (N, d), optional
    rng : numpy Generator
    sample : int

    Returns
    -------
    ndarray, shape (k, d)
    """
    n = x.shape[0]
    if k > 1024:
        picked: FloatArray = x[rng.choice(n, size=k, replace=False)].copy()
        return picked
    m = min(n, max(sample, 4 * k))
    sub = rng.choice(n, size=m, replace=False) if m < n else np.arange(n)
    xs = x[sub]
    ws = None if w is None else w[sub]
    centers = np.empty((k, x.shape[1]))
    centers[0] = xs[rng.integers(m)]
    d2 = weighted_sqdist(xs, centers[:1], ws)[:, 0]
    for i in range(1, k):
        total = d2.sum()
        j = rng.choice(m, p=d2 / total) if total > 0 else rng.integers(m)
        centers[i] = xs[j]
        d2 = np.minimum(d2, weighted_sqdist(xs, centers[i : i + 1], ws)[:, 0])
    return centers


def centroids(
    x: FloatArray, w: FloatArray | None, idx: IntArray, old: FloatArray
) -> tuple[FloatArray, np.ndarray]:
    """Weighted per-dimension centroids; empty clusters keep their old codeword.

    Returns
    -------
    c : ndarray, shape (K, d)
    empty : ndarray of bool, shape (K,)
    """
    k, d = old.shape
    flat = (idx[:, None] * d + np.arange(d)[None, :]).ravel()
    counts = np.bincount(idx, minlength=k).astype(np.float64)
    wx = x if w is None else w * x
    num = np.bincount(flat, weights=wx.ravel(), minlength=k * d).reshape(k, d)
    if w is None:
        den = np.repeat(counts[:, None], d, axis=1)
    else:
        den = np.bincount(flat, weights=w.ravel(), minlength=k * d).reshape(k, d).astype(float)
    empty = counts == 0
    c = np.where(empty[:, None], old, num / np.where(den > 0, den, 1.0))
    return c, empty


def reseed(c: FloatArray, empty: np.ndarray, targets: FloatArray, err: FloatArray) -> FloatArray:
    """Move empty codewords onto the targets of the vectors with the largest error."""
    n_empty = int(empty.sum())
    if n_empty == 0 or targets.shape[0] == 0:
        return c
    n_take = min(n_empty, targets.shape[0])
    worst = np.argpartition(-err, n_take - 1)[:n_take] if n_take < len(err) else np.arange(n_take)
    worst = worst[np.argsort(-err[worst], kind="stable")]
    c = c.copy()
    c[np.flatnonzero(empty)[:n_take]] = targets[worst]
    return c


def kmeans(
    x: FloatArray,
    k: int,
    w: FloatArray | None,
    rng: np.random.Generator,
    opts: TrainOptions,
    init: FloatArray | None = None,
    bar: ProgressBar | None = None,
) -> FloatArray:
    """Weighted k-means (Lloyd/LBG) with k-means++ seeding and empty-cluster repair.

    Parameters
    ----------
    x : ndarray, shape (N, d)
    k : int
    w : ndarray, shape (N, d), optional
    rng : numpy Generator
    opts : TrainOptions
    init : ndarray, shape (k, d), optional
        Initial codebook (default: k-means++).
    bar : progress bar, optional
        Advanced by one per iteration.

    Returns
    -------
    ndarray, shape (k, d)
    """
    c = kmeanspp(x, k, w, rng, opts.init_sample) if init is None else init.copy()
    prev = np.inf
    for _ in range(opts.iters):
        idx, dist = nearest(x, c, w)
        total = float(dist.sum())
        if bar is not None:
            bar.update(1)
        new, empty = centroids(x, w, idx, c)
        c = reseed(new, empty, x, dist)
        if np.isfinite(prev) and prev - total <= opts.tol * prev and not empty.any():
            break
        prev = total
    return c


def residual_init(
    r: FloatArray,
    w: FloatArray | None,
    stages: int,
    k: int,
    rng: np.random.Generator,
    opts: TrainOptions,
    bar: ProgressBar | None = None,
) -> list[FloatArray]:
    """Greedy stage-by-stage k-means on the residuals (RVQ training / AVQ init)."""
    res = r.copy()
    cbs: list[FloatArray] = []
    for _ in range(stages):
        c = kmeans(res, k, w, rng, opts, bar=bar)
        idx, _ = nearest(res, c, w)
        res -= c[idx]
        cbs.append(c)
    return cbs


def rvq_refine_step(
    r: FloatArray, w: FloatArray | None, cbs: list[FloatArray], codes: IntArray
) -> list[FloatArray]:
    """Update every stage given the others (Gauss-Seidel), codes fixed."""
    cbs = [c.copy() for c in cbs]
    recon = sum_codewords(cbs, codes)
    for m, c in enumerate(cbs):
        target = r - recon + c[codes[:, m]]
        new, empty = centroids(target, w, codes[:, m], c)
        err = weighted_error(target, new[codes[:, m]], w)
        new = reseed(new, empty, target, err)
        recon += new[codes[:, m]] - c[codes[:, m]]
        cbs[m] = new
    return cbs


def avq_lstsq_step(
    r: FloatArray, w: FloatArray | None, cbs: list[FloatArray], codes: IntArray, ridge: float
) -> list[FloatArray]:
    """Joint weighted least-squares update of all AVQ codebooks, codes fixed.

    Per output dimension ``d`` solves ``(B' W_d B + lam I) C_d = B' W_d r_d + lam C_old_d``
    with ``B`` the ``(N, MK)`` 0/1 selection matrix.
    """
    m_st, (k, d) = len(cbs), cbs[0].shape
    mk = m_st * k
    g = codes + (np.arange(m_st) * k)[None, :]
    pairs = (g[:, :, None] * mk + g[:, None, :]).ravel()
    gflat = g.ravel()
    old = np.concatenate(cbs, axis=0)  # (MK, d)
    a = np.empty((d, mk, mk))
    b = np.empty((d, mk))
    if w is None:
        a[:] = np.bincount(pairs, minlength=mk * mk).reshape(mk, mk)
    for j in range(d):
        if w is not None:
            pw = np.repeat(w[:, j], m_st * m_st)
            a[j] = np.bincount(pairs, weights=pw, minlength=mk * mk).reshape(mk, mk)
            rhs = np.repeat(w[:, j] * r[:, j], m_st)
        else:
            rhs = np.repeat(r[:, j], m_st)
        b[j] = np.bincount(gflat, weights=rhs, minlength=mk)
    diag = np.einsum("jii->ji", a)
    lam = ridge * np.maximum(diag.mean(axis=1), 1e-12)  # (d,)
    a[:, np.arange(mk), np.arange(mk)] += lam[:, None]
    b += lam[:, None] * old.T
    sol = np.linalg.solve(a, b[:, :, None])[:, :, 0]  # (d, MK)
    new = sol.T
    return [new[m * k : (m + 1) * k].copy() for m in range(m_st)]


Update = Callable[[FloatArray, FloatArray | None, list[FloatArray], IntArray], list[FloatArray]]


def _avq_update(ridge: float) -> Update:
    def update(
        r: FloatArray, w: FloatArray | None, cbs: list[FloatArray], codes: IntArray
    ) -> list[FloatArray]:
        return avq_lstsq_step(r, w, cbs, codes, ridge)

    return update


def _refine(
    r: FloatArray,
    w: FloatArray | None,
    cbs: list[FloatArray],
    beam: int,
    opts: TrainOptions,
    search: SearchFn,
    update: Update,
    rng: np.random.Generator,
    bar: ProgressBar | None,
) -> list[FloatArray]:
    """Alternate encoding and codebook updates; return the best codebooks seen.

    When ``N > refine_sample`` the ``refine_iters`` rounds use fresh random
    subsets of ``refine_sample`` vectors (stochastic alternation, much cheaper
    than full passes for the AVQ beam search), followed by ``final_iters``
    full-data rounds; otherwise all ``refine_iters`` rounds use the full data.
    The full-data error decides which codebooks are returned (initial ones
    included), so refinement never increases the training error.
    """
    n = r.shape[0]

    def full_error(c: list[FloatArray]) -> tuple[float, IntArray]:
        codes = _chunked_search(search, r, w, c, beam)
        return float(weighted_error(r, sum_codewords(c, codes), w).sum()), codes

    best, (best_err, codes) = cbs, full_error(cbs)
    full_rounds = opts.refine_iters
    if n > opts.refine_sample and opts.refine_iters > 0:
        full_rounds = opts.final_iters
        for _ in range(opts.refine_iters):
            idx = np.sort(rng.choice(n, size=opts.refine_sample, replace=False))
            rs, ws = r[idx], None if w is None else w[idx]
            cbs = update(rs, ws, cbs, _chunked_search(search, rs, ws, cbs, beam))
            if bar is not None:
                bar.update(1)
        err, codes = full_error(cbs)
        if err < best_err:
            best, best_err = cbs, err
    for _ in range(full_rounds):
        cbs = update(r, w, cbs, codes)
        err, codes = full_error(cbs)
        if bar is not None:
            bar.update(1)
        if err >= best_err:
            break
        gain = best_err - err
        best, best_err = cbs, err
        if gain <= opts.tol * err:
            break
    return best


def train_kmeans(
    variant: str,
    r: FloatArray,
    w: FloatArray | None,
    *,
    stages: int,
    bits: int,
    beam: int,
    split: tuple[int, ...],
    rng: np.random.Generator,
    opts: TrainOptions,
    bar: ProgressBar | None = None,
) -> list[FloatArray]:
    """Train codebooks of one variant on mean-removed data.

    Parameters
    ----------
    variant : {"vq", "rvq", "avq", "pvq"}
    r : ndarray, shape (N, D)
        Mean-removed training vectors.
    w : ndarray, shape (N, D), optional
    stages, bits : int
        Number of codebooks and bits per codebook.
    beam : int
        Search width used while refining (RVQ M-best / AVQ beam).
    split : tuple of int
        PVQ sub-vector sizes.
    rng : numpy Generator
    opts : TrainOptions
    bar : progress bar, optional

    Returns
    -------
    list of ndarray, shape (K, d_m)
    """
    k = 1 << bits
    if variant == "vq":
        return [kmeans(r, k, w, rng, opts, bar=bar)]
    if variant == "pvq":
        return [
            kmeans(r[:, a:b], k, None if w is None else w[:, a:b], rng, opts, bar=bar)
            for a, b in split_bounds(split)
        ]
    cbs = residual_init(r, w, stages, k, rng, opts, bar)
    if variant == "rvq":
        return _refine(r, w, cbs, beam, opts, rvq_search, rvq_refine_step, rng, bar)
    return _refine(r, w, cbs, beam, opts, avq_search, _avq_update(opts.ridge), rng, bar)


def polish(
    variant: str,
    r: FloatArray,
    w: FloatArray | None,
    cbs: list[FloatArray],
    *,
    beam: int,
    rounds: int,
    opts: TrainOptions,
) -> list[FloatArray]:
    """A few Lloyd / joint-refinement rounds starting from given codebooks."""
    if rounds <= 0:
        return cbs
    o = opts._replace(iters=rounds, refine_iters=rounds, refine_sample=1 << 62, tol=0.0)
    rng = np.random.default_rng(0)
    if variant == "vq":
        return [kmeans(r, cbs[0].shape[0], w, rng, o, init=cbs[0])]
    if variant == "pvq":
        bounds = split_bounds(tuple(c.shape[1] for c in cbs))
        return [
            kmeans(r[:, a:b], c.shape[0], None if w is None else w[:, a:b], rng, o, init=c)
            for c, (a, b) in zip(cbs, bounds, strict=True)
        ]
    if variant == "rvq":
        return _refine(r, w, cbs, beam, o, rvq_search, rvq_refine_step, rng, None)
    return _refine(r, w, cbs, beam, o, avq_search, _avq_update(o.ridge), rng, None)
