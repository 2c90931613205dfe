"""Peak memory of ``svq encode`` / ``svq decode`` against the duration of the input.

``python benchmarks/bench_memory.py [--minutes 1,10] [--bitrate 13.2]``

Builds WAV files of the given durations from the speech in ``samples/``
(repeated), then runs the CLI on each in a fresh process and prints the peak
resident memory (``VmHWM``, Linux) and the speed. Streaming holds memory flat:
a 10-minute file should need about what a 1-minute file needs. The figures
are recorded in RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]

# VmHWM (peak resident set of this process image); ru_maxrss would include the
# parent's memory at fork time, which Linux carries across exec.
_CHILD = """
import sys
from codec.cli import main
rc = main(sys.argv[1:])
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(hwm, file=sys.stderr)
sys.exit(rc)
"""


def _speech() -> np.ndarray:
    parts = []
    for f in sorted((ROOT / "samples").glob("*.wav")):
        x, sr = sf.read(f, dtype="float64")
        assert sr == 16000
        parts.append(x)
    return np.concatenate(parts)


def _run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS in MiB of ``svq ARGS`` in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"svq {' '.join(args)} failed: {proc.stderr.strip()}")
    kib = int(proc.stderr.strip().splitlines()[-1])
    return wall, kib / 1024.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", default="1,10", help="durations in minutes (default 1,10)")
    p.add_argument("--bitrate", default="13.2")
    args = p.parse_args(argv)
    speech = _speech()
    print(f"svq CLI, bitrate {args.bitrate} kbit/s, one process per run (peak RSS)")
    cols = ("minutes", "encode MiB", "encode xRT", "decode MiB", "decode xRT")
    print(f"{cols[0]:>8}" + "".join(f"{c:>12}" for c in cols[1:]))
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in (float(m) for m in args.minutes.split(",")):
            n = int(minutes * 60 * 16000)
            wav = Path(tmp) / f"in_{minutes:g}.wav"
            sf.write(wav, np.resize(speech, n), 16000, subtype="PCM_16")
            svq = wav.with_suffix(".svq")
            out = wav.with_name(f"out_{minutes:g}.wav")
            t_enc, m_enc = _run(["encode", str(wav), str(svq), "--bitrate", args.bitrate, "-q"])
            t_dec, m_dec = _run(["decode", str(svq), str(out)])
            secs = n / 16000
            row = (m_enc, secs / t_enc, m_dec, secs / t_dec)
            print(f"{minutes:8g}" + "".join(f"{v:12.1f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
