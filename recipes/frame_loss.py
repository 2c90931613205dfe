"""Frame-loss robustness: PESQ-WB and pSNR against the rate of lost frames.

``python -m recipes.frame_loss --out DIR [--data MANIFEST_OR_DIR] [--split dev]
[--bitrate 13.2] [--loss 0,0.03,0.1] [--burst 1] [--seeds 0] [--limit N]
[--decoders interpolate[,causal,opus,opusdec-loss]]
[--workers N | --scheduler tcp://HOST:8786] [--quiet]``

Every evaluation file is encoded once at ``--bitrate``; the stream is then
decoded once per decoder, loss rate and seed with
``codec.decode(data, lost=mask, conceal=...)``, ``mask = loss_mask(frame_count,
rate, seed=s, burst=b)``, so that the lost frames are concealed by the decoder.

Decoders (``--decoders``)
    ``interpolate``   svq, ``conceal="interpolate"`` (look-ahead; the default of
                      ``codec.decode``), the plain decoder (``enhance=False``)
    ``causal``        svq, ``conceal="causal"`` (what a real-time
                      ``StreamDecoder`` without look-ahead outputs), plain
    ``interpolate+pf``, ``causal+pf``
                      the same with the trained decoder post-filter on
                      (``enhance=True``, :mod:`codec.postfilter`; as shipped
                      at the bitrates where ``svq modes`` says "on")
    ``opus``          Opus anchor: ``opusenc --hard-cbr --bitrate B --framesize 20
                      --comp 10`` once per file, then decoded at 16 kHz by libopus
                      (ctypes, :func:`opus_decode_lost`), the packets that the
                      same mask marks lost (packet k <-> frame k, both 20 ms)
                      concealed by Opus's own PLC (``opus_decode_float`` with no
                      data, as opusdec does for ``--packet-loss``): the same loss
                      pattern as svq's
    ``opusdec-loss``  Opus anchor: ``opusdec --packet-loss round(100 * rate)``, its
                      own pattern (C ``rand()``, unseeded: the same for every file
                      and run), independent losses only (no rows for ``--burst`` > 1)
    Without opus-tools (``opusenc``/``opusdec`` on PATH) the Opus decoders are
    skipped with a one-line note. The decoded speech is time-aligned to the
16 kHz mono reference (:func:`codec.metrics.align`) and scored with PESQ-WB and
pSNR, as in :mod:`recipes.bitrate_vs_pesq` (so loss rate 0 reproduces its
numbers at the same bitrate).

Loss patterns
    The seed passed to ``simulate_loss`` is :func:`pattern_seed`: the first
    8 bytes (big-endian) of SHA-256 over ``"svq-frame-loss"``, the ``--seeds``
    value and the file's base name, NUL-separated. It is stable across runs,
    machines, Python versions and data locations (manifest or folder), and
    differs between files, so files do not all lose the same frame numbers.
    The loss rate is deliberately not part of it: for one file and seed the
    patterns of all rates come from the same random numbers, which (with
    ``simulate_loss`` drawing independent uniforms against the rate) makes the
    frames lost at a lower rate a subset of those lost at a higher rate, and
    the curve over rates smoother than with unrelated patterns.
    With ``--burst B`` > 1, losses come in runs of ``B`` frames: a run starts
    at each frame that ``simulate_loss`` marks at rate ``1 - (1 - rate) **
    (1 / B)``, so that about ``rate`` of the frames are lost (overlapping runs
    merge); ``--burst 1`` is ``simulate_loss`` itself.

Failures
    An exception while reading, encoding, decoding or scoring is recorded in
    the row's ``error`` (prefixed with the stage), counted per loss rate and
    listed in ``summary.json`` and ``summary.md``; it never stops the run.
    A file whose encoding fails gives one failed row per loss rate and seed.

Outputs in ``--out``
    ``per_file.csv``      one row per file x loss rate x seed: ``file,
                          bitrate_kbps, loss_rate, seed, lost_frames, frames,
                          pesq_wb, psnr_db, error`` (empty field: no value)
    ``summary.json``      the command, codec version and source fingerprint
                          (at start and end: the codec may change under a long
                          run), and per loss rate: mean, median, 2.5 % / 97.5 %
                          quantiles of PESQ-WB and pSNR over the successful
                          rows (``n``), ``n_failed``, the actual lost fraction
                          (lost frames / frames, pooled over the rows), the
                          share of rows at or above the PESQ goal; the failures
    ``summary.md``        the table, with the command that made it
    ``pesq_vs_loss.png``  mean PESQ-WB against loss rate, 2.5–97.5 % band,
                          the goal (PESQ-WB 2.0) dashed

Example
-------
python -m recipes.frame_loss --out out/frame_loss --limit 3 --loss 0,0.05
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import codec
from codec.audio import SAMPLE_RATE, read_audio, to_mono_16k
from codec.errors import ParameterError
from codec.fileio import atomic_write
from codec.metrics import align, pesq_wb, psnr, visqol_speech
from codec.modes import mode_for
from recipes._common import (
    DEFAULT_MANIFEST,
    audio_files,
    codec_fingerprint,
    display_name,
    fmt_kbps,
    fmt_value,
    markdown_table,
    parse_floats,
    summary_stats,
    write_json,
)
from recipes.runner import add_cluster_args, check_cluster_args, describe, run_units

__all__ = [
    "DECODERS",
    "ogg_packets",
    "opus_decode_lost",
    "loss_mask",
    "main",
    "build_parser",
    "FileJob",
    "pattern_seed",
    "run_file",
    "summarize",
    "codec_fingerprint",
]

PESQ_GOAL = 2.0
"""PESQ-WB the concealment should keep (dashed line in the plot)."""
DEFAULT_LOSS = (0.0, 0.03, 0.1)
DECODERS = ("interpolate", "causal", "interpolate+pf", "causal+pf", "opus", "opusdec-loss")
"""What ``--decoders`` accepts (see the module docstring)."""
OPUS_DECODERS = ("opus", "opusdec-loss")
CSV_COLUMNS = (
    "file",
    "decoder",
    "bitrate_kbps",
    "loss_rate",
    "burst",
    "seed",
    "lost_frames",
    "frames",
    "pesq_wb",
    "psnr_db",
    "visqol",
    "error",
)
_SEED_TAG = "svq-frame-loss"


def pattern_seed(seed: int, name: str) -> int:
    """Seed for ``codec.simulate_loss`` of file ``name`` (its base name is used) and ``seed``.

    The first 8 bytes of ``SHA-256("svq-frame-loss" NUL seed NUL basename)``
    as an unsigned big-endian integer; independent of the loss rate.
    """
    text = f"{_SEED_TAG}\0{int(seed)}\0{Path(name).name}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def loss_mask(frame_count: int, rate: float, *, seed: int, burst: int = 1) -> np.ndarray:
    """Frames lost: :func:`codec.simulate_loss` (``burst`` 1), or runs of ``burst``
    frames starting where ``simulate_loss`` at ``1 - (1 - rate) ** (1 / burst)`` says."""
    if burst <= 1:
        return np.asarray(codec.simulate_loss(frame_count, rate, seed=seed), dtype=np.bool_)
    starts = codec.simulate_loss(frame_count, 1.0 - (1.0 - rate) ** (1.0 / burst), seed=seed)
    lost = np.zeros(frame_count, dtype=np.bool_)
    for k in np.flatnonzero(starts):
        lost[k : k + burst] = True
    return lost


def opus_missing_note() -> str | None:
    """``None`` when opus-tools are on PATH, else a one-line note."""
    import ctypes.util

    if shutil.which("opusenc") and shutil.which("opusdec") and ctypes.util.find_library("opus"):
        return None
    return (
        "note: Opus anchors skipped: opusenc/opusdec/libopus not found (apt-get install opus-tools)"
    )


def ogg_packets(data: bytes) -> list[bytes]:
    """The packets of a single-stream Ogg file, in order (header packets included)."""
    packets: list[bytes] = []
    current = bytearray()
    pos = 0
    while pos + 27 <= len(data):
        if data[pos : pos + 4] != b"OggS":
            raise ValueError("not an Ogg stream")
        n_seg = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + n_seg]
        off = pos + 27 + n_seg
        for lace in lacing:
            current += data[off : off + lace]
            off += lace
            if lace < 255:
                packets.append(bytes(current))
                current = bytearray()
        pos = off
    return packets


def _libopus() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("opus")
    if name is None:
        raise RuntimeError("libopus not found")
    lib = ctypes.CDLL(name)
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode_float.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.POINTER(ctypes.c_float),
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    return lib


def opus_decode_lost(data: bytes, lost: np.ndarray) -> np.ndarray:
    """Decode the Ogg Opus file ``data`` at 16 kHz with libopus (ctypes), audio packet
    ``k`` treated as lost where ``lost[k]``: ``opus_decode_float(st, NULL, 0, ...)`` for
    the packet's duration, Opus's own concealment, as ``opusdec --packet-loss`` does for
    the packets it drops. The encoder's pre-skip is removed."""
    import ctypes

    lib = _libopus()
    packets = ogg_packets(data)
    head = packets[0]
    if head[:8] != b"OpusHead":
        raise ValueError("not an Ogg Opus stream")
    channels = head[9]
    pre_skip = int.from_bytes(head[10:12], "little") * SAMPLE_RATE // 48000
    err = ctypes.c_int(0)
    st = lib.opus_decoder_create(SAMPLE_RATE, channels, ctypes.byref(err))
    if err.value != 0 or not st:
        raise RuntimeError(f"opus_decoder_create failed ({err.value})")
    cap = SAMPLE_RATE * 120 // 1000
    buf = (ctypes.c_float * (cap * channels))()
    out = []
    try:
        for k, pkt in enumerate(packets[2:]):
            if k < lost.size and lost[k]:
                size = lib.opus_packet_get_nb_samples(pkt, len(pkt), SAMPLE_RATE)
                got = lib.opus_decode_float(st, None, 0, buf, size, 0)
            else:
                got = lib.opus_decode_float(st, pkt, len(pkt), buf, cap, 0)
            if got < 0:
                raise RuntimeError(f"opus_decode_float failed ({got}) at packet {k}")
            y = np.ctypeslib.as_array(buf)[: got * channels]
            out.append(y.reshape(-1, channels).mean(axis=1).astype(np.float64))
    finally:
        lib.opus_decoder_destroy(st)
    return np.concatenate(out)[pre_skip:] if out else np.zeros(0)


