"""Upper bound on a decoder post-filter: oracle per-bin gains on the decoded MDCT.

Design question for a planned post-filter: how much PESQ-WB could a gain per
MDCT bin (a mask), applied to the decoder's coefficients before synthesis,
gain at most? This recipe answers it with ORACLE masks, computed from the true
coefficients X that the encoder saw (the MDCT of the pre-filtered,
pre-emphasised signal, captured in the encoder's TCX stage) and the decoded
ones X^. The decoder cannot know X, so the numbers are an upper bound for a
post-filter of that form, not a codec feature; the bitstream is unchanged.

Masks (``--masks``, default all):

* ``none``: no change, the codec as shipped (the same output as a plain decode);
* ``bin``: per bin, g = clip(|X| / |X^|, 0, 2), the sign of X^ kept (no change
  where X^ is 0);
* ``band8``, ``band20``: per band of 8 / 20 bins, the energy of X matched,
  g = min(sqrt(E(X) / E(X^)), 4) (no change where E(X^) is 0).

For every file of the evaluation data (default: the dev split of the shared
speech set), every bitrate and every mask: encode once with the codec, decode
with the mask, and score against the 16 kHz reference with PESQ-WB and pSNR
(and ViSQOL v3 speech mode with ``--visqol``). Writes ``per_file.csv``,
``summary.md`` (mean per mask and bitrate, the command line, the codec version
and the number of files) and ``summary.json`` to ``--out``.

Example (the first 12 dev files, a few minutes on 2 cores)::

    python -m recipes.postfilter_bound --out out/postfilter_bound --limit 12 --quiet
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from recipes._common import (
    DEFAULT_MANIFEST,
    audio_files,
    codec_fingerprint,
    display_name,
    fmt_kbps,
    fmt_value,
    markdown_table,
    missing_data,
    parse_floats,
    parse_names,
    summary_stats,
    write_json,
)
from recipes.runner import add_cluster_args, check_cluster_args, run_units

FloatArray = npt.NDArray[np.float64]

BIN_GAIN_MAX = 2.0
BAND_GAIN_MAX = 4.0
MASKS = ("none", "bin", "band8", "band20")
METRICS = ("pesq_wb", "psnr_db", "visqol")


# ------------------------------------------------------------------ oracle masks


def bin_mask(clean: FloatArray, decoded: FloatArray) -> FloatArray:
    """``decoded`` scaled per bin to the clean magnitude (gain clipped to [0, 2])."""
    mag = np.abs(decoded)
    nz = mag > 0
    g = np.ones_like(decoded)
    g[nz] = np.clip(np.abs(clean[nz]) / mag[nz], 0.0, BIN_GAIN_MAX)
    return np.asarray(decoded * g, dtype=np.float64)


def band_mask(clean: FloatArray, decoded: FloatArray, width: int) -> FloatArray:
    """``decoded`` scaled per band of ``width`` bins to the clean energy (gain <= 4)."""
    n, bins = decoded.shape
    edges = np.arange(0, bins, width)
    e_clean = np.add.reduceat(clean**2, edges, axis=1)
    e_dec = np.add.reduceat(decoded**2, edges, axis=1)
    g = np.ones_like(e_dec)
    nz = e_dec > 0
    g[nz] = np.minimum(np.sqrt(e_clean[nz] / e_dec[nz]), BAND_GAIN_MAX)
    sizes = np.diff(np.append(edges, bins))
    return np.asarray(decoded * np.repeat(g, sizes, axis=1), dtype=np.float64)


ORACLES: dict[str, Callable[[FloatArray, FloatArray], FloatArray] | None] = {
    "none": None,
    "bin": bin_mask,
    "band8": functools.partial(band_mask, width=8),
    "band20": functools.partial(band_mask, width=20),
}


# ------------------------------------------------------------------ TCX hooks

# Per-process state of the hooks, reset for every (file, bitrate): the clean
# coefficients captured by the encoder (one array per coded block, in order)
# the mask the decoder applies, and the coefficients it passed to synthesis
# (frame indices and array per decoded block). Outside :func:`oracle_session` the hooks
# pass everything through unchanged.
_STATE: dict[str, Any] = {
    "active": False,
    "blocks": [],
    "clean": None,
    "mask": None,
    "decoded": [],
}


def install_hooks() -> None:
    """Wrap ``TCX.encode`` and ``TCX.decode`` once per process (idempotent)."""
    from codec.residual.tcx import TCX

    if getattr(TCX.encode, "_oracle_hook", False):
        return
    encode, decode = TCX.encode, TCX.decode

    @functools.wraps(encode)
    def encode_hook(self: TCX, coefs: FloatArray, *args: Any, **kwargs: Any) -> list[bytes]:
        if _STATE["active"]:
            _STATE["blocks"].append(np.array(coefs, dtype=np.float64, copy=True))
        return encode(self, coefs, *args, **kwargs)

    @functools.wraps(decode)
    def decode_hook(self: TCX, frames: Any, *args: Any, **kwargs: Any) -> Any:
        coefs, pitch = decode(self, frames, *args, **kwargs)
        if not _STATE["active"]:
            return coefs, pitch
        index = kwargs.get("frame_index")
        index = np.arange(len(frames)) if index is None else np.asarray(index, dtype=np.int64)
        fn = ORACLES[_STATE["mask"]]
        if fn is not None:
            coefs = fn(_STATE["clean"][index], coefs)
        _STATE["decoded"].append((index, coefs))
        return coefs, pitch

    setattr(encode_hook, "_oracle_hook", True)  # noqa: B010 - a marker on a function
    TCX.encode = encode_hook  # type: ignore[method-assign]
    TCX.decode = decode_hook  # type: ignore[method-assign]


@contextlib.contextmanager
def oracle_session() -> Iterator[dict[str, Any]]:
    """Activate the hooks with fresh state for one (file, bitrate); reset afterwards."""
    install_hooks()
    _STATE.update(active=True, blocks=[], clean=None, mask=None, decoded=[])
    try:
        yield _STATE
    finally:
        _STATE.update(active=False, blocks=[], clean=None, mask=None, decoded=[])


class OracleRun(NamedTuple):
    """One file at one bitrate: clean coefficients, and per mask the output."""

    clean: FloatArray
    """MDCT coefficients the encoder coded, (frames, 320)."""
    audio: dict[str, FloatArray]
    """Decoded 16 kHz signal per mask."""
    coefs: dict[str, FloatArray]
    """Coefficients the decoder synthesized per mask (after the mask), (frames, 320)."""


def encode_decode(x: FloatArray, rate: float, masks: Sequence[str]) -> OracleRun:
    """Encode ``x`` (16 kHz) once; decode it under every mask."""
    import codec
    from codec.bitstream import read_header

    with oracle_session() as state:
        data = codec.encode(x, 16000, rate)
        clean = np.concatenate(state["blocks"]) if state["blocks"] else np.zeros((0, 320))
        frame_count = read_header(data).frame_count
        if frame_count != clean.shape[0]:  # each frame's clean coefficients, once, in order
            raise RuntimeError(f"captured {clean.shape[0]} frames, the stream has {frame_count}")
        state["clean"] = clean
        audio, coefs = {}, {}
        for mask in masks:
            state.update(mask=mask, decoded=[])
            audio[mask], _ = codec.decode(data)
            coefs[mask] = np.zeros_like(clean)
            for index, block in state["decoded"]:
                coefs[mask][index] = block
    return OracleRun(clean, audio, coefs)


def run_cell(job: tuple[str, str, float, tuple[str, ...], bool]) -> list[dict[str, Any]]:
    """Encode one file at one bitrate; decode and score it under every mask."""
    path, name, rate, masks, with_visqol = job
    from codec.audio import read_audio, to_mono_16k
    from codec.metrics import pesq_wb, psnr, visqol_speech

    x = to_mono_16k(*read_audio(path))
    decoded = encode_decode(x, rate, masks).audio
    rows = []
    for mask in masks:
        y = decoded[mask]
        row: dict[str, Any] = {"file": name, "bitrate_kbps": rate, "mask": mask}
        scorers: list[tuple[str, Callable[..., float]]] = [("pesq_wb", pesq_wb), ("psnr_db", psnr)]
        if with_visqol:
            scorers.append(("visqol", visqol_speech))
        for metric, fn in scorers:
            try:
                row[metric] = fn(x, y, 16000)
            except Exception as exc:  # noqa: BLE001 - a metric failure is counted, not fatal
                row[metric] = None
                row[f"{metric}_error"] = str(exc)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ output


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Statistics per mask, bitrate and metric."""
    cells: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        cells.setdefault(r["mask"], {}).setdefault(fmt_kbps(r["bitrate_kbps"]), []).append(r)
    return {
        mask: {
            rate: {m: summary_stats(c.get(m) for c in rs) | {"n": len(rs)} for m in METRICS}
            for rate, rs in by_rate.items()
        }
        for mask, by_rate in cells.items()
    }


