"""Spectral distortion of the LSF envelope quantizers on speech, 16 to 40 bits per frame.

``python -m recipes.envelope_sd [--train DIR_OR_MANIFEST] [--eval DIR_OR_MANIFEST]
[--out DIR] [--bits 16,24,32,36,40] [--only NAME,...] [--variants ...] [--methods ...]
[--train-split train]
[--eval-split dev]``

The LSF vectors (16 per 20 ms frame) of the training data train every
configuration of :data:`DEFAULT_CONFIGS` (speakers balanced so that no speaker
holds more than 5 % of the frames, LSF inverse-spacing weights); the frames of
the evaluation data are quantized with the same weights, the output is made
stable with :func:`codec.analysis.stabilize_lsf`, and the spectral distortion
between the LPC envelopes of the original and quantized LSFs is summarised per
configuration (mean SD, % frames in 2-4 dB, % above 4 dB, % above 2 dB).

Configurations (``--bits`` picks the groups)
    16  the papers' setting, 4 codebooks x 4 bits, for every variant
        (AVQ beam 8, RVQ greedy, PVQ 4+4+4+4) x method (k-means, STE, NSVQ);
        plain VQ at 16 bits (65536 codewords) is impractical, so the plain-VQ
        point is ``vq-1x12`` (12 bits, k-means, trained on 60000 vectors).
    24  4 x 6 bits: AVQ, RVQ M-best (beam 4), PVQ; AVQ NSVQ.
    32  4 x 8 bits: AVQ, RVQ M-best (beam 8), PVQ 4+4+4+4; PVQ 8 x 4 bits
        (2-dimensional sub-vectors).
    40  5 x 8 bits: AVQ, RVQ M-best (beam 8), PVQ 2+3+3+4+4; RVQ 4 x 10 bits
        (beam 4).
    ``ma-`` configurations (24, 32, 40 bits): the same quantizer behind a
        first-order moving-average predictor as in AMR-WB: with ``z(n)`` the
        mean-removed LSF vector, the prediction is ``p(n) = r^(n-1) / 3`` from
        the previous frame's quantized prediction error ``r^``, and the
        quantizer codes ``r(n) = z(n) - p(n)`` (memory reset at the start of
        every file).  The codebooks are trained on open-loop targets
        (``r(n) = z(n) - r(n-1) / 3`` with unquantized ``r``); retraining on the
        closed-loop targets of the trained quantizer changed the SD by less
        than 0.01 dB (rvq-4x6-b4), so it is not done.  The weighted error of
        ``r`` equals that of the LSFs, so the same weights apply.  The
        predictor is a wrapper in this recipe (:class:`MAPredictive`); nothing
        in :mod:`codec` changes.
    ``ar-``, ``arsn-``, ``mam-`` configurations (16, 36 bits): the codec's
        :class:`~codec.quantizers.PredictiveQuantizer`: ``ar`` predicts the
        mean-removed LSFs from the previous decoded ones through a fitted
        16 x 16 matrix (EVS-style AR), ``arsn`` adds the memoryless safety-net
        codebook chosen per frame by the encoder (one more bit: ``arsn-rvq-5x7``
        spends 36 bits), ``mam`` is MA prediction with a fitted matrix instead
        of AMR-WB's 1/3; codebooks trained on the open-loop targets
        (:func:`~codec.quantizers.train_predictive`); ``-cl``: then retrained
        once on the closed-loop targets of the frames coded predictively,
        with the matrix refitted to the closed-loop states.  ``arsn-rvq-5x7-b16``
        trains with M-best 8 and encodes with M-best 16 (the codebooks of
        ``-b8``; a wider search is an encoder-only choice).
    ``e2e-`` configurations (16 bits, STE and NSVQ): predictor matrix (AR),
        codebooks and, for ``h32``, a residual transform of 32 tanh units on
        each side of the quantizer, trained jointly on the weighted LSF error
        (:func:`codec.quantizers.endtoend.train_end_to_end`, 4 closed-loop
        state refreshes of ``--steps``/4 Adam steps each); they train on the
        ``--train-max`` subset (the closed-loop states come from whole files).
    Configurations with 64 or more codewords per codebook train on a random
    subset of at most ``--train-max`` (80000) of the balanced training vectors;
    AVQ k-means with 256 codewords uses fewer joint refinement rounds (8) on
    subsets, searched with beam 4 (the encoder keeps beam 8); the library's
    defaults (25 rounds, beam 8) took 164 s instead of 64 s for avq-5x8 and
    gave 1.143 dB instead of 1.147 dB.  STE/NSVQ use
    ``--steps`` (1000, the library default) Adam steps of 2048 vectors.

Timing
    ``us_per_vector``: batched :meth:`Quantizer.encode` of ``--time-vectors``
    (2048) evaluation vectors with weights, best of 3, in a child process with
    one BLAS thread (``OPENBLAS_NUM_THREADS=1`` etc.).  For ``ma-`` rows the
    prediction (``2 D`` operations) is added to ``ops_per_vector`` but not timed;
    the codec's predictive quantizers (``ar-``, ``arsn-``, ``mam-``, ``e2e-``) are
    timed whole (:meth:`PredictiveQuantizer.encode_step` on the same vectors
    as frames of parallel streams: prediction, transform, search(es)).

Outputs in ``--out`` (default ``out/envelope_sd``)
    ``results.json``   list of rows: ``variant, method, bits, stages,
                       mean_sd_db, pct_2_4_db, pct_over_4_db, us_per_vector,
                       ops_per_vector`` plus ``config, group, bits_per_stage,
                       beam, split, predictor, pct_over_2_db, train_vectors,
                       train_s, note``.
    ``results.md``     the table, the best configuration per budget, the targets.
    ``sd_vs_bits.png``, ``sd_vs_ops.png``
    ``codebooks/``     trained quantizers, ``{config}-{hash}.cb``; the hash covers
                       the configuration, the training data key and the
                       subsampling, so a rerun reuses them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from codec.analysis import (
    lsf_to_lpc,
    lsf_weights,
    sd_summary,
    spectral_distortion,
    stabilize_lsf,
)
from codec.features import FeatureSet, collection_features
from codec.quantizers import (
    PredictiveQuantizer,
    Quantizer,
    load_codebook,
    load_quantizer,
    train_predictive,
    train_quantizer,
)
from recipes._common import (
    DEFAULT_MANIFEST,
    REPO_ROOT,
    SHARED_SPEECH,
    balance_speakers,
    markdown_table,
    missing_data,
    parse_names,
    settings_hash,
    write_json,
)

__all__ = [
    "Config",
    "DEFAULT_CONFIGS",
    "MAPredictive",
    "ROW_KEYS",
    "build_parser",
    "evaluate",
    "main",
]

FloatArray = npt.NDArray[np.float64]
VERSION = 1
"""Bump when training or scoring changes so that cached codebooks are not reused."""
MA_COEF = 1.0 / 3.0
"""AMR-WB's first-order MA prediction coefficient."""
ROW_KEYS = (
    "variant",
    "method",
    "bits",
    "stages",
    "mean_sd_db",
    "pct_2_4_db",
    "pct_over_4_db",
    "us_per_vector",
    "ops_per_vector",
)
"""Keys every result row has (more follow them)."""
TARGET_MEAN_DB = 1.0
TARGET_OVER_2_PCT = 2.0
TARGET_OVER_4_PCT = 0.1


