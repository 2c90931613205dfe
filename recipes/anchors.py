"""Established codecs run live on the same files as svq: Opus, AMR-WB, Speex wideband.

Every anchor takes 16 kHz mono float audio and returns the decoded signal
**time-aligned to the input** (the codec's fixed delay removed, cut or
zero-padded to the input's length) with its measured bitrate: ``payload_kbps``
counts the codec's frames only, ``file_kbps`` the whole coded file.

==============  =====================================  ============================
anchor          tool                                   operating points (kbit/s)
==============  =====================================  ============================
``opus-cbr``    ``opusenc --hard-cbr`` / ``opusdec``   any (run at svq's rates)
``opus-vbr``    ``opusenc --vbr`` / ``opusdec``        any (run at svq's rates)
``amrwb``       libvo-amrwbenc / libopencore-amrwb     8.85, 12.65, 15.85, 23.85
``speex-wb``    ``ffmpeg`` libspeex (CBR, Ogg)         9.8, 12.8, 16.8, 23.8
==============  =====================================  ============================

The tools come from Debian::

    apt-get update && apt-get install -y opus-tools ffmpeg libvo-amrwbenc0 libopencore-amrwb0

AMR-WB: Debian's ffmpeg is built without the ``libvo_amrwbenc`` encoder, so the
anchor calls the same two libraries ffmpeg would use (VisualOn's encoder, the
OpenCORE decoder) directly through their ``E_IF_*``/``D_IF_*`` C interface
(ctypes), 20 ms frames in the RFC 4867 storage format, DTX off.

A missing tool makes :func:`available_anchors` leave that anchor out with a
one-line note (:func:`missing_note`); nothing else depends on them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from codec.audio import SAMPLE_RATE, read_audio, to_mono_16k

__all__ = [
    "ANCHORS",
    "APT_LINE",
    "AnchorOutput",
    "anchor_rates",
    "available_anchors",
    "missing_note",
    "ogg_payload_bytes",
    "run_anchor",
    "tool_version",
]

FloatArray = npt.NDArray[np.float64]

APT_LINE = (
    "apt-get update && apt-get install -y opus-tools ffmpeg libvo-amrwbenc0 libopencore-amrwb0"
)
ANCHORS = ("opus-cbr", "opus-vbr", "amrwb", "speex-wb")
OPUS_FLAGS = {"opus-cbr": "--hard-cbr", "opus-vbr": "--vbr"}

AMRWB_MODES = {
    6.6: 0,
    8.85: 1,
    12.65: 2,
    14.25: 3,
    15.85: 4,
    18.25: 5,
    19.85: 6,
    23.05: 7,
    23.85: 8,
}
"""AMR-WB codec modes (3GPP TS 26.171) by bitrate."""
AMRWB_RATES = (8.85, 12.65, 15.85, 23.85)
AMRWB_FRAME_BYTES = {0: 18, 1: 24, 2: 33, 3: 37, 4: 41, 5: 47, 6: 51, 7: 59, 8: 61}
"""Storage-format frame size (1 table-of-contents byte + the octet-aligned speech bits)."""

SPEEX_QUALITY = {9.8: 3, 12.8: 4, 16.8: 5, 23.8: 7}
"""Speex wideband CBR quality -> bitrate (the Speex manual's wideband table, 20 ms frames)."""

# Fixed delays (input samples at 16 kHz) of each tool chain's output, removed so the
# output lines up with the input. Checked on real speech by cross-correlation in
# tests/recipes/test_anchors.py.
OPUS_DELAY = 0
"""opusdec removes the encoder's pre-skip itself."""
AMRWB_DELAY = 95
"""E_IF/D_IF: 5 ms look-ahead of the 12.8 kHz core plus 0.9375 ms of its resampling filters."""
SPEEX_DELAY = 222
"""Wideband look-ahead (about 2 x 80 samples of the narrowband core plus the QMF), as measured."""

# How far an anchor's operating point may lie from an svq bitrate to stand in its column.
RATE_TOLERANCE = 0.12


@dataclass(frozen=True)
class AnchorOutput:
    """One anchor round trip."""

    audio: FloatArray
    """Decoded 16 kHz mono signal, delay removed, same length as the input."""
    payload_kbps: float
    """Codec frames only (no container), over the input's duration."""
    file_kbps: float
    """The whole coded file (container included)."""
    encode_s: float
    decode_s: float


# --------------------------------------------------------------------------- availability


@cache
def _amrwb_libs() -> tuple[ctypes.CDLL, ctypes.CDLL] | None:
    enc_name = ctypes.util.find_library("vo-amrwbenc")
    dec_name = ctypes.util.find_library("opencore-amrwb")
    if enc_name is None or dec_name is None:
        return None
    try:
        enc, dec = ctypes.CDLL(enc_name), ctypes.CDLL(dec_name)
    except OSError:
        return None
    enc.E_IF_init.restype = ctypes.c_void_p
    enc.E_IF_encode.restype = ctypes.c_int
    enc.E_IF_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_short),
        ctypes.POINTER(ctypes.c_ubyte),
        ctypes.c_int,
    ]
    enc.E_IF_exit.argtypes = [ctypes.c_void_p]
    dec.D_IF_init.restype = ctypes.c_void_p
    dec.D_IF_decode.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_ubyte),
        ctypes.POINTER(ctypes.c_short),
        ctypes.c_int,
    ]
    dec.D_IF_exit.argtypes = [ctypes.c_void_p]
    return enc, dec


