"""What the post-filter knows about each frame: plain arrays from the decoder.

Per 20 ms frame the decoder already has the MDCT coefficients it synthesizes
(decoded, or substituted by the concealment), the pitch post-filter's lag and
gain, whether the frame was lost, and the stream's bitrate. None of it needs
look-ahead: frame ``k``'s features exist before any of its output samples is
final, so the post-filter adds no delay.

Layout of one feature row (:data:`N_FEATURES` values):

- ``0 .. 19``: log energy of the coefficients in 20 bands (:data:`BAND_EDGES`,
  MDCT bins of 25 Hz, narrow at low frequencies);
- ``20 .. 22``: pitch tool on (0/1), comb gain, ``(lag - LAG_MIN) / 256``;
- ``23 .. 28``: the bitrate, one-hot over :data:`codec.modes.BITRATES_KBPS`;
- ``29``: the frame was lost (concealed);
- ``30 .. 49``: the share of each band's energy that the coded values carry,
  the rest being the noise filler's (0 where nothing is coded, and in a lost
  frame).

A network reads the first :data:`N_BASE` or all :data:`N_FEATURES` columns
(the width of its first layer; the weights of svq 0.8.0 read 30).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from codec.modes import BITRATES_KBPS
from codec.residual.pitch import LAG_MIN

__all__ = ["BAND_EDGES", "N_BASE", "N_FEATURES", "frame_features"]

FloatArray = npt.NDArray[np.float64]

BAND_EDGES = (0, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 240, 320)
N_BANDS = len(BAND_EDGES) - 1
N_BASE = N_BANDS + 3 + len(BITRATES_KBPS) + 1
N_FEATURES = N_BASE + N_BANDS

_FLOOR = 1e-9  # energy floor of a silent band (coefficients of full-scale-1 audio)


def frame_features(
    coefs: npt.ArrayLike,
    lag: npt.ArrayLike,
    gain: npt.ArrayLike,
    lost: npt.ArrayLike,
    bitrate_kbps: float,
    coded: npt.ArrayLike | None = None,
) -> FloatArray:
    """Feature rows (n, :data:`N_FEATURES`) of ``n`` frames.

    Parameters
    ----------
    coefs : array_like, shape (n, 320)
        The MDCT coefficients the decoder synthesizes for each frame.
    lag, gain : array_like, shape (n,)
        The pitch post-filter's lag (samples) and comb gain (0 when off).
    lost : array_like of bool, shape (n,)
        Frames concealed instead of decoded.
    bitrate_kbps : float
        The stream's bitrate (one of :data:`codec.modes.BITRATES_KBPS`).
    coded : array_like, shape (n, 320), optional
        The coefficients of the coded values alone (the noise filler's bins at
        zero; zeros for a lost frame); by default none is coded.
    """
    c = np.asarray(coefs, dtype=np.float64)
    n = c.shape[0]
    power = np.add.reduceat(c * c, BAND_EDGES[:-1], axis=1) / np.diff(BAND_EDGES)
    g = np.asarray(gain, dtype=np.float64).reshape(n)
    out = np.zeros((n, N_FEATURES))
    out[:, :N_BANDS] = np.log(power + _FLOOR)
    out[:, N_BANDS] = g > 0.0
    out[:, N_BANDS + 1] = g
    out[:, N_BANDS + 2] = (np.asarray(lag, dtype=np.float64).reshape(n) - LAG_MIN) / 256.0
    out[:, N_BANDS + 3 + BITRATES_KBPS.index(float(bitrate_kbps))] = 1.0
    out[:, N_BASE - 1] = np.asarray(lost, dtype=bool).reshape(n)
    if coded is not None:
        v = np.asarray(coded, dtype=np.float64).reshape(n, -1)
        part = np.add.reduceat(v * v, BAND_EDGES[:-1], axis=1) / np.diff(BAND_EDGES)
        out[:, N_BASE:] = np.minimum(part / (power + _FLOOR), 1.0)
    return out
