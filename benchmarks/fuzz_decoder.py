"""Seeded mutation fuzzer for the svq decoder.

Run: ``python benchmarks/fuzz_decoder.py [--cases 2000] [--seed 2026] [--json out.json]``
(``--quick`` runs 200 cases). Real speech from ``samples/*.wav`` (cut to 1-1.7 s)
is encoded at 8, 13.2 and 32 kbit/s; each case applies one randomly chosen
mutation to one of these streams and calls :func:`codec.decode` on the result.

Outcomes of a case:

* ``detected``: a :class:`codec.CodecError` subclass was raised;
* ``undetected``: the decoder returned finite float64 audio of the header's
  ``sample_count`` samples at 16 kHz;
* ``failure``: any other exception, non-finite or wrongly shaped output, more
  than 1 s for the decode, or a tracemalloc peak above 50 MB (a header may claim
  2**32 - 1 frames; the decoder must not allocate for the claim). Each input is
  decoded twice: timed without tracemalloc, then traced for the memory peak.

Prints a table of outcomes per mutation kind, timing and memory figures; exits
1 if any case failed. Every case draws from its own generator seeded with
``(seed, case)``, so ``--case N`` reproduces one case alone (``--dump FILE``
writes its bytes).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import struct
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from tqdm import tqdm

import codec
from codec.audio import read_audio
from codec.bitstream import CHECK_FRAMES, HEADER_BYTES, HEADER_FIELDS, MAGIC, read_header, reseal
from codec.errors import CodecError

ROOT = Path(__file__).resolve().parents[1]
BITRATES = (8.0, 13.2, 32.0)
CUT_SECONDS = (1.0, 1.7)
DEFAULT_CASES = 2000
QUICK_CASES = 200
TIME_LIMIT_S = 1.0
HANG_LIMIT_S = 20.0  # a case still running after this is interrupted (Unix main thread)
PEAK_LIMIT_BYTES = 50 * 2**20
FRAME_LENGTH = 320
VALID_BITRATES_BPS = (8000, 9600, 13200, 16400, 24400, 32000)
OUTCOMES = ("detected", "undetected", "failure")

# byte layout of the prefix and header: name -> (offset, struct code)
_SIZES = {"B": 1, "H": 2, "I": 4, "Q": 8}
FIELDS: dict[str, tuple[int, str]] = {"version": (4, "B"), "header_length": (5, "H")}
_off = 7
for _name, _code, _ in HEADER_FIELDS:
    FIELDS[_name] = (_off, _code)
    _off += int(_code[:-1]) if _code.endswith("s") else _SIZES[_code]
HEADER_END = _off  # first byte after the header fields (the header CRC follows)
del _off, _name, _code

Mutation = Callable[[np.random.Generator, "Stream", list["Stream"]], tuple[bytes, dict[str, Any]]]


@dataclass(frozen=True)
class Stream:
    """One valid encoded input of the corpus."""

    name: str
    data: bytes
    frame_bytes: int
    frame_count: int
    sample_count: int


@dataclass
class Case:
    index: int
    kind: str
    base: str
    detail: dict[str, Any]
    outcome: str
    reason: str
    seconds: float
    peak_bytes: int
    size: int
    data: bytes = field(repr=False, default=b"")


# ------------------------------------------------------------------ corpus


def _stream(name: str, data: bytes) -> Stream:
    h = read_header(data)
    return Stream(name, data, h.frame_bytes, h.frame_count, h.sample_count)


def build_corpus() -> list[Stream]:
    """Valid streams: each sample cut to 1.0 / 1.7 s at every bitrate, plus two tiny ones."""
    corpus: list[Stream] = []
    files = sorted((ROOT / "samples").glob("*.wav"))
    if not files:
        raise SystemExit(f"no samples/*.wav under {ROOT}")
    for k, path in enumerate(files):
        x, rate = read_audio(path)
        secs = CUT_SECONDS[k % len(CUT_SECONDS)]
        cut = x[: int(secs * rate)]
        for br in BITRATES:
            corpus.append(_stream(f"{path.stem}[:{secs:g}s]@{br:g}", codec.encode(cut, rate, br)))
    corpus.append(_stream("empty@13.2", codec.encode(np.zeros(0), 16000, 13.2)))
    corpus.append(_stream("one-sample@8", codec.encode(np.full(1, 0.25), 16000, 8.0)))
    return corpus


def _with_crc(data: bytes) -> bytes:
    """``data`` with its header and block checks recomputed (format 3: one CRC per block)."""
    return reseal(data)


def _frame_at(i: int, fb: int) -> int:
    """Offset of frame ``i``: after the header and the CRC of each block before it."""
    return HEADER_BYTES + i * fb + 4 * (i // CHECK_FRAMES)


def _join_frames(head: bytes, frames: list[bytes]) -> bytes:
    """Header fields, then the frames in blocks with (placeholder) CRCs; reseal fills them in."""
    out = bytearray(head[:HEADER_END] + bytes(4))
    for k in range(0, len(frames), CHECK_FRAMES):
        out += b"".join(frames[k : k + CHECK_FRAMES]) + bytes(4)
    return bytes(out)


def _n_frames(sample_count: int) -> int:
    """Frames the pipeline expects for ``sample_count`` samples (its own rule when available)."""
    try:
        from codec.residual.tcx import TCX

        return int(TCX().n_frames(sample_count))
    except Exception:  # the residual coder's API moved: fall back to the documented rule
        return 0 if sample_count == 0 else -(-(sample_count + 80) // FRAME_LENGTH)


# ------------------------------------------------------------------ mutations


def _bitflip(rng: np.random.Generator, s: Stream, _: list[Stream]) -> tuple[bytes, dict[str, Any]]:
    buf = bytearray(s.data)
    k = int(rng.integers(1, 17))
    bits = sorted(int(b) for b in rng.integers(0, 8 * len(buf), size=k))
    for b in bits:
        buf[b // 8] ^= 1 << (b % 8)
    return bytes(buf), {"bits": bits}


def _byte_overwrite(
    rng: np.random.Generator, s: Stream, _: list[Stream]
) -> tuple[bytes, dict[str, Any]]:
    buf = bytearray(s.data)
    n = int(rng.integers(1, 17))
    start = int(rng.integers(0, len(buf)))
    new = rng.bytes(n)[: len(buf) - start]
    buf[start : start + len(new)] = new
    return bytes(buf), {"offset": start, "bytes": new.hex()}


def _truncate(rng: np.random.Generator, s: Stream, _: list[Stream]) -> tuple[bytes, dict[str, Any]]:
    cut = int(rng.integers(0, len(s.data)))
    return s.data[:cut], {"cut": cut}


def _extend(rng: np.random.Generator, s: Stream, _: list[Stream]) -> tuple[bytes, dict[str, Any]]:
    extra = rng.bytes(int(rng.integers(1, 65)))
    return s.data + extra, {"extra": extra.hex()}


def _splice(
    rng: np.random.Generator, s: Stream, corpus: list[Stream]
) -> tuple[bytes, dict[str, Any]]:
    other = corpus[int(rng.integers(0, len(corpus)))]
    i = int(rng.integers(0, len(s.data) + 1))
    j = int(rng.integers(0, len(other.data) + 1))
    data = s.data[:i] + other.data[j:]
    crc = bool(rng.random() < 0.5) and len(data) >= 4
    if crc:
        data = _with_crc(data)
    return data, {"other": other.name, "prefix": i, "suffix_from": j, "crc_fixed": crc}


def _field_value(rng: np.random.Generator, name: str, code: str, s: Stream) -> int | bytes:
    if code.endswith("s"):
        size = int(code[:-1])
        if name == "envelope_id":
            names = [b"avq-4x6", b"rvq-4x6", b"pvq-4x6", b"vq-1x12", b"", b"../../../etc/x"]
            pick = int(rng.integers(0, len(names) + 2))
            if pick < len(names):
                return names[pick].ljust(size, b"\0")
            if pick == len(names):
                return bytes(rng.integers(32, 127, size=size, dtype=np.uint8))
            return rng.bytes(size)  # likely not ASCII
        choice = int(rng.integers(0, 3))
        if choice == 0:
            return rng.bytes(size)
        if choice == 1:
            return bytes(size)
        off = FIELDS[name][0]
        raw = bytearray(s.data[off : off + size])
        bit = int(rng.integers(0, 8 * size))
        raw[bit // 8] ^= 1 << (bit % 8)
        return bytes(raw)
    top = (1 << (8 * _SIZES[code])) - 1
    off = FIELDS[name][0]
    (orig,) = struct.unpack_from("<" + code, s.data, off)
    special: dict[str, list[int]] = {
        "version": [0, 2, 255],
        "header_length": [0, 64, 66, 72, 65535],
        "sample_rate": [0, 8000, 15999, 16001, 48000],
        "frame_length": [0, 1, 160, 319, 321, 640],
        "bitrate_bps": [*VALID_BITRATES_BPS, 0, 13201],
        "frame_bytes": [0, 1, 20, 24, 33, 41, 61, 80, 1024, 1025],
        "frame_count": [0, 1, 2**31, 2**32 - 2, 2**32 - 1, s.frame_count + 1],
        "sample_count": [0, 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, s.sample_count + 1],
        "residual_coder": [0, 2, 255],
    }
    candidates = [0, 1, top, top - 1, int(rng.integers(0, top, endpoint=True, dtype=np.uint64))]
    candidates += [
        min(top, orig + int(rng.integers(1, 1000))),
        max(0, orig - int(rng.integers(1, 1000))),
    ]
    candidates += special.get(name, [])
    return int(candidates[int(rng.integers(0, len(candidates)))]) & top


def _header_field(
    rng: np.random.Generator, s: Stream, _: list[Stream]
) -> tuple[bytes, dict[str, Any]]:
    names = list(FIELDS)
    name = names[int(rng.integers(0, len(names)))]
    off, code = FIELDS[name]
    buf = bytearray(s.data)
    for _attempt in range(16):  # draw again when the value happens to equal the original
        value = _field_value(rng, name, code, s)
        if isinstance(value, bytes):
            buf[off : off + len(value)] = value
            shown: Any = value.hex()
        else:
            struct.pack_into("<" + code, buf, off, value)
            shown = value
        if buf != s.data:
            break
    crc = bool(rng.random() < 0.75)
    data = _with_crc(bytes(buf)) if crc else bytes(buf)
    return data, {"field": name, "value": shown, "crc_fixed": crc}


def _header_pair(
    rng: np.random.Generator, s: Stream, _: list[Stream]
) -> tuple[bytes, dict[str, Any]]:
    """A self-consistent lie: sample_count and frame_count agree, the body does not."""
    choices = [2**63, 2**64 - 1, 2**40, (2**32 - 1) * FRAME_LENGTH - 100, 2**32, 10**9]
    choices += [s.sample_count + int(rng.integers(1, 4000)), int(rng.integers(0, 10**7))]
    samples = int(choices[int(rng.integers(0, len(choices)))])
    frames = _n_frames(samples) & 0xFFFFFFFF
    buf = bytearray(s.data)
    struct.pack_into("<I", buf, FIELDS["frame_count"][0], frames)
    struct.pack_into("<Q", buf, FIELDS["sample_count"][0], samples)
    return _with_crc(bytes(buf)), {"sample_count": samples, "frame_count": frames}


def _restructure(
    rng: np.random.Generator, s: Stream, corpus: list[Stream]
) -> tuple[bytes, dict[str, Any]]:
    """Drop, duplicate or reorder whole frames; keep the header consistent and the CRC valid."""
    fb = s.frame_bytes
    frames = [s.data[_frame_at(i, fb) : _frame_at(i, fb) + fb] for i in range(s.frame_count)]
    op = ["drop", "duplicate", "reverse", "foreign"][int(rng.integers(0, 4))]
    if op == "drop" and frames:
        k = int(rng.integers(1, len(frames) + 1))
        del frames[-k:]
        detail: dict[str, Any] = {"dropped_from_end": k}
    elif op == "duplicate" and frames:
        i = int(rng.integers(0, len(frames)))
        k = int(rng.integers(1, 20))
        frames[i:i] = [frames[i]] * k
        detail = {"frame": i, "copies": k}
    elif op == "foreign":
        same = [c for c in corpus if c.frame_bytes == fb and c.frame_count and c is not s]
        if same and frames:
            o = same[int(rng.integers(0, len(same)))]
            i = int(rng.integers(0, len(frames)))
            j = int(rng.integers(0, o.frame_count))
            frames[i] = o.data[_frame_at(j, fb) : _frame_at(j, fb) + fb]
            detail = {"frame": i, "from": o.name, "their_frame": j}
        else:
            detail = {"noop": True}
    else:
        op = "reverse"
        frames.reverse()
        detail = {}
    # the largest sample count the new frame count allows, minus a random shortfall
    n = len(frames)
    samples = 0
    if n:
        hi = n * FRAME_LENGTH - 80
        lo = max(1, (n - 1) * FRAME_LENGTH - 80 + 1)
        samples = int(rng.integers(lo, hi + 1))
        if _n_frames(samples) != n:  # the frame rule changed: search for a consistent count
            samples = next((m for m in range(lo - 400, hi + 400) if _n_frames(m) == n), samples)
    buf = bytearray(s.data[:HEADER_END])
    struct.pack_into("<I", buf, FIELDS["frame_count"][0], n)
    struct.pack_into("<Q", buf, FIELDS["sample_count"][0], samples)
    detail.update({"op": op, "frame_count": n, "sample_count": samples})
    return _with_crc(_join_frames(bytes(buf), frames)), detail


def _frame_only(
    rng: np.random.Generator, s: Stream, corpus: list[Stream]
) -> tuple[bytes, dict[str, Any]]:
    """Damage inside the frames only, behind a recomputed CRC, so the frame decoder sees it."""
    if not s.frame_count:
        with_frames = [c for c in corpus if c.frame_count]
        s = with_frames[int(rng.integers(0, len(with_frames)))]
    fb = s.frame_bytes
    body = bytearray(s.data)
    lo, hi = HEADER_BYTES, len(body)
    op = ["bits", "bytes", "random_frame", "zero_frame", "ones_frame", "swap"][
        int(rng.integers(0, 6))
    ]
    detail: dict[str, Any] = {"base": s.name, "op": op}
    if op == "bits":
        bits = sorted(int(b) for b in rng.integers(8 * lo, 8 * hi, size=int(rng.integers(1, 25))))
        for b in bits:
            body[b // 8] ^= 1 << (b % 8)
        detail["bits"] = bits
    elif op == "bytes":
        for _ in range(int(rng.integers(1, 13))):
            i = int(rng.integers(lo, hi))
            body[i] = int(rng.integers(0, 256))
        detail["positions"] = "random"
    else:
        i = int(rng.integers(0, s.frame_count))
        start = _frame_at(i, fb)
        if op == "random_frame":
            body[start : start + fb] = rng.bytes(fb)
        elif op == "zero_frame":
            body[start : start + fb] = bytes(fb)
        elif op == "ones_frame":
            body[start : start + fb] = b"\xff" * fb
        else:
            j = int(rng.integers(0, s.frame_count))
            a, b = bytes(body[start : start + fb]), _frame_at(j, fb)
            body[start : start + fb] = body[b : b + fb]
            body[b : b + fb] = a
            detail["with"] = j
        detail["frame"] = i
    return _with_crc(bytes(body)), detail


def _random_bytes(
    rng: np.random.Generator, s: Stream, _: list[Stream]
) -> tuple[bytes, dict[str, Any]]:
    n = int(rng.integers(0, 600))
    op = ["pure", "magic", "valid_prefix", "valid_header"][int(rng.integers(0, 4))]
    blob = rng.bytes(n)
    if op == "magic":
        data = MAGIC + blob
    elif op == "valid_prefix":
        data = s.data[:7] + blob
    elif op == "valid_header":
        data = _with_crc(s.data[:HEADER_BYTES] + blob)
    else:
        data = blob
    return data, {"op": op, "length": len(data)}


MUTATIONS: dict[str, Mutation] = {
    "bitflip": _bitflip,
    "byte_overwrite": _byte_overwrite,
    "truncate": _truncate,
    "extend": _extend,
    "splice": _splice,
    "header_field": _header_field,
    "header_pair": _header_pair,
    "frame_only_crc": _frame_only,
    "restructure_crc": _restructure,
    "random_bytes": _random_bytes,
}


# ------------------------------------------------------------------ running one case


class _Hang(Exception):
    pass


@contextmanager
def _hang_guard(seconds: float) -> Iterator[None]:
    """Interrupt a case that runs far too long (Unix main thread only; else a no-op)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise _Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def mutate(
    seed: int, index: int, corpus: list[Stream]
) -> tuple[str, Stream, bytes, dict[str, Any]]:
    """The mutated input of case ``index`` (deterministic in ``seed`` and ``index``)."""
    rng = np.random.default_rng([seed, index])
    kinds = list(MUTATIONS)
    kind = kinds[int(rng.integers(0, len(kinds)))]
    base = corpus[int(rng.integers(0, len(corpus)))]
    data, detail = MUTATIONS[kind](rng, base, corpus)
    return kind, base, data, detail