@cache
def _ffmpeg_has_speex() -> bool:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    res = subprocess.run(
        [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    )
    return " libspeex " in res.stdout


def missing_note(name: str) -> str | None:
    """``None`` when anchor ``name`` can run here, else a one-line note saying what is missing."""
    if name in OPUS_FLAGS:
        if shutil.which("opusenc") and shutil.which("opusdec"):
            return None
        return f"note: {name} skipped: opusenc/opusdec not on PATH ({APT_LINE})"
    if name == "amrwb":
        if _amrwb_libs() is not None:
            return None
        return f"note: amrwb skipped: libvo-amrwbenc / libopencore-amrwb not found ({APT_LINE})"
    if name == "speex-wb":
        if _ffmpeg_has_speex():
            return None
        return f"note: speex-wb skipped: ffmpeg with the libspeex encoder not on PATH ({APT_LINE})"
    raise ValueError(f"unknown anchor {name!r}; anchors are {', '.join(ANCHORS)}")


def available_anchors(names: tuple[str, ...] | list[str] = ANCHORS) -> tuple[list[str], list[str]]:
    """(anchors that can run, one-line notes for those that cannot)."""
    ok, notes = [], []
    for n in names:
        note = missing_note(n)
        if note is None:
            ok.append(n)
        else:
            notes.append(note)
    return ok, notes


def tool_version(name: str) -> str:
    """A string identifying the anchor's tool build (part of the recipe's cell fingerprint)."""
    if name in OPUS_FLAGS:
        res = subprocess.run(["opusenc", "--version"], capture_output=True, text=True, check=False)
        return (res.stdout or res.stderr).strip().splitlines()[0] + " " + OPUS_FLAGS[name]
    if name == "amrwb":
        libs = _amrwb_libs()
        paths = [Path(str(lib._name)).resolve() for lib in libs] if libs else []
        return "amrwb " + " ".join(p.name for p in paths) + f" delay={AMRWB_DELAY}"
    if name == "speex-wb":
        res = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False)
        return res.stdout.splitlines()[0] if res.stdout else "ffmpeg ?"
    raise ValueError(f"unknown anchor {name!r}")


def anchor_rates(name: str, svq_rates: list[float] | tuple[float, ...]) -> list[float]:
    """The operating points (kbit/s) at which to run anchor ``name`` beside ``svq_rates``.

    Opus runs at svq's own rates; AMR-WB and Speex at their modes that lie
    within 12 % of one of ``svq_rates``.
    """
    if name in OPUS_FLAGS:
        return list(svq_rates)
    table = AMRWB_RATES if name == "amrwb" else tuple(SPEEX_QUALITY)
    return [m for m in table if any(abs(m - b) <= RATE_TOLERANCE * b for b in svq_rates)]


