"""Multi-symbol range coder (arithmetic coder) with byte output.

This module implements, from scratch, an integer-exact range coder in the
classic "low / range with carry propagation" family (Subbotin/Schindler
style, byte-wise renormalisation, carries propagated back into the already
emitted bytes), together with the probability-model helpers needed by the
transform residual coder of svq.

Coder
-----
State of the encoder: ``low`` (the lower end of the current interval,
``PRECISION`` bits plus a carry bit) and ``rng`` (its width).  After every
operation ``rng`` is renormalised into ``(2**(PRECISION-8), 2**PRECISION]`` by
shifting whole bytes out of the top of ``low``.  A symbol with cumulative
interval ``[cum, cum+freq)`` out of ``total`` does::

    r = rng // total;  low += r * cum;  rng = r * freq

The ``rng - r*total`` left over by the truncation is never used; a decoder
target that falls into it proves the stream corrupt
(:class:`~codec.errors.BitstreamError`).  Python integers are unbounded,
so the registers can be wider than a C coder's: with ``PRECISION = 56`` and
``total <= 2**16``, ``r >= 2**32`` and the truncation loss is below
``2**-32`` relative, i.e. less than ``1e-9`` bit per symbol (32-bit
registers would lose up to ``0.006`` bit per symbol and were measured only
10-20 % faster in CPython).  A carry (``low >= 2**PRECISION``) is added to
the bytes already in the output buffer (``0xff`` bytes become ``0x00`` and
the byte before them is incremented; amortised O(1)).  It can never run off
the front of the buffer because the coded interval always lies inside
``[0, 1)``.

The decoder keeps ``val = code - low`` (``0 <= val < rng`` always holds) and
mirrors the encoder's renormalisation exactly, so both sides can compute the
same :meth:`~RangeEncoder.tell`.

Termination and zero padding
----------------------------
The byte string is the binary expansion of a number in ``[0, 1)``.  When
the decoder reads past the end of its input it behaves as if the input were
followed by infinitely many zero bytes; consequently any trailing zero bytes
are redundant and a frame padded with zeros (as the packer does, to exactly
``B`` bytes) decodes identically.  :meth:`RangeEncoder.finish` exploits
this: it picks, inside the final interval ``[L, L+R)``, the number with the
shortest byte expansion (it is ``0`` or a carry into the emitted bytes if
possible, otherwise the emitted bytes plus exactly one more byte) and strips
all trailing zero bytes.  The result is the *shortest* byte string that
decodes correctly when zero-padded, and never longer than
``ceil(tell() / 8)`` bytes.  ``finish`` does not modify the encoder: it is a
snapshot, the caller can keep encoding and call it again.

``tell()`` (identical on encoder and decoder after the same operations) is
``8 * n_shifted_bytes + PRECISION - floor(log2(rng))``; it exceeds the ideal
information content ``-log2(R)`` by less than one bit.  In particular
``tell() <= 8 * B`` guarantees that ``finish()`` fits in ``B`` bytes.

Raw bits go through the same arithmetic (``total = 2**nbits``, at most 16
bits per step), so they mix freely with modelled symbols and ``tell`` stays
exact.  Because of that, a raw field must be decoded with the same
``nbits`` it was encoded with (two 1-bit steps differ from one 2-bit step).

Escape coding of large integers
-------------------------------
:meth:`RangeEncoder.encode_values` codes integers with alphabets of the form
produced by :func:`laplace_cdfs`: symbols ``0 .. 2M`` stand for the values
``-M .. M`` and symbol ``2M+1`` is an escape for ``|q| > M``.  After an
escape come one raw sign bit (1 = negative) and the excess ``e = |q| - M >= 1``
in an Elias-gamma code on raw bits: with ``nb = floor(log2(e))``, ``nb`` one
bits, a zero bit, then the ``nb`` low bits of ``e`` (most significant first).
The escape part therefore costs ``2 + 2*floor(log2(e))`` bits.  ``nb`` is
limited to :data:`MAX_ESCAPE_BITS`; a longer prefix in a received stream
raises :class:`~codec.errors.BitstreamError`.

Probability models
------------------
:func:`laplace_cdfs` builds integer tables for a Laplacian source quantised
by rounding (cells ``[k-1/2, k+1/2)``) with Laplace parameter ``scale``
(``E|x| = scale``, in quantiser steps).  Scales are snapped to a logarithmic
grid (:data:`SCALE_STEPS_PER_OCTAVE` points per octave) and the tables of the
grid are computed once with exact integer arithmetic from constants obtained
with :mod:`decimal` (pure software, identical on every platform), so encoder
and decoder always build bit-identical tables from the same grid index.
Building the tables of a whole frame is then a single fancy-index gather.

Performance
-----------
The inner loops are written for CPython speed (locals, no numpy scalars,
``bisect`` for the symbol search).  Tables must reach them as lists/tuples
of Python ints: :class:`CdfTables` validates and converts an array once, and
:func:`laplace_tables` returns cached rows at no conversion cost.  Measured
with ``benchmarks/bench_rangecoder.py`` (one core, CPython 3.11, 320
Laplacian bins per frame): about 1.5 million values/s for
:meth:`RangeEncoder.encode_values` / :meth:`RangeDecoder.decode_values`
(table construction included) and 2 to 3 million symbols/s for single
:meth:`~RangeEncoder.encode_symbol` / :meth:`~RangeDecoder.decode_symbol`
calls.  :func:`decode_values_many` decodes the values of many independent
streams (frames) at once with numpy, in lock-step over the symbol position:
faster than a loop over :meth:`RangeDecoder.decode_values` from a few tens of
streams on, several times faster for a thousand.  :func:`symbol_costs` /
:func:`cost_bits` estimate the size of a frame without coding it (vectorised
over candidate gains), for rate loops.
"""

from __future__ import annotations

import functools
import math
import operator
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codec.errors import BitstreamError, ParameterError

__all__ = [
    "CdfTables",
    "LockStepDecoder",
    "ENCODE_MANY_MIN_STREAMS",
    "MANY_MIN_STREAMS",
    "MAX_ESCAPE_BITS",
    "MAX_TOTAL",
    "PRECISION",
    "SCALE_MAX_LOG2",
    "SCALE_MIN_LOG2",
    "SCALE_STEPS_PER_OCTAVE",
    "RangeDecoder",
    "OpRecorder",
    "RangeEncoder",
    "cost_bits",
    "decode_values_many",
    "encode_many",
    "escape_fields",
    "escape_fields_many",
    "laplace_cdf",
    "laplace_cdfs",
    "laplace_cdfs_from_index",
    "laplace_grid_rows",
    "laplace_tables",
    "laplace_tables_from_index",
    "scale_from_index",
    "scale_index",
    "symbol_costs",
]

#: Number of bits of the coder registers (``low`` and ``rng``); a multiple of 8.
PRECISION: int = 56
#: Largest allowed ``total`` of a frequency table.
MAX_TOTAL: int = 1 << 16
#: Streams from which :func:`decode_values_many` beats a loop of
#: :meth:`RangeDecoder.decode_values` (measured on the TCX frames: 120 to 320 values
#: each; below, its per-position numpy overhead costs more than the Python loop).
MANY_MIN_STREAMS: int = 32
#: Streams from which :func:`encode_many` beats a :class:`RangeEncoder` per stream
#: (measured on whole TCX encodes at 32 kbit/s with encoder blocks of 20 to 100
#: frames: slower at 40, even at 60, faster at 100; below, the fixed cost of its
#: ~10 numpy operations per step dominates).
ENCODE_MANY_MIN_STREAMS: int = 60
#: Largest Elias-gamma prefix length accepted in escape codes
#: (escaped excess magnitudes must be ``< 2**(MAX_ESCAPE_BITS+1)``).
MAX_ESCAPE_BITS: int = 24

_TOP = 1 << PRECISION  # interval [0, 1) in register units
_SHIFT = PRECISION - 8  # position of the top byte of ``low``
_BOT = 1 << _SHIFT  # renormalise while rng <= _BOT
_LOW_MASK = _BOT - 1

# Renormalisation of the numpy coders (encode_many, decode_values_many,
# LockStepDecoder): a step moves at most three bytes (rng > 2**48 before it,
# at least rng >> 16 after it); ``below = _RENORM_BELOW.searchsorted(rng)`` is 3
# minus their number, and the tables give the shifts and the bytes moved.  The
# encoder's registers are uint64, the decoders' int64 (their quantities are below
# 2**57; int64 index arrays and searches skip a conversion): tables of each type.
_RENORM_BELOW = np.array([_BOT >> 16, _BOT >> 8, _BOT], dtype=np.uint64)
_RENORM_SHL = np.array([24, 16, 8, 0], dtype=np.uint64)  # 8 * bytes
_RENORM_BELOW_I = _RENORM_BELOW.astype(np.int64)
_RENORM_SHL_I = _RENORM_SHL.astype(np.int64)
_RENORM_SHR_I = np.array([0, 8, 16, 24], dtype=np.int64)  # 24 - 8 * bytes
_RENORM_BYTES = np.array([3, 2, 1, 0], dtype=np.int64)
# decode_values_many counts the bytes from the exponent of rng as a float64 instead
# (a binary search per stream is slower): ``e = (float64(rng).view(int64) - 1) >> 52``,
# the exponent of the float below rng, is ``1022 + ceil(log2(rng))`` (rng converts
# exactly below 2**53; above, it reads no byte and its float stays above 2**48), and
# a byte comes in per threshold 2**48, 2**40, 2**32 at or above rng
_RENORM_BYTES_E = np.array(
    [sum(e - 1022 <= b for b in (48, 40, 32)) for e in range(2048)], dtype=np.int64
)
_RENORM_SHL_E = 8 * _RENORM_BYTES_E
_NBYTES = PRECISION // 8  # bytes pre-loaded by the decoder
_KEY_BLOCK = 32  # decode_values_many: symbol positions per block of table keys

#: Laplace scale grid: ``scale = 2**(SCALE_MIN_LOG2 + i / SCALE_STEPS_PER_OCTAVE)``.
SCALE_MIN_LOG2: int = -6
SCALE_MAX_LOG2: int = 10
SCALE_STEPS_PER_OCTAVE: int = 8
_N_SCALES = (SCALE_MAX_LOG2 - SCALE_MIN_LOG2) * SCALE_STEPS_PER_OCTAVE + 1
_RHO_QBITS = 60  # fixed-point precision of the table construction

CdfLike = Sequence[int] | NDArray[np.integer]
IntsLike = Sequence[int] | NDArray[np.integer]


def _int(x: object) -> int:
    """``operator.index`` raising :class:`ParameterError` for non-integers."""
    try:
        return operator.index(x)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ParameterError(f"expected an integer, got {x!r}") from exc


