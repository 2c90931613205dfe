"""Bitrate against PESQ-WB, pSNR, DNSMOS and ViSQOL for every envelope quantizer (issues 5, 12).

Trains (or reuses from a cache) the papers' envelope setting, 16 bits per frame
as 4 codebooks x 4 bits, for every VQ variant x training method on the
training data, then runs the codec at every bitrate on every evaluation file
and scores the decoded speech with PESQ-WB, pSNR (design brief, section 4),
DNSMOS (overall, no reference) and ViSQOL v3 speech mode. The codec's shipped
configuration runs beside them as config ``default``, and the anchors of
:mod:`recipes.anchors` run live on the same files: Opus CBR/VBR at svq's rates,
AMR-WB at 8.85/12.65/15.85/23.85 and Speex-WB at 9.8/12.8/16.8/23.8 kbit/s
(those within 12 % of a requested svq rate). A missing anchor tool leaves
that anchor out with a one-line note; install them all with::

    apt-get update && apt-get install -y opus-tools ffmpeg libvo-amrwbenc0 libopencore-amrwb0

The cells (file x config x bitrate) run in this process, on a local Dask
cluster (``--workers N``) or on an existing one (``--scheduler tcp://HOST:8786``),
see :mod:`recipes.runner`.

Outputs in ``--out``:

``config.json``       the exact arguments
``cells.jsonl``       one line per finished (file, config, bitrate) cell, appended
                      as each finishes; a rerun skips the cells found there
``per_file.csv``      every cell: scores, measured bitrate, timing, error
``summary.json``      per config and bitrate: mean, median, 2.5 % / 97.5 %
                      quantiles of every metric, n_files, n_ok, n_failed; the
                      metrics' agreement (per-file Spearman with PESQ, anchor orderings)
``results.md``        the tables, with the command that made them
``grid_{metric}.png``  the 16-bit variant x method grid, one panel per variant
``anchors.png``       svq's default against the live anchors, one panel per metric
``complexity.png``
``codebooks/``        the trained codebooks, ``{variant}-{method}-4x4.cb``

Example
-------
python -m recipes.bitrate_vs_pesq --out out/bitrate_vs_pesq --limit 3 --bitrates 8,13.2 \
    --metrics pesq,psnr,dnsmos --workers 2
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import codec
from codec import pipeline
from codec.analysis import lsf_features, lsf_weights
from codec.audio import SAMPLE_RATE, read_audio, to_mono_16k
from codec.errors import CodecError, ParameterError
from codec.features import collection_features
from codec.metrics import align, dnsmos, pesq_wb, psnr, visqol_speech
from codec.modes import BITRATES_KBPS, MODES, mode_for
from codec.quantizers import METHODS, Quantizer, load_quantizer, train_quantizer
from codec.registry import load_envelope, shipped_codebooks
from recipes import anchors
from recipes._common import (
    DEFAULT_MANIFEST,
    REPO_ROOT,
    audio_files,
    codec_fingerprint,
    display_name,
    fmt_kbps,
    fmt_value,
    markdown_table,
    parse_floats,
    parse_names,
    settings_hash,
    summary_stats,
    write_json,
)
from recipes.anchors import ogg_payload_bytes  # noqa: F401 - re-exported (tests, callers)
from recipes.runner import add_cluster_args, check_cluster_args, describe, run_units

__all__ = ["main", "build_parser", "Config", "Cell", "run_cell", "summarize"]

STAGES = 4
"""Codebooks per envelope quantizer in the papers' setting."""
BITS = 4
"""Bits per codebook in the papers' setting (16 bits per frame in all)."""
PAPER_VARIANTS = ("avq", "rvq", "pvq")
DEFAULT_CONFIG = "default"
PLAIN_CONFIG = "default-plain"  # the default decoded without the post-filter (--post-filter)
ENHANCED_CONFIG = "default-enhanced"  # ... and with it at every bitrate (--post-filter)
METRICS = {
    "pesq": "pesq_wb",
    "psnr": "psnr_db",
    "dnsmos": "dnsmos_ovrl",
    "visqol": "visqol",
}
"""``--metrics`` names -> row keys."""
METRIC_LABELS = {
    "pesq_wb": "PESQ-WB",
    "psnr_db": "pSNR (dB)",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "visqol": "ViSQOL v3",
}
COMPLEXITY_KBPS = 13.2
"""Bitrate whose mean PESQ is set against the operation count (else the mean over bitrates)."""
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"
CELLS = "cells.jsonl"
CSV_COLUMNS = (
    "file",
    "config",
    "bitrate_kbps",
    "pesq_wb",
    "psnr_db",
    "dnsmos_ovrl",
    "visqol",
    "measured_kbps",
    "payload_kbps",
    "encode_s",
    "decode_s",
    "duration_s",
    "lag",
    "fingerprint",
    "error",
)


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class Config:
    """One system under test.

    Attributes
    ----------
    name : str
        ``default``, ``{variant}-{method}`` or an anchor (``opus-cbr``, ``amrwb``, ...).
    kind : {'svq', 'anchor'}
    codebook : str, optional
        Codebook file for a trained svq configuration; ``None`` for the shipped default.
    fingerprint : str
        Identifies what produces this config's cells (codec sources, codebook,
        encoder version); a cached cell with another fingerprint is recomputed.
    envelope : str, optional
        Envelope codebook name(s), as written in the bitstream header.
    variant, method : str, optional
        Envelope quantizer variant and (for a trained configuration) training method.
    ops_per_vector : int, optional
        Weighted operations to quantize one LSF vector (``Quantizer.ops_per_vector``).
    encode_us : float, optional
        Measured envelope search time per LSF vector in microseconds.
    """

    name: str
    kind: str
    codebook: str | None = None
    fingerprint: str = ""
    envelope: str | None = None
    variant: str | None = None
    method: str | None = None
    ops_per_vector: int | None = None
    encode_us: float | None = None
    given: bool = False
    """A ``--codebook NAME=FILE`` or ``--post-filter`` configuration (not the trained grid)."""
    rates: tuple[float, ...] | None = None
    """An anchor's operating points (kbit/s); ``None``: svq's requested bitrates."""
    enhance: bool | None = None
    """svq's decoder post-filter: ``None`` as shipped, ``False`` the plain decoder."""
    weights: str | None = None
    """Post-filter weights to decode with at every bitrate instead of the shipped ones
    (``--post-filter-weights``; a path)."""


@dataclass(frozen=True)
class Cell:
    """One (file, config, bitrate) measurement to make."""

    path: str
    """Audio file (absolute path; the cache key)."""
    name: str
    """File name shown in the tables (relative to the data folder)."""
    config: Config
    bitrate_kbps: float
    metrics: tuple[str, ...] = ("pesq_wb", "psnr_db")
    """Row keys of the metrics to compute (:data:`METRICS`)."""


def envelope_timing(q: Quantizer, lsf: np.ndarray, *, repeat: int = 5) -> float:
    """Best-of-``repeat`` envelope search time per vector in microseconds."""
    w = lsf_weights(lsf)
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        q.encode(lsf, weights=w)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / max(len(lsf), 1)


