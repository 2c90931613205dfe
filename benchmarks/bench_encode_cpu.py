"""Benchmark: encoder CPU time per bitrate, optionally alternated with another
version of the codec, for comparisons on a noisy machine.

Run: ``python benchmarks/bench_encode_cpu.py [--bitrates 8,13.2,24.4,32]
[--baseline DIR] [--rounds 5]``

Each round runs, for each version and bitrate, a fresh process pinned to one
BLAS/OpenMP thread that encodes 30 s of the ``samples/`` speech three times
(after a 1 s warm-up) and reports the least CPU time (``time.process_time``);
the figure kept is the least over the rounds. CPU time of the process itself
is less disturbed by other load than wall-clock time, and alternating the
versions spreads what disturbance remains over both. Each process runs in a
temporary folder, so that ``PYTHONPATH`` (not the working directory) decides
which ``codec`` it imports; the version it timed is printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import sys, time
import numpy as np
from pathlib import Path
import codec
from codec.audio import read_audio
parts = [read_audio(f)[0] for f in sorted(Path(sys.argv[1]).glob("*.wav"))]
x = np.tile(np.concatenate(parts), 10)[: 30 * 16000]
rate = float(sys.argv[2])
codec.encode(x[:16000], 16000, rate)
times = []
for _ in range(3):
    t = time.process_time()
    codec.encode(x, 16000, rate)
    times.append(time.process_time() - t)
print(codec.__version__, min(times))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bitrates", default="8,13.2,24.4,32", help="comma-separated kbit/s")
    p.add_argument("--baseline", help="folder with another version of the codec")
    p.add_argument("--rounds", type=int, default=3, help="alternations (least kept)")
    args = p.parse_args()
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    trees = [("this tree", ROOT)] + ([("baseline", Path(args.baseline))] if args.baseline else [])
    rates = [r.strip() for r in args.bitrates.split(",")]
    best: dict[tuple[str, str], float] = {}
    version: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="svq-bench-") as tmp:
        for _ in range(args.rounds):
            for name, tree in trees:
                for r in rates:
                    proc = subprocess.run(
                        [sys.executable, "-c", _CHILD, str(ROOT / "samples"), r],
                        env={**env, "PYTHONPATH": str(tree)},
                        cwd=tmp,
                        capture_output=True,
                        text=True,
                    )
                    if proc.returncode:
                        lines = proc.stderr.strip().splitlines() or ["no output"]
                        sys.exit(f"bench_encode_cpu: {name} at {r} kbit/s failed: {lines[-1]}")
                    out = proc.stdout.split()
                    version[name] = out[0]
                    best[(name, r)] = min(best.get((name, r), float("inf")), float(out[1]))
    for name, tree in trees:
        cells = "  ".join(
            f"{r}: {best[(name, r)]:.3f} s ({30 / best[(name, r)]:.0f}x)" for r in rates
        )
        print(f"{name} (svq {version[name]}, {tree}): encode 30 s, CPU, best of {3 * args.rounds}:")
        print(f"  {cells}")


if __name__ == "__main__":
    main()
