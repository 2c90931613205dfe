"""Decoder-side pitch (harmonic) postfilter.

Voiced speech is a harmonic comb; at low rates the residual coder spends its
few bits on the strongest bins and noise-fills the rest, which fills the gaps
between harmonics with noise. This postfilter estimates the pitch lag of each
20 ms frame from the *decoded* signal (no side information) and applies the
symmetric comb

    y[n] = x[n] + a (x[n - T] + x[n + T]) / 2,    a = strength * max(0, ρ(T)),

where ρ(T) is the normalised correlation at lag T, then restores the frame
energy. Frames without clear periodicity (ρ < ``min_corr``) pass unchanged;
the gain and the energy correction are interpolated between frames to avoid
clicks.

The comb looks ``T <= 320`` samples ahead, so :class:`PitchPostfilter` (the
streaming form) holds one frame back: frame ``k`` is output once the samples
up to the end of frame ``k + 1`` have arrived. Every quantity is computed per
frame from that frame's own neighbourhood, so the output does not depend on
how the input is cut into chunks; :func:`pitch_postfilter` runs it on a whole
signal.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["pitch_postfilter", "estimate_pitch", "PitchPostfilter"]

FloatArray = npt.NDArray[np.float64]
FRAME = 320
MIN_LAG = 40  # 400 Hz
MAX_LAG = 320  # 50 Hz
_LAGS = np.arange(MIN_LAG, MAX_LAG + 1)


def _frame_pitch(pad: FloatArray, n_frames: int) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Best lag and correlation of frames ``pad[MAX_LAG + k*FRAME : ...]``, k < n_frames.

    ``pad`` holds ``MAX_LAG`` samples of history before the first frame.
    """
    cur = pad[MAX_LAG : MAX_LAG + n_frames * FRAME].reshape(n_frames, FRAME)
    e_cur = np.einsum("kn,kn->k", cur, cur)
    # per-frame local cumulative energy of [start - MAX_LAG, start + FRAME)
    local = np.lib.stride_tricks.sliding_window_view(
        pad[: (n_frames - 1) * FRAME + MAX_LAG + FRAME], MAX_LAG + FRAME
    )[::FRAME]
    lc = np.concatenate((np.zeros((n_frames, 1)), np.cumsum(local * local, axis=1)), axis=1)
    corr = np.empty((n_frames, _LAGS.size))
    for j, lag in enumerate(_LAGS):  # one vectorised pass over all frames per lag
        past = pad[MAX_LAG - lag : MAX_LAG - lag + n_frames * FRAME].reshape(n_frames, FRAME)
        num = np.einsum("kn,kn->k", cur, past)
        e_past = lc[:, MAX_LAG - lag + FRAME] - lc[:, MAX_LAG - lag]
        corr[:, j] = num / np.sqrt(np.maximum(e_cur * e_past, 1e-20))
    best = np.argmax(corr, axis=1)
    return _LAGS[best].astype(np.int64), corr[np.arange(n_frames), best]


