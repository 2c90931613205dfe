"""Ablation of the residual coder's tools: each on and off, every bitrate, every file.

For every evaluation file, every configuration of :class:`codec.pipeline.Tools`
and every bitrate: encode, decode with the same switches, and score the output
against the 16 kHz reference with PESQ-WB and pSNR (and ViSQOL v3 speech mode
with ``--visqol``). Writes ``per_file.csv``, ``summary.json`` and
``results.md`` (mean and median per configuration and bitrate) to ``--out``.
Cells are cached in ``cells.jsonl`` per codec version, so an interrupted run
resumes where it stopped.

Configurations (``--configs``): ``none`` (format-1 coder: full band, no pitch
tool, no harmonic model), ``pitch`` (pitch pre-/post-filter only), ``band``
(coded band + noise top band only), ``pitch+band``, ``all-raw-side`` (both,
plus the harmonic model of the entropy coder: format 3's coder),
``all-no-fill`` (that with the side fields range-coded under the trained
tables), ``all-long`` (also spending the bits the rate loop leaves: format 5's
coder), ``all-flat`` (also short blocks in transient frames: format 6's
coder), ``all-nu-fill`` (also the top band's level per short block in
transient frames: format 7's coder) and ``all`` (the codec as shipped: also
the noise filler's level per bin from the entropy model, format 8). Every
configuration but ``all`` fills the zeroed bins at one level per frame times
the model shape, as formats 1-7 did. The first four write the side fields
as raw bits and leave the rate loop's slack as padding, as format 3 did; none
but ``all-flat`` and ``all`` has short blocks.

Example (all of dev, about 20 min on 2 cores without ViSQOL)::

    python -m recipes.residual_ablation --out out/ablation --workers 2
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recipes._common import (
    DEFAULT_MANIFEST,
    audio_files,
    codec_fingerprint,
    display_name,
    fmt_kbps,
    fmt_value,
    markdown_table,
    parse_floats,
    parse_names,
    summary_stats,
    write_json,
)
from recipes.runner import add_cluster_args, check_cluster_args, run_units

CONFIGS = {
    "none": {
        "pitch": False,
        "band_split": False,
        "harmonic": False,
        "side_model": False,
        "fill": False,
        "short_blocks": False,
        "model_fill": False,
    },
    "pitch": {
        "pitch": True,
        "band_split": False,
        "harmonic": False,
        "side_model": False,
        "fill": False,
        "short_blocks": False,
        "model_fill": False,
    },
    "band": {
        "pitch": False,
        "band_split": True,
        "harmonic": False,
        "side_model": False,
        "fill": False,
        "short_blocks": False,
        "model_fill": False,
    },
    "pitch+band": {
        "pitch": True,
        "band_split": True,
        "harmonic": False,
        "side_model": False,
        "fill": False,
        "short_blocks": False,
        "model_fill": False,
    },
    "all-raw-side": {
        "pitch": True,
        "band_split": True,
        "harmonic": True,
        "side_model": False,
        "fill": False,
        "short_blocks": False,
        "model_fill": False,
    },
    "all-no-fill": {
        "pitch": True,
        "band_split": True,
        "harmonic": True,
        "fill": False,
        "short_blocks": False,
        "model_fill": False,
    },
    "all-long": {
        "pitch": True,
        "band_split": True,
        "harmonic": True,
        "short_blocks": False,
        "model_fill": False,
    },
    "all-flat": {
        "pitch": True,
        "band_split": True,
        "harmonic": True,
        "top_shape": False,
        "model_fill": False,
    },
    "all-nu-fill": {"pitch": True, "band_split": True, "harmonic": True, "model_fill": False},
    "all": {"pitch": True, "band_split": True, "harmonic": True, "side_model": True},
}
METRICS = ("pesq_wb", "psnr", "visqol")


def run_cell(job: tuple[str, str, str, float, bool]) -> dict[str, Any]:
    """Encode, decode and score one (file, config, bitrate) cell."""
    path, name, config, rate, with_visqol = job
    import codec
    from codec.audio import read_audio, to_mono_16k
    from codec.metrics import pesq_wb, psnr, visqol_speech
    from codec.pipeline import Tools

    row: dict[str, Any] = {"file": name, "config": config, "kbps": rate}
    x = to_mono_16k(*read_audio(path))
    tools = Tools(**CONFIGS[config])
    y, _ = codec.decode(codec.encode(x, 16000, rate, tools=tools), tools=tools)
    for metric, fn in (("pesq_wb", pesq_wb), ("psnr", psnr)):
        try:
            row[metric] = fn(x, y, 16000)
        except Exception as exc:  # noqa: BLE001 - a metric failure is counted, not fatal
            row[metric] = None
            row[f"{metric}_error"] = str(exc)
    row["visqol"] = visqol_speech(x, y, 16000) if with_visqol else None
    return row


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Statistics per configuration, bitrate and metric."""
    out: dict[str, Any] = {}
    for r in rows:
        out.setdefault(r["config"], {}).setdefault(fmt_kbps(r["kbps"]), []).append(r)
    return {
        config: {
            rate: {m: summary_stats(c.get(m) for c in cells) | {"n": len(cells)} for m in METRICS}
            for rate, cells in by_rate.items()
        }
        for config, by_rate in out.items()
    }


