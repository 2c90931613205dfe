"""Benchmark: range coder symbols/s and MDCT frames/s, one CPU core.

Run: ``python benchmarks/bench_rangecoder.py`` (pins BLAS/OpenMP to one thread).

The symbol streams imitate the residual coder: 320 quantised MDCT bins per
frame, Laplacian with per-bin scales between 0.1 and 30 quantiser steps,
tables from :func:`codec.residual.rangecoder.laplace_tables` (max_abs 15, so a few
percent of the bins escape).  Reported for the per-symbol methods
(``encode_symbol`` / ``decode_symbol`` on list rows, the bare Python call
overhead included), the batch methods (``encode_values`` / ``decode_values``,
per-frame table construction included) and raw bits.  Goal: >= 300 000
symbols/s.  The MDCT part reports frames/s of batch analysis and synthesis
and of the streaming classes.

The many-frames part compares, on independent streams of 120 to 320 such bins
(as the TCX frames), a loop of ``decode_values`` (one decoder and one table
stack per frame) with :func:`codec.residual.rangecoder.decode_values_many`
(all frames in lock-step with numpy), at 100 frames (``codec.pipeline``'s
block) and 1000 frames.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from codec.residual.mdct import FRAME, MdctAnalyzer, MdctSynthesizer, analysis, synthesis  # noqa: E402
from codec.residual.rangecoder import (  # noqa: E402
    RangeDecoder,
    RangeEncoder,
    decode_values_many,
    laplace_cdfs_from_index,
    laplace_tables,
    laplace_tables_from_index,
    scale_index,
)

N_FRAMES = 300
BINS = 320
MAX_ABS = 15


def _best(fn: Callable[[], object], reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_rangecoder() -> None:
    rng = np.random.default_rng(0)
    scales = np.exp(rng.uniform(np.log(0.1), np.log(30.0), (N_FRAMES, BINS)))
    q = np.round(rng.laplace(0.0, scales)).astype(np.int64)
    n_sym = q.size
    tables = [laplace_tables(s, MAX_ABS) for s in scales]
    q_lists = [row.tolist() for row in q]
    sym_lists = [
        np.where(np.abs(row) > MAX_ABS, 2 * MAX_ABS + 1, row + MAX_ABS).tolist() for row in q
    ]
    escaped = float(np.mean(np.abs(q) > MAX_ABS))

    def enc_values() -> list[bytes]:
        out = []
        for s, v in zip(scales, q_lists, strict=True):
            enc = RangeEncoder()
            enc.encode_values(v, laplace_tables(s, MAX_ABS))
            out.append(enc.finish())
        return out

    frames = enc_values()

    def dec_values() -> None:
        for s, data in zip(scales, frames, strict=True):
            RangeDecoder(data).decode_values(laplace_tables(s, MAX_ABS))

    def enc_symbol() -> list[bytes]:
        out = []
        for t, syms in zip(tables, sym_lists, strict=True):
            enc = RangeEncoder()
            encode = enc.encode_symbol
            for s, cdf in zip(syms, t.rows, strict=True):
                encode(s, cdf)
            out.append(enc.finish())
        return out

    sym_frames = enc_symbol()

    def dec_symbol() -> None:
        for t, data in zip(tables, sym_frames, strict=True):
            decode = RangeDecoder(data).decode_symbol
            for cdf in t.rows:
                decode(cdf)

    bits = rng.integers(0, 256, n_sym).tolist()

    def enc_bits() -> RangeEncoder:
        enc = RangeEncoder()
        encode = enc.encode_bits
        for b in bits:
            encode(b, 8)
        return enc

    bit_data = enc_bits().finish()

    def dec_bits() -> None:
        decode = RangeDecoder(bit_data).decode_bits
        for _ in range(n_sym):
            decode(8)

    total_bytes = sum(len(f) for f in frames)
    print(
        f"range coder, {N_FRAMES} frames x {BINS} Laplacian bins "
        f"({escaped:.1%} escaped, {8 * total_bytes / n_sym:.2f} bit/symbol), 1 core:"
    )
    for name, fn in [
        ("encode_values (batch, tables incl.)", enc_values),
        ("decode_values (batch, tables incl.)", dec_values),
        ("encode_symbol (one call per symbol)", enc_symbol),
        ("decode_symbol (one call per symbol)", dec_symbol),
        ("encode_bits(8) (one call per byte)", enc_bits),
        ("decode_bits(8) (one call per byte)", dec_bits),
    ]:
        t = _best(fn)
        print(f"  {name:38s} {n_sym / t:12,.0f} symbols/s")


def bench_many_frames(sizes: tuple[int, ...] = (100, 1000), max_scale: float = 30.0) -> None:
    rng = np.random.default_rng(2)
    n_max = max(sizes)
    counts = rng.integers(120, BINS + 1, n_max)
    scales = np.exp(rng.uniform(np.log(0.1), np.log(max_scale), (n_max, BINS)))
    rows = scale_index(scales)
    grid = laplace_cdfs_from_index(np.arange(int(rows.max()) + 1), MAX_ABS)
    frames = []
    n_escaped = 0
    for i in range(n_max):
        c = int(counts[i])
        q = np.round(rng.laplace(0.0, scales[i, :c])).astype(np.int64)
        n_escaped += int(np.sum(np.abs(q) > MAX_ABS))
        enc = RangeEncoder()
        enc.encode_bits(int(rng.integers(0, 1 << 20)), 20)  # fields before the values
        enc.encode_values(q, grid[rows[i, :c]])
        frames.append(enc.finish())

    def decoders(n: int) -> list[RangeDecoder]:
        decs = [RangeDecoder(f) for f in frames[:n]]
        for d in decs:
            d.decode_bits(20)
        return decs

    print(
        f"many frames: {counts.min()}..{counts.max()} Laplacian bins per frame, scales "
        f"0.1..{max_scale:g} ({n_escaped / counts.sum():.1%} escaped), values decoded "
        "after 20 bits of fields, 1 core:"
    )
    for n in sizes:
        n_val = int(counts[:n].sum())

        def scalar(n: int = n) -> list[list[int]]:
            return [
                d.decode_values(laplace_tables_from_index(rows[i, : counts[i]], MAX_ABS))
                for i, d in enumerate(decoders(n))
            ]

        def many(n: int = n) -> np.ndarray:
            return decode_values_many(decoders(n), grid, rows[:n], counts[:n])[0]

        ref = scalar()
        got = many()
        assert all(got[i, : counts[i]].tolist() == ref[i] for i in range(n))
        t_s = _best(scalar)
        t_m = _best(many)
        print(
            f"  {n:5d} frames: decode_values loop {n_val / t_s:12,.0f} values/s "
            f"({1e3 * t_s:6.1f} ms), decode_values_many {n_val / t_m:12,.0f} values/s "
            f"({1e3 * t_m:6.1f} ms), x{t_s / t_m:.2f}"
        )


def bench_mdct() -> None:
    rng = np.random.default_rng(1)
    seconds = 60
    x = rng.standard_normal(seconds * 16000)
    coefs = analysis(x)
    k = coefs.shape[0]
    t_ana = _best(lambda: analysis(x))
    t_syn = _best(lambda: synthesis(coefs, length=x.size))
    chunks = np.zeros(k * FRAME)
    chunks[: x.size] = x
    chunks = chunks.reshape(k, FRAME)

    def stream() -> None:
        ana, syn = MdctAnalyzer(), MdctSynthesizer()
        for c in chunks:
            syn.process(ana.process(c))

    t_stream = _best(stream, reps=3)
    print(f"MDCT (N={FRAME}), {seconds} s of audio = {k} frames, 1 core:")
    for name, t in [
        ("analysis (batch)", t_ana),
        ("synthesis (batch)", t_syn),
        ("streaming analysis+synthesis", t_stream),
    ]:
        print(f"  {name:30s} {k / t:12,.0f} frames/s ({seconds / t:,.0f}x real time)")


def main() -> None:
    bench_rangecoder()
    bench_many_frames(max_scale=30.0)  # the streams above
    bench_many_frames(max_scale=8.0)  # about the codec's escape rate at 13.2 kbit/s
    bench_mdct()


if __name__ == "__main__":
    main()
