"""Benchmark: whole-process speed of ``svq encode``/``svq decode`` (start-up included),
side by side with ``opusenc``/``opusdec``, and the per-frame latency and cost of
frame-by-frame streaming.

Run: ``python benchmarks/bench_process.py [--data ../shared/data/speech] [--cores 1]``

It cuts a 60 s and a 1 s test file from the dev split of the data folder (files
in manifest order, 16 kHz mono, 16-bit), then times each command as a separate
process, as a user would with ``/usr/bin/time``: wall-clock and CPU (user +
system) seconds, the best of ``--repeat`` rounds in which every command (this
tree, the baseline, Opus) runs once, so that a drift of the machine's speed
reaches all of them alike. ``--cores 1`` pins the processes
to one CPU core (``os.sched_setaffinity``). ``--baseline DIR`` also times the
codec found in ``DIR`` (e.g. an export of an older commit) in the same run, for
comparisons on a busy machine. Every process runs in the temporary folder (from
the repository root, ``python -m`` would put the working tree's ``codec`` ahead
of ``PYTHONPATH``, so the baseline would time this tree), and each tree's
modules are byte-compiled first, as ``pip install`` does (with
``PYTHONDONTWRITEBYTECODE`` set, a stale ``__pycache__`` would add the compile
time of every changed module to each start-up). Opus is skipped when
opus-tools is not installed.

The frame-by-frame figures run :class:`~codec.pipeline.StreamEncoder` and
:class:`~codec.pipeline.StreamDecoder` with ``block_frames=1``, pushing 20 ms
at a time: the cost per frame (mean and 99th percentile) and the latency from
the push of a chunk to its decoded output.

``--no-enhance`` times the plain decoder (``svq decode --no-enhance``,
``StreamDecoder(enhance=False)``) where the trained post-filter is on by
default (``svq modes``); without it, the decoder runs as shipped.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "speech"
RATE = 16000


def make_inputs(data: Path, out: Path) -> tuple[Path, Path]:
    """A 60 s and a 1 s file of dev speech (16 kHz mono PCM_16) in ``out``."""
    import soundfile as sf

    manifest = data / "manifest.csv"
    if not manifest.is_file():
        sys.exit(f"bench_process: {manifest} not found (pass --data FOLDER with a manifest.csv)")
    with manifest.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "dev"]
    parts, total = [], 0
    for row in rows:
        x, sr = sf.read(data / row["file"], dtype="float64", always_2d=True)
        if sr != RATE:
            continue
        parts.append(x.mean(axis=1))
        total += x.shape[0]
        if total >= 60 * RATE:
            break
    x = np.concatenate(parts)[: 60 * RATE]
    long, short = out / "speech60.wav", out / "speech1.wav"
    sf.write(long, x, RATE, subtype="PCM_16")
    sf.write(short, x[5 * RATE : 6 * RATE], RATE, subtype="PCM_16")
    return long, short


def run(
    cmd: list[str], env: dict[str, str], cores: int | None, cwd: Path | None = None
) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one process (run in ``cwd``)."""

    def pin() -> None:
        if cores:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, preexec_fn=pin, capture_output=True, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"bench_process: {' '.join(cmd)} failed: {proc.stderr.decode().strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def whole_process(args: argparse.Namespace, long: Path, short: Path, tmp: Path) -> None:
    """Every command once per round, ``--repeat`` rounds, the least wall and CPU
    seconds kept: the versions and Opus interleave, so a change of the machine's
    speed over the run (common on a shared VM) reaches all of them alike."""
    secs = {long: 60.0, short: 1.0}
    kbps = args.bitrate
    codecs: list[tuple[str, dict[str, str]]] = [("svq", dict(os.environ, PYTHONPATH=str(ROOT)))]
    if args.baseline:
        codecs.append(("svq baseline", dict(os.environ, PYTHONPATH=str(Path(args.baseline)))))
    print(
        f"whole process, best of {args.repeat} interleaved rounds, {kbps:g} kbit/s"
        + (f", pinned to {args.cores} core(s)" if args.cores else "")
        + " (wall s / CPU s / x real time by wall)"
    )
    # rows: (label, seconds of audio, encode command, decode command, env, cwd)
    rows: list[tuple[str, float, list[str], list[str], dict[str, str], Path | None]] = []
    for k, (name, env) in enumerate(codecs):
        tree = Path(env["PYTHONPATH"])
        compiled = {key: v for key, v in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(tree / "codec")],
            env=compiled,
            check=True,
        )
        version = subprocess.run(
            [sys.executable, "-m", "codec", "--version"], env=env, cwd=tmp, capture_output=True
        )
        print(f"  {name}: {version.stdout.decode().strip()} from {tree}")
        svq = [sys.executable, "-m", "codec"]
        plain = ["--no-enhance"] if args.no_enhance else []
        for src in (long, short):
            coded, wav = tmp / f"{src.stem}.{k}.svq", tmp / f"{src.stem}.{k}.dec.wav"
            rows.append(
                (
                    f"{name} {secs[src]:g} s",
                    secs[src],
                    svq + ["encode", str(src), str(coded), "-f", "-q", "-b", f"{kbps:g}"],
                    svq + ["decode", str(coded), str(wav), "-f", "-q", *plain],
                    env,
                    tmp,
                )
            )
    if shutil.which("opusenc") and shutil.which("opusdec"):
        for src in (long, short):
            coded, wav = tmp / f"{src.stem}.opus", tmp / f"{src.stem}.opus.wav"
            rows.append(
                (
                    f"opus {secs[src]:g} s",
                    secs[src],
                    ["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(src), str(coded)],
                    ["opusdec", "--quiet", str(coded), str(wav)],
                    dict(os.environ),
                    None,
                )
            )
    else:
        print("  opus: opusenc/opusdec not found (apt-get install opus-tools)")
    inf = (float("inf"), float("inf"))
    enc_best = [inf] * len(rows)
    dec_best = [inf] * len(rows)
    for _ in range(args.repeat):
        for i, (_, _, enc_cmd, dec_cmd, env, cwd) in enumerate(rows):
            e = run(enc_cmd, env, args.cores, cwd)
            d = run(dec_cmd, env, args.cores, cwd)
            enc_best[i] = (min(enc_best[i][0], e[0]), min(enc_best[i][1], e[1]))
            dec_best[i] = (min(dec_best[i][0], d[0]), min(dec_best[i][1], d[1]))
    for i, (label, seconds, *_) in enumerate(rows):
        _line(label, seconds, enc_best[i], dec_best[i])


def _line(name: str, seconds: float, enc: tuple[float, float], dec: tuple[float, float]) -> None:
    print(
        f"  {name:18s} encode {enc[0]:6.3f} / {enc[1]:6.3f} s ({seconds / enc[0]:6.1f}x)   "
        f"decode {dec[0]:6.3f} / {dec[1]:6.3f} s ({seconds / dec[0]:6.1f}x)"
    )


def frame_by_frame(args: argparse.Namespace, long: Path) -> None:
    """Per-frame cost and latency of StreamEncoder/StreamDecoder with block_frames=1."""
    if args.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    sys.path.insert(0, str(ROOT))
    from codec.audio import read_audio
    from codec.pipeline import ALGORITHMIC_DELAY, StreamDecoder, StreamEncoder

    x, sr = read_audio(long)
    x = x[: int(args.stream_seconds * sr)]
    enc = StreamEncoder(sr, args.bitrate, block_frames=1)
    enhance = False if args.no_enhance else None  # None: as shipped
    dec = StreamDecoder(enc.live_header(), block_frames=1, enhance=enhance)
    t_enc, t_dec, t_all = [], [], []
    for i in range(0, x.size - 319, 320):
        t0 = time.perf_counter()
        frames = enc.push(x[i : i + 320])
        t1 = time.perf_counter()
        for fr in frames:
            dec.decode([fr])
        t2 = time.perf_counter()
        if frames:
            t_enc.append(t1 - t0)
            t_dec.append(t2 - t1)
            t_all.append(t2 - t0)
    e, d, a = (1000.0 * np.array(t) for t in (t_enc, t_dec, t_all))
    print(
        f"frame by frame, block_frames=1, {len(e)} frames of 20 ms, {args.bitrate:g} kbit/s "
        f"(one process, start-up excluded)"
    )
    print(f"  algorithmic delay {1000.0 * ALGORITHMIC_DELAY / RATE:.0f} ms")
    for name, t in (("encode", e), ("decode", d), ("push-to-output", a)):
        print(
            f"  {name:15s} per frame: mean {t.mean():6.2f} ms, median {np.median(t):6.2f}, "
            f"p99 {np.percentile(t, 99):6.2f}, max {t.max():6.2f} ms"
            f" ({20.0 / t.mean():5.1f}x real time)"
        )
    print(
        f"  latency of a sample = algorithmic delay + push-to-output "
        f"= {1000.0 * ALGORITHMIC_DELAY / RATE + np.median(a):.1f} ms (median)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with manifest.csv")
    p.add_argument("--bitrate", type=float, default=13.2, help="kbit/s (default 13.2)")
    p.add_argument("--repeat", type=int, default=3, help="runs per command, best kept")
    p.add_argument("--cores", type=int, default=None, help="pin processes to this many cores")
    p.add_argument("--baseline", help="folder with another version of the codec to time too")
    p.add_argument(
        "--stream-seconds",
        type=float,
        default=20.0,
        help="audio for the frame-by-frame figures (default 20)",
    )
    p.add_argument(
        "--no-enhance",
        action="store_true",
        help="time the plain decoder (the post-filter off at every bitrate)",
    )
    p.add_argument("--skip-process", action="store_true", help="only the frame-by-frame part")
    p.add_argument("--skip-frames", action="store_true", help="only the whole-process part")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="svq-bench-") as d:
        tmp = Path(d)
        long, short = make_inputs(args.data, tmp)
        if not args.skip_process:
            whole_process(args, long, short, tmp)
        if not args.skip_frames:
            frame_by_frame(args, long)


if __name__ == "__main__":
    main()
