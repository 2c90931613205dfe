"""The post-filter's feature network, numpy inference (trained in torch by
``recipes.train_postfilter``; the two compute the same function).

Per frame ``k``, with ``u_k`` the normalized feature row
(:mod:`codec.postfilter.features`)::

    h1_k = tanh(W1 u_k + b1)
    h2_k = tanh(W2 [h1_{k-2}; h1_{k-1}; h1_k] + b2)      causal convolution
    h3_k = tanh(W3 [h2_{k-2}; h2_{k-1}; h2_k] + b3)      causal convolution
    r_k  = W4 h3_k + b4                                   SUBFRAMES x raw_width(C)

``r_k`` holds the raw filter parameters of the frame's four 5 ms subframes
(:func:`codec.postfilter.filters.kernels`, :func:`~codec.postfilter.filters.shaping`);
``C``, the rectifying branch's channels (0 in the shipped weights), follows
from the width of ``W4``.
The convolutions look only back (zero state at the start of a stream), so
the network adds no delay; its state is two frames of ``h1`` and ``h2``.
:class:`FeatureNet` evaluates it on an integer grid, so that its result
does not depend on how frames are grouped.

The weights are a plain ``.npz`` of float arrays (no pickle) named by their
SHA-256 (:func:`load_weights` checks it).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from codec.errors import WeightsError
from codec.postfilter.features import N_BASE, N_FEATURES

__all__ = [
    "SUBFRAMES",
    "N_RAW",
    "BRANCH_TAPS",
    "MAX_BRANCH_CHANNELS",
    "raw_width",
    "branch_channels",
    "CONTEXT",
    "Weights",
    "FeatureNet",
    "load_weights",
    "save_weights",
]

FloatArray = npt.NDArray[np.float64]

SUBFRAMES = 4  # per 20 ms frame: 5 ms each
COMB_TAPS = 5
FIR_TAPS = 16
N_RAW = 1 + COMB_TAPS + FIR_TAPS + 1 + 1  # comb gain, comb taps, FIR taps, output gain, shaping
BRANCH_TAPS = 16
MAX_BRANCH_CHANNELS = 4


def raw_width(branch_channels: int = 0) -> int:
    """Raw parameters per subframe: :data:`N_RAW`, then for each of the rectifying
    branch's channels two FIRs of :data:`BRANCH_TAPS` (all the first FIRs, then
    all the second ones; :func:`codec.postfilter.filters.kernels`)."""
    return N_RAW + 2 * branch_channels * BRANCH_TAPS


def branch_channels(width: int) -> int:
    """The rectifying branch's channels in raw parameter rows of ``width`` values
    (the inverse of :func:`raw_width`); ValueError for a width that is none of them."""
    ch, rest = divmod(width - N_RAW, 2 * BRANCH_TAPS)
    if rest or not 0 <= ch <= MAX_BRANCH_CHANNELS:
        raise ValueError(f"raw parameters have {width} values, not {N_RAW} + 32 per branch channel")
    return ch


CONTEXT = 2  # past frames each convolution sees

_NAMES = ("mean", "std", "w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4")


@dataclass(frozen=True)
class Weights:
    """The network's arrays (float64) and what it was trained for."""

    mean: FloatArray  # (F,) feature normalization (F: features.N_BASE or N_FEATURES)
    std: FloatArray  # (F,)
    w1: FloatArray  # (F, H)
    b1: FloatArray  # (H,)
    w2: FloatArray  # (3H, H)
    b2: FloatArray  # (H,)
    w3: FloatArray  # (3H, H)
    b3: FloatArray  # (H,)
    w4: FloatArray  # (H, SUBFRAMES * raw_width(branch_channels))
    b4: FloatArray  # (SUBFRAMES * raw_width(branch_channels),)
    info: dict[str, object] = field(default_factory=dict)
    sha256: str = ""

    @property
    def hidden(self) -> int:
        return int(self.b1.size)

    @property
    def branch_channels(self) -> int:
        """Channels of the rectifying branch (0: none), from the output layer's width."""
        return branch_channels(self.b4.size // SUBFRAMES)

    @property
    def n_params(self) -> int:
        """Trained parameters (the normalization excluded)."""
        return int(sum(getattr(self, n).size for n in _NAMES[2:]))

    def flops_per_frame(self) -> int:
        """Multiply-adds x 2 of one frame's network evaluation."""
        return 2 * int(sum(getattr(self, n).size for n in ("w1", "w2", "w3", "w4")))


def save_weights(w: Weights, path: str | Path) -> str:
    """Write ``w`` as an ``.npz`` (float32 arrays, JSON info); returns its SHA-256."""
    buf = io.BytesIO()
    arrays: dict[str, np.ndarray] = {n: np.asarray(getattr(w, n), dtype=np.float32) for n in _NAMES}
    info = np.frombuffer(json.dumps(w.info, sort_keys=True).encode(), dtype=np.uint8)
    arrays["info"] = info
    import hashlib  # (not at import: the decoder's start-up)
    import zipfile

    # np.savez's layout (one .npy per array, stored), with a fixed timestamp so
    # that the same weights always give the same bytes and hash
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(entry, member.getvalue())
    data = buf.getvalue()

    tmp = Path(str(path) + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: str | Path, sha256: str | None = None) -> Weights:
    """Read weights written by :func:`save_weights` (checked against ``sha256`` if given)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise WeightsError(f"{p}: cannot read post-filter weights ({e.strerror})") from None
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise WeightsError(f"{p}: post-filter weights do not match their hash {sha256[:12]}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {n: np.asarray(z[n], dtype=np.float64) for n in _NAMES}
            info = json.loads(bytes(z["info"]).decode())
    except (ValueError, KeyError, OSError) as e:
        raise WeightsError(f"{p}: not post-filter weights ({e})") from None
    w = Weights(**arrays, info=info, sha256=digest)
    _check_shapes(w, p)
    return w


def _check_shapes(w: Weights, p: Path) -> None:
    f, h = w.w1.shape
    if f not in (N_BASE, N_FEATURES):
        raise WeightsError(
            f"{p}: post-filter array w1 has {f} inputs, not {N_BASE} or {N_FEATURES}"
        )
    try:
        width = SUBFRAMES * raw_width(w.branch_channels)
    except ValueError:
        raise WeightsError(f"{p}: post-filter array b4 has shape {w.b4.shape}") from None
    want = {
        "mean": (f,),
        "std": (f,),
        "b1": (h,),
        "w2": (3 * h, h),
        "b2": (h,),
        "w3": (3 * h, h),
        "b3": (h,),
        "w4": (h, width),
        "b4": (width,),
    }
    for n, shape in want.items():
        if getattr(w, n).shape != shape:
            raise WeightsError(f"{p}: post-filter array {n} has shape {getattr(w, n).shape}")


class FeatureNet:
    """Streaming evaluation of the network: frames in, raw parameters out.

    The products run as whole-block matrix products on an integer grid, so
    that they are exact and do not depend on how many frames are evaluated
    together (a float matrix product's summation order does). The first
    layer (30 or 50 inputs: the first columns of the feature rows) is
    computed frame by frame. After it, each layer's
    inputs (tanh outputs) are rounded to multiples of ``2^-a`` and its
    weights, column by column, to ``b``-bit integers under a power-of-two
    scale, with ``a + b`` as large as keeps every product and partial sum an
    integer below 2^53 (:func:`_grid_bits`): float64 holds them exactly. For
    the shipped network ``a, b`` are 21-22 bits; against the unrounded
    network the raw outputs differ by at most about 5e-6 (relative 5e-7).
    """

    def __init__(self, weights: Weights) -> None:
        self.w = weights
        h = weights.hidden
        self._l2 = _GridLayer(weights.w2, taps=CONTEXT + 1)
        self._l3 = _GridLayer(weights.w3, taps=CONTEXT + 1)
        self._l4 = _GridLayer(weights.w4)
        self._h1 = np.zeros((CONTEXT, h))  # on the grid of layer 2's inputs
        self._h2 = np.zeros((CONTEXT, h))  # ... of layer 3's

    def __call__(self, feats: npt.ArrayLike) -> FloatArray:
        """Raw parameters (n, SUBFRAMES, raw_width(branch_channels)) of the next ``n`` frames."""
        w = self.w
        u = (np.asarray(feats, dtype=np.float64)[:, : w.mean.size] - w.mean) / w.std
        n = u.shape[0]
        h1 = np.concatenate((self._h1, self._l2.act(_rows(u, w.w1) + w.b1)))
        h2 = np.concatenate((self._h2, self._l3.act(self._l2.dot(h1, n) + w.b2)))
        h3 = self._l4.act(self._l3.dot(h2, n) + w.b3)
        self._h1, self._h2 = h1[n:], h2[n:]
        r = self._l4.dot(h3, n) + w.b4
        return np.asarray(r.reshape(n, SUBFRAMES, -1), dtype=np.float64)


_SIDE_BY_SIDE_FROM = 16  # frames
_EXACT_BITS = 52  # integers up to 2^53 are exact in float64; one bit spare


def _rows(a: FloatArray, w: FloatArray) -> FloatArray:
    """``a @ w`` row by row: each frame's product is computed alone, so the result
    does not depend on how many frames are evaluated together."""
    return np.asarray((np.ascontiguousarray(a)[:, None, :] @ w)[:, 0], dtype=np.float64)


def _grid_bits(fan_in: int) -> tuple[int, int]:
    """Bits ``(a, b)`` of a layer's input grid (steps of 2^-a, inputs in [-1, 1])
    and of its weights (integers up to 2^b): as many as keep ``fan_in * 2^a *
    2^b`` at most 2^_EXACT_BITS."""
    total = _EXACT_BITS - int(np.ceil(np.log2(fan_in)))
    if total < 32:
        raise WeightsError(f"post-filter layer with {fan_in} inputs is too wide")
    return total // 2, total - total // 2


class _GridLayer:
    """One layer's weights on the integer grid, and its input rounding."""

    def __init__(self, w: FloatArray, taps: int = 1) -> None:
        a, b = _grid_bits(w.shape[0])
        top = np.max(np.abs(w), axis=0)
        scale = np.exp2(np.ceil(np.log2(np.where(top > 0.0, top, 1.0))) - b)
        q = np.rint(w / scale)
        self.taps = taps
        self.q = q
        # a convolution's taps side by side: (width, taps * H), for long blocks
        self.q_side = np.concatenate(np.split(q, taps), axis=1) if taps > 1 else q
        self.step = float(2**a)
        self.scale = scale / self.step  # powers of two: the rescaling is exact

    def act(self, z: FloatArray) -> FloatArray:
        """tanh of ``z`` on this layer's input grid (integer multiples of its step).

        tanh runs in float32 (numpy vectorizes it there); its error, about
        1e-7, is within a step of 2^-21 .. 2^-23 (the shipped network's)."""
        t = np.tanh(z.astype(np.float32)).astype(np.float64)
        return np.rint(t * self.step)

    def dot(self, x: FloatArray, n: int) -> FloatArray:
        """The layer's product for the last ``n`` rows (taps: ``[x_{k-2}; x_{k-1};
        x_k] @ w``), from inputs on its grid. A convolution over a long block
        is one product with the taps side by side, then the shifted sums; over
        a few frames, the taps' rows side by side times ``w`` (fewer
        operations). Both are exact, so they give the same result."""
        if self.taps == 1:
            return np.asarray(x @ self.q * self.scale, dtype=np.float64)
        if n < _SIDE_BY_SIDE_FROM:
            rows = np.concatenate([x[i : i + n] for i in range(self.taps)], axis=1)
            return np.asarray(rows @ self.q * self.scale, dtype=np.float64)
        p = x @ self.q_side
        width = p.shape[1] // self.taps
        out = p[:n, :width].copy()
        for i in range(1, self.taps):
            out += p[i : i + n, i * width : (i + 1) * width]
        return np.asarray(out * self.scale, dtype=np.float64)
