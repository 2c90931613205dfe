"""Product (split) vector quantizer.

The vector is split into ``M`` contiguous sub-vectors of sizes ``split``
(default: as equal as possible, e.g. 16 -> 4+4+4+4); each has its own codebook
of ``K`` codewords and is searched independently with the weights of its
dimensions.  The reconstruction is the concatenation of the chosen codewords.

Operation count per vector (``ops_per_vector``), with ``3d`` operations per
weighted distance in dimension ``d`` and one compare per candidate::

    D  +  sum_m (K * 3 d_m + K)  =  D + 3 K D + M K
"""

from __future__ import annotations

import numpy as np

from codec.errors import ParameterError

from .base import FloatArray, IntArray, Quantizer, sq_norms


def default_split(dim: int, stages: int) -> tuple[int, ...]:
    """Contiguous sub-vector sizes, as equal as possible, larger ones first.

    Parameters
    ----------
    dim : int
        Vector dimension ``D``.
    stages : int
        Number of sub-vectors ``M`` (``1 <= M <= D``).

    Returns
    -------
    tuple of int
        ``M`` positive sizes summing to ``D``.
    """
    if stages < 1 or stages > dim:
        raise ParameterError(f"pvq needs 1 <= stages <= dim, got stages={stages}, dim={dim}")
    base, rest = divmod(dim, stages)
    return tuple(base + 1 if m < rest else base for m in range(stages))


def check_split(split: object, dim: int, stages: int) -> tuple[int, ...]:
    """Validate a user ``split`` (sequence of positive ints summing to ``dim``)."""
    if split is None:
        return default_split(dim, stages)
    try:
        sizes = tuple(int(s) for s in split)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ParameterError(f"split must be a sequence of integers, got {split!r}") from None
    if len(sizes) != stages or any(s < 1 for s in sizes) or sum(sizes) != dim:
        raise ParameterError(
            f"split {sizes} must have {stages} positive sizes summing to dim={dim}"
        )
    return sizes


def split_bounds(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` column ranges of the sub-vectors."""
    ends = np.cumsum((0, *sizes))
    return [(int(ends[m]), int(ends[m + 1])) for m in range(len(sizes))]


def pvq_search(r: FloatArray, w: FloatArray | None, codebooks: list[FloatArray]) -> IntArray:
    """Independent weighted nearest-codeword search per sub-vector.

    Parameters
    ----------
    r : ndarray, shape (n, D)
        Mean-removed vectors.
    w : ndarray, shape (n, D), optional
    codebooks : list of ndarray, shape (K, d_m)

    Returns
    -------
    ndarray of int64, shape (n, M)
    """
    out = np.empty((r.shape[0], len(codebooks)), dtype=np.int64)
    bounds = split_bounds(tuple(c.shape[1] for c in codebooks))
    for m, (c, (a, b)) in enumerate(zip(codebooks, bounds, strict=True)):
        rs = r[:, a:b]
        ws = None if w is None else w[:, a:b]
        wr = rs if ws is None else ws * rs
        out[:, m] = np.argmin(sq_norms(c, ws) - 2.0 * (wr @ c.T), axis=1)
    return out


class PVQ(Quantizer):
    """Product / split vector quantizer.

    Parameters
    ----------
    codebooks : sequence of array_like, shape (K, d_m)
        One codebook per sub-vector; the ``d_m`` define :attr:`split`.
    mean : array_like, shape (D,), optional
    **kwargs
        See :class:`~codec.quantizers.base.Quantizer`.
    """

    variant = "pvq"

    def _check_codebooks(self, cbs: list[FloatArray]) -> int:
        return int(sum(c.shape[1] for c in cbs))

    @property
    def split(self) -> tuple[int, ...]:
        """Sub-vector sizes."""
        return self.config.split

    def _work_per_row(self) -> int:
        return self.codebook_size

    def _search(self, r: FloatArray, w: FloatArray | None) -> IntArray:
        return pvq_search(r, w, self._codebooks)

    def _reconstruct(self, idx: IntArray) -> FloatArray:
        return np.concatenate([c[idx[:, m]] for m, c in enumerate(self._codebooks)], axis=1)

    def ops_per_vector(self) -> int:
        """``D + 3 K D + M K`` (see module docstring)."""
        k = self.codebook_size
        return self.dim + sum(k * 3 * d + k for d in self.split)
