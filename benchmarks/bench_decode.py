"""Benchmark: the decoder alone, in process, on 60 s of dev speech, against an older tree.

Run: ``python benchmarks/bench_decode.py [--bitrates 8,13.2,24.4,32] [--baseline DIR]``

Cuts the 60 s file of ``bench_process.py`` from the dev split, encodes it at
each bitrate with this tree (the stream is the same for any tree of the same
format), then times ``codec.decode`` (post-filter off) in fresh processes
pinned to one core: each process decodes every stream once to warm up, then
three times, keeping the best. With ``--baseline DIR`` the processes of this
tree and of ``DIR`` (e.g. ``git archive REV | tar -x -C DIR``) alternate,
``--rounds`` of each, so that a drift of the machine's speed reaches both;
the best of all rounds is printed. Start-up is excluded (see
``bench_process.py`` for whole processes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_process import DEFAULT_DATA, make_inputs  # noqa: E402

SECONDS = 60.0
_TIMER = r"""
import json, sys, time
import codec
best = {}
for rate, path in json.loads(sys.argv[1]).items():
    data = open(path, "rb").read()
    codec.decode(data, enhance=False)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        codec.decode(data, enhance=False)
        times.append(time.perf_counter() - t)
    best[rate] = min(times)
print(json.dumps(best))
"""


def time_tree(tree: Path, streams: dict[str, str]) -> dict[str, float]:
    """Best decode time of each stream in one fresh process that imports ``tree``'s codec."""
    env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-c", _TIMER, json.dumps(streams)]
    if hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", str(min(os.sched_getaffinity(0))), *cmd]
    # run in the streams' folder: from the repository root, the working tree's
    # codec would come before PYTHONPATH's
    run = subprocess.run(
        cmd, env=env, cwd=Path(next(iter(streams.values()))).parent, capture_output=True
    )
    if run.returncode:
        sys.exit(f"bench_decode: {tree}: {run.stderr.decode(errors='replace').strip()}")
    return {k: float(v) for k, v in json.loads(run.stdout).items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with manifest.csv")
    p.add_argument("--bitrates", default="8,13.2,24.4,32", help="comma-separated kbit/s")
    p.add_argument("--baseline", type=Path, help="folder with another version of the codec")
    p.add_argument("--rounds", type=int, default=5, help="processes per tree (default 5)")
    args = p.parse_args()
    import soundfile as sf

    import codec

    trees = {"svq": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory() as tmp:
        long, _ = make_inputs(args.data, Path(tmp))
        x, sr = sf.read(long)
        streams = {}
        for rate in args.bitrates.split(","):
            path = Path(tmp) / f"speech60_{rate}.svq"
            path.write_bytes(codec.encode(x, sr, bitrate_kbps=float(rate)))
            streams[rate] = str(path)
        best: dict[str, dict[str, float]] = {name: {} for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                for rate, t in time_tree(tree, streams).items():
                    best[name][rate] = min(best[name].get(rate, t), t)
    print(f"decode in process, 60 s of dev speech, best of {args.rounds} x 3 (post-filter off)")
    for rate in streams:
        cells = [
            f"{name} {1e3 * best[name][rate]:6.1f} ms ({SECONDS / best[name][rate]:4.0f}x)"
            for name in trees
        ]
        print(f"  {float(rate):5.1f} kbit/s: " + "   ".join(cells))


if __name__ == "__main__":
    main()