def _classify(data: bytes) -> tuple[str, str]:
    """Decode ``data`` once; (outcome, reason) without the time and memory limits."""
    try:
        with _hang_guard(HANG_LIMIT_S):
            y, rate = codec.decode(data)
    except CodecError as exc:
        return "detected", f"{type(exc).__name__}: {exc}"
    except _Hang as exc:
        return "failure", f"hang: {exc}"
    except Exception as exc:  # any other exception is a finding
        return "failure", f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    expected = read_header(data).sample_count
    if not isinstance(y, np.ndarray) or y.dtype != np.float64 or y.ndim != 1:
        return "failure", f"output is {type(y).__name__} {getattr(y, 'shape', '')}"
    if rate != 16000:
        return "failure", f"sample rate {rate}"
    if not np.all(np.isfinite(y)):
        return "failure", f"{int(np.sum(~np.isfinite(y)))} non-finite samples"
    if y.size != expected:
        return "failure", f"{y.size} samples, header says {expected}"
    return "undetected", f"max |y| {float(np.abs(y).max()) if y.size else 0.0:.3g}"


def check_decode(data: bytes) -> tuple[str, str, float, int]:
    """Decode ``data``; return (outcome, reason, seconds, tracemalloc peak in bytes).

    The decode runs twice: once timed without tracemalloc (which slows the
    pure-Python range decoder about tenfold), once traced for the memory peak.
    The two runs must agree.
    """
    traced_before = tracemalloc.is_tracing()
    t0 = time.perf_counter()
    outcome, reason = _classify(data)
    seconds = time.perf_counter() - t0
    if not traced_before:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start_mem = tracemalloc.get_traced_memory()[0]
        again, _ = _classify(data)
        peak = max(0, tracemalloc.get_traced_memory()[1] - start_mem)
    finally:
        if not traced_before:
            tracemalloc.stop()
    if outcome != "failure" and again != outcome:
        outcome, reason = "failure", f"nondeterministic: {outcome}, then {again} ({reason})"
    if seconds > TIME_LIMIT_S and outcome != "failure":
        outcome, reason = "failure", f"took {seconds:.2f} s ({reason})"
    if peak > PEAK_LIMIT_BYTES and outcome != "failure":
        outcome, reason = "failure", f"tracemalloc peak {peak / 2**20:.1f} MB ({reason})"
    return outcome, reason, seconds, peak


