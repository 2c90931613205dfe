"""Command line interface: ``svq <command> ...`` (also ``python -m codec``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from codec.errors import AudioInputError, CodecError, ParameterError
from codec.fileio import atomic_write

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


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    if p.is_dir():
        raise AudioInputError(f"{p} is a directory")
    if not p.exists():
        raise AudioInputError(f"{p}: no such file")
    return p.read_bytes()


def _check_output(out: str, inp: str, force: bool) -> None:
    if out == "-":
        return
    po = Path(out)
    if inp != "-" and po.exists() and po.resolve() == Path(inp).resolve():
        raise ParameterError(f"output {po} is the input file; refusing to overwrite it")
    if po.is_dir():
        raise ParameterError(f"output {po} is a directory")
    if po.exists() and not force:
        raise ParameterError(f"output {po} exists (use --force to overwrite)")
    if not po.parent.exists():
        raise ParameterError(f"output folder {po.parent} does not exist")


def _write_output(out: str, data: bytes) -> None:
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write(out, data)


def _cmd_encode(args: argparse.Namespace) -> int:
    import io

    import soundfile as sf

    from codec.pipeline import encode

    _check_output(args.output, args.input, args.force)
    raw = _read_input(args.input)
    try:
        audio, rate = sf.read(io.BytesIO(raw), dtype="float64", always_2d=False)
    except Exception as exc:  # soundfile raises several types for unreadable input
        reason = str(exc).rsplit(": ", 1)[-1].strip().rstrip(".") or type(exc).__name__
        raise AudioInputError(f"{args.input}: cannot read audio ({reason})") from exc
    if np.asarray(audio).size == 0:
        raise AudioInputError(f"{args.input}: the file holds no samples")
    data = encode(audio, int(rate), args.bitrate, envelope=args.envelope, codebook=args.codebook)
    _write_output(args.output, data)
    if args.output != "-" and not args.quiet:
        secs = np.asarray(audio).shape[0] / rate
        print(
            f"{args.output}: {len(data)} bytes, {secs:.2f} s at {args.bitrate:g} kbit/s",
            file=sys.stderr,
        )
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    import io

    import soundfile as sf

    from codec.pipeline import decode

    _check_output(args.output, args.input, args.force)
    data = _read_input(args.input)
    audio, rate = decode(data, codebooks=[args.codebook] if args.codebook else [])
    pcm = np.clip(np.rint(audio * 32767.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    _write_output(args.output, buf.getvalue())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from codec.analysis import lsf_to_lpc, lsf_weights, sd_summary, spectral_distortion
    from codec.envelope import EnvelopeCoder
    from codec.features import collection_features
    from codec.quantizers import train_quantizer

    _check_output(args.out, "-", args.force)
    src = Path(args.data)
    if src.suffix == ".npy" and src.is_file():
        lsf = np.load(src, allow_pickle=False)
        if lsf.ndim != 2 or lsf.shape[1] != 16 or not np.all(np.isfinite(lsf)):
            raise ParameterError(f"{src}: expected a finite (n, 16) LSF matrix")
    else:
        lsf = collection_features(src, split=args.split, progress=not args.quiet).lsf
    options: dict[str, object] = {"progress": not args.quiet}
    if args.beam is not None:
        options["beam"] = args.beam
    q = train_quantizer(
        lsf,
        variant=args.variant,
        stages=args.stages,
        bits=args.bits,
        method=args.method,
        weights=lsf_weights(lsf),
        seed=args.seed,
        **options,
    )
    tmp = Path(args.out).with_name(f".{Path(args.out).name}.partial")
    try:
        q.save(tmp)
        atomic_write(args.out, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    env = EnvelopeCoder(q, Path(args.out).stem)
    sd = spectral_distortion(lsf_to_lpc(lsf), lsf_to_lpc(env.decode(env.encode(lsf))))
    s = sd_summary(sd)
    print(
        f"{args.out}: {q.bits} bits ({args.variant}, {args.stages} x {args.bits}, "
        f"{args.method}), hash {q.content_hash[:16]}; training-set SD "
        f"{s['mean_sd_db']:.2f} dB, {s['pct_2_4_db']:.1f} % in 2-4 dB, "
        f"{s['pct_over_4_db']:.2f} % > 4 dB"
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from codec.pipeline import info

    st = info(_read_input(args.input))
    if args.json:
        print(json.dumps(dataclasses.asdict(st), indent=1))
    else:
        for key, value in dataclasses.asdict(st).items():
            print(f"{key:15s} {value}")
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

    p = sub.add_parser(
        "encode",
        help="encode audio to .svq",
        description="Encode any soundfile-readable audio (any rate, any channels) to .svq.",
    )
    p.add_argument("input", help="input audio file, or - for stdin")
    p.add_argument("output", help="output .svq file, or - for stdout")
    p.add_argument(
        "--bitrate",
        type=float,
        default=13.2,
        help="kbit/s: 8, 9.6, 13.2, 16.4, 24.4 or 32 (default 13.2)",
    )
    p.add_argument("--envelope", choices=["avq", "rvq", "pvq", "vq"], help="envelope quantizer")
    p.add_argument("--codebook", help="codebook file (from svq train) instead of a shipped one")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser(
        "decode", help="decode .svq to a 16 kHz wav", description="Decode .svq to 16-bit wav."
    )
    p.add_argument("input", help="input .svq file, or - for stdin")
    p.add_argument("output", help="output .wav file, or - for stdout")
    p.add_argument("--codebook", help="codebook file, if the stream uses one not shipped")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser(
        "train",
        help="train an envelope codebook",
        description="Train an LSF envelope quantizer on a folder/manifest of audio or an "
        "(n, 16) LSF .npy matrix (from svq features --out). The .cb file holds the "
        "codebooks, the trained LSF mean and the config, with a content hash.",
    )
    p.add_argument("--data", required=True, help="audio folder, manifest .csv, or LSF .npy")
    p.add_argument("--split", help="manifest split to use (e.g. train)")
    p.add_argument("--variant", choices=["avq", "rvq", "pvq", "vq"], default="avq")
    p.add_argument("--stages", type=int, default=4, help="codebooks M (1 for vq)")
    p.add_argument("--bits", type=int, default=4, help="bits per codebook")
    p.add_argument("--method", choices=["kmeans", "ste", "nsvq"], default="nsvq")
    p.add_argument("--beam", type=int, help="search width (AVQ beam, RVQ M-best)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output codebook file (.cb)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("info", help="show the header of a .svq file")
    p.add_argument("input", help=".svq file, or - for stdin")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)
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
