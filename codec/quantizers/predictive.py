"""Predictive quantization: a memoryless quantizer behind a frame-to-frame predictor.

A :class:`PredictiveQuantizer` codes a stream of vectors (one per frame) with
any variant of :mod:`codec.quantizers` (VQ, RVQ, AVQ, PVQ, trained by any
method).  Per frame ``n``, with ``z(n) = x(n) - mean`` and a state ``s(n)``
that both encoder and decoder derive from what the decoder has received:

``p(n) = A s(n)``            prediction (``A`` a ``D x D`` matrix)
``u(n) = z(n) - p(n) [+ f(z, s)]``  quantizer input (``f``: optional encoder transform)
``u^(n) = Q(u(n))``          the inner quantizer (its own mean is zero)
``z^(n) = p(n) + u^(n) [+ g(u^, s)]``  decoded vector (``g``: optional decoder transform)

Kinds of predictor (``kind``)
    ``"ma"``  moving average as in AMR-WB (ITU-T G.722.2): the state is the
              previous frame's quantized prediction error, ``s(n+1) = u^(n)``
              (with ``A = I/3`` it is AMR-WB's predictor).  Its memory is one
              frame: one frame after a loss the decoder is exact again.
    ``"ar"``  autoregressive as in EVS (TS 26.445 §5.2.2.1): the state is the
              previous decoded mean-removed vector, ``s(n+1) = z^(n)``.  Its
              memory is infinite; the safety net resets it.
Safety net (``safety``, EVS-style)
    A second, memoryless quantizer codes ``z(n)`` itself.  The encoder codes
    each frame both ways and keeps the one with the smaller weighted error
    (scaled by ``safety_bias`` >= 1 in favour of the safety net, which
    shortens error propagation); one bit per frame (index column 0: 0 =
    predictive, 1 = safety net) tells the decoder.  After a safety-net frame
    the prediction counts as zero: ``s(n+1) = z^(n)`` for both kinds.
Transform (``transform``, trained end to end by
:func:`codec.quantizers.endtoend.train_end_to_end`)
    Residual one-hidden-layer networks, ``f(z, s) = V_e tanh(U_e [z; s] + c_e)``
    and ``g(u^, s) = V_d tanh(U_d [u^; s] + c_d)``; they start at zero, so the
    transform refines the linear predictive quantizer and the quantizer input
    stays in the LSF domain (the LSF weights still apply to its search).

Streams
    :meth:`encode` / :meth:`decode` code whole streams (several at once with
    ``offsets``: stream ``i`` owns rows ``offsets[i]:offsets[i+1]`` and starts
    from the zero state).  :meth:`encode_step` / :meth:`decode_step` code one
    frame of ``n`` streams from explicit states; the encoder reconstructs with
    :meth:`decode_step`, the decoder's own function, so their states agree
    bit for bit.  :meth:`conceal_step` updates the state of a lost frame from
    the concealed vector (as AMR-WB does: the MA state becomes
    ``z_concealed - p``).

File format
    An ``.npz`` archive like :meth:`Quantizer.save`'s, told apart by a
    ``predictor`` entry (JSON of :class:`PredictorConfig`, uint8); the inner
    quantizers' entries carry the prefixes ``q__`` and ``s__`` (safety net),
    the predictor's arrays the prefix ``pred__``; ``content_hash`` is a
    SHA-256 over the predictor JSON, the inner quantizers' content hashes and
    the predictor arrays.  :func:`load_quantizer` refuses these files with a
    one-line error; :func:`load_codebook` loads either kind.  Plain quantizer
    files are written, read and hashed exactly as before.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codec.errors import ParameterError

from .base import (
    CodebookError,
    FloatArray,
    IntArray,
    Quantizer,
    QuantizerConfig,
    _canonical,
    _read_npz,
    _text,
    check_vectors,
    check_weights,
    sha256,
    weighted_error,
)

__all__ = [
    "KINDS",
    "PredictiveQuantizer",
    "PredictorConfig",
    "load_codebook",
    "load_predictive",
]

KINDS: tuple[str, ...] = ("ma", "ar")
PREDICTOR_FORMAT = 1
TRANSFORM_KEYS = ("enc_U", "enc_c", "enc_V", "dec_U", "dec_c", "dec_V")


class PredictorConfig(NamedTuple):
    """Non-array settings of a :class:`PredictiveQuantizer` (stored as JSON)."""

    kind: str
    dim: int
    safety_net: bool = False
    safety_bias: float = 1.0
    hidden: int = 0
    method: str = "none"
    format_version: int = PREDICTOR_FORMAT

    def to_json(self) -> str:
        return json.dumps(self._asdict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PredictorConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CodebookError(f"predictor config is not valid JSON: {exc}") from None
        if not isinstance(raw, dict) or set(raw) != set(cls._fields):
            raise CodebookError("predictor config has missing or unexpected fields")
        if raw["format_version"] != PREDICTOR_FORMAT:
            raise CodebookError(
                f"unsupported predictor format version {raw['format_version']!r} "
                f"(expected {PREDICTOR_FORMAT})"
            )
        try:
            return cls(
                kind=str(raw["kind"]),
                dim=int(raw["dim"]),
                safety_net=bool(raw["safety_net"]),
                safety_bias=float(raw["safety_bias"]),
                hidden=int(raw["hidden"]),
                method=str(raw["method"]),
                format_version=int(raw["format_version"]),
            )
        except (TypeError, ValueError):
            raise CodebookError("predictor config has fields of the wrong type") from None


def _matvec(a: FloatArray, m: FloatArray) -> FloatArray:
    """Rows of ``a @ m.T`` computed row by row (no BLAS), so that a row's result
    does not depend on how many rows are computed together: decoders that code
    one stream and many streams at once agree bit for bit."""
    out: FloatArray = np.sum(a[:, None, :] * m[None, :, :], axis=2)
    return out


def _mlp(a: FloatArray, u: FloatArray, c: FloatArray, v: FloatArray) -> FloatArray:
    return _matvec(np.tanh(_matvec(a, u) + c), v)


class PredictiveQuantizer:
    """A quantizer behind a frame-to-frame predictor (see the module docstring).

    Parameters
    ----------
    quantizer : Quantizer
        Codes the prediction error ``u``; must not remove a mean of its own.
    mean : array_like, shape (D,)
    matrix : array_like, shape (D, D)
        Prediction matrix ``A``.
    kind : {"ma", "ar"}
    safety : Quantizer, optional
        Memoryless safety-net quantizer of ``z`` (same stages and bits per
        stage as ``quantizer``, no mean of its own).
    safety_bias : float
        The safety net is chosen when its weighted error is at most
        ``safety_bias`` times the predictive one (>= 1).
    transform : dict of str to ndarray, optional
        ``enc_U (H, 2D)``, ``enc_c (H,)``, ``enc_V (D, H)``, ``dec_U (H, 2D)``,
        ``dec_c (H,)``, ``dec_V (D, H)``.
    method : str
        Provenance (e.g. ``"nsvq-e2e"``).
    """

    def __init__(
        self,
        quantizer: Quantizer,
        mean: ArrayLike,
        matrix: ArrayLike,
        *,
        kind: str = "ma",
        safety: Quantizer | None = None,
        safety_bias: float = 1.0,
        transform: dict[str, ArrayLike] | None = None,
        method: str = "none",
    ) -> None:
        if not isinstance(quantizer, Quantizer):
            raise ParameterError("quantizer must be a Quantizer")
        if kind not in KINDS:
            raise ParameterError(f"unknown predictor kind {kind!r}; expected one of {KINDS}")
        d = quantizer.dim
        for q, what in ((quantizer, "quantizer"), (safety, "safety-net quantizer")):
            if q is not None and np.any(q.mean != 0):
                raise ParameterError(f"the {what} of a predictive quantizer must not remove a mean")
        if safety is not None and (
            safety.dim != d
            or safety.stages != quantizer.stages
            or safety.bits_per_stage != quantizer.bits_per_stage
        ):
            raise ParameterError(
                "the safety-net quantizer must have the dimension, stages and bits per "
                "stage of the predictive one"
            )
        if not np.isfinite(safety_bias) or safety_bias < 1.0:
            raise ParameterError(f"safety_bias must be >= 1, got {safety_bias}")
        self.quantizer = quantizer
        self.safety = safety
        self.mean = self._fixed(check_vectors(np.reshape(np.asarray(mean, float), (1, -1)), d)[0])
        a = np.asarray(matrix, dtype=np.float64)
        if a.shape != (d, d) or not np.all(np.isfinite(a)):
            raise ParameterError(f"prediction matrix must be finite with shape ({d}, {d})")
        self.matrix = self._fixed(a)
        self.transform: dict[str, FloatArray] | None = None
        hidden = 0
        if transform is not None:
            t = {k: np.asarray(v, dtype=np.float64) for k, v in transform.items()}
            if set(t) != set(TRANSFORM_KEYS):
                raise ParameterError(f"transform needs exactly the arrays {TRANSFORM_KEYS}")
            hidden = t["enc_c"].shape[0] if t["enc_c"].ndim == 1 else -1
            shapes = {
                "enc_U": (hidden, 2 * d), "enc_c": (hidden,), "enc_V": (d, hidden),
                "dec_U": (hidden, 2 * d), "dec_c": (hidden,), "dec_V": (d, hidden),
            }  # fmt: skip
            for k, shape in shapes.items():
                if t[k].shape != shape or not np.all(np.isfinite(t[k])):
                    raise ParameterError(f"transform array {k} must be finite with shape {shape}")
            self.transform = {k: self._fixed(v) for k, v in t.items()}
        self.config = PredictorConfig(
            kind=kind,
            dim=d,
            safety_net=safety is not None,
            safety_bias=float(safety_bias),
            hidden=hidden,
            method=str(method),
        )

    @staticmethod
    def _fixed(a: FloatArray) -> FloatArray:
        out = np.array(a, dtype=np.float64)
        out.setflags(write=False)
        return out

    # ---- properties
    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def columns(self) -> int:
        """Index columns per frame (the safety-net flag first, when there is one)."""
        return self.quantizer.stages + (1 if self.safety is not None else 0)

    @property
    def field_bits(self) -> list[int]:
        """Bit width of each index column."""
        flag = [1] if self.safety is not None else []
        return flag + [self.quantizer.bits_per_stage] * self.quantizer.stages

    @property
    def bits(self) -> int:
        """Bits per frame (including the safety-net flag)."""
        return int(sum(self.field_bits))

    def ops_per_vector(self) -> int:
        """Encoder operations per vector: mean and prediction, the transform, the search(es)."""
        d, h = self.dim, self.config.hidden
        ops = d + 2 * d * d + d + self.quantizer.ops_per_vector() + d
        if h:
            ops += 2 * (2 * (2 * d) * h + h + 2 * h * d + d) + 10 * h  # two MLPs, tanh ~10 ops
        if self.safety is not None:
            ops += self.safety.ops_per_vector() + 2 * 3 * d + 1  # second search, two errors
        return int(ops)

    # ---- one frame of n streams
    def initial_state(self, n: int = 1) -> FloatArray:
        """The state at the start of a stream (zeros), shape ``(n, D)``."""
        return np.zeros((n, self.dim))

    def _enc_transform(self, z: FloatArray, s: FloatArray) -> FloatArray:
        t = self.transform
        assert t is not None
        return _mlp(np.concatenate([z, s], axis=1), t["enc_U"], t["enc_c"], t["enc_V"])

    def _dec_transform(self, uh: FloatArray, s: FloatArray) -> FloatArray:
        t = self.transform
        assert t is not None
        return _mlp(np.concatenate([uh, s], axis=1), t["dec_U"], t["dec_c"], t["dec_V"])

    def _check_state(self, state: ArrayLike, n: int) -> FloatArray:
        s = np.asarray(state, dtype=np.float64)
        if s.shape != (n, self.dim):
            raise ParameterError(f"state must have shape ({n}, {self.dim}), got {s.shape}")
        return s

    def decode_step(self, idx: ArrayLike, state: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Decode one frame of ``n`` streams.

        Parameters
        ----------
        idx : array_like of int, shape (n, columns)
        state : array_like, shape (n, D)

        Returns
        -------
        x_hat : ndarray, shape (n, D)
        new_state : ndarray, shape (n, D)
        """
        arr = np.asarray(idx)
        if arr.ndim != 2 or arr.shape[1] != self.columns:
            raise ParameterError(f"indices must have shape (n, {self.columns}), got {arr.shape}")
        s = self._check_state(state, arr.shape[0])
        p = _matvec(s, self.matrix)
        codes = arr[:, 1:] if self.safety is not None else arr
        uh = self.quantizer.decode(codes)
        zh = p + uh
        if self.transform is not None:
            zh = zh + self._dec_transform(uh, s)
        new = zh.copy() if self.kind == "ar" else uh.copy()
        if self.safety is not None:
            flag = arr[:, 0]
            if flag.size and (flag.min() < 0 or flag.max() > 1):
                raise ParameterError("safety-net flags (index column 0) must be 0 or 1")
            sn = flag == 1
            if sn.any():
                zs = self.safety.decode(codes[sn])
                zh[sn] = zs
                new[sn] = zs
        return zh + self.mean, new

    def encode_step(
        self, x: ArrayLike, state: ArrayLike, weights: ArrayLike | None = None
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Encode one frame of ``n`` streams.

        Returns
        -------
        idx : ndarray of int64, shape (n, columns)
        x_hat : ndarray, shape (n, D)
            What the decoder reconstructs (computed by :meth:`decode_step`).
        new_state : ndarray, shape (n, D)
        """
        xv = check_vectors(x, self.dim)
        n = xv.shape[0]
        w = check_weights(weights, n, self.dim)
        s = self._check_state(state, n)
        z = xv - self.mean
        u = z - _matvec(s, self.matrix)
        if self.transform is not None:
            u = u + self._enc_transform(z, s)
        codes = self.quantizer.encode(u, w)
        if self.safety is None:
            idx = codes
        else:
            idx = np.concatenate([np.zeros((n, 1), np.int64), codes], axis=1)
            pred, _ = self.decode_step(idx, s)
            s_codes = self.safety.encode(z, w)
            e_pred = weighted_error(xv, pred, w)
            e_safe = weighted_error(z, self.safety.decode(s_codes), w)
            use = e_safe <= self.config.safety_bias * e_pred
            idx[use, 0] = 1
            idx[use, 1:] = s_codes[use]
        xh, new = self.decode_step(idx, s)
        return idx, xh, new

    def conceal_step(self, x_concealed: ArrayLike, state: ArrayLike) -> FloatArray:
        """New state after a lost frame whose vector was concealed as ``x_concealed``."""
        xv = check_vectors(x_concealed, self.dim)
        s = self._check_state(state, xv.shape[0])
        z = xv - self.mean
        out: FloatArray = z if self.kind == "ar" else z - _matvec(s, self.matrix)
        return out.copy()

    # ---- whole streams
    @staticmethod
    def _offsets(n: int, offsets: ArrayLike | None) -> NDArray[np.int64]:
        if offsets is None:
            return np.array([0, n], dtype=np.int64)
        o = np.asarray(offsets, dtype=np.int64)
        if o.ndim != 1 or o.size < 2 or o[0] != 0 or o[-1] != n or np.any(np.diff(o) < 0):
            raise ParameterError(f"offsets must rise from 0 to the number of vectors ({n})")
        return o

    def _run(self, n: int, offsets: ArrayLike | None, step: Any) -> None:
        o = self._offsets(n, offsets)
        lengths = np.diff(o)
        state = self.initial_state(len(lengths))
        for t in range(int(lengths.max(initial=0))):
            active = np.flatnonzero(lengths > t)
            rows = o[active] + t
            state[active] = step(rows, state[active])

    def encode(
        self, x: ArrayLike, weights: ArrayLike | None = None, offsets: ArrayLike | None = None
    ) -> IntArray:
        """Indices ``(N, columns)`` of streams of vectors (all streams frame-parallel)."""
        return self.quantize(x, weights, offsets)[1]

    def quantize(
        self, x: ArrayLike, weights: ArrayLike | None = None, offsets: ArrayLike | None = None
    ) -> tuple[FloatArray, IntArray]:
        """``(decoded vectors, indices)`` of streams (see :meth:`encode`)."""
        xv = check_vectors(x, self.dim)
        w = check_weights(weights, xv.shape[0], self.dim)
        idx = np.zeros((xv.shape[0], self.columns), dtype=np.int64)
        xh = np.zeros_like(xv)

        def step(rows: NDArray[np.int64], s: FloatArray) -> FloatArray:
            i, y, new = self.encode_step(xv[rows], s, None if w is None else w[rows])
            idx[rows], xh[rows] = i, y
            return new

        self._run(xv.shape[0], offsets, step)
        return xh, idx

    def decode(self, idx: ArrayLike, offsets: ArrayLike | None = None) -> FloatArray:
        """Decoded vectors ``(N, D)`` of index streams (see :meth:`encode`)."""
        arr = np.asarray(idx)
        if arr.ndim != 2 or arr.shape[1] != self.columns:
            raise ParameterError(f"indices must have shape (N, {self.columns}), got {arr.shape}")
        out = np.zeros((arr.shape[0], self.dim))

        def step(rows: NDArray[np.int64], s: FloatArray) -> FloatArray:
            out[rows], new = self.decode_step(arr[rows], s)
            return new

        self._run(arr.shape[0], offsets, step)
        return out

    # ---- files
    def _arrays(self) -> list[tuple[str, NDArray[Any]]]:
        arrays: list[tuple[str, NDArray[Any]]] = [
            ("pred__mean", self.mean),
            ("pred__matrix", self.matrix),
        ]
        if self.transform is not None:
            arrays += [(f"pred__{k}", self.transform[k]) for k in TRANSFORM_KEYS]
        return arrays

    @property
    def content_hash(self) -> str:
        """Hex SHA-256 over the predictor config, inner quantizers' hashes and arrays."""
        h = sha256()
        h.update(b"svq-predictive\0")
        h.update(self.config.to_json().encode())
        h.update(f"\0q\0{self.quantizer.content_hash}".encode())
        if self.safety is not None:
            h.update(f"\0s\0{self.safety.content_hash}".encode())
        for name, arr in self._arrays():
            a = _canonical(arr)
            h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one ``.npz`` file (see the module docstring)."""
        payload: dict[str, NDArray[Any]] = {
            "predictor": np.frombuffer(self.config.to_json().encode(), dtype=np.uint8)
        }
        for prefix, q in (("q__", self.quantizer), ("s__", self.safety)):
            if q is None:
                continue
            payload[prefix + "config"] = np.frombuffer(q.config.to_json().encode(), np.uint8)
            for name, a in q._arrays():
                payload[prefix + name] = _canonical(a)
        for name, a in self._arrays():
            payload[name] = _canonical(a)
        payload["content_hash"] = np.frombuffer(self.content_hash.encode("ascii"), np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **payload)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        c = self.config
        return (
            f"PredictiveQuantizer(kind={c.kind!r}, {self.quantizer!r}, "
            f"safety_net={c.safety_net}, hidden={c.hidden}, bits={self.bits})"
        )


def _inner(data: dict[str, NDArray[Any]], prefix: str, path: object) -> Quantizer:
    from .base import _REGISTRY

    sub = {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}
    if "config" not in sub or "mean" not in sub:
        raise CodebookError(f"{path}: predictive codebook lacks its {prefix[:-2]!r} quantizer")
    config = QuantizerConfig.from_json(_text(sub["config"], prefix + "config"))
    cls = _REGISTRY.get(config.variant)
    if cls is None:
        raise CodebookError(f"{path}: unknown quantizer variant {config.variant!r}")
    cb_keys = [f"codebook_{m}" for m in range(config.stages)]
    extra = {k[len("extra__") :]: v for k, v in sub.items() if k.startswith("extra__")}
    if set(sub) != {"config", "mean", *cb_keys, *(f"extra__{k}" for k in extra)}:
        raise CodebookError(f"{path}: unexpected or missing entries in predictive codebook")
    if any(sub[k].dtype != np.float64 for k in [*cb_keys, "mean"]):
        raise CodebookError(f"{path}: codebooks and mean must be float64")
    try:
        q = cls(
            [sub[k] for k in cb_keys],
            sub["mean"],
            beam=config.beam,
            method=config.method,
            seed=config.seed,
            remove_mean=config.remove_mean,
            extra=extra,
        )
    except ParameterError as exc:
        raise CodebookError(f"{path}: inconsistent codebook file ({exc})") from None
    if q.config != config:
        raise CodebookError(f"{path}: codebook arrays do not match the stored config")
    return q  # its content hash is part of the file's, checked by the caller


def load_predictive(path: str | os.PathLike[str]) -> PredictiveQuantizer:
    """Load a file written by :meth:`PredictiveQuantizer.save` (hash checked).

    Raises
    ------
    CodebookError
        Unreadable, inconsistent, tampered with, or a plain (memoryless) codebook.
    """
    return _load_predictive(path, _read_npz(path))


def _load_predictive(
    path: str | os.PathLike[str], data: dict[str, NDArray[Any]]
) -> PredictiveQuantizer:
    """:func:`load_predictive` of the entries ``data`` read from ``path``."""
    if "predictor" not in data:
        raise CodebookError(f"{path}: a memoryless codebook, not a predictive one")
    if "content_hash" not in data:
        raise CodebookError(f"{path}: codebook file lacks entry 'content_hash'")
    config = PredictorConfig.from_json(_text(data["predictor"], "predictor"))
    stored = _text(data["content_hash"], "content_hash")
    pred = {k[len("pred__") :]: v for k, v in data.items() if k.startswith("pred__")}
    want = {"mean", "matrix", *(TRANSFORM_KEYS if config.hidden else ())}
    others = {k for k in data if not k.startswith(("pred__", "q__", "s__"))}
    has_safety = any(k.startswith("s__") for k in data)
    if set(pred) != want or others != {"predictor", "content_hash"}:
        raise CodebookError(f"{path}: unexpected or missing entries in predictive codebook")
    if has_safety != config.safety_net:
        raise CodebookError(f"{path}: safety-net entries do not match the predictor config")
    q = _inner(data, "q__", path)
    s = _inner(data, "s__", path) if config.safety_net else None
    try:
        pq = PredictiveQuantizer(
            q,
            pred["mean"],
            pred["matrix"],
            kind=config.kind,
            safety=s,
            safety_bias=config.safety_bias,
            transform={k: pred[k] for k in TRANSFORM_KEYS} if config.hidden else None,
            method=config.method,
        )
    except ParameterError as exc:
        raise CodebookError(f"{path}: inconsistent predictive codebook ({exc})") from None
    if pq.config != config:
        raise CodebookError(f"{path}: predictor arrays do not match the stored config")
    if pq.content_hash != stored:
        raise CodebookError(f"{path}: content hash mismatch (file corrupt or tampered with)")
    return pq


def load_codebook(path: str | os.PathLike[str]) -> Quantizer | PredictiveQuantizer:
    """Load a memoryless (:class:`Quantizer`) or predictive codebook file."""
    from .base import _load_quantizer

    data = _read_npz(path)  # (read once)
    if "predictor" in data:
        return _load_predictive(path, data)
    return _load_quantizer(path, data)


# ----------------------------------------------------------------------------- training


def trace(
    pq: PredictiveQuantizer,
    x: ArrayLike,
    weights: ArrayLike | None = None,
    offsets: ArrayLike | None = None,
) -> tuple[FloatArray, IntArray, FloatArray]:
    """Closed-loop run of ``pq`` over streams.

    Returns
    -------
    states : ndarray, shape (N, D)
        The state each frame was coded from.
    idx : ndarray of int64, shape (N, columns)
    x_hat : ndarray, shape (N, D)
    """
    xv = check_vectors(x, pq.dim)
    w = check_weights(weights, xv.shape[0], pq.dim)
    states = np.zeros_like(xv)
    idx = np.zeros((xv.shape[0], pq.columns), dtype=np.int64)
    xh = np.zeros_like(xv)

    def step(rows: NDArray[np.int64], s: FloatArray) -> FloatArray:
        states[rows] = s
        i, y, new = pq.encode_step(xv[rows], s, None if w is None else w[rows])
        idx[rows], xh[rows] = i, y
        return new

    pq._run(xv.shape[0], offsets, step)
    return states, idx, xh


def open_loop_states(
    z: FloatArray, matrix: FloatArray, kind: str, offsets: NDArray[np.int64]
) -> FloatArray:
    """States of an unquantized run: ``z(n-1)`` (AR), or ``r(n-1)``, ``r = z - A r(n-1)`` (MA)."""
    s = np.zeros_like(z)
    lengths = np.diff(offsets)
    prev = np.zeros((len(lengths), z.shape[1]))
    for t in range(int(lengths.max(initial=0))):
        active = np.flatnonzero(lengths > t)
        rows = offsets[active] + t
        s[rows] = prev[active]
        prev[active] = z[rows] if kind == "ar" else z[rows] - prev[active] @ matrix.T
    return s


def fit_matrix(
    z: FloatArray, s: FloatArray, w: FloatArray | None, ridge: float = 1e-6
) -> FloatArray:
    """Least-squares prediction matrix ``A`` of ``z ~ A s``, row ``d`` weighted by ``w[:, d]``."""
    n, d = z.shape
    a = np.zeros((d, d))
    reg = ridge * max(float(np.mean(s * s)), 1e-12) * n * np.eye(d)
    for i in range(d):
        wi = np.ones(n) if w is None else w[:, i]
        g = (s * wi[:, None]).T @ s + reg * (wi.mean())
        a[i] = np.linalg.solve(g, (s * wi[:, None]).T @ z[:, i])
    return a


def train_predictive(
    x: ArrayLike,
    offsets: ArrayLike | None = None,
    *,
    rows: ArrayLike | None = None,
    variant: str = "rvq",
    stages: int = 4,
    bits: int = 4,
    method: str = "kmeans",
    weights: ArrayLike | None = None,
    seed: int = 0,
    kind: str = "ma",
    matrix: str | float = "fit",
    safety_net: bool = False,
    safety_bias: float = 1.0,
    closed_loop: int = 0,
    **options: object,
) -> PredictiveQuantizer:
    """Train a :class:`PredictiveQuantizer` (any variant, any method).

    Parameters
    ----------
    x : array_like, shape (N, D)
        Vectors of whole streams (the prediction runs along them).
    offsets : array_like of int, optional
        Stream boundaries (default: one stream).
    rows : array_like of int, optional
        The rows to train the codebooks on (e.g. speaker-balanced); default all.
    variant, stages, bits, method, weights, seed, **options :
        As for :func:`~codec.quantizers.train_quantizer` (the inner quantizers
        remove no mean of their own).
    kind : {"ma", "ar"}
    matrix : "fit" or float
        ``"fit"``: the weighted least-squares matrix on the open-loop states
        (for MA, three fixed-point rounds); a number ``c``: ``A = c I``
        (AMR-WB's MA predictor is ``c = 1/3``).
    safety_net : bool
        Add a memoryless safety-net quantizer of the same structure (+1 bit).
    safety_bias : float
    closed_loop : int
        Rounds of retraining on closed-loop targets (states from the trained
        quantizer, matrix refitted when ``matrix="fit"``).

    Returns
    -------
    PredictiveQuantizer
    """
    from . import train_quantizer

    if kind not in KINDS:
        raise ParameterError(f"unknown predictor kind {kind!r}; expected one of {KINDS}")
    if "remove_mean" in options:
        raise ParameterError("option 'remove_mean' does not apply: the predictor removes the mean")
    if not (matrix == "fit" or isinstance(matrix, (int, float))):
        raise ParameterError(f"matrix must be 'fit' or a number, got {matrix!r}")
    closed_loop = int(closed_loop)
    xv = check_vectors(x)
    n, d = xv.shape
    o = PredictiveQuantizer._offsets(n, offsets)
    w = check_weights(weights, n, d)
    sel = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if sel.ndim != 1 or sel.size == 0 or sel.min() < 0 or sel.max() >= n:
        raise ParameterError("rows must be a non-empty list of row numbers of x")
    ws = None if w is None else w[sel]
    mean = xv[sel].mean(axis=0) if ws is None else (ws * xv[sel]).sum(0) / ws.sum(0)
    z = xv - mean

    def fit_a(s: FloatArray, keep: NDArray[np.int64]) -> FloatArray:
        return fit_matrix(z[keep], s[keep], None if w is None else w[keep])

    if matrix == "fit":
        a = np.eye(d) / 3.0 if kind == "ma" else np.zeros((d, d))
        for _ in range(3 if kind == "ma" else 1):
            a = fit_a(open_loop_states(z, a, kind, o), sel)
    else:
        a = float(matrix) * np.eye(d)
    s = open_loop_states(z, a, kind, o)

    def fit_q(targets: FloatArray, tw: FloatArray | None) -> Quantizer:
        return train_quantizer(
            targets, variant=variant, stages=stages, bits=bits, method=method,
            weights=tw, seed=seed, remove_mean=False, **options,
        )  # fmt: skip

    safety = fit_q(z[sel], ws) if safety_net else None
    q = fit_q(z[sel] - s[sel] @ a.T, ws)
    pq = PredictiveQuantizer(
        q, mean, a, kind=kind, safety=safety, safety_bias=safety_bias, method=method
    )
    for _ in range(closed_loop):
        s, idx, _ = trace(pq, xv, w, o)
        keep = sel if not safety_net else sel[idx[sel, 0] == 0]
        if matrix == "fit":
            a = fit_a(s, keep)
        q = fit_q(z[keep] - s[keep] @ a.T, None if w is None else w[keep])
        pq = PredictiveQuantizer(
            q, mean, a, kind=kind, safety=safety, safety_bias=safety_bias, method=method
        )
    return pq
