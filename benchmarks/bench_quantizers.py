"""Benchmark of the vector quantizers: encoding speed and NSVQ training time.

Usage::

    python benchmarks/bench_quantizers.py            # encode speeds + NSVQ (avq) training
    python benchmarks/bench_quantizers.py --train rvq,avq,pvq --methods kmeans,ste,nsvq

Encoding runs on one core (BLAS threads are limited to 1 before numpy is
imported); training uses the threads given by ``--threads`` (default 2).  Data:
``N`` synthetic LSF-like 16-dim vectors (sorted uniform values in (0, pi)).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _set_threads(n: int) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=220_000, help="training vectors (default 220000)")
    p.add_argument("--n-encode", type=int, default=100_000, help="vectors to encode")
    p.add_argument(
        "--train", default="rvq,avq,pvq", help="variants to train, comma separated ('' = none)"
    )
    p.add_argument("--methods", default="nsvq", help="training methods, comma separated")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads while training")
    p.add_argument("--steps", type=int, default=None, help="override gradient steps")
    p.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.train_only:
        return _train(args)
    _set_threads(1)
    _encode(args)
    if args.train:
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--train-only",
            "--n",
            str(args.n),
            "--train",
            args.train,
            "--methods",
            args.methods,
        ]
        if args.steps is not None:
            cmd += ["--steps", str(args.steps)]
        return subprocess.run(cmd, env=env, check=False).returncode
    return 0


def _data(n: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    return np.sort(rng.uniform(0.0, np.pi, size=(n, 16)), axis=1)


def _encode(args: argparse.Namespace) -> None:
    import numpy as np

    from codec.quantizers import AVQ, PVQ, RVQ, VQ

    rng = np.random.default_rng(1)
    data = _data(args.n_encode)
    dim = data.shape[1]
    w = rng.uniform(0.5, 2.0, size=data.shape)
    cbs = [rng.standard_normal((16, dim)) * 0.3 for _ in range(4)]
    mean = data.mean(axis=0)
    quantizers = {
        "vq 1x4": VQ(cbs[:1], mean),
        "vq 1x8": VQ([rng.standard_normal((256, dim))], mean),
        "rvq 4x4 greedy": RVQ(cbs, mean),
        "rvq 4x4 mbest 8": RVQ(cbs, mean, beam=8),
        "pvq 4x4": PVQ([c[:, :4] for c in cbs], mean),
        "avq 4x4 beam 8": AVQ(cbs, mean, beam=8),
        "avq 4x4 greedy": AVQ(cbs, mean, beam=1),
    }
    print(f"encoding speed, one core, D={dim}, {len(data)} vectors")
    for name, q in quantizers.items():
        for weighted in (False, True):
            ww = w if weighted else None
            q.encode(data[:2000], None if ww is None else ww[:2000])  # warm-up
            t0 = time.perf_counter()
            q.encode(data, ww)
            dt = time.perf_counter() - t0
            tag = "weighted" if weighted else "plain"
            print(
                f"  {name:16s} {tag:8s} {len(data) / dt:12,.0f} vectors/s"
                f"   ops/vector={q.ops_per_vector()}",
                flush=True,
            )


def _train(args: argparse.Namespace) -> int:
    from codec.quantizers import train_quantizer

    data = _data(args.n)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "?")
    print(f"training, 4 stages x 4 bits, N={len(data)}, BLAS threads={threads}")
    extra = {} if args.steps is None else {"steps": args.steps}
    for variant in [v for v in args.train.split(",") if v]:
        for method in [m for m in args.methods.split(",") if m]:
            opts = dict(extra) if method != "kmeans" else {}
            t0 = time.perf_counter()
            q = train_quantizer(
                data,
                variant=variant,
                stages=4,
                bits=4,
                method=method,
                seed=0,
                progress=False,
                **opts,
            )
            dt = time.perf_counter() - t0
            print(
                f"  {variant:4s} {method:7s} train {dt:7.1f} s   mse={q.distortion(data):.6f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
