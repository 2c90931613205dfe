"""Audio input: reading files, mono downmix and conversion to 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from codec.errors import AudioInputError, ParameterError

__all__ = ["SAMPLE_RATE", "read_audio", "to_mono_16k", "resample"]

SAMPLE_RATE = 16000
FloatArray = npt.NDArray[np.float64]


def resample(x: npt.ArrayLike, from_rate: int, to_rate: int) -> FloatArray:
    """High-quality resampling of a 1-D signal (soxr, 'VHQ').

    Parameters
    ----------
    x : array_like, shape (n,)
    from_rate, to_rate : int
        Sample rates in Hz.

    Returns
    -------
    y : ndarray, shape (round(n * to_rate / from_rate),)
    """
    xa = np.asarray(x, dtype=np.float64)
    if from_rate <= 0 or to_rate <= 0:
        raise ParameterError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate or xa.size == 0:
        return xa.copy()
    import soxr

    return np.asarray(soxr.resample(xa, from_rate, to_rate, quality="VHQ"), dtype=np.float64)


def to_mono_16k(audio: npt.ArrayLike, sample_rate: int) -> FloatArray:
    """Downmix to mono (mean of channels) and resample to 16 kHz.

    Parameters
    ----------
    audio : array_like, shape (n,) or (n, channels)
    sample_rate : int

    Returns
    -------
    x : ndarray, shape (m,), float64
    """
    a = np.asarray(audio)
    if a.ndim not in (1, 2):
        raise AudioInputError(f"audio must have shape (n,) or (n, channels), got {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise AudioInputError(f"audio must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise AudioInputError("audio contains NaN or infinite samples")
    if a.ndim == 2:
        a = a.mean(axis=1)
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ParameterError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    return resample(a, int(sample_rate), SAMPLE_RATE)


def read_audio(path: str | Path) -> tuple[FloatArray, int]:
    """Read any soundfile-readable file as float64 in [-1, 1].

    Returns
    -------
    audio : ndarray, shape (n,) or (n, channels)
    sample_rate : int
    """
    import soundfile as sf

    p = Path(path)
    if p.is_dir():
        raise AudioInputError(f"{p} is a directory, not an audio file")
    if not p.exists():
        raise AudioInputError(f"{p}: no such file")
    try:
        data, rate = sf.read(str(p), dtype="float64", always_2d=False)
    except Exception as exc:  # soundfile raises several types for unreadable input
        reason = str(exc).rsplit(": ", 1)[-1].strip().rstrip(".") or type(exc).__name__
        raise AudioInputError(f"{p}: cannot read audio ({reason})") from exc
    return np.asarray(data, dtype=np.float64), int(rate)
