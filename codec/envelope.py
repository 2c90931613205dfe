"""Envelope quantizer: LSF vectors to integer indices and back.

Wraps a trained quantizer from :mod:`codec.quantizers` (which removes the
trained LSF mean itself). Search uses the LSF inverse-spacing weights of
:func:`codec.analysis.lsf_weights`; decoding always ends with
:func:`codec.analysis.stabilize_lsf`, so any index vector (even a corrupted
one) gives a stable synthesis filter. The encoder reconstructs with
:meth:`EnvelopeCoder.decode`, the decoder's own function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from codec.analysis import lsf_weights, stabilize_lsf
from codec.errors import ParameterError
from codec.quantizers import Quantizer

__all__ = ["EnvelopeCoder"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EnvelopeCoder:
    """An LSF envelope quantizer with a name and a content hash."""

    quantizer: Quantizer
    name: str

    def __post_init__(self) -> None:
        if self.quantizer.dim != 16:
            raise ParameterError(
                f"envelope quantizer must be 16-dimensional, got {self.quantizer.dim}"
            )

    @property
    def bits(self) -> int:
        """Bits per frame spent on the envelope."""
        return int(self.quantizer.bits)

    @property
    def field_bits(self) -> list[int]:
        """Bit width of each index field, in bitstream order."""
        return [self.quantizer.bits_per_stage] * self.quantizer.stages

    @property
    def content_hash(self) -> str:
        return str(self.quantizer.content_hash)

    def encode(self, lsf: npt.ArrayLike) -> IntArray:
        """Indices (n_frames, stages) of LSF vectors (n_frames, 16), weighted search."""
        x = np.asarray(lsf, dtype=np.float64)
        return np.asarray(self.quantizer.encode(x, weights=lsf_weights(x)), dtype=np.int64)

    def decode(self, idx: npt.ArrayLike) -> FloatArray:
        """Quantized, stabilised LSF vectors (n_frames, 16) from indices."""
        return stabilize_lsf(self.quantizer.decode(np.asarray(idx, dtype=np.int64)))
