"""Encode and decode a live stream frame by frame: raw PCM in on stdin, raw PCM out on stdout.

Input and output are 16 kHz mono signed 16-bit little-endian samples, read and
written 20 ms (640 bytes) at a time. Each chunk goes through the encoder
(``block_frames=1``: a frame comes out as soon as the 5 ms look-ahead of its
LPC analysis has arrived), the frame through the decoder, and the samples it
makes final go straight to stdout, so the output follows the input with the
codec's 30 ms algorithmic delay plus the processing time of one frame. At the
end of the input the encoder is flushed, and the output is as long as the input
and identical to ``svq encode`` followed by ``svq decode``.

Try it on a microphone (ALSA) and a loudspeaker::

    arecord -q -f S16_LE -r 16000 -c 1 -t raw \\
      | python examples/live_stream.py --bitrate 13.2 \\
      | aplay -q -f S16_LE -r 16000 -c 1 -t raw

or on a file, with timing figures on stderr::

    sox speech.wav -t raw -r 16000 -c 1 -e signed -b 16 - \\
      | python examples/live_stream.py -v > decoded.raw

``--frames-out FILE`` also writes the coded frames (the stream's bytes, as they
would go over a network, without the file header).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.errors import CodecError  # noqa: E402
from codec.pipeline import ALGORITHMIC_DELAY, StreamDecoder, StreamEncoder  # noqa: E402

RATE = 16000
CHUNK = 320  # 20 ms


def _pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.rint(x * 32767.0), -32768, 32767).astype("<i2").tobytes()


def run(src, dst, bitrate: float, frames_out=None, verbose: bool = False) -> dict[str, float]:
    """Code ``src`` (a binary stream of s16le PCM) to ``dst``; returns timing figures."""
    enc = StreamEncoder(RATE, bitrate, block_frames=1)
    dec = StreamDecoder(enc.live_header(), block_frames=1)
    n_in = n_out = 0
    costs: list[float] = []
    pending = b""

    def code(frames: list[bytes]) -> None:
        nonlocal n_out
        for fr in frames:
            if frames_out is not None:
                frames_out.write(fr)
            y = dec.decode([fr])
            y = y[: max(n_in - n_out, 0)]  # never past the end of the input
            n_out += y.size
            dst.write(_pcm16(y))
        dst.flush()

    while True:
        data = src.read(2 * CHUNK - len(pending))
        if not data:
            break
        pending += data
        if len(pending) < 2 * CHUNK:
            continue
        x = np.frombuffer(pending[: 2 * (len(pending) // 2)], dtype="<i2") / 32768.0
        pending = pending[2 * x.size :]
        n_in += x.size
        t0 = time.perf_counter()
        code(enc.push(x))
        costs.append(time.perf_counter() - t0)
    if len(pending) >= 2:
        x = np.frombuffer(pending[: 2 * (len(pending) // 2)], dtype="<i2") / 32768.0
        n_in += x.size
        code(enc.push(x))
    code(enc.finish())
    t = 1000.0 * np.array(costs or [0.0])
    stats = {
        "frames": float(enc.frame_count),
        "mean_ms": float(t.mean()),
        "max_ms": float(t.max()),
        "late": float(np.sum(t > 1000.0 * CHUNK / RATE)),
    }
    if verbose:
        print(
            f"live_stream: {enc.frame_count} frames at {bitrate:g} kbit/s; per 20 ms chunk "
            f"{stats['mean_ms']:.2f} ms on average ({20.0 / max(stats['mean_ms'], 1e-9):.1f}x "
            f"real time), at most {stats['max_ms']:.2f} ms, {int(stats['late'])} over 20 ms; "
            f"algorithmic delay {1000 * ALGORITHMIC_DELAY / RATE:.0f} ms",
            file=sys.stderr,
        )
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-b", "--bitrate", type=float, default=13.2, help="kbit/s (default 13.2)")
    p.add_argument("--frames-out", type=Path, help="also write the coded frames to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="timing figures on stderr")
    args = p.parse_args(argv)
    fo = args.frames_out.open("wb") if args.frames_out else None
    try:
        run(sys.stdin.buffer, sys.stdout.buffer, args.bitrate, fo, args.verbose)
    except CodecError as exc:
        print(f"live_stream: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    finally:
        if fo is not None:
            fo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