def _field_chunks(fields: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ``(value, nbits)`` fields checked and cut into the chunks of at most 16
    bits that :meth:`RangeEncoder.encode_bits` codes, most significant first."""
    chunks: list[tuple[int, int]] = []
    for value, nbits in fields:
        if type(value) is not int:
            value = _int(value)
        if type(nbits) is not int:
            nbits = _int(nbits)
        _check_nbits(nbits)
        if not 0 <= value < (1 << nbits):
            raise ParameterError(f"value {value} does not fit in {nbits} bits")
        if nbits <= 16:
            chunks.append((value, nbits))
            continue
        while nbits > 0:
            nb = nbits if nbits <= 16 else 16
            nbits -= nb
            chunks.append(((value >> nbits) & ((1 << nb) - 1), nb))
    return chunks


def _check_nbits(nbits: int) -> None:
    if nbits < 0:
        raise ParameterError(f"nbits must be >= 0, got {nbits}")


class CdfTables:
    """A validated stack of cumulative frequency tables, as Python ints.

    The batch coding methods index these rows in their inner loops; holding
    them as Python ints (instead of numpy scalars) is what makes the loops
    fast.  Build it once per frame, or get it for free from
    :func:`laplace_tables`, whose rows are cached per scale.

    Parameters
    ----------
    cdfs : array_like of int, shape (n_tables, n_symbols + 1)
        Every row starts at 0, is strictly increasing (every symbol has a
        frequency >= 1) and ends at its total, ``<= MAX_TOTAL``.  All rows
        have the same number of symbols.

    Attributes
    ----------
    rows : list of sequence of int
        The tables (read-only by convention: they may be shared).
    n_symbols : int
        Symbols per table.
    shift : int
        ``log2`` of the total when every table has the same power-of-two
        total (the coding loops then divide with a shift), else -1.
    """

    __slots__ = ("n_symbols", "rows", "shift")

    def __init__(self, cdfs: CdfTables | NDArray[np.integer] | Sequence[Sequence[int]]) -> None:
        if isinstance(cdfs, CdfTables):
            self.rows: list[Sequence[int]] = cdfs.rows
            self.n_symbols: int = cdfs.n_symbols
            self.shift: int = cdfs.shift
            return
        try:
            arr = np.asarray(cdfs)
        except ValueError as exc:  # ragged nested sequences
            raise ParameterError("cdf tables must all have the same length") from exc
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise ParameterError(f"cdf tables must have shape (n, n_symbols+1), got {arr.shape}")
        if arr.shape[0] and not np.issubdtype(arr.dtype, np.integer):
            raise ParameterError("cdf tables must be integer arrays")
        if arr.shape[0]:
            arr = arr.astype(np.int64)  # unsigned differences would wrap around
            if np.any(arr[:, 0] != 0):
                raise ParameterError("every cdf must start at 0")
            if np.any(np.diff(arr, axis=1) < 1):
                raise ParameterError("every symbol must have a frequency >= 1")
            if np.any(arr[:, -1] > MAX_TOTAL):
                raise ParameterError(f"cdf totals must be <= {MAX_TOTAL}")
        self.rows = arr.tolist()
        self.n_symbols = arr.shape[1] - 1
        self.shift = -1
        if arr.shape[0]:
            total = int(arr[0, -1])
            if total & (total - 1) == 0 and bool(np.all(arr[:, -1] == total)):
                self.shift = total.bit_length() - 1

    @classmethod
    def _trusted(cls, rows: list[Sequence[int]], n_symbols: int, shift: int = -1) -> CdfTables:
        """Tables from valid rows, unchecked; ``shift``: ``log2`` of every row's total
        when they all have the same power-of-two total, else -1."""
        obj = cls.__new__(cls)
        obj.rows = rows
        obj.n_symbols = n_symbols
        obj.shift = shift
        return obj

    def __len__(self) -> int:
        return len(self.rows)

    def to_array(self) -> NDArray[np.int64]:
        """The tables as an array of shape ``(n_tables, n_symbols + 1)``."""
        return np.array(self.rows, dtype=np.int64).reshape(len(self.rows), self.n_symbols + 1)


TablesLike = CdfTables | NDArray[np.integer] | Sequence[Sequence[int]]


def _as_int_list(values: IntsLike) -> list[int]:
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or not (values.size == 0 or np.issubdtype(values.dtype, np.integer)):
            raise ParameterError("values must be a 1-D integer array")
        out: list[int] = values.tolist()
        return out
    try:
        return [operator.index(v) for v in values]
    except TypeError as exc:
        raise ParameterError("values must be integers") from exc


def _tables(cdfs: TablesLike, n: int | None) -> CdfTables:
    tables = cdfs if isinstance(cdfs, CdfTables) else CdfTables(cdfs)
    if n is not None and len(tables) != n:
        raise ParameterError(f"expected {n} cdf tables, got {len(tables)}")
    return tables


class RangeEncoder:
    """Range encoder producing a byte string.

    Notes
    -----
    All methods raise :class:`~codec.errors.ParameterError` on invalid
    arguments (empty or oversized frequency intervals, out-of-range symbols or
    raw values).  Typical use::

        enc = RangeEncoder()
        enc.encode_symbol(3, cdf)        # cdf: list of ints, len n+1
        enc.encode_bits(5, 3)            # three raw bits
        data = enc.finish()
    """

    __slots__ = ("_buf", "_low", "_rng")

    def __init__(self) -> None:
        self._low = 0
        self._rng = _TOP
        self._buf = bytearray()

    def copy(self) -> RangeEncoder:
        """Independent copy of the encoder (e.g. for trial encodings in a rate loop).

        Returns
        -------
        RangeEncoder
            An encoder in the same state; O(bytes emitted so far).
        """
        other = RangeEncoder.__new__(RangeEncoder)
        other._low = self._low
        other._rng = self._rng
        other._buf = bytearray(self._buf)
        return other

    # ------------------------------------------------------------------ core
    def _carry(self) -> None:
        """Add one unit to the number formed by the emitted bytes."""
        buf = self._buf
        i = len(buf) - 1
        while buf[i] == 0xFF:
            buf[i] = 0
            i -= 1
        buf[i] += 1

    def encode(self, cum_low: int, freq: int, total: int) -> None:
        """Encode the interval ``[cum_low, cum_low + freq)`` out of ``total``.

        Parameters
        ----------
        cum_low : int
            Cumulative frequency of the symbols before this one (>= 0).
        freq : int
            Frequency of the symbol (>= 1).
        total : int
            Total frequency, ``cum_low + freq <= total <= MAX_TOTAL``.
        """
        self._encode(_int(cum_low), _int(freq), _int(total))

    def _encode(self, cum_low: int, freq: int, total: int) -> None:
        if not (0 <= cum_low and 0 < freq and cum_low + freq <= total <= MAX_TOTAL):
            raise ParameterError(f"invalid interval cum_low={cum_low} freq={freq} total={total}")
        r = self._rng // total
        low = self._low + r * cum_low
        rng = r * freq
        if low >= _TOP:
            self._carry()
            low -= _TOP
        if rng <= _BOT:
            buf = self._buf
            while rng <= _BOT:
                buf.append(low >> _SHIFT)
                low = (low & _LOW_MASK) << 8
                rng <<= 8
        self._low = low
        self._rng = rng

    def encode_symbol(self, symbol: int, cdf: CdfLike) -> None:
        """Encode ``symbol`` with the cumulative table ``cdf``.

        Parameters
        ----------
        symbol : int
            Symbol index, ``0 <= symbol < len(cdf) - 1``.
        cdf : sequence of int or ndarray, shape (n_symbols + 1,)
            Cumulative frequencies, ``cdf[0] == 0``, ``cdf[-1] == total``.
            A list or tuple of Python ints (e.g. a row of
            :attr:`CdfTables.rows`) is much faster than an ndarray.
        """
        if not 0 <= symbol < len(cdf) - 1:
            raise ParameterError(f"symbol {symbol} out of range for a {len(cdf) - 1}-symbol table")
        index = operator.index
        try:
            cum = index(cdf[symbol])
            nxt = index(cdf[symbol + 1])
            total = index(cdf[-1])
        except TypeError as exc:
            raise ParameterError("cdf entries must be integers") from exc
        if not (0 <= cum < nxt <= total <= MAX_TOTAL):
            raise ParameterError(f"invalid cdf interval [{cum}, {nxt}) of {total}")
        r = self._rng // total
        low = self._low + r * cum
        rng = r * (nxt - cum)
        if low >= _TOP:
            self._carry()
            low -= _TOP
        if rng <= _BOT:
            buf = self._buf
            while rng <= _BOT:
                buf.append(low >> _SHIFT)
                low = (low & _LOW_MASK) << 8
                rng <<= 8
        self._low = low
        self._rng = rng

    def encode_bits(self, value: int, nbits: int) -> None:
        """Encode ``nbits`` equiprobable raw bits (most significant first).

        Parameters
        ----------
        value : int
            ``0 <= value < 2**nbits``.
        nbits : int
            Number of bits, any value >= 0.  Fields longer than 16 bits are
            coded in 16-bit chunks; a field must be decoded with the same
            ``nbits`` as it was encoded with.
        """
        value = _int(value)
        nbits = _int(nbits)
        _check_nbits(nbits)
        if not 0 <= value < (1 << nbits):
            raise ParameterError(f"value {value} does not fit in {nbits} bits")
        while nbits > 0:
            nb = nbits if nbits <= 16 else 16
            nbits -= nb
            chunk = (value >> nbits) & ((1 << nb) - 1)
            r = self._rng >> nb
            low = self._low + r * chunk
            rng = r
            if low >= _TOP:
                self._carry()
                low -= _TOP
            if rng <= _BOT:
                buf = self._buf
                while rng <= _BOT:
                    buf.append(low >> _SHIFT)
                    low = (low & _LOW_MASK) << 8
                    rng <<= 8
            self._low = low
            self._rng = rng

    def encode_fields(self, fields: Sequence[tuple[int, int]]) -> None:
        """:meth:`encode_bits` of each ``(value, nbits)`` pair in turn (one call).

        Notes
        -----
        Arguments are validated before anything is coded: on error the
        encoder is unchanged.
        """
        chunks = _field_chunks(fields)
        low = self._low
        rng = self._rng
        buf = self._buf
        top, bot, shift, mask = _TOP, _BOT, _SHIFT, _LOW_MASK
        for chunk, nb in chunks:  # the arithmetic of encode_bits()
            rng >>= nb
            low += rng * chunk
            if low >= top:
                self._carry()
                low -= top
            while rng <= bot:
                buf.append(low >> shift)
                low = (low & mask) << 8
                rng <<= 8
        self._low = low
        self._rng = rng

    def encode_symbols(self, symbols: IntsLike, cdfs: TablesLike) -> None:
        """Encode many symbols, symbol ``i`` with table ``cdfs[i]``.

        Parameters
        ----------
        symbols : sequence of int, shape (n,)
            Symbol indices.
        cdfs : CdfTables or array_like of int, shape (n, n_symbols + 1)
            One cumulative table per symbol (an array is validated and
            converted once per call).

        Notes
        -----
        Arguments are validated before anything is coded: on error the
        encoder is unchanged.
        """
        syms = _as_int_list(symbols)
        tables = _tables(cdfs, len(syms))
        if not syms:
            return
        nsym = tables.n_symbols
        if min(syms) < 0 or max(syms) >= nsym:
            raise ParameterError(f"symbols out of range for {nsym}-symbol tables")
        low = self._low
        rng = self._rng
        buf = self._buf
        top, bot, shift, mask = _TOP, _BOT, _SHIFT, _LOW_MASK
        for s, cdf in zip(syms, tables.rows, strict=True):
            cum = cdf[s]
            r = rng // cdf[-1]
            low += r * cum
            rng = r * (cdf[s + 1] - cum)
            if low >= top:
                self._carry()
                low -= top
            while rng <= bot:
                buf.append(low >> shift)
                low = (low & mask) << 8
                rng <<= 8
        self._low = low
        self._rng = rng

    def encode_values(self, values: IntsLike, cdfs: TablesLike) -> None:
        """Encode signed integers with escape-extended tables.

        Parameters
        ----------
        values : sequence of int, shape (n,)
            Quantised values, magnitudes below
            ``M + 2**(MAX_ESCAPE_BITS + 1)``.
        cdfs : CdfTables or array_like of int, shape (n, 2*M + 3)
            Tables as built by :func:`laplace_tables` / :func:`laplace_cdfs`:
            symbol ``k`` codes the value ``k - M`` for ``k <= 2M`` and symbol
            ``2M+1`` is the escape (followed by a sign bit and an Elias-gamma
            excess, see the module docstring).

        Notes
        -----
        Arguments are validated before anything is coded: on error the
        encoder is unchanged.
        """
        vals = _as_int_list(values)
        tables = _tables(cdfs, len(vals))
        if not vals:
            return
        nsym = tables.n_symbols
        if nsym < 2 or nsym % 2:
            raise ParameterError("value tables must have 2*M+2 symbols (M >= 0)")
        m = (nsym - 2) // 2
        esc = nsym - 1
        if max(max(vals), -min(vals)) - m >= 1 << (MAX_ESCAPE_BITS + 1):
            raise ParameterError("value too large for escape coding")
        low = self._low
        rng = self._rng
        buf = self._buf
        top, bot, shift, mask = _TOP, _BOT, _SHIFT, _LOW_MASK
        # the arithmetic of _encode(), inlined with local state (a method call per
        # symbol would be the loop's main cost)
        for v, cdf in zip(vals, tables.rows, strict=True):
            s = v + m
            if 0 <= s < esc:
                cum = cdf[s]
                r = rng // cdf[-1]
                low += r * cum
                rng = r * (cdf[s + 1] - cum)
                if low >= top:
                    self._carry()
                    low -= top
                while rng <= bot:
                    buf.append(low >> shift)
                    low = (low & mask) << 8
                    rng <<= 8
            else:
                self._low, self._rng = low, rng
                self._encode_escape(v, m, cdf)
                low, rng = self._low, self._rng
        self._low = low
        self._rng = rng

    def encode_intervals(
        self,
        cums: Sequence[int],
        freqs: Sequence[int],
        total_bits: int,
        fields_after: Sequence[tuple[int, Sequence[tuple[int, int]]]] = (),
    ) -> None:
        """Code symbol ``i`` as the interval ``[cums[i], cums[i] + freqs[i])`` of
        ``2**total_bits``, with raw fields after some symbols.

        The arithmetic of :meth:`encode` without a table look-up per symbol: for
        callers that gathered the intervals of many symbols at once (e.g. from
        :func:`laplace_cdfs_from_index`; :func:`escape_fields` gives the raw part
        of an escape). The intervals must be valid (``freq >= 1``, inside the
        total): only the lengths and the positions of the fields are checked.

        Parameters
        ----------
        cums, freqs : sequence of int, shape (n,)
        total_bits : int
            Every interval is out of ``2**total_bits`` (``<= MAX_TOTAL``).
        fields_after : sequence of (int, fields)
            Raw ``(value, nbits)`` fields coded right after the symbol at the
            given position (positions increasing), each of at most 16 bits and
            valid (unchecked), as :func:`escape_fields` gives them.
        """
        n = len(cums)
        if len(freqs) != n or not 1 <= (1 << total_bits) <= MAX_TOTAL:
            raise ParameterError("invalid intervals")
        stops = [p for p, _ in fields_after]
        if any(not 0 <= p < n for p in stops) or stops != sorted(set(stops)):
            raise ParameterError("field positions must be increasing symbol positions")
        low = self._low
        rng = self._rng
        buf = self._buf
        top, bot, shift, mask, tb = _TOP, _BOT, _SHIFT, _LOW_MASK, total_bits
        start = 0
        for stop, fields in [*fields_after, (n - 1, ())]:
            for cum, freq in zip(cums[start : stop + 1], freqs[start : stop + 1], strict=True):
                r = rng >> tb
                low += r * cum
                rng = r * freq
                if low >= top:
                    self._carry()
                    low -= top
                while rng <= bot:
                    buf.append(low >> shift)
                    low = (low & mask) << 8
                    rng <<= 8
            start = stop + 1
            for value, nb in fields:  # encode_bits()' arithmetic
                rng >>= nb
                low += rng * value
                if low >= top:
                    self._carry()
                    low -= top
                while rng <= bot:
                    buf.append(low >> shift)
                    low = (low & mask) << 8
                    rng <<= 8
        self._low = low
        self._rng = rng

    def _encode_escape(self, v: int, m: int, cdf: Sequence[int]) -> None:
        excess = abs(v) - m
        nb = excess.bit_length() - 1
        if nb > MAX_ESCAPE_BITS:
            raise ParameterError(f"value {v} too large for escape coding")
        esc = len(cdf) - 2
        self._encode(cdf[esc], cdf[esc + 1] - cdf[esc], cdf[-1])
        self.encode_fields(escape_fields(v, m))

    # ---------------------------------------------------------- accounting
    def tell(self) -> int:
        """Upper bound on the size of the stream if finished now, in bits.

        Returns
        -------
        int
            ``8 * n_shifted_bytes + PRECISION - floor(log2(range))``.
            ``len(finish()) <= ceil(tell() / 8)`` always holds, so
            ``tell() <= 8 * B`` guarantees that the stream fits in ``B``
            bytes.  The decoder's :meth:`RangeDecoder.tell` returns the same
            value after the same operations.
        """
        return 8 * len(self._buf) + PRECISION + 1 - self._rng.bit_length()

    def bits_used(self) -> float:
        """Information content coded so far, ``-log2`` of the interval width.

        Returns
        -------
        float
            Bits; ``tell() - 1 < bits_used() <= tell()``.
        """
        return 8 * len(self._buf) + PRECISION - math.log2(self._rng)

    def finish(self) -> bytes:
        """Return the shortest byte string that decodes to what was coded.

        The decoder treats missing bytes as zeros, so trailing zero bytes are
        removed and the result may be padded with zeros freely.  The encoder
        state is not modified (encoding may continue afterwards).

        Returns
        -------
        bytes
            At most ``ceil(tell() / 8)`` bytes.
        """
        low = self._low
        rng = self._rng
        out = bytearray(self._buf)
        if low == 0:
            pass  # value = emitted bytes followed by zeros
        elif low + rng > _TOP:
            # value = emitted bytes + 1 unit (carry), followed by zeros
            i = len(out) - 1
            while out[i] == 0xFF:
                out[i] = 0
                i -= 1
            out[i] += 1
        else:
            # one more byte: the smallest multiple of 2**_SHIFT >= low; it is
            # < low + rng because rng > 2**_SHIFT after renormalisation.
            out.append((low + _LOW_MASK) >> _SHIFT)
        n = len(out)
        while n and out[n - 1] == 0:
            n -= 1
        return bytes(out[:n])


def escape_fields(v: int, m: int) -> list[tuple[int, int]]:
    """The raw fields that follow the escape symbol of the value ``v`` (``|v| > m``)
    in :meth:`RangeEncoder.encode_values`: the sign, then Elias gamma: ``nb`` ones
    and a zero (one bit per field, as the decoder reads them), then the ``nb`` low
    bits of the excess (in fields of at most 16 bits, as :meth:`~RangeEncoder.encode_bits`
    splits them; none when ``nb`` is 0)."""
    excess = abs(v) - m
    nb = excess.bit_length() - 1
    if excess < 1 or nb > MAX_ESCAPE_BITS:
        raise ParameterError(f"value {v} cannot be escape-coded with M = {m}")
    fields = [(1 if v < 0 else 0, 1)] + [(1, 1)] * nb + [(0, 1)]
    low = excess - (1 << nb)
    if nb > 16:  # in the chunks encode_bits() would split it into
        fields.append((low >> (nb - 16), 16))
        fields.append((low & ((1 << (nb - 16)) - 1), nb - 16))
    elif nb:
        fields.append((low, nb))
    return fields


def escape_fields_many(
    v: NDArray[np.int64], m: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """:func:`escape_fields` of every value of ``v`` (``|v| > m``, excess below
    ``2**(MAX_ESCAPE_BITS + 1)``) at once: the number of fields of each value,
    and for every field (value after value, each in order) the value it
    belongs to, its value and its width."""
    excess = np.abs(v) - m
    nb = np.frexp(excess.astype(np.float64))[1].astype(np.int64) - 1  # bit_length - 1
    big = nb > 16
    count = nb + 2 + np.where(big, 2, np.minimum(nb, 1))
    owner = np.repeat(np.arange(v.size), count)
    start = np.cumsum(count) - count
    t = np.arange(owner.size) - start[owner]
    val = (t <= nb[owner]).astype(np.int64)  # the gamma code: ones, then a zero
    width = np.ones(owner.size, dtype=np.int64)
    val[start] = v < 0  # the sign
    low = excess - np.left_shift(1, nb)
    at = start + nb + 2  # the low bits, in fields of at most 16 bits
    small = (nb > 0) & ~big
    val[at[small]] = low[small]
    width[at[small]] = nb[small]
    val[at[big]] = low[big] >> (nb[big] - 16)
    width[at[big]] = 16
    val[at[big] + 1] = low[big] & (np.left_shift(1, nb[big] - 16) - 1)
    width[at[big] + 1] = nb[big] - 16
    return count, owner, val, width


class OpRecorder:
    """Records the intervals a :class:`RangeEncoder` would code, without coding.

    It has the encoder's methods for a frame's head (:meth:`encode_bits`,
    :meth:`encode_fields`, :meth:`encode_symbol` with tables whose total is a
    power of two; the values' intervals are laid out by the caller) and keeps each coding step as an
    interval ``(cum, freq, shift)`` of ``2**shift``: a raw chunk of ``nb <= 16``
    bits is ``(value, 1, nb)``, a symbol ``(cdf[s], cdf[s+1] - cdf[s], log2
    total)``. The steps are the same arithmetic as the encoder's (``rng >>
    shift`` is ``rng // total``), so :func:`encode_many` of the recorded steps
    gives the encoder's bytes. Arguments are checked as the encoder checks them.
    """

    def __init__(self) -> None:
        self.cums: list[int] = []
        self.freqs: list[int] = []
        self.shifts: list[int] = []

    def encode_bits(self, value: int, nbits: int) -> None:
        """As :meth:`RangeEncoder.encode_bits`."""
        self.encode_fields([(value, nbits)])

    def encode_fields(self, fields: Sequence[tuple[int, int]]) -> None:
        """As :meth:`RangeEncoder.encode_fields` (fields over 16 bits in 16-bit chunks)."""
        for chunk, nb in _field_chunks(fields):
            self.cums.append(chunk)
            self.freqs.append(1)
            self.shifts.append(nb)

    def encode_symbol(self, symbol: int, cdf: CdfLike) -> None:
        """As :meth:`RangeEncoder.encode_symbol`, for a table whose total is a power of two."""
        if not 0 <= symbol < len(cdf) - 1:
            raise ParameterError(f"symbol {symbol} out of range for a {len(cdf) - 1}-symbol table")
        cum, nxt, total = _int(cdf[symbol]), _int(cdf[symbol + 1]), _int(cdf[-1])
        if not (0 <= cum < nxt <= total <= MAX_TOTAL) or total & (total - 1):
            raise ParameterError(f"invalid cdf interval [{cum}, {nxt}) of {total}")
        self.cums.append(cum)
        self.freqs.append(nxt - cum)
        self.shifts.append(total.bit_length() - 1)


def encode_many(
    cums: NDArray[np.integer],
    freqs: NDArray[np.integer],
    shifts: NDArray[np.integer],
    counts: NDArray[np.integer],
) -> list[RangeEncoder]:
    """Code many independent streams at once: stream ``i`` codes the intervals
    ``[cums[i, j], cums[i, j] + freqs[i, j])`` of ``2**shifts[i, j]`` for ``j <
    counts[i]``, in order (the steps an :class:`OpRecorder` records).

    The coding runs in lock-step over the steps with numpy uint64 registers,
    vectorised across streams: about ten array operations per step instead of
    one pure-Python loop iteration per symbol, which pays off from a few tens
    of streams on (:data:`ENCODE_MANY_MIN_STREAMS`). The encoders returned are
    in exactly the state a :class:`RangeEncoder` coding the same intervals
    leaves (``tell()`` and ``finish()`` give its results).

    Parameters
    ----------
    cums, freqs, shifts : ndarray of int, shape (n, width)
        Valid intervals (``freq >= 1``, ``cum + freq <= 2**shift``, ``shift <=
        16``) in the first ``counts[i]`` entries of each row; the rest is ignored.
    counts : ndarray of int, shape (n,)

    Raises
    ------
    ParameterError
        For malformed arrays or an invalid interval among those coded.

    See Also
    --------
    encode_many_finished : the finished streams of steps laid out step by step.
    """
    cu = np.asarray(cums, dtype=np.int64)
    fr = np.asarray(freqs, dtype=np.int64)
    sh = np.asarray(shifts, dtype=np.int64)
    cnt = np.asarray(counts, dtype=np.int64)
    if cu.ndim != 2 or cu.shape != fr.shape or cu.shape != sh.shape or cnt.shape != cu.shape[:1]:
        raise ParameterError("cums, freqs, shifts must have shape (n, width), counts (n,)")
    n, width = cu.shape
    if n and (cnt.min() < 0 or cnt.max() > width):
        raise ParameterError("invalid step counts")
    used = np.arange(width) < cnt[:, None]
    if np.any(used & ((sh < 0) | (sh > 16) | (cu < 0) | (fr < 1) | (cu + fr > 1 << sh))):
        raise ParameterError("invalid intervals")
    if n == 0:
        return []
    steps = int(cnt.max())
    # streams by decreasing number of steps, laid out step by step (_lock_step)
    order = np.argsort(-cnt, kind="stable")
    op_c = np.ascontiguousarray(cu[order, :steps].T.astype(np.uint64))
    op_f = np.ascontiguousarray(fr[order, :steps].T.astype(np.uint64))
    op_s = np.ascontiguousarray(sh[order, :steps].T.astype(np.uint64))
    low, rng, digits, n_bytes = _lock_step(op_c, op_f, op_s, cnt[order])
    # the pending carries (0 where nothing was emitted: low + rng <= 2**56 there)
    digits[np.maximum(n_bytes - 1, 0), np.arange(n)] += (low >> np.uint64(PRECISION)).astype(
        np.int64
    )
    low &= np.uint64(_TOP - 1)
    _resolve_carries(digits)
    out_bytes = np.ascontiguousarray(digits.T).astype(np.uint8).tobytes()
    stride = digits.shape[0]
    encoders: list[RangeEncoder] = [RangeEncoder.__new__(RangeEncoder) for _ in range(n)]
    for j, (i, lo_j, rng_j, nb_j) in enumerate(
        zip(order.tolist(), low.tolist(), rng.tolist(), n_bytes.tolist(), strict=True)
    ):
        enc = encoders[i]
        enc._low = lo_j
        enc._rng = rng_j
        enc._buf = bytearray(out_bytes[j * stride : j * stride + nb_j])
    return encoders


def encode_many_finished(
    op_c: NDArray[np.uint64],
    op_f: NDArray[np.uint64],
    op_s: NDArray[np.uint64],
    counts: NDArray[np.int64],
    width: int,
) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """:func:`encode_many` of steps already laid out step by step, finished:
    each stream's ``tell()`` and its ``finish()`` bytes zero-padded to
    ``width`` bytes, without a :class:`RangeEncoder` per stream.

    For callers that lay out trusted steps themselves (the TCX encoder): the
    intervals are not checked.

    Parameters
    ----------
    op_c, op_f, op_s : ndarray of uint64, shape (steps, n), C-contiguous
        Step ``j`` of stream ``i`` at ``[j, i]``: valid intervals (as in
        :func:`encode_many`) for ``j < counts[i]``; the rest is ignored.
    counts : ndarray of int, shape (n,)
        Steps of each stream, non-increasing (streams sorted by decreasing
        length), ``counts[0] == steps`` when ``n > 0``.
    width : int
        Bytes per output row.

    Returns
    -------
    tell : ndarray of int64, shape (n,)
        :meth:`RangeEncoder.tell` of each stream.
    rows : ndarray of uint8, shape (n, width)
        ``finish()`` of stream ``i`` followed by zeros, where it fits (always
        when ``tell[i] <= 8 * width``, as ``len(finish()) <= ceil(tell() / 8)``);
        unspecified in the rows of the other streams.
    """
    cnt = np.asarray(counts, dtype=np.int64)
    n = cnt.size
    if op_c.shape != (int(cnt.max()) if n else op_c.shape[0], n) or np.any(np.diff(cnt) > 0):
        raise ParameterError("steps must have shape (max(counts), n), counts non-increasing")
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, width), dtype=np.uint8)
    low, rng, digits, n_bytes = _lock_step(op_c, op_f, op_s, cnt, rows=width + 1)
    cols = np.arange(n)
    # the pending carries (0 where nothing was emitted: low + rng <= 2**56 there),
    # then finish(): low == 0 keeps the bytes; low + rng > 2**56 adds one unit to
    # the number they form; otherwise one more byte, (low + 2**48 - 1) >> 48
    # (< 256: low + rng <= 2**56 and rng > 2**48 there)
    carry = (low >> np.uint64(PRECISION)).astype(np.int64)
    low &= np.uint64(_TOP - 1)
    ends = low + rng > np.uint64(_TOP)
    carry += ends
    digits[np.maximum(n_bytes - 1, 0), cols] += carry
    more = np.flatnonzero(~ends & (low != 0))
    digits[n_bytes[more], more] = ((low[more] + np.uint64(_LOW_MASK)) >> np.uint64(_SHIFT)).astype(
        np.int64
    )
    _resolve_carries(digits)
    # tell(): 8 * bytes + PRECISION + 1 - rng.bit_length(), rng in (2**48, 2**56]
    top = (rng >> np.uint64(_SHIFT)).astype(np.float64)  # 1 .. 256, exact
    tell = 8 * n_bytes + (PRECISION + 1 - _SHIFT) - np.frexp(top)[1].astype(np.int64)
    return tell, np.ascontiguousarray(digits[:width].T).astype(np.uint8)


def _lock_step(
    op_c: NDArray[np.uint64],
    op_f: NDArray[np.uint64],
    op_s: NDArray[np.uint64],
    counts: NDArray[np.int64],
    rows: int = 0,
) -> tuple[NDArray[np.uint64], NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]]:
    """The coding of :func:`encode_many` on steps laid out step by step (shape
    (steps, n), streams by decreasing ``counts``: the active ones at step ``s``
    are the first ``active[s]``). Returns the registers ``low`` (with its carry
    bit, see below) and ``rng`` of each stream, the digits it emitted, shape
    (at least ``max(rows, bytes + 1)``, n), a digit per byte position and
    stream with the carries pending (zero beyond), and the number of bytes."""
    steps, n = op_c.shape
    active = np.searchsorted(-counts, -np.arange(steps), side="left").tolist()
    # Carries.  The scalar coder keeps low < 2**56 by adding a carry (low >= 2**56)
    # to the bytes already emitted at once (_carry).  Here low keeps its carry bit
    # until the next output byte: low + rng never grows (low + r*cum + r*freq <=
    # low + rng) and is < 2**57 after a renormalisation (low < 2**56, rng <= 2**56),
    # so low < 2**57 always, and the first byte a step emits is the *digit*
    # low >> 48 <= 511, i.e. the scalar byte plus 256 * carry.  Let V be the
    # integer whose base-256 digits are the emitted bytes.  Emitting a byte b does
    # V = 256 V + b on both sides and a carry adds 1 to V; the scalar coder adds it
    # to V when it occurs, this one as 256 to the next digit (= 1 at the digit
    # before it) or, at the end, to the last digit: so after the last digit both
    # represent the same V, the scalar one with digits in [0, 255].  As the coded
    # interval lies in [0, 1), V < 256**len (len: number of digits), so V has one
    # base-256 expansion of len digits in [0, 255]; the carry pass from the last
    # digit (d += c; c = d >> 8; d &= 255) computes it and ends with c = 0.  The
    # registers themselves evolve as in the scalar coder (low modulo 2**56).  A
    # step emits at most three bytes: rng > 2**48 before it and r >= rng >> 16.
    low = np.zeros(n, dtype=np.uint64)
    rng = np.full(n, _TOP, dtype=np.uint64)
    r_buf = np.empty(n, dtype=np.uint64)
    t_buf = np.empty(n, dtype=np.uint64)
    log_low = np.empty((steps, n), dtype=np.uint64)  # low after each step's interval
    log_shl = np.zeros((steps, n), dtype=np.uint64)  # 8 * its bytes out (0: inactive)
    thresholds, shl_of = _RENORM_BELOW, _RENORM_SHL
    mask_of = np.array([_TOP - 1] * 3 + [2**64 - 1], dtype=np.uint64)  # keep the carry bit
    ops = zip(active, op_c, op_f, op_s, log_low, log_shl, strict=True)
    for a, c_s, f_s, s_s, lo_s, shl in ops:
        if a == n:  # (slices cost as much as a small operation)
            lo, g, r, t = low, rng, r_buf, t_buf
        else:
            lo, g, r, t = low[:a], rng[:a], r_buf[:a], t_buf[:a]
            c_s, f_s, s_s, lo_s, shl = c_s[:a], f_s[:a], s_s[:a], lo_s[:a], shl[:a]
        # r <= rng >> s and cum + freq <= 2**s: r*cum <= rng <= 2**56, no overflow
        np.right_shift(g, s_s, out=r)
        np.multiply(r, c_s, out=t)
        np.add(lo, t, out=lo_s)
        np.multiply(r, f_s, out=g)
        below = thresholds.searchsorted(g)  # renormalise: 3 - below bytes out
        shl_of.take(below, out=shl, mode="clip")  # (below is 0 .. 3; np.take is slower)
        g <<= shl
        # bits above 2**64 are dropped, and those above 2**56 masked
        np.left_shift(lo_s, shl, out=lo)
        lo &= mask_of.take(below, out=t, mode="clip")

    # the output digits: the top (shl / 8) of low >> 48, (low >> 40) & 255,
    # (low >> 32) & 255 of the steps that emit, at each stream's next positions
    # (stream by stream: flatnonzero of a transposed bool array is the fast way)
    idx = np.flatnonzero(np.ascontiguousarray((log_shl != 0).T))
    fi = idx // steps
    si = idx - fi * steps
    k = (log_shl[si, fi] >> np.uint64(3)).astype(np.int64)
    lows = log_low[si, fi]
    n_bytes = np.bincount(fi, weights=k, minlength=n).astype(np.int64)
    at = np.cumsum(k)
    at -= k  # each emitting step's position in all the streams' bytes
    at -= (np.cumsum(n_bytes) - n_bytes)[fi]  # ... in its stream's
    at *= n
    at += fi
    digits = np.zeros((max(rows, int(n_bytes.max(initial=0)) + 1), n), dtype=np.int64)
    flat = digits.reshape(-1)
    flat[at] = lows >> np.uint64(48)
    for j in (1, 2):
        sel = np.flatnonzero(k > j)
        flat[at[sel] + j * n] = (lows[sel] >> np.uint64(48 - 8 * j)) & np.uint64(255)
    return low, rng, digits, n_bytes


def _resolve_carries(digits: NDArray[np.int64]) -> None:
    """Carry the digits (byte positions x streams, see :func:`_lock_step`) into
    bytes (0 .. 255) in place, from the last position up (only in the streams
    that have a digit above 255: the others have no carry)."""
    cols = np.flatnonzero((digits > 255).any(axis=0))
    if not cols.size:
        return
    sub = digits[:, cols]
    carry = np.zeros(cols.size, dtype=np.int64)
    for d in sub[::-1]:
        d += carry
        np.right_shift(d, 8, out=carry)
        d &= 255
    if carry.any():  # pragma: no cover - V < 256**len (see _lock_step)
        raise AssertionError("carry out of the stream")
    digits[:, cols] = sub


class RangeDecoder:
    """Range decoder reading a byte string produced by :class:`RangeEncoder`.

    Parameters
    ----------
    data : bytes-like
        The coded stream.  Reading past its end yields zero bytes, so
        zero-padded streams decode identically.

    Notes
    -----
    Every operation costs O(1) (a bounded number of byte reads), so decoding
    ``n`` symbols costs O(n) whatever the input.  Corrupt input either
    decodes to arbitrary symbols or raises
    :class:`~codec.errors.BitstreamError` (target in the unused part of the
    range, over-long escape code); no other exception is raised for any
    ``data``.  Invalid *arguments* (tables) raise
    :class:`~codec.errors.ParameterError`.  After decoding a frame,
    ``tell()`` equals the encoder's ``tell()``; ``tell() > 8 * len(frame)``
    indicates a corrupt frame.
    """

    __slots__ = ("_data", "_n", "_pos", "_rng", "_val")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise BitstreamError("range decoder input must be bytes-like")
            data = bytes(data)
        self._data = data
        self._n = n = len(data)
        # the first _NBYTES bytes (zeros past the end), most significant first
        val = int.from_bytes(data[:_NBYTES], "big")
        self._val = val if n >= _NBYTES else val << (8 * (_NBYTES - n))
        self._rng = _TOP
        self._pos = _NBYTES

    def _renorm(self) -> None:
        data, n, pos = self._data, self._n, self._pos
        val, rng = self._val, self._rng
        while rng <= _BOT:
            val = (val << 8) | (data[pos] if pos < n else 0)
            pos += 1
            rng <<= 8
        self._val, self._rng, self._pos = val, rng, pos

    def decode_freq(self, total: int) -> int:
        """Return the target cumulative frequency of the next symbol.

        Parameters
        ----------
        total : int
            Total frequency of the table, ``1 <= total <= MAX_TOTAL``.

        Returns
        -------
        int
            ``t`` in ``[0, total)``; the caller finds the symbol with
            ``cum_low <= t < cum_low + freq`` and calls :meth:`advance`.
        """
        total = _int(total)
        if not 0 < total <= MAX_TOTAL:
            raise ParameterError(f"invalid total {total}")
        t: int = self._val // (self._rng // total)
        if t >= total:
            raise BitstreamError("range decoder target outside the coded range")
        return t

    def advance(self, cum_low: int, freq: int, total: int) -> None:
        """Consume the symbol ``[cum_low, cum_low + freq)`` out of ``total``.

        Must follow :meth:`decode_freq` with the same ``total``, and the
        interval must contain the target it returned (else
        :class:`~codec.errors.ParameterError`).
        """
        cum_low, freq, total = _int(cum_low), _int(freq), _int(total)
        if not (0 <= cum_low and 0 < freq and cum_low + freq <= total <= MAX_TOTAL):
            raise ParameterError(f"invalid interval cum_low={cum_low} freq={freq} total={total}")
        r = self._rng // total
        val = self._val - r * cum_low
        rng = r * freq
        if not 0 <= val < rng:
            raise ParameterError("advance() interval does not contain the decoded target")
        self._val = val
        self._rng = rng
        if rng <= _BOT:
            self._renorm()

    def decode_symbol(self, cdf: CdfLike) -> int:
        """Decode one symbol with the cumulative table ``cdf``.

        Parameters
        ----------
        cdf : sequence of int or ndarray, shape (n_symbols + 1,)
            Same table as given to :meth:`RangeEncoder.encode_symbol`.  A
            list or tuple of Python ints is much faster than an ndarray.

        Returns
        -------
        int
            Symbol index in ``[0, n_symbols)`` (binary search in ``cdf``).
        """
        if isinstance(cdf, np.ndarray):
            cdf = cdf.tolist()
        total = cdf[-1]
        if type(total) is not int or not (0 < total <= MAX_TOTAL and cdf[0] == 0):
            raise ParameterError("invalid cdf table")
        r = self._rng // total
        val = self._val
        t = val // r
        if t >= total:
            raise BitstreamError("range decoder target outside the coded range")
        s = bisect_right(cdf, t) - 1
        cum = cdf[s]
        nxt = cdf[s + 1]
        if type(cum) is not int or type(nxt) is not int or not cum <= t < nxt:
            raise ParameterError("cdf table is not monotone or not made of ints")
        self._val = val - r * cum
        rng = r * (nxt - cum)
        self._rng = rng
        if rng <= _BOT:
            self._renorm()
        return s

    def decode_bits(self, nbits: int) -> int:
        """Decode ``nbits`` raw bits (most significant first).

        Parameters
        ----------
        nbits : int
            Number of bits, >= 0; the same as given to
            :meth:`RangeEncoder.encode_bits`.

        Returns
        -------
        int
            Value in ``[0, 2**nbits)``.
        """
        nbits = _int(nbits)
        _check_nbits(nbits)
        value = 0
        while nbits > 0:
            nb = nbits if nbits <= 16 else 16
            nbits -= nb
            r = self._rng >> nb
            t = self._val // r
            if t >> nb:
                raise BitstreamError("range decoder target outside the coded range")
            self._val -= t * r
            self._rng = r
            if r <= _BOT:
                self._renorm()
            value = (value << nb) | t
        return value

    def decode_fields(self, widths: Sequence[int]) -> list[int]:
        """:meth:`decode_bits` of each width in turn (one call).

        Parameters
        ----------
        widths : sequence of int
            The ``nbits`` of each field, as given to :meth:`RangeEncoder.encode_fields`.

        Returns
        -------
        list of int
            One value per field.
        """
        sizes = list(widths)
        for i, nbits in enumerate(sizes):
            if type(nbits) is not int:
                sizes[i] = nbits = _int(nbits)
            _check_nbits(nbits)
        out: list[int] = []
        data, n, pos = self._data, self._n, self._pos
        val, rng = self._val, self._rng
        bot = _BOT
        for nbits in sizes:  # the arithmetic of decode_bits()
            value = 0
            while nbits > 0:
                nb = nbits if nbits <= 16 else 16
                nbits -= nb
                r = rng >> nb
                t = val // r
                if t >> nb:
                    self._val, self._rng, self._pos = val, rng, pos
                    raise BitstreamError("range decoder target outside the coded range")
                val -= t * r
                rng = r
                while rng <= bot:
                    val = (val << 8) | (data[pos] if pos < n else 0)
                    pos += 1
                    rng <<= 8
                value = (value << nb) | t
            out.append(value)
        self._val, self._rng, self._pos = val, rng, pos
        return out

    def _bit(self) -> int:
        """:meth:`decode_bits` of one bit, without argument checks."""
        r = self._rng >> 1
        t = self._val // r
        if t >> 1:
            raise BitstreamError("range decoder target outside the coded range")
        self._val -= t * r
        self._rng = r
        if r <= _BOT:
            self._renorm()
        return t

    def decode_symbols(self, cdfs: TablesLike) -> list[int]:
        """Decode one symbol per table.

        Parameters
        ----------
        cdfs : CdfTables or array_like of int, shape (n, n_symbols + 1)
            The tables given to :meth:`RangeEncoder.encode_symbols`.

        Returns
        -------
        list of int, length n
        """
        tables = _tables(cdfs, None)
        out: list[int] = []
        append = out.append
        data, n, pos = self._data, self._n, self._pos
        val, rng = self._val, self._rng
        bot = _BOT
        for cdf in tables.rows:
            total = cdf[-1]
            r = rng // total
            t = val // r
            if t >= total:
                self._val, self._rng, self._pos = val, rng, pos
                raise BitstreamError("range decoder target outside the coded range")
            s = bisect_right(cdf, t) - 1
            cum = cdf[s]
            val -= r * cum
            rng = r * (cdf[s + 1] - cum)
            while rng <= bot:
                val = (val << 8) | (data[pos] if pos < n else 0)
                pos += 1
                rng <<= 8
            append(s)
        self._val, self._rng, self._pos = val, rng, pos
        return out

    def decode_values(self, cdfs: TablesLike) -> list[int]:
        """Decode signed integers coded by :meth:`RangeEncoder.encode_values`.

        Parameters
        ----------
        cdfs : CdfTables or array_like of int, shape (n, 2*M + 3)
            The same tables as used by the encoder.

        Returns
        -------
        list of int, length n
            The decoded values.
        """
        tables = _tables(cdfs, None)
        if not len(tables):
            return []
        nsym = tables.n_symbols
        if nsym < 2 or nsym % 2:
            raise ParameterError("value tables must have 2*M+2 symbols (M >= 0)")
        m = (nsym - 2) // 2
        esc = nsym - 1
        out: list[int] = []
        append = out.append
        data, n, pos = self._data, self._n, self._pos
        val, rng = self._val, self._rng
        bot = _BOT
        # the loop of decode_symbols(), repeated rather than called: it decodes every
        # MDCT bin of every frame, and a call per symbol would be its main cost
        shift = tables.shift
        if shift >= 0:
            # every total is 2**shift: the division is a shift
            total = 1 << shift
            for cdf in tables.rows:
                r = rng >> shift
                t = val // r
                if t >= total:
                    self._val, self._rng, self._pos = val, rng, pos
                    raise BitstreamError("range decoder target outside the coded range")
                s = bisect_right(cdf, t) - 1
                cum = cdf[s]
                val -= r * cum
                rng = r * (cdf[s + 1] - cum)
                while rng <= bot:
                    val = (val << 8) | (data[pos] if pos < n else 0)
                    pos += 1
                    rng <<= 8
                if s != esc:
                    append(s - m)
                else:  # escapes are rare: the shared method, with the state handed over
                    self._val, self._rng, self._pos = val, rng, pos
                    append(self._decode_escape(m))
                    val, rng, pos = self._val, self._rng, self._pos
            self._val, self._rng, self._pos = val, rng, pos
            return out
        for cdf in tables.rows:
            total = cdf[-1]
            r = rng // total
            t = val // r
            if t >= total:
                self._val, self._rng, self._pos = val, rng, pos
                raise BitstreamError("range decoder target outside the coded range")
            s = bisect_right(cdf, t) - 1
            cum = cdf[s]
            val -= r * cum
            rng = r * (cdf[s + 1] - cum)
            while rng <= bot:
                val = (val << 8) | (data[pos] if pos < n else 0)
                pos += 1
                rng <<= 8
            if s != esc:
                append(s - m)
            else:
                self._val, self._rng, self._pos = val, rng, pos
                append(self._decode_escape(m))
                val, rng, pos = self._val, self._rng, self._pos
        self._val, self._rng, self._pos = val, rng, pos
        return out

    def _decode_escape(self, m: int) -> int:
        got = _escape_at(self._data, self._val, self._rng, self._pos, m)
        if got is None:  # corrupt: bit by bit, for the exact error and state
            return self._decode_escape_bits(m)
        value, self._val, self._rng, self._pos = got
        return value

    def _decode_escape_bits(self, m: int) -> int:
        """:meth:`_decode_escape` one method call per bit (the reference)."""
        negative = self._bit()
        nb = 0
        while self._bit():
            nb += 1
            if nb > MAX_ESCAPE_BITS:
                raise BitstreamError("escape code too long")
        magnitude = m + (1 << nb) + self.decode_bits(nb)
        return -magnitude if negative else magnitude

    def tell(self) -> int:
        """Bits consumed so far, as counted by :meth:`RangeEncoder.tell`.

        Returns
        -------
        int
            Equal to the encoder's ``tell()`` after the same operations.
        """
        return 8 * (self._pos - _NBYTES) + PRECISION + 1 - self._rng.bit_length()

    def bits_used(self) -> float:
        """Information content decoded so far (see :meth:`RangeEncoder.bits_used`)."""
        return 8 * (self._pos - _NBYTES) + PRECISION - math.log2(self._rng)


def _escape_at(
    data: bytes, val: int, rng: int, pos: int, m: int
) -> tuple[int, int, int, int] | None:
    """:meth:`RangeDecoder._decode_escape_bits` from the decoder state ``val``,
    ``rng``, ``pos`` on ``data``, in one function on local ints (the same
    arithmetic): ``(value, val, rng, pos)`` after the escape, or None where the
    escape is corrupt (a target outside the range, a prefix longer than
    :data:`MAX_ESCAPE_BITS`), for the caller to decode it again with the reference
    and get its error."""
    bot = _BOT
    # the sign, then the Elias-gamma prefix: raw bits (decode_bits(1): the bit is
    # t = val // r, r = rng >> 1, which is 0 or 1 unless val >= 2 r, the error);
    # rng > 2**48 before a bit, so at most one byte comes in after it
    r = rng >> 1
    negative = val >= r
    if negative:
        val -= r
        if val >= r:
            return None
    if r <= bot:
        val = (val << 8) | (data[pos] if pos < len(data) else 0)
        pos += 1
        r <<= 8
    # the prefix: a one while val >= h = rng >> 1 (rng: r here, then h after the bit)
    nb = 0
    h = r >> 1
    while val >= h:
        val -= h
        if val >= h:
            return None
        nb += 1
        if h <= bot:
            # (a byte comes in at least every 8 bits: the length is checked here and
            # after the loop; any prefix too long gives None, as its first excess bit)
            if nb > MAX_ESCAPE_BITS:
                return None
            val = (val << 8) | (data[pos] if pos < len(data) else 0)
            pos += 1
            h <<= 8
        h >>= 1
    if nb > MAX_ESCAPE_BITS:
        return None
    rng = h  # the zero that ends the prefix
    if rng <= bot:
        val = (val << 8) | (data[pos] if pos < len(data) else 0)
        pos += 1
        rng <<= 8
    # the nb low bits of the excess: decode_bits(nb), in steps of at most 16 bits
    magnitude = m + (1 << nb)
    while nb:
        k = nb if nb <= 16 else 16
        nb -= k
        r = rng >> k
        t = val // r
        if t >> k:
            return None
        val -= t * r
        rng = r
        while rng <= bot:
            val = (val << 8) | (data[pos] if pos < len(data) else 0)
            pos += 1
            rng <<= 8
        magnitude += t << nb
    return (-magnitude if negative else magnitude), val, rng, pos


def _byte_windows_by_position(decs: Sequence[RangeDecoder], rows: int) -> NDArray[np.int64]:
    """The decoders' data as 24-bit windows, position-major: ``window[p * rows + i]``
    holds bytes p, p+1, p+2 of stream ``i``, big-endian, zeros past its end (rows
    beyond ``len(decs)``: all zeros), for ``p`` up to the longest stream's length.
    The last entry is a zero of row ``rows - 1``: with ``rows > len(decs)``, an
    index clipped to the end (``take(..., mode="clip")``) reads zeros, as a read
    past the end of any stream must."""
    lens = [d._n for d in decs]
    span = (max(lens) if lens else 0) + 1
    padded = np.zeros((span + 2, rows), dtype=np.uint8)
    if lens and min(lens) == max(lens):
        data = np.frombuffer(b"".join(d._data for d in decs), np.uint8)
        padded[: lens[0], : len(decs)] = data.reshape(len(decs), lens[0]).T
    else:
        for i, d in enumerate(decs):
            padded[: lens[i], i] = np.frombuffer(d._data, np.uint8)
    wide = padded.astype(np.int64)
    window = wide[:-2] << 16
    window |= wide[1:-1] << 8
    window |= wide[2:]
    return window.ravel()


class LockStepDecoder:
    """Many independent :class:`RangeDecoder` streams decoded in lock-step.

    For the few symbols at the head of each frame (raw fields and symbols of
    small tables whose choice may depend on what was decoded before), where
    :func:`decode_values_many` does not apply: each call decodes one symbol for
    the streams ``rows`` (all when None) with numpy int64 registers (as in
    :func:`decode_values_many`), with the arithmetic of
    :meth:`RangeDecoder.decode_bits` / :meth:`~RangeDecoder.decode_symbol`.
    A stream whose target falls outside its table's range (a corrupt stream)
    is marked in :attr:`bad` and decodes zeros from then on; its decoder is not
    written back, so that the caller can decode it again with the scalar
    methods and get their exact error. :meth:`write_back` puts every other
    stream's state into its decoder.
    """

    def __init__(self, decoders: Sequence[RangeDecoder]) -> None:
        self.decoders = list(decoders)
        n = len(self.decoders)
        # position-major windows with an all-zero row n (see decode_values_many):
        # the stream i at byte p reads window[p * (n + 1) + i]
        self._window = _byte_windows_by_position(self.decoders, n + 1)
        self._rows1 = n + 1
        self._adv = _RENORM_BYTES * (n + 1)
        self.val = np.array([d._val for d in self.decoders], dtype=np.int64)
        self.rng = np.array([d._rng for d in self.decoders], dtype=np.int64)
        self.pos = np.array([d._pos for d in self.decoders], dtype=np.int64)
        self.pos *= n + 1
        self.pos += np.arange(n, dtype=np.int64)
        self.bad = np.zeros(n, dtype=bool)

    def _step(
        self,
        rows: NDArray[np.int64] | None,
        r: NDArray[np.int64],
        cum: NDArray[np.int64],
        freq: NDArray[np.int64] | None,
    ) -> None:
        """Consume ``[cum, cum + freq)`` (``freq`` None: 1) with ``r = rng // total``
        in the streams ``rows`` (all when None)."""
        # r * cum <= val < rng <= 2**56; rng > 2**48 before and r >= rng >> 16: at
        # most three bytes in (as decode_values_many)
        v = self.val if rows is None else self.val[rows]
        v -= r * cum
        g = r if freq is None else r * freq
        below = _RENORM_BELOW_I.searchsorted(g)
        sh = _RENORM_SHL_I[below]
        v <<= sh
        g <<= sh
        fp = self.pos if rows is None else self.pos[rows]
        w = self._window.take(fp, mode="clip")  # beyond the end: a zero of row n
        w >>= _RENORM_SHR_I[below]
        v |= w
        fp += self._adv[below]
        if rows is None:
            self.rng = g
        else:
            self.val[rows] = v
            self.rng[rows] = g
            self.pos[rows] = fp

    def _targets(
        self, rows: NDArray[np.int64] | None, shift: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``r = rng >> shift`` and the target ``t = val // r`` of the streams ``rows``
        (all when None); a target ``>> shift`` nonzero (outside the coded range) marks
        its stream bad and parks it on an all-zero state (r and t as for a 0 target)."""
        r = (self.rng if rows is None else self.rng[rows]) >> shift
        t = (self.val if rows is None else self.val[rows]) // r
        over = (t >> shift) != 0
        if over.any():  # corrupt: park on an all-zero state that decodes zeros
            hit = np.flatnonzero(over) if rows is None else rows[over]
            self.bad[hit] = True
            self.val[hit] = 0
            self.rng[hit] = _TOP
            t[over] = 0
            r[over] = _TOP >> shift
        return r, t

    def _rows(self, rows: ArrayLike | None) -> NDArray[np.int64] | None:
        return None if rows is None else np.asarray(rows, dtype=np.int64)

    def bits(self, nbits: int, rows: ArrayLike | None = None) -> NDArray[np.int64]:
        """:meth:`RangeDecoder.decode_bits` of ``nbits`` (<= 16) for the streams ``rows``."""
        if not 0 <= nbits <= 16:
            raise ParameterError("LockStepDecoder.bits reads fields of 0 to 16 bits")
        idx = self._rows(rows)
        if nbits == 0:
            return np.zeros(self.val.size if idx is None else idx.size, dtype=np.int64)
        r, t = self._targets(idx, nbits)
        self._step(idx, r, t, None)
        return t

    def symbols(self, cdfs: NDArray[np.int64], rows: ArrayLike | None = None) -> NDArray[np.int64]:
        """:meth:`RangeDecoder.decode_symbol` for the streams ``rows``, stream ``j``
        with the table ``cdfs[j]`` (one row per stream, shape (k, n_symbols + 1),
        every total the same power of two; one row broadcast to all, as by
        ``np.broadcast_to``, is searched once per stream instead of compared)."""
        idx = self._rows(rows)
        tab = np.asarray(cdfs, dtype=np.int64)
        total = int(tab[0, -1]) if tab.size else 1
        if total & (total - 1) or np.any(tab[:, -1] != total) or not 0 < total <= MAX_TOTAL:
            raise ParameterError("LockStepDecoder.symbols needs one power-of-two total")
        r, t = self._targets(idx, total.bit_length() - 1)
        upper = tab[:, 1:]
        if tab.shape[0] > 1 and tab.strides[0] == 0 and np.all(upper[0, 1:] >= upper[0, :-1]):
            # one non-decreasing row: the count of its entries <= t by a binary search
            row = tab[0]
            s = upper[0].searchsorted(t, side="right")
            cum = row[s]
            freq = row[s + 1] - cum
        else:
            s = (upper <= t[:, None]).sum(axis=1)
            each = np.arange(s.size)
            cum = tab[each, s]
            freq = tab[each, s + 1] - cum
        self._step(idx, r, cum, freq)
        return s

    def write_back(self) -> None:
        """Put each good stream's state into its decoder."""
        pos = (self.pos // self._rows1).tolist()
        for d, v, g, p, b in zip(
            self.decoders, self.val.tolist(), self.rng.tolist(), pos, self.bad.tolist(), strict=True
        ):
            if not b:
                d._val, d._rng, d._pos = v, g, p


class _ValueLookup:
    """The symbol search of :func:`decode_values_many` for one stack of tables.

    The tables lie end to end in :attr:`flat`: table ``j`` holds ``j * stride +
    cdf`` (``stride = total + 2**bucket_bits > total``: they do not overlap),
    searched with the key ``j * stride + t`` (``t <= total``); ``p =
    searchsorted(flat, key, "right")`` is ``j * (nsym+1) + s + 1`` for the symbol
    ``s``, and ``(j+1) * (nsym+1)`` when ``t == total`` (the error). Per ``p``:
    the value ``s - m`` (:attr:`value_at`; ``m + 2`` flags the error), cum and freq.

    A binary search per symbol is slow (its branches mispredict), so :attr:`lut`
    holds ``p`` at the start of every bucket of ``2**bucket_bits`` keys, and ``p =
    lut[key >> bucket_bits] + (key >= flat[lut[...]])`` (one more entry of
    ``flat`` is ``<= key``, at most). The few buckets with two table entries or more
    after their start (the tails of the narrowest tables) point instead to a flag
    entry (``value_at`` ``m + 3``, ``flat`` the largest int64), for the caller to
    search. Built once per stack of tables (cached).
    """

    __slots__ = ("stride", "bucket_bits", "flat", "lut", "value_at", "cum_at", "freq_at", "_lists")

    def __init__(self, tab: NDArray[np.int64]) -> None:
        n_tables, width1 = tab.shape
        m = (width1 - 3) // 2
        shift = int(tab[0, -1]).bit_length() - 1
        self.bucket_bits = b = max(shift - 10, 0)  # 1024 buckets per table
        self.stride = stride = (1 << shift) + (1 << b)
        n_flat = n_tables * width1
        keys = (tab + np.arange(n_tables, dtype=np.int64)[:, None] * stride).ravel()
        top = np.iinfo(np.int64).max
        self.flat = np.concatenate((keys, np.full(2, top, dtype=np.int64)))
        # per bucket i (keys i << b .. ((i + 1) << b) - 1): first = the number of
        # keys <= its start, last = the number of keys <= its end (what searchsorted
        # "right" gives for the two), counted over the sorted keys' buckets
        n_buckets = n_tables * (stride >> b)
        bucket = keys >> b
        last = np.cumsum(np.bincount(bucket, minlength=n_buckets))
        first = np.bincount(bucket[(keys & ((1 << b) - 1)) == 0], minlength=n_buckets)
        first[1:] += last[:-1]
        self.lut = np.where(last - first > 1, n_flat + 1, first)
        sym = np.tile(np.arange(width1, dtype=np.int64) - m, n_tables)  # m + 2 at s = nsym
        # (int8 where it fits: the decoder's output array is then small)
        dtype = np.int8 if m + 3 <= np.iinfo(np.int8).max else np.int64
        self.value_at = np.concatenate(([m + 2], sym, [m + 3])).astype(dtype)
        self.cum_at = np.concatenate(([0], tab.ravel(), [0]))
        freq = np.zeros_like(tab)
        freq[:, :-1] = np.diff(tab, axis=1)  # 0 for the sentinels (never used)
        self.freq_at = np.concatenate(([0], freq.ravel(), [0]))
        self._lists: tuple[list[int], list[int]] | None = None

    def lists(self) -> tuple[list[int], list[int]]:
        """:attr:`flat` and :attr:`value_at` as lists of ints (made once, cached)."""
        if self._lists is None:
            self._lists = (self.flat.tolist(), self.value_at.tolist())
        return self._lists

    @staticmethod
    def of(tab: NDArray[np.int64]) -> _ValueLookup:
        """The lookup of the tables ``tab`` (validated: one power-of-two total)."""
        return _value_lookup(tab.tobytes(), tab.shape[0], tab.shape[1])


@functools.lru_cache(maxsize=8)
def _value_lookup(data: bytes, n_tables: int, width1: int) -> _ValueLookup:
    return _ValueLookup(np.frombuffer(data, dtype=np.int64).reshape(n_tables, width1))


def decode_values_many(
    decoders: Sequence[RangeDecoder],
    cdfs: CdfTables | NDArray[np.integer],
    rows: ArrayLike,
    counts: ArrayLike,
    *,
    collect_errors: bool = False,
) -> tuple[NDArray[np.int64], list[BitstreamError | None]]:
    """:meth:`RangeDecoder.decode_values` of many independent streams at once.

    The streams are decoded in lock-step over the symbol position with numpy,
    vectorised across streams (frames): one pass of about 20 array operations
    per position instead of one pure-Python loop iteration per symbol, which
    pays off from a few tens of streams on (``benchmarks/bench_rangecoder.py``).
    The arithmetic is that of :meth:`~RangeDecoder.decode_values`, in int64
    registers (every quantity is below ``2**57``), so the values, the decoders' final states (hence
    :meth:`~RangeDecoder.tell`) and the errors are exactly the scalar ones.

    Parameters
    ----------
    decoders : sequence of RangeDecoder, length n
        One decoder per stream, positioned where its values start (e.g. after
        its raw fields); distinct objects.  Each is advanced as by
        ``decoders[i].decode_values(tables_i)``.
    cdfs : CdfTables or ndarray of int, shape (n_tables, 2*M + 3)
        The tables the rows index; every total must be the same power of two
        (the case in which :meth:`~RangeDecoder.decode_values` divides with
        a shift; else :class:`~codec.errors.ParameterError`).  An array is
        cheaper (no conversion).
    rows : array_like of int, shape (n, width)
        ``rows[i, j]`` is the table of symbol ``j`` of stream ``i``; only the
        first ``counts[i]`` entries of each row are read.
    counts : array_like of int, shape (n,)
        Number of values of each stream, ``0 <= counts[i] <= width``.
    collect_errors : bool, optional
        How corrupt streams are reported.  False (default): after every
        stream has been decoded, the error of the first failing stream in
        stream order is raised.  True: nothing is raised; the errors are
        returned, so that a caller can interleave them with its own checks
        in stream order, exactly as a loop over the scalar method would.

    Returns
    -------
    values : ndarray of int64, shape (n, width)
        The decoded values; zero beyond ``counts[i]`` and, for a failed
        stream, meaningless.
    errors : list of BitstreamError or None, length n
        ``errors[i]`` is the :class:`~codec.errors.BitstreamError` (same
        type and message) that ``decoders[i].decode_values`` would raise,
        else None.  A failed stream's decoder is left in the state the scalar
        method leaves it in when it raises; the others end in its final
        state.

    Notes
    -----
    Frames are sorted by decreasing count, so the streams still active at a
    position are a prefix (array views, no masks).  The symbol search is that of
    ``searchsorted`` in all tables laid end to end, each offset by more than
    ``total``, done with a table of bucket starts and one comparison
    (:class:`_ValueLookup`); the target is at most ``total`` (``0 <= val < rng``),
    and ``t == total``, the error, lands on a sentinel after its table.
    Renormalisation reads at most three bytes per symbol (``rng > 2**48`` before
    the symbol, so ``rng >= r >= 2**(48 - 16)`` after it), as many as the
    exponent of ``rng`` as a float says (``_RENORM_BYTES_E``), taken at once from
    a 24-bit window of the zero-padded data (:func:`_byte_windows_by_position`);
    reading past a stream's end gives zeros, as in the scalar decoder.
    Escapes (rare per stream, a few per position) are decoded from the stream's
    state by the scalar escape decoder's arithmetic on Python ints
    (:func:`_escape_at`) and their values put in place at the end; a stream that
    fails is parked on an all-zero input, on which it decodes zeros and never
    fails again, and its state is not written back (its decoder is left as the
    scalar method leaves it).
    """
    if isinstance(cdfs, CdfTables):
        tab = cdfs.to_array()
    else:
        tab = np.asarray(cdfs)
        if tab.ndim != 2 or not np.issubdtype(tab.dtype, np.integer):
            raise ParameterError("cdf tables must be an integer array (n_tables, n_symbols+1)")
        tab = tab.astype(np.int64)
        if np.any(tab[:, 0] != 0) or np.any(np.diff(tab, axis=1) < 1):
            raise ParameterError("every cdf must start at 0 and be strictly increasing")
    if tab.shape[0] == 0:
        raise ParameterError("no cdf tables")
    n_tables, width1 = tab.shape
    nsym = width1 - 1
    if nsym < 2 or nsym % 2:
        raise ParameterError("value tables must have 2*M+2 symbols (M >= 0)")
    total = int(tab[0, -1])
    if total > MAX_TOTAL or total & (total - 1) or np.any(tab[:, -1] != total):
        raise ParameterError("decode_values_many needs the same power-of-two total in every table")
    shift = total.bit_length() - 1
    m = (nsym - 2) // 2
    n = len(decoders)
    if not all(isinstance(d, RangeDecoder) for d in decoders):
        raise ParameterError("decoders must be RangeDecoder objects")
    cnt = np.asarray(counts)
    idx = np.asarray(rows)
    if cnt.shape != (n,) or idx.ndim != 2 or idx.shape[0] != n:
        raise ParameterError("rows must have shape (n, width) and counts shape (n,)")
    if n and not (np.issubdtype(cnt.dtype, np.integer) and np.issubdtype(idx.dtype, np.integer)):
        raise ParameterError("rows and counts must be integer arrays")
    width = idx.shape[1]
    values = np.zeros((n, width), dtype=np.int64)
    errors: list[BitstreamError | None] = [None] * n
    if n == 0:
        return values, errors
    if cnt.min() < 0 or cnt.max() > width:
        raise ParameterError(f"counts must be in [0, {width}]")
    cnt = cnt.astype(np.int64)  # negated below
    steps = int(cnt.max())
    if steps == 0:
        return values, errors
    head = idx[:, :steps]
    if head.min() < 0 or head.max() >= n_tables:  # also where the unread entries are
        used = head[np.arange(steps) < cnt[:, None]]
        if used.min() < 0 or used.max() >= n_tables:
            raise ParameterError(f"table rows must be in [0, {n_tables})")

    look = _ValueLookup.of(tab)
    flat, lut, value_at, cum_at, freq_at = (
        look.flat,
        look.lut,
        look.value_at,
        look.cum_at,
        look.freq_at,
    )

    # streams by decreasing count: the active ones at step j are the first active[j]
    order = np.argsort(-cnt, kind="stable")
    neg_sorted = -cnt[order]
    active = np.searchsorted(neg_sorted, -np.arange(steps), side="left").tolist()
    # the table keys' offsets, step by step, made _KEY_BLOCK steps at a time (a
    # transposed copy of the whole (n, steps) block costs more, in its page faults)
    key_buf = np.empty((min(steps, _KEY_BLOCK), n), dtype=np.int64)
    key_start = key_end = 0
    decs = [decoders[i] for i in order.tolist()]
    datas = [d._data for d in decs]

    # zero-padded data (plus an all-zero row for failed streams) as 24-bit windows,
    # position-major: window[p * (n + 1) + i] = bytes p, p+1, p+2 of stream i; an
    # index beyond the end clips to the last entry, a zero of the all-zero row
    window = _byte_windows_by_position(decs, n + 1)
    n1 = n + 1
    park = n  # position 0 of the all-zero row
    # state per stream (sorted order): val < rng <= 2**PRECISION = 2**56 fit int64
    val = np.array([d._val for d in decs], dtype=np.int64)
    rng = np.array([d._rng for d in decs], dtype=np.int64)
    fpos = np.array([d._pos for d in decs], dtype=np.int64)  # into window
    fpos *= n1
    fpos += np.arange(n, dtype=np.int64)
    out = np.zeros((steps, n), dtype=value_at.dtype)  # transposed, sorted order
    escapes: list[tuple[int, int, int]] = []  # (step, stream, value): the escaped values
    failed = np.zeros(n, dtype=bool)

    # renormalisation: shifts and window advances per exponent of rng
    shl_of = _RENORM_SHL_E
    adv_of = _RENORM_BYTES_E * n1

    def fail(j: int, err: BitstreamError) -> None:
        errors[int(order[j])] = err
        failed[j] = True
        val[j] = 0
        rng[j] = _TOP
        fpos[j] = park

    # (measured: int64 beats uint64 (index conversions); fancy indexing beats take()
    # except with mode="clip"; array operands beat numpy scalars)
    shifts = np.full(n, shift, dtype=np.int64)
    buckets = np.full(n, look.bucket_bits, dtype=np.int64)
    # work arrays: rows of bufs, int64 (measured: out= everywhere, no allocation per
    # operation, with take(..., mode="clip") beats fancy indexing by 3 %)
    bufs = np.empty((7, n), dtype=np.int64)
    ge_buf = np.empty(n, dtype=bool)
    f_buf = np.empty(n, dtype=np.float64)
    ones = np.ones(n, dtype=np.int64)
    c52 = np.full(n, 52, dtype=np.int64)
    c24 = np.full(n, 24, dtype=np.int64)
    k = -1
    val_at, rng_at, fpos_at, t_at = val.item, rng.item, fpos.item, bufs[1].item
    flat_list, value_list = look.lists()
    for step in range(steps):
        if active[step] != k:  # views of the active streams (k changes rarely)
            k = active[step]
            v, g, fp = val[:k], rng[:k], fpos[:k]
            r, t, key, p, y, e, w = bufs[:, :k]
            gf, ge, ones_k, c52_k, c24_k = f_buf[:k], ge_buf[:k], ones[:k], c52[:k], c24[:k]
            gf_bits = gf.view(np.int64)
            shifts_k, buckets_k = shifts[:k], buckets[:k]
        if step == key_end:
            key_start, key_end = step, min(step + _KEY_BLOCK, steps)
            rows_now = key_buf[: key_end - step]
            rows_now[...] = head[order, step:key_end].T
            rows_now *= look.stride
        key_off = key_buf[step - key_start, :k]
        np.right_shift(g, shifts_k, out=r)
        # 0 <= val < rng gives t <= total (rng < (r + 1) * total, and r >= total):
        # t == total, the error, finds the sentinel at the end of its table
        np.floor_divide(v, r, out=t)
        t += key_off
        # searchsorted(flat, t, "right"), see _ValueLookup (every index in range)
        np.right_shift(t, buckets_k, out=key)
        lut.take(key, out=p, mode="clip")
        flat.take(p, out=y, mode="clip")
        p += np.greater_equal(t, y, out=ge)
        x = out[step, :k]
        value_at.take(p, out=x, mode="clip")  # (p is in range; "clip" does not buffer)
        # rare per stream, not per step: an escape (m + 1), a target outside the range
        # (m + 2), a bucket to search (m + 3)
        hits = (x > m).nonzero()[0]
        escaped: list[int] = []
        if hits.size:
            escaped = hits.tolist()
            codes = x[hits].tolist()
            if max(codes) > m + 1:  # (else: all escapes)
                # a bucket to search (a step in two of three), then the errors (rare)
                bad = []
                for i, (j, c) in enumerate(zip(escaped, codes, strict=True)):
                    if c == m + 3:
                        p[j] = q = bisect_right(flat_list, t_at(j))
                        x[j] = codes[i] = c = value_list[q]
                    if c > m + 1:
                        bad.append(j)
                for j in bad:
                    d = decs[j]
                    d._val, d._rng, d._pos = val.item(j), rng.item(j), fpos.item(j) // n1
                    fail(j, BitstreamError("range decoder target outside the coded range"))
                if bad:  # parked streams decode a 0 target: the step again
                    np.right_shift(g, shifts_k, out=r)
                    np.floor_divide(v, r, out=t)
                    t += key_off
                    p[...] = flat.searchsorted(t, side="right")
                    value_at.take(p, out=x, mode="clip")
                    escaped = np.flatnonzero(x > m).tolist()
                else:
                    escaped = [j for j, c in zip(escaped, codes, strict=True) if c == m + 1]
        # r <= 2**(56 - shift) and cum, freq <= total = 2**shift: r * cum <= rng <= 2**56,
        # so no product overflows
        cum_at.take(p, out=y, mode="clip")
        y *= r
        v -= y
        freq_at.take(p, out=y, mode="clip")
        np.multiply(r, y, out=g)
        # renormalise: nb bytes in (0 to 3), by the exponent e of rng (see
        # _RENORM_BYTES_E; searchsorted on the thresholds is two times slower)
        np.copyto(gf, g)
        np.subtract(gf_bits, ones_k, out=e)
        e >>= c52_k
        sh = shl_of.take(e, out=y, mode="clip")  # (y: free until the advance below)
        v <<= sh
        g <<= sh
        window.take(fp, out=w, mode="clip")
        w <<= sh  # (w << sh) >> 24 is w >> (24 - sh): its top nb bytes
        w >>= c24_k
        v |= w
        fp += adv_of.take(e, out=y, mode="clip")
        for j in escaped:
            pos = fpos_at(j) // n1
            got = _escape_at(datas[j], val_at(j), rng_at(j), pos, m)
            if got is None:  # corrupt: the decoder keeps its state, as in decode_values
                d = decs[j]
                d._val, d._rng, d._pos = val_at(j), rng_at(j), pos
                try:
                    d._decode_escape_bits(m)  # raises the error
                except BitstreamError as exc:
                    fail(j, exc)
                continue
            value, val[j], rng[j], pos = got
            fpos[j] = pos * n1 + j
            escapes.append((step, j, value))

    pos_list = (fpos // n1).tolist()
    for d, a, b, c, f in zip(
        decs, val.tolist(), rng.tolist(), pos_list, failed.tolist(), strict=True
    ):
        if not f:
            d._val, d._rng, d._pos = a, b, c
    values[order, :steps] = out.T
    if escapes:
        at_step, at_stream, escaped_values = zip(*escapes, strict=True)
        values[order[list(at_stream)], at_step] = escaped_values
    if not collect_errors:
        for err in errors:
            if err is not None:
                raise err
    return values, errors


# ---------------------------------------------------------------------------
# Laplacian models
# ---------------------------------------------------------------------------


def scale_index(scales: ArrayLike) -> NDArray[np.int64]:
    """Snap Laplace scales to the grid used by the tables.

    Parameters
    ----------
    scales : array_like of float, shape (...)
        Laplace parameters ``b > 0`` (mean absolute value, in quantiser
        steps).  Values outside ``[2**SCALE_MIN_LOG2, 2**SCALE_MAX_LOG2]``
        are clipped.

    Returns
    -------
    ndarray of int64, shape (...)
        Grid indices ``round(SCALE_STEPS_PER_OCTAVE * (log2(b) - SCALE_MIN_LOG2))``.
    """
    s = np.asarray(scales, dtype=np.float64)
    if not np.all(s > 0):
        raise ParameterError("Laplace scales must be > 0")
    with np.errstate(over="ignore"):
        x = np.rint(SCALE_STEPS_PER_OCTAVE * (np.log2(s) - SCALE_MIN_LOG2))
    return np.clip(x, 0, _N_SCALES - 1).astype(np.int64)


def scale_from_index(index: ArrayLike) -> NDArray[np.float64]:
    """Laplace scale of grid index ``index`` (inverse of :func:`scale_index`).

    Parameters
    ----------
    index : array_like of int, shape (...)

    Returns
    -------
    ndarray of float64, shape (...)
    """
    i = np.asarray(index, dtype=np.float64)
    return np.asarray(2.0 ** (SCALE_MIN_LOG2 + i / SCALE_STEPS_PER_OCTAVE), dtype=np.float64)


@functools.cache
def _rho_q() -> tuple[int, ...]:
    """``exp(-1/(2 b_i))`` in Q``_RHO_QBITS`` for every grid scale ``b_i``.

    Computed with :mod:`decimal`, whose software arithmetic gives the same
    digits on every platform.
    """
    from decimal import ROUND_HALF_EVEN, Context, Decimal

    ctx = Context(prec=50, rounding=ROUND_HALF_EVEN)
    one_q = Decimal(1 << _RHO_QBITS)
    ln2 = ctx.ln(Decimal(2))
    out = []
    for i in range(_N_SCALES):
        step = ctx.divide(Decimal(i), Decimal(SCALE_STEPS_PER_OCTAVE))
        log2_b = ctx.add(Decimal(SCALE_MIN_LOG2), step)
        b = ctx.exp(ctx.multiply(log2_b, ln2))
        rho = ctx.exp(ctx.minus(ctx.divide(Decimal(1), ctx.multiply(Decimal(2), b))))
        out.append(int(ctx.multiply(rho, one_q).to_integral_value(rounding=ROUND_HALF_EVEN)))
    return tuple(out)


_SHIPPED_TABLES = Path(__file__).resolve().parent.parent / "data"


def _shipped_table_path(max_abs: int, total_bits: int) -> Path:
    return _SHIPPED_TABLES / f"laplace-{max_abs}-{total_bits}.npy"


def write_shipped_table(max_abs: int = 15, total_bits: int = 15) -> Path:
    """Write the cdf tables the codec uses to ``codec/data`` (start-up cache).

    Building them costs about 60 ms; the file is loaded instead when present and
    :func:`_laplace_table` gives the same integers either way (a test checks).
    """
    path = _shipped_table_path(max_abs, total_bits)
    np.save(path, _compute_laplace_table(max_abs, total_bits).astype(np.int32))
    return path


@functools.lru_cache(maxsize=64)
def _laplace_table(max_abs: int, total_bits: int) -> NDArray[np.int64]:
    """Integer cdf tables of every grid scale, shape ``(_N_SCALES, 2M+3)``.

    Read from ``codec/data/laplace-M-T.npy`` when shipped for these arguments
    (:func:`write_shipped_table`), else computed by :func:`_compute_laplace_table`.
    """
    path = _shipped_table_path(max_abs, total_bits)
    if path.is_file():
        try:
            table = np.load(path, allow_pickle=False).astype(np.int64)
        except (OSError, ValueError):
            table = None
        if table is not None and table.shape == (_N_SCALES, 2 * max_abs + 3):
            table.setflags(write=False)
            return table
    return _compute_laplace_table(max_abs, total_bits)


def _compute_laplace_table(max_abs: int, total_bits: int) -> NDArray[np.int64]:
    """Integer cdf tables of every grid scale, shape ``(_N_SCALES, 2M+3)``.

    Pure integer arithmetic (bit-exact everywhere).  Probabilities of a
    rounding-quantised Laplacian, with ``rho = exp(-1/(2b))``:
    ``P(0) = 1 - rho``, ``P(+-k) = (rho**(2k-1) - rho**(2k+1)) / 2``,
    ``P(|q| > M) = rho**(2M+1)``; converted to frequencies with
    ``freq = 1 + floor(p * (T - n_sym))`` and the remaining units given to
    the largest fractional parts (symmetrically, see the code).
    """
    m = max_abs
    nsym = 2 * m + 2
    total = 1 << total_bits
    avail = total - nsym
    one = 1 << _RHO_QBITS
    half = one >> 1
    table = np.empty((_N_SCALES, nsym + 1), dtype=np.int64)
    for i, rho in enumerate(_rho_q()):
        pw = [one]
        for _ in range(2 * m + 1):
            pw.append((pw[-1] * rho + half) >> _RHO_QBITS)
        # probabilities scaled by 2*one (sum exactly 2*one by telescoping)
        p = [0] * nsym
        p[m] = 2 * (pw[0] - pw[1])
        for k in range(1, m + 1):
            pk = pw[2 * k - 1] - pw[2 * k + 1]
            p[m + k] = pk
            p[m - k] = pk
        p[nsym - 1] = 2 * pw[2 * m + 1]
        denom = sum(p)  # == 2 * one
        freq = []
        rem = []
        for pk in p:
            q, r = divmod(pk * avail, denom)
            freq.append(1 + q)
            rem.append(r)
        # Largest remainders first, keeping the table symmetric: the units
        # go to the zero symbol, to +-k pairs or to the escape; ties to the
        # smaller magnitude; an odd unit left at the end goes to zero.
        groups: list[tuple[int, int, tuple[int, ...]]] = [(rem[m], 0, (m,))]
        groups += [(rem[m + k], k, (m - k, m + k)) for k in range(1, m + 1)]
        groups.append((rem[nsym - 1], m + 1, (nsym - 1,)))
        groups.sort(key=lambda g: (-g[0], g[1]))
        left = total - sum(freq)
        for _, _, members in groups:
            if len(members) <= left:
                for j in members:
                    freq[j] += 1
                left -= len(members)
        freq[m] += left
        cum = 0
        table[i, 0] = 0
        for j, f in enumerate(freq):
            cum += f
            table[i, j + 1] = cum
    table.setflags(write=False)
    return table


def _check_model_args(max_abs: int, total_bits: int) -> None:
    if not 0 <= max_abs:
        raise ParameterError(f"max_abs must be >= 0, got {max_abs}")
    if not 1 <= total_bits <= 16:
        raise ParameterError(f"total_bits must be in [1, 16], got {total_bits}")
    if 4 * (2 * max_abs + 2) > (1 << total_bits):
        raise ParameterError(
            "too many symbols for total_bits (need 4*(2*max_abs+2) <= 2**total_bits)"
        )


def _check_index(index: ArrayLike) -> NDArray[np.integer]:
    idx = np.asarray(index)
    if idx.size == 0:
        return idx.astype(np.int64)
    if not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= _N_SCALES:
        raise ParameterError(f"scale indices must be integers in [0, {_N_SCALES})")
    return idx


@functools.lru_cache(maxsize=64)
def _laplace_rows(max_abs: int, total_bits: int) -> tuple[tuple[int, ...], ...]:
    """The grid tables as tuples of Python ints (shared, immutable)."""
    return tuple(tuple(row) for row in _laplace_table(max_abs, total_bits).tolist())


def laplace_cdfs_from_index(
    index: ArrayLike, max_abs: int, total_bits: int = 15
) -> NDArray[np.int64]:
    """Cumulative tables for grid indices (see :func:`scale_index`).

    Parameters
    ----------
    index : array_like of int, shape (...)
        Grid indices in ``[0, n_grid)``.
    max_abs : int
        Largest magnitude coded without escape, ``M``.
    total_bits : int, optional
        Tables sum to ``2**total_bits`` (default 15).

    Returns
    -------
    ndarray of int64, shape (..., 2*M + 3)
        ``cdf[..., k]`` for symbols ``0 .. 2M+1`` (values ``-M .. M`` and
        the escape); a fresh, writable array.
    """
    _check_model_args(max_abs, total_bits)
    out: NDArray[np.int64] = _laplace_table(max_abs, total_bits)[_check_index(index)]
    return out


def laplace_grid_rows(max_abs: int, total_bits: int = 15) -> tuple[tuple[int, ...], ...]:
    """The table of every grid index as a tuple of Python ints (cached, shared).

    Row ``i`` is row ``i`` of :func:`laplace_cdfs_from_index`; a list of rows
    picked from it makes coder-ready tables without validation.
    """
    _check_model_args(max_abs, total_bits)
    return _laplace_rows(max_abs, total_bits)


def laplace_tables_from_index(index: ArrayLike, max_abs: int, total_bits: int = 15) -> CdfTables:
    """Coder-ready tables for grid indices (no per-frame conversion cost).

    Parameters
    ----------
    index : array_like of int, shape (n,)
        Grid indices in ``[0, n_grid)``.
    max_abs : int
        Largest magnitude coded without escape, ``M``.
    total_bits : int, optional
        Tables sum to ``2**total_bits`` (default 15).

    Returns
    -------
    CdfTables
        ``n`` tables of ``2*M + 2`` symbols, the rows of
        :func:`laplace_cdfs_from_index` as cached tuples of Python ints.
    """
    _check_model_args(max_abs, total_bits)
    idx = _check_index(index)
    if idx.ndim != 1:
        raise ParameterError("scale indices must be a 1-D array")
    grid = _laplace_rows(max_abs, total_bits)
    rows: list[Sequence[int]] = [grid[i] for i in idx.tolist()]
    return CdfTables._trusted(rows, 2 * max_abs + 2, total_bits)


def laplace_tables(scales: ArrayLike, max_abs: int, total_bits: int = 15) -> CdfTables:
    """Coder-ready tables of quantised Laplacians, one per scale.

    Same model as :func:`laplace_cdfs`, returned as :class:`CdfTables` for
    :meth:`RangeEncoder.encode_values` / :meth:`RangeDecoder.decode_values`
    (about ten times cheaper than converting the array every frame).

    Parameters
    ----------
    scales : array_like of float, shape (n,)
        Laplace parameters ``b > 0`` in quantiser steps.
    max_abs : int
        Largest magnitude coded without escape, ``M``.
    total_bits : int, optional
        Tables sum to ``2**total_bits`` (default 15).

    Returns
    -------
    CdfTables
    """
    return laplace_tables_from_index(scale_index(scales), max_abs, total_bits)


def laplace_cdfs(scales: ArrayLike, max_abs: int, total_bits: int = 15) -> NDArray[np.int64]:
    """Cumulative tables of quantised Laplacians, one per scale (vectorised).

    Parameters
    ----------
    scales : array_like of float, shape (n,) or (...)
        Laplace parameters ``b > 0`` in quantiser steps (snapped to the
        logarithmic grid, see :func:`scale_index`).
    max_abs : int
        Largest magnitude coded without escape, ``M``.
    total_bits : int, optional
        Every table sums to exactly ``2**total_bits`` (default 15).

    Returns
    -------
    ndarray of int64, shape (..., 2*M + 3)
        Strictly increasing tables (every symbol has frequency >= 1);
        symbol ``k`` stands for the value ``k - M`` and symbol ``2M+1`` is
        the escape for ``|q| > M``.
    """
    return laplace_cdfs_from_index(scale_index(scales), max_abs, total_bits)


def laplace_cdf(scale: float, max_abs: int, total_bits: int = 15) -> NDArray[np.int64]:
    """Cumulative table of one quantised Laplacian (see :func:`laplace_cdfs`).

    Parameters
    ----------
    scale : float
        Laplace parameter ``b > 0`` in quantiser steps.
    max_abs : int
        Largest magnitude coded without escape.
    total_bits : int, optional
        The table sums to ``2**total_bits``.

    Returns
    -------
    ndarray of int64, shape (2*max_abs + 3,)
    """
    return laplace_cdfs(np.float64(scale), max_abs, total_bits)


def symbol_costs(q: ArrayLike, cdfs: NDArray[np.integer] | CdfTables) -> NDArray[np.float64]:
    """Ideal cost in bits of coding each value with :meth:`RangeEncoder.encode_values`.

    Parameters
    ----------
    q : array_like of int, shape (..., n)
        Quantised values; leading dimensions broadcast (e.g. one row per
        candidate gain of a rate loop).
    cdfs : ndarray of int, shape (n, 2*M + 3), or CdfTables
        The tables (an array is faster).

    Returns
    -------
    ndarray of float64, shape (..., n)
        ``-log2(freq/total)`` plus, for escaped values, the ``2 +
        2*floor(log2(|q| - M))`` raw bits.  The real coder spends the sum of
        these plus less than 8 bits of termination (plus ``< 1e-9`` bit per
        symbol).
    """
    qa = np.asarray(q, dtype=np.int64)
    tab = cdfs.to_array() if isinstance(cdfs, CdfTables) else np.asarray(cdfs, dtype=np.int64)
    if tab.ndim != 2 or qa.ndim < 1 or qa.shape[-1] != tab.shape[0]:
        raise ParameterError("q must have shape (..., n) and cdfs shape (n, n_symbols+1)")
    nsym = tab.shape[1] - 1
    m = (nsym - 2) // 2
    mag = np.abs(qa)
    escaped = mag > m
    s = np.where(escaped, nsym - 1, qa + m)
    rows = np.arange(tab.shape[0])
    freq = tab[rows, s + 1] - tab[rows, s]
    bits: NDArray[np.float64] = np.log2(tab[:, -1].astype(np.float64)) - np.log2(
        freq.astype(np.float64)
    )
    if np.any(escaped):
        _, exp = np.frexp(np.where(escaped, mag - m, 1).astype(np.float64))
        bits = bits + np.where(escaped, 2.0 * exp, 0.0)
    return bits


def cost_bits(q: ArrayLike, cdfs: NDArray[np.integer] | CdfTables) -> float:
    """Total ideal cost in bits of a sequence (sum of :func:`symbol_costs`).

    Parameters
    ----------
    q : array_like of int, shape (n,)
    cdfs : ndarray of int, shape (n, 2*M + 3), or CdfTables

    Returns
    -------
    float
        Ideal number of bits; coding the sequence alone with
        :meth:`RangeEncoder.encode_values` gives ``8 * len(finish())`` below
        this plus 8 (plus ``1e-9`` bit per symbol of arithmetic truncation).
    """
    return float(np.sum(symbol_costs(q, cdfs)))
