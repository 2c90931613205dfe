"""svq: a wideband speech codec whose spectral envelope is coded by trainable vector quantizers."""

from codec.errors import (
    AudioInputError,
    BitstreamError,
    CodecError,
    DamagedStreamError,
    ParameterError,
)
from codec.pipeline import decode, encode, info, simulate_loss

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
