"""Gradient training of codebooks with PyTorch: straight-through (STE) and NSVQ.

This module is imported lazily (only for ``method="ste"`` / ``"nsvq"``) and is
the only place that imports :mod:`torch`.

Common to both methods
    The hard assignment of every minibatch is computed by the variant's own
    numpy search (AVQ beam search, RVQ greedy / M-best, PVQ per sub-vector), so
    training sees exactly the encoder used at inference.  Codebooks are trained
    with Adam in float64; the step size is ``lr`` times the RMS of the
    mean-removed data (so it is scale free) and decays with a cosine schedule
    to ``lr * lr_final``.  Minibatches are drawn from per-epoch permutations.
    Initialisation (``init``): ``"kmeans"`` (default) runs a short greedy
    residual k-means (``init_iters`` Lloyd iterations on at most
    ``init_sample`` vectors): it starts every method from a sensible
    configuration, so a bounded number of steps suffices; ``"data"`` uses random
    training vectors (residuals for later stages); ``"uniform"`` is the small
    uniform initialisation of the NSVQ reference code.  Deterministic for a
    seed: numpy generator for batches, a seeded torch generator for noise,
    deterministic algorithms and one torch thread during training (restored
    afterwards).

STE (VQ-VAE style)
    Without an encoder network the straight-through copy of the gradient
    reaches no parameter; the codebooks learn from the codebook loss.  The
    stages form a straight-through residual chain ``t_1 = x``,
    ``t_{m+1} = t_m - sg(q_m)`` and the loss is
    ``sum_m ||sg(t_m) - q_m||_w^2`` (RVQ as in SoundStream/EnCodec; AVQ in
    codebook order on the beam-search assignment; PVQ: each sub-vector is its
    own stage; VQ: ``||sg(x) - q||_w^2``).  No codebook replacement by default.

NSVQ (Vali & Bäckström 2022; ICASSP 2023 for RVQ/AVQ/PVQ)
    A hard quantization error ``e = y - y^`` (``y^`` from the search) is replaced
    by noise of the same size, ``||e||_w * v / ||v||_w`` with ``v ~ N(0, I)``
    drawn per vector, and the loss is the weighted energy of the substituted
    error.  Norms are taken in each vector's weighted metric, so the
    substitute has exactly the weighted magnitude of the true error; the
    gradient reaches the selected codewords through ``||e||_w``.
    AVQ, PVQ: substitution of the final output, ``x~ = x + ||x - x^||_w v/||v||_w``,
    loss ``||x - x~||_w^2``: every selected codeword receives the gradient of
    the final error (joint training, as in the reference implementation).
    RVQ (and VQ): every stage's quantizer is replaced by noise substitution of
    its residual: stage ``m`` sees the true residual ``r_m = x - sum_{j<m} q_j``
    (differentiable in the earlier codebooks) and contributes
    ``||r_m - q_m||_w^2`` through its substitute, so the loss is the sum of the
    prefix errors.  Compared with the final-sum form this keeps every prefix a
    good quantizer, which is what the greedy / M-best RVQ search needs; it was
    better than both the final-sum form and STE in our synthetic experiments.
    Codebook replacement: every ``replace_every`` steps, the codewords of a
    codebook used less than ``replace_threshold`` times their uniform share
    during the window are moved onto live codewords (drawn in proportion to
    their use) plus a small perturbation (1e-3 of the data RMS), which splits
    busy cells; the donor's Adam state is copied.  Replacement stops after
    ``replace_until`` of the steps so new codewords have time to settle.

Why this schedule: with the short k-means initialisation, 1000 Adam steps of
2048 vectors (about 9 epochs of 220 000 vectors) reach the same error as 2000
steps; the AVQ beam search dominates the cost (about 35-45 s on 2 cores).

Polish (``polish_iters``, default 0 = off): optional k-means / least-squares
rounds after gradient training, applied by the caller; not part of pure NSVQ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .avq import avq_search
from .base import FloatArray, IntArray, TrainOptions, make_progress, nearest
from .kmeans import kmeans, residual_init
from .pvq import pvq_search, split_bounds
from .rvq import rvq_search

Search = Callable[[FloatArray, FloatArray | None, list[FloatArray]], IntArray]


def _search_fn(variant: str, beam: int) -> Search:
    if variant == "avq":
        return lambda r, w, c: avq_search(r, w, c, beam)
    if variant == "pvq":
        return pvq_search
    return lambda r, w, c: rvq_search(r, w, c, beam)  # vq = 1-stage rvq


def initial_codebooks(
    variant: str,
    r: FloatArray,
    w: FloatArray | None,
    *,
    stages: int,
    bits: int,
    split: tuple[int, ...],
    rng: np.random.Generator,
    opts: TrainOptions,
) -> list[FloatArray]:
    """Initial codebooks for gradient training (see module docstring, ``init``).

    Returns
    -------
    list of ndarray, shape (K, d_m)
    """
    k = 1 << bits
    scale = float(np.sqrt(np.mean(r * r))) or 1.0
    dims = list(split) if variant == "pvq" else [r.shape[1]] * stages
    if opts.init == "uniform":
        return [rng.uniform(-scale / k, scale / k, size=(k, d)) for d in dims]
    n_sub = min(r.shape[0], max(opts.init_sample, 4 * k))
    sub = np.sort(rng.choice(r.shape[0], size=n_sub, replace=False))
    rs, ws = r[sub], None if w is None else w[sub]
    o = TrainOptions(
        iters=opts.init_iters if opts.init == "kmeans" else 0,
        init_sample=opts.init_sample,
        tol=opts.tol,
    )
    if variant == "pvq":
        out = []
        for a, b in split_bounds(split):
            wb = None if ws is None else ws[:, a:b]
            init = rs[rng.choice(n_sub, size=k, replace=False), a:b]
            out.append(kmeans(rs[:, a:b], k, wb, rng, o, init=None if o.iters else init))
        return out
    if opts.init == "kmeans":
        return residual_init(rs, ws, stages, k, rng, o)
    out, res = [], rs.copy()
    for _ in range(stages):
        c = res[rng.choice(n_sub, size=k, replace=False)].copy()
        res -= c[nearest(res, c, ws)[0]]
        out.append(c)
    return out


@contextmanager
def _torch_state(seed: int) -> Iterator[torch.Generator]:
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        gen = torch.Generator().manual_seed(seed)
        yield gen
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def replace_dead(
    params: list[torch.nn.Parameter],
    opt: torch.optim.Adam,
    usage: np.ndarray,
    threshold: float,
    eps: float,
    rng: np.random.Generator,
) -> int:
    """Move rarely used codewords onto busy ones; returns the number moved.

    A codeword used less than ``threshold`` times the uniform share (``usage``:
    counts per codebook) is moved onto a live one drawn in proportion to its use,
    plus Gaussian noise of size ``eps`` in the codebook's own dtype; the donor's
    Adam moments are copied. Shared by the codebook trainers and ``recipes.vqvae``.
    """
    moved = 0
    with torch.no_grad():
        for m, p in enumerate(params):
            counts = usage[m]
            k = counts.shape[0]
            dead = np.flatnonzero(counts < threshold * counts.sum() / k)
            live = np.flatnonzero(counts >= max(1.0, threshold * counts.sum() / k))
            if dead.size == 0 or live.size == 0:
                continue
            donors = rng.choice(live, size=dead.size, p=counts[live] / counts[live].sum())
            noise = rng.standard_normal((dead.size, p.shape[1])) * eps
            dt, dn = torch.from_numpy(dead), torch.from_numpy(donors)
            p[dt] = p[dn] + torch.from_numpy(noise).to(p.dtype)
            state = opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][dt] = state[key][dn]
            moved += dead.size
    return moved


def _loss(
    method: str,
    variant: str,
    xt: torch.Tensor,
    wt: torch.Tensor | None,
    q: list[torch.Tensor],
    bounds: list[tuple[int, int]],
    gen: torch.Generator,
) -> torch.Tensor:
    def wsum(e: torch.Tensor, ws: torch.Tensor | None) -> torch.Tensor:
        return (e * e if ws is None else ws * e * e).sum(dim=1)

    def substituted(err_vec: torch.Tensor) -> torch.Tensor:
        # ||err||_w * v / ||v||_w: the noise that replaces the quantization error
        err = torch.sqrt(wsum(err_vec, wt) + 1e-30)
        v = torch.randn(xt.shape, generator=gen, dtype=xt.dtype)
        return (err / torch.sqrt(wsum(v, wt) + 1e-30))[:, None] * v

    if method == "nsvq" and variant in ("rvq", "vq"):
        # every stage's quantizer is replaced by noise substitution of its residual
        total, res = torch.zeros((), dtype=xt.dtype), xt
        for qm in q:
            res = res - qm
            total = total + wsum(substituted(res), wt).mean()
        return total
    if method == "nsvq":
        xh = torch.cat(q, dim=1) if variant == "pvq" else torch.stack(q).sum(dim=0)
        xs = xt + substituted(xt - xh)
        return wsum(xt - xs, wt).mean()
    total = torch.zeros((), dtype=xt.dtype)
    if variant == "pvq":
        for qm, (a, b) in zip(q, bounds, strict=True):
            total = total + wsum(xt[:, a:b] - qm, None if wt is None else wt[:, a:b]).mean()
        return total
    target = xt
    for qm in q:
        total = total + wsum(target - qm, wt).mean()
        target = target - qm.detach()
    return total


def train_gradient(
    variant: str,
    r: FloatArray,
    w: FloatArray | None,
    *,
    method: str,
    stages: int,
    bits: int,
    beam: int,
    split: tuple[int, ...],
    seed: int,
    opts: TrainOptions,
) -> list[FloatArray]:
    """Train codebooks with STE or NSVQ (see module docstring).

    Parameters
    ----------
    variant : {"vq", "rvq", "avq", "pvq"}
    r : ndarray, shape (N, D)
        Mean-removed training vectors.
    w : ndarray, shape (N, D), optional
    method : {"ste", "nsvq"}
    stages, bits : int
    beam : int
        Search width used for the hard assignments.
    split : tuple of int
        PVQ sub-vector sizes.
    seed : int
    opts : TrainOptions

    Returns
    -------
    list of ndarray, shape (K, d_m)
    """
    rng = np.random.default_rng(seed)
    n = r.shape[0]
    cbs = initial_codebooks(
        variant, r, w, stages=stages, bits=bits, split=split, rng=rng, opts=opts
    )
    batch = min(opts.batch_size, n)
    steps = opts.steps if opts.epochs is None else math.ceil(opts.epochs * n / batch)
    if steps == 0:
        return cbs
    k = 1 << bits
    search = _search_fn(variant, beam)
    bounds = split_bounds(split) if variant == "pvq" else []
    scale = float(np.sqrt(np.mean(r * r))) or 1.0
    replace = (method == "nsvq") if opts.replace is None else opts.replace
    replace_stop = int(opts.replace_until * steps)
    with _torch_state(seed) as gen:
        params = [torch.nn.Parameter(torch.tensor(c, dtype=torch.float64)) for c in cbs]
        opt = torch.optim.Adam(params, lr=opts.lr * scale)
        lr_min = opts.lr_final

        def cosine(step: int) -> float:
            return lr_min + (1.0 - lr_min) * 0.5 * (1.0 + math.cos(math.pi * step / steps))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
        usage = np.zeros((len(params), k))
        perm, pos = rng.permutation(n), 0
        bar = make_progress(steps, f"{method} {variant}", opts.progress)
        try:
            for step in range(1, steps + 1):
                if pos + batch > n:
                    perm, pos = rng.permutation(n), 0
                idx = np.sort(perm[pos : pos + batch])
                pos += batch
                rb = r[idx]
                wb = None if w is None else w[idx]
                codes = search(rb, wb, [p.detach().numpy() for p in params])
                for m in range(len(params)):
                    usage[m] += np.bincount(codes[:, m], minlength=k)
                xt = torch.from_numpy(rb)
                wt = None if wb is None else torch.from_numpy(wb)
                ct = torch.from_numpy(codes)
                q = [p[ct[:, m]] for m, p in enumerate(params)]
                loss = _loss(method, variant, xt, wt, q, bounds, gen)
                opt.zero_grad(set_to_none=True)
                torch.autograd.backward(loss)
                opt.step()
                sched.step()
                if step % opts.replace_every == 0:
                    if replace and step <= replace_stop:
                        replace_dead(params, opt, usage, opts.replace_threshold, 1e-3 * scale, rng)
                    usage[:] = 0
                bar.update(1)
        finally:
            bar.close()
        return [p.detach().numpy().copy() for p in params]
