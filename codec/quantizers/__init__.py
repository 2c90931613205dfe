"""Trainable vector quantizers for D-dimensional float vectors (e.g. 16-dim LSFs).

Variants (:data:`VARIANTS`): ``"vq"`` (one codebook), ``"rvq"`` (residual,
greedy or M-best search), ``"avq"`` (additive, beam search), ``"pvq"``
(product / split).  Training methods (:data:`METHODS`): ``"kmeans"`` (numpy
LBG with joint refinement), ``"ste"`` and ``"nsvq"`` (PyTorch, imported only
when used).

Example
-------
>>> q = train_quantizer(x, variant="avq", stages=4, bits=4, method="kmeans")  # doctest: +SKIP
>>> idx = q.encode(x)            # (N, 4) int64
>>> xh = q.decode(idx)           # (N, D) float64
>>> q.save("lsf.cb"); q2 = load_quantizer("lsf.cb")

Predictive quantization (frame-to-frame MA/AR prediction, optional safety
net, optional end-to-end trained transform) is in
:mod:`codec.quantizers.predictive` (:func:`train_predictive`) and
:mod:`codec.quantizers.endtoend`.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from numpy.typing import ArrayLike

from codec.errors import ParameterError

from .avq import AVQ
from .base import (
    METHODS,
    VARIANTS,
    CodebookError,
    Quantizer,
    QuantizerConfig,
    TrainOptions,
    check_int,
    check_vectors,
    check_weights,
    load_quantizer,
    make_progress,
)
from .kmeans import polish, train_kmeans
from .predictive import (
    PredictiveQuantizer,
    load_codebook,
    load_predictive,
    train_predictive,
)
from .pvq import PVQ, check_split
from .rvq import RVQ
from .search import AdcIndex, exact_search
from .vq import VQ

__all__ = [
    "AdcIndex",
    "AVQ",
    "METHODS",
    "PVQ",
    "RVQ",
    "VARIANTS",
    "VQ",
    "CodebookError",
    "PredictiveQuantizer",
    "Quantizer",
    "QuantizerConfig",
    "TrainOptions",
    "check_train_settings",
    "exact_search",
    "load_codebook",
    "load_predictive",
    "load_quantizer",
    "train_predictive",
    "train_quantizer",
]

_CLASSES: dict[str, type[Quantizer]] = {"vq": VQ, "rvq": RVQ, "avq": AVQ, "pvq": PVQ}


def check_train_settings(
    variant: str = "avq",
    stages: int = 4,
    bits: int = 4,
    method: str = "nsvq",
    seed: int = 0,
    dim: int = 16,
    **options: object,
) -> None:
    """Check the settings of :func:`train_quantizer` before any data is prepared.

    Raises the :class:`ParameterError` that :func:`train_quantizer` would raise
    for these settings on ``dim``-dimensional vectors (the data are not checked).
    """
    _check_settings(variant, stages, bits, method, seed, dim, options)


def _check_settings(
    variant: str,
    stages: int,
    bits: int,
    method: str,
    seed: int,
    dim: int,
    options: dict[str, object],
) -> tuple[int, int, int, TrainOptions, tuple[int, ...]]:
    if variant not in VARIANTS:
        raise ParameterError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    if method not in METHODS:
        raise ParameterError(f"unknown method {method!r}; expected one of {METHODS}")
    bits = check_int(bits, "bits", 1, 16)
    stages = check_int(stages, "stages", 1, 64)
    seed = check_int(seed, "seed", 0)
    if variant == "vq" and stages != 1:
        raise ParameterError(f"variant 'vq' has a single codebook: stages must be 1, got {stages}")
    if method != "kmeans" and importlib.util.find_spec("torch") is None:
        raise ParameterError(
            f"training method {method!r} needs torch, which is not installed: "
            "pip install 'svq[train]' (or train with method 'kmeans')"
        )
    opts = TrainOptions.from_kwargs(dict(options))
    split: tuple[int, ...] = ()
    if variant == "pvq":
        split = check_split(opts.split, dim, stages)
    elif opts.split is not None:
        raise ParameterError("option 'split' only applies to variant 'pvq'")
    return bits, stages, seed, opts, split


def train_quantizer(
    x: ArrayLike,
    variant: str = "avq",
    stages: int = 4,
    bits: int = 4,
    method: str = "nsvq",
    weights: ArrayLike | None = None,
    seed: int = 0,
    **options: object,
) -> Quantizer:
    """Train a vector quantizer.

    Parameters
    ----------
    x : array_like, shape (N, D)
        Training vectors (finite).
    variant : {"vq", "rvq", "avq", "pvq"}
        Quantizer structure; ``"vq"`` requires ``stages=1``.
    stages : int
        Number of codebooks ``M``.
    bits : int
        Bits per codebook, 1..16 (``K = 2**bits`` codewords, ``N >= K`` needed).
    method : {"kmeans", "ste", "nsvq"}
        Training method.
    weights : array_like, shape (N, D) or (D,), optional
        Positive per-dimension weights of the squared error, used in the
        search and in training.
    seed : int
        Seed; the same seed and data give the same codebooks.
    **options
        See :class:`~codec.quantizers.base.TrainOptions` (``beam``, ``split``,
        ``remove_mean``, ``progress``, ``iters``, ``refine_iters``, ``steps``,
        ``epochs``, ``lr``, ``batch_size``, ``init``, ``replace``, ...).

    Returns
    -------
    Quantizer
        A :class:`VQ`, :class:`RVQ`, :class:`AVQ` or :class:`PVQ`.

    Raises
    ------
    ParameterError
        Unknown variant, method or option; out-of-range values; bad shapes or NaN.
    """
    xv = check_vectors(x)
    n, dim = xv.shape
    bits, stages, seed, opts, split = _check_settings(
        variant, stages, bits, method, seed, dim, options
    )
    w = check_weights(weights, n, dim)
    k = 1 << bits
    if n < k:
        raise ParameterError(f"need at least 2**bits = {k} training vectors, got {n}")
    cls = _CLASSES[variant]
    beam = cls.default_beam if opts.beam is None else opts.beam
    train_beam = beam if opts.train_beam is None else opts.train_beam

    if opts.remove_mean:
        mean = xv.mean(axis=0) if w is None else (w * xv).sum(axis=0) / w.sum(axis=0)
    else:
        mean = np.zeros(dim)
    r = xv - mean
    rng = np.random.default_rng(seed)
    if method == "kmeans":
        per_run = opts.iters if variant in ("vq", "pvq") else opts.iters + 1
        refine = opts.refine_iters + opts.final_iters
        total = stages * per_run + (refine if variant in ("rvq", "avq") else 0)
        bar = make_progress(total, f"kmeans {variant}", opts.progress)
        try:
            cbs = train_kmeans(
                variant,
                r,
                w,
                stages=stages,
                bits=bits,
                beam=train_beam,
                split=split,
                rng=rng,
                opts=opts,
                bar=bar,
            )
        finally:
            bar.close()
    else:
        from .gradient import train_gradient

        cbs = train_gradient(
            variant,
            r,
            w,
            method=method,
            stages=stages,
            bits=bits,
            beam=train_beam,
            split=split,
            seed=seed,
            opts=opts,
        )
        cbs = polish(variant, r, w, cbs, beam=train_beam, rounds=opts.polish_iters, opts=opts)
    return cls(
        cbs,
        mean if opts.remove_mean else None,
        beam=beam,
        method=method,
        seed=seed,
        remove_mean=opts.remove_mean,
    )