def default_config(code_fp: str, lsf: np.ndarray, bitrates: Sequence[float]) -> Config:
    """The codec as shipped: ``encode`` with neither envelope nor codebook."""
    names = sorted({mode_for(b).default_envelope for b in bitrates})
    envs = [load_envelope(n) for n in names]
    # the shipped codec's identity: every mode's codebook, whichever rates this run
    # asks for (modes differ in codebook), so that adding a rate reuses the cells
    shipped = sorted({m.default_envelope for m in MODES.values()})
    fp = settings_hash([code_fp, [load_envelope(n).content_hash for n in shipped]], length=16)
    q = envs[0].quantizer if len(envs) == 1 else None
    return Config(
        name=DEFAULT_CONFIG,
        kind="svq",
        fingerprint=fp,
        envelope="+".join(names),
        variant="+".join(sorted({str(e.quantizer.variant) for e in envs})),
        method=None,
        ops_per_vector=int(q.ops_per_vector()) if q is not None else None,
        encode_us=envelope_timing(q, lsf) if q is not None else None,
    )


def _train_source(args: argparse.Namespace, cache: Path) -> tuple[str | Path, str | None]:
    """The training source to give ``collection_features`` (a manifest for ``--train-limit``)."""
    if args.train_limit is None:
        return args.train, args.train_split
    files = audio_files(args.train, split=args.train_split, limit=args.train_limit)
    manifest = cache / f"train-files-{settings_hash([str(f.resolve()) for f in files])}.csv"
    if not manifest.exists():
        manifest.parent.mkdir(parents=True, exist_ok=True)
        tmp = manifest.with_suffix(".tmp")
        with tmp.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file"])
            w.writerows([[str(f.resolve())] for f in files])
        os.replace(tmp, manifest)
    return manifest, None


@dataclass(frozen=True)
class TrainJob:
    """One codebook to train (picklable, for a worker process)."""

    features: str
    """``.npy`` LSF matrix of the training data."""
    variant: str
    method: str
    seed: int
    options: tuple[tuple[str, Any], ...]
    progress: bool
    dest: str
    """Cache file to write (atomically)."""


def train_one(job: TrainJob) -> float:
    """Train one 4x4-bit codebook with ``lsf_weights`` and save it; returns seconds taken."""
    t0 = time.perf_counter()
    lsf = np.load(job.features, allow_pickle=False)
    q = train_quantizer(
        lsf,
        variant=job.variant,
        stages=STAGES,
        bits=BITS,
        method=job.method,
        weights=lsf_weights(lsf),
        seed=job.seed,
        progress=job.progress,
        **dict(job.options),
    )
    dest = Path(job.dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    q.save(tmp)
    os.replace(tmp, dest)
    return time.perf_counter() - t0


def _train_labelled(job: TrainJob) -> tuple[str, float]:
    return f"{job.variant}-{job.method}", train_one(job)


def _train_all(jobs: Sequence[TrainJob], args: argparse.Namespace) -> None:
    """Run ``jobs`` where the cells run (:mod:`recipes.runner`), reporting each."""
    for label, seconds in run_units(
        _train_labelled,
        jobs,
        workers=min(args.workers, len(jobs)),
        scheduler=args.scheduler,
        worker_memory=args.worker_memory,
    ):
        print(f"{label}: trained in {seconds:.1f} s", file=sys.stderr)


def train_configs(
    args: argparse.Namespace, out: Path, cache: Path, code_fp: str, lsf_timing: np.ndarray
) -> list[Config]:
    """Train (or load from ``cache``) one codebook per variant x method.

    The cache file name holds a hash of the training features' key (files,
    sizes, mtimes, analysis version) and every training setting, so a codebook
    is reused exactly when it would be trained again identically. Missing
    codebooks are trained on the workers (:mod:`recipes.runner`, one thread each).
    """
    combos = [(v, m) for v in args.variants for m in args.methods]
    if not combos:
        return []
    source, split = _train_source(args, cache)
    feat_path = cache / f"train_lsf-{settings_hash([str(Path(source).resolve()), split])}.npy"
    print(f"training features: {source} (split {split})", file=sys.stderr)
    fs = collection_features(source, out=feat_path, split=split, progress=not args.quiet)
    options = dict(args.train_option)
    parallel = args.workers > 1 or args.scheduler is not None
    progress = bool(options.pop("progress", not args.quiet and not parallel))
    cached: dict[tuple[str, str], Path] = {}
    jobs = []
    for variant, method in combos:
        settings = {
            "features": fs.key,
            "variant": variant,
            "method": method,
            "stages": STAGES,
            "bits": BITS,
            "seed": args.seed,
            "weights": "lsf_weights",
            "options": options,
            "codec": codec.__version__,
        }
        stem = f"{variant}-{method}-{STAGES}x{BITS}"
        path = cache / "codebooks" / f"{stem}-{settings_hash(settings)}.cb"
        cached[variant, method] = path
        if path.exists():
            print(f"{stem}: reusing {path}", file=sys.stderr)
        else:
            jobs.append(
                TrainJob(
                    features=str(feat_path),
                    variant=variant,
                    method=method,
                    seed=args.seed,
                    options=tuple(sorted(options.items())),
                    progress=progress,
                    dest=str(path),
                )
            )
    if jobs:
        t0 = time.perf_counter()
        _train_all(jobs, args)
        print(
            f"trained {len(jobs)} codebook(s) in {time.perf_counter() - t0:.1f} s", file=sys.stderr
        )
    configs = []
    for (variant, method), path in cached.items():
        q = load_quantizer(path)
        stem = f"{variant}-{method}-{STAGES}x{BITS}"
        dest = out / "codebooks" / f"{stem}.cb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists() or dest.read_bytes() != path.read_bytes():
            shutil.copyfile(path, dest)
        configs.append(
            Config(
                name=f"{variant}-{method}",
                kind="svq",
                codebook=str(dest.resolve()),
                fingerprint=settings_hash([code_fp, q.content_hash], length=16),
                envelope=stem,
                variant=variant,
                method=method,
                ops_per_vector=int(q.ops_per_vector()),
                encode_us=envelope_timing(q, lsf_timing),
            )
        )
    return configs


def given_configs(
    given: Sequence[tuple[str, str]], out: Path, code_fp: str, lsf_timing: np.ndarray
) -> list[Config]:
    """One configuration per ``--codebook NAME=FILE``: any codebook the codec loads
    (memoryless, predictive, end to end; from ``svq train`` or ``recipes.envelope_sd``),
    run at every bitrate. The file is copied to ``OUT/codebooks/NAME.cb``."""
    configs = []
    for name, file in given:
        env = load_envelope(file)  # ParameterError / CodebookError name the file
        env.check_recovers()  # the codec refuses AR prediction without a safety net
        dest = out / "codebooks" / f"{name}.cb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = Path(file) if Path(file).is_file() else Path(shipped_codebooks()[file])
        if not dest.exists() or dest.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dest)
        q = env.quantizer
        method = q.config.method  # "none" for an untrained predictor
        configs.append(
            Config(
                name=name,
                kind="svq",
                codebook=str(dest.resolve()),
                fingerprint=settings_hash([code_fp, env.content_hash], length=16),
                envelope=f"{Path(file).stem} ({env.description})",
                variant=env.variant,
                method=None if method == "none" else str(method),
                ops_per_vector=int(q.ops_per_vector()),
                encode_us=envelope_timing(q, lsf_timing),
                given=True,
            )
        )
    return configs