def _opus_encode(ref: np.ndarray, kbps: float, tmp: Path) -> bytes:
    from recipes.anchors import _run, _write_wav

    wav, opus = tmp / "in.wav", tmp / "x.opus"
    _write_wav(wav, ref)
    _run(
        ["opusenc", "--quiet", "--hard-cbr", "--bitrate", f"{kbps:g}", "--framesize", "20"]
        + ["--comp", "10", str(wav), str(opus)]
    )
    return opus.read_bytes()


def _opus_decode(data: bytes, tmp: Path, n: int, packet_loss: int = 0) -> np.ndarray:
    from recipes.anchors import _place, _run

    src, dec = tmp / "lossy.opus", tmp / "out.wav"
    src.write_bytes(data)
    cmd = ["opusdec", "--quiet", "--rate", str(SAMPLE_RATE), "--float"]
    if packet_loss:
        cmd += ["--packet-loss", str(packet_loss)]
    _run(cmd + [str(src), str(dec)])
    y, rate = read_audio(dec)
    return _place(to_mono_16k(y, rate), 0, n)


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class FileJob:
    """One file to encode once and decode under every loss rate and seed (picklable)."""

    path: str
    """Audio file."""
    name: str
    """Name shown in the tables (relative to the data folder)."""
    bitrate_kbps: float
    loss_rates: tuple[float, ...]
    seeds: tuple[int, ...]
    decoders: tuple[str, ...] = ("interpolate",)
    burst: int = 1
    visqol: bool = False
    """Also score ViSQOL v3 (speech mode; slow)."""