def summary_markdown(
    summary: dict[str, Any],
    masks: Sequence[str],
    rates: Sequence[float],
    *,
    command: str,
    version: str,
    fingerprint: str,
    n_files: int,
) -> str:
    """Mean PESQ-WB and pSNR (and ViSQOL when scored) per mask and bitrate."""
    labels = {
        "none": "none (codec as shipped)",
        "bin": "bin (per-bin gain <= 2)",
        "band8": "band8 (8-bin energy match)",
        "band20": "band20 (20-bin energy match)",
    }
    parts = [
        "# Post-filter oracle bound (per-bin / per-band gains on the decoded MDCT)",
        "",
        "Oracle masks from the encoder's clean MDCT coefficients: an upper bound, "
        "the decoder cannot compute them.",
        "",
        f"- command: `{command}`",
        f"- codec: svq {version} (fingerprint {fingerprint})",
        f"- files: {n_files}",
        "",
    ]
    names = {"pesq_wb": "PESQ-WB", "psnr_db": "pSNR (dB)", "visqol": "ViSQOL"}
    for metric in METRICS:
        table = []
        for mask in masks:
            cells = []
            for rate in rates:
                st = summary.get(mask, {}).get(fmt_kbps(rate), {}).get(metric)
                cells.append(fmt_value(st["mean"] if st else None, 2))
            table.append([labels.get(mask, mask), *cells])
        if all(c == "–" for r in table for c in r[1:]):
            continue
        parts += [f"## {names[metric]}, mean", ""]
        parts.append(markdown_table(["mask", *[f"{fmt_kbps(r)} kbit/s" for r in rates]], table))
        parts.append("")
    return "\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.postfilter_bound",
        description="Upper bound on a decoder post-filter: apply oracle per-bin or per-band "
        "gains, computed from the encoder's clean MDCT coefficients, to the decoded "
        "coefficients, and report PESQ-WB and pSNR per mask and bitrate. The decoder cannot "
        "compute these gains; the numbers bound what such a post-filter could gain.",
    )
    p.add_argument("--data", default=str(DEFAULT_MANIFEST), help="folder or manifest CSV")
    p.add_argument("--split", default="dev", help="manifest split (default: dev)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bitrates", default="8,13.2,24.4", help="kbit/s list (default: %(default)s)")
    p.add_argument("--masks", default=",".join(MASKS), help="from: " + ",".join(MASKS))
    p.add_argument("--limit", type=int, default=None, help="first N files only")
    add_cluster_args(p, default_workers=2)
    p.add_argument("--visqol", action="store_true", help="also score ViSQOL (slow)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        rates = parse_floats(args.bitrates)
    except ValueError as exc:
        p.error(f"--bitrates: {exc}")
    if not rates:
        p.error("--bitrates: give at least one bitrate")
    masks = parse_names(args.masks)
    for m in masks:
        if m not in MASKS:
            p.error(f"--masks: unknown mask {m!r} (choose from {', '.join(MASKS)})")
    if not masks:
        p.error("--masks: give at least one mask")
    problem = missing_data(args.data, flag="--data", needs="a folder or manifest .csv of speech")
    if problem:
        p.error(problem)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be >= 1")
    check_cluster_args(args, p)
    files = audio_files(args.data, split=args.split, limit=args.limit)
    if not files:
        p.error(f"--data {args.data}: no audio files (split {args.split!r})")

    from tqdm import tqdm

    import codec

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(f), display_name(f, args.data), rate, tuple(masks), args.visqol)
        for rate in rates
        for f in files
    ]
    it = run_units(
        run_cell,
        jobs,
        workers=min(args.workers, len(jobs)),
        scheduler=args.scheduler,
        worker_memory=args.worker_memory,
    )
    rows: list[dict[str, Any]] = []
    for cell in tqdm(it, total=len(jobs), disable=args.quiet, desc="file x bitrate"):
        rows += cell
    rows.sort(key=lambda r: (masks.index(r["mask"]), rates.index(r["bitrate_kbps"]), r["file"]))

    columns = ["file", "bitrate_kbps", "mask", "pesq_wb", "psnr_db"]
    if args.visqol:
        columns.append("visqol")
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    (out / "per_file.csv").write_text(buf.getvalue())

    command = shlex.join(
        ["python", "-m", "recipes.postfilter_bound", *(sys.argv[1:] if argv is None else argv)]
    )
    fingerprint = codec_fingerprint()
    summary = summarize(rows)
    failures = sum(1 for r in rows for m in METRICS if f"{m}_error" in r)
    write_json(
        out / "summary.json",
        {
            "command": command,
            "codec_version": codec.__version__,
            "codec": fingerprint,
            "n_files": len(files),
            "bitrates": rates,
            "masks": masks,
            "metric_failures": failures,
            "summary": summary,
        },
    )
    md = summary_markdown(
        summary,
        masks,
        rates,
        command=command,
        version=codec.__version__,
        fingerprint=fingerprint,
        n_files=len(files),
    )
    (out / "summary.md").write_text(md)
    if not args.quiet:
        print(md)
    return 0


if __name__ == "__main__":
    # run the importable module's main, so that Dask pickles run_cell by reference:
    # a copy of this __main__ sent by value would carry its own _STATE, which the
    # hooks installed by an earlier unit in the worker would not see
    from recipes.postfilter_bound import main as _main

    sys.exit(_main())
