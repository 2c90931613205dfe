"""Command line interface: ``svq <command> ...`` (also ``python -m codec``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from codec.errors import CodecError

__all__ = ["main", "build_parser"]


def _cmd_features(args: argparse.Namespace) -> int:
    from codec.features import collection_features

    out = Path(args.out) if args.out else None
    fs = collection_features(args.source, out=out, split=args.split, progress=not args.quiet)
    lsf = fs.lsf
    hz = lsf * 16000.0 / (2.0 * np.pi)
    print(f"files: {len(fs.files)}  frames: {lsf.shape[0]}  ({lsf.shape[0] * 0.02:.1f} s)")
    print("LSF   mean Hz   std Hz    min Hz    max Hz")
    for i in range(lsf.shape[1]):
        col = hz[:, i]
        print(f"{i + 1:3d} {col.mean():9.1f} {col.std():8.1f} {col.min():9.1f} {col.max():9.1f}")
    gaps = np.diff(lsf, axis=1).min()
    print(f"smallest LSF gap: {gaps * 16000 / (2 * np.pi):.1f} Hz; all ordered: {bool(gaps > 0)}")
    if out is not None:
        print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``svq``."""
    parser = argparse.ArgumentParser(
        prog="svq",
        description="svq: a wideband speech codec with trainable vector-quantized envelopes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "features",
        help="LSF matrix of a folder, manifest or file of audio",
        description="Compute the 16-dim LSF vector of every 20 ms frame; print a summary.",
    )
    p.add_argument("source", help="folder of audio, manifest .csv, or one audio file")
    p.add_argument("--out", help="cache file FILE.npy (plus FILE.json); reused when unchanged")
    p.add_argument("--split", help="manifest split to use (e.g. train, dev)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_features)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CodecError as exc:
        print(f"svq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("svq: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"svq: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