def _error(stage: str, exc: BaseException) -> str:
    msg = " ".join(str(exc).split())[:300]
    return f"{stage}: {type(exc).__name__}: {msg}" if msg else f"{stage}: {type(exc).__name__}"


def run_file(job: FileJob) -> list[dict[str, Any]]:
    """Encode ``job``'s file, then decode and score it under every (loss rate, seed).

    Never raises: a failure is the row's ``error``. Rows also carry ``lag``
    (samples the decoded signal lagged the reference; ``None`` if not scored).
    """
    nan = math.nan
    rows: list[dict[str, Any]] = [
        {
            "file": job.name,
            "decoder": dec,
            "bitrate_kbps": job.bitrate_kbps,
            "loss_rate": rate,
            "burst": job.burst,
            "seed": seed,
            "lost_frames": None,
            "frames": None,
            "pesq_wb": nan,
            "psnr_db": nan,
            "visqol": nan if job.visqol else None,
            "error": "",
            "lag": None,
        }
        for dec in job.decoders
        if not (dec == "opusdec-loss" and job.burst > 1)
        for rate in job.loss_rates
        for seed in job.seeds
    ]
    try:
        audio, rate_in = read_audio(job.path)
        ref = to_mono_16k(audio, rate_in)
    except Exception as exc:  # noqa: BLE001 - recorded and counted
        return [{**r, "error": _error("read", exc)} for r in rows]
    for i, r in enumerate(rows):
        r["_order"] = i
    svq_rows = [r for r in rows if r["decoder"] not in OPUS_DECODERS]
    opus_rows = [r for r in rows if r["decoder"] in OPUS_DECODERS]
    out = _run_svq(job, svq_rows, audio, rate_in, ref) if svq_rows else []
    if opus_rows and opus_missing_note() is None:  # else skipped (main says so once)
        out += _run_opus(job, opus_rows, ref)
    out.sort(key=lambda r: r["_order"])
    for r in out:
        del r["_order"]
    return out


