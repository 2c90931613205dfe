"""svq: a wideband speech codec whose spectral envelope is coded by trainable vector quantizers."""

from codec.errors import AudioInputError, BitstreamError, CodecError, ParameterError

__all__ = ["CodecError", "ParameterError", "AudioInputError", "BitstreamError", "__version__"]

__version__ = "0.1.0"
