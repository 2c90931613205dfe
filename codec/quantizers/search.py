"""Exhaustive nearest-neighbour search over compressed vectors (asymmetric distances).

:class:`AdcIndex` stores the codes of a trained :class:`~codec.quantizers.Quantizer`
and answers k-nearest-neighbour queries by *asymmetric distance computation*
(ADC): the query stays uncompressed and its squared Euclidean distance to each
*decoded* database vector ``x^ = mean + reconstruction(codes)`` is computed from
per-codebook lookup tables, never by decoding the database.

With ``q' = q - mean``:

additive codes (``rvq``, ``avq``)
    ``||q' - sum_m c_m||^2 = ||q'||^2 - 2 sum_m <q', c_m> + ||sum_m c_m||^2``:
    one table of inner products ``<q', C_m[k]>`` per codebook, and the squared
    norm of each database reconstruction, computed once by :meth:`AdcIndex.add`.
product codes (``pvq``; ``vq`` is the one-codebook case)
    ``sum_m ||q'_m - c_m||^2`` over the sub-vectors: one table of squared
    distances per codebook; the sum is exact and no norms are stored.

:func:`exact_search` is the uncompressed brute-force search (ground truth).

Memory
    The index holds ``N * (M * b + 8)`` bytes for ``N`` vectors and ``M``
    codebooks (codes as ``uint8`` for ``K <= 256``, else ``uint16``, so
    ``b = 1`` or ``2``; plus one float64 norm each).  A search works on blocks
    of at most ``query_batch`` queries x ``chunk`` database vectors, so besides
    its inputs and outputs it needs about
    ``8 * query_batch * (3 * chunk + 2 * M * K + 4 * k)`` bytes whatever ``N``
    is (the distance block, a partitioned copy of it and one gathered table
    block; the tables and their transposed copy; the running top-k).  The
    defaults (64 queries x 16384 vectors) stay near 25 MB plus the tables.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codec.errors import ParameterError

from .base import FloatArray, IntArray, Quantizer, check_int, check_vectors

__all__ = ["AdcIndex", "exact_search"]

DEFAULT_QUERY_BATCH = 64
DEFAULT_CHUNK = 16384
_ADDITIVE = ("rvq", "avq")
_PRODUCT = ("vq", "pvq")


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ParameterError(f"k must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ParameterError(f"k must be >= 1, got {k}")
    return int(k)


def _merge_topk(
    best_d: FloatArray, best_i: IntArray, d: FloatArray, ids: IntArray, k: int
) -> tuple[FloatArray, IntArray]:
    """The ``k`` smallest of the running ``(b, k)`` best and a new ``(b, n)`` block.

    Rows of the result are sorted by distance, ties by id (padding ``inf`` /
    ``-1`` last), so the outcome does not depend on how the database is chunked.
    """
    b = d.shape[0]
    if d.shape[1] > k:  # keep every entry up to and including the k-th value (ties too)
        kth = np.partition(d, k - 1, axis=1)[:, k - 1 : k]
        rows, cols = np.nonzero(d <= kth)
    else:
        rows, cols = np.nonzero(np.ones(d.shape, dtype=bool))
    cand_d = np.concatenate([best_d.ravel(), d[rows, cols]])
    cand_i = np.concatenate([best_i.ravel(), ids[cols] if ids.ndim == 1 else ids[rows, cols]])
    cand_r = np.concatenate([np.repeat(np.arange(b), best_d.shape[1]), rows])
    key_i = np.where(cand_i < 0, np.iinfo(np.int64).max, cand_i)
    order = np.lexsort((key_i, cand_d, cand_r))
    counts = np.bincount(cand_r, minlength=b)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    take = order[(starts[:, None] + np.arange(k)[None, :]).ravel()]
    return cand_d[take].reshape(b, k), cand_i[take].reshape(b, k)


def _check_block(query_batch: object, chunk: object) -> tuple[int, int]:
    return (
        check_int(query_batch, "query_batch", 1, 1 << 24),
        check_int(chunk, "chunk", 1, 1 << 30),
    )


def exact_search(
    base: ArrayLike,
    queries: ArrayLike,
    k: int,
    *,
    query_batch: int = DEFAULT_QUERY_BATCH,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[FloatArray, IntArray]:
    """Brute-force k nearest neighbours by squared Euclidean distance (ground truth).

    Parameters
    ----------
    base : array_like, shape (N, D)
        Database vectors (N >= 1).
    queries : array_like, shape (Q, D)
    k : int
        Neighbours per query (>= 1); when ``k > N`` the extra columns hold
        distance ``inf`` and id ``-1``.
    query_batch, chunk : int
        Block sizes: at most ``query_batch x chunk`` distances are held at once.

    Returns
    -------
    distances : ndarray of float64, shape (Q, k)
        Ascending squared distances (ties ordered by id).
    ids : ndarray of int64, shape (Q, k)
        Row numbers in ``base``.
    """
    xb = check_vectors(base, name="base")
    if xb.shape[0] == 0:
        raise ParameterError("exact_search needs a non-empty base")
    xq = check_vectors(queries, xb.shape[1], name="queries")
    k = _check_k(k)
    qb, ch = _check_block(query_batch, chunk)
    nb = xb.shape[0]
    nq = xq.shape[0]
    base_norms = np.einsum("ij,ij->i", xb, xb)
    out_d = np.empty((nq, k))
    out_i = np.empty((nq, k), dtype=np.int64)
    for s in range(0, nq, qb):
        q = xq[s : s + qb]
        qn = np.einsum("ij,ij->i", q, q)[:, None]
        best_d = np.full((q.shape[0], k), np.inf)
        best_i = np.full((q.shape[0], k), -1, dtype=np.int64)
        for a in range(0, nb, ch):
            b = min(nb, a + ch)
            d = qn - 2.0 * (q @ xb[a:b].T) + base_norms[a:b]
            np.maximum(d, 0.0, out=d)
            best_d, best_i = _merge_topk(best_d, best_i, d, np.arange(a, b), k)
        out_d[s : s + qb], out_i[s : s + qb] = best_d, best_i
    return out_d, out_i


class AdcIndex:
    """Exhaustive ADC search over vectors compressed by a trained quantizer.

    Parameters
    ----------
    quantizer : Quantizer
        A trained :class:`~codec.quantizers.VQ`, ``RVQ``, ``AVQ`` or ``PVQ``.
    query_batch : int
        Queries per block (default 64).
    chunk : int
        Database vectors per block (default 16384); the search's working
        memory is bounded by these two, not by the database size (see the
        module docstring).

    Examples
    --------
    >>> index = AdcIndex(q)                       # doctest: +SKIP
    >>> index.add(base)                           # doctest: +SKIP
    >>> dist, ids = index.search(queries, k=10)   # doctest: +SKIP
    """

    def __init__(
        self,
        quantizer: Quantizer,
        *,
        query_batch: int = DEFAULT_QUERY_BATCH,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        if not isinstance(quantizer, Quantizer):
            raise ParameterError(f"AdcIndex needs a Quantizer, got {type(quantizer).__name__}")
        variant = quantizer.variant
        if variant not in _ADDITIVE + _PRODUCT:
            raise ParameterError(f"AdcIndex does not support quantizer variant {variant!r}")
        self.query_batch, self.chunk = _check_block(query_batch, chunk)
        self.quantizer = quantizer
        self.additive = variant in _ADDITIVE
        self._dtype = np.uint8 if quantizer.codebook_size <= 256 else np.uint16
        self._codes: list[NDArray[np.unsignedinteger]] = []
        self._norms: list[FloatArray] = []
        self._ntotal = 0
        self._joined: tuple[NDArray[np.unsignedinteger], FloatArray] | None = None

    @property
    def ntotal(self) -> int:
        """Number of stored vectors."""
        return self._ntotal

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.quantizer.dim

    @property
    def codes(self) -> NDArray[np.unsignedinteger]:
        """Stored codes, shape ``(ntotal, stages)`` (uint8 or uint16)."""
        return self._data()[0]

    @property
    def norms(self) -> FloatArray:
        """``||x^ - mean||^2`` of the stored vectors (zeros for product codes)."""
        return self._data()[1]

    def _data(self) -> tuple[NDArray[np.unsignedinteger], FloatArray]:
        if self._joined is None:
            m = self.quantizer.stages
            codes = np.concatenate(self._codes) if self._codes else np.empty((0, m), self._dtype)
            norms = np.concatenate(self._norms) if self._norms else np.empty(0)
            self._codes, self._norms = [codes], [norms]
            self._joined = (codes, norms)
        return self._joined

    def add(self, x: ArrayLike) -> IntArray:
        """Encode vectors and append them; returns their ids (row numbers).

        Parameters
        ----------
        x : array_like, shape (N, D)

        Returns
        -------
        ndarray of int64, shape (N,)
        """
        xv = check_vectors(x, self.dim)
        return self.add_codes(self.quantizer.encode(xv))

    def add_codes(self, codes: ArrayLike) -> IntArray:
        """Append already encoded vectors (``quantizer.encode`` output); returns their ids."""
        q = self.quantizer
        arr = np.asarray(codes)
        if arr.ndim != 2 or arr.shape[1] != q.stages:
            raise ParameterError(f"codes must have shape (N, {q.stages}), got {arr.shape}")
        if arr.size and arr.dtype.kind not in "iu":
            raise ParameterError("codes must be integers")
        if arr.size and (arr.min() < 0 or arr.max() >= q.codebook_size):
            raise ParameterError(f"codes must lie in [0, {q.codebook_size})")
        idx = arr.astype(np.int64)
        norms = np.zeros(idx.shape[0])
        if self.additive:
            step = max(1, self.chunk)
            for s in range(0, idx.shape[0], step):
                r = q.decode(idx[s : s + step]) - q.mean
                norms[s : s + step] = np.einsum("ij,ij->i", r, r)
        start = self._ntotal
        self._codes.append(idx.astype(self._dtype))
        self._norms.append(norms)
        self._ntotal += idx.shape[0]
        self._joined = None
        return np.arange(start, self._ntotal, dtype=np.int64)

    def tables(self, queries: ArrayLike) -> FloatArray:
        """Lookup tables ``(Q, stages, K)`` for mean-removed queries.

        Additive codes: ``-2 <q', C_m[k]>``; product codes: ``||q'_m - C_m[k]||^2``.
        The ADC distance to stored vector ``n`` is
        ``||q'||^2 * additive + sum_m T[:, m, codes[n, m]] + norms[n]``.
        """
        q = self.quantizer
        r = check_vectors(queries, self.dim, name="queries") - q.mean
        out = np.empty((r.shape[0], q.stages, q.codebook_size))
        if self.additive:
            for m, c in enumerate(q.codebooks):
                out[:, m, :] = -2.0 * (r @ c.T)
        else:
            a = 0
            for m, c in enumerate(q.codebooks):
                b = a + c.shape[1]
                rs = r[:, a:b]
                d = (
                    np.einsum("ij,ij->i", rs, rs)[:, None]
                    - 2.0 * (rs @ c.T)
                    + np.einsum("ij,ij->i", c, c)[None, :]
                )
                out[:, m, :] = np.maximum(d, 0.0)
                a = b
        return out

    def search(self, queries: ArrayLike, k: int) -> tuple[FloatArray, IntArray]:
        """The ``k`` stored vectors nearest each query by ADC distance.

        Parameters
        ----------
        queries : array_like, shape (Q, D)
        k : int
            Neighbours per query (>= 1); when ``k > ntotal`` the extra columns
            hold distance ``inf`` and id ``-1``.

        Returns
        -------
        distances : ndarray of float64, shape (Q, k)
            Ascending squared distances to the decoded vectors (ties by id).
        ids : ndarray of int64, shape (Q, k)
        """
        xq = check_vectors(queries, self.dim, name="queries")
        k = _check_k(k)
        if self._ntotal == 0:
            raise ParameterError("the index is empty: add vectors before searching")
        codes, norms = self._data()
        nb = codes.shape[0]
        nq = xq.shape[0]
        out_d = np.empty((nq, k))
        out_i = np.empty((nq, k), dtype=np.int64)
        mean = self.quantizer.mean
        for s in range(0, nq, self.query_batch):
            q = xq[s : s + self.query_batch]
            tab = self.tables(q)
            # (M, K, b): gathering whole rows of b contiguous floats is fast
            tab_t = np.ascontiguousarray(tab.transpose(1, 2, 0))
            r = q - mean
            qn = np.einsum("ij,ij->i", r, r) if self.additive else np.zeros(q.shape[0])
            best_d = np.full((q.shape[0], k), np.inf)
            best_i = np.full((q.shape[0], k), -1, dtype=np.int64)
            for a in range(0, nb, self.chunk):
                b = min(nb, a + self.chunk)
                c = codes[a:b]
                d = tab_t[0][c[:, 0]]  # (n, b)
                for m in range(1, c.shape[1]):
                    d += tab_t[m][c[:, m]]
                d += norms[a:b, None]
                d += qn[None, :]
                best_d, best_i = _merge_topk(best_d, best_i, d.T, np.arange(a, b), k)
            out_d[s : s + self.query_batch] = best_d
            out_i[s : s + self.query_batch] = best_i
        return out_d, out_i

    def __repr__(self) -> str:
        q = self.quantizer
        return f"AdcIndex({q.variant}, stages={q.stages}, bits={q.bits}, ntotal={self._ntotal})"