def _run_svq(
    job: FileJob, rows: list[dict[str, Any]], audio: Any, rate_in: int, ref: np.ndarray
) -> list[dict[str, Any]]:
    try:
        data = codec.encode(audio, rate_in, job.bitrate_kbps)
        n = int(codec.info(data).frame_count)
    except Exception as exc:  # noqa: BLE001 - recorded and counted
        return [{**r, "error": _error("encode", exc)} for r in rows]

    def decode(mask: np.ndarray, row: dict[str, Any]) -> np.ndarray:
        name = str(row["decoder"])
        conceal = name.removesuffix("+pf")
        enhance = name.endswith("+pf")  # without "+pf": the plain decoder at every bitrate
        y, sr = codec.decode(data, lost=mask, conceal=conceal, enhance=enhance)  # type: ignore[arg-type]
        if sr != SAMPLE_RATE:
            raise ParameterError(f"decoder returned {sr} Hz, expected {SAMPLE_RATE} Hz")
        return np.asarray(y)

    return _score_rows(job, rows, ref, n, decode)


def _run_opus(job: FileJob, rows: list[dict[str, Any]], ref: np.ndarray) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="svq-frame-loss-opus-") as name:
        tmp = Path(name)
        try:
            data = _opus_encode(ref, job.bitrate_kbps, tmp)
            n = len(ogg_packets(data)) - 2
        except Exception as exc:  # noqa: BLE001 - recorded and counted
            return [{**r, "error": _error("encode", exc)} for r in rows]

        def decode(mask: np.ndarray, row: dict[str, Any]) -> np.ndarray:
            if row["decoder"] == "opusdec-loss":
                percent = int(round(100 * row["loss_rate"]))
                return _opus_decode(data, tmp, ref.size, packet_loss=percent)
            from recipes.anchors import _place

            return _place(opus_decode_lost(data, mask), 0, ref.size)

        return _score_rows(job, rows, ref, n, decode)


