"""Benchmark: encode and decode speed relative to real time, one CPU core.

Run: ``python benchmarks/bench_codec.py [--bitrates 13.2]`` (pins BLAS/OpenMP to
one thread; process start-up excluded). Goals at 13.2 kbit/s: encode >= 20x,
decode >= 50x real time.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import codec  # noqa: E402
from codec.audio import read_audio  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bitrates", default="13.2", help="comma-separated kbit/s")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the test signal")
    args = p.parse_args()
    parts = [read_audio(f)[0] for f in sorted((ROOT / "samples").glob("*.wav"))]
    speech = np.concatenate(parts)
    n = int(args.seconds * 16000)
    x = np.tile(speech, -(-n // speech.size))[:n]
    for br in (float(b) for b in args.bitrates.split(",")):
        codec.decode(codec.encode(x[:16000], 16000, br))  # warm-up (imports, tables)
        te, td = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            data = codec.encode(x, 16000, br)
            t1 = time.perf_counter()
            codec.decode(data)
            t2 = time.perf_counter()
            te.append(t1 - t0)
            td.append(t2 - t1)
        enc, dec = min(te), min(td)
        print(
            f"{br:5.1f} kbit/s, {args.seconds:.0f} s of speech: encode {enc:.2f} s "
            f"({args.seconds / enc:.0f}x real time), decode {dec:.2f} s "
            f"({args.seconds / dec:.0f}x real time)"
        )


if __name__ == "__main__":
    main()
