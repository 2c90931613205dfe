"""Command line interface: ``svq <command> ...`` (also ``python -m codec``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np

from codec.errors import AudioInputError, CodecError, ParameterError
from codec.fileio import atomic_write, open_input

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
    with open_input(path, missing=AudioInputError) as fh:
        return fh.read()


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


def _write_output(out: str, writer: Callable[[BinaryIO], object]) -> None:
    """Write to stdout (``-``) or atomically to a file: nothing is left on failure."""
    if out == "-":
        writer(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        atomic_write(out, writer)


def _cmd_encode(args: argparse.Namespace) -> int:
    from codec.audio import AudioReader
    from codec.bitstream import ContainerWriter
    from codec.pipeline import StreamEncoder

    _check_output(args.output, args.input, args.force)
    with open_input(args.input, missing=AudioInputError) as fh, AudioReader(fh, args.input) as src:
        if src.frames == 0:
            raise AudioInputError(f"{args.input}: the file holds no samples")
        enc = StreamEncoder(
            src.sample_rate, args.bitrate, envelope=args.envelope, codebook=args.codebook
        )
        frames = ContainerWriter(enc.mode.frame_bytes)
        bar = _progress(src.frames / src.sample_rate, "encode", args.quiet)
        try:
            for block in src.blocks():
                frames.add(enc.push(block))
                bar.update(block.shape[0] / src.sample_rate)
            frames.add(enc.finish())
            bar.close()
            header = enc.header()
            _write_output(args.output, lambda out: frames.write(out, header))
        finally:
            frames.close()
    if args.output != "-" and not args.quiet:
        secs = header.sample_count / 16000
        size = Path(args.output).stat().st_size
        print(
            f"{args.output}: {size} bytes, {secs:.2f} s at {args.bitrate:g} kbit/s",
            file=sys.stderr,
        )
    return 0


def _progress(seconds: float, what: str, quiet: bool) -> Any:
    """A progress bar in seconds of audio, shown on a terminal for inputs over 30 s."""
    from tqdm import tqdm

    show = not quiet and seconds > 30.0 and sys.stderr.isatty()
    return tqdm(
        total=round(seconds, 2),
        desc=what,
        unit="s",
        disable=not show,
        leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio "
        "[{elapsed}<{remaining}]",
    )


def _loss_rate(text: str) -> float:
    """``--simulate-loss`` value: a fraction (0.1) or a percentage (10%)."""
    try:
        rate = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a loss rate: {text!r}") from None
    if not 0.0 <= rate < 1.0:
        raise argparse.ArgumentTypeError(f"loss rate must be in [0, 1) (or 0-99%), got {text}")
    return rate


def _cmd_decode(args: argparse.Namespace) -> int:
    import wave

    from codec.bitstream import ContainerReader
    from codec.pipeline import BLOCK_FRAMES, StreamDecoder, simulate_loss

    if args.seed is not None and args.simulate_loss is None:
        raise ParameterError("--seed picks the loss pattern of --simulate-loss; give both")
    args.seed = args.seed or 0
    _check_output(args.output, args.input, args.force)
    with open_input(args.input, missing=AudioInputError) as fh:
        reader = ContainerReader(fh)
        h = reader.header
        dec = StreamDecoder(h, [args.codebook] if args.codebook else [])
        lost = simulate_loss(h.frame_count, args.simulate_loss or 0.0, seed=args.seed)

        def write_wav(out: BinaryIO) -> None:
            wav = wave.open(out, "wb")
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16000)
            wav.setnframes(h.sample_count)
            k0 = 0
            bar = _progress(h.sample_count / 16000, "decode", args.quiet)
            for block in reader.blocks(BLOCK_FRAMES):
                bar.update(len(block) * h.frame_length / 16000)
                frames: list[bytes | None] = list(block)
                for i in np.flatnonzero(lost[k0 : k0 + len(block)]):
                    frames[i] = None
                k0 += len(block)
                wav.writeframesraw(_pcm16(dec.decode(frames)))
            wav.writeframesraw(_pcm16(dec.flush()))
            wav.close()
            bar.close()

        _write_output(args.output, write_wav)
    if args.simulate_loss is not None and not args.quiet:
        print(
            f"concealed {dec.lost_frames} of {h.frame_count} frames "
            f"({100.0 * dec.lost_frames / max(h.frame_count, 1):.1f} %, seed {args.seed})",
            file=sys.stderr,
        )
    return 0


def _pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.rint(x * 32767.0), -32768, 32767).astype("<i2").tobytes()


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


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line (``svq encode: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _bitrate(text: str) -> float:
    """``--bitrate`` value: 13.2, 13.2k or 13200 (the encoder checks that it is supported)."""
    from codec.modes import parse_bitrate

    try:
        return parse_bitrate(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_modes(args: argparse.Namespace) -> int:
    from codec.modes import MODES
    from codec.pipeline import ALGORITHMIC_DELAY
    from codec.registry import load_envelope

    print("kbit/s  frame bytes  envelope bits  coded band  delay   default codebook")
    for rate, mode in MODES.items():
        env = load_envelope(mode.default_envelope)
        band = mode.coded_bins * 25
        print(
            f"{rate:6g}  {mode.frame_bytes:11d}  {sum(env.field_bits):13d}  "
            f"{band / 1000:6.1f} kHz  {ALGORITHMIC_DELAY / 16:.0f} ms  {mode.default_envelope}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``svq``."""
    from codec import __version__

    parser = _Parser(
        prog="svq",
        description="svq: a wideband speech codec with trainable vector-quantized envelopes.",
    )
    parser.add_argument("--version", action="version", version=f"svq {__version__} (format 2)")
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
        description="Encode any soundfile-readable audio (any rate, any channels) to .svq, "
        "in blocks (memory does not grow with the duration).",
    )
    p.add_argument("input", help="input audio file, or - for stdin")
    p.add_argument("output", help="output .svq file, or - for stdout")
    p.add_argument(
        "-b",
        "--bitrate",
        type=_bitrate,
        default=13.2,
        help="8, 9.6, 13.2, 16.4, 24.4 or 32 kbit/s; 13.2k and 13200 work too (default 13.2)",
    )
    p.add_argument("--envelope", choices=["avq", "rvq", "pvq", "vq"], help="envelope quantizer")
    p.add_argument("--codebook", help="codebook file (from svq train) instead of a shipped one")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser(
        "decode",
        help="decode .svq to a 16 kHz wav",
        description="Decode .svq to a 16-bit 16 kHz mono wav, in 2 s blocks (memory does not "
        "grow with the duration). The whole file's CRC-32 is checked before any audio is "
        "written. --simulate-loss drops frames at random to hear the frame-loss concealment.",
    )
    p.add_argument("input", help="input .svq file, or - for stdin")
    p.add_argument("output", help="output .wav file, or - for stdout")
    p.add_argument("--codebook", help="codebook file, if the stream uses one not shipped")
    p.add_argument(
        "--simulate-loss",
        type=_loss_rate,
        metavar="RATE",
        help="drop frames at random with this probability (0.1 or 10%%) and conceal them",
    )
    p.add_argument("--seed", type=int, help="seed of --simulate-loss (default 0)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
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
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "modes",
        help="list the bitrates with frame size, envelope bits, coded band and delay",
        description="The operating points of svq: frame bytes, envelope bits, the band coded "
        "by value (the band above is noise at a coded level), delay, default codebook.",
    )
    p.set_defaults(func=_cmd_modes)

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
