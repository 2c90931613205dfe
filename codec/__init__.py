"""svq: a wideband speech codec whose spectral envelope is coded by trainable vector quantizers."""

from codec.errors import (
    AudioInputError,
    BitstreamError,
    CodecError,
    DamagedStreamError,
    ParameterError,
)

TYPE_CHECKING = False  # (as typing.TYPE_CHECKING, without importing typing)
if TYPE_CHECKING:  # imported on first use (__getattr__ below)
    from codec.pipeline import decode, encode, info, simulate_loss
del TYPE_CHECKING

__all__ = [
    "encode",
    "decode",
    "info",
    "simulate_loss",
    "CodecError",
    "ParameterError",
    "AudioInputError",
    "BitstreamError",
    "DamagedStreamError",
    "__version__",
]

__version__ = "0.8.0"

_FROM_PIPELINE = ("decode", "encode", "info", "simulate_loss")
# the submodules that importing the package used to load along with codec.pipeline
_LOADED_WITH_PIPELINE = (
    "analysis",
    "audio",
    "bitstream",
    "concealment",
    "envelope",
    "modes",
    "pipeline",
    "quantizers",
    "registry",
    "residual",
)


def __getattr__(name: str) -> object:
    """The API functions, imported on first use: ``import codec`` (and ``svq --help``)
    does not pay for the whole codec (:mod:`codec.pipeline`) until it is used."""
    if name in _FROM_PIPELINE or name in _LOADED_WITH_PIPELINE:
        import importlib

        pipeline = importlib.import_module("codec.pipeline")  # sets the submodules
        for key in _FROM_PIPELINE:
            globals()[key] = getattr(pipeline, key)
        return globals()[name]
    raise AttributeError(f"module 'codec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM_PIPELINE, *_LOADED_WITH_PIPELINE})