def anchor_configs(names: Sequence[str], bitrates: Sequence[float]) -> list[Config]:
    """The live anchors among ``names`` whose tools are here (a one-line note for each missing)."""
    ok, notes = anchors.available_anchors(list(names))
    for note in notes:
        print(note, file=sys.stderr)
    out = []
    for name in ok:
        rates = tuple(anchors.anchor_rates(name, list(bitrates)))
        if not rates:
            print(f"note: {name} has no operating point near {list(bitrates)}", file=sys.stderr)
            continue
        fp = settings_hash(
            [anchors.tool_version(name), anchors.AMRWB_DELAY, anchors.SPEEX_DELAY], length=16
        )
        out.append(Config(name=name, kind="anchor", fingerprint=fp, rates=rates))
    return out


def config_rates(cfg: Config, bitrates: Sequence[float]) -> list[float]:
    """The bitrates (operating points) at which ``cfg`` runs."""
    return list(cfg.rates) if cfg.rates is not None else list(bitrates)


def available_metrics(names: Sequence[str]) -> list[str]:
    """Row keys of the ``--metrics`` whose packages are installed (a note for each missing)."""
    import importlib.util

    need = {"pesq": ["pesq"], "dnsmos": ["speechmos", "onnxruntime"], "visqol": ["visqol"]}
    out = []
    for n in names:
        missing = [m for m in need.get(n, []) if importlib.util.find_spec(m) is None]
        if missing:
            print(
                f"note: metric {n} skipped: {', '.join(missing)} not installed "
                "(pip install 'svq[eval]')",
                file=sys.stderr,
            )
        else:
            out.append(METRICS[n])
    return out


# --------------------------------------------------------------------------- one cell


def _svq_round_trip(
    audio: np.ndarray, rate: int, cell: Cell
) -> tuple[np.ndarray, int, float, float, float]:
    """Encode and decode with svq: (decoded, n_bytes, payload_kbps, encode_s, decode_s)."""
    cb = cell.config.codebook
    # load (and cache) the codebook outside the timed region
    load_envelope(cb if cb is not None else mode_for(cell.bitrate_kbps).default_envelope)
    t0 = time.perf_counter()
    data = pipeline.encode(audio, rate, cell.bitrate_kbps, codebook=cb)
    t1 = time.perf_counter()
    if cell.config.weights is not None:
        y = _decode_with_weights(data, cell.config.weights)
    else:
        y, _ = pipeline.decode(
            data, codebooks=[cb] if cb is not None else (), enhance=cell.config.enhance
        )
    t2 = time.perf_counter()
    st = pipeline.info(data)
    payload_bits = 8.0 * st.frame_count * st.frame_bytes
    payload_kbps = payload_bits / st.duration_s / 1000.0 if st.duration_s > 0 else math.nan
    return y, len(data), payload_kbps, t1 - t0, t2 - t1


@functools.lru_cache(maxsize=4)
def _weights(path: str) -> Any:
    from codec.postfilter import load_weights

    return load_weights(path)


def _decode_with_weights(data: bytes, path: str) -> np.ndarray:
    """Decode a stream with the post-filter on and the weights at ``path`` (the
    stream decoder with its enhancer replaced; the same as ``decode(enhance=True)``
    with those weights shipped)."""
    from codec.bitstream import check_file
    from codec.postfilter import Enhancer

    header, frames, _ = check_file(data)
    dec = pipeline.StreamDecoder(header, enhance=False)
    dec.enhancer = Enhancer(_weights(path))
    parts = [dec.decode(list(frames)), dec.flush()]
    return np.concatenate(parts)


def run_cell(cell: Cell) -> dict[str, Any]:
    """Encode, decode and score one cell; an exception is recorded in ``error``, never raised.

    The decoded signal is time-aligned to the 16 kHz mono reference
    (:func:`codec.metrics.align`, lag recorded; anchors come delay-compensated,
    so their lag is a check) before the metrics in ``cell.metrics``.
    """
    nan = math.nan
    row: dict[str, Any] = {
        "file": cell.name,
        "path": cell.path,
        "config": cell.config.name,
        "bitrate_kbps": cell.bitrate_kbps,
        "fingerprint": cell.config.fingerprint,
        **dict.fromkeys(cell.metrics, nan),
        "measured_kbps": nan,
        "payload_kbps": nan,
        "encode_s": nan,
        "decode_s": nan,
        "duration_s": nan,
        "lag": None,
        "error": "",
    }
    try:
        audio, rate = read_audio(cell.path)
        ref = to_mono_16k(audio, rate)
        duration = ref.size / SAMPLE_RATE
        row["duration_s"] = duration
        if cell.config.kind == "anchor":
            a = anchors.run_anchor(cell.config.name, ref, cell.bitrate_kbps)
            if not anchors.nominal_ok(cell.config.name, cell.bitrate_kbps, a.payload_kbps):
                raise RuntimeError(
                    f"measured payload {a.payload_kbps:.2f} kbit/s does not fit "
                    f"{cell.config.name} at {fmt_kbps(cell.bitrate_kbps)} kbit/s"
                )
            y, file_kbps, payload, enc_s, dec_s = (
                a.audio,
                a.file_kbps,
                a.payload_kbps,
                a.encode_s,
                a.decode_s,
            )
        else:
            y, n_bytes, payload, enc_s, dec_s = _svq_round_trip(audio, rate, cell)
            file_kbps = 8.0 * n_bytes / duration / 1000.0
        row.update(measured_kbps=file_kbps, payload_kbps=payload, encode_s=enc_s, decode_s=dec_s)
        deg, lag = align(ref, y)
        row["lag"] = lag
        for key in cell.metrics:
            row[key] = _score(key, ref, deg)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded and counted
        msg = " ".join(str(exc).split())[:300]
        row["error"] = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return row


def _score(key: str, ref: np.ndarray, deg: np.ndarray) -> float:
    """One metric of the aligned decoded signal ``deg`` against ``ref`` (16 kHz)."""
    if key == "pesq_wb":
        return pesq_wb(ref, deg, SAMPLE_RATE)
    if key == "psnr_db":
        return psnr(ref, deg, SAMPLE_RATE, do_align=False)
    if key == "dnsmos_ovrl":
        return dnsmos(deg, SAMPLE_RATE).ovrl
    if key == "visqol":
        return visqol_speech(ref, deg, SAMPLE_RATE)
    raise ValueError(f"unknown metric {key!r}")


