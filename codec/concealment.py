"""Frame-loss concealment: a substitute for a frame the decoder did not receive.

A lost frame is replaced by MDCT coefficients, so the overlap-add with its
neighbours, the pitch post-filter (with the last received parameters) and the de-emphasis
run as for a received frame.
Two substitutes, chosen by the periodicity of the signal decoded just before
the loss (the normalised correlation at the best pitch lag of the last 20 ms,
as :func:`codec.residual.pitch.estimate_pitch` measures it):

* voiced (correlation >= :data:`VOICED_CORR`): the last pitch cycle of the
  synthesised (pre-emphasised) signal is repeated over the lost frame's
  window and transformed with the MDCT -- a time-domain pitch extrapolation
  that continues the harmonics with their phases, so the overlap with the
  previous frame joins smoothly;
* otherwise: the spectral magnitudes of the last good frame with fresh signs
  (:func:`codec.residual.tcx.frame_signs` of the lost frame's index), a noise of the
  same spectral envelope -- repeating the signs too would repeat the waveform
  and its time-domain aliasing, heard as a buzz.

With the frame after the loss at hand (:meth:`Concealer.interpolate`: a
whole-file decode, or a :class:`codec.pipeline.StreamDecoder` with
``conceal="interpolate"`` that holds a run of lost frames back until the next
frame arrives), the substitute is interpolated between the two neighbours
instead: magnitudes interpolated linearly between the last and the next good
frame, with signs from a waveform bridge when the next frame is voiced (its
first pitch cycle, from the alias-free flat part of its window, repeated
backwards and cross-faded with the last pitch cycle repeated forwards, or
alone at an onset), else from the MDCT of the last pitch cycle repeated
(voiced before the loss, as above) or fresh (otherwise), each band of
:data:`BAND` coefficients scaled to the energy interpolated geometrically
between the two neighbours' bands (the
``t``-th of ``L`` lost frames at weight ``t / (L + 1)``, the scale capped at
:data:`MAX_SCALE`). Runs longer than :data:`MUTE_AFTER` are concealed causally.

Causally, the level fades with each consecutive lost frame (:data:`FIRST_GAIN`, then
:data:`FADE` per frame) and mutes after :data:`MUTE_AFTER` frames, so a long
burst becomes silence instead of a frozen vowel. The next good frame is decoded
as usual: frames are coded independently, and the only state that carries
over is the overlap of the MDCT and the filters.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from codec.residual import mdct
from codec.residual.pitch import estimate_pitch
from codec.residual.tcx import frame_signs

__all__ = ["BAND", "Concealer", "FADE", "FIRST_GAIN", "MAX_SCALE", "MUTE_AFTER", "VOICED_CORR"]

FloatArray = npt.NDArray[np.float64]
FADE = 0.7
"""Gain applied per further consecutive lost frame (about -3 dB per 20 ms)."""
FIRST_GAIN = 0.9
"""Gain of the first lost frame relative to the signal before it."""
MUTE_AFTER = 8
"""Consecutive lost frames after which the output is silent (160 ms)."""
VOICED_CORR = 0.6
"""Pitch correlation above which a loss is concealed by pitch extrapolation."""
BAND = 16
"""Coefficients per band whose energy the interpolating concealment sets (400 Hz)."""
MAX_SCALE = 4.0
"""Largest amplitude factor the interpolating concealment applies to a band's shape."""
BRIDGE_MIN_LAG = 32
BRIDGE_MAX_LAG = 160
"""Lags searched in the next frame's flat part (240 samples) for the waveform bridge."""
_SIGN_OFFSET = 1 << 31  # concealment signs differ from the noise filler's of the same frame
_HISTORY = 640  # two frames: the longest lag (320) and a frame to correlate


