"""Regenerate the golden vectors: ``python tests/golden/make_golden.py``.

Writes, next to this script, a 1 s input cut from samples/vctk_p233_female.wav,
its encoding at 8 and 24.4 kbit/s with the shipped default codebooks, the
plain decoder's audio (float32; the format's decoder, ``enhance=False``) and,
with the shipped post-filter weights, the post-filtered audio at both rates
(``*_enhanced.npy``; the post-filter is decoder side, so these change when its
weights do). Run it only when a change of the codec is meant to change the
bitstream or the decoded signal, and say so in the commit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

import codec
import codec.postfilter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RATES = (8.0, 24.4)


def golden_name(rate: float) -> str:
    return f"golden_{rate:g}k".replace(".", "p")


def main() -> None:
    x, sr = sf.read(ROOT / "samples" / "vctk_p233_female.wav", dtype="int16")
    cut = x[8000 : 8000 + sr]
    sf.write(HERE / "input.wav", cut, sr, subtype="PCM_16")
    audio, rate = sf.read(HERE / "input.wav", dtype="float64")
    for br in RATES:
        data = codec.encode(audio, rate, br)
        (HERE / f"{golden_name(br)}.svq").write_bytes(data)
        y, _ = codec.decode(data, enhance=False)
        np.save(HERE / f"{golden_name(br)}_decoded.npy", y.astype(np.float32))
        if codec.postfilter.shipped_weights() is not None:
            y, _ = codec.decode(data, enhance=True)
            np.save(HERE / f"{golden_name(br)}_enhanced.npy", y.astype(np.float32))
        print(f"{golden_name(br)}: {len(data)} bytes")


if __name__ == "__main__":
    main()
