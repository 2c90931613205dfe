"""Encode and decode the files in ``samples/`` at a few bitrates; print quality.

``python -m recipes.demo [--bitrates 8,13.2,32] [--out decoded] [--inputs samples]``

For each file and bitrate: the ``.svq`` size and measured bitrate, PESQ-WB and
pSNR against the input; the decoded 16 kHz wavs are left in ``--out`` for
listening (``NAME_13.2k.wav``). This is the README's main command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import codec
from codec.audio import read_audio, to_mono_16k
from codec.features import list_audio
from codec.metrics import pesq_wb, psnr

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m recipes.demo",
        description="Encode and decode the files in samples/ at a few bitrates; print bytes, "
        "measured bitrate, PESQ-WB and pSNR per file, and keep the decoded wavs for listening.",
    )
    p.add_argument("--inputs", default=str(ROOT / "samples"), help="folder or audio file")
    p.add_argument("--bitrates", default="8,13.2,32", help="comma-separated kbit/s")
    p.add_argument("--out", default="decoded", help="folder for .svq and decoded .wav files")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rates = [float(r) for r in args.bitrates.split(",")]
    print(
        f"{'file':32s} {'kbit/s':>6s} {'bytes':>7s} {'meas.':>6s} {'PESQ-WB':>8s} {'pSNR dB':>8s}"
    )
    scores: dict[float, list[float]] = {r: [] for r in rates}
    for path in list_audio(args.inputs):
        audio, rate = read_audio(path)
        ref = to_mono_16k(audio, rate)
        for br in rates:
            t0 = time.perf_counter()
            data = codec.encode(audio, rate, br)
            dec, _ = codec.decode(data)
            secs = time.perf_counter() - t0
            name = f"{path.stem}_{br:g}k"
            (out / f"{name}.svq").write_bytes(data)
            pcm = np.clip(np.rint(dec * 32767), -32768, 32767).astype(np.int16)
            sf.write(out / f"{name}.wav", pcm, 16000, subtype="PCM_16")
            score = pesq_wb(ref, dec, 16000)
            scores[br].append(score)
            measured = 8 * len(data) / (ref.size / 16000) / 1000
            print(
                f"{path.name[:32]:32s} {br:6g} {len(data):7d} {measured:6.2f} "
                f"{score:8.3f} {psnr(ref, dec, 16000):8.2f}   ({secs:.2f} s)"
            )
    for br in rates:
        print(f"mean PESQ-WB at {br:g} kbit/s: {np.mean(scores[br]):.3f}")
    print(f"decoded files are in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