class Concealer:
    """Remembers the recent output and makes substitutes for lost frames.

    Parameters
    ----------
    n : int
        MDCT hop (coefficients per frame).
    overlap : int
        MDCT window overlap ``L``.
    """

    def __init__(self, n: int = 320, overlap: int = 80) -> None:
        self.n = n
        self.overlap = overlap
        self._window = mdct.mdct_window(n, overlap)
        self._last = np.zeros(n)
        self._history = np.zeros(_HISTORY)
        self._lag = 0
        self._bridge: FloatArray | None = None
        self.run = 0
        """Consecutive frames concealed so far (0 after a good frame)."""

    def gain(self, run: int) -> float:
        """Level of the ``run``-th consecutive lost frame relative to the last good one."""
        if run > MUTE_AFTER:
            return 0.0
        return float(FIRST_GAIN * FADE ** (run - 1))

    def good(self, coefs: FloatArray) -> None:
        """A received frame's coefficients (the last of a run is what counts)."""
        self._last = np.asarray(coefs, dtype=np.float64).copy()
        self.run = 0

    def observe(self, y: FloatArray) -> None:
        """Synthesised output samples (final, pre-emphasised), in order."""
        if y.size >= _HISTORY:
            self._history = y[-_HISTORY:].copy()
        else:
            self._history = np.r_[self._history[y.size :], y]

    def substitute(self, frame_index: int) -> FloatArray:
        """MDCT coefficients to use for the lost frame ``frame_index``."""
        self.run += 1
        g = self.gain(self.run)
        if g == 0.0:
            return np.zeros(self.n)
        if self.run == 1:
            lags, corr = estimate_pitch(self._history[-2 * self.n :])
            self._lag = int(lags[-1]) if corr[-1] >= VOICED_CORR else 0
        if self._lag:
            # history ends where the lost frame's window rises (k*n - overlap);
            # the window covers overlap + n samples from there
            rel = g / self.gain(self.run - 1) if self.run > 1 else g
            cycle = self._history[-self._lag :]
            return self._window_mdct(np.resize(cycle, self.n + self.overlap) * rel)
        signs = frame_signs([frame_index + _SIGN_OFFSET], self.n)[0]
        return np.asarray(g * np.abs(self._last) * signs, dtype=np.float64)

    def _waveform_bridge(self, next_coefs: FloatArray, length: int) -> FloatArray | None:
        """The lost run's signal in the time domain, from where the first lost frame's
        window rises to where the next good frame's flat part starts: the last pitch
        cycle repeated forwards, the next frame's first pitch cycle repeated
        backwards, cross-faded linearly. None when the next frame is not voiced."""
        n, ov = self.n, self.overlap
        nxt = mdct.imdct(np.asarray(next_coefs, dtype=np.float64), self._window)
        lead = (n - ov) // 2
        fut = nxt[lead + ov : lead + n]  # the next frame's flat part: no aliasing
        lag_n, corr_n = _best_lag(fut, BRIDGE_MIN_LAG, min(BRIDGE_MAX_LAG, fut.size // 2))
        if corr_n < VOICED_CORR:
            return None
        span = length * n + ov
        if not self._lag:  # an onset: the next frame's cycle alone
            return np.asarray(fut[np.mod(np.arange(-span, 0), lag_n)], dtype=np.float64)
        fwd = np.resize(self._history[-self._lag :], span)
        m = np.arange(span) - span  # sample offsets before the next frame's flat part
        bwd = fut[np.mod(m, lag_n)]
        w = (np.arange(span) + 0.5) / span
        return np.asarray((1.0 - w) * fwd + w * bwd, dtype=np.float64)

    def _window_mdct(self, samples: FloatArray) -> FloatArray:
        """MDCT of ``n + overlap`` samples placed where a frame's window is nonzero."""
        lead = (self.n - self.overlap) // 2
        block = np.zeros(2 * self.n)
        block[lead : lead + self.n + self.overlap] = samples
        return np.asarray(mdct.mdct(block, self._window), dtype=np.float64)

    def _bridge_block(self, position: int) -> FloatArray:
        """MDCT of the waveform bridge over the ``position``-th lost frame's window."""
        assert self._bridge is not None
        start = (position - 1) * self.n
        return self._window_mdct(self._bridge[start : start + self.n + self.overlap])

    def _pitch_block(self) -> FloatArray:
        """MDCT of the last pitch cycle repeated over the lost frame's window (unfaded)."""
        return self._window_mdct(np.resize(self._history[-self._lag :], self.n + self.overlap))

    def interpolate(
        self, frame_index: int, next_coefs: FloatArray, position: int, length: int
    ) -> FloatArray:
        """MDCT coefficients for lost frame ``frame_index``, the ``position``-th (from 1)
        of ``length`` lost frames between the last good frame and ``next_coefs``."""
        self.run += 1
        if self.run == 1:
            lags, corr = estimate_pitch(self._history[-2 * self.n :])
            self._lag = int(lags[-1]) if corr[-1] >= VOICED_CORR else 0
            self._bridge = self._waveform_bridge(next_coefs, length)
        w = position / (length + 1)
        nxt = np.abs(np.asarray(next_coefs, dtype=np.float64))
        prev = np.abs(self._last)
        if self._bridge is not None:  # phases continue from both sides
            signs = np.sign(self._bridge_block(position))
        elif self._lag:  # the signs of the repeated pitch cycle: phases continue
            signs = np.sign(self._pitch_block())
        else:
            signs = frame_signs([frame_index + _SIGN_OFFSET], self.n)[0]
        shape = ((1.0 - w) * prev + w * nxt) * signs
        edges = np.arange(0, self.n, BAND)
        tiny = 1e-12
        e_prev = np.add.reduceat(prev**2, edges) + tiny
        e_next = np.add.reduceat(nxt**2, edges) + tiny
        target = np.exp((1.0 - w) * np.log(e_prev) + w * np.log(e_next))
        have = np.add.reduceat(shape**2, edges) + tiny
        scale = np.minimum(np.sqrt(target / have), MAX_SCALE)
        return np.asarray(shape * np.repeat(scale, np.diff(np.r_[edges, self.n])), dtype=np.float64)


def _best_lag(x: FloatArray, lo: int, hi: int) -> tuple[int, float]:
    """The lag in ``[lo, hi]`` of highest normalised correlation of ``x`` with itself."""
    best, best_c = lo, -1.0
    for t in range(lo, hi + 1):
        a, b = x[t:], x[:-t]
        den = np.sqrt(np.dot(a, a) * np.dot(b, b))
        c = float(np.dot(a, b) / den) if den > 0 else 0.0
        if c > best_c:
            best, best_c = t, c
    return best, best_c
