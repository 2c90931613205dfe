"""Shared interface of the vector quantizers: config, validation, distances, file format.

Every quantizer maps float vectors ``x`` of shape ``(N, D)`` to integer index
arrays of shape ``(N, stages)`` and back.  A trained mean is removed before the
search and added back by :meth:`Quantizer.decode`, so decoded vectors live in
the input space.

Distances are per-vector, per-dimension weighted squared errors
``sum_d w_nd (x_nd - y_d)**2``.  Searches use the expansion
``sum w x**2 - 2 (w*x) @ c.T + w @ (c**2).T`` so that the work is done by BLAS.

File format (``format_version`` 1): an ``.npz`` archive written through an open
file object (so any file name works) holding

``config``         JSON of :class:`QuantizerConfig` as a uint8 byte array,
``codebook_<m>``   float64 codebooks, ``m = 0 .. stages-1``,
``mean``           float64 ``(D,)`` mean (zeros when ``remove_mean`` is false),
``extra__<name>``  optional numeric metadata arrays (:attr:`Quantizer.extra`),
``content_hash``   hex SHA-256 (uint8 bytes) over the config JSON and every array.

Loading never unpickles, recomputes the hash and raises :class:`CodebookError`
on any mismatch.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import sys
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codec.errors import CodecError, ParameterError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

FORMAT_VERSION = 1
MAX_BITS = 16
VARIANTS: tuple[str, ...] = ("vq", "rvq", "avq", "pvq")
METHODS: tuple[str, ...] = ("kmeans", "ste", "nsvq")
_CHUNK_ELEMENTS = 1 << 21  # bound on the size of one distance matrix chunk
# chunks of Quantizer.encode's search: a 2 MB candidate array stays in cache, and
# the M-best search is about a quarter faster than with 16 MB chunks (RESULTS §5)
_SEARCH_ELEMENTS = 1 << 18
_EXTRA_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class CodebookError(CodecError):
    """A codebook file is unreadable, corrupt, tampered with or of a foreign format."""


class QuantizerConfig(NamedTuple):
    """Every non-array constructor argument of a quantizer.

    Attributes
    ----------
    variant : str
        One of :data:`VARIANTS`.
    dim : int
        Vector dimension ``D``.
    stages : int
        Number of codebooks ``M`` (1 for ``vq``).
    bits_per_stage : int
        ``log2`` of the codebook size ``K``; 1 .. 16.
    beam : int
        Search width (AVQ beam search, RVQ M-best); 1 for VQ/PVQ.
    split : tuple of int
        PVQ sub-vector sizes (empty for other variants).
    remove_mean : bool
        Whether a trained mean is subtracted before the search.
    method : str
        Training method the codebooks came from (provenance only).
    seed : int or None
        Training seed (provenance only).
    format_version : int
        File format version.
    """

    variant: str
    dim: int
    stages: int
    bits_per_stage: int
    beam: int = 1
    split: tuple[int, ...] = ()
    remove_mean: bool = True
    method: str = "none"
    seed: int | None = None
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, no spaces) used in files and hashes."""
        return json.dumps(self._asdict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> QuantizerConfig:
        """Parse :meth:`to_json` output, checking version, fields and types."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CodebookError(f"codebook config is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise CodebookError("codebook config is not a JSON object")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise CodebookError(
                f"unsupported codebook format version {version!r} (expected {FORMAT_VERSION})"
            )
        names = set(cls._fields)
        if set(raw) != names:
            raise CodebookError(f"codebook config fields {sorted(raw)} != {sorted(names)}")
        ints = ("dim", "stages", "bits_per_stage", "beam", "format_version")
        if not all(type(raw[k]) is int for k in ints) or type(raw["remove_mean"]) is not bool:
            raise CodebookError("codebook config has fields of the wrong type")
        if not isinstance(raw["split"], list) or not all(type(s) is int for s in raw["split"]):
            raise CodebookError("codebook config field 'split' must be a list of integers")
        if not isinstance(raw["variant"], str) or not isinstance(raw["method"], str):
            raise CodebookError("codebook config fields 'variant'/'method' must be strings")
        if raw["seed"] is not None and type(raw["seed"]) is not int:
            raise CodebookError("codebook config field 'seed' must be an integer or null")
        raw["split"] = tuple(raw["split"])
        return cls(**raw)


class TrainOptions(NamedTuple):
    """Keyword options of :func:`~codec.quantizers.train_quantizer`.

    Structure
        ``beam`` (search width; default 8 for AVQ, 1 = greedy for RVQ),
        ``split`` (PVQ sub-vector sizes; default as equal as possible),
        ``remove_mean`` (default True), ``progress`` (tqdm bar; default: stderr is a tty).
    k-means (``method="kmeans"``)
        ``iters`` Lloyd iterations per k-means run (30), ``refine_iters`` joint
        RVQ/AVQ refinement rounds (25), run on fresh random subsets of
        ``refine_sample`` vectors (20000) when the data are larger, followed by
        ``final_iters`` full-data rounds (2), ``tol`` relative-improvement stop (1e-4),
        ``init_sample`` k-means++ subsample (20000), ``ridge`` AVQ least-squares
        ridge (1e-6), ``train_beam`` search width while training (default ``beam``).
    Gradient (``method="ste"`` / ``"nsvq"``)
        ``steps`` Adam steps (1000) or ``epochs`` (overrides ``steps``),
        ``batch_size`` (2048), ``lr`` Adam step size relative to the RMS of the
        mean-removed data (0.01), ``lr_final`` final learning rate as a fraction
        of ``lr`` (cosine decay, 0.02), ``init`` codebook initialisation
        ("kmeans": short residual k-means with ``init_iters`` (4) Lloyd
        iterations on ``init_sample`` vectors; "data": random training vectors /
        residuals; "uniform": small uniform noise as in the NSVQ paper),
        ``replace`` codebook replacement (default: on for nsvq, off for ste),
        ``replace_every`` (200 steps), ``replace_threshold`` (a codeword used
        less than this fraction of the uniform share in a window is dead, 0.05),
        ``replace_until`` (fraction of the steps after which replacement stops,
        0.75), ``polish_iters`` (k-means/least-squares polish rounds after
        gradient training; default 0 = off, i.e. pure gradient training).
    """

    beam: int | None = None
    split: tuple[int, ...] | None = None
    remove_mean: bool = True
    progress: bool | None = None
    iters: int = 30
    refine_iters: int = 25
    refine_sample: int = 20000
    final_iters: int = 2
    tol: float = 1e-4
    init_sample: int = 20000
    ridge: float = 1e-6
    train_beam: int | None = None
    steps: int = 1000
    epochs: float | None = None
    batch_size: int = 2048
    lr: float = 0.01
    lr_final: float = 0.02
    init: str = "kmeans"
    init_iters: int = 4
    replace: bool | None = None
    replace_every: int = 200
    replace_threshold: float = 0.05
    replace_until: float = 0.75
    polish_iters: int = 0

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> TrainOptions:
        """Build from keyword options, rejecting unknown names and bad values."""
        names = set(cls._fields)
        unknown = sorted(set(options) - names)
        if unknown:
            raise ParameterError(f"unknown training option(s): {', '.join(unknown)}")
        opts = dict(options)
        if opts.get("split") is not None:
            try:
                opts["split"] = tuple(opts["split"])
            except TypeError:
                raise ParameterError(f"split must be a sequence, got {opts['split']!r}") from None
        out = cls(**opts)
        out._validate()
        return out

    def _validate(self) -> None:
        for name in ("iters", "refine_iters", "steps", "init_iters", "polish_iters"):
            check_int(getattr(self, name), name, 0)
        check_int(self.final_iters, "final_iters", 0)
        for name in ("init_sample", "batch_size", "replace_every", "refine_sample"):
            check_int(getattr(self, name), name, 1)
        for name in ("beam", "train_beam"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, 1, 1 << 20)
        positive = {"lr": self.lr, "lr_final": self.lr_final}
        nonneg = {
            "tol": self.tol,
            "ridge": self.ridge,
            "replace_threshold": self.replace_threshold,
            "replace_until": self.replace_until,
        }
        if self.epochs is not None:
            positive["epochs"] = self.epochs
        for name, v in {**positive, **nonneg}.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ParameterError(f"{name} must be a finite number, got {v!r}")
            if (name in positive and v <= 0) or v < 0:
                raise ParameterError(f"{name} must be {'positive' if name in positive else '>= 0'}")
        if self.init not in ("kmeans", "data", "uniform"):
            raise ParameterError(f"init must be 'kmeans', 'data' or 'uniform', got {self.init!r}")
        for name in ("remove_mean",):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be a bool")
        for name in ("progress", "replace"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be a bool or None")


# --------------------------------------------------------------------------- validation


def check_vectors(x: ArrayLike, dim: int | None = None, name: str = "x") -> FloatArray:
    """Return ``x`` as a C-contiguous float64 ``(N, D)`` array or raise ParameterError."""
    try:
        arr = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a numeric array: {exc}") from None
    if arr.ndim != 2:
        raise ParameterError(f"{name} must have shape (N, D), got {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ParameterError(f"{name} has dimension {arr.shape[1]}, expected {dim}")
    if arr.shape[1] < 1:
        raise ParameterError(f"{name} must have at least one dimension")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} contains NaN or infinite values")
    return arr


def check_weights(weights: ArrayLike | None, n: int, dim: int) -> FloatArray | None:
    """Validate per-vector, per-dimension weights: None, ``(N, D)`` or ``(D,)``, positive."""
    if weights is None:
        return None
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"weights must be a numeric array: {exc}") from None
    if w.shape == (dim,):
        w = np.broadcast_to(w, (n, dim))
    if w.shape != (n, dim):
        raise ParameterError(f"weights must have shape ({n}, {dim}), got {w.shape}")
    if not np.all(np.isfinite(w)) or not np.all(w > 0):
        raise ParameterError("weights must be finite and strictly positive")
    return np.ascontiguousarray(w)


def check_int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as int if it is an integer in ``[lo, hi]``, else raise ParameterError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        upper = "" if hi is None else f"..{hi}"
        raise ParameterError(f"{name} must be in {lo}{upper}, got {value}")
    return int(value)


def chunk_rows(work_per_row: int, cap: int = 4096, elements: int = _CHUNK_ELEMENTS) -> int:
    """Rows per chunk so that a chunk's distance matrix stays below ``elements``
    values (by default ~16 MB)."""
    return int(max(1, min(cap, elements // max(1, work_per_row))))


# ----------------------------------------------------------------------------- distances


def sq_norms(c: FloatArray, w: FloatArray | None) -> FloatArray:
    """Weighted squared norms of codewords: ``(1, K)`` if ``w`` is None else ``(N, K)``."""
    c2 = c * c
    if w is None:
        out: FloatArray = c2.sum(axis=1)[None, :]
    else:
        out = w @ c2.T
    return out


def weighted_sqdist(x: FloatArray, c: FloatArray, w: FloatArray | None = None) -> FloatArray:
    """Weighted squared distances between vectors and codewords.

    Parameters
    ----------
    x : ndarray, shape (N, d)
    c : ndarray, shape (K, d)
    w : ndarray, shape (N, d), optional

    Returns
    -------
    ndarray, shape (N, K)
        ``sum_j w_nj (x_nj - c_kj)**2``, clipped at zero.
    """
    wx = x if w is None else w * x
    d = (wx * x).sum(axis=1)[:, None] - 2.0 * (wx @ c.T) + sq_norms(c, w)
    out: FloatArray = np.maximum(d, 0.0)
    return out


def nearest(
    x: FloatArray, c: FloatArray, w: FloatArray | None = None
) -> tuple[IntArray, FloatArray]:
    """Weighted nearest codeword for every row, processed in chunks.

    Parameters
    ----------
    x : ndarray, shape (N, d)
    c : ndarray, shape (K, d)
    w : ndarray, shape (N, d), optional

    Returns
    -------
    idx : ndarray of int64, shape (N,)
    dist : ndarray, shape (N,)
        Weighted squared distance to the chosen codeword.
    """
    n = x.shape[0]
    idx = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float64)
    step = chunk_rows(c.shape[0])
    for s in range(0, n, step):
        e = min(n, s + step)
        ws = None if w is None else w[s:e]
        d = weighted_sqdist(x[s:e], c, ws)
        i = np.argmin(d, axis=1)
        idx[s:e] = i
        dist[s:e] = d[np.arange(e - s), i]
    return idx, dist


def weighted_error(x: FloatArray, y: FloatArray, w: FloatArray | None = None) -> FloatArray:
    """Per-row weighted squared error ``sum_d w (x - y)**2``, shape ``(N,)``."""
    e = (x - y) ** 2
    out: FloatArray = (e if w is None else w * e).sum(axis=1)
    return out


def sum_codewords(codebooks: list[FloatArray], codes: IntArray) -> FloatArray:
    """``sum_m codebooks[m][codes[:, m]]``: the reconstruction of RVQ and AVQ, shape (N, D)."""
    out: FloatArray = codebooks[0][codes[:, 0]].copy()
    for m in range(1, len(codebooks)):
        out += codebooks[m][codes[:, m]]
    return out


def better_of(
    r: FloatArray, w: FloatArray | None, codebooks: list[FloatArray], a: IntArray, b: IntArray
) -> IntArray:
    """Per row, the codes ``a`` or ``b`` (additive codebooks) with the smaller weighted error.

    Ties keep ``a``. The wide searches use it to be never worse than the greedy one.
    """
    e_a = weighted_error(r, sum_codewords(codebooks, a), w)
    e_b = weighted_error(r, sum_codewords(codebooks, b), w)
    out: IntArray = np.where((e_a <= e_b)[:, None], a, b)
    return out


def _smallest_sorted_slow(cand: FloatArray, t: int) -> IntArray:
    """Positions of the ``t`` smallest of each row, best first (``argpartition`` and a
    stable ``argsort`` of the chosen)."""
    pos = np.argpartition(cand, t - 1, axis=1)[:, :t]
    order = np.argsort(np.take_along_axis(cand, pos, axis=1), axis=1, kind="stable")
    out: IntArray = np.take_along_axis(pos, order, axis=1)
    return out


_MIN_BLOCK = 8  # fewest values per block whose minimum bounds the selection


def smallest_sorted(cand: FloatArray, t: int) -> IntArray:
    """:func:`_smallest_sorted_slow` of ``cand`` (n, T), the same positions, faster.

    Where the ``t + 1`` smallest values of a row are distinct, the result is
    the positions of the ``t`` smallest in increasing order, whatever the
    selection algorithm. They are all at most the ``(t + 1)``-th smallest of
    the minima of ``nb > t`` disjoint blocks of the row (each minimum is a
    value of the row), so only the few values below that bound are sorted.
    Rows with a tie among those ``t + 1`` (or NaN) take the slow path, which
    gives their tie order.
    """
    n, total = cand.shape
    nb = 1 << t.bit_length()  # the power of two above t
    if total % nb or total < nb * _MIN_BLOCK or n == 0:
        return _smallest_sorted_slow(cand, t)
    bound = np.partition(cand.reshape(n, nb, total // nb).min(axis=2), t, axis=1)[:, t]
    flat = np.flatnonzero(cand <= bound[:, None])
    rows = flat // total
    counts = np.bincount(rows, minlength=n)
    starts = np.cumsum(counts) - counts
    width = max(int(counts.max()), t + 1)
    if 4 * width > total:  # a loose bound (many equal or infinite values): no gain
        return _smallest_sorted_slow(cand, t)
    padded = np.full((n, width), np.inf)
    padded[rows, np.arange(flat.size) - starts[rows]] = cand.reshape(-1)[flat]
    order = np.argsort(padded, axis=1, kind="stable")[:, : t + 1]
    vals = np.take_along_axis(padded, order, axis=1)
    ok = (counts > t) & (vals[:, 1:] > vals[:, :-1]).all(axis=1)
    pick = np.minimum(starts[:, None] + order[:, :t], max(flat.size - 1, 0))
    out: IntArray = flat[pick] - (np.arange(n) * total)[:, None] if flat.size else pick
    if not ok.all():
        slow = np.flatnonzero(~ok)
        out[slow] = _smallest_sorted_slow(cand[slow], t)
    return out


def argmin_rows(cand: FloatArray) -> IntArray:
    """``_smallest_sorted_slow(cand, 1)[:, 0]``: ``argmin`` where a row's minimum is
    unique (else the slow path, for its tie order)."""
    best: IntArray = np.argmin(cand, axis=1)
    low = cand[np.arange(cand.shape[0]), best]
    ok = np.count_nonzero(cand <= low[:, None], axis=1) == 1
    if not ok.all():
        slow = np.flatnonzero(~ok)
        best[slow] = _smallest_sorted_slow(cand[slow], 1)[:, 0]
    return best


# ------------------------------------------------------------------------------ progress


class ProgressBar(Protocol):
    """Minimal progress-bar protocol (what tqdm provides)."""

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> Any: ...


class NoBar:
    """The progress bar that shows nothing (what a disabled bar is)."""

    def update(self, n: float = 1) -> None:
        return None

    def close(self) -> None:
        return None


def make_progress(total: int, desc: str, enabled: bool | None) -> ProgressBar:
    """A tqdm bar when enabled (default: stderr is a tty) and tqdm is installed."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return NoBar()
    bar: ProgressBar = tqdm(total=total, desc=desc, leave=False)
    return bar


# ----------------------------------------------------------------------------- quantizer

_REGISTRY: dict[str, type[Quantizer]] = {}


def _canonical(arr: NDArray[Any]) -> NDArray[Any]:
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))


