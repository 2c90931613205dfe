"""Static probability models of a TCX frame's side fields (since format 4).

Up to format 3 every side field of a frame (the pitch flag, lag and gain, the
global gain, κ, the noise and top-band levels and ``last``) was written as raw
bits: 27 to 38 bits a frame whatever their values. Their values are far from
uniform: a voiced frame's pitch gain, a speech frame's gain, a frame's κ given
its coded bandwidth. Format 4 codes them with the range coder under fixed
tables, one set per bitrate mode, trained on the train split
(``python -m recipes.train_side_model``): on dev files the tables never saw,
10 to 16 bits a frame fewer (10.3 at 8 kbit/s, 11.7 at 13.2, 15.6 at 32;
RESULTS.md §1), which go to the spectrum.

The tables are memoryless from frame to frame (no field depends on another
frame), so a lost frame costs nothing to the frames after it. Within a frame,
some fields are coded in the context of one coded before it:

=============  =========  =====================================================
field          symbols    context (coded before it in the same frame)
=============  =========  =====================================================
``pitch_on``   2          none
``pitch_lag``  256        none (only when on)
``pitch_gain`` 8          none (only when on)
``gain``       256        none
``last``       B/8 + 1    ``gain >> 5`` (8 classes)
``kappa``      32         ``8 last / (B + 8)`` (8 classes of the coded width)
``noise``      8          ``kappa >> 2``
``hf``         16         ``kappa >> 2`` (only when the mode has a top band)
=============  =========  =====================================================

(B: the mode's coded bins.) Every symbol of every table has a nonzero
frequency, so any value can be coded; the tables mix the trained counts with a
uniform share (:data:`UNIFORM_SHARE`), so no symbol costs more than 6 bits
above its raw width. The shipped tables are ``codec/data/side-model.json``;
they are part of the format (a test pins their hash), and changing them is a
new format version.

:class:`RawSide` writes the same fields as raw bits (format 3's layout, the
ablation switch ``Tools(side_model=False)``); :class:`ModelSide` codes them
with the tables. Both have the same three methods: ``write`` (encoder),
``read`` (decoder) and ``cost`` (the encoder's rate loop, vectorised over
frames), so the TCX coder does not care which it has.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from codec.errors import ParameterError
from codec.residual.pitch import GAIN_BITS as PITCH_GAIN_BITS
from codec.residual.pitch import LAG_BITS
from codec.residual.rangecoder import LockStepDecoder, OpRecorder, RangeDecoder, RangeEncoder

__all__ = [
    "FIELDS",
    "RawSide",
    "ModelSide",
    "SHIPPED_PATH",
    "shipped",
    "context_of",
    "n_contexts",
    "RAW_BITS",
    "n_symbols",
    "tables_from_counts",
    "SideFields",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

TOTAL_BITS = 15
"""Every table sums to ``2 ** TOTAL_BITS``."""
UNIFORM_SHARE = 1.0 / 64.0
"""Share of a uniform distribution mixed into every trained table."""
BACKOFF = 32.0
"""Weight (in counts) of a field's context-free distribution in each context's table."""
N_CONTEXTS = 8
SHIPPED_PATH = Path(__file__).resolve().parent.parent / "data" / "side-model.json"

FIELDS = ("pitch_on", "pitch_lag", "pitch_gain", "gain", "last", "kappa", "noise", "hf")
"""The side fields in payload order (after the envelope indices)."""

RAW_BITS = {  # the widths of format 3's raw fields (tcx.GAIN_BITS etc.; a test checks)
    "pitch_on": 1,
    "pitch_lag": LAG_BITS,
    "pitch_gain": PITCH_GAIN_BITS,
    "gain": 8,
    "last": 6,
    "kappa": 5,
    "noise": 3,
    "hf": 4,
}

SideFields = Mapping[str, Any]
"""Field name -> value (one frame) or array of values (many frames). ``last`` is in
units of 8 bins; ``pitch_lag`` is the coded value (lag minus the smallest lag)."""


_RAW_ORDER = ("gain", "kappa", "noise", "hf", "last")
"""The order of the gain-dependent fields in the raw layout (format 3's)."""
CONTEXTUAL = frozenset({"last", "kappa", "noise", "hf"})
"""The fields coded in the context of an earlier field of the same frame."""


def n_contexts(field: str) -> int:
    """Context classes of a field's tables (1: coded without context)."""
    return N_CONTEXTS if field in CONTEXTUAL else 1


def n_symbols(field: str, coded_bins: int) -> int:
    """Alphabet size of a field in a mode with ``coded_bins`` coded bins."""
    if field == "last":
        return coded_bins // 8 + 1
    return 1 << RAW_BITS[field]


def _ctx_last(gain: Any) -> Any:
    return gain >> 5


def _ctx_kappa(last: Any, coded_bins: int) -> Any:
    return (8 * last) // (coded_bins // 8 + 1)


def _ctx_level(kappa: Any) -> Any:
    return kappa >> 2


def context_of(field: str, values: SideFields, coded_bins: int) -> Any:
    """The context class of ``field`` given the fields coded before it (scalar or array)."""
    if field == "last":
        return _ctx_last(np.asarray(values["gain"]))
    if field == "kappa":
        return _ctx_kappa(np.asarray(values["last"]), coded_bins)
    if field in ("noise", "hf"):
        return _ctx_level(np.asarray(values["kappa"]))
    return np.zeros_like(np.asarray(values.get("gain", 0)))


def _present(coded_bins: int) -> tuple[str, ...]:
    """Fields written in a mode (no top-band level when the whole band is coded)."""
    return tuple(f for f in FIELDS if f != "hf" or coded_bins < 320)


class RawSide:
    """The side fields as raw bits (format 3's layout)."""

    def __init__(self, coded_bins: int) -> None:
        self.coded_bins = int(coded_bins)
        self.fields = FIELDS

    def write(self, enc: RangeEncoder | OpRecorder, values: SideFields) -> None:
        """Write one frame's fields (the pitch fields only when ``values`` has them)."""
        if "pitch_on" in values:
            on = int(values["pitch_on"])
            enc.encode_bits(on, RAW_BITS["pitch_on"])
            if on:
                enc.encode_bits(int(values["pitch_lag"]), RAW_BITS["pitch_lag"])
                enc.encode_bits(int(values["pitch_gain"]), RAW_BITS["pitch_gain"])
        for f in _RAW_ORDER:
            enc.encode_bits(int(values[f]), RAW_BITS[f])

    def read(self, dec: RangeDecoder, *, pitch: bool = True) -> dict[str, int]:
        """Read one frame's fields (``pitch``: the frame has the pitch fields)."""
        raw = RAW_BITS
        out = {"pitch_on": dec.decode_bits(raw["pitch_on"]) if pitch else 0}
        out["pitch_lag"], out["pitch_gain"] = (
            dec.decode_fields([raw["pitch_lag"], raw["pitch_gain"]]) if out["pitch_on"] else (0, 0)
        )
        fields = dec.decode_fields([raw[f] for f in _RAW_ORDER])
        out.update(zip(_RAW_ORDER, fields, strict=True))
        return out

    def pitch_cost(self, on: IntArray, lag: IntArray, gain: IntArray) -> FloatArray:
        """Bits of the pitch fields of each frame."""
        pitch = RAW_BITS["pitch_on"] + RAW_BITS["pitch_lag"] + RAW_BITS["pitch_gain"]
        return np.where(np.asarray(on) > 0, float(pitch), float(RAW_BITS["pitch_on"]))

    def cost(self, values: SideFields) -> FloatArray:
        """Bits of the gain, last, κ, noise and top-band fields of each frame."""
        shape = np.shape(values["gain"])
        return np.full(shape, self.typical_bits())

    def typical_bits(self) -> float:
        """The bits of the gain, last, κ, noise and top-band fields (exact here)."""
        return float(sum(RAW_BITS[f] for f in ("gain", "last", "kappa", "noise", "hf")))

    def max_bits(self) -> float:
        """The most bits the side fields of one frame can take."""
        return float(sum(RAW_BITS.values()))


class ModelSide:
    """The side fields range-coded under fixed tables (since format 4)."""

    def __init__(self, freqs: Mapping[str, Sequence[Sequence[int]]], coded_bins: int) -> None:
        self.coded_bins = int(coded_bins)
        self.fields = _present(self.coded_bins)
        self._cdfs: dict[str, list[list[int]]] = {}
        self._cdf_arrays: dict[str, IntArray] | None = None
        self._bits: dict[str, FloatArray] = {}
        total = 1 << TOTAL_BITS
        for f in self.fields:
            rows = [list(map(int, r)) for r in freqs[f]]
            n_ctx = n_contexts(f)
            if len(rows) != n_ctx:
                raise ParameterError(f"side model: {f} has {len(rows)} contexts, not {n_ctx}")
            for r in rows:
                if len(r) != n_symbols(f, self.coded_bins) or min(r) < 1 or sum(r) != total:
                    raise ParameterError(f"side model: bad frequency table for {f}")
            self._cdfs[f] = [[0, *np.cumsum(r).tolist()] for r in rows]
            self._bits[f] = -np.log2(np.array(rows, dtype=np.float64) / total)

    def symbol_bits(self, field: str) -> FloatArray:
        """``-log2 p`` of every symbol of a field's tables, shape (contexts, symbols)."""
        return self._bits[field]

    # the encoder ---------------------------------------------------------------------

    def write(self, enc: RangeEncoder | OpRecorder, values: SideFields) -> None:
        """Write one frame's fields (the pitch fields only when ``values`` has them)."""
        put = enc.encode_symbol
        cdfs = self._cdfs
        if "pitch_on" in values:
            on = int(values["pitch_on"])
            put(on, cdfs["pitch_on"][0])
            if on:
                put(int(values["pitch_lag"]), cdfs["pitch_lag"][0])
                put(int(values["pitch_gain"]), cdfs["pitch_gain"][0])
        g = int(values["gain"])
        put(g, cdfs["gain"][0])
        last = int(values["last"])
        put(last, cdfs["last"][_ctx_last(g)])
        k = int(values["kappa"])
        put(k, cdfs["kappa"][_ctx_kappa(last, self.coded_bins)])
        put(int(values["noise"]), cdfs["noise"][_ctx_level(k)])
        if "hf" in cdfs:
            put(int(values["hf"]), cdfs["hf"][_ctx_level(k)])

    def pitch_cost(self, on: IntArray, lag: IntArray, gain: IntArray) -> FloatArray:
        """Bits of the pitch fields of each frame (arrays of equal shape)."""
        on = np.asarray(on)
        b = self._bits
        lag_c = b["pitch_lag"][0][np.where(on > 0, lag, 0)]
        gain_c = b["pitch_gain"][0][np.where(on > 0, gain, 0)]
        return np.asarray(b["pitch_on"][0][on] + np.where(on > 0, lag_c + gain_c, 0.0))

    def cost(self, values: SideFields) -> FloatArray:
        """Ideal bits (``-log2 p``) of the gain, last, κ, noise and top-band fields
        of each frame (arrays of equal shape)."""
        bits = np.zeros(np.shape(values["gain"]))
        for f in self.fields[3:]:
            ctx = context_of(f, values, self.coded_bins)
            bits = bits + self._bits[f][ctx, np.asarray(values[f])]
        return bits

    def max_bits(self) -> float:
        """The most bits the side fields of one frame can take."""
        return float(sum(self._bits[f].max() for f in self.fields))

    def typical_bits(self) -> float:
        """A typical cost of the gain, last, κ, noise and top-band fields: the sum
        of each table's entropy, averaged over its contexts (an estimate for the
        rate loop's first search)."""
        total = 0.0
        for f in self.fields[3:]:
            b = self._bits[f]
            total += float(np.mean(np.sum(np.exp2(-b) * b, axis=1)))
        return total

    # the decoder ---------------------------------------------------------------------

    def steps_many(self, values: Mapping[str, IntArray]) -> tuple[IntArray, IntArray, IntArray]:
        """The coding steps of :meth:`write` for many frames at once, as the
        arrays ``(cums, freqs, shifts)`` of shape (n, steps) that
        :func:`~codec.residual.rangecoder.encode_many` takes: every frame has
        the same steps, a field a frame does not write (the pitch lag and gain
        where the pitch is off) being the no-op step ``(0, 1, 0)``. The pitch
        fields are written when ``values`` has ``pitch_on``."""
        tabs = self._arrays()
        g = np.asarray(values["gain"], dtype=np.int64)
        last = np.asarray(values["last"], dtype=np.int64)
        k = np.asarray(values["kappa"], dtype=np.int64)
        zero = np.zeros_like(g)
        cols: list[tuple[str, IntArray, IntArray, npt.NDArray[np.bool_] | None]] = []
        if "pitch_on" in values:
            on = np.asarray(values["pitch_on"], dtype=np.int64)
            cols.append(("pitch_on", zero, on, None))
            for f in ("pitch_lag", "pitch_gain"):
                sym = np.where(on > 0, np.asarray(values[f], dtype=np.int64), 0)
                cols.append((f, zero, sym, on > 0))
        cols.append(("gain", zero, g, None))
        cols.append(("last", _ctx_last(g), last, None))
        cols.append(("kappa", _ctx_kappa(last, self.coded_bins), k, None))
        cols.append(("noise", _ctx_level(k), np.asarray(values["noise"], dtype=np.int64), None))
        if "hf" in tabs:
            cols.append(("hf", _ctx_level(k), np.asarray(values["hf"], dtype=np.int64), None))
        cums, freqs, shifts = [], [], []
        for f, ctx, sym, present in cols:
            t = tabs[f]
            cum = t[ctx, sym]
            freq = t[ctx, sym + 1] - cum
            shift = np.full_like(cum, TOTAL_BITS)
            if present is not None:  # absent: the no-op step
                cum, freq, shift = (
                    np.where(present, a, b) for a, b in ((cum, 0), (freq, 1), (shift, 0))
                )
            cums.append(cum)
            freqs.append(freq)
            shifts.append(shift)
        return np.stack(cums, axis=1), np.stack(freqs, axis=1), np.stack(shifts, axis=1)

    def read_many(self, lock: LockStepDecoder, *, pitch: bool = True) -> dict[str, IntArray]:
        """:meth:`read` of every stream of ``lock`` at once (arrays of the fields;
        the streams ``lock.bad`` marks are corrupt: read them again with :meth:`read`)."""
        tabs = self._arrays()
        n = lock.val.size
        zeros = np.zeros(n, dtype=np.int64)
        t_on = tabs["pitch_on"][0]
        on = lock.symbols(np.broadcast_to(t_on, (n, t_on.size))) if pitch else zeros.copy()
        out = {"pitch_on": on, "pitch_lag": zeros.copy(), "pitch_gain": zeros.copy()}
        rows = np.flatnonzero(on)
        if rows.size:
            for f in ("pitch_lag", "pitch_gain"):
                t = tabs[f][0]
                out[f][rows] = lock.symbols(np.broadcast_to(t, (rows.size, t.size)), rows)
        g = out["gain"] = lock.symbols(np.broadcast_to(tabs["gain"][0], (n, tabs["gain"].shape[1])))
        last = out["last"] = lock.symbols(tabs["last"][_ctx_last(g)])
        k = out["kappa"] = lock.symbols(tabs["kappa"][_ctx_kappa(last, self.coded_bins)])
        out["noise"] = lock.symbols(tabs["noise"][_ctx_level(k)])
        out["hf"] = lock.symbols(tabs["hf"][_ctx_level(k)]) if "hf" in tabs else zeros.copy()
        return out

    def _arrays(self) -> dict[str, IntArray]:
        """Each field's cumulative tables as one array (contexts, symbols + 1)."""
        if self._cdf_arrays is None:
            self._cdf_arrays = {f: np.array(c, dtype=np.int64) for f, c in self._cdfs.items()}
        return self._cdf_arrays

    def read(self, dec: RangeDecoder, *, pitch: bool = True) -> dict[str, int]:
        """Read one frame's fields (``pitch``: the frame has the pitch fields)."""
        get = dec.decode_symbol
        cdfs = self._cdfs
        on = get(cdfs["pitch_on"][0]) if pitch else 0
        out = {"pitch_on": on, "pitch_lag": 0, "pitch_gain": 0, "hf": 0}
        if out["pitch_on"]:
            out["pitch_lag"] = get(cdfs["pitch_lag"][0])
            out["pitch_gain"] = get(cdfs["pitch_gain"][0])
        g = out["gain"] = get(cdfs["gain"][0])
        last = out["last"] = get(cdfs["last"][_ctx_last(g)])
        k = out["kappa"] = get(cdfs["kappa"][_ctx_kappa(last, self.coded_bins)])
        out["noise"] = get(cdfs["noise"][_ctx_level(k)])
        if "hf" in cdfs:
            out["hf"] = get(cdfs["hf"][_ctx_level(k)])
        return out


@functools.cache
def _shipped_json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@functools.cache
def shipped(mode_key: str, coded_bins: int) -> ModelSide:
    """The shipped tables of a mode (``mode_key``: its bitrate as ``f"{kbps:g}"``)."""
    data = _shipped_json(str(SHIPPED_PATH))
    try:
        freqs = data["modes"][mode_key]
    except KeyError:
        raise ParameterError(f"no shipped side model for the {mode_key} kbit/s mode") from None
    return ModelSide(freqs, coded_bins)


def tables_from_counts(
    counts: Mapping[str, npt.ArrayLike], coded_bins: int
) -> dict[str, list[list[int]]]:
    """Frequency tables (each summing to ``2 ** TOTAL_BITS``, no zero) from counts.

    ``counts[f]`` has shape (contexts, symbols) (one context for the context-free
    fields). Each context's distribution is its counts backed off to the field's
    overall distribution with weight :data:`BACKOFF`, mixed with a uniform share
    :data:`UNIFORM_SHARE`; frequencies are ``floor(p (T - n)) + 1``, and what is
    left of ``T`` goes one by one to the largest probabilities (ties: the lower
    symbol), so the result is exact and deterministic.
    """
    total = 1 << TOTAL_BITS
    out: dict[str, list[list[int]]] = {}
    for f in _present(coded_bins):
        c = np.asarray(counts[f], dtype=np.float64)
        n = n_symbols(f, coded_bins)
        if c.ndim != 2 or c.shape[1] != n:
            raise ParameterError(f"counts of {f}: shape {c.shape}, expected (contexts, {n})")
        marg = c.sum(axis=0)
        marg = marg / max(marg.sum(), 1.0)
        rows = []
        for row in c:
            p = (row + BACKOFF * marg) / (row.sum() + BACKOFF)
            p = (1.0 - UNIFORM_SHARE) * p + UNIFORM_SHARE / n
            freq = np.floor(p * (total - n)).astype(np.int64) + 1
            left = total - int(freq.sum())
            order = np.argsort(-p, kind="stable")
            freq[order[:left]] += 1
            rows.append(freq.tolist())
        out[f] = rows
    return out
