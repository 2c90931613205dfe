"""Run a recipe's work units serially, on a local Dask cluster, or on an existing one.

Every recipe hands :func:`run_units` a list of picklable work units (for
``bitrate_vs_pesq``: one file x config x bitrate cell) and a top-level
function that computes one; the results come back in completion order and
the recipe appends each to its cell cache as it arrives, so an interrupted
run resumes where it stopped whichever way it ran.

* ``--workers 1`` (and no ``--scheduler``): in this process, no Dask.
* ``--workers N``: a local Dask cluster of N single-threaded worker processes,
  each with a memory limit (``--worker-memory``; the nanny restarts a worker
  that passes it and its unit is retried on another).
* ``--scheduler tcp://HOST:8786``: an existing cluster (``dask scheduler`` plus
  ``dask worker`` processes started with this repository importable and the
  data at the same paths); ``--workers`` is ignored.

Units are submitted in a bounded window (a few per worker), so the client never
holds all futures and results at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["add_cluster_args", "check_cluster_args", "run_units", "describe"]

T = TypeVar("T")
R = TypeVar("R")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def add_cluster_args(p: argparse.ArgumentParser, *, default_workers: int) -> None:
    """Add ``--workers``, ``--scheduler`` and ``--worker-memory`` to a recipe's parser."""
    p.add_argument(
        "--workers",
        "--jobs",
        dest="workers",
        type=int,
        default=default_workers,
        help="local Dask worker processes; 1 runs in this process (default: %(default)s)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:8786",
        help="address of an existing Dask scheduler to send the work units to",
    )
    p.add_argument(
        "--worker-memory",
        default="3GiB",
        help="memory limit of each local worker process (default: %(default)s)",
    )


def check_cluster_args(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """Reject impossible cluster arguments with a one-line parser error."""
    if args.workers < 1:
        p.error("--workers must be >= 1")
    if args.scheduler is not None and "://" not in args.scheduler:
        p.error(f"--scheduler: expected an address like tcp://HOST:8786, got {args.scheduler!r}")


def describe(args: argparse.Namespace) -> str:
    """Where the units run, for the recipe's log line."""
    if args.scheduler:
        return f"the Dask cluster at {args.scheduler}"
    if args.workers <= 1:
        return "this process"
    return f"a local Dask cluster of {args.workers} worker(s)"


def _one_thread_env() -> dict[str, str]:
    return dict.fromkeys(_THREAD_VARS, "1")


def run_units(
    fn: Callable[[T], R],
    units: Sequence[T],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    worker_memory: str = "3GiB",
    window: int | None = None,
    connect_timeout: str = "20s",
) -> Iterator[R]:
    """Yield ``fn(u)`` for every unit in ``units``, in completion order.

    ``fn`` must be importable by name (a module-level function) and must not
    raise for a failed unit: recipes record failures in the result instead.
    Raises ``RuntimeError`` with a one-line message when the scheduler
    cannot be reached or the Dask packages are missing.
    """
    if not units:
        return
    if scheduler is None and workers <= 1:
        for u in units:
            yield fn(u)
        return
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise RuntimeError(
            f"parallel runs need dask[distributed] ({exc}): pip install 'svq[eval]'"
        ) from exc
    cluster = None
    saved = {n: os.environ.get(n) for n in _THREAD_VARS}
    try:
        if scheduler is None:
            # worker processes inherit these: one BLAS/OpenMP thread per single-threaded worker
            os.environ.update(_one_thread_env())
            with warnings.catch_warnings():
                # the scheduler's HTTP endpoint moves off a busy port 8787 with a warning
                warnings.filterwarnings("ignore", message="Port 8787 is already in use")
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=worker_memory,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            client = Client(cluster)
            n_slots = workers
        else:
            try:
                client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                msg = f"cannot reach the Dask scheduler at {scheduler}: {exc}"
                raise RuntimeError(" ".join(msg.split())) from exc
            n_slots = max(1, sum(client.nthreads().values()))
        with client:
            limit = window or 4 * n_slots
            it = iter(units)
            pending = as_completed()

            def submit_next() -> bool:
                try:
                    u = next(it)
                except StopIteration:
                    return False
                pending.add(client.submit(fn, u, pure=False))
                return True

            for _ in range(limit):
                if not submit_next():
                    break
            for fut in pending:
                result: Any = fut.result()
                fut.release()
                submit_next()
                yield result
    finally:
        if cluster is not None:
            cluster.close()
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v