def run_case(seed: int, index: int, corpus: list[Stream]) -> Case:
    kind, base, data, detail = mutate(seed, index, corpus)
    outcome, reason, seconds, peak = check_decode(data)
    base_name = str(detail.get("base", base.name))
    keep = data if outcome == "failure" else b""
    return Case(index, kind, base_name, detail, outcome, reason, seconds, peak, len(data), keep)


# ------------------------------------------------------------------ report


def _message_class(reason: str) -> str:
    return re.sub(r"\d+", "N", reason.split(" (")[0])[:70]


def summarize(cases: list[Case], seed: int, wall: float) -> dict[str, Any]:
    counts = {k: dict.fromkeys(OUTCOMES, 0) for k in MUTATIONS}
    for c in cases:
        counts[c.kind][c.outcome] += 1
    times = [c.seconds for c in cases] or [0.0]
    slowest = max(cases, key=lambda c: c.seconds, default=None)
    undetected_amp = [
        float(c.reason.split()[-1]) for c in cases if c.outcome == "undetected" and c.reason
    ]
    return {
        "seed": seed,
        "cases": len(cases),
        "counts": counts,
        "time_max_s": max(times),
        "time_mean_s": float(np.mean(times)),
        "slowest": None if slowest is None else f"case {slowest.index} ({slowest.kind})",
        "peak_max_bytes": max((c.peak_bytes for c in cases), default=0),
        "undetected_max_abs": max(undetected_amp, default=0.0),
        "wall_s": wall,
        "errors": Counter(_message_class(c.reason) for c in cases if c.outcome == "detected"),
        "undetected_header_fields": Counter(
            str(c.detail.get("field"))
            for c in cases
            if c.kind == "header_field" and c.outcome == "undetected"
        ),
        "failures": [
            {
                "case": c.index,
                "kind": c.kind,
                "base": c.base,
                "detail": c.detail,
                "reason": c.reason,
                "size": c.size,
                "data_hex": c.data.hex() if c.size <= 8192 else None,
            }
            for c in cases
            if c.outcome == "failure"
        ],
    }


