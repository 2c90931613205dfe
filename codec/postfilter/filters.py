"""The post-filter's adaptive filters: a pitch comb, a shaping FIR, a
temporal shaper and, optionally, a rectifying branch, per 5 ms.

For each subframe ``s`` of 80 samples the network gives (:func:`kernels`) a
comb gain ``g``, five comb taps ``c`` (summing to 1), a 16-tap causal FIR
``h`` (its norm is the subframe's gain) and for each of the branch's ``C``
channels two 16-tap FIRs ``p_k`` and ``q_k`` (``q_k`` sums to 0; ``C = 0``
in the shipped weights, so the branch's sum is empty), and (:func:`shaping`)
an exponent ``a``.
With ``T`` the frame's pitch lag (the pitch post-filter's, transmitted or
concealed)::

    z[m] = x[m] + g Σ_d c_d x[m - T + d - 2]         d = 0 .. 4
    y[n] = Σ_j h_j z[n - j]                           j = 0 .. 15
    u_k[m] = Σ_j p_kj z[m - j]
    v[n] = Σ_k Σ_j q_kj |u_k[n - j]|                  k = 0 .. C - 1
    o[n] = (y[n] + v[n]) (e16[n] / e80[n]) ^ (a / 2)

The comb adds a pitch-period echo whose five taps let it fall off, or not,
with frequency; the FIR reshapes the subframe's spectrum (formants, tilt,
level). The branch (after NoLACE's adaptive convolutions with a
nonlinearity between them, Büthe et al. 2024) rectifies a filtered copy of
the signal: a full-wave rectified voiced signal carries harmonics of its
pitch at every frequency, which ``q_k`` (no DC: its taps sum to 0) shapes
and adds. ``|.|`` scales with its input, so the branch does not depend on
the signal's level. (Trained with ``--branch-channels``, it raised PESQ-WB
but not ViSQOL: RESULTS.md §9.) The shaper (after NoLACE's temporal
shaping) scales each sample by the input's power over the last 16 samples
(1 ms) against the last 80 (``e16``, ``e80``; a floor keeps the ratio
above 1e-4): with ``a > 0`` it deepens the valleys between pitch pulses,
where the decoder's noise filling is heard, with ``a < 0`` it flattens
them. All of it reads only past and present
input samples (``T >= 32``), so the filter is causal and adds no delay.
Over the first :data:`FADE` samples of a subframe the output cross-fades
from the previous subframe's filters (the shaper's exponent too).

Everything is numpy (float64; the shaper's exp and log in float32); the
state (past input, pending parameters) is explicit and every sum's order is
fixed, so filtering in chunks of any size equals filtering at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from codec.postfilter.network import (
    BRANCH_TAPS,
    COMB_TAPS,
    FIR_TAPS,
    SUBFRAMES,
    branch_channels,
)
from codec.residual.pitch import FRAME, LAG_MAX, LAG_MIN

__all__ = [
    "SUB",
    "FADE",
    "FADE_WEIGHTS",
    "G_MAX",
    "A_MAX",
    "SHORT",
    "LONG",
    "Kernels",
    "kernels",
    "shaping",
    "shaper_gains",
    "AdaptiveFilter",
]

FloatArray = npt.NDArray[np.float64]

SUB = FRAME // SUBFRAMES  # 80 samples
FADE = 40
G_MAX = 0.75  # largest comb gain
A_MAX = 0.5  # largest |exponent| of the temporal shaper
SHORT, LONG = 16, 80  # the shaper's power windows (samples)
SHAPE_FLOOR = 1e-4  # the shaper's ratio floor, relative to the long window's power
_POWER_STEP = float(2**30)  # the shaper's powers on an integer grid ...
_POWER_MAX = float(2**10)  # ... capped: 2^40 per sample, sums exact in int64
GAIN_INDEX = 1 + COMB_TAPS + FIR_TAPS  # the raw parameter of the FIR's norm
SHAPE_INDEX = GAIN_INDEX + 1  # ... of the shaper's exponent
BRANCH_INDEX = SHAPE_INDEX + 1  # ... of the branch's first FIR (then its second)
_REACH = COMB_TAPS // 2  # taps reach T - 2 .. T + 2
PRE = max(FIR_TAPS - 1, 2 * (BRANCH_TAPS - 1))  # z's samples before a subframe: 30
HIST = LAG_MAX + _REACH + PRE + SUB  # past samples a subframe can read: 398
FADE_WEIGHTS = np.sin(0.5 * np.pi * (np.arange(FADE) + 0.5) / FADE) ** 2
"""Weight of a subframe's own filters over its first FADE samples (the rest: the previous one's)."""

# g (...,), c (..., 5), h (..., 16), p (..., C, 16), q (..., C, 16)
Kernels = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]


def kernels(raw: npt.ArrayLike) -> Kernels:
    """Filter parameters from the network's raw output (..., raw_width(C)).

    ``g = G_MAX * sigmoid(r_0)``; ``c = softmax(r_1..r_5)``; ``h`` is
    ``e_0 + r_6..r_21`` scaled to the norm ``exp(r_22)``. The rows' width
    gives the branch's ``C`` channels (:func:`branch_channels`): from
    ``r_24`` on, ``C`` blocks of 16 give ``p_k = e_0 + r``, then ``C`` blocks
    of 16 give ``q_k``, each less its mean. (``r_23`` is the shaper's:
    :func:`shaping`.)
    """
    r = np.asarray(raw, dtype=np.float64)
    ch = branch_channels(r.shape[-1])
    g = G_MAX / (1.0 + np.exp(-r[..., 0]))
    e = np.exp(r[..., 1 : 1 + COMB_TAPS] - r[..., 1 : 1 + COMB_TAPS].max(axis=-1, keepdims=True))
    c = e / e.sum(axis=-1, keepdims=True)
    h = r[..., 1 + COMB_TAPS : 1 + COMB_TAPS + FIR_TAPS].copy()
    h[..., 0] += 1.0
    h *= (np.exp(r[..., GAIN_INDEX]) / np.sqrt((h * h).sum(axis=-1)))[..., None]
    cb = ch * BRANCH_TAPS
    p = r[..., BRANCH_INDEX : BRANCH_INDEX + cb].reshape(*r.shape[:-1], ch, BRANCH_TAPS).copy()
    p[..., 0] += 1.0
    q = r[..., BRANCH_INDEX + cb : BRANCH_INDEX + 2 * cb]
    q = q.reshape(*r.shape[:-1], ch, BRANCH_TAPS)
    q = q - q.mean(axis=-1, keepdims=True)
    return g, c, h, p, q


def shaping(raw: npt.ArrayLike) -> FloatArray:
    """The temporal shaper's exponent ``a = A_MAX * tanh(r_23)`` from raw parameters
    (..., raw_width(C))."""
    r = np.asarray(raw, dtype=np.float64)
    return np.asarray(A_MAX * np.tanh(r[..., SHAPE_INDEX]), dtype=np.float64)


def shaper_gains(
    buf: FloatArray, start: npt.NDArray[np.int64], a: FloatArray, a_prev: FloatArray
) -> FloatArray:
    """The shaper's gains (S, SUB) for the subframes starting at ``buf[start[i]]``
    (:data:`LONG` past samples needed), exponents ``a`` (S,), the previous
    subframes' ``a_prev`` (S,) for the cross-fade. The window sums are
    differences of a running sum of the powers on an integer grid (steps of
    2^-30, capped at 2^10), exact in int64, so they do not depend on where
    the sum started: the gains do not depend on how the signal is chunked."""
    lo = int(start.min()) - LONG
    p = np.rint(np.minimum(buf[lo : int(start.max()) + SUB] ** 2, _POWER_MAX) * _POWER_STEP)
    acc = np.concatenate(([0], np.cumsum(p.astype(np.int64))))  # exact: integers
    end = (start - lo)[:, None] + np.arange(1, SUB + 1)  # acc[end] sums up to the sample
    top = acc[end]
    # e16 / e80 with the floor, times 80 * 2^30 above and below; float32 from here
    # (numpy vectorizes exp and log there; relative error about 1e-7)
    short = (top - acc[end - SHORT]).astype(np.float32)
    long = (top - acc[end - LONG]).astype(np.float32)
    eps = np.float32(1e-12 * LONG * _POWER_STEP)
    ratio = (np.float32(LONG / SHORT) * short + np.float32(SHAPE_FLOOR) * long + eps) / (
        np.float32(1.0 + SHAPE_FLOOR) * long + eps
    )
    ex = np.repeat(a.astype(np.float32)[:, None], SUB, axis=1)
    ex[:, :FADE] = FADE_WEIGHTS * a[:, None] + (1.0 - FADE_WEIGHTS) * a_prev[:, None]
    g = np.exp(np.float32(0.5) * ex * np.log(ratio))
    return np.asarray(g, dtype=np.float64)


def identity_kernels(shape: tuple[int, ...] = (), channels: int = 0) -> Kernels:
    """Parameters that pass the input through unchanged (a branch of ``channels``)."""
    h = np.zeros((*shape, FIR_TAPS))
    h[..., 0] = 1.0
    p = np.zeros((*shape, channels, BRANCH_TAPS))
    p[..., 0] = 1.0
    comb = np.full((*shape, COMB_TAPS), 1.0 / COMB_TAPS)
    return np.zeros(shape), comb, h, p, np.zeros((*shape, channels, BRANCH_TAPS))


def run(
    buf: FloatArray,
    start: npt.NDArray[np.int64],
    lag: npt.NDArray[np.int64],
    k: Kernels,
    length: int,
) -> FloatArray:
    """Filter ``length`` samples from each ``buf[start[i]]`` with the i-th kernels.

    ``buf`` must hold :data:`HIST` samples before every start. Returns (S, length).
    Each subframe's sums are its own matrix-vector product (taps in a fixed
    order), so the result does not depend on how many subframes are filtered
    together.
    """
    g, c, h, p, q = k
    span = length + PRE
    x = buf[(start - PRE)[:, None] + np.arange(span)]
    base = start - PRE - lag - _REACH
    xl = buf[base[:, None] + np.arange(span + COMB_TAPS - 1)]
    # comb[s, m] = sum_d c[s, d] xl[s, m + d]; y[s, n] = sum_j h[s, j] z[s, n + 15 - j]
    # (and the branch's alike): stacked matrix-vector products (numpy's own
    # loop, taps in order)
    comb = (_windows(xl, COMB_TAPS) @ c[:, :, None])[:, :, 0]
    z = x + g[:, None] * comb
    skip = PRE - (FIR_TAPS - 1)
    y = (_windows(z, FIR_TAPS, skip)[:, :, ::-1] @ h[:, :, None])[:, :, 0]
    ch = p.shape[1]
    if ch:  # the rectifying branch, channel by channel in order
        skip = PRE - 2 * (BRANCH_TAPS - 1)
        u = _windows(z, BRANCH_TAPS, skip)[:, :, ::-1] @ p.transpose(0, 2, 1)  # (S, m, C)
        u = np.abs(u.transpose(0, 2, 1)).reshape(-1, u.shape[1])  # rows (s, channel)
        v = (_windows(u, BRANCH_TAPS)[:, :, ::-1] @ q.reshape(-1, BRANCH_TAPS, 1))[:, :, 0]
        v = v.reshape(-1, ch, v.shape[1])
        for i in range(ch):
            y += v[:, i]
    return np.asarray(y)


def _select(k: Kernels, rows: slice) -> Kernels:
    """The kernels of subframes ``rows``."""
    g, c, h, p, q = k
    return g[rows], c[rows], h[rows], p[rows], q[rows]


def _windows(a: FloatArray, width: int, skip: int = 0) -> FloatArray:
    """Rows of ``width`` consecutive values of each row of C-contiguous ``a`` (S, m)
    from column ``skip`` on: a view (S, m - skip - width + 1, width);
    ``sliding_window_view(a[:, skip:])``'s result, built directly (it is called
    per 20 ms frame when streaming)."""
    s0, s1 = a.strides
    shape = (a.shape[0], a.shape[1] - skip - width + 1, width)
    return np.ndarray(shape, a.dtype, buffer=a, offset=skip * s1, strides=(s0, s1, s1))


class AdaptiveFilter:
    """The streaming filter: :meth:`push` frames' parameters before their samples
    reach :meth:`process`; samples of frames without parameters pass unchanged."""

    def __init__(self, branch_channels: int = 0) -> None:
        self._ch = branch_channels
        self._hist = np.zeros(HIST)
        self._pos = 0  # absolute index of the next input sample
        self._first = 0  # frame index of row 0 of the arrays below
        self._lag = np.zeros(0, dtype=np.int64)
        self._k = identity_kernels((0, SUBFRAMES), branch_channels)
        self._a = np.zeros((0, SUBFRAMES))

    def push(self, frame: int, lags: npt.ArrayLike, raw: npt.ArrayLike) -> None:
        """Pitch lags (n,) and raw parameters (n, SUBFRAMES, raw_width(branch_channels))
        of frames ``frame ..``."""
        lag = np.asarray(lags, dtype=np.int64).reshape(-1)
        if lag.size and not (LAG_MIN <= lag.min() and lag.max() <= LAG_MAX):
            raise ValueError(f"pitch lags outside {LAG_MIN} .. {LAG_MAX}")
        if frame != self._first + self._lag.size:
            raise ValueError(f"frame {frame} pushed; the next is {self._first + self._lag.size}")
        k = kernels(raw)
        if k[3].shape[-2] != self._ch:
            raise ValueError(f"raw parameters for {k[3].shape[-2]} branch channels, not {self._ch}")
        self._lag = np.concatenate((self._lag, lag))
        self._k = tuple(np.concatenate(p) for p in zip(self._k, k, strict=True))  # type: ignore[assignment]
        self._a = np.concatenate((self._a, shaping(raw)))

    def _params(
        self, subs: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], Kernels, FloatArray]:
        s = subs.size
        frame = subs // SUBFRAMES - self._first
        have = (subs >= 0) & (frame >= 0) & (frame < self._lag.size)
        lag = np.full(s, LAG_MIN, dtype=np.int64)
        k = identity_kernels((s,), self._ch)
        a = np.zeros(s)
        f, j = frame[have], subs[have] % SUBFRAMES
        lag[have] = self._lag[f]
        for mine, pushed in zip(k, self._k, strict=True):
            mine[have] = pushed[f, j]
        a[have] = self._a[f, j]
        return lag, k, a

    def process(self, x: npt.ArrayLike) -> FloatArray:
        """Filter the next samples; returns as many."""
        xa = np.asarray(x, dtype=np.float64).reshape(-1)
        m = xa.size
        if m == 0:
            return np.zeros(0)
        n0 = self._pos
        s_a, s_b = n0 // SUB, (n0 + m - 1) // SUB
        subs = np.arange(s_a, s_b + 1, dtype=np.int64)
        buf = np.concatenate((self._hist, xa, np.zeros(SUB)))
        start = subs * SUB - n0 + HIST
        lag_e, k_e, a_e = self._params(np.arange(s_a - 1, s_b + 1, dtype=np.int64))
        lag, k, a = lag_e[1:], _select(k_e, slice(1, None)), a_e[1:]
        lag_p, k_p, a_p = lag_e[:-1], _select(k_e, slice(None, -1)), a_e[:-1]
        y = run(buf, start, lag, k, SUB)
        w = FADE_WEIGHTS
        y[:, :FADE] = w * y[:, :FADE] + (1.0 - w) * run(buf, start, lag_p, k_p, FADE)
        y *= shaper_gains(buf, start, a, a_p)  # exactly 1 where a = a_p = 0
        off = n0 - s_a * SUB
        out = y.reshape(-1)[off : off + m]
        self._hist = buf[m : m + HIST].copy()
        self._pos = n0 + m
        drop = min(max((self._pos // SUB - 1) // SUBFRAMES - self._first, 0), self._lag.size)
        if drop:
            self._first += drop
            self._lag = self._lag[drop:]
            self._k = tuple(p[drop:] for p in self._k)  # type: ignore[assignment]
            self._a = self._a[drop:]
        return np.asarray(out, dtype=np.float64)
