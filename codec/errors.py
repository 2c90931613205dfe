"""Exception hierarchy of svq."""


class CodecError(Exception):
    """Base class of every error svq raises on purpose."""


class ParameterError(CodecError, ValueError):
    """A parameter is out of range or inconsistent."""


class AudioInputError(CodecError):
    """Input audio cannot be read or is unusable."""


class BitstreamError(CodecError):
    """A bitstream is malformed, corrupt, truncated or foreign."""


class DamagedStreamError(BitstreamError):
    """Blocks of a ``.svq`` stream fail their CRC-32 (the header is intact).

    ``blocks`` holds the numbers of the damaged blocks; decoding with
    ``on_damage="conceal"`` (``svq decode --conceal-damaged``) conceals them.
    """

    def __init__(self, message: str, blocks: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.blocks = blocks


class WeightsError(CodecError):
    """A post-filter weights file is missing, unreadable or not what it claims."""