def _score_rows(
    job: FileJob,
    rows: list[dict[str, Any]],
    ref: np.ndarray,
    n: int,
    decode: Any,
) -> list[dict[str, Any]]:
    nan = math.nan
    done: dict[bytes, dict[str, Any]] = {}  # (decoder, mask) -> scores
    for row in rows:
        row["frames"] = n
        stage = "loss mask"
        key: bytes | None = None
        try:
            seed = pattern_seed(row["seed"], job.name)
            mask = loss_mask(n, row["loss_rate"], seed=seed, burst=job.burst)
            if row["decoder"] == "opusdec-loss":  # opusdec draws its own pattern
                row["lost_frames"] = None
                key = f"opusdec-loss {row['loss_rate']:g}".encode()
            else:
                row["lost_frames"] = int(mask.sum())
                key = (
                    row["decoder"].encode()
                    + np.packbits(mask).tobytes()
                    + int(mask.size).to_bytes(8, "big")
                )
            if key in done:
                row.update(done[key])
                continue
            stage = "decode"
            y = decode(mask, row)
            stage = "score"
            deg, lag = align(ref, y)
            row["lag"] = lag
            row["pesq_wb"] = pesq_wb(ref, deg, SAMPLE_RATE)
            row["psnr_db"] = psnr(ref, deg, SAMPLE_RATE, do_align=False)
            if job.visqol:
                row["visqol"] = visqol_speech(ref, deg, SAMPLE_RATE)
        except Exception as exc:  # noqa: BLE001 - recorded and counted
            row["error"] = _error(stage, exc)
            row["pesq_wb"] = row["psnr_db"] = nan
            if job.visqol:
                row["visqol"] = nan
        if key is not None:
            done[key] = {k: row[k] for k in ("pesq_wb", "psnr_db", "visqol", "lag", "error")}
    return rows


def _indexed(item: tuple[int, FileJob]) -> tuple[int, list[dict[str, Any]]]:
    return item[0], run_file(item[1])


def run_jobs(
    jobs: Sequence[FileJob],
    *,
    n_proc: int,
    progress: bool,
    scheduler: str | None = None,
    worker_memory: str = "3GiB",
) -> list[dict[str, Any]]:
    """All rows of ``jobs`` (:func:`recipes.runner.run_units`: serial, local or remote
    Dask cluster), in job order."""
    from tqdm import tqdm

    results: dict[int, list[dict[str, Any]]] = {}
    failed = 0
    bar = tqdm(total=len(jobs), desc="files", unit="file", disable=not progress, smoothing=0.05)

    def record(i: int, rows: list[dict[str, Any]]) -> None:
        nonlocal failed
        results[i] = rows
        failed += sum(bool(r["error"]) for r in rows)
        bar.set_postfix(failed=failed, refresh=False)
        bar.update(1)

    with bar:
        for i, rows in run_units(
            _indexed,
            list(enumerate(jobs)),
            workers=min(n_proc, len(jobs)),
            scheduler=scheduler,
            worker_memory=worker_memory,
        ):
            record(i, rows)
    return [r for i in range(len(jobs)) for r in results[i]]


# --------------------------------------------------------------------------- summary


def rate_key(rate: float) -> str:
    """A loss rate as a short key: ``0``, ``0.03``, ``0.1``."""
    return f"{rate:g}"


def summarize(
    rows: Sequence[dict[str, Any]],
    loss_rates: Sequence[float],
    decoders: Sequence[str] = ("interpolate",),
) -> dict[str, Any]:
    """Per decoder (those with rows), per loss rate: :func:`summarize_rate`."""
    out: dict[str, Any] = {}
    for dec in decoders:
        sel = [r for r in rows if r.get("decoder", "interpolate") == dec]
        if sel:
            out[dec] = summarize_rate(sel, loss_rates)
    return out


