"""Exception hierarchy of svq."""


class CodecError(Exception):
    """Base class of every error svq raises on purpose."""


class ParameterError(CodecError, ValueError):
    """A parameter is out of range or inconsistent."""


class AudioInputError(CodecError):
    """Input audio cannot be read or is unusable."""


class BitstreamError(CodecError):
    """A bitstream is malformed, corrupt, truncated or foreign."""
