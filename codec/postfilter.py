"""Decoder-side pitch (harmonic) postfilter.

Voiced speech is a harmonic comb; at low rates the residual coder spends its
few bits on the strongest bins and noise-fills the rest, which fills the gaps
between harmonics with noise. This postfilter estimates the pitch lag of each
20 ms frame from the *decoded* signal (no side information) and applies the
symmetric comb

    y[n] = x[n] + a (x[n - T] + x[n + T]) / 2,    a = strength * max(0, ρ(T)),

where ρ(T) is the normalised correlation at lag T, then restores the frame
energy. Frames without clear periodicity (ρ < ``min_corr``) pass unchanged;
the gain is interpolated between frames to avoid clicks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["pitch_postfilter", "estimate_pitch"]

FloatArray = npt.NDArray[np.float64]
FRAME = 320
MIN_LAG = 40  # 400 Hz
MAX_LAG = 320  # 50 Hz


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
    n_frames = -(-x.size // frame)
    pad = np.zeros(MAX_LAG + n_frames * frame)
    pad[MAX_LAG : MAX_LAG + x.size] = x
    cur = pad[MAX_LAG:].reshape(n_frames, frame)
    lags = np.arange(MIN_LAG, MAX_LAG + 1)
    e_cur = np.einsum("kn,kn->k", cur, cur)
    csum = np.r_[0.0, np.cumsum(pad * pad)]
    starts = MAX_LAG + np.arange(n_frames) * frame
    corr = np.empty((n_frames, lags.size))
    for j, lag in enumerate(lags):  # one vectorised pass over all frames per lag
        past = pad[MAX_LAG - lag : MAX_LAG - lag + n_frames * frame].reshape(n_frames, frame)
        num = np.einsum("kn,kn->k", cur, past)
        e_past = csum[starts - lag + frame] - csum[starts - lag]
        corr[:, j] = num / np.sqrt(np.maximum(e_cur * e_past, 1e-20))
    best = np.argmax(corr, axis=1)
    return lags[best].astype(np.int64), corr[np.arange(n_frames), best]


def pitch_postfilter(
    x: npt.ArrayLike, *, strength: float = 0.5, min_corr: float = 0.5
) -> FloatArray:
    """Apply the harmonic comb postfilter to a decoded 16 kHz signal.

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
    xa = np.asarray(x, dtype=np.float64)
    if strength <= 0.0 or xa.size < 2 * FRAME:
        return xa.copy()
    lags, corr = estimate_pitch(xa)
    gains = np.where(corr >= min_corr, strength * np.clip(corr, 0.0, 1.0), 0.0)
    n_frames = lags.size
    pad = np.zeros(MAX_LAG + n_frames * FRAME + MAX_LAG)
    pad[MAX_LAG : MAX_LAG + xa.size] = xa
    out = pad[MAX_LAG : MAX_LAG + n_frames * FRAME].copy().reshape(n_frames, FRAME)
    base = MAX_LAG + np.arange(n_frames)[:, None] * FRAME + np.arange(FRAME)[None, :]
    before = pad[base - lags[:, None]]
    after = pad[base + lags[:, None]]
    # gain ramps linearly from the previous frame's value across each frame
    prev = np.r_[0.0, gains[:-1]]
    ramp = prev[:, None] + (gains - prev)[:, None] * (np.arange(FRAME) + 1.0)[None, :] / FRAME
    comb = out + ramp * 0.5 * (before + after)
    e_in = np.sum(out**2, axis=1)
    e_out = np.sum(comb**2, axis=1)
    scale = np.sqrt(np.where(e_out > 0, e_in / np.maximum(e_out, 1e-30), 1.0))
    # smooth the energy correction too
    prev_s = np.r_[1.0, scale[:-1]]
    sramp = prev_s[:, None] + (scale - prev_s)[:, None] * (np.arange(FRAME) + 1.0)[None, :] / FRAME
    y = (comb * sramp).reshape(-1)[: xa.size]
    return np.asarray(y, dtype=np.float64)