def sha256() -> Any:
    """A new SHA-256 hash object: CPython's built-in one where it has it, hashlib's
    otherwise. The same digests; hashlib's import loads OpenSSL (about 3 ms of every
    ``svq decode``, which hashes a few kB of codebook)."""
    try:  # (the module hashlib itself falls back to: _sha2 from 3.12, _sha256 before)
        from _sha2 import sha256 as new
    except ImportError:
        try:
            from _sha256 import sha256 as new
        except ImportError:  # pragma: no cover - a Python built without them
            from hashlib import sha256 as new
    return new()


def compute_hash(config: QuantizerConfig, arrays: list[tuple[str, NDArray[Any]]]) -> str:
    """Hex SHA-256 over the config JSON and the named arrays (dtype, shape, bytes)."""
    h = sha256()
    h.update(b"svq-quantizer\0")
    h.update(config.to_json().encode("utf-8"))
    for name, arr in arrays:
        a = _canonical(arr)
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class Quantizer(ABC):
    """Base class of the trained vector quantizers.

    Parameters
    ----------
    codebooks : sequence of array_like, each shape (K, d_m)
        ``K = 2**bits_per_stage`` codewords per stage.
    mean : array_like, shape (D,), optional
        Mean removed before encoding; None means no mean removal.
    beam : int, optional
        Search width (RVQ M-best, AVQ beam); ignored (stored as 1) by VQ and PVQ.
    method, seed :
        Provenance stored in :attr:`config`.
    extra : dict of str to ndarray, optional
        Metadata arrays saved with the quantizer and covered by its hash.
    remove_mean : bool, optional
        Defaults to ``mean is not None``.
    """

    variant: ClassVar[str] = ""
    default_beam: ClassVar[int] = 1
    uses_beam: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.variant:
            _REGISTRY[cls.variant] = cls

    def __init__(
        self,
        codebooks: Sequence[ArrayLike],
        mean: ArrayLike | None = None,
        *,
        beam: int | None = None,
        method: str = "none",
        seed: int | None = None,
        extra: dict[str, NDArray[Any]] | None = None,
        remove_mean: bool | None = None,
    ) -> None:
        if len(codebooks) == 0:
            raise ParameterError("at least one codebook is required")
        cbs = [check_vectors(c, name=f"codebook {m}").copy() for m, c in enumerate(codebooks)]
        k = cbs[0].shape[0]
        if any(c.shape[0] != k for c in cbs):
            raise ParameterError("all codebooks must have the same number of codewords")
        if k < 2 or k & (k - 1) or k > 1 << MAX_BITS:
            raise ParameterError(f"codebook size must be a power of two in 2..2**{MAX_BITS}")
        dim = self._check_codebooks(cbs)
        for c in cbs:
            c.setflags(write=False)
        self._codebooks = cbs
        if remove_mean is None:
            remove_mean = mean is not None
        mu = (
            np.zeros(dim)
            if mean is None
            else check_vectors(
                np.reshape(np.asarray(mean, dtype=np.float64), (1, -1)), dim, name="mean"
            )[0]
        )
        if not remove_mean and np.any(mu != 0):
            raise ParameterError("a non-zero mean requires remove_mean=True")
        mu = mu.copy()
        mu.setflags(write=False)
        self._mean: FloatArray = mu
        beam = self.default_beam if beam is None else beam
        beam = check_int(beam, "beam", 1, 1 << 20) if self.uses_beam else 1
        split = tuple(c.shape[1] for c in cbs) if self.variant == "pvq" else ()
        self._config = QuantizerConfig(
            variant=self.variant,
            dim=dim,
            stages=len(cbs),
            bits_per_stage=k.bit_length() - 1,
            beam=beam,
            split=split,
            remove_mean=bool(remove_mean),
            method=str(method),
            seed=None if seed is None else int(seed),
        )
        self.extra: dict[str, NDArray[Any]] = dict(extra or {})

    # ---- subclass hooks
    @abstractmethod
    def _check_codebooks(self, cbs: list[FloatArray]) -> int:
        """Validate codebook shapes for the variant; return the vector dimension."""

    @abstractmethod
    def _search(self, r: FloatArray, w: FloatArray | None) -> IntArray:
        """Indices ``(n, stages)`` for mean-removed vectors ``r`` of one chunk."""

    @abstractmethod
    def _reconstruct(self, idx: IntArray) -> FloatArray:
        """Mean-free reconstruction ``(n, D)`` of valid indices ``(n, stages)``."""

    @abstractmethod
    def _work_per_row(self) -> int:
        """Size of the largest per-vector candidate array (used to choose chunk sizes)."""

    @abstractmethod
    def ops_per_vector(self) -> int:
        """Weighted operation count (adds, multiplies, compares) to encode one vector."""

    # ---- public API
    def encode(self, x: ArrayLike, weights: ArrayLike | None = None) -> IntArray:
        """Quantize vectors to indices.

        Parameters
        ----------
        x : array_like, shape (N, D)
        weights : array_like, shape (N, D) or (D,), optional
            Positive per-dimension weights of the squared-error distance.

        Returns
        -------
        ndarray of int64, shape (N, stages)
            Values in ``[0, 2**bits_per_stage)``; column ``m`` indexes codebook ``m``.
        """
        xv = check_vectors(x, self.dim)
        w = check_weights(weights, xv.shape[0], self.dim)
        r = xv - self._mean
        out = np.empty((xv.shape[0], self.stages), dtype=np.int64)
        step = chunk_rows(self._work_per_row(), elements=_SEARCH_ELEMENTS)
        for s in range(0, xv.shape[0], step):
            e = min(xv.shape[0], s + step)
            out[s:e] = self._search(r[s:e], None if w is None else w[s:e])
        return out

    def decode(self, idx: ArrayLike) -> FloatArray:
        """Reconstruct vectors from indices.

        Parameters
        ----------
        idx : array_like of int, shape (N, stages)

        Returns
        -------
        ndarray of float64, shape (N, D)
        """
        arr = np.asarray(idx)
        if arr.ndim != 2 or arr.shape[1] != self.stages:
            raise ParameterError(f"indices must have shape (N, {self.stages}), got {arr.shape}")
        if arr.size and (arr.dtype.kind not in "iu"):
            raise ParameterError("indices must be integers")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and (arr.min() < 0 or arr.max() >= self.codebook_size):
            raise ParameterError(f"indices must lie in [0, {self.codebook_size})")
        return self._reconstruct(arr) + self._mean

    def quantize(
        self, x: ArrayLike, weights: ArrayLike | None = None
    ) -> tuple[FloatArray, IntArray]:
        """Return ``(decode(idx), idx)`` with ``idx = encode(x, weights)``."""
        idx = self.encode(x, weights)
        return self.decode(idx), idx

    def distortion(self, x: ArrayLike, weights: ArrayLike | None = None) -> float:
        """Mean over vectors of the weighted squared quantization error."""
        xv = check_vectors(x, self.dim)
        w = check_weights(weights, xv.shape[0], self.dim)
        xh, _ = self.quantize(xv, w)
        return float(weighted_error(xv, xh, w).mean()) if len(xv) else 0.0

    # ---- properties
    @property
    def config(self) -> QuantizerConfig:
        """Frozen configuration (every non-array constructor argument)."""
        return self._config

    @property
    def codebooks(self) -> list[FloatArray]:
        """Read-only codebooks, one ``(K, d_m)`` array per stage."""
        return list(self._codebooks)

    @property
    def mean(self) -> FloatArray:
        """Read-only ``(D,)`` mean removed before the search."""
        return self._mean

    @property
    def dim(self) -> int:
        """Vector dimension ``D``."""
        return self._config.dim

    @property
    def stages(self) -> int:
        """Number of codebooks (index columns)."""
        return self._config.stages

    @property
    def bits_per_stage(self) -> int:
        """Bits per index column."""
        return self._config.bits_per_stage

    @property
    def bits(self) -> int:
        """Total bits per vector, ``stages * bits_per_stage``."""
        return self.stages * self.bits_per_stage

    @property
    def codebook_size(self) -> int:
        """Codewords per codebook, ``2**bits_per_stage``."""
        return 1 << self.bits_per_stage

    @property
    def beam(self) -> int:
        """Search width."""
        return self._config.beam

    @property
    def content_hash(self) -> str:
        """Hex SHA-256 over the config JSON, codebooks, mean and extra arrays."""
        return compute_hash(self._config, self._arrays())

    def _arrays(self) -> list[tuple[str, NDArray[Any]]]:
        arrays: list[tuple[str, NDArray[Any]]] = [
            (f"codebook_{m}", c) for m, c in enumerate(self._codebooks)
        ]
        arrays.append(("mean", self._mean))
        for name in sorted(self.extra):
            if not isinstance(name, str) or not _EXTRA_NAME.match(name):
                raise ParameterError(f"invalid extra array name {name!r}")
            arr = np.asarray(self.extra[name])
            if arr.dtype.kind not in "biuf":
                raise ParameterError(f"extra array {name!r} must be numeric, got {arr.dtype}")
            arrays.append((f"extra__{name}", arr))
        return arrays

    def save(
        self, path: str | os.PathLike[str], extra: dict[str, NDArray[Any]] | None = None
    ) -> None:
        """Write config, arrays and content hash to one ``.npz`` file (any extension).

        Parameters
        ----------
        path : str or path-like
        extra : dict of str to ndarray, optional
            Merged into :attr:`extra` before saving (so the object and file agree).
        """
        if extra:
            self.extra.update(extra)
        arrays = self._arrays()
        payload: dict[str, NDArray[Any]] = {name: _canonical(a) for name, a in arrays}
        payload["config"] = np.frombuffer(self._config.to_json().encode(), dtype=np.uint8)
        digest = compute_hash(self._config, arrays)
        payload["content_hash"] = np.frombuffer(digest.encode("ascii"), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **payload)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        c = self._config
        return (
            f"{type(self).__name__}(dim={c.dim}, stages={c.stages}, "
            f"bits_per_stage={c.bits_per_stage}, beam={c.beam}, method={c.method!r})"
        )


