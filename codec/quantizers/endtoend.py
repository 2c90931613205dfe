"""End-to-end training of a predictive quantizer: predictor, transform and codebooks together.

Imported lazily (it imports :mod:`torch`); the result is a
:class:`~codec.quantizers.predictive.PredictiveQuantizer` whose inference is numpy.

Model (see :mod:`codec.quantizers.predictive`): ``u = z - A s + f(z, s)``,
``u^ = Q(u)``, ``z^ = A s + u^ + g(u^, s)`` with the prediction matrix ``A``
(``D x D``), optional residual networks ``f``, ``g`` (``hidden`` tanh units,
output layers start at zero) and the codebooks of ``Q`` (any variant).  Every
parameter learns from the weighted LSF distance ``||z - z^||_w^2`` (LSF
inverse-spacing weights), which reaches the upstream parameters (``A``,
``f``) only through the quantizer:

STE (VQ-VAE)
    ``u^ = u + sg(q - u)``; loss ``||z - z^||_w^2 + codebook loss + beta
    ||u - sg(q)||_w^2`` (``beta`` = 0.25, as in VQ-VAE; the codebook loss is
    the library's STE loss on the quantizer input ``sg(u)``).
NSVQ
    ``u^ = u + ||u - q||_w v / ||v||_w``, ``v ~ N(0, I)``; loss ``||z - z^||_w^2``
    alone (codewords and upstream parameters learn through ``||u - q||_w``);
    unused codewords are replaced as in the library's NSVQ.

Closed loop, truncated to one frame: the state ``s`` of every training frame
comes from a numpy run of the current model over the training streams
(:func:`~codec.quantizers.predictive.trace`), refreshed ``rounds`` times; within a
round the states are inputs (no back-propagation through time).  Hard
assignments come from the variant's own numpy search, as in
:mod:`codec.quantizers.gradient`.  Both methods start from the same point (the
fitted open-loop matrix, the library's short k-means codebook initialisation
on the open-loop targets, zero transforms) and take the same steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from codec.errors import ParameterError

from .base import FloatArray, IntArray, TrainOptions, check_vectors, check_weights
from .gradient import _search_fn, _torch_state, initial_codebooks, replace_dead
from .predictive import (
    KINDS,
    PredictiveQuantizer,
    fit_matrix,
    open_loop_states,
    trace,
)
from .pvq import check_split, split_bounds

__all__ = ["Params", "forward", "train_end_to_end"]

Params = dict[str, torch.Tensor]


def _mlp(a: torch.Tensor, u: torch.Tensor, c: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.tanh(a @ u.T + c) @ v.T


def encoder_input(p: Params, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The quantizer input ``u = z - A s + f(z, s)``."""
    u = z - s @ p["matrix"].T
    if "enc_U" in p:
        u = u + _mlp(torch.cat([z, s], dim=1), p["enc_U"], p["enc_c"], p["enc_V"])
    return u


