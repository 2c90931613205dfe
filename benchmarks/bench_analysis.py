"""Benchmark: LSF extraction speed on one minute of real 16 kHz speech, one CPU core.

Run: ``python benchmarks/bench_analysis.py`` (pins BLAS/OpenMP to one thread).
Prints the median time of several runs and the real-time factor (goal >= 200x).
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from codec.analysis import lsf_features  # noqa: E402
from codec.audio import read_audio  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parts = [read_audio(p)[0] for p in sorted((ROOT / "samples").glob("*.wav"))]
    speech = np.concatenate(parts)
    reps = int(np.ceil(60 * 16000 / speech.size))
    minute = np.tile(speech, reps)[: 60 * 16000]
    lsf_features(minute[:16000], 16000)  # warm-up
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        lsf = lsf_features(minute, 16000)
        times.append(time.perf_counter() - t0)
    t = float(np.median(times))
    print(f"LSF extraction, 60 s of speech ({lsf.shape[0]} frames), 1 thread:")
    per_frame_us = t / lsf.shape[0] * 1e6
    print(f"  median {t * 1e3:.1f} ms -> {60.0 / t:.0f}x real time ({per_frame_us:.1f} us/frame)")


if __name__ == "__main__":
    main()
