"""The trained decoder post-filter (issue 11): decoder side only, numpy inference.

The bitstream does not carry it: it runs after the classical decoder
(:class:`codec.pipeline.StreamDecoder`) on the decoded 16 kHz signal, so
decoded audio depends on the decoder's version. One module per part:

- :mod:`codec.postfilter.features` -- what the decoder knows per frame;
- :mod:`codec.postfilter.network` -- the feature network (numpy) and its weights file;
- :mod:`codec.postfilter.filters` -- the adaptive comb, FIR and temporal shaper it
  drives (and a rectifying branch, where the weights have one).

The shipped weights (``codec/data/postfilter.npz``) are named by SHA-256 in
``codec/data/POSTFILTER.json``, which also lists the bitrates where the
post-filter is on by default (where it measured better on dev; RESULTS.md).
Trained by ``python -m recipes.train_postfilter``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from codec.errors import WeightsError

if TYPE_CHECKING:  # imported on first use (__getattr__ below): a decoder with the
    # post-filter off (the default) only reads the index
    from codec.postfilter.features import N_FEATURES, frame_features
    from codec.postfilter.filters import AdaptiveFilter as AdaptiveFilter
    from codec.postfilter.network import FeatureNet as FeatureNet
    from codec.postfilter.network import Weights, load_weights, save_weights

__all__ = [
    "Enhancer",
    "N_FEATURES",
    "Weights",
    "default_on",
    "frame_features",
    "load_weights",
    "save_weights",
    "shipped_weights",
    "SHIPPED_INDEX",
]

DATA = Path(__file__).resolve().parent.parent / "data"
SHIPPED_INDEX = DATA / "POSTFILTER.json"


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, object]:
    try:
        return dict(json.loads(SHIPPED_INDEX.read_text()))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise WeightsError(f"{SHIPPED_INDEX}: unreadable ({e})") from None


@functools.lru_cache(maxsize=1)
def shipped_weights() -> Weights | None:
    """The shipped weights, hash-checked; ``None`` when none are shipped."""
    idx = _index()
    if not idx:
        return None
    from codec.postfilter.network import load_weights

    return load_weights(DATA / str(idx["file"]), sha256=str(idx["sha256"]))


def default_on(bitrate_kbps: float) -> bool:
    """Whether the shipped post-filter is on by default at this bitrate."""
    on = _index().get("default_on", [])
    assert isinstance(on, list)
    return any(abs(float(b) - float(bitrate_kbps)) < 1e-9 for b in on)


class Enhancer:
    """Network + adaptive filter for one stream (streaming, causal).

    :meth:`push` the frames' features and comb lags in order (frame ``k``
    before any of its samples ``[320k, 320k + 320)`` reaches :meth:`process`).
    """

    def __init__(self, weights: Weights) -> None:
        from codec.postfilter.features import N_BASE
        from codec.postfilter.filters import AdaptiveFilter
        from codec.postfilter.network import FeatureNet

        self.weights = weights
        # whether the network reads the coded shares (the feature columns from
        # N_BASE on); the decoder computes them only then
        self.reads_coded = weights.mean.size > N_BASE
        self._net = FeatureNet(weights)
        self._filter = AdaptiveFilter(weights.branch_channels)
        self._next = 0

    def push(self, feats: npt.ArrayLike, lags: npt.ArrayLike) -> None:
        """Features (n, N_FEATURES) and comb lags (n,) of the next ``n`` frames."""
        f = np.asarray(feats, dtype=np.float64)
        if f.shape[0] == 0:
            return
        self._filter.push(self._next, lags, self._net(f))
        self._next += f.shape[0]

    def process(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Enhance the next decoded samples; returns as many."""
        return self._filter.process(x)


_SUBMODULES = ("features", "filters", "network")
_FROM_SUBMODULES = (
    "N_FEATURES",
    "frame_features",
    "AdaptiveFilter",
    "FeatureNet",
    "Weights",
    "load_weights",
    "save_weights",
)


def __getattr__(name: str) -> object:
    """The names from the submodules (and the submodules), imported on first use."""
    if name in _FROM_SUBMODULES or name in _SUBMODULES:
        import importlib

        for sub in _SUBMODULES:  # (importing a submodule sets it as an attribute)
            module = importlib.import_module(f"codec.postfilter.{sub}")
            for key in _FROM_SUBMODULES:
                if key in vars(module):
                    globals()[key] = getattr(module, key)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES, *_FROM_SUBMODULES})