def summarize_rate(rows: Sequence[dict[str, Any]], loss_rates: Sequence[float]) -> dict[str, Any]:
    """Per loss rate: statistics over the successful rows, failures and the actual loss.

    ``n`` counts the rows scored (files x seeds), ``n_failed`` those that
    failed; means and quantiles are over the ``n`` successful rows only.
    ``actual_loss`` is lost frames / frames summed over every row whose mask
    was drawn (failed decodes included: the mask was the same).
    """
    out: dict[str, Any] = {}
    for rate in loss_rates:
        sel = [r for r in rows if abs(r["loss_rate"] - rate) < 1e-12]
        ok = [r for r in sel if not r["error"]]
        drawn = [r for r in sel if r["lost_frames"] is not None]
        lost = sum(int(r["lost_frames"]) for r in drawn)
        frames = sum(int(r["frames"]) for r in drawn)
        pesq = [float(r["pesq_wb"]) for r in ok]
        out[rate_key(rate)] = {
            "loss_rate": rate,
            "n": len(ok),
            "n_failed": len(sel) - len(ok),
            "actual_loss": lost / frames if frames else math.nan,
            "lost_frames": lost,
            "frames": frames,
            "pesq_wb": summary_stats(pesq),
            "psnr_db": summary_stats(float(r["psnr_db"]) for r in ok),
            "visqol": (
                summary_stats(float(r["visqol"]) for r in ok)
                if any(r.get("visqol") is not None for r in ok)
                else None
            ),
            "share_pesq_at_or_above_goal": (
                sum(p >= PESQ_GOAL for p in pesq) / len(pesq) if pesq else math.nan
            ),
            "n_lag_nonzero": sum(1 for r in ok if r.get("lag")),
            "errors": sorted({r["error"] for r in sel if r["error"]})[:5],
        }
    return out


def _csv_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return v