def estimate_pitch(
    x: FloatArray, *, frame: int = FRAME
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Pitch lag and normalised correlation per frame of ``x``.

    The correlation of frame ``k`` (samples ``[k*frame, (k+1)*frame)``) with
    the signal ``T`` samples earlier, maximised over ``T`` in [40, 320].

    Returns
    -------
    lags : ndarray of int, shape (n_frames,)
    corr : ndarray, shape (n_frames,), in [-1, 1]
    """
    if frame != FRAME:
        raise ValueError(f"frame must be {FRAME}")
    xa = np.asarray(x, dtype=np.float64)
    n_frames = -(-xa.size // FRAME)
    if n_frames == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    pad = np.zeros(MAX_LAG + n_frames * FRAME)
    pad[MAX_LAG : MAX_LAG + xa.size] = xa
    return _frame_pitch(pad, n_frames)


class PitchPostfilter:
    """Streaming pitch postfilter (one frame of look-ahead).

    Parameters
    ----------
    strength : float
        Comb gain at perfect periodicity (0 disables the filter).
    min_corr : float
        Frames whose best normalised correlation is below this pass unchanged.
    total : int, optional
        Length of the whole signal, when known: signals shorter than two
        frames pass unchanged (too short for a reliable pitch).
    """

    def __init__(self, strength: float, min_corr: float, total: int | None = None) -> None:
        self.strength = float(strength)
        self.min_corr = float(min_corr)
        self.bypass = self.strength <= 0.0 or (total is not None and total < 2 * FRAME)
        # buffer: MAX_LAG samples of history, then the not yet output samples
        self._buf = np.zeros(MAX_LAG)
        self._prev_gain = 0.0
        self._prev_scale = 1.0

    def process(self, x: npt.ArrayLike) -> FloatArray:
        """Feed samples; returns the filtered samples now final (one frame behind)."""
        xa = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.bypass:
            return xa.copy()
        self._buf = np.concatenate((self._buf, xa))
        # frame k needs MAX_LAG look-ahead beyond its end
        ready = max(0, (self._buf.size - MAX_LAG - MAX_LAG) // FRAME)
        return self._run(ready)

    def flush(self) -> FloatArray:
        """Output the rest (the signal is taken as zero beyond its end)."""
        if self.bypass:
            return np.zeros(0)
        pending = self._buf.size - MAX_LAG
        if pending <= 0:
            return np.zeros(0)
        n = -(-pending // FRAME)
        self._buf = np.concatenate((self._buf, np.zeros(n * FRAME - pending + MAX_LAG)))
        return self._run(n)[:pending]

    def _run(self, n: int) -> FloatArray:
        if n == 0:
            return np.zeros(0)
        pad = self._buf
        lags, corr = _frame_pitch(pad, n)
        gains = np.where(corr >= self.min_corr, self.strength * np.clip(corr, 0.0, 1.0), 0.0)
        out = pad[MAX_LAG : MAX_LAG + n * FRAME].reshape(n, FRAME)
        base = MAX_LAG + np.arange(n)[:, None] * FRAME + np.arange(FRAME)[None, :]
        before = pad[base - lags[:, None]]
        after = pad[base + lags[:, None]]
        ramp_pos = (np.arange(FRAME) + 1.0)[None, :] / FRAME
        prev = np.r_[self._prev_gain, gains[:-1]]
        comb = out + (prev[:, None] + (gains - prev)[:, None] * ramp_pos) * 0.5 * (before + after)
        e_in = np.einsum("kn,kn->k", out, out)
        e_out = np.einsum("kn,kn->k", comb, comb)
        scale = np.sqrt(np.where(e_out > 0, e_in / np.maximum(e_out, 1e-30), 1.0))
        prev_s = np.r_[self._prev_scale, scale[:-1]]
        y = comb * (prev_s[:, None] + (scale - prev_s)[:, None] * ramp_pos)
        self._prev_gain = float(gains[-1])
        self._prev_scale = float(scale[-1])
        self._buf = pad[n * FRAME :].copy()
        return np.asarray(y.reshape(-1), dtype=np.float64)


def pitch_postfilter(
    x: npt.ArrayLike, *, strength: float = 0.5, min_corr: float = 0.5
) -> FloatArray:
    """Apply the harmonic comb postfilter to a whole decoded 16 kHz signal.

    Parameters
    ----------
    x : array_like, shape (n,)
        Decoded signal.
    strength : float
        Comb gain at perfect periodicity (0 disables the filter).
    min_corr : float
        Frames whose best normalised correlation is below this pass unchanged.

    Returns
    -------
    y : ndarray, shape (n,)
    """
    xa = np.asarray(x, dtype=np.float64).reshape(-1)
    pf = PitchPostfilter(strength, min_corr, total=xa.size)
    return np.concatenate((pf.process(xa), pf.flush()))
