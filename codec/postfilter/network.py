"""The post-filter's feature network, numpy inference (trained in torch by
``recipes.train_postfilter``; the two compute the same function).

Per frame ``k``, with ``u_k`` the normalized feature row
(:mod:`codec.postfilter.features`)::

    h1_k = tanh(W1 u_k + b1)
    h2_k = tanh(W2 [h1_{k-2}; h1_{k-1}; h1_k] + b2)      causal convolution
    h3_k = tanh(W3 [h2_{k-2}; h2_{k-1}; h2_k] + b3)      causal convolution
    r_k  = W4 h3_k + b4                                   SUBFRAMES x N_RAW

``r_k`` holds the raw filter parameters of the frame's four 5 ms subframes
(:func:`codec.postfilter.filters.kernels`). The convolutions look only back
(zero state at the start of a stream), so the network adds no delay; its
state is two frames of ``h1`` and ``h2``.

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

__all__ = ["SUBFRAMES", "N_RAW", "CONTEXT", "Weights", "FeatureNet", "load_weights", "save_weights"]

FloatArray = npt.NDArray[np.float64]

SUBFRAMES = 4  # per 20 ms frame: 5 ms each
COMB_TAPS = 5
FIR_TAPS = 16
N_RAW = 1 + COMB_TAPS + FIR_TAPS + 1  # comb gain, comb taps, FIR taps, output gain
CONTEXT = 2  # past frames each convolution sees

_NAMES = ("mean", "std", "w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4")


@dataclass(frozen=True)
class Weights:
    """The network's arrays (float64) and what it was trained for."""

    mean: FloatArray  # (F,) feature normalization
    std: FloatArray  # (F,)
    w1: FloatArray  # (F, H)
    b1: FloatArray  # (H,)
    w2: FloatArray  # (3H, H)
    b2: FloatArray  # (H,)
    w3: FloatArray  # (3H, H)
    b3: FloatArray  # (H,)
    w4: FloatArray  # (H, SUBFRAMES * N_RAW)
    b4: FloatArray  # (SUBFRAMES * N_RAW,)
    info: dict[str, object] = field(default_factory=dict)
    sha256: str = ""

    @property
    def hidden(self) -> int:
        return int(self.b1.size)

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
    want = {
        "mean": (f,),
        "std": (f,),
        "b1": (h,),
        "w2": (3 * h, h),
        "b2": (h,),
        "w3": (3 * h, h),
        "b3": (h,),
        "w4": (h, SUBFRAMES * N_RAW),
        "b4": (SUBFRAMES * N_RAW,),
    }
    for n, shape in want.items():
        if getattr(w, n).shape != shape:
            raise WeightsError(f"{p}: post-filter array {n} has shape {getattr(w, n).shape}")


class FeatureNet:
    """Streaming evaluation of the network: frames in, raw parameters out."""

    def __init__(self, weights: Weights) -> None:
        self.w = weights
        h = weights.hidden
        self._h1 = np.zeros((CONTEXT, h))
        self._h2 = np.zeros((CONTEXT, h))

    def __call__(self, feats: npt.ArrayLike) -> FloatArray:
        """Raw parameters (n, SUBFRAMES, N_RAW) of the next ``n`` frames."""
        w = self.w
        u = (np.asarray(feats, dtype=np.float64) - w.mean) / w.std
        n = u.shape[0]
        h1 = np.concatenate((self._h1, np.tanh(_rows(u, w.w1) + w.b1)))
        h2 = np.concatenate((self._h2, np.tanh(_rows(_taps(h1, n), w.w2) + w.b2)))
        h3 = np.tanh(_rows(_taps(h2, n), w.w3) + w.b3)
        self._h1, self._h2 = h1[n:], h2[n:]
        return np.asarray((_rows(h3, w.w4) + w.b4).reshape(n, SUBFRAMES, N_RAW), dtype=np.float64)


def _rows(a: FloatArray, w: FloatArray) -> FloatArray:
    """``a @ w`` row by row: each frame's product is computed alone, so the result
    does not depend on how many frames are evaluated together (a matrix
    product's summation order does)."""
    return np.asarray((np.ascontiguousarray(a)[:, None, :] @ w)[:, 0], dtype=np.float64)


def _taps(h: FloatArray, n: int) -> FloatArray:
    """Rows ``[h_{k-2}; h_{k-1}; h_k]`` for the last ``n`` frames of ``h`` (CONTEXT + n rows)."""
    return np.concatenate([h[i : i + n] for i in range(CONTEXT + 1)], axis=1)