@dataclass(frozen=True)
class Config:
    """One quantizer configuration.

    Attributes
    ----------
    variant, method : str
        As for :func:`codec.quantizers.train_quantizer`.
    stages, bits_per_stage : int
    group : int
        Bit budget it is reported under (``--bits`` selects groups).
    beam : int, optional
        Search width (library default when None).
    split : tuple of int, optional
        PVQ sub-vector sizes (default: equal).
    predictor : float
        MA(1) prediction coefficient; 0 = memoryless.
    subsample : bool
        Train on at most ``--train-max`` vectors.
    options : tuple of (name, value)
        Further training options.
    kind : str
        ``"ar"`` or ``"ma"``: a :class:`PredictiveQuantizer` with a fitted
        matrix ('' = none).
    safety : bool
        With ``kind``: add the safety-net codebook (+1 bit).
    e2e : bool
        With ``kind``: train end to end (predictor matrix, codebooks, transform).
    hidden : int
        End-to-end transform units per side (0 = matrix only).
    """

    variant: str
    method: str
    stages: int
    bits_per_stage: int
    group: int
    beam: int | None = None
    split: tuple[int, ...] | None = None
    predictor: float = 0.0
    subsample: bool = False
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    kind: str = ""
    safety: bool = False
    e2e: bool = False
    hidden: int = 0

    @property
    def bits(self) -> int:
        """Bits per frame (the safety-net flag included)."""
        return self.stages * self.bits_per_stage + (1 if self.safety else 0)

    @property
    def prefix(self) -> str:
        """``ma``, ``ar``, ``arsn``, ``mam``, ``e2e`` or '' (memoryless)."""
        if self.predictor:
            return "ma"
        if self.e2e:
            return "e2e"
        if self.kind == "ma":
            return "mam"
        return self.kind + ("sn" if self.safety else "")

    @property
    def name(self) -> str:
        """Short unique label, e.g. ``ma-rvq-5x8-b8-kmeans``."""
        parts = [f"{self.variant}-{self.stages}x{self.bits_per_stage}"]
        if self.prefix:
            parts.insert(0, self.prefix)
        if self.hidden:
            parts.append(f"h{self.hidden}")
        if dict(self.options).get("closed_loop"):
            parts.append("cl")
        if self.beam is not None:
            parts.append(f"b{self.beam}")
        if self.split is not None:
            parts.append("s" + "+".join(map(str, self.split)))
        parts.append(self.method)
        return "-".join(parts)

    def train_kwargs(self, steps: int) -> dict[str, Any]:
        """Keyword options for :func:`train_quantizer`."""
        kw: dict[str, Any] = dict(self.options)
        if self.beam is not None:
            kw["beam"] = self.beam
        if self.split is not None:
            kw["split"] = self.split
        if self.method != "kmeans":
            kw.setdefault("steps", steps)
        return kw


