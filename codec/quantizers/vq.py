"""Plain vector quantizer: one codebook of ``K = 2**bits`` codewords.

Encoding is a full weighted nearest-neighbour search.

Operation count per vector (``ops_per_vector``), counting a weighted distance to
one ``d``-dimensional codeword as ``3d`` operations (difference, weighted square,
accumulate) and one compare per candidate::

    D  (mean removal)  +  K * 3D  +  K
"""

from __future__ import annotations

import numpy as np

from codec.errors import ParameterError

from .base import FloatArray, IntArray, Quantizer, sq_norms


class VQ(Quantizer):
    """Single-codebook vector quantizer (``stages == 1``).

    Parameters
    ----------
    codebooks : sequence of one array_like, shape (K, D)
    mean : array_like, shape (D,), optional
    **kwargs
        See :class:`~codec.quantizers.base.Quantizer`.
    """

    variant = "vq"

    def _check_codebooks(self, cbs: list[FloatArray]) -> int:
        if len(cbs) != 1:
            raise ParameterError(f"vq has exactly one codebook (stages=1), got {len(cbs)}")
        return int(cbs[0].shape[1])

    def _work_per_row(self) -> int:
        return self.codebook_size

    def _search(self, r: FloatArray, w: FloatArray | None) -> IntArray:
        c = self._codebooks[0]
        wr = r if w is None else w * r
        scores = sq_norms(c, w) - 2.0 * (wr @ c.T)
        out: IntArray = np.argmin(scores, axis=1).astype(np.int64)[:, None]
        return out

    def _reconstruct(self, idx: IntArray) -> FloatArray:
        out: FloatArray = self._codebooks[0][idx[:, 0]].copy()
        return out

    def ops_per_vector(self) -> int:
        """``D + K*3D + K`` (see module docstring)."""
        d, k = self.dim, self.codebook_size
        return d + k * 3 * d + k