def column_rate(name: str, kbps: float, svq_rates: list[float] | tuple[float, ...]) -> float | None:
    """The svq bitrate whose column the anchor's operating point ``kbps`` stands in."""
    if name in OPUS_FLAGS:
        return kbps if kbps in svq_rates else None
    best = min(svq_rates, key=lambda b: abs(b - kbps))
    return best if abs(best - kbps) <= RATE_TOLERANCE * best else None


# --------------------------------------------------------------------------- helpers


def ogg_payload_bytes(data: bytes) -> int:
    """Bytes of audio packets in an Ogg stream (pages' data minus the two header packets).

    Ogg Opus and Ogg Speex both start with two header packets (identification,
    comments); everything after them is audio. Page headers are container overhead.
    """
    pos, packets, payload, current = 0, 0, 0, 0
    while pos + 27 <= len(data):
        if data[pos : pos + 4] != b"OggS":
            raise ValueError("not an Ogg stream")
        n_seg = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + n_seg]
        pos += 27 + n_seg
        for lace in lacing:
            current += lace
            if lace < 255:  # packet ends here
                if packets >= 2:
                    payload += current
                packets += 1
                current = 0
        pos += sum(lacing)
    return payload


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"{Path(cmd[0]).name} exited {res.returncode}: {tail[0]}")


def _pcm16(x: FloatArray) -> npt.NDArray[np.int16]:
    return np.asarray(np.round(np.clip(x, -1.0, 1.0) * 32767.0), dtype=np.int16)


def _place(y: FloatArray, delay: int, n: int) -> FloatArray:
    """``y`` advanced by ``delay`` samples, zero-padded or cut to ``n``."""
    out = np.zeros(n)
    seg = y[delay : delay + n]
    out[: seg.size] = seg
    return out


def _write_wav(path: Path, x: FloatArray) -> None:
    import soundfile as sf

    sf.write(path, _pcm16(x), SAMPLE_RATE, subtype="PCM_16")


# --------------------------------------------------------------------------- codecs


def _opus(name: str, ref: FloatArray, kbps: float) -> AnchorOutput:
    with tempfile.TemporaryDirectory(prefix="svq-opus-") as tmp:
        wav, opus, dec = Path(tmp, "in.wav"), Path(tmp, "x.opus"), Path(tmp, "out.wav")
        _write_wav(wav, ref)
        t0 = time.perf_counter()
        _run(
            [
                "opusenc",
                "--quiet",
                OPUS_FLAGS[name],
                "--bitrate",
                f"{kbps:g}",
                "--framesize",
                "20",
                "--comp",
                "10",
                str(wav),
                str(opus),
            ]
        )
        t1 = time.perf_counter()
        _run(["opusdec", "--quiet", "--rate", str(SAMPLE_RATE), "--float", str(opus), str(dec)])
        t2 = time.perf_counter()
        data = opus.read_bytes()
        y, rate = read_audio(dec)
    return _ogg_output(to_mono_16k(y, rate), OPUS_DELAY, ref.size, data, t1 - t0, t2 - t1)


def _ogg_output(
    y: FloatArray, delay: int, n: int, data: bytes, encode_s: float, decode_s: float
) -> AnchorOutput:
    """An Ogg-contained anchor's output: aligned to ``n`` samples, rates from the file."""
    seconds = n / SAMPLE_RATE
    return AnchorOutput(
        _place(y, delay, n),
        8.0 * ogg_payload_bytes(data) / seconds / 1000.0,
        8.0 * len(data) / seconds / 1000.0,
        encode_s,
        decode_s,
    )