def _read_npz(path: str | os.PathLike[str]) -> dict[str, NDArray[Any]]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        z = np.load(io.BytesIO(raw), allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise CodebookError(f"{path}: not a codebook archive")
        with z:
            return {k: np.asarray(z[k]) for k in z.files}
    except CodebookError:
        raise
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
    ) as exc:
        raise CodebookError(f"{path}: cannot read codebook file ({exc})") from None


def _text(arr: NDArray[Any], what: str) -> str:
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise CodebookError(f"codebook file entry {what!r} must be a uint8 byte array")
    try:
        return arr.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CodebookError(f"codebook file entry {what!r} is not UTF-8 text") from None


def load_quantizer(path: str | os.PathLike[str]) -> Quantizer:
    """Load a quantizer written by :meth:`Quantizer.save`.

    Raises
    ------
    CodebookError
        Unreadable file, wrong format version, missing or unexpected entries,
        inconsistent shapes or a content hash mismatch.
    """
    return _load_quantizer(path, _read_npz(path))


def _load_quantizer(path: str | os.PathLike[str], data: dict[str, NDArray[Any]]) -> Quantizer:
    """:func:`load_quantizer` of the entries ``data`` read from ``path``."""
    if "predictor" in data:
        raise CodebookError(
            f"{path}: a predictive codebook (it keeps state across frames); "
            "load it with codec.quantizers.load_codebook"
        )
    for key in ("config", "content_hash", "mean"):
        if key not in data:
            raise CodebookError(f"{path}: codebook file lacks entry {key!r}")
    config = QuantizerConfig.from_json(_text(data["config"], "config"))
    stored_hash = _text(data["content_hash"], "content_hash")
    cls = _REGISTRY.get(config.variant)
    if cls is None:
        raise CodebookError(f"{path}: unknown quantizer variant {config.variant!r}")
    cb_keys = [f"codebook_{m}" for m in range(config.stages)]
    extra_keys = [k for k in data if k.startswith("extra__")]
    expected = set(cb_keys) | {"config", "content_hash", "mean"} | set(extra_keys)
    missing = [k for k in cb_keys if k not in data]
    if missing or set(data) != expected:
        raise CodebookError(f"{path}: unexpected or missing entries in codebook file")
    arrays = [data[k] for k in cb_keys] + [data["mean"]]
    if any(a.dtype != np.float64 for a in arrays):
        raise CodebookError(f"{path}: codebooks and mean must be float64")
    try:
        q = cls(
            [data[k] for k in cb_keys],
            data["mean"],
            beam=config.beam,
            method=config.method,
            seed=config.seed,
            remove_mean=config.remove_mean,
            extra={k[len("extra__") :]: data[k] for k in extra_keys},
        )
    except ParameterError as exc:
        raise CodebookError(f"{path}: inconsistent codebook file ({exc})") from None
    if q.config != config:
        raise CodebookError(f"{path}: codebook arrays do not match the stored config")
    if q.content_hash != stored_hash:
        raise CodebookError(f"{path}: content hash mismatch (file corrupt or tampered with)")
    return q