def _paper16() -> list[Config]:
    out = [Config(v, m, 4, 4, 16) for v in ("avq", "rvq", "pvq") for m in ("kmeans", "ste", "nsvq")]
    out.append(Config("vq", "kmeans", 1, 12, 16, subsample=True, options=(("iters", 10),)))
    return out


_AVQ8 = (("refine_iters", 8), ("train_beam", 4))
_CL = (("closed_loop", 1),)
_TB8 = (("train_beam", 8),)
DEFAULT_CONFIGS: tuple[Config, ...] = (
    *_paper16(),
    Config("avq", "kmeans", 4, 6, 24, subsample=True),
    Config("avq", "nsvq", 4, 6, 24, subsample=True),
    Config("rvq", "kmeans", 4, 6, 24, beam=4, subsample=True),
    Config("pvq", "kmeans", 4, 6, 24, subsample=True),
    Config("rvq", "kmeans", 4, 6, 24, beam=4, predictor=MA_COEF, subsample=True),
    Config("avq", "kmeans", 4, 8, 32, subsample=True, options=_AVQ8),
    Config("rvq", "kmeans", 4, 8, 32, beam=8, subsample=True),
    Config("pvq", "kmeans", 4, 8, 32, subsample=True),
    Config("pvq", "kmeans", 8, 4, 32, subsample=True),
    Config("rvq", "kmeans", 4, 8, 32, beam=8, predictor=MA_COEF, subsample=True),
    Config("avq", "kmeans", 5, 8, 40, subsample=True, options=_AVQ8),
    Config("rvq", "kmeans", 5, 8, 40, beam=8, subsample=True),
    Config("rvq", "kmeans", 4, 10, 40, beam=4, subsample=True),
    Config("pvq", "kmeans", 5, 8, 40, split=(2, 3, 3, 4, 4), subsample=True),
    Config("rvq", "kmeans", 5, 8, 40, beam=8, predictor=MA_COEF, subsample=True),
    Config("avq", "kmeans", 5, 8, 40, predictor=MA_COEF, subsample=True, options=_AVQ8),
    *(Config("avq", m, 4, 4, 16, kind="ar") for m in ("kmeans", "ste", "nsvq")),
    Config("avq", "nsvq", 3, 5, 16, kind="ar", safety=True),
    *(
        Config("avq", m, 4, 4, 16, kind="ar", e2e=True, hidden=h, subsample=True)
        for h in (0, 32)
        for m in ("ste", "nsvq")
    ),
    Config("rvq", "kmeans", 6, 6, 36, beam=8, kind="ar", subsample=True),
    Config("rvq", "kmeans", 6, 6, 36, beam=8, kind="ma", subsample=True),
    Config("rvq", "kmeans", 5, 7, 36, beam=8, kind="ar", safety=True, subsample=True),
    Config("rvq", "kmeans", 5, 7, 36, 8, kind="ar", safety=True, subsample=True, options=_CL),
    Config("rvq", "kmeans", 5, 7, 36, 16, kind="ar", safety=True, subsample=True, options=_TB8),
)
"""The default grid (see the module docstring)."""


# ----------------------------------------------------------------------------- MA prediction


def _sequential(
    x: FloatArray, offsets: npt.NDArray[np.int64], step: Any
) -> tuple[FloatArray, FloatArray]:
    """Run a first-order recursion over every file's frames, all files in parallel.

    ``step(rows, target) -> r_hat`` quantizes (or not) the prediction errors of
    the frames ``rows`` (one per active file at time ``t``).  Returns the
    prediction errors ``r`` and their reconstructions ``r_hat``, both ``(N, D)``.
    """
    lengths = np.diff(offsets)
    r = np.empty_like(x)
    r_hat = np.empty_like(x)
    prev = np.zeros((len(lengths), x.shape[1]))
    for t in range(int(lengths.max(initial=0))):
        active = np.flatnonzero(lengths > t)
        rows = offsets[active] + t
        target = x[rows] - MA_COEF * prev[active]
        rh = step(rows, target)
        r[rows], r_hat[rows] = target, rh
        prev[active] = rh
    return r, r_hat


@dataclass
class MAPredictive:
    """A trained quantizer behind AMR-WB's first-order MA predictor.

    Attributes
    ----------
    quantizer : Quantizer
        Codes the prediction error ``r(n) = z(n) - coef * r^(n-1)``.
    mean : ndarray, shape (D,)
        Removed from the LSFs to give ``z``.
    coef : float
    """

    quantizer: Quantizer
    mean: FloatArray
    coef: float = MA_COEF

    def quantize(
        self, lsf: FloatArray, weights: FloatArray, offsets: npt.NDArray[np.int64]
    ) -> FloatArray:
        """Closed-loop quantized LSFs of whole files (memory reset per file)."""
        q = self.quantizer

        def step(rows: npt.NDArray[np.int64], target: FloatArray) -> FloatArray:
            return q.decode(q.encode(target, weights=weights[rows]))

        r, r_hat = _sequential(lsf - self.mean, offsets, step)
        out: FloatArray = lsf - r + r_hat  # = mean + prediction + r_hat
        return out

    def ops_per_vector(self) -> int:
        """Encoder operations: the quantizer's plus ``2 D`` for the prediction."""
        return int(self.quantizer.ops_per_vector()) + 2 * self.quantizer.dim


