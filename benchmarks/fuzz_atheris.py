"""Coverage-guided fuzzing of the svq decoder with atheris (libFuzzer for Python).

Three harnesses, each a function of one byte string:

``container``
    The bytes are a whole ``.svq`` file: :func:`codec.info`, then
    :func:`codec.decode` with ``on_damage="conceal"``, then the streaming
    :class:`codec.bitstream.ContainerReader`. Mutations are mostly stopped by
    the header and block CRCs, so this harness exercises the container parser.
``frame``
    One frame behind a valid block check: byte 0 picks the mode, byte 1 the
    envelope codebook, byte 2 the sample count; the rest is the frame (cut or
    zero-padded to the mode's size). It is packed with a correct header and
    CRCs and decoded strictly, so the frame decoder itself sees every mutation.
``stream``
    :class:`codec.pipeline.StreamDecoder` fed an arbitrary frame sequence:
    mode, codebook and frame count as above, then groups of 1-8 items, each a
    frame, a lost frame (``None``) or a frame of a wrong size; then ``flush``.

The contract (issue 14, as for ``benchmarks/fuzz_decoder.py``): a harness
raises nothing but :class:`codec.CodecError` subclasses; a returned signal is
finite float64, within [-1, 1], of the header's length; no case takes 1 s (a
slow case is timed again alone before it counts, as the CPU is shared); no
allocation follows a header's claims (``-rss_limit_mb`` during the run; the
``replay`` step traces every corpus input's peak with tracemalloc).

Usage::

    python benchmarks/fuzz_atheris.py run --runs 70000        # all three, one at a time
    python benchmarks/fuzz_atheris.py fuzz frame -runs=1000   # one harness, libFuzzer flags
    python benchmarks/fuzz_atheris.py replay frame DIR...     # contract, time, memory, coverage
    python benchmarks/fuzz_atheris.py seeds                   # rewrite tests/fuzz_corpus/

``run`` copies the seed corpus (``tests/fuzz_corpus/TARGET``) to
``out/fuzz/TARGET``, fuzzes there in a child process (atheris calls exit at
the end), reads libFuzzer's execution count and edge coverage (``cov``,
``ft``), then replays the grown corpus under coverage.py for line coverage of
the codec modules, and writes ``out/fuzz/summary.json``. atheris is in the
``fuzz`` extra (``pip install -e '.[fuzz]'``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "tests" / "fuzz_corpus"
TARGETS = ("container", "frame", "stream")
TIME_LIMIT_S = 1.0
PEAK_LIMIT_BYTES = 50 * 2**20
MAX_LEN = {"container": 4096, "frame": 96, "stream": 2048}
COVERED_MODULES = (
    "codec/bitstream.py",
    "codec/pipeline.py",
    "codec/concealment.py",
    "codec/residual/tcx.py",
    "codec/residual/rangecoder.py",
    "codec/residual/pitch.py",
    "codec/residual/mdct.py",
)
ENVELOPES = ("avq-4x6", "rvq-4x6", "pvq-4x6", "vq-1x12")

# imported (and instrumented, under atheris) by _import_codec
codec: Any = None
np: Any = None


def _import_codec(instrument: bool) -> None:
    global codec, np
    import numpy

    np = numpy
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["codec"]):
            import codec as c
            import codec.bitstream
            import codec.concealment
            import codec.pipeline
            import codec.registry
            import codec.residual.mdct
            import codec.residual.pitch
            import codec.residual.rangecoder
            import codec.residual.tcx
    else:
        import codec as c
        import codec.bitstream
        import codec.pipeline
        import codec.registry
        import codec.residual.tcx
    codec = c


class _Bytes:
    """Reads an input front to back; past its end, bytes are 0 and ``exhausted`` is set."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)

    def byte(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw + bytes(n - len(raw))


def _header(src: _Bytes, frame_count: int | None = None) -> Any:
    """A valid header: mode, codebook, frame count, sample count from the next bytes."""
    from codec.bitstream import Header
    from codec.modes import MODES
    from codec.registry import hash_bytes, load_envelope

    modes = list(MODES.values())
    mode = modes[src.byte() % len(modes)]
    env = load_envelope(ENVELOPES[src.byte() % len(ENVELOPES)])
    n = 1 + src.byte() % 40 if frame_count is None else frame_count
    samples = n * 320 - 80 - src.byte() % 240  # keeps n frames for this sample count
    return Header(
        sample_rate=16000,
        frame_length=320,
        bitrate_bps=mode.bitrate_bps,
        frame_bytes=mode.frame_bytes,
        frame_count=n,
        sample_count=samples,
        residual_coder=1,
        envelope_id=env.name,
        codebook_hash=hash_bytes(env.content_hash),
    )


def _check_signal(y: Any, expected: int) -> None:
    if not isinstance(y, np.ndarray) or y.dtype != np.float64 or y.ndim != 1:
        raise AssertionError(f"output is {type(y).__name__} {getattr(y, 'shape', '')}")
    if y.size != expected:
        raise AssertionError(f"{y.size} samples, the header says {expected}")
    if not np.all(np.isfinite(y)) or np.max(np.abs(y), initial=0.0) > 1.0:
        raise AssertionError("non-finite or louder than full scale output")


def harness_container(data: bytes) -> None:
    import io

    from codec.bitstream import ContainerReader
    from codec.errors import CodecError

    try:
        st = codec.info(data)
    except CodecError:
        return
    try:
        y, _ = codec.decode(data, on_damage="conceal")
    except CodecError:
        return
    _check_signal(y, st.sample_count)
    reader = ContainerReader(io.BytesIO(data), "conceal")
    got = sum(len(b) for b in reader.blocks(1 + len(data) % 97))
    if got != st.frame_count or list(reader.damaged) != st.damaged_blocks:
        raise AssertionError("ContainerReader disagrees with codec.info")


def harness_frame(data: bytes) -> None:
    from codec.bitstream import pack_file
    from codec.errors import CodecError

    src = _Bytes(data)
    h = _header(src, frame_count=1)
    file = pack_file(h, [src.take(h.frame_bytes)])
    try:
        y, _ = codec.decode(file)
    except CodecError:
        return
    _check_signal(y, h.sample_count)


def harness_stream(data: bytes) -> None:
    from codec.errors import CodecError
    from codec.pipeline import StreamDecoder

    src = _Bytes(data)
    h = _header(src)
    out = []
    try:
        dec = StreamDecoder(h)
        while not src.exhausted:
            group: list[bytes | None] = []
            for _ in range(1 + src.byte() % 8):
                kind = src.byte() % 16
                if kind == 0:
                    group.append(None)
                elif kind == 1:
                    group.append(src.take(src.byte() % 100))
                else:
                    group.append(src.take(h.frame_bytes))
            out.append(dec.decode(group))
        out.append(dec.flush())
    except CodecError:
        return
    _check_signal(np.concatenate(out) if out else np.zeros(0), h.sample_count)


HARNESSES: dict[str, Callable[[bytes], None]] = {
    "container": harness_container,
    "frame": harness_frame,
    "stream": harness_stream,
}


def _timed(harness: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """The harness, failing a case that takes over 1 s twice in a row."""

    def one(data: bytes) -> None:
        t0 = time.perf_counter()
        harness(data)
        if time.perf_counter() - t0 > TIME_LIMIT_S:
            t0 = time.perf_counter()
            harness(data)
            took = time.perf_counter() - t0
            if took > TIME_LIMIT_S:
                raise AssertionError(f"case took {took:.2f} s (limit {TIME_LIMIT_S:g} s)")

    return one


def _warm_up(target: str) -> None:
    """Load every codebook and table before the first timed case."""
    for name in ENVELOPES:
        codec.registry.load_envelope(name)
    for seed in sorted((SEEDS / target).glob("*")):
        HARNESSES[target](seed.read_bytes())


# ------------------------------------------------------------------ seeds


def write_seeds() -> None:
    """Rewrite tests/fuzz_corpus/ from real speech (short, one file per mode or so)."""
    import numpy
    import soundfile as sf

    import codec as c
    from codec.bitstream import HEADER_BYTES, reseal, unpack_file
    from codec.modes import MODES

    x, sr = sf.read(ROOT / "samples" / "vctk_p233_female.wav", dtype="float64")
    speech = x[8000 : 8000 + sr // 3]
    for target in TARGETS:
        shutil.rmtree(SEEDS / target, ignore_errors=True)
        (SEEDS / target).mkdir(parents=True)
    modes = list(MODES)
    for m, rate in enumerate(modes):
        for e, env in enumerate(ENVELOPES):
            if e and rate not in (8.0, 13.2):  # every codebook at two rates only
                continue
            data = c.encode(speech, sr, rate, envelope=env.split("-")[0])
            tag = f"{rate:g}k-{env}".replace(".", "p")
            (SEEDS / "container" / f"{tag}.svq").write_bytes(data)
            h, frames = unpack_file(data)
            for i in (0, len(frames) // 2):  # an onset and a voiced frame
                (SEEDS / "frame" / f"{tag}-f{i}").write_bytes(bytes([m, e, 7]) + frames[i])
            shortfall = h.frame_count * 320 - 80 - h.sample_count
            body = bytearray([m, e, h.frame_count - 1, shortfall])
            groups = [frames[i : i + 3] for i in range(0, len(frames), 3)]
            for g, group in enumerate(groups):
                body.append(len(group) - 1)
                for k, fr in enumerate(group):
                    lost = (g + k) % 5 == 4
                    body.append(16 if lost else 2)  # 16 % 16 == 0: lost; 2: a frame
                    if not lost:
                        body += fr
            (SEEDS / "stream" / tag).write_bytes(bytes(body))
    # container edge cases: no frames, a damaged block, a bare header
    empty = c.encode(numpy.zeros(0), 16000, 13.2)
    (SEEDS / "container" / "empty.svq").write_bytes(empty)
    long = c.encode(numpy.resize(speech, int(1.2 * sr)), sr, 8.0)
    damaged = bytearray(long)
    damaged[HEADER_BYTES + 10] ^= 0x55
    (SEEDS / "container" / "damaged-block0.svq").write_bytes(bytes(damaged))
    (SEEDS / "container" / "two-blocks.svq").write_bytes(long)
    (SEEDS / "container" / "header-only").write_bytes(reseal(long[:HEADER_BYTES]))
    n = sum(1 for _ in SEEDS.rglob("*") if _.is_file())
    print(f"wrote {n} seeds under {SEEDS.relative_to(ROOT)}")


# ------------------------------------------------------------------ fuzz (child)


def fuzz(target: str, libfuzzer_args: Sequence[str]) -> None:
    import atheris

    _import_codec(instrument=True)
    _warm_up(target)
    atheris.Setup([sys.argv[0], *libfuzzer_args], _timed(HARNESSES[target]))
    atheris.Fuzz()


# ------------------------------------------------------------------ replay


def replay(target: str, paths: Sequence[Path], *, measure_coverage: bool) -> dict[str, Any]:
    """Run every input once more: outcome, time, tracemalloc peak; line coverage if asked."""
    files = sorted(p for d in paths for p in (d.rglob("*") if d.is_dir() else [d]) if p.is_file())
    cov = None
    if measure_coverage:
        import coverage

        cov = coverage.Coverage(
            data_file=None, include=[str(ROOT / m) for m in COVERED_MODULES], branch=False
        )
        cov.start()
    _import_codec(instrument=False)
    harness = HARNESSES[target]
    _warm_up(target)
    slowest, peak_max, failures = 0.0, 0, []
    for f in files:
        data = f.read_bytes()
        try:
            t0 = time.perf_counter()
            harness(data)
            took = time.perf_counter() - t0
            tracemalloc.start()
            harness(data)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        except Exception as exc:  # a contract violation: anything not caught in the harness
            tracemalloc.stop()
            failures.append(f"{f.name}: {type(exc).__name__}: {exc}")
            continue
        slowest, peak_max = max(slowest, took), max(peak_max, peak)
        if took > TIME_LIMIT_S:
            failures.append(f"{f.name}: took {took:.2f} s")
        if peak > PEAK_LIMIT_BYTES:
            failures.append(f"{f.name}: tracemalloc peak {peak / 2**20:.1f} MB")
    result: dict[str, Any] = {
        "inputs": len(files),
        "slowest_s": round(slowest, 4),
        "peak_max_mb": round(peak_max / 2**20, 2),
        "failures": failures,
    }
    if cov is not None:
        cov.stop()
        lines = {}
        for m in COVERED_MODULES:
            _, statements, _, missing, _ = cov.analysis2(str(ROOT / m))
            lines[m] = f"{len(statements) - len(missing)}/{len(statements)}"
        result["line_coverage"] = lines
    return result


# ------------------------------------------------------------------ run (driver)

_DONE = re.compile(r"stat::number_of_executed_units: (\d+)")
_STAT = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")


def run(targets: Sequence[str], runs: dict[str, int], out: Path, extra: Sequence[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"runs": runs, "libfuzzer_flags": list(extra), "targets": {}}
    status = 0
    for target in targets:
        corpus = out / target
        if corpus.exists():
            shutil.rmtree(corpus)
        shutil.copytree(SEEDS / target, corpus)
        seeds = sum(1 for _ in corpus.iterdir())
        log = out / f"{target}.log"
        args = [
            sys.executable,
            __file__,
            "fuzz",
            target,
            f"-runs={runs[target]}",
            f"-max_len={MAX_LEN[target]}",
            "-timeout=20",  # a hang backstop; the harness fails cases over 1 s itself
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            f"-artifact_prefix={out}/{target}-",
            *extra,
            str(corpus),
        ]
        t0 = time.perf_counter()
        with log.open("w") as fh:
            rc = subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        wall = time.perf_counter() - t0
        text = log.read_text(errors="replace")
        done = _DONE.findall(text)
        stats = _STAT.findall(text)
        last = stats[-1] if stats else ("0", "0", "0", "0", "0")
        first = next((s for s in stats if s[0] != "1"), last) if stats else last
        crashes = sorted(p.name for p in out.glob(f"{target}-*"))
        entry = {
            "executions": int(done[-1]) if done else int(last[0]),
            "wall_s": round(wall, 1),
            "libfuzzer_exit": rc,
            "seeds": seeds,
            "cov_edges_start": int(first[1]),
            "cov_edges_end": int(last[1]),
            "features_end": int(last[2]),
            "corpus_end": int(last[3]),
            "artifacts": crashes,
        }
        # a fresh interpreter, so that coverage.py sees the codec modules imported
        res = subprocess.run(
            [sys.executable, __file__, "replay", target, str(corpus)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        try:
            entry["replay"] = json.loads(res.stdout)
        except json.JSONDecodeError:
            entry["replay"] = {"failures": [f"replay failed: {res.stderr.strip()[-500:]}"]}
        summary["targets"][target] = entry
        print(f"{target}: {json.dumps(entry)}", flush=True)
        if rc != 0 or crashes or entry["replay"]["failures"]:
            status = 1
    total = sum(t["executions"] for t in summary["targets"].values())
    summary["executions_total"] = total
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"total executions {total}; summary in {out / 'summary.json'}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fuzz"]:  # the child: everything after the target goes to libFuzzer
        if len(argv) < 2 or argv[1] not in TARGETS:
            raise SystemExit(f"fuzz needs a target: {', '.join(TARGETS)}")
        fuzz(argv[1], argv[2:])
        return 0
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="fuzz each target in turn, then replay for coverage")
    r.add_argument("--targets", default=",".join(TARGETS))
    r.add_argument(
        "--runs",
        default="70000",
        help="executions per target: N, or TARGET=N,... (e.g. container=120000,frame=60000)",
    )
    r.add_argument("--out", type=Path, default=ROOT / "out" / "fuzz")
    r.add_argument("--seed", type=int, default=14, help="libFuzzer -seed")
    s = sub.add_parser("replay", help="check the contract on saved inputs, with line coverage")
    s.add_argument("target", choices=TARGETS)
    s.add_argument("paths", nargs="+", type=Path)
    sub.add_parser("seeds", help="rewrite tests/fuzz_corpus/")
    args = p.parse_args(argv)
    if args.cmd == "seeds":
        write_seeds()
        return 0
    if args.cmd == "replay":
        result = replay(args.target, args.paths, measure_coverage=True)
        print(json.dumps(result, indent=1))
        return 1 if result["failures"] else 0
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise SystemExit(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    if "=" in args.runs:
        runs = {t: int(n) for t, n in (item.split("=") for item in args.runs.split(","))}
        targets = [t for t in targets if t in runs]
    else:
        runs = dict.fromkeys(targets, int(args.runs))
    return run(targets, runs, args.out, [f"-seed={args.seed}"])


if __name__ == "__main__":
    sys.exit(main())