def per_file_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """``per_file.csv`` contents: :data:`CSV_COLUMNS`, missing values empty."""
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n"
    )
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_value(r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue().encode()


def summary_markdown(summary: dict[str, Any]) -> str:
    """The Markdown report: one row per loss rate, then the failures."""
    head = [
        "decoder",
        "loss rate",
        "actual loss",
        "n",
        "failed",
        "PESQ-WB mean",
        "median",
        "2.5–97.5 %",
        f"≥ {PESQ_GOAL:.1f}",
        "pSNR dB mean",
        "median",
        "2.5–97.5 %",
    ]
    with_visqol = any(
        s.get("visqol") is not None for res in summary["results"].values() for s in res.values()
    )
    if with_visqol:
        head += ["ViSQOL mean", "median"]
    rows = []
    for dec, res in summary["results"].items():
        for s in res.values():
            p, q = s["pesq_wb"], s["psnr_db"]
            share = s["share_pesq_at_or_above_goal"]
            rows.append(
                [
                    dec,
                    f"{100 * s['loss_rate']:g} %",
                    (
                        f"{fmt_value(100 * s['actual_loss'], 2)} %"
                        if math.isfinite(s["actual_loss"])
                        else "–"
                    ),
                    s["n"],
                    s["n_failed"],
                    fmt_value(p["mean"], 2),
                    fmt_value(p["median"], 2),
                    f"{fmt_value(p['q025'], 2)}–{fmt_value(p['q975'], 2)}",
                    f"{fmt_value(100 * share, 0)} %" if math.isfinite(share) else "–",
                    fmt_value(q["mean"], 2),
                    fmt_value(q["median"], 2),
                    f"{fmt_value(q['q025'], 2)}–{fmt_value(q['q975'], 2)}",
                ]
            )
            if with_visqol:
                v = s.get("visqol") or {"mean": math.nan, "median": math.nan}
                rows[-1] += [fmt_value(v["mean"], 2), fmt_value(v["median"], 2)]
    seeds = ", ".join(str(s) for s in summary["seeds"])
    parts = [
        "# Frame loss vs PESQ-WB and pSNR" + (" and ViSQOL" if with_visqol else ""),
        "",
        f"Command: `{summary['command']}`",
        "",
        f"{summary['n_files']} files at {fmt_kbps(summary['bitrate_kbps'])} kbit/s, "
        f"seed(s) {seeds}; codec {summary['codec_version']} "
        f"(sources {summary['codec_fingerprint']}). Frames lost independently at random "
        f"(`codec.simulate_loss`, per-file seed from the seed and the file name; "
        f"in runs of {summary.get('burst', 1)} frame(s)) and "
        "concealed by the decoder (`interpolate`, `causal`: svq; `opus`: the same "
        "pattern with Opus packets emptied; `opusdec-loss`: `opusdec --packet-loss`, "
        "its own pattern, actual loss not known). "
        "Statistics over the files x seeds that succeeded; "
        f"goal PESQ-WB ≥ {PESQ_GOAL:.1f}. Wall time {summary['wall_s']:.0f} s.",
        "",
        markdown_table(head, rows),
        "",
    ]
    if summary["codec_fingerprint_end"] != summary["codec_fingerprint"]:
        parts += [
            f"**Warning:** the codec sources changed during the run "
            f"({summary['codec_fingerprint']} → {summary['codec_fingerprint_end']}).",
            "",
        ]
    failures = summary["failures"]
    if failures:
        parts += [f"## Failures ({len(failures)})", ""]
        parts += [
            f"- `{f['file']}` loss {rate_key(f['loss_rate'])} seed {f['seed']}: {f['error']}"
            for f in failures
        ]
        parts.append("")
    return "\n".join(parts)


# --------------------------------------------------------------------------- plot


def plot_pesq(path: Path, summary: dict[str, Any]) -> None:
    """Mean PESQ-WB against loss rate (%), 2.5–97.5 % band, median, the goal dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c, (dec, by_rate) in enumerate(summary["results"].items()):
        res = list(by_rate.values())
        color = f"C{c}"
        xs = np.array([100 * s["loss_rate"] for s in res])
        mean = np.array([s["pesq_wb"]["mean"] for s in res], dtype=float)
        med = np.array([s["pesq_wb"]["median"] for s in res], dtype=float)
        lo = np.array([s["pesq_wb"]["q025"] for s in res], dtype=float)
        hi = np.array([s["pesq_wb"]["q975"] for s in res], dtype=float)
        ax.fill_between(xs, lo, hi, color=color, alpha=0.12, lw=0)
        ax.plot(xs, mean, "-o", color=color, lw=2, ms=5, label=f"{dec}: mean (2.5–97.5 %)")
        ax.plot(xs, med, ":", color=color, lw=1.2)
    ax.axhline(PESQ_GOAL, ls="--", color="tab:red", lw=1.4, label=f"goal: PESQ-WB {PESQ_GOAL:.1f}")
    ax.set_xlabel("frame loss rate (%)")
    ax.set_ylabel("PESQ-WB (MOS-LQO)")
    ax.set_title(
        f"PESQ-WB against frame loss at {fmt_kbps(summary['bitrate_kbps'])} kbit/s "
        f"({summary['n_files']} files)"
    )
    ax.set_ylim(1.0, 4.7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


# --------------------------------------------------------------------------- CLI


def _parse_seeds(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m recipes.frame_loss",
        description=(
            "Encode every file once, decode it with random frame losses (concealed by the "
            "decoder) at every loss rate and seed, and report PESQ-WB and pSNR against the "
            "loss rate (CSV, JSON, Markdown, plot)."
        ),
    )
    p.add_argument(
        "--data",
        default=str(DEFAULT_MANIFEST),
        help="evaluation folder or manifest CSV (default: %(default)s)",
    )
    p.add_argument("--split", default="dev", help="manifest split of --data (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--bitrate", type=float, default=13.2, help="bitrate in kbit/s (default: %(default)s)"
    )
    p.add_argument(
        "--loss",
        default=",".join(rate_key(r) for r in DEFAULT_LOSS),
        help="comma-separated frame loss rates in [0, 1) (default: %(default)s)",
    )
    p.add_argument(
        "--seeds",
        default="0",
        help="comma-separated loss-pattern seeds, each combined with the file name "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--burst",
        type=int,
        default=1,
        help="frames per loss event: runs of this many frames, about the --loss share of "
        "frames lost in all (default: %(default)s, independent losses)",
    )
    p.add_argument(
        "--decoders",
        default="interpolate",
        help=f"comma-separated, from {', '.join(DECODERS)} (default: %(default)s)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N files")
    p.add_argument(
        "--visqol",
        action="store_true",
        help="also score ViSQOL v3 in speech mode (about 2-10 s per decode; eval extra)",
    )
    add_cluster_args(p, default_workers=os.cpu_count() or 1)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _validate(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    try:
        args.bitrate = mode_for(args.bitrate).bitrate_kbps
    except ParameterError as exc:
        p.error(f"--bitrate: {exc}")
    try:
        loss = parse_floats(args.loss)
    except ValueError as exc:
        p.error(f"--loss: {exc}")
    if not loss:
        p.error("--loss: give at least one loss rate")
    for r in loss:
        if not 0.0 <= r < 1.0:
            p.error(f"--loss: {r:g} is not in [0, 1)")
    args.loss = sorted(set(loss))
    try:
        seeds = _parse_seeds(args.seeds)
    except ValueError as exc:
        p.error(f"--seeds: {exc}")
    if not seeds or any(s < 0 for s in seeds):
        p.error("--seeds: give one or more non-negative integers")
    args.seeds = list(dict.fromkeys(seeds))
    decoders = [d.strip() for d in args.decoders.split(",") if d.strip()]
    for d in decoders:
        if d not in DECODERS:
            p.error(f"--decoders: {d!r} is not one of {', '.join(DECODERS)}")
    if not decoders:
        p.error("--decoders: give at least one")
    args.decoders = list(dict.fromkeys(decoders))
    if args.burst < 1:
        p.error("--burst must be >= 1")
    check_cluster_args(args, p)
    for name in ("limit",):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1")


def main(argv: list[str] | None = None) -> int:
    """Run the recipe; returns the process exit status (0 also when some rows failed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(args, parser)
    started = time.perf_counter()
    out = Path(args.out)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m recipes.frame_loss " + shlex.join(argv_list)
    code_fp = codec_fingerprint()

    try:
        files = audio_files(args.data, split=args.split, limit=args.limit)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        FileJob(
            path=str(f.resolve()),
            name=display_name(f, args.data),
            bitrate_kbps=args.bitrate,
            loss_rates=tuple(args.loss),
            seeds=tuple(args.seeds),
            decoders=tuple(args.decoders),
            burst=args.burst,
            visqol=args.visqol,
        )
        for f in files
    ]
    if any(d in OPUS_DECODERS for d in args.decoders):
        note = opus_missing_note()
        if note is not None:
            print(note, file=sys.stderr)
    n_rows = len(files) * len(args.loss) * len(args.seeds) * len(args.decoders)
    print(
        f"{len(files)} files x {len(args.loss)} loss rates x {len(args.seeds)} seeds x "
        f"{len(args.decoders)} decoders = "
        f"{n_rows} decodes at {fmt_kbps(args.bitrate)} kbit/s on {describe(args)}",
        file=sys.stderr,
    )
    try:
        rows = run_jobs(
            jobs,
            n_proc=args.workers,
            progress=not args.quiet,
            scheduler=args.scheduler,
            worker_memory=args.worker_memory,
        )
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    code_fp_end = codec_fingerprint()
    if code_fp_end != code_fp:
        print(
            f"warning: the codec sources changed during the run ({code_fp} -> {code_fp_end})",
            file=sys.stderr,
        )

    atomic_write(out / "per_file.csv", per_file_csv(rows))
    failures = [
        {k: r[k] for k in ("file", "loss_rate", "seed", "error")} for r in rows if r["error"]
    ]
    summary = {
        "command": command,
        "args": vars(args),
        "codec_version": codec.__version__,
        "codec_fingerprint": code_fp,
        "codec_fingerprint_end": code_fp_end,
        "bitrate_kbps": args.bitrate,
        "loss_rates": args.loss,
        "seeds": args.seeds,
        "seed_derivation": (
            "simulate_loss seed = int.from_bytes(sha256('svq-frame-loss\\0{seed}\\0"
            "{file basename}').digest()[:8], 'big'); the loss rate is not part of it"
        ),
        "pesq_goal": PESQ_GOAL,
        "n_files": len(files),
        "n_rows": len(rows),
        "n_failed": len(failures),
        "wall_s": time.perf_counter() - started,
        "decoders": args.decoders,
        "burst": args.burst,
        "results": summarize(rows, args.loss, args.decoders),
        "failures": failures,
    }
    write_json(out / "summary.json", summary)
    plot_pesq(out / "pesq_vs_loss.png", summary)
    md = summary_markdown(summary)
    atomic_write(out / "summary.md", md.encode())
    print(md)
    if failures:
        print(
            f"warning: {len(failures)} of {len(rows)} decodes failed (see summary.md)",
            file=sys.stderr,
        )
    print(f"wrote {out} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
