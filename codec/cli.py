"""Command line interface: ``svq <command> ...`` (also ``python -m codec``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

from codec.errors import AudioInputError, CodecError, ParameterError
from codec.fileio import atomic_write, open_input

if TYPE_CHECKING:
    import numpy as np

__all__ = ["main", "build_parser"]


def _cmd_features(args: argparse.Namespace) -> int:
    import numpy as np

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


def _check_output(out: str, inp: str, force: bool, binary: str = "") -> None:
    """Refuse an output that would overwrite the input, an existing file or a terminal.

    ``binary`` names the data written to stdout (``-``) for the terminal check.
    """
    if out == "-":
        if binary and sys.stdout.isatty():
            raise ParameterError(
                f"refusing to write {binary} data to a terminal "
                "(redirect standard output, or give an output file name)"
            )
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


# what an output name's extension says it holds
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".m4a")


def _warn_extension(out: str, writes: str, quiet: bool) -> None:
    """Warn when an output name's extension says another format than what is written."""
    suffix = Path(out).suffix.lower()
    if out == "-" or quiet or not suffix:
        return
    if writes == ".svq" and suffix in _AUDIO_SUFFIXES:
        print(
            f"svq: warning: {out} will hold .svq data, not {suffix[1:]} audio "
            "(name it .svq, or use svq decode to make audio)",
            file=sys.stderr,
        )
    elif writes == ".wav" and suffix != ".wav" and suffix in (*_AUDIO_SUFFIXES, ".svq"):
        print(f"svq: warning: {out} will hold a WAV file, not {suffix[1:]}", file=sys.stderr)