def open_loop_targets(z: FloatArray, offsets: npt.NDArray[np.int64]) -> FloatArray:
    """Prediction errors ``r(n) = z(n) - r(n-1)/3`` with unquantized ``r`` (per file)."""
    r, _ = _sequential(z, offsets, lambda rows, target: target)
    return r


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TrainData:
    """Training LSFs (whole files, for the MA targets) and the rows to train on."""

    fs: FeatureSet
    rows: npt.NDArray[np.int64]


def feature_cache(source: str | Path, split: str | None, cache: Path, out: Path) -> Path:
    """Feature cache file: the repository's ``cache/{split}_lsf.npy`` for the shared
    speech data, else a file under ``out/features/`` keyed by source and split."""
    src = Path(source).resolve()
    if split and src in (DEFAULT_MANIFEST.resolve(), SHARED_SPEECH.resolve()):
        return cache / f"{split}_lsf.npy"
    return out / "features" / f"{settings_hash([str(src), split])}_lsf.npy"


def _features(source: str, split: str | None, cache: Path, out: Path) -> FeatureSet:
    path = feature_cache(source, split, cache, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    return collection_features(source, out=path, split=split, progress=sys.stderr.isatty())


# ----------------------------------------------------------------------------- training


def _subset(rows: npt.NDArray[np.int64], limit: int | None, seed: int) -> npt.NDArray[np.int64]:
    if limit is None or rows.size <= limit:
        return rows
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.choice(rows, size=limit, replace=False))


def train_config(
    cfg: Config,
    data: TrainData,
    *,
    steps: int,
    train_max: int,
    seed: int,
    cache_dir: Path,
) -> tuple[Quantizer | MAPredictive | PredictiveQuantizer, dict[str, Any]]:
    """Train one configuration, or load it from ``cache_dir``.

    Returns
    -------
    model : Quantizer or MAPredictive
    info : dict
        ``train_vectors``, ``train_s``, ``cached``, ``path``.
    """
    rows = _subset(data.rows, train_max if cfg.subsample else None, seed)
    kwargs = cfg.train_kwargs(steps)
    key = settings_hash(
        [VERSION, asdict(cfg), kwargs, data.fs.key, int(rows.size), int(rows.sum()), seed]
    )
    path = cache_dir / f"{cfg.name}-{key}.cb"
    info: dict[str, Any] = {"train_vectors": int(rows.size), "path": str(path)}
    if cfg.kind:
        return _train_predictive(cfg, data, rows, kwargs, seed, path, info)
    if path.exists():
        q = load_quantizer(path)
        info.update(train_s=float(q.extra["train_s"][0]), cached=True)
        if cfg.predictor:
            return MAPredictive(q, np.asarray(q.extra["ma_mean"]), cfg.predictor), info
        return q, info
    lsf = data.fs.lsf
    w_all = lsf_weights(lsf)
    t0 = time.perf_counter()
    extra: dict[str, npt.NDArray[Any]] = {}

    def fit(x: FloatArray) -> Quantizer:
        return train_quantizer(
            x,
            variant=cfg.variant,
            stages=cfg.stages,
            bits=cfg.bits_per_stage,
            method=cfg.method,
            weights=w_all[rows],
            seed=seed,
            progress=sys.stderr.isatty(),
            **kwargs,
        )

    if cfg.predictor:
        mean = lsf[rows].mean(axis=0)
        z = lsf - mean
        q = fit(open_loop_targets(z, data.fs.offsets)[rows])
        extra["ma_mean"] = mean
        extra["ma_coef"] = np.array([cfg.predictor])
    else:
        q = fit(lsf[rows])
    train_s = time.perf_counter() - t0
    extra["train_s"] = np.array([train_s])
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    q.save(tmp, extra=extra)
    os.replace(tmp, path)
    info.update(train_s=train_s, cached=False)
    if cfg.predictor:
        return MAPredictive(q, extra["ma_mean"], cfg.predictor), info
    return q, info


