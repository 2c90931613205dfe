"""Bitrate modes: frame sizes and the default envelope quantizer of each bitrate."""

from __future__ import annotations

from typing import NamedTuple

from codec.errors import ParameterError

__all__ = ["Mode", "MODES", "BITRATES_KBPS", "mode_for", "parse_bitrate", "FRAME_SECONDS"]

FRAME_SECONDS = 0.02


class Mode(NamedTuple):
    """One constant-bitrate operating point."""

    bitrate_kbps: float
    default_envelope: str
    """Name of the shipped codebook used when none is given (see codec/data/)."""
    coded_bins: int = 320
    """MDCT bins (25 Hz each) coded by value; the band above is noise at a coded level."""

    @property
    def bitrate_bps(self) -> int:
        return int(round(self.bitrate_kbps * 1000))

    @property
    def frame_bytes(self) -> int:
        """Exactly bitrate x 20 ms / 8 bytes per frame."""
        return self.bitrate_bps * 20 // 8000


# The default envelope per bitrate is the best configuration measured with
# recipes/envelope_sd.py and recipes/bitrate_vs_pesq.py (see RESULTS.md).
MODES: dict[float, Mode] = {
    m.bitrate_kbps: m
    for m in (
        Mode(8.0, "avq-4x6", 80),
        Mode(9.6, "avq-4x6", 96),
        # 32 bits of envelope from 13.2 kbit/s up (RESULTS.md §1: PESQ-WB and ViSQOL
        # both rose there; at 8 and 9.6 kbit/s the 8 bits are worth more to the
        # residual (both metrics fell or did not rise), and at 32 kbit/s PESQ fell)
        Mode(13.2, "rvq-4x8", 120),
        Mode(16.4, "rvq-4x8", 160),
        # 7 kHz coded by value at 24.4 kbit/s from format 5 on (5 kHz before): PESQ-WB,
        # ViSQOL and pSNR all rose (RESULTS.md §1); at 13.2 and 16.4 kbit/s a wider
        # band lowered ViSQOL
        Mode(24.4, "rvq-4x8", 280),
        Mode(32.0, "avq-4x6", 320),
    )
}
BITRATES_KBPS: tuple[float, ...] = tuple(MODES)


def mode_for(bitrate_kbps: float) -> Mode:
    """The mode of a supported bitrate; a clear error naming the nearest for any other."""
    for rate, mode in MODES.items():
        if abs(float(bitrate_kbps) - rate) < 1e-6:
            return mode
    supported = ", ".join(f"{r:g}" for r in MODES)
    nearest = min(MODES, key=lambda r: abs(r - float(bitrate_kbps)))
    raise ParameterError(
        f"unsupported bitrate {bitrate_kbps!r} kbit/s (nearest: {nearest:g}; "
        f"supported: {supported})"
    )


def parse_bitrate(text: str) -> float:
    """A bitrate as users write it: ``13.2``, ``13.2k`` or ``13200`` (bit/s) -> kbit/s.

    Values of 1000 and more are taken as bit/s. Raises :class:`ParameterError`
    for text that is not a number; the rate itself is checked by :func:`mode_for`.
    """
    t = text.strip().lower()
    for suffix in ("kbit/s", "kbps", "k"):
        if t.endswith(suffix):
            t = t[: -len(suffix)]
            break
    try:
        value = float(t)
    except ValueError:
        raise ParameterError(
            f"bitrate {text!r} is not a number (e.g. 13.2, 13.2k, 13200)"
        ) from None
    return value / 1000.0 if value >= 1000.0 else value