def results_markdown(summary: dict[str, Any], configs: Sequence[str], rates: Sequence[float]):
    """One table per metric: mean (median) per configuration and bitrate."""
    labels = {
        "none": "none (full band, no pitch tool)",
        "pitch": "+ pitch pre-/post-filter",
        "band": "+ coded band / noise top band",
        "pitch+band": "pitch + band",
        "all-raw-side": "pitch + band + harmonic model (format 3)",
        "all-no-fill": "+ side-field tables (format 4)",
        "all": "+ left-over bits spent (shipped)",
    }
    parts = ["# Residual-coder ablation", ""]
    for metric, digits in (("pesq_wb", 2), ("visqol", 2), ("psnr", 2)):
        rows = []
        for config in configs:
            cells = []
            for rate in rates:
                st = summary.get(config, {}).get(fmt_kbps(rate), {}).get(metric)
                cells.append(
                    f"{fmt_value(st['mean'], digits)} ({fmt_value(st['median'], digits)})"
                    if st
                    else "–"
                )
            rows.append([labels.get(config, config), *cells])
        if all(c == "– (–)" for r in rows for c in r[1:]):
            continue
        parts += [f"## {metric}, mean (median)", ""]
        parts.append(markdown_table(["tools", *[f"{fmt_kbps(r)} kbit/s" for r in rates]], rows))
        parts.append("")
    return "\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.residual_ablation",
        description="Switch each residual-coder tool on and off at every bitrate on every "
        "file, and report PESQ-WB, pSNR (and ViSQOL). Resumable.",
    )
    p.add_argument("--data", default=str(DEFAULT_MANIFEST), help="folder or manifest CSV")
    p.add_argument("--split", default="dev", help="manifest split (default: dev)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bitrates", default="8,9.6,13.2,16.4,24.4,32", help="kbit/s list")
    p.add_argument("--configs", default=",".join(CONFIGS), help="from: " + ",".join(CONFIGS))
    p.add_argument("--limit", type=int, default=None, help="first N files only")
    add_cluster_args(p, default_workers=2)
    p.add_argument("--visqol", action="store_true", help="also score ViSQOL (slow)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    rates = parse_floats(args.bitrates)
    configs = parse_names(args.configs)
    for c in configs:
        if c not in CONFIGS:
            p.error(f"unknown configuration {c!r} (choose from {', '.join(CONFIGS)})")
    if not Path(args.data).exists():
        p.error(f"evaluation data not found: {args.data} (the dev split of ../shared/data)")
    files = audio_files(args.data, split=args.split, limit=args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = codec_fingerprint()
    cache_path = out / "cells.jsonl"
    done: dict[tuple[str, str, float], dict[str, Any]] = {}
    if cache_path.exists():
        for line in cache_path.read_text().splitlines():
            r = json.loads(line)
            usable = r.get("codec") == fingerprint and (r["visqol"] is not None or not args.visqol)
            if usable:
                done[(r["file"], r["config"], r["kbps"])] = r
    jobs = [
        (str(f), display_name(f, args.data), c, rate, args.visqol)
        for c in configs
        for rate in rates
        for f in files
        if (display_name(f, args.data), c, rate) not in done
    ]
    rows = [
        r
        for r in done.values()
        if r["config"] in configs
        and r["kbps"] in rates
        and r["file"] in {display_name(f, args.data) for f in files}
    ]
    from tqdm import tqdm

    check_cluster_args(args, p)
    it = run_units(
        run_cell,
        jobs,
        workers=min(args.workers, max(len(jobs), 1)),
        scheduler=args.scheduler,
        worker_memory=args.worker_memory,
    )
    with cache_path.open("a") as cache:
        for r in tqdm(it, total=len(jobs), disable=args.quiet, desc="cells"):
            r["codec"] = fingerprint
            cache.write(json.dumps(r) + "\n")
            cache.flush()
            rows.append(r)
    rows.sort(key=lambda r: (configs.index(r["config"]), rates.index(r["kbps"]), r["file"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["file", "config", "kbps", *METRICS], extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    (out / "per_file.csv").write_text(buf.getvalue())
    summary = summarize(rows)
    write_json(out / "summary.json", {"codec": fingerprint, "summary": summary})
    md = results_markdown(summary, configs, rates)
    (out / "results.md").write_text(md)
    if not args.quiet:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