def _amrwb(ref: FloatArray, kbps: float) -> AnchorOutput:
    libs = _amrwb_libs()
    if libs is None:
        raise RuntimeError(missing_note("amrwb"))
    if kbps not in AMRWB_MODES:
        raise ValueError(f"AMR-WB has no {kbps:g} kbit/s mode; modes: {sorted(AMRWB_MODES)}")
    enc, dec = libs
    mode = AMRWB_MODES[kbps]
    frame = 320
    n_frames = -(-ref.size // frame) + 1  # one more frame flushes the delay
    pcm = np.zeros(n_frames * frame, dtype=np.int16)
    pcm[: ref.size] = _pcm16(ref)
    buf = (ctypes.c_ubyte * 64)()
    frames: list[bytes] = []
    t0 = time.perf_counter()
    state = enc.E_IF_init()
    try:
        for i in range(n_frames):
            chunk = np.ascontiguousarray(pcm[i * frame : (i + 1) * frame])
            n = enc.E_IF_encode(
                state, mode, chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), buf, 0
            )
            if n != AMRWB_FRAME_BYTES[mode]:
                raise RuntimeError(
                    f"AMR-WB encoder wrote {n} bytes, expected {AMRWB_FRAME_BYTES[mode]}"
                )
            frames.append(bytes(buf[:n]))
    finally:
        enc.E_IF_exit(state)
    t1 = time.perf_counter()
    out = np.zeros(n_frames * frame, dtype=np.int16)
    state = dec.D_IF_init()
    try:
        for i, f in enumerate(frames):
            fb = (ctypes.c_ubyte * len(f)).from_buffer_copy(f)
            seg = out[i * frame : (i + 1) * frame]
            dec.D_IF_decode(state, fb, seg.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), 0)
    finally:
        dec.D_IF_exit(state)
    t2 = time.perf_counter()
    seconds = ref.size / SAMPLE_RATE
    coded_s = len(frames) * 0.02
    header = b"#!AMR-WB\n"  # RFC 4867 storage format magic
    return AnchorOutput(
        _place(out.astype(np.float64) / 32768.0, AMRWB_DELAY, ref.size),
        8.0 * sum(len(f) - 1 for f in frames) / coded_s / 1000.0,  # ToC byte excluded
        8.0 * (len(header) + sum(len(f) for f in frames)) / seconds / 1000.0,
        t1 - t0,
        t2 - t1,
    )


def _speex(ref: FloatArray, kbps: float) -> AnchorOutput:
    if kbps not in SPEEX_QUALITY:
        raise ValueError(f"Speex-WB runs at {sorted(SPEEX_QUALITY)} kbit/s, not {kbps:g}")
    with tempfile.TemporaryDirectory(prefix="svq-speex-") as tmp:
        wav, spx, dec = Path(tmp, "in.wav"), Path(tmp, "x.spx"), Path(tmp, "out.wav")
        _write_wav(wav, ref)
        base = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        t0 = time.perf_counter()
        _run(
            base
            + ["-i", str(wav), "-c:a", "libspeex", "-cbr_quality", str(SPEEX_QUALITY[kbps])]
            + ["-frames_per_packet", "1", "-ar", str(SAMPLE_RATE), "-f", "ogg", str(spx)]
        )
        t1 = time.perf_counter()
        _run(base + ["-c:a", "libspeex", "-i", str(spx), "-ar", str(SAMPLE_RATE), str(dec)])
        t2 = time.perf_counter()
        data = spx.read_bytes()
        y, rate = read_audio(dec)
    return _ogg_output(to_mono_16k(y, rate), SPEEX_DELAY, ref.size, data, t1 - t0, t2 - t1)


def run_anchor(name: str, ref: npt.ArrayLike, kbps: float) -> AnchorOutput:
    """Encode and decode 16 kHz mono ``ref`` with anchor ``name`` at ``kbps``.

    Raises ``RuntimeError`` when the tool is missing or fails, ``ValueError``
    for an anchor or operating point that does not exist.
    """
    x = np.asarray(ref, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("anchors take a non-empty mono 1-D signal")
    note = missing_note(name)
    if note is not None:
        raise RuntimeError(note)
    if name in OPUS_FLAGS:
        return _opus(name, x, kbps)
    if name == "amrwb":
        return _amrwb(x, kbps)
    return _speex(x, kbps)


def nominal_ok(name: str, kbps: float, payload_kbps: float) -> bool:
    """Whether a measured payload rate fits the anchor's operating point.

    Constant-rate anchors (AMR-WB, Speex, Opus CBR) within 5 % above the
    nominal rate (AMR-WB's octet alignment adds up to 0.35 kbit/s) and never
    more than 2 % below; Opus VBR never more than 15 % above and at least 70 %
    of it (VBR spends less on easy files; at 8 kbit/s it measures ~6.2 on clean speech).
    """
    if not math.isfinite(payload_kbps):
        return False
    ratio = payload_kbps / kbps
    if name == "opus-vbr":
        return 0.70 <= ratio <= 1.15
    return 0.98 <= ratio <= 1.05
