"""Frame-loss concealment: a substitute for a frame the decoder did not receive.

A lost frame is replaced in the MDCT domain, so the overlap-add with its
neighbours, the de-emphasis and the postfilter run as for a received frame:

* the spectral magnitudes of the last good frame are repeated, which keeps its
  envelope and its harmonic structure;
* the signs are drawn afresh (:func:`codec.tcx.frame_signs` of the lost
  frame's index): repeating the signs too would repeat the frame's waveform
  and the time-domain aliasing of the MDCT with it, heard as a buzz;
* the level fades with each consecutive lost frame (by :data:`FADE` per frame)
  and mutes after :data:`MUTE_AFTER` frames, so a long burst becomes silence
  instead of a frozen vowel.

The next good frame is decoded as usual (frames are coded independently; the
only state that carries over is the overlap of the MDCT and the filters).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from codec.tcx import frame_signs

__all__ = ["Concealer", "FADE", "MUTE_AFTER"]

FloatArray = npt.NDArray[np.float64]
FADE = 0.7
"""Gain applied per consecutive lost frame (about -3 dB per 20 ms)."""
FIRST_GAIN = 0.9
"""Gain of the first lost frame relative to the last good one."""
MUTE_AFTER = 8
"""Consecutive lost frames after which the output is silent (160 ms)."""
_SIGN_OFFSET = 1 << 31  # concealment signs differ from the noise filler's of the same frame


class Concealer:
    """Keeps the last good frame's coefficients and makes substitutes for lost ones."""

    def __init__(self, n_bins: int = 320) -> None:
        self.n_bins = n_bins
        self._last = np.zeros(n_bins)
        self.run = 0
        """Consecutive frames concealed so far (0 after a good frame)."""

    def gain(self, run: int) -> float:
        """Level of the ``run``-th consecutive lost frame relative to the last good one."""
        if run > MUTE_AFTER:
            return 0.0
        return float(FIRST_GAIN * FADE ** (run - 1))

    def fill(self, coefs: FloatArray, lost: npt.NDArray[np.bool_], frame_index: int) -> None:
        """Replace, in place, the rows of ``coefs`` marked ``lost``.

        Parameters
        ----------
        coefs : ndarray, shape (k, n_bins)
            Decoded MDCT coefficients of ``k`` consecutive frames (lost rows
            are overwritten, good rows update the memory).
        lost : ndarray of bool, shape (k,)
        frame_index : int
            Stream index of ``coefs[0]``.
        """
        for i in range(coefs.shape[0]):
            if not lost[i]:
                self._last = coefs[i].copy()
                self.run = 0
                continue
            self.run += 1
            g = self.gain(self.run)
            signs = frame_signs([frame_index + i + _SIGN_OFFSET], self.n_bins)[0]
            coefs[i] = g * np.abs(self._last) * signs