def _train_predictive(
    cfg: Config,
    data: TrainData,
    rows: npt.NDArray[np.int64],
    kwargs: dict[str, Any],
    seed: int,
    path: Path,
    info: dict[str, Any],
) -> tuple[PredictiveQuantizer, dict[str, Any]]:
    """Train (or load) a configuration with ``kind``: the codec's predictive quantizer."""
    side = path.with_suffix(".json")
    if path.exists() and side.exists():
        pq = load_codebook(path)
        assert isinstance(pq, PredictiveQuantizer)
        info.update(train_s=float(json.loads(side.read_text())["train_s"]), cached=True)
        return pq, info
    lsf = data.fs.lsf
    w_all = lsf_weights(lsf)
    t0 = time.perf_counter()
    common: dict[str, Any] = dict(
        rows=rows, variant=cfg.variant, stages=cfg.stages, bits=cfg.bits_per_stage,
        method=cfg.method, weights=w_all, seed=seed, kind=cfg.kind,
    )  # fmt: skip
    if cfg.e2e:
        from codec.quantizers.endtoend import train_end_to_end

        steps = int(kwargs.get("steps", 1000))
        pq = train_end_to_end(
            lsf, data.fs.offsets, hidden=cfg.hidden, rounds=4, steps=max(steps // 4, 1),
            beam=cfg.beam, split=cfg.split, **common,
        )  # fmt: skip
    else:
        kw = {**kwargs, "progress": sys.stderr.isatty()}
        pq = train_predictive(lsf, data.fs.offsets, safety_net=cfg.safety, **common, **kw)
    train_s = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.save(tmp)
    os.replace(tmp, path)
    side.write_text(json.dumps({"train_s": train_s}))
    info.update(train_s=train_s, cached=False)
    return pq, info


# ----------------------------------------------------------------------------- evaluation


def evaluate(
    model: Quantizer | MAPredictive | PredictiveQuantizer,
    lsf: FloatArray,
    offsets: npt.NDArray[np.int64],
) -> dict[str, float]:
    """SD summary of quantizing ``lsf`` (weighted search, stabilised output).

    Returns
    -------
    dict
        ``mean_sd_db``, ``pct_2_4_db``, ``pct_over_4_db``, ``pct_over_2_db`` (0-100).
    """
    w = lsf_weights(lsf)
    if isinstance(model, MAPredictive):
        xh = model.quantize(lsf, w, offsets)
    elif isinstance(model, PredictiveQuantizer):
        xh = model.quantize(lsf, w, offsets)[0]
    else:
        xh = model.decode(model.encode(lsf, weights=w))
    sd = spectral_distortion(lsf_to_lpc(lsf), lsf_to_lpc(stabilize_lsf(xh)))
    out = sd_summary(sd)
    out["pct_over_2_db"] = float(100.0 * np.mean(sd > 2.0))
    return out


_TIMER = """
import json, sys, time
import numpy as np
from codec.quantizers import PredictiveQuantizer, load_codebook
x = np.load(sys.argv[1]); w = np.load(sys.argv[2]); out = {}
for path in json.loads(sys.argv[3]):
    q = load_codebook(path)
    if isinstance(q, PredictiveQuantizer):  # one frame of len(x) parallel streams
        s = q.initial_state(len(x))
        enc = lambda a, b: q.encode_step(a, s[: len(a)], b)
    else:
        enc = lambda a, b: q.encode(a, weights=b)
    enc(x[:64], w[:64]); best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter(); enc(x, w); best = min(best, time.perf_counter() - t0)
    out[path] = 1e6 * best / len(x)
print(json.dumps(out))
"""
_ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def time_encoders(paths: list[str], lsf: FloatArray, work: Path) -> dict[str, float]:
    """Microseconds per vector of batched ``encode`` per codebook file, one BLAS thread."""
    if not paths:
        return {}
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "x.npy", lsf)
    np.save(work / "w.npy", lsf_weights(lsf))
    env = {**os.environ, **dict.fromkeys(_ONE_THREAD, "1")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    res = subprocess.run(
        [sys.executable, "-c", _TIMER, str(work / "x.npy"), str(work / "w.npy"), json.dumps(paths)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    timings: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return timings


# ----------------------------------------------------------------------------- reporting


def _f(v: float, nd: int = 2) -> str:
    return f"{v:.{nd}f}"


def _table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "group", "config", "bits", "mean SD dB", "% 2-4 dB", "% > 4 dB", "% > 2 dB",
        "us/vector", "ops/vector", "train vectors", "train s",
    ]  # fmt: skip
    body = [
        [
            r["group"],
            r["config"],
            r["bits"],
            _f(r["mean_sd_db"], 3),
            _f(r["pct_2_4_db"]),
            _f(r["pct_over_4_db"], 3),
            _f(r["pct_over_2_db"]),
            _f(r["us_per_vector"], 1),
            r["ops_per_vector"],
            r["train_vectors"],
            _f(r["train_s"], 1),
        ]  # fmt: skip
        for r in rows
    ]
    return markdown_table(headers, body)


def best_per_budget(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Lowest mean SD among the rows of each bit budget (exactly that many bits)."""
    best: dict[int, dict[str, Any]] = {}
    for r in rows:
        b = int(r["bits"])
        if b not in best or r["mean_sd_db"] < best[b]["mean_sd_db"]:
            best[b] = r
    return dict(sorted(best.items()))


def transparent(r: dict[str, Any]) -> bool:
    """Mean SD <= 1 dB, < 2 % frames above 2 dB and < 0.1 % above 4 dB."""
    return bool(
        r["mean_sd_db"] <= TARGET_MEAN_DB
        and r["pct_over_2_db"] < TARGET_OVER_2_PCT
        and r["pct_over_4_db"] < TARGET_OVER_4_PCT
    )


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """Plain-language verdicts on the project's targets."""
    lines = []
    p16 = {
        (r["variant"], r["method"]): r
        for r in rows
        if r["group"] == 16 and r["stages"] == 4 and not r.get("prefix")
    }
    for v in ("avq", "rvq", "pvq"):
        ste, nsvq = p16.get((v, "ste")), p16.get((v, "nsvq"))
        if ste and nsvq:
            ok = nsvq["mean_sd_db"] <= ste["mean_sd_db"] + 1e-9
            lines.append(
                f"16 bits, {v.upper()}: NSVQ {nsvq['mean_sd_db']:.3f} dB vs STE "
                f"{ste['mean_sd_db']:.3f} dB: {'met' if ok else 'NOT met'} (NSVQ no worse)"
            )
    methods = sorted({m for _, m in p16})
    for m in methods:
        per = {v: p16[(v, m)]["mean_sd_db"] for v in ("avq", "rvq", "pvq") if (v, m) in p16}
        if len(per) > 1:
            winner = min(per, key=lambda v: per[v])
            lines.append(
                f"16 bits, {m}: best variant {winner.upper()} ({per[winner]:.3f} dB): "
                f"{'met' if winner == 'avq' else 'NOT met'} (AVQ best)"
            )
    lines += _predictive_targets(rows)
    budget = [r for r in rows if r["bits"] <= 40]
    ok = [r for r in budget if transparent(r)]
    if budget:
        best = min(budget, key=lambda r: r["mean_sd_db"])
        if ok:
            fewest = min(ok, key=lambda r: (r["bits"], r["mean_sd_db"]))
            lines.append(
                f"Transparency at <= 40 bits: met by {', '.join(r['config'] for r in ok)}; "
                f"fewest bits: {fewest['config']} ({fewest['bits']} bits, "
                f"{fewest['mean_sd_db']:.3f} dB, {fewest['pct_over_2_db']:.2f} % > 2 dB, "
                f"{fewest['pct_over_4_db']:.3f} % > 4 dB)"
            )
        else:
            lines.append(
                f"Transparency at <= 40 bits: NOT met; closest {best['config']} "
                f"({best['mean_sd_db']:.3f} dB, {best['pct_over_2_db']:.2f} % > 2 dB, "
                f"{best['pct_over_4_db']:.3f} % > 4 dB)"
            )
    return lines


def _predictive_targets(rows: list[dict[str, Any]]) -> list[str]:
    """Issue 13's targets: transparency at <= 36 bits, 16 bits below AVQ NSVQ, e2e NSVQ vs STE."""
    lines = []
    by = {r["config"]: r for r in rows}
    ref = by.get("avq-4x4-nsvq")
    at16 = [r for r in rows if r["bits"] == 16 and r["config"] != "avq-4x4-nsvq"]
    if ref and at16:
        best = min(at16, key=lambda r: r["mean_sd_db"])
        ok = best["mean_sd_db"] < ref["mean_sd_db"]
        lines.append(
            f"16 bits: best {best['config']} {best['mean_sd_db']:.3f} dB vs AVQ NSVQ "
            f"{ref['mean_sd_db']:.3f} dB: {'met' if ok else 'NOT met'} (lower)"
        )
    for h in (0, 32):
        tag = f"-h{h}" if h else ""
        ste, ns = by.get(f"e2e-avq-4x4{tag}-ste"), by.get(f"e2e-avq-4x4{tag}-nsvq")
        if ste and ns:
            diff = ste["mean_sd_db"] - ns["mean_sd_db"]
            lines.append(
                f"End to end (AR matrix{', transform ' + str(h) + ' units' if h else ''}): "
                f"NSVQ {ns['mean_sd_db']:.3f} dB vs STE {ste['mean_sd_db']:.3f} dB "
                f"(NSVQ {'ahead' if diff > 0 else 'behind'} by {abs(diff):.3f} dB)"
            )
    b36 = [r for r in rows if r["bits"] <= 36]
    if b36:
        ok36 = [r["config"] for r in b36 if transparent(r)]
        best = min(b36, key=lambda r: r["mean_sd_db"])
        if ok36:
            lines.append(f"Transparency at <= 36 bits: met by {', '.join(ok36)}")
        else:
            lines.append(
                f"Transparency at <= 36 bits: NOT met; closest {best['config']} "
                f"({best['mean_sd_db']:.3f} dB, {best['pct_over_2_db']:.2f} % > 2 dB, "
                f"{best['pct_over_4_db']:.3f} % > 4 dB)"
            )
    return lines


def write_markdown(path: Path, rows: list[dict[str, Any]], header: dict[str, Any]) -> str:
    """Write ``results.md`` and return its text."""
    lines = ["# Envelope spectral distortion (LSF, 16 per 20 ms frame)", ""]
    lines += [f"Command: `{header['command']}`", ""]
    lines += [
        f"Training: {header['train']} (split {header['train_split']}, "
        f"{header['train_frames']} frames, {header['train_rows']} after speaker balancing); "
        f"evaluation: {header['eval']} (split {header['eval_split']}, "
        f"{header['eval_frames']} frames). Wall time {header.get('wall_s', '?')} s.",
        "",
        _table(rows),
        "",
        "## Best configuration per budget",
        "",
    ]
    best = best_per_budget(rows)
    lines.append(
        markdown_table(
            ["bits", "config", "mean SD dB", "% > 2 dB", "% > 4 dB", "us/vector", "transparent"],
            [
                [
                    b,
                    r["config"],
                    _f(r["mean_sd_db"], 3),
                    _f(r["pct_over_2_db"]),
                    _f(r["pct_over_4_db"], 3),
                    _f(r["us_per_vector"], 1),
                    "yes" if transparent(r) else "no",
                ]  # fmt: skip
                for b, r in best.items()
            ],
        )
    )
    lines += ["", "## Targets", "", *(f"- {t}" for t in targets(rows)), ""]
    notes = sorted({f"{r['config']}: {r['note']}" for r in rows if r.get("note")})
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    text = "\n".join(lines)
    path.write_text(text)
    return text


_COLORS = {"avq": "tab:red", "rvq": "tab:blue", "pvq": "tab:green", "vq": "tab:gray"}
_MARKERS = {"kmeans": "o", "ste": "s", "nsvq": "^"}


def _family(r: dict[str, Any]) -> str:
    pre = r.get("prefix") or ("ma" if r["predictor"] else "")
    return f"{pre + '-' if pre else ''}{r['variant']}-{r['method']}"


def plot(out: Path, rows: list[dict[str, Any]]) -> None:
    """``sd_vs_bits.png`` (one line per variant/method/predictor) and ``sd_vs_ops.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for fam in sorted({_family(r) for r in rows}):
        sub = [r for r in rows if _family(r) == fam]
        pts: dict[int, float] = {}
        for r in sub:  # the best structure of a family at each budget
            pts[r["bits"]] = min(pts.get(r["bits"], np.inf), r["mean_sd_db"])
        xs = sorted(pts)
        ax.plot(
            xs,
            [pts[b] for b in xs],
            marker=_MARKERS.get(sub[0]["method"], "x"),
            color=_COLORS.get(sub[0]["variant"], "k"),
            linestyle="--" if sub[0]["predictor"] or sub[0].get("prefix") else "-",
            label=fam,
        )
    ax.axhline(TARGET_MEAN_DB, color="k", linewidth=0.8, linestyle=":", label="1 dB")
    ax.set_xlabel("bits per frame")
    ax.set_ylabel("mean spectral distortion (dB)")
    ax.set_title("LSF envelope quantization: SD vs bits (best structure per family)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "sd_vs_bits.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        ax.scatter(
            r["ops_per_vector"],
            r["mean_sd_db"],
            color=_COLORS.get(r["variant"], "k"),
            marker=_MARKERS.get(r["method"], "x"),
            facecolors="none" if r["predictor"] or r.get("prefix") else None,
        )
        ax.annotate(r["config"], (r["ops_per_vector"], r["mean_sd_db"]), fontsize=5)
    ax.set_xscale("log")
    ax.set_xlabel("encoder operations per vector")
    ax.set_ylabel("mean spectral distortion (dB)")
    ax.set_title("SD vs encoder complexity (hollow: predictive)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "sd_vs_ops.png", dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- CLI


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the recipe."""
    p = argparse.ArgumentParser(
        prog="python -m recipes.envelope_sd", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--train", default=str(DEFAULT_MANIFEST), help="training folder or manifest")
    p.add_argument("--eval", default=str(DEFAULT_MANIFEST), help="evaluation folder or manifest")
    p.add_argument("--train-split", default="train", help="manifest split (%(default)s)")
    p.add_argument("--eval-split", default="dev", help="manifest split (%(default)s)")
    p.add_argument("--out", default="out/envelope_sd", help="output folder (%(default)s)")
    p.add_argument(
        "--bits", type=_ints, default=[16, 24, 32, 36, 40], help="budgets (16,24,32,36,40)"
    )
    p.add_argument("--variants", default="vq,avq,rvq,pvq", help="variants (%(default)s)")
    p.add_argument("--methods", default="kmeans,ste,nsvq", help="methods (%(default)s)")
    p.add_argument(
        "--no-ma",
        "--no-predictive",
        dest="no_ma",
        action="store_true",
        help="leave out the predictive configurations (ma-, mam-, ar-, arsn-, e2e-)",
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated configuration names to run (default: every selected one)",
    )
    p.add_argument("--steps", type=int, default=1000, help="STE/NSVQ Adam steps (%(default)s)")
    p.add_argument(
        "--train-max",
        type=int,
        default=80000,
        help="training vectors for configurations with K >= 64 (%(default)s)",
    )
    p.add_argument(
        "--no-balance", action="store_true", help="train on all frames (no speaker balancing)"
    )
    p.add_argument(
        "--time-vectors", type=int, default=2048, help="vectors in the timing run (%(default)s)"
    )
    p.add_argument("--cache", default=str(REPO_ROOT / "cache"), help="feature cache folder")
    p.add_argument("--seed", type=int, default=0, help="training seed (%(default)s)")
    return p


def select_configs(
    bits: Sequence[int],
    variants: Sequence[str],
    methods: Sequence[str],
    with_ma: bool,
    only: Sequence[str] = (),
) -> list[Config]:
    """The default configurations of the chosen groups, variants and methods."""
    return [
        c
        for c in DEFAULT_CONFIGS
        if c.group in bits
        and c.variant in variants
        and c.method in methods
        and (with_ma or not (c.predictor or c.kind))
        and (not only or c.name in only)
    ]


def _row(
    cfg: Config, model: Quantizer | MAPredictive | PredictiveQuantizer, info: dict[str, Any]
) -> dict[str, Any]:
    q = model.quantizer if isinstance(model, (MAPredictive, PredictiveQuantizer)) else model
    split = list(q.config.split) if cfg.variant == "pvq" else None
    return {
        "variant": cfg.variant,
        "method": cfg.method,
        "bits": cfg.bits,
        "stages": cfg.stages,
        "config": cfg.name,
        "group": cfg.group,
        "bits_per_stage": cfg.bits_per_stage,
        "beam": q.beam,
        "split": split,
        "predictor": cfg.predictor,
        "prefix": cfg.prefix,
        "ops_per_vector": int(model.ops_per_vector()),
        "train_vectors": info["train_vectors"],
        "train_s": round(float(info["train_s"]), 2),
        "note": _note(cfg),
    }


def _note(cfg: Config) -> str:
    if cfg.predictor:
        return "MA(1) prediction from 1/3 of the previous frame's quantized residual"
    if cfg.e2e:
        net = f" + transform ({cfg.hidden} tanh units per side)" if cfg.hidden else ""
        return f"AR matrix{net}, trained end to end with the codebooks by {cfg.method.upper()}"
    if cfg.kind:
        what = "AR (previous decoded LSFs)" if cfg.kind == "ar" else "MA (previous residual)"
        sn = " + 1-bit safety-net codebook" if cfg.safety else ""
        return f"{what} prediction, fitted 16 x 16 matrix{sn}"
    if cfg.variant == "vq" and cfg.group == 16:
        return "plain-VQ point of the 16-bit setting at 12 bits (a 16-bit VQ is impractical)"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Train, evaluate and report; returns the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    configs = select_configs(
        args.bits,
        parse_names(args.variants),
        parse_names(args.methods),
        not args.no_ma,
        [t for t in args.only.split(",") if t],
    )
    if not configs:
        p.error("no configuration matches --bits/--variants/--methods")
    for flag, source, needs in (
        ("--train", args.train, f"training speech (split {args.train_split!r})"),
        ("--eval", args.eval, f"evaluation speech (split {args.eval_split!r})"),
    ):
        problem = missing_data(source, flag=flag, needs=needs)
        if problem:
            p.error(problem)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    train_fs = _features(args.train, args.train_split, cache, out)
    eval_fs = _features(args.eval, args.eval_split, cache, out)
    rows_idx = (
        np.arange(train_fs.lsf.shape[0], dtype=np.int64)
        if args.no_balance
        else balance_speakers(train_fs)
    )
    data = TrainData(train_fs, rows_idx)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "recipes.envelope_sd", *given])
    header: dict[str, Any] = {
        "command": command,
        "train": args.train,
        "train_split": args.train_split,
        "eval": args.eval,
        "eval_split": args.eval_split,
        "train_frames": int(train_fs.lsf.shape[0]),
        "train_rows": int(rows_idx.size),
        "eval_frames": int(eval_fs.lsf.shape[0]),
    }
    rows: list[dict[str, Any]] = []
    paths: dict[str, str] = {}
    for cfg in configs:
        n_rows = min(rows_idx.size, args.train_max) if cfg.subsample else rows_idx.size
        if n_rows < 1 << cfg.bits_per_stage:
            print(f"skip {cfg.name}: {n_rows} training vectors < {1 << cfg.bits_per_stage}")
            continue
        model, info = train_config(
            cfg,
            data,
            steps=args.steps,
            train_max=args.train_max,
            seed=args.seed,
            cache_dir=out / "codebooks",
        )
        t0 = time.perf_counter()
        row = _row(cfg, model, info)
        row.update(evaluate(model, eval_fs.lsf, eval_fs.offsets))
        row["eval_s"] = round(time.perf_counter() - t0, 2)
        paths[cfg.name] = info["path"]
        rows.append(row)
        print(
            f"{cfg.name:28s} {row['mean_sd_db']:.3f} dB  >2 dB {row['pct_over_2_db']:5.2f} %"
            f"  >4 dB {row['pct_over_4_db']:6.3f} %  train {row['train_s']:6.1f} s"
            f"{' (cached)' if info['cached'] else ''}  eval {row['eval_s']:.1f} s",
            flush=True,
        )
    n_time = min(args.time_vectors, eval_fs.lsf.shape[0])
    timings = time_encoders(sorted(set(paths.values())), eval_fs.lsf[:n_time], out / "timing")
    for r in rows:
        r["us_per_vector"] = round(timings[paths[r["config"]]], 3)
    rows = [{**{k: r[k] for k in ROW_KEYS}, **r} for r in rows]
    header["wall_s"] = round(time.perf_counter() - t_start, 1)
    write_json(out / "results.json", rows)
    write_json(out / "run.json", {**header, "args": vars(args), "version": VERSION})
    write_markdown(out / "results.md", rows, header)
    plot(out, rows)
    for line in targets(rows):
        print(line)
    print(f"wrote {out / 'results.json'}, results.md, plots ({header['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