def decoder_output(p: Params, uh: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The decoded mean-removed vector ``z^ = A s + u^ + g(u^, s)``."""
    zh = s @ p["matrix"].T + uh
    if "dec_U" in p:
        zh = zh + _mlp(torch.cat([uh, s], dim=1), p["dec_U"], p["dec_c"], p["dec_V"])
    return zh


def forward(
    p: Params, codebooks: list[torch.Tensor], variant: str, z: torch.Tensor, s: torch.Tensor,
    codes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Torch inference for given codes: ``(u, z^)`` (what the numpy model computes)."""
    u = encoder_input(p, z, s)
    q = [c[codes[:, m]] for m, c in enumerate(codebooks)]
    uh = torch.cat(q, dim=1) if variant == "pvq" else torch.stack(q).sum(dim=0)
    return u, decoder_output(p, uh, s)


def _wsum(e: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return (e * e if w is None else w * e * e).sum(dim=1)


def train_end_to_end(
    x: ArrayLike,
    offsets: ArrayLike | None = None,
    *,
    rows: ArrayLike | None = None,
    variant: str = "avq",
    stages: int = 4,
    bits: int = 4,
    method: str = "nsvq",
    weights: ArrayLike | None = None,
    seed: int = 0,
    kind: str = "ar",
    hidden: int = 0,
    rounds: int = 4,
    steps: int = 250,
    batch_size: int = 2048,
    lr: float = 0.01,
    lr_net: float = 1e-3,
    beta: float = 0.25,
    beam: int | None = None,
    split: tuple[int, ...] | None = None,
) -> PredictiveQuantizer:
    """Train predictor matrix, optional transform and codebooks jointly.

    Parameters
    ----------
    x, offsets, rows, variant, stages, bits, weights, seed, kind :
        As for :func:`~codec.quantizers.predictive.train_predictive`.
    method : {"ste", "nsvq"}
    hidden : int
        Hidden units of each transform network; 0 = no transform (matrix only).
    rounds, steps : int
        Closed-loop state refreshes, Adam steps per round.
    lr : float
        Codebook step size relative to the RMS of the open-loop targets.
    lr_net : float
        Step size of the matrix and the networks.
    beta : float
        STE commitment weight.
    beam, split :
        Search width (variant default) and PVQ split.
    """
    from . import _CLASSES

    if method not in ("ste", "nsvq"):
        raise ParameterError(f"end-to-end training needs method 'ste' or 'nsvq', got {method!r}")
    if kind not in KINDS:
        raise ParameterError(f"unknown predictor kind {kind!r}; expected one of {KINDS}")
    if variant not in _CLASSES:
        raise ParameterError(f"unknown variant {variant!r}")
    if hidden < 0 or rounds < 1 or steps < 0:
        raise ParameterError("hidden must be >= 0, rounds >= 1 and steps >= 0")
    xv = check_vectors(x)
    n, d = xv.shape
    o = PredictiveQuantizer._offsets(n, offsets)
    w = check_weights(weights, n, d)
    sel = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    cls = _CLASSES[variant]
    beam = cls.default_beam if beam is None else beam
    sp = check_split(split, d, stages) if variant == "pvq" else ()
    bounds = split_bounds(sp) if variant == "pvq" else []
    ws = None if w is None else w[sel]
    mean = xv[sel].mean(axis=0) if ws is None else (ws * xv[sel]).sum(0) / ws.sum(0)
    z = xv - mean
    a = np.eye(d) / 3.0 if kind == "ma" else np.zeros((d, d))
    for _ in range(3 if kind == "ma" else 1):
        a = fit_matrix(z[sel], open_loop_states(z, a, kind, o)[sel], ws)
    s_open = open_loop_states(z, a, kind, o)
    targets = z[sel] - s_open[sel] @ a.T
    rng = np.random.default_rng(seed)
    opts = TrainOptions()
    cbs = initial_codebooks(
        variant, targets, ws, stages=stages, bits=bits, split=sp, rng=rng, opts=opts
    )
    scale = float(np.sqrt(np.mean(targets * targets))) or 1.0
    zscale = float(np.sqrt(np.mean(z[sel] ** 2))) or 1.0
    search = _search_fn(variant, beam)
    k = 1 << bits
    total = rounds * steps
    replace = method == "nsvq"

    def build(p: Params, books: Sequence[torch.Tensor]) -> PredictiveQuantizer:
        q = cls([c.detach().numpy().copy() for c in books], None, beam=beam,
                method=f"{method}-e2e", seed=seed)  # fmt: skip
        tf = None
        if hidden:
            tf = {key: p[key].detach().numpy().copy() for key in
                  ("enc_U", "enc_c", "enc_V", "dec_U", "dec_c", "dec_V")}  # fmt: skip
        return PredictiveQuantizer(q, mean, p["matrix"].detach().numpy().copy(), kind=kind,
                                   transform=tf, method=f"{method}-e2e")  # fmt: skip

    with _torch_state(seed) as gen:
        books = [torch.nn.Parameter(torch.tensor(c, dtype=torch.float64)) for c in cbs]
        p: Params = {"matrix": torch.nn.Parameter(torch.tensor(a, dtype=torch.float64))}
        if hidden:
            for side in ("enc", "dec"):
                u0 = rng.standard_normal((hidden, 2 * d)) / (zscale * math.sqrt(2 * d))
                p[f"{side}_U"] = torch.nn.Parameter(torch.tensor(u0))
                p[f"{side}_c"] = torch.nn.Parameter(torch.zeros(hidden, dtype=torch.float64))
                p[f"{side}_V"] = torch.nn.Parameter(torch.zeros((d, hidden), dtype=torch.float64))
        opt = torch.optim.Adam(
            [{"params": books, "lr": lr * scale}, {"params": list(p.values()), "lr": lr_net}]
        )
        lam = lambda i: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * i / max(total, 1)))  # noqa: E731
        sched = torch.optim.lr_scheduler.LambdaLR(opt, [lam, lam])
        usage = np.zeros((stages, k))
        step = 0
        for _ in range(rounds):
            if steps == 0:
                break
            states, _, _ = trace(build(p, books), xv, w, o)
            s_sel = states[sel]
            perm, pos = rng.permutation(sel.size), 0
            batch = min(batch_size, sel.size)
            for _ in range(steps):
                if pos + batch > sel.size:
                    perm, pos = rng.permutation(sel.size), 0
                bi = np.sort(perm[pos : pos + batch])
                pos += batch
                zt = torch.from_numpy(z[sel[bi]])
                st = torch.from_numpy(s_sel[bi])
                wt = None if ws is None else torch.from_numpy(ws[bi])
                u = encoder_input(p, zt, st)
                codes: IntArray = search(
                    u.detach().numpy(), None if ws is None else ws[bi],
                    [c.detach().numpy() for c in books],
                )  # fmt: skip
                for m in range(stages):
                    usage[m] += np.bincount(codes[:, m], minlength=k)
                ct = torch.from_numpy(codes)
                qs = [c[ct[:, m]] for m, c in enumerate(books)]
                q = torch.cat(qs, dim=1) if variant == "pvq" else torch.stack(qs).sum(dim=0)
                if method == "nsvq":
                    err = torch.sqrt(_wsum(u - q, wt) + 1e-30)
                    v = torch.randn(u.shape, generator=gen, dtype=u.dtype)
                    uh = u + (err / torch.sqrt(_wsum(v, wt) + 1e-30))[:, None] * v
                    loss = _wsum(zt - decoder_output(p, uh, st), wt).mean()
                else:
                    uh = u + (q - u).detach()
                    loss = _wsum(zt - decoder_output(p, uh, st), wt).mean()
                    loss = loss + beta * _wsum(u - q.detach(), wt).mean()
                    ud = u.detach()
                    if variant == "pvq":
                        for qm, (lo, hi) in zip(qs, bounds, strict=True):
                            wb = None if wt is None else wt[:, lo:hi]
                            loss = loss + _wsum(ud[:, lo:hi] - qm, wb).mean()
                    else:
                        target = ud
                        for qm in qs:
                            loss = loss + _wsum(target - qm, wt).mean()
                            target = target - qm.detach()
                opt.zero_grad(set_to_none=True)
                torch.autograd.backward(loss)
                opt.step()
                sched.step()
                step += 1
                if step % opts.replace_every == 0:
                    if replace and step <= opts.replace_until * total:
                        replace_dead(books, opt, usage, opts.replace_threshold, 1e-3 * scale, rng)
                    usage[:] = 0
        return build(p, books)