def print_report(summary: dict[str, Any], corpus: list[Stream], show: int = 5) -> None:
    print(
        f"svq decoder fuzz: seed {summary['seed']}, {summary['cases']} cases, "
        f"corpus of {len(corpus)} streams"
    )
    head = f"{'mutation':16s} {'cases':>6s} {'detected':>9s} {'undetected':>11s} {'FAILURE':>8s}"
    print(head)
    print("-" * len(head))
    total = dict.fromkeys(OUTCOMES, 0)
    for kind, row in summary["counts"].items():
        n = sum(row.values())
        print(f"{kind:16s} {n:6d} {row['detected']:9d} {row['undetected']:11d} {row['failure']:8d}")
        for o in OUTCOMES:
            total[o] += row[o]
    print("-" * len(head))
    print(
        f"{'total':16s} {sum(total.values()):6d} {total['detected']:9d} "
        f"{total['undetected']:11d} {total['failure']:8d}"
    )
    print(
        f"decode time per case (untraced): max {summary['time_max_s'] * 1e3:.1f} ms, "
        f"mean {summary['time_mean_s'] * 1e3:.2f} ms (limit {TIME_LIMIT_S:g} s; slowest "
        f"{summary['slowest']}); "
        f"tracemalloc peak max {summary['peak_max_bytes'] / 2**20:.2f} MB "
        f"(limit {PEAK_LIMIT_BYTES / 2**20:g} MB)"
    )
    print(f"largest |sample| among undetected outputs: {summary['undetected_max_abs']:.3g}")
    fields = ", ".join(f"{k} {n}" for k, n in summary["undetected_header_fields"].most_common())
    print(f"undetected header_field mutations by field: {fields or 'none'}")
    print("most frequent detections:")
    for msg, n in summary["errors"].most_common(8):
        print(f"  {n:5d}  {msg}")
    print(f"seed {summary['seed']}, wall time {summary['wall_s']:.1f} s")
    failures = summary["failures"]
    if failures:
        print(f"\n{len(failures)} FAILURE(S); the first {min(show, len(failures))}:")
        for f in failures[:show]:
            print(f"  case {f['case']} [{f['kind']}] on {f['base']}: {f['reason']}")
            print(f"    mutation: {json.dumps(f['detail'])[:300]}")
            print(
                f"    reproduce: python benchmarks/fuzz_decoder.py --seed {summary['seed']} "
                f"--case {f['case']} [--dump case.svq]"
            )


