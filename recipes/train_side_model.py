"""Train the side-field tables of the format (since format 4; :mod:`codec.residual.sidemodel`).

Every ``--stride``-th file of the train split is encoded at every bitrate with
format 3's residual coder (``Tools(side_model=False, fill=False)``: side
fields as raw bits, the rate loop's left-over bits unspent), the fields of
every frame are read back from the stream, and their counts per context become
the frequency tables (:func:`codec.residual.sidemodel.tables_from_counts`).
With the defaults this reproduces the shipped tables exactly (their
``modes``; the file's hash differs only in its ``trained_on`` note). Writes
``OUT/side-model.json`` and ``OUT/counts.json``; ``--install`` copies the
tables to ``codec/data/side-model.json``, the format's tables: installing
different tables changes the format, so the test that pins their hash fails
until the format version is raised.

Usage::

    python -m recipes.train_side_model --out out/side_model
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import codec
from codec.audio import read_audio
from codec.bitstream import FORMAT_VERSION, check_file
from codec.modes import BITRATES_KBPS, mode_for
from codec.pipeline import Tools, residual_coder
from codec.registry import find_envelope
from codec.residual import sidemodel
from recipes._common import DEFAULT_MANIFEST, audio_files, missing_data, parse_floats

FORMAT_TABLES = sidemodel.SHIPPED_PATH


def _counts_of(job: tuple[str, float]) -> dict[str, list[list[int]]]:
    """Counts per (context, symbol) of one file's frames at one bitrate."""
    path, bitrate = job
    x, sr = read_audio(path)
    raw = Tools(side_model=False, fill=False)
    data = codec.encode(x, sr, bitrate, tools=raw)
    header, frames, _ = check_file(data)
    mode = mode_for(bitrate)
    tcx = residual_coder(bitrate, raw)
    env = find_envelope(header.codebook_hash, ())
    _, fields, _ = tcx.read_side(frames, env.field_bits)
    cb = mode.coded_bins
    out: dict[str, list[list[int]]] = {}
    on = fields["pitch_on"] > 0
    for f in sidemodel.FIELDS:
        ctx = sidemodel.context_of(f, fields, cb)
        sel = on if f in ("pitch_lag", "pitch_gain") else np.ones(len(on), dtype=bool)
        c = np.zeros((sidemodel.n_contexts(f), sidemodel.n_symbols(f, cb)), dtype=np.int64)
        np.add.at(c, (ctx[sel], fields[f][sel]), 1)
        out[f] = c.tolist()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m recipes.train_side_model",
        description="Train the side-field tables of format 4 on the train split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--data", default=str(DEFAULT_MANIFEST), help="manifest .csv or folder of audio"
    )
    ap.add_argument("--split", default="train", help="manifest split to train on")
    ap.add_argument("--stride", type=int, default=3, help="use every N-th file")
    ap.add_argument("--bitrates", default=",".join(f"{b:g}" for b in BITRATES_KBPS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="out/side_model", help="output folder")
    ap.add_argument("--install", action="store_true", help="copy the tables to codec/data")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    problem = missing_data(args.data, flag="--data", needs="the train split of the speech data")
    if problem:
        print(f"train_side_model: error: {problem}", file=sys.stderr)
        return 2
    if args.stride < 1:
        print("train_side_model: error: --stride must be at least 1", file=sys.stderr)
        return 2
    bitrates = [mode_for(b).bitrate_kbps for b in parse_floats(args.bitrates)]
    files = audio_files(args.data, split=args.split)[:: args.stride]
    if not files:
        print(f"train_side_model: error: no {args.split!r} files in {args.data}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    jobs = [(str(f), b) for b in bitrates for f in files]
    totals: dict[str, dict[str, np.ndarray]] = {}
    t0 = time.time()
    bar = tqdm(total=len(jobs), desc="encode train", unit="item", disable=args.quiet)
    with ProcessPoolExecutor(max(1, args.workers)) as ex:
        for (_, b), counts in zip(jobs, ex.map(_counts_of, jobs, chunksize=4), strict=True):
            key = f"{b:g}"
            acc = totals.setdefault(key, {})
            for f, c in counts.items():
                arr = np.asarray(c, dtype=np.int64)
                acc[f] = acc[f] + arr if f in acc else arr
            bar.update()
    bar.close()
    tables = {
        key: sidemodel.tables_from_counts(acc, mode_for(float(key)).coded_bins)
        for key, acc in totals.items()
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT_VERSION,
        "total_bits": sidemodel.TOTAL_BITS,
        "trained_on": f"{args.split} split, 1 file in {args.stride} ({len(files)} files)",
        "modes": tables,
    }
    path = out / "side-model.json"
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    counts_doc = {k: {f: c.tolist() for f, c in acc.items()} for k, acc in totals.items()}
    (out / "counts.json").write_text(json.dumps(counts_doc) + "\n", encoding="utf-8")
    # what the tables save, on the training counts (ideal bits per frame)
    for key, acc in totals.items():
        model = sidemodel.ModelSide(tables[key], mode_for(float(key)).coded_bins)
        frames = int(np.sum(acc["gain"]))
        bits = 0.0
        for f in model.fields:
            bits += float(np.sum(np.asarray(acc[f]) * model.symbol_bits(f)))
        raw = sum(sidemodel.RAW_BITS[f] * int(np.sum(acc[f])) for f in sidemodel.FIELDS)
        print(
            f"{key:>5} kbit/s: {frames} frames, side fields {raw / frames:.2f} -> "
            f"{bits / frames:.2f} bits/frame"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"wrote {path} (sha256 {digest}) in {time.time() - t0:.0f} s")
    if args.install:
        shutil.copyfile(path, FORMAT_TABLES)
        print(f"installed {FORMAT_TABLES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