def numpy_vs_torch(pq: PredictiveQuantizer, z: FloatArray, s: FloatArray) -> dict[str, Any]:
    """Largest absolute difference between numpy and torch inference of ``pq`` on ``(z, s)``.

    Codes come from the numpy encoder; returns ``{"u": ..., "z_hat": ...}``.
    """
    p: Params = {"matrix": torch.from_numpy(np.array(pq.matrix))}
    if pq.transform is not None:
        p.update({k: torch.from_numpy(np.array(v)) for k, v in pq.transform.items()})
    x = z + pq.mean
    idx, xh, _ = pq.encode_step(x, s)
    books = [torch.from_numpy(np.array(c)) for c in pq.quantizer.codebooks]
    with torch.no_grad():
        u_t, zh_t = forward(p, books, pq.quantizer.config.variant, torch.from_numpy(z),
                            torch.from_numpy(s), torch.from_numpy(idx))  # fmt: skip
    u_np = z - s @ pq.matrix.T
    if pq.transform is not None:
        u_np = u_np + pq._enc_transform(z, s)
    out: dict[str, Any] = {
        "u": float(np.max(np.abs(u_t.numpy() - u_np))),
        "z_hat": float(np.max(np.abs(zh_t.numpy() - (xh - pq.mean)))),
    }
    return out
