"""Audio input: reading files, mono downmix and conversion to 16 kHz."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from codec.errors import AudioInputError, ParameterError

__all__ = ["SAMPLE_RATE", "read_audio", "to_mono_16k", "resample", "downmix", "AudioReader"]

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


def downmix(audio: npt.ArrayLike) -> FloatArray:
    """Check samples (numeric, finite, 1-D or 2-D) and average the channels.

    Parameters
    ----------
    audio : array_like, shape (n,) or (n, channels)

    Returns
    -------
    x : ndarray, shape (n,), float64
    """
    a = np.asarray(audio)
    if a.ndim not in (1, 2):
        raise AudioInputError(f"audio must have shape (n,) or (n, channels), got {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise AudioInputError(f"audio must be numeric, got dtype {a.dtype}")
    x = a.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise AudioInputError("audio contains NaN or infinite samples")
    return np.asarray(x.mean(axis=1) if x.ndim == 2 else x, dtype=np.float64)


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
    a = downmix(audio)
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
    p = Path(path)
    if p.is_dir():
        raise AudioInputError(f"{p} is a directory, not an audio file")
    if not p.exists():
        raise AudioInputError(f"{p}: no such file")
    with open(p, "rb") as fh, AudioReader(fh, str(p)) as src:  # only the decoded samples
        blocks = list(src.blocks())
        data = np.concatenate(blocks) if blocks else np.zeros((0, src.channels))
        rate = src.sample_rate
    return (data[:, 0] if data.shape[1] == 1 else data), int(rate)


def _reason(exc: BaseException) -> str:
    return str(exc).rsplit(": ", 1)[-1].strip().rstrip(".") or type(exc).__name__


class AudioReader:
    """Read a soundfile-readable file in blocks (bounded memory), with one-line errors.

    Parameters
    ----------
    source : binary file object
        Seekable handle on the audio data (:func:`codec.fileio.open_input`).
    name : str
        How errors name the input.

    Attributes
    ----------
    sample_rate, channels, frames : int
        As the file's header says (``frames`` is the number of samples per channel).
        For compressed formats ``frames`` is an estimate (MP3 without a gapless
        tag, a truncated file): :meth:`blocks` yields the samples actually
        decoded, and :attr:`samples_read` counts them.
    """

    def __init__(self, source: BinaryIO, name: str) -> None:
        self.name = name
        # a plain 16-bit PCM WAV is read here: importing soundfile (and loading
        # libsndfile) costs more than encoding a short file; anything else goes to it
        self._snd: Any = _Pcm16Wav.open(source)
        self._errors: tuple[type[Exception], ...] = ()
        if self._snd is None:
            import soundfile as sf

            self._errors = (sf.SoundFileError,)
            try:
                self._snd = sf.SoundFile(source)
            except Exception as exc:  # soundfile raises several types for unreadable input
                raise AudioInputError(f"{name}: cannot read audio ({_reason(exc)})") from exc
        self.sample_rate = int(self._snd.samplerate)
        self.channels = int(self._snd.channels)
        self.frames = int(self._snd.frames)
        self.samples_read = 0

    def blocks(self, size: int = 1 << 16) -> Iterator[FloatArray]:
        """Blocks of at most ``size`` samples, float64 in [-1, 1], shape (n, channels).

        Reads until the decoder returns no more samples, whatever ``frames``
        says (``SoundFile.blocks`` trusts ``frames`` and, when that estimate is
        too large, repeats stale samples of its buffer; when too small, stops early).
        """
        try:
            while True:
                # with ``out`` given, soundfile reads up to its length, not up to ``frames``
                buf = np.empty((size, self.channels), dtype=np.float64)
                block = self._snd.read(out=buf)
                if block.shape[0] == 0:
                    return
                self.samples_read += block.shape[0]
                yield np.asarray(block, dtype=np.float64)
        except self._errors as exc:  # soundfile's read errors (none for _Pcm16Wav)
            raise AudioInputError(f"{self.name}: cannot read audio ({_reason(exc)})") from exc

    def close(self) -> None:
        self._snd.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pcm16Wav:
    """What :class:`AudioReader` uses of a ``soundfile.SoundFile``, for the common
    input that needs no libsndfile: a 16-bit PCM WAV, read by the standard
    library's :mod:`wave`. Samples come out as soundfile gives them (``int16 /
    32768``, exact)."""

    def __init__(self, wav: Any) -> None:
        self._wav = wav
        self.samplerate = int(wav.getframerate())
        self.channels = int(wav.getnchannels())
        self.frames = int(wav.getnframes())

    @classmethod
    def open(cls, fh: BinaryIO) -> _Pcm16Wav | None:
        """The reader of ``fh``, or ``None`` (``fh`` rewound) when it is anything
        else (another format or sample type, or not seekable): soundfile reads
        (or rejects) it then."""
        import wave

        try:
            start = fh.tell()
        except (AttributeError, OSError, ValueError):  # not a seekable binary file
            return None
        try:
            wav = wave.open(fh, "rb")  # noqa: SIM115 - closed with the reader
            if (
                wav.getsampwidth() == 2
                and wav.getcomptype() == "NONE"
                and wav.getnframes() > 0
                and wav.getframerate() > 0
            ):
                return cls(wav)
        except (wave.Error, EOFError, OSError, ValueError):  # not a WAV wave reads
            pass
        fh.seek(start)
        return None

    def read(self, out: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Read up to ``len(out)`` frames into ``out``; returns the part filled."""
        raw = self._wav.readframes(out.shape[0])
        n = len(raw) // (2 * self.channels)
        pcm = np.frombuffer(raw, dtype=np.int16, count=n * self.channels)  # native order
        block = out[:n]
        block[...] = pcm.reshape(n, self.channels)
        block *= 1.0 / 32768.0
        return block

    def close(self) -> None:
        """(The file handle is the caller's, as with soundfile.)"""
