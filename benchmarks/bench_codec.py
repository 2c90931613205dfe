"""Benchmark: encode and decode speed relative to real time, one CPU core.

Run: ``python benchmarks/bench_codec.py [--bitrates 13.2]`` (pins BLAS/OpenMP to
one thread; process start-up excluded). Goals: encode >= 40x, decode >= 130x
real time; with the trained post-filter on (timed separately, at every
bitrate, when weights are shipped) decode >= 80x.
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
from codec import postfilter  # noqa: E402
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
    shipped = postfilter.shipped_weights() is not None
    for br in (float(b) for b in args.bitrates.split(",")):
        codec.decode(codec.encode(x[:16000], 16000, br), enhance=shipped)  # warm-up
        te, td, tp = [], [], []
        for _ in range(3):
            t0 = time.perf_counter()
            data = codec.encode(x, 16000, br)
            t1 = time.perf_counter()
            codec.decode(data, enhance=False)
            t2 = time.perf_counter()
            if shipped:
                codec.decode(data, enhance=True)
            t3 = time.perf_counter()
            te.append(t1 - t0)
            td.append(t2 - t1)
            tp.append(t3 - t2)
        enc, dec, pf = min(te), min(td), min(tp)
        with_pf = (
            f", with the post-filter {pf:.2f} s ({args.seconds / pf:.0f}x)"
            if shipped
            else " (no post-filter weights shipped)"
        )
        print(
            f"{br:5.1f} kbit/s, {args.seconds:.0f} s of speech: encode {enc:.2f} s "
            f"({args.seconds / enc:.0f}x real time), decode {dec:.2f} s "
            f"({args.seconds / dec:.0f}x real time){with_pf}"
        )


if __name__ == "__main__":
    main()