def _replay(seed: int, index: int, corpus: list[Stream], dump: str | None) -> int:
    kind, base, data, detail = mutate(seed, index, corpus)
    outcome, reason, seconds, peak = check_decode(data)
    print(f"case {index} (seed {seed}): {kind} on {base.name}, {len(data)} bytes")
    print(f"mutation: {json.dumps(detail)}")
    print(f"outcome: {outcome}: {reason} ({seconds * 1e3:.1f} ms, peak {peak / 2**20:.2f} MB)")
    if dump:
        Path(dump).write_bytes(data)
        print(f"wrote {dump}")
    return 1 if outcome == "failure" else 0


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--cases", type=int, help=f"number of cases (default {DEFAULT_CASES})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_CASES} cases")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--json", help="write the summary (and failing inputs as hex) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--case", type=int, help="replay this one case and print its outcome")
    p.add_argument("--dump", help="with --case: write the mutated bytes to this file")
    args = p.parse_args(argv)
    n_cases = args.cases if args.cases is not None else QUICK_CASES if args.quick else DEFAULT_CASES

    corpus = build_corpus()
    for s in corpus:  # warm-up: codebook loading and tables are not charged to the first case
        codec.decode(s.data)
    if args.case is not None:
        return _replay(args.seed, args.case, corpus, args.dump)
    t0 = time.perf_counter()
    cases = [
        run_case(args.seed, i, corpus)
        for i in tqdm(range(n_cases), disable=args.quiet, desc="fuzz", unit="case")
    ]
    wall = time.perf_counter() - t0
    summary = summarize(cases, args.seed, wall)
    print_report(summary, corpus)
    if args.json:
        out = dict(
            summary,
            errors=dict(summary["errors"]),
            undetected_header_fields=dict(summary["undetected_header_fields"]),
        )
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