def cell_key(path: str, config: str, bitrate_kbps: float) -> tuple[str, str, str]:
    """Key of a cell in ``cells.jsonl``."""
    return path, config, fmt_kbps(float(bitrate_kbps))


# --------------------------------------------------------------------------- running


def load_cells(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Finished cells of an earlier run (the last line of a key wins; torn lines skipped)."""
    done: dict[tuple[str, str, str], dict[str, Any]] = {}
    if not path.exists():
        return done
    with path.open() as fh:
        for line in fh:
            try:
                row = json.loads(line)
                done[cell_key(row["path"], row["config"], row["bitrate_kbps"])] = row
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _json_row(row: dict[str, Any]) -> str:
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }
    return json.dumps(clean, allow_nan=False)


def run_cells(
    cells: Sequence[Cell],
    log: Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    worker_memory: str = "3GiB",
    progress: bool,
) -> int:
    """Compute ``cells`` (:func:`recipes.runner.run_units`), appending each to ``log``.

    Serial with ``workers == 1`` and no scheduler, else on a local or remote Dask
    cluster; each finished cell is appended as it arrives. Returns the number of
    cells that failed.
    """
    from tqdm import tqdm

    failed = 0
    log.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(cells), desc="cells", unit="cell", disable=not progress, smoothing=0.05)
    with log.open("a") as fh, bar:

        def record(row: dict[str, Any]) -> None:
            nonlocal failed
            fh.write(_json_row(row) + "\n")
            fh.flush()
            failed += bool(row["error"])
            bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)

        for row in run_units(
            run_cell,
            cells,
            workers=min(workers, len(cells)),
            scheduler=scheduler,
            worker_memory=worker_memory,
        ):
            record(row)
    return failed


# --------------------------------------------------------------------------- summary


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def summarize(
    rows: Sequence[dict[str, Any]],
    configs: Sequence[Config],
    bitrates: Sequence[float],
    metrics: Sequence[str] = ("pesq_wb", "psnr_db"),
) -> dict[str, Any]:
    """Per config and bitrate: statistics of the successful cells and the failure count.

    Means and quantiles are over the successful files only; ``n_failed`` stands
    beside them (failed cells are never silently left out of the counts).
    """
    results: dict[str, dict[str, Any]] = {}
    for cfg in configs:
        per_rate: dict[str, Any] = {}
        for b in config_rates(cfg, bitrates):
            sel = [r for r in rows if r["config"] == cfg.name and abs(r["bitrate_kbps"] - b) < 1e-9]
            ok = [r for r in sel if not r["error"]]
            total_s = sum(_num(r["duration_s"]) for r in ok)
            per_rate[fmt_kbps(b)] = {
                "n_files": len(sel),
                "n_ok": len(ok),
                "n_failed": len(sel) - len(ok),
                **{m: summary_stats(_num(r.get(m)) for r in ok) for m in metrics},
                "measured_kbps_mean": summary_stats(_num(r["measured_kbps"]) for r in ok)["mean"],
                "payload_kbps_mean": summary_stats(_num(r["payload_kbps"]) for r in ok)["mean"],
                "encode_rtf": (
                    sum(_num(r["encode_s"]) for r in ok) / total_s if total_s > 0 else math.nan
                ),
                "decode_rtf": (
                    sum(_num(r["decode_s"]) for r in ok) / total_s if total_s > 0 else math.nan
                ),
                "errors": sorted({r["error"] for r in sel if r["error"]})[:5],
            }
        results[cfg.name] = per_rate
    return results


def complexity_rows(
    configs: Sequence[Config], results: dict[str, Any], bitrates: Sequence[float]
) -> list[dict[str, Any]]:
    """Operation count and measured search time of each svq configuration beside its PESQ."""
    has_ref_rate = any(abs(b - COMPLEXITY_KBPS) < 1e-9 for b in bitrates)
    at = fmt_kbps(COMPLEXITY_KBPS) if has_ref_rate else None
    out = []
    for cfg in configs:
        if cfg.kind != "svq":
            continue
        res = results[cfg.name]
        means = [res[fmt_kbps(b)]["pesq_wb"]["mean"] for b in bitrates]
        finite = [m for m in means if math.isfinite(m)]
        out.append(
            {
                "config": cfg.name,
                "envelope": cfg.envelope,
                "variant": cfg.variant,
                "method": cfg.method,
                "ops_per_vector": cfg.ops_per_vector,
                "encode_us_per_vector": cfg.encode_us,
                "pesq_at_kbps": at,
                "pesq_wb_mean_at": res[at]["pesq_wb"]["mean"] if at else math.nan,
                "pesq_wb_mean_over_bitrates": float(np.mean(finite)) if finite else math.nan,
            }
        )
    return out


def write_per_file_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``per_file.csv``: one row per cell, NaN written as an empty field."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(
            fh, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n"
        )
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            )
    os.replace(tmp, path)


def _cell_text(r: dict[str, Any], metric: str, digits: int, op: str = "") -> str:
    st = r[metric]
    text = f"{fmt_value(st['mean'], digits)} ({fmt_value(st['median'], digits)}){op}"
    if r["n_failed"]:
        text += f" ⚠{r['n_failed']} failed"
    return text


def _column_cells(
    cfg: Config, bitrates: Sequence[float], results: dict[str, Any]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """svq column (kbps key) -> (operating point key, stats) of a config."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for rate in config_rates(cfg, bitrates):
        col = rate if cfg.kind != "anchor" else anchors.column_rate(cfg.name, rate, list(bitrates))
        if col is not None and fmt_kbps(col) not in out:
            out[fmt_kbps(col)] = (fmt_kbps(rate), results[cfg.name][fmt_kbps(rate)])
    return out


def agreement(
    rows: Sequence[dict[str, Any]],
    configs: Sequence[Config],
    bitrates: Sequence[float],
    metrics: Sequence[str],
) -> dict[str, Any]:
    """How far the metrics agree with PESQ-WB.

    ``per_file``: for each metric, the Spearman rank correlation with PESQ-WB
    over one file's successful cells (every config and bitrate), summarised over
    the files (median, quartiles, n). ``pooled``: the same over all cells at
    once. ``orderings``: at each svq bitrate, the default config and the anchors
    standing in that column, ordered by each metric's mean (best first), with
    whether the order equals PESQ-WB's.
    """
    from scipy.stats import spearmanr

    ok = [r for r in rows if not r["error"]]
    others = [m for m in metrics if m != "pesq_wb"]
    per_file: dict[str, Any] = {}
    pooled: dict[str, Any] = {}
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in ok:
        by_file.setdefault(r["file"], []).append(r)
    for m in others:
        rhos = []
        for group in by_file.values():
            pairs = [
                (_num(r["pesq_wb"]), _num(r.get(m)))
                for r in group
                if math.isfinite(_num(r["pesq_wb"])) and math.isfinite(_num(r.get(m)))
            ]
            if len(pairs) >= 3:
                x, y = zip(*pairs, strict=True)
                rho = float(spearmanr(x, y).statistic)
                if math.isfinite(rho):
                    rhos.append(rho)
        v = np.asarray(rhos)
        per_file[m] = {
            "n_files": int(v.size),
            "median": float(np.median(v)) if v.size else math.nan,
            "q25": float(np.quantile(v, 0.25)) if v.size else math.nan,
            "q75": float(np.quantile(v, 0.75)) if v.size else math.nan,
            "min": float(v.min()) if v.size else math.nan,
        }
        pairs = [
            (_num(r["pesq_wb"]), _num(r.get(m)))
            for r in ok
            if math.isfinite(_num(r["pesq_wb"])) and math.isfinite(_num(r.get(m)))
        ]
        if len(pairs) >= 3:
            x, y = zip(*pairs, strict=True)
            pooled[m] = {"n_cells": len(pairs), "rho": float(spearmanr(x, y).statistic)}
        else:
            pooled[m] = {"n_cells": len(pairs), "rho": math.nan}
    results = summarize(rows, configs, bitrates, metrics)
    shown = [c for c in configs if c.kind == "anchor" or c.name == DEFAULT_CONFIG]
    orderings: dict[str, Any] = {}
    for b in bitrates:
        col = fmt_kbps(b)
        entries = []
        for cfg in shown:
            cells = _column_cells(cfg, bitrates, results)
            if col in cells:
                op, stats = cells[col]
                entries.append((f"{cfg.name}@{op}", stats))
        per_metric: dict[str, Any] = {}
        for m in metrics:
            scored = [(n, st[m]["mean"]) for n, st in entries if math.isfinite(st[m]["mean"])]
            per_metric[m] = [n for n, _ in sorted(scored, key=lambda t: -t[1])]
        pesq_order = per_metric.get("pesq_wb", [])
        orderings[col] = {
            "order": per_metric,
            "same_as_pesq": {m: per_metric[m] == pesq_order for m in others},
        }
    return {"per_file_spearman": per_file, "pooled_spearman": pooled, "orderings": orderings}


def results_markdown(
    command: str,
    configs: Sequence[Config],
    bitrates: Sequence[float],
    results: dict[str, Any],
    complexity: Sequence[dict[str, Any]],
    n_files: int,
    metrics: Sequence[str] = ("pesq_wb", "psnr_db"),
    agree: dict[str, Any] | None = None,
) -> str:
    """The Markdown report: one table per metric, bitrates, agreement, complexity."""
    head = ["config"] + [f"{fmt_kbps(b)} kbit/s" for b in bitrates]

    def table(metric: str, digits: int) -> str:
        rows = []
        for cfg in configs:
            cells = _column_cells(cfg, bitrates, results)
            row = [cfg.name]
            for b in bitrates:
                col = fmt_kbps(b)
                if col not in cells:
                    row.append("–")
                    continue
                op, st = cells[col]
                row.append(_cell_text(st, metric, digits, "" if op == col else f" @{op}"))
            rows.append(row)
        return markdown_table(head, rows)

    rate_rows = []
    for cfg in configs:
        cells = _column_cells(cfg, bitrates, results)
        row = [cfg.name]
        for b in bitrates:
            if fmt_kbps(b) not in cells:
                row.append("–")
                continue
            op, st = cells[fmt_kbps(b)]
            at = "" if op == fmt_kbps(b) else f" @{op}"
            row.append(
                f"{fmt_value(st['measured_kbps_mean'], 2)} "
                f"({fmt_value(st['payload_kbps_mean'], 2)}){at}"
            )
        rate_rows.append(row)
    cx_rows = [
        [
            c["config"],
            c["envelope"],
            c["ops_per_vector"] if c["ops_per_vector"] is not None else "–",
            fmt_value(c["encode_us_per_vector"], 1),
            fmt_value(c["pesq_wb_mean_at"], 3),
            fmt_value(c["pesq_wb_mean_over_bitrates"], 3),
        ]
        for c in complexity
    ]
    at = complexity[0]["pesq_at_kbps"] if complexity else None
    parts = [
        "# Bitrate against " + ", ".join(METRIC_LABELS[m] for m in metrics),
        "",
        f"Command: `{command}`",
        "",
        f"{n_files} files; codec {codec.__version__}. Means and medians over the files "
        "that succeeded; failed cells are flagged (see summary.json and per_file.csv). "
        "Anchors stand in the column of the nearest svq bitrate; `@R` gives the "
        "anchor's own operating point in kbit/s.",
        "",
    ]
    digits = {"psnr_db": 2, "pesq_wb": 2, "dnsmos_ovrl": 2, "visqol": 2}
    for m in metrics:
        parts += [f"## {METRIC_LABELS[m]}: mean (median)", "", table(m, digits[m]), ""]
    parts += [
        "## Measured bitrate in kbit/s: whole file (codec frames only)",
        "",
        markdown_table(head, rate_rows),
        "",
    ]
    if agree is not None and agree["per_file_spearman"]:
        pf, po = agree["per_file_spearman"], agree["pooled_spearman"]
        parts += [
            "## Agreement with PESQ-WB",
            "",
            "Spearman rank correlation with PESQ-WB: per file over that file's cells "
            "(every config and bitrate), then the median and quartiles over the files; "
            "pooled over all cells.",
            "",
            markdown_table(
                ["metric", "per-file median ρ", "quartiles", "lowest", "files", "pooled ρ"],
                [
                    [
                        METRIC_LABELS[m],
                        fmt_value(pf[m]["median"], 3),
                        f"{fmt_value(pf[m]['q25'], 3)} – {fmt_value(pf[m]['q75'], 3)}",
                        fmt_value(pf[m]["min"], 3),
                        pf[m]["n_files"],
                        fmt_value(po[m]["rho"], 3),
                    ]
                    for m in pf
                ],
            ),
            "",
            "Ordering of svq's default and the anchors at each bitrate, best first "
            "(means over the files); ✗ marks an order that differs from PESQ-WB's.",
            "",
        ]
        o_rows = []
        for col, o in agree["orderings"].items():
            for m in metrics:
                mark = "" if m == "pesq_wb" or o["same_as_pesq"].get(m, True) else " ✗"
                o_rows.append([col, METRIC_LABELS[m] + mark, " > ".join(o["order"][m])])
        parts += [markdown_table(["kbit/s", "metric", "ordering"], o_rows), ""]
    if not complexity:
        return "\n".join(parts)
    parts += [
        "## Complexity of the envelope quantizer",
        "",
        "Weighted operations (adds, multiplies, compares) to quantize one 16-dim LSF "
        "vector, the measured search time per vector (this machine, one process), and "
        f"mean PESQ-WB at {at or '–'} kbit/s and over all bitrates run.",
        "",
        markdown_table(
            [
                "config",
                "envelope",
                "ops/vector",
                "µs/vector",
                f"PESQ @ {at or '–'}",
                "PESQ (all rates)",
            ],
            cx_rows,
        ),
        "",
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------- plots


def _load_reference(name: str) -> dict[str, Any] | None:
    path = REFERENCE_DIR / name
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _paper_curves(metric: str) -> list[tuple[str, list[float], dict[str, list[float]]]]:
    """(label, bitrates, {'mean','quantile_low','quantile_high'}) of the reference papers."""
    ref = _load_reference("paper_curves.json")
    if ref is None:
        return []
    rates = [float(b) for b in ref.get("bitrates_kbps", [])]
    key = {"pesq_wb": "pesq", "psnr_db": "psnr_db"}.get(metric)
    if key is None:
        return []
    out = []
    for group, tag in (
        ("speech_vq_variants_16bit_M4", "ICASSP'23"),
        ("speech_training_methods", "NSVQ'22"),
    ):
        for label, curves in ref.get(group, {}).get(key, {}).items():
            if isinstance(curves, dict) and "mean" in curves:
                out.append((f"paper {label} ({tag})", rates, curves))
    return out


def _stored_anchors(metric: str) -> dict[str, list[tuple[float, float]]]:
    """Stored anchors that cannot run here (EVS) -> [(payload kbps, mean)], ``anchors_dev.json``."""
    ref = _load_reference("anchors_dev.json")
    key = {"pesq_wb": "pesq_wb_mean", "psnr_db": "psnr_db_mean"}.get(metric)
    if ref is None or key is None:
        return {}
    out: dict[str, list[tuple[float, float]]] = {}
    for row in ref.get("rows", []):
        if row.get("codec") == "evs" and key in row:
            x = float(row.get("payload_kbps", row["nominal_kbps"]))
            out.setdefault("evs", []).append((x, float(row[key])))
    return {k: sorted(v) for k, v in out.items()}


VARIANT_CMAPS = {"avq": "Blues", "rvq": "Oranges", "pvq": "Greens"}
METHOD_COLORS = {"kmeans": "tab:blue", "ste": "tab:orange", "nsvq": "tab:green"}
METHOD_MARKERS = {"kmeans": "o", "ste": "s", "nsvq": "^"}
ANCHOR_STYLE = {
    "opus-cbr": ("teal", "v"),
    "opus-vbr": ("purple", "D"),
    "amrwb": ("saddlebrown", "^"),
    "speex-wb": ("olive", "P"),
    "evs": ("0.4", "s"),
}
PAPER_COLORS = {"avq": "tab:blue", "rvq": "tab:orange", "pvq": "tab:green"}


def _style(name: str, variant: str | None, method: str | None) -> tuple[Any, str]:
    """Colour and marker of a config (the complexity plot)."""
    import matplotlib

    if name == DEFAULT_CONFIG:
        return "black", "*"
    if name in ANCHOR_STYLE:
        return ANCHOR_STYLE[name]
    cmap = matplotlib.colormaps[VARIANT_CMAPS.get(str(variant), "Greys")]
    shade = {"kmeans": 0.9, "ste": 0.68, "nsvq": 0.5}.get(str(method), 0.7)
    return cmap(shade), METHOD_MARKERS.get(str(method), "o")


def _series(
    cfg: Config, bitrates: Sequence[float], results: dict[str, Any], metric: str
) -> tuple[list[float], list[float], list[float], list[float]]:
    """x (nominal rate for svq, measured payload rate for anchors), mean, q025, q975."""
    xs, mean, lo, hi = [], [], [], []
    for b in config_rates(cfg, bitrates):
        st = results[cfg.name][fmt_kbps(b)]
        xs.append(st["payload_kbps_mean"] if cfg.kind == "anchor" else b)
        mean.append(st[metric]["mean"])
        lo.append(st[metric]["q025"])
        hi.append(st[metric]["q975"])
    return xs, mean, lo, hi


def _n_files(results: dict[str, Any], cfg: Config) -> int:
    return max((st["n_ok"] for st in results[cfg.name].values()), default=0)


def plot_grid(
    path: Path,
    metric: str,
    configs: Sequence[Config],
    bitrates: Sequence[float],
    results: dict[str, Any],
) -> bool:
    """The 16-bit variant x method grid: one panel per variant, one line per method.

    svq's default is drawn thin and grey in every panel for reference; the
    title gives the file count. Returns False (nothing written) without trained configs.
    """
    trained = [c for c in configs if c.kind == "svq" and c.name != DEFAULT_CONFIG and not c.given]
    if not trained:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(str(c.variant) for c in trained))
    fig, axes = plt.subplots(
        1, len(variants), figsize=(max(4.2 * len(variants), 6.0), 4.4), sharey=True, squeeze=False
    )
    default = next((c for c in configs if c.name == DEFAULT_CONFIG), None)
    paper = {name.split()[1].lower(): (r, c) for name, r, c in _paper_curves(metric)}
    n = max(_n_files(results, c) for c in trained)
    for ax, variant in zip(axes[0], variants, strict=True):
        if default is not None:
            xs, m, _, _ = _series(default, bitrates, results, metric)
            ax.plot(xs, m, "-", color="0.6", lw=1.0, label="svq default")
        for cfg in (c for c in trained if c.variant == variant):
            xs, m, lo, hi = _series(cfg, bitrates, results, metric)
            color = METHOD_COLORS.get(str(cfg.method), "0.3")
            ax.plot(xs, m, "-", marker=METHOD_MARKERS.get(str(cfg.method), "o"), ms=4,
                    color=color, lw=1.4, label=str(cfg.method))  # fmt: skip
            ax.fill_between(xs, lo, hi, color=color, alpha=0.08, lw=0)
        if variant in paper:
            rates, curves = paper[variant]
            keep = [i for i, r in enumerate(rates) if r <= 1.15 * max(bitrates)]
            ax.plot([rates[i] for i in keep], [curves["mean"][i] for i in keep], "--",
                    color="0.3", lw=1.0, label="paper")  # fmt: skip
        ax.set_title(f"{variant.upper()} 4x4 bit", fontsize=10)
        ax.set_xlabel("bitrate (kbit/s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    axes[0][0].set_ylabel(METRIC_LABELS[metric])
    fig.suptitle(
        f"{METRIC_LABELS[metric]}: envelope variant x training method\n"
        f"(mean, 2.5–97.5 % band; {n} files)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_anchors(
    path: Path,
    metrics: Sequence[str],
    configs: Sequence[Config],
    bitrates: Sequence[float],
    results: dict[str, Any],
) -> None:
    """svq's default against the live anchors, one panel per metric (anchors at their
    measured payload rate; EVS from ``anchors_dev.json`` where stored)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [c for c in configs if c.kind == "anchor" or c.name == DEFAULT_CONFIG or c.given]
    n_cols = min(2, len(metrics))
    n_rows = -(-len(metrics) // n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(5.6 * n_cols, 3.8 * n_rows + 0.6), squeeze=False
    )
    n = max((_n_files(results, c) for c in shown), default=0)
    handles: dict[str, Any] = {}
    for k, metric in enumerate(metrics):
        ax = axes[k // n_cols][k % n_cols]
        for cfg in shown:
            xs, m, lo, hi = _series(cfg, bitrates, results, metric)
            if cfg.name == DEFAULT_CONFIG:
                color, marker, label, lw = "black", "*", "svq default", 2.2
            elif cfg.given:  # --codebook configurations: their own colours, dashed
                k_given = [c.name for c in shown if c.given].index(cfg.name)
                color, marker = matplotlib.colormaps["tab10"](k_given % 10), "o"
                label, lw = f"svq {cfg.name}", 1.3
            else:
                color, marker = ANCHOR_STYLE.get(cfg.name, ("0.35", "x"))
                label, lw = cfg.name, 1.3
            (h,) = ax.plot(xs, m, "-", marker=marker, ms=5, color=color, lw=lw)
            ax.fill_between(xs, lo, hi, color=color, alpha=0.06, lw=0)
            handles.setdefault(label, h)
        for name, pts in _stored_anchors(metric).items():
            pts = [pt for pt in pts if pt[0] <= 1.15 * max(bitrates)]
            if not pts:
                continue
            color, marker = ANCHOR_STYLE[name]
            x, y = zip(*pts, strict=True)
            (h,) = ax.plot(x, y, ":", marker=marker, ms=4, color=color, lw=1.2)
            handles.setdefault(f"{name.upper()} (stored dev figures)", h)
        ax.set_title(METRIC_LABELS[metric], fontsize=10)
        ax.set_xlabel("payload bitrate (kbit/s)")
        ax.grid(alpha=0.3)
    for k in range(len(metrics), n_rows * n_cols):
        axes[k // n_cols][k % n_cols].set_visible(False)
    what = (
        "svq default against live anchors"
        if any(c.kind == "svq" for c in shown)
        else "Live anchors"
    )
    fig.suptitle(f"{what} (mean, 2.5–97.5 % band; {n} files)")
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=min(6, len(handles)),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_complexity(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Operations per vector (log x) against mean PESQ-WB, one point per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    use_at = any(math.isfinite(r["pesq_wb_mean_at"]) for r in rows)
    key = "pesq_wb_mean_at" if use_at else "pesq_wb_mean_over_bitrates"
    for r in rows:
        if r["ops_per_vector"] is None or not math.isfinite(r[key]):
            continue
        color, marker = _style(r["config"], r["variant"], r["method"])
        ax.scatter(
            r["ops_per_vector"],
            r[key],
            marker=marker,
            color=color,
            s=70,
            edgecolors="black",
            linewidths=0.5,
        )
        ax.annotate(
            r["config"],
            (r["ops_per_vector"], r[key]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("weighted operations per LSF vector")
    where = f"at {rows[0]['pesq_at_kbps']} kbit/s" if use_at and rows else "over bitrates"
    ax.set_ylabel(f"mean PESQ-WB {where}")
    ax.set_title("Envelope quantizer complexity against quality")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI


def _train_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _name_and_file(text: str) -> tuple[str, str]:
    """``NAME=FILE`` of a configuration given on the command line."""
    name, sep, file = text.partition("=")
    if not sep or not name or not file:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", name):
        raise argparse.ArgumentTypeError(f"NAME: letters, digits, '_.+-' only, got {name!r}")
    return name, file


def _given_codebook(text: str) -> tuple[str, str]:
    name, file = _name_and_file(text)
    if not Path(file).is_file() and file not in shipped_codebooks():
        raise argparse.ArgumentTypeError(f"{file}: no such codebook file or shipped name")
    return name, file


def _given_weights(text: str) -> tuple[str, str]:
    name, file = _name_and_file(text)
    if not Path(file).is_file():
        raise argparse.ArgumentTypeError(f"{file}: no such post-filter weights file")
    return name, file


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m recipes.bitrate_vs_pesq",
        description=(
            "Train 4x4-bit envelope codebooks for every VQ variant x training method, run "
            "the codec at every bitrate on every file, and report PESQ-WB, pSNR, measured "
            "bitrate and speed (CSV, JSON, Markdown, plots). Resumable."
        ),
    )
    p.add_argument(
        "--data",
        default=str(DEFAULT_MANIFEST),
        help="evaluation folder or manifest CSV (default: %(default)s)",
    )
    p.add_argument("--split", default="dev", help="manifest split of --data (default: %(default)s)")
    p.add_argument(
        "--train",
        default=str(DEFAULT_MANIFEST),
        help="training folder or manifest CSV (default: %(default)s)",
    )
    p.add_argument(
        "--train-split", default="train", help="manifest split of --train (default: %(default)s)"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--cache",
        default=None,
        help="cache folder for features and trained codebooks (default: OUT/cache)",
    )
    p.add_argument(
        "--bitrates",
        default=",".join(fmt_kbps(b) for b in BITRATES_KBPS),
        help="comma-separated bitrates in kbit/s (default: %(default)s)",
    )
    p.add_argument(
        "--variants",
        default=",".join(PAPER_VARIANTS),
        help="VQ variants to train, comma-separated; empty for none (default: %(default)s)",
    )
    p.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="training methods, comma-separated (default: %(default)s)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N files")
    p.add_argument(
        "--train-limit",
        type=int,
        default=None,
        help="train on the first N training files only (quick runs, tests)",
    )
    p.add_argument(
        "--train-option",
        type=_train_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra train_quantizer option (JSON value), e.g. steps=500; repeatable",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument(
        "--codebook",
        type=_given_codebook,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="also run the codec with this codebook file (memoryless, predictive or end to "
        "end, e.g. from recipes.envelope_sd) or shipped name, as configuration NAME; "
        "repeatable",
    )
    add_cluster_args(p, default_workers=os.cpu_count() or 1)
    p.add_argument(
        "--anchors",
        default=",".join(anchors.ANCHORS),
        help="live anchors to run, comma-separated; empty for none (default: %(default)s)",
    )
    p.add_argument("--no-anchors", action="store_true", help="run no anchors")
    p.add_argument(
        "--no-default",
        action="store_true",
        help="leave out svq's shipped configuration (for example to measure the anchors alone)",
    )
    p.add_argument("--no-opus", action="store_true", help="leave out the Opus anchors")
    p.add_argument(
        "--post-filter",
        action="store_true",
        help=f"add {PLAIN_CONFIG!r} and {ENHANCED_CONFIG!r}: the shipped configuration decoded "
        "without and with the trained post-filter at every bitrate (enhance=False / True)",
    )
    p.add_argument(
        "--post-filter-weights",
        type=_given_weights,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="also run the shipped configuration decoded with these post-filter weights "
        "(from recipes.train_postfilter) at every bitrate, as configuration NAME; repeatable "
        f"(beside --post-filter's {ENHANCED_CONFIG!r}, a candidate against the shipped weights)",
    )
    p.add_argument(
        "--metrics",
        default=",".join(METRICS),
        help="metrics, comma-separated, from %(default)s (ViSQOL takes ~13 s per file and cell)",
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="recompute cells that failed in an earlier run"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _validate(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    try:
        args.bitrates = [mode_for(b).bitrate_kbps for b in parse_floats(args.bitrates)]
    except (ValueError, ParameterError) as exc:
        p.error(f"--bitrates: {exc}")
    args.variants = parse_names(args.variants)
    args.methods = parse_names(args.methods)
    args.anchors = [] if args.no_anchors else parse_names(args.anchors)
    if args.no_opus:
        args.anchors = [a for a in args.anchors if not a.startswith("opus")]
    for a in args.anchors:
        if a not in anchors.ANCHORS:
            p.error(f"--anchors: {a!r} is not one of {', '.join(anchors.ANCHORS)}")
    args.metrics = parse_names(args.metrics)
    for m in args.metrics:
        if m not in METRICS:
            p.error(f"--metrics: {m!r} is not one of {', '.join(METRICS)}")
    if "pesq" not in args.metrics:
        p.error("--metrics: pesq is required (the other metrics are compared with it)")
    from codec.quantizers import VARIANTS

    for v in args.variants:
        if v not in VARIANTS or v == "vq":
            p.error(f"--variants: {v!r} is not one of avq, rvq, pvq")
    for m in args.methods:
        if m not in METHODS:
            p.error(f"--methods: {m!r} is not one of {', '.join(METHODS)}")
    if not args.bitrates:
        p.error("--bitrates: give at least one bitrate")
    names = [n for n, _ in [*args.codebook, *args.post_filter_weights]]
    clash = set(names) & (
        {DEFAULT_CONFIG, PLAIN_CONFIG, ENHANCED_CONFIG, *args.anchors}
        | {f"{v}-{m}" for v in args.variants for m in args.methods}
    )
    if len(set(names)) != len(names) or clash:
        p.error(
            "--codebook / --post-filter-weights: configuration names must be unique and new: "
            + ", ".join(names)
        )
    check_cluster_args(args, p)
    for name in ("limit", "train_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")


def main(argv: list[str] | None = None) -> int:
    """Run the recipe; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(args, parser)
    started = time.perf_counter()
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out / "cache"
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m recipes.bitrate_vs_pesq " + shlex.join(argv_list)
    try:
        files = audio_files(args.data, split=args.split, limit=args.limit)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)  # only once the data is there
    write_json(out / "config.json", {"argv": argv_list, "command": command, "args": vars(args)})
    code_fp = codec_fingerprint()
    timing_lsf = np.concatenate([lsf_features(*read_audio(f)) for f in files[:2]], axis=0)
    try:
        configs = [] if args.no_default else [default_config(code_fp, timing_lsf, args.bitrates)]
    except ParameterError as exc:
        print(f"error: the codec's default configuration: {exc}", file=sys.stderr)
        return 2
    if args.post_filter or args.post_filter_weights:
        # the default's config (timed once), also when --no-default leaves it out
        base = configs[0] if configs else default_config(code_fp, timing_lsf, args.bitrates)
    if args.post_filter:
        configs.append(replace(base, name=PLAIN_CONFIG, enhance=False, given=True))
        configs.append(replace(base, name=ENHANCED_CONFIG, enhance=True, given=True))
    for name, file in args.post_filter_weights:
        path = str(Path(file).resolve())
        try:
            w = _weights(path)
        except CodecError as exc:
            print(f"error: --post-filter-weights: {exc}", file=sys.stderr)
            return 2
        fp = settings_hash([base.fingerprint, w.sha256], length=16)
        configs.append(
            replace(base, name=name, enhance=True, given=True, weights=path, fingerprint=fp)
        )
    try:
        configs += train_configs(args, out, cache, code_fp, timing_lsf)
    except ParameterError as exc:
        print(f"error: training: {exc}", file=sys.stderr)
        return 2
    try:
        configs += given_configs(args.codebook, out, code_fp, timing_lsf)
    except CodecError as exc:
        print(f"error: --codebook: {exc}", file=sys.stderr)
        return 2
    configs += anchor_configs(args.anchors, args.bitrates)
    metrics = tuple(available_metrics(args.metrics))
    if "pesq_wb" not in metrics:
        print("error: PESQ needs the pesq package: pip install 'svq[eval]'", file=sys.stderr)
        return 2

    cells = [
        Cell(str(f.resolve()), display_name(f, args.data), cfg, b, metrics)
        for f in files
        for cfg in configs
        for b in config_rates(cfg, args.bitrates)
    ]
    log = out / CELLS
    done = load_cells(log)

    def reusable(c: Cell) -> bool:
        row = done.get(cell_key(c.path, c.config.name, c.bitrate_kbps))
        return (
            row is not None
            and row.get("fingerprint") == c.config.fingerprint
            and not (args.retry_failed and row.get("error"))
            and (bool(row.get("error")) or all(row.get(m) is not None for m in c.metrics))
        )

    todo = [c for c in cells if not reusable(c)]
    n_reused = len(cells) - len(todo)
    print(
        f"{len(files)} files x {len(configs)} configs x their bitrates = "
        f"{len(cells)} cells: {n_reused} done before, {len(todo)} to run "
        f"on {describe(args)}",
        file=sys.stderr,
    )
    t_cells = time.perf_counter()
    try:
        run_cells(
            todo,
            log,
            workers=args.workers,
            scheduler=args.scheduler,
            worker_memory=args.worker_memory,
            progress=not args.quiet,
        )
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cells_s = time.perf_counter() - t_cells

    done = load_cells(log)
    rows = []
    for c in cells:
        row = dict(done[cell_key(c.path, c.config.name, c.bitrate_kbps)])
        row["file"] = c.name
        for k in (
            *metrics,
            "measured_kbps",
            "payload_kbps",
            "encode_s",
            "decode_s",
            "duration_s",
        ):
            row[k] = _num(row.get(k))
        rows.append(row)
    write_per_file_csv(out / "per_file.csv", rows)
    results = summarize(rows, configs, args.bitrates, metrics)
    agree = agreement(rows, configs, args.bitrates, metrics)
    complexity = complexity_rows(configs, results, args.bitrates)
    n_failed = sum(bool(r["error"]) for r in rows)
    write_json(
        out / "summary.json",
        {
            "command": command,
            "codec_version": codec.__version__,
            "codec_fingerprint": code_fp,
            "bitrates_kbps": args.bitrates,
            "configs": [asdict(c) for c in configs],
            "n_files": len(files),
            "n_cells": len(cells),
            "n_failed": n_failed,
            "cells_computed": len(todo),
            "cells_reused": n_reused,
            "cells_wall_s": cells_s,
            "wall_s": time.perf_counter() - started,
            "metrics": list(metrics),
            "results": results,
            "agreement": agree,
            "complexity": complexity,
        },
    )
    for m in metrics:
        plot_grid(out / f"grid_{m}.png", m, configs, args.bitrates, results)
    plot_anchors(out / "anchors.png", metrics, configs, args.bitrates, results)
    plot_complexity(out / "complexity.png", complexity)
    md = results_markdown(
        command, configs, args.bitrates, results, complexity, len(files), metrics, agree
    )
    (out / "results.md").write_text(md)
    print(md)
    if n_failed:
        print(
            f"warning: {n_failed} of {len(cells)} cells failed (see per_file.csv)", file=sys.stderr
        )
    print(f"wrote {out} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