def _stream_name(path: str) -> str:
    return "stdin" if path == "-" else path


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

    _check_output(args.output, args.input, args.force, binary="binary .svq")
    _warn_extension(args.output, ".svq", args.quiet)
    name = _stream_name(args.input)
    with open_input(args.input, missing=AudioInputError) as fh, AudioReader(fh, name) as src:
        if src.frames == 0:
            raise AudioInputError(f"{name}: the file holds no samples")
        enc = StreamEncoder(
            src.sample_rate, args.bitrate, envelope=args.envelope, codebook=args.codebook
        )
        if args.verbose:
            env = enc.env
            print(
                f"{name}: {src.sample_rate} Hz, {src.channels} channel(s), "
                f"{src.frames / src.sample_rate:.2f} s by its header; "
                f"{args.bitrate:g} kbit/s, {enc.mode.frame_bytes} bytes per 20 ms frame, "
                f"envelope {env.name} ({env.bits} bits, hash {env.content_hash[:16]})",
                file=sys.stderr,
            )
        frames = ContainerWriter(enc.mode.frame_bytes)
        bar = _progress(src.frames / src.sample_rate, "encode", args.quiet)
        try:
            for block in src.blocks():
                frames.add(enc.push(block))
                bar.update(block.shape[0] / src.sample_rate)
            if src.samples_read == 0:
                raise AudioInputError(f"{name}: the file holds no samples")
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
    if quiet or seconds <= 30.0 or not sys.stderr.isatty():
        from codec.quantizers.base import NoBar  # tqdm's import costs more than a short decode

        return NoBar()
    from tqdm import tqdm

    return tqdm(
        total=round(seconds, 2),
        desc=what,
        unit="s",
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
    from codec.errors import BitstreamError, DamagedStreamError

    if args.seed is not None and args.simulate_loss is None:
        raise ParameterError("--seed picks the loss pattern of --simulate-loss; give both")
    args.seed = args.seed or 0
    _check_output(args.output, args.input, args.force, binary="binary WAV")
    _warn_extension(args.output, ".wav", args.quiet)
    try:
        return _decode(args)
    except DamagedStreamError as exc:
        raise BitstreamError(
            f"{_stream_name(args.input)}: {exc} (--conceal-damaged decodes the rest)"
        ) from None
    except BitstreamError as exc:
        raise BitstreamError(f"{_stream_name(args.input)}: {exc}") from None


def _decode(args: argparse.Namespace) -> int:
    import numpy as np

    from codec.bitstream import CHECK_FRAMES, ContainerReader
    from codec.pipeline import DECODE_BLOCK_FRAMES, StreamDecoder, simulate_loss

    rate = args.rate
    with open_input(args.input, missing=AudioInputError) as fh:
        reader = ContainerReader(fh, "conceal" if args.conceal_damaged else "raise")
        h = reader.header
        dec = StreamDecoder(
            h,
            [args.codebook] if args.codebook else [],
            conceal=args.conceal,
            enhance=args.enhance,
        )
        if args.codebook and not args.quiet and not _is_codebook(args.codebook, dec.env):
            print(
                f"svq: warning: --codebook {args.codebook} is not the stream's codebook "
                f"(hash {h.codebook_hash.hex()}); decoding with {dec.env.name}",
                file=sys.stderr,
            )
        if args.simulate_loss is None:  # (no numpy.random: its import costs ~10 ms)
            lost = np.zeros(h.frame_count, dtype=bool)
        else:
            lost = simulate_loss(h.frame_count, args.simulate_loss, seed=args.seed)
        # soxr rounds the output length half up; the WAV header needs it before any sample
        n_out = (h.sample_count * rate * 2 + 16000) // 32000
        if args.verbose:
            print(
                f"{_stream_name(args.input)}: {h.frame_count} frames at {h.bitrate_bps / 1000:g} "
                f"kbit/s, envelope {h.envelope_id} (hash {h.codebook_hash.hex()}), "
                f"{h.sample_count / 16000:.2f} s; post-filter "
                f"{'on' if dec.enhancer is not None else 'off'}; writing {rate} Hz",
                file=sys.stderr,
            )

        def write_wav(out: BinaryIO) -> None:
            out.write(_wav_header(rate, n_out))
            emit = _Resampled(out, rate, n_out)
            k0 = 0
            bar = _progress(h.sample_count / 16000, "decode", args.quiet)
            for block in reader.blocks(DECODE_BLOCK_FRAMES):
                bar.update(len(block) * h.frame_length / 16000)
                frames: list[bytes | None] = list(block)
                for i in np.flatnonzero(lost[k0 : k0 + len(block)]):
                    frames[i] = None
                k0 += len(block)
                emit.write(dec.decode(frames))
            emit.write(dec.flush(), last=True)
            bar.close()

        _write_output(args.output, write_wav)
    if reader.damaged and not args.quiet:
        print(
            f"svq: warning: {_stream_name(args.input)}: concealed {len(reader.damaged)} "
            f"damaged block(s) of {CHECK_FRAMES} frames: {_blocks_text(reader.damaged, h)}",
            file=sys.stderr,
        )
    if args.simulate_loss is not None and not args.quiet:
        print(
            f"concealed {dec.lost_frames} of {h.frame_count} frames "
            f"({100.0 * dec.lost_frames / max(h.frame_count, 1):.1f} %, seed {args.seed}, "
            f"{args.conceal})",
            file=sys.stderr,
        )
    if args.output != "-" and not args.quiet:
        print(
            f"{args.output}: {n_out} samples, {n_out / rate:.2f} s, {rate} Hz 16-bit mono WAV",
            file=sys.stderr,
        )
    return 0


def _is_codebook(given: str, env: Any) -> bool:
    """Whether the ``--codebook`` the user gave is the one the decoder uses."""
    from codec.registry import load_envelope

    return bool(load_envelope(given).content_hash == env.content_hash)


def _blocks_text(blocks: Sequence[int], h: Any) -> str:
    """Damaged block numbers with their start times: ``3 (3 s), 7 (7 s)``."""
    from codec.bitstream import CHECK_FRAMES

    secs = CHECK_FRAMES * h.frame_length / h.sample_rate
    return ", ".join(f"{k} ({k * secs:g} s)" for k in blocks) or "none"


def _wav_header(rate: int, n_samples: int) -> bytes:
    """The 44-byte header of a 16-bit mono PCM WAV file of ``n_samples`` samples."""
    import struct

    data = 2 * n_samples
    fmt = struct.pack("<HHIIHH", 1, 1, rate, 2 * rate, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", data))
    )


class _Resampled:
    """Write 16 kHz blocks as PCM at ``rate`` (soxr stream), exactly ``total`` samples."""

    def __init__(self, out: BinaryIO, rate: int, total: int) -> None:
        self.out = out
        self.total = total
        self.written = 0
        self.stream: Any = None
        if rate != 16000:
            import soxr

            self.stream = soxr.ResampleStream(16000, rate, 1, dtype="float64", quality="VHQ")

    def write(self, x: np.ndarray, *, last: bool = False) -> None:
        import numpy as np

        y = x if self.stream is None else self.stream.resample_chunk(x, last=last)
        y = y[: self.total - self.written]
        if last and self.written + y.size < self.total:
            y = np.concatenate([y, np.zeros(self.total - self.written - y.size)])
        self.written += y.size
        self.out.write(_pcm16(y))


def _pcm16(x: np.ndarray) -> bytes:
    import numpy as np

    y = x * 32767.0  # (then in place: the same numbers as clip(rint(x * 32767)))
    np.rint(y, out=y)
    np.clip(y, -32768, 32767, out=y)
    return y.astype("<i2").tobytes()


def _cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    from codec.analysis import (
        lsf_to_lpc,
        lsf_weights,
        sd_summary,
        spectral_distortion,
        stabilize_lsf,
    )
    from codec.envelope import EnvelopeCoder
    from codec.features import collection_features
    from codec.quantizers import check_train_settings, train_quantizer

    _check_output(args.out, "-", args.force)
    options: dict[str, object] = {"progress": not args.quiet}
    if args.beam is not None:
        options["beam"] = args.beam
    # settings (and torch for the gradient methods) are checked before any feature is computed
    check_train_settings(
        args.variant, args.stages, args.bits, args.method, args.seed, 16, **options
    )
    if args.safety_net and not args.predictive:
        raise ParameterError("--safety-net needs --predictive ma or ar")
    src = Path(args.data)
    if not src.exists():
        raise ParameterError(f"--data {src}: not found")
    offsets = None
    if src.suffix == ".npy" and src.is_file():
        lsf = np.load(src, allow_pickle=False)
        if lsf.ndim != 2 or lsf.shape[1] != 16 or not np.all(np.isfinite(lsf)):
            raise ParameterError(f"{src}: expected a finite (n, 16) LSF matrix")
    else:
        fs = collection_features(src, split=args.split, progress=not args.quiet)
        lsf, offsets = fs.lsf, fs.offsets
    if args.predictive:
        # an .npy matrix counts as one stream; audio files are streams of their own
        from codec.quantizers import train_predictive

        pq = train_predictive(
            lsf, offsets, variant=args.variant, stages=args.stages, bits=args.bits,
            method=args.method, weights=lsf_weights(lsf), seed=args.seed,
            kind=args.predictive, safety_net=args.safety_net, **dict[str, Any](options),
        )  # fmt: skip
        tmp = Path(args.out).with_name(f".{Path(args.out).name}.partial")
        try:
            pq.save(tmp)
            atomic_write(args.out, tmp.read_bytes())
        finally:
            tmp.unlink(missing_ok=True)
        lsf_hat, _ = pq.quantize(lsf, lsf_weights(lsf), offsets)
        sd = spectral_distortion(lsf_to_lpc(lsf), lsf_to_lpc(stabilize_lsf(lsf_hat)))
        s = sd_summary(sd)
        print(
            f"{args.out}: {pq.bits} bits ({args.predictive}-predictive "
            f"{'with safety net ' if args.safety_net else ''}{args.variant}, "
            f"{args.stages} x {args.bits}, {args.method}), hash {pq.content_hash[:16]}; "
            f"training-set SD {s['mean_sd_db']:.2f} dB, {s['pct_2_4_db']:.1f} % in 2-4 dB, "
            f"{s['pct_over_4_db']:.2f} % > 4 dB"
        )
        return 0
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
    import json

    from codec.bitstream import read_header
    from codec.errors import BitstreamError
    from codec.pipeline import info

    data = _read_input(args.input)
    try:
        st = info(data)
    except BitstreamError as exc:
        raise BitstreamError(f"{_stream_name(args.input)}: {exc}") from None
    h = read_header(data)
    if args.json:
        print(json.dumps(st._asdict(), indent=1))
    else:
        for key, value in st._asdict().items():
            if key == "damaged_blocks":
                value = _blocks_text(value, h)
            print(f"{key:15s} {value}")
    if not st.damaged_blocks:
        return 0
    # the report is complete on stdout; the status and one line on stderr say it is damaged
    sys.stdout.flush()
    print(
        f"svq: {_stream_name(args.input)}: {len(st.damaged_blocks)} of {st.blocks} blocks "
        f"damaged (CRC-32 failed): {_blocks_text(st.damaged_blocks, h)}",
        file=sys.stderr,
    )
    return 1


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
    from codec.postfilter import default_on, shipped_weights
    from codec.registry import load_envelope

    shipped = shipped_weights() is not None
    print("kbit/s  frame bytes  envelope bits  coded band  delay   post-filter  default codebook")
    for rate, mode in MODES.items():
        env = load_envelope(mode.default_envelope)
        band = mode.coded_bins * 25
        pf = "on" if shipped and default_on(rate) else "off"
        print(
            f"{rate:6g}  {mode.frame_bytes:11d}  {sum(env.field_bits):13d}  "
            f"{band / 1000:6.1f} kHz  {ALGORITHMIC_DELAY / 16:.0f} ms  {pf:11s}  "
            f"{mode.default_envelope}"
        )
    return 0


def _cmd_codebooks(args: argparse.Namespace) -> int:
    from codec.registry import list_codebooks

    entries = list_codebooks()
    if args.json:
        import json

        rows = [
            {
                "name": e.name,
                "origin": e.origin,
                "path": str(e.path),
                "content_hash": e.content_hash,
                "header_hash": e.content_hash[:32] if e.content_hash else None,
                "description": e.description,
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'name':12s} {'hash (as in .svq headers)':32s}  {'quantizer':22s}  where")
    for e in entries:
        h = e.content_hash[:32] if e.content_hash else "-"
        where = "shipped" if e.origin == "shipped" else str(e.path)
        print(f"{e.name:12s} {h:32s}  {e.description:22s}  {where}")
    if not os.environ.get("SVQ_CODEBOOK_PATH"):
        print("SVQ_CODEBOOK_PATH is not set: only shipped codebooks listed", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``svq``."""
    return _build_parser(None)


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    """:func:`build_parser`; with a ``command``, only its subparser (the seven take
    ~6 ms to build, a noticeable part of decoding a short file)."""
    from codec import __version__
    from codec.bitstream import FORMAT_VERSION

    parser = _Parser(
        prog="svq",
        description="svq: a wideband speech codec with trainable vector-quantized envelopes.",
    )
    parser.add_argument(
        "--version", action="version", version=f"svq {__version__} (format {FORMAT_VERSION})"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add in _COMMANDS.items():
        if command is None or name == command:
            add(sub)
    return parser


def _add_features(sub: Any) -> None:
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


def _add_encode(sub: Any) -> None:
    p = sub.add_parser(
        "encode",
        help="encode audio to .svq",
        description="Encode any soundfile-readable audio (any rate, any channels) to .svq, "
        "in blocks (memory does not grow with the duration).",
    )
    p.add_argument("input", help="input audio file, or - for stdin")
    p.add_argument("output", help="output .svq file, or - for stdout (not a terminal)")
    p.add_argument(
        "-b",
        "--bitrate",
        type=_bitrate,
        default=13.2,
        help="8, 9.6, 13.2, 16.4, 24.4 or 32 kbit/s; 13.2k and 13200 work too (default 13.2)",
    )
    p.add_argument(
        "--envelope",
        choices=["avq", "rvq", "pvq", "vq"],
        help="envelope quantizer variant: the shipped codebook of that variant for the "
        "bitrate (avq-4x6, rvq-4x6, pvq-4x6, vq-1x12; default: the mode's, see svq modes)",
    )
    p.add_argument(
        "--codebook",
        metavar="NAME|FILE",
        help="a shipped codebook by name (svq codebooks lists them, e.g. avq-4x4) or a .cb "
        "file from svq train",
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    _add_verbosity(p)
    p.set_defaults(func=_cmd_encode)


def _add_decode(sub: Any) -> None:
    p = sub.add_parser(
        "decode",
        help="decode .svq to a wav (16 kHz, or --rate)",
        description="Decode .svq to a 16-bit mono wav (16 kHz, or --rate), in 10 s blocks "
        "(memory does not grow with the duration). Every block's CRC-32 is checked before "
        "any audio is written: a damaged file is refused, or with --conceal-damaged its "
        "damaged blocks (1 s each) are concealed as lost frames. --simulate-loss drops "
        "frames at random to hear the frame-loss concealment; --conceal chooses how lost "
        "frames are concealed.",
    )
    p.add_argument("input", help="input .svq file, or - for stdin")
    p.add_argument("output", help="output .wav file, or - for stdout (not a terminal)")
    p.add_argument(
        "--codebook",
        metavar="NAME|FILE",
        help="the stream's codebook, if it is neither shipped nor on SVQ_CODEBOOK_PATH",
    )
    p.add_argument(
        "-r",
        "--rate",
        type=int,
        choices=OUTPUT_RATES,
        default=16000,
        metavar="HZ",
        help="output sample rate, resampled with soxr: "
        + ", ".join(str(r) for r in OUTPUT_RATES)
        + " (default 16000)",
    )
    p.add_argument(
        "--simulate-loss",
        type=_loss_rate,
        metavar="RATE",
        help="drop frames at random with this probability (0.1 or 10%%) and conceal them",
    )
    p.add_argument("--seed", type=int, help="seed of --simulate-loss (default 0)")
    p.add_argument(
        "--conceal-damaged",
        action="store_true",
        help="decode a file with damaged blocks (1 s each, CRC-32 failed), concealing them as "
        "lost frames, instead of refusing it",
    )
    p.add_argument(
        "--conceal",
        choices=["interpolate", "causal"],
        default="interpolate",
        help="how lost frames (--simulate-loss, --conceal-damaged) are concealed: "
        "interpolate (default; the whole file is at hand): a run of up to 8 lost frames "
        "(160 ms) is interpolated between the frames before and after it; causal: "
        "extrapolated from the past frames only, as a real-time decoder without "
        "look-ahead does. Longer runs (a damaged block is 50 frames) and a run at the end "
        "are concealed causally either way; without lost frames both give the same output",
    )
    enh = p.add_mutually_exclusive_group()
    enh.add_argument(
        "--enhance",
        dest="enhance",
        action="store_const",
        const=True,
        help="run the trained post-filter at any bitrate (decoder side; svq modes says where "
        "it is on by default)",
    )
    enh.add_argument(
        "--no-enhance",
        dest="enhance",
        action="store_const",
        const=False,
        help="leave the post-filter out: the plain decoder's output",
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    _add_verbosity(p)
    p.set_defaults(func=_cmd_decode)


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train an envelope codebook",
        description="Train an LSF envelope quantizer on a folder/manifest of audio or an "
        "(n, 16) LSF .npy matrix (from svq features --out). The .cb file holds the "
        "codebooks, the trained LSF mean and the config, with a content hash. k-means "
        "needs numpy only; ste and nsvq need torch (pip install 'svq[train]').",
    )
    p.add_argument("--data", required=True, help="audio folder, manifest .csv, or LSF .npy")
    p.add_argument("--split", help="manifest split to use, e.g. train (default: every row)")
    p.add_argument(
        "--variant",
        choices=["avq", "rvq", "pvq", "vq"],
        default="avq",
        help="quantizer structure (default: %(default)s)",
    )
    p.add_argument(
        "--stages", type=int, default=4, help="codebooks M, 1 for vq (default: %(default)s)"
    )
    p.add_argument("--bits", type=int, default=4, help="bits per codebook (default: %(default)s)")
    p.add_argument(
        "--method",
        choices=["kmeans", "ste", "nsvq"],
        default="kmeans",
        help="training method; ste and nsvq need torch (default: %(default)s)",
    )
    p.add_argument(
        "--beam",
        type=int,
        help="search width: AVQ beam, RVQ M-best (default: the variant's, 4 for avq and rvq)",
    )
    p.add_argument(
        "--predictive",
        choices=["ma", "ar"],
        help="predict each frame from the previous one: ma (AMR-WB-style moving average) or "
        "ar (EVS-style, from the previous decoded envelope); the .cb file carries the "
        "prediction matrix (default: memoryless)",
    )
    p.add_argument(
        "--safety-net",
        action="store_true",
        help="with --predictive: add a memoryless safety-net codebook, chosen per frame "
        "by the encoder (one more bit per frame)",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument("--out", required=True, help="output codebook file (.cb)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _add_modes(sub: Any) -> None:
    p = sub.add_parser(
        "modes",
        help="list the bitrates with frame size, envelope bits, coded band and delay",
        description="The operating points of svq: frame bytes, envelope bits, the band coded "
        "by value (the band above is noise at a coded level), delay, default codebook.",
    )
    p.set_defaults(func=_cmd_modes)


def _add_codebooks(sub: Any) -> None:
    p = sub.add_parser(
        "codebooks",
        help="list the codebooks the decoder finds, with their hashes",
        description="List the shipped codebooks and the .cb files in the folders of "
        "SVQ_CODEBOOK_PATH, with the content hash a .svq header names them by.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_codebooks)


def _add_info(sub: Any) -> None:
    p = sub.add_parser(
        "info",
        help="show the header of a .svq file",
        description="Show the header of a .svq file: bitrate, frames, duration, envelope, "
        "codebook hash, coded band, delay, and the blocks whose CRC-32 fails.",
        epilog="Exit status: 0 if the file is intact; 1 if blocks of it are damaged (the "
        "report on stdout lists them, one line on stderr counts them; svq decode "
        "--conceal-damaged decodes the rest); 2 on an error: a damaged header, a truncated "
        "file, not a .svq file, a missing or unreadable input.",
    )
    p.add_argument("input", help=".svq file, or - for stdin")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)


_COMMANDS: dict[str, Callable[[Any], None]] = {
    "features": _add_features,
    "encode": _add_encode,
    "decode": _add_decode,
    "train": _add_train,
    "modes": _add_modes,
    "codebooks": _add_codebooks,
    "info": _add_info,
}


OUTPUT_RATES = (8000, 12000, 16000, 24000, 32000, 44100, 48000)
"""Sample rates ``svq decode --rate`` writes."""


def _add_verbosity(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    group.add_argument(
        "-v", "--verbose", action="store_true", help="also print the input's and stream's settings"
    )


_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


def _keep_freed_memory() -> None:
    """Let glibc's malloc keep freed blocks for reuse instead of handing them back.

    The codec's blocks make many short-lived arrays of 0.1-8 MB. By default
    glibc serves each from fresh ``mmap`` pages and unmaps it when freed, so every
    such array pays its page faults again: about 90 000 faults, a quarter of
    the CPU time, when encoding 60 s at 32 kbit/s (RESULTS.md §5). Blocks up to
    32 MB now come from the heap, which keeps up to 256 MB of freed memory; the
    peak memory is unchanged (the arrays are reused, not added). Only the CLI
    process does this; elsewhere (not glibc) it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)


_M_TOP_PAD = -2
_MADV_HUGEPAGE = 14  # (Linux, asm-generic/mman-common.h)
_HUGE = 2 << 20
HEAP_RESERVE = 128 << 20
"""Bytes of heap that :func:`_huge_page_heap` maps ahead (address space only:
memory is spent where it is written, as with any heap)."""


def _huge_page_heap() -> bool:
    """Let the heap that the work will use come in 2 MB pages (transparent huge pages).

    The codec's arrays (0.1-8 MB, kept by :func:`_keep_freed_memory`) come from
    glibc's heap, and each 4 kB page costs a fault on its first write: about 7500
    faults per ``svq decode`` of 60 s, 1-3 us each on the 2-core VM (RESULTS.md
    §5). numpy asks for huge pages only for its arrays of 4 MB or more. Here the
    heap is grown once by :data:`HEAP_RESERVE` of address space (nothing is
    written; the heap is not trimmed back, :func:`_keep_freed_memory`) and marked
    ``MADV_HUGEPAGE``, so that the first write to each 2 MB takes one fault. What
    the kernel cannot give in huge pages it gives in small ones, as before.
    Only the ``svq`` process does this (:func:`run`), on glibc Linux where
    transparent huge pages are on for ``madvise`` and the address space has no
    cap (``ulimit -v``); returns whether it did.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            if "[madvise]" not in fh.read():  # ([always]: already; [never]: not at all)
                return False
        import ctypes
        import resource

        if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY:
            return False  # (a cap on address space: the reserve would count against it)

        libc = ctypes.CDLL(None, use_errno=True)
        mallopt, malloc, free, madvise = libc.mallopt, libc.malloc, libc.free, libc.madvise
    except (OSError, AttributeError):  # pragma: no cover - not glibc, no THP
        return False
    malloc.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    free.argtypes = [ctypes.c_void_p]
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _keep_freed_memory()  # (the heap is not trimmed back)
    # grow the heap: a block from it (below the mmap threshold, larger than the
    # free top of the heap at start-up), padded at the top
    mallopt(_M_TOP_PAD, HEAP_RESERVE)
    free(malloc(16 << 20))
    mallopt(_M_TOP_PAD, 128 << 10)  # (glibc's default)
    try:
        with open("/proc/self/maps") as fh:
            heap = [line.split()[0] for line in fh if line.rstrip().endswith("[heap]")]
    except OSError:  # pragma: no cover - no /proc
        return False
    if not heap:
        return False
    lo, hi = (int(x, 16) for x in heap[0].split("-"))
    start = -(-lo // _HUGE) * _HUGE
    size = (hi - start) // _HUGE * _HUGE
    return size > 0 and madvise(start, size, _MADV_HUGEPAGE) == 0


# the variables by which OpenBLAS, MKL and BLIS take their thread count when they load
_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def _blas_on_one_thread() -> bool:
    """Load BLAS with one thread for the whole process, where nobody asked otherwise.

    The codec runs BLAS on one thread anyway (``codec.pipeline._one_blas_thread``:
    its matrices are small); set in the environment before numpy loads BLAS, that
    costs nothing, where threadpoolctl costs about 5 ms of every start-up. Returns
    whether it was done: not where numpy is already loaded (``main`` called from
    Python) or where one of the variables asks for more than one thread.
    """
    if "numpy" in sys.modules or any(os.environ.get(var, "1") != "1" for var in _BLAS_THREAD_VARS):
        return False
    for var in _BLAS_THREAD_VARS:
        os.environ[var] = "1"
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    _keep_freed_memory()
    argv = sys.argv[1:] if argv is None else list(argv)
    # the command comes first: the other subparsers are not built (``svq --help`` builds all)
    parser = _build_parser(argv[0] if argv and argv[0] in _COMMANDS else None)
    args = parser.parse_args(argv)
    if args.func in (_cmd_encode, _cmd_decode):
        one_thread = _blas_on_one_thread()
        from codec import pipeline  # (numpy and the codec's modules)

        if one_thread:
            pipeline.blas_is_single_threaded()
    _start_up_done()
    try:
        return int(args.func(args))
    except CodecError as exc:
        print(f"svq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("svq: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"svq: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


_GC_HELD = False
"""Whether :func:`run` holds the cyclic garbage collector off through the start-up."""


def _start_up_done() -> None:
    """The imports are done: where :func:`run` held the garbage collector off, freeze
    what they made (the collector never walks it again) and turn it back on for the
    work. Collections during the imports found nothing to free and cost about 12 ms
    of every ``svq`` process (RESULTS.md §5); the work runs with the collector on,
    so memory stays flat in the duration."""
    global _GC_HELD
    if _GC_HELD:
        import gc

        gc.freeze()
        gc.enable()
        _GC_HELD = False


def run() -> NoReturn:
    """The ``svq`` command (and ``python -m codec``): :func:`main`, then the exit
    without the interpreter's teardown.

    When :func:`main` returns, its work is complete: output files are written,
    closed and renamed (:func:`~codec.fileio.atomic_write`), and the standard
    streams are flushed here. What the interpreter would still do is free every
    module and object one by one, about 30 ms once numpy is loaded: a tenth of
    decoding a minute of speech (RESULTS.md §5). ``os._exit`` skips that. The
    usual exit runs instead where something still waits for it: an ``atexit``
    handler (a library that registered one, e.g. torch's or logging's for
    ``svq train``), a thread that is not a daemon, or a flush that fails (a
    closed pipe). Programs that call :func:`main` keep their interpreter.

    It also holds the cyclic garbage collector off until the imports are done
    (:func:`_start_up_done`), and lets the heap come in huge pages
    (:func:`_huge_page_heap`).
    """
    import atexit
    import gc

    global _GC_HELD
    _huge_page_heap()
    if gc.isenabled():  # (until the imports are done: _start_up_done)
        gc.disable()
        _GC_HELD = True
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)
    waiting = getattr(atexit, "_ncallbacks", lambda: 1)() > 0
    if "threading" in sys.modules:
        import threading

        main_thread = threading.main_thread()
        waiting |= any(not t.daemon for t in threading.enumerate() if t is not main_thread)
    if waiting:
        sys.exit(status)
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    run()
