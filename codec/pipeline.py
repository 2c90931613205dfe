"""Encoder and decoder: the stages of svq in sequence.

``encode``: audio -> mono 16 kHz -> pre-emphasis -> LPC/LSF analysis ->
envelope quantizer -> quantized LPC (via the decoder's own envelope decoder)
-> TCX residual coder -> frames -> ``.svq`` container.

``decode``: container -> frames -> envelope + TCX decoding -> inverse MDCT,
overlap-add -> de-emphasis -> 16 kHz audio of the input's length, time-aligned
with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from codec.analysis import (
    FRAME_LENGTH,
    SAMPLE_RATE,
    de_emphasis,
    lpc_analysis,
    lpc_to_lsf,
    lsf_to_lpc,
    pre_emphasis,
)
from codec.audio import to_mono_16k
from codec.bitstream import Header, pack_file, read_header, unpack_file
from codec.envelope import EnvelopeCoder
from codec.errors import BitstreamError, ParameterError
from codec.modes import mode_for
from codec.postfilter import pitch_postfilter
from codec.registry import find_envelope, hash_bytes, load_envelope
from codec.tcx import TCX

__all__ = ["encode", "decode", "info", "StreamInfo"]

FloatArray = npt.NDArray[np.float64]
_RESIDUAL_CODERS = {TCX.coder_id: TCX}
# shipped codebook used by `--envelope VARIANT` (plain VQ cannot afford 24 bits)
VARIANT_CODEBOOKS = {"avq": "avq-4x6", "rvq": "rvq-4x6", "pvq": "pvq-4x6", "vq": "vq-1x12"}
PITCH_MIN_CORR = 0.7  # frames less periodic than this are not comb-filtered


def _envelope_for(
    bitrate_kbps: float,
    envelope: str | None,
    codebook: str | os.PathLike[str] | None,
) -> EnvelopeCoder:
    if codebook is not None:
        env = load_envelope(codebook)
        if envelope is not None and env.quantizer.variant != envelope:
            raise ParameterError(
                f"--envelope {envelope} does not match the codebook's variant "
                f"{env.quantizer.variant}"
            )
        return env
    name = mode_for(bitrate_kbps).default_envelope
    if envelope is not None and envelope != name.split("-")[0]:
        name = VARIANT_CODEBOOKS.get(envelope, "")
        if not name:
            raise ParameterError(f"unknown envelope {envelope!r} (avq, rvq, pvq or vq)")
    return load_envelope(name)


def encode(
    audio: npt.ArrayLike,
    sample_rate: int,
    bitrate_kbps: float,
    *,
    envelope: str | None = None,
    codebook: str | os.PathLike[str] | None = None,
) -> bytes:
    """Encode audio to a complete ``.svq`` byte string.

    Parameters
    ----------
    audio : array_like, shape (n,) or (n, channels)
        Samples, float in [-1, 1] (any sample rate, any channel count).
    sample_rate : int
        Rate of ``audio`` in Hz; resampled to 16 kHz.
    bitrate_kbps : float
        One of 8, 9.6, 13.2, 16.4, 24.4, 32.
    envelope : {'avq', 'rvq', 'pvq', 'vq'}, optional
        Envelope quantizer variant (shipped codebook of this bitrate's size).
    codebook : path, optional
        A codebook file (``svq train``) to use instead of the shipped ones.

    Returns
    -------
    bytes
        Header + frames (exactly ``bitrate * 20 ms / 8`` bytes each) + CRC-32.
    """
    mode = mode_for(bitrate_kbps)
    env = _envelope_for(bitrate_kbps, envelope, codebook)
    x = to_mono_16k(audio, sample_rate)
    n_samples = x.size
    y, _ = pre_emphasis(x)
    tcx = TCX()
    n = tcx.n_frames(n_samples)
    frames: list[bytes] = []
    if n:
        # LPC frame k is aligned with MDCT frame k; pad so both give n frames
        lsf = lpc_to_lsf(lpc_analysis(np.r_[y, np.zeros(n * FRAME_LENGTH - y.size)]).a)
        idx = env.encode(lsf)
        a_q = lsf_to_lpc(env.decode(idx))
        coefs = tcx.analyze(y)
        frames = tcx.encode(coefs, a_q, idx, env.field_bits, mode.frame_bytes)
    header = Header(
        sample_rate=SAMPLE_RATE,
        frame_length=FRAME_LENGTH,
        bitrate_bps=mode.bitrate_bps,
        frame_bytes=mode.frame_bytes,
        frame_count=n,
        sample_count=n_samples,
        residual_coder=TCX.coder_id,
        envelope_id=env.name,
        codebook_hash=hash_bytes(env.content_hash),
    )
    return pack_file(header, frames)


def decode(
    data: bytes, *, codebooks: Iterable[str | os.PathLike[str]] = ()
) -> tuple[FloatArray, int]:
    """Decode a ``.svq`` byte string.

    Parameters
    ----------
    data : bytes
        A complete ``.svq`` file.
    codebooks : iterable of paths
        Extra codebook files to search for the one named in the header.

    Returns
    -------
    audio : ndarray, shape (sample_count,)
        Float64 samples at 16 kHz, aligned with the encoder's input.
    sample_rate : int
        16000.
    """
    header, frames = unpack_file(bytes(data))
    _check_header(header)
    env = find_envelope(header.codebook_hash, codebooks)
    tcx = _RESIDUAL_CODERS[header.residual_coder]()

    def lpc_from_indices(idx: npt.NDArray[np.int64]) -> FloatArray:
        limit = 1 << env.quantizer.bits_per_stage
        if np.any(idx >= limit):  # pragma: no cover - raw bits cannot exceed the width
            raise BitstreamError("corrupt frame: envelope index out of range")
        return lsf_to_lpc(env.decode(idx))

    if not frames:
        return np.zeros(0), SAMPLE_RATE
    coefs = tcx.decode(frames, env.field_bits, lpc_from_indices)
    y = tcx.synthesize(coefs, header.sample_count)
    x, _ = de_emphasis(y)
    strength = mode_for(header.bitrate_bps / 1000.0).pitch_postfilter
    if strength > 0:
        x = pitch_postfilter(x, strength=strength, min_corr=PITCH_MIN_CORR)
    return x, SAMPLE_RATE


def _check_header(h: Header) -> None:
    if h.sample_rate != SAMPLE_RATE or h.frame_length != FRAME_LENGTH:
        raise BitstreamError(
            f"unsupported stream: {h.sample_rate} Hz, {h.frame_length}-sample frames"
        )
    try:
        mode = mode_for(h.bitrate_bps / 1000.0)
    except ParameterError as exc:
        raise BitstreamError(f"corrupt header: {exc}") from exc
    if mode.frame_bytes != h.frame_bytes:
        raise BitstreamError("corrupt header: frame size does not match the bitrate")
    if h.residual_coder not in _RESIDUAL_CODERS:
        raise BitstreamError(f"unknown residual coder id {h.residual_coder}")
    if h.frame_count != TCX().n_frames(h.sample_count):
        raise BitstreamError("corrupt header: frame count does not match the sample count")


@dataclass(frozen=True)
class StreamInfo:
    """What ``svq info`` shows."""

    format_version: int
    bitrate_kbps: float
    frame_bytes: int
    frame_count: int
    sample_count: int
    duration_s: float
    envelope_id: str
    codebook_hash: str
    residual_coder: int
    file_bytes: int


def info(data: bytes) -> StreamInfo:
    """Header summary of a ``.svq`` byte string (validates the whole file)."""
    from codec.bitstream import FORMAT_VERSION

    h, _ = unpack_file(bytes(data))
    read_header(data)
    return StreamInfo(
        format_version=FORMAT_VERSION,
        bitrate_kbps=h.bitrate_bps / 1000.0,
        frame_bytes=h.frame_bytes,
        frame_count=h.frame_count,
        sample_count=h.sample_count,
        duration_s=h.sample_count / SAMPLE_RATE,
        envelope_id=h.envelope_id,
        codebook_hash=h.codebook_hash.hex(),
        residual_coder=h.residual_coder,
        file_bytes=len(data),
    )
