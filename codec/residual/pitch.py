"""Encoder-controlled pitch pre-filter / post-filter around the MDCT.

Voiced speech is a harmonic comb that a transform coder cannot afford bin by
bin at 8-16 kbit/s. As in Opus CELT (RFC 6716 §4.3.7.1), the encoder runs a
comb *pre-filter* on the signal before the MDCT,

    p[n] = x[n] - g(n) Σ_d t_d x[n - T(n) + d],          d = -2 .. 2,

which lowers the harmonic peaks, and the decoder runs the exact inverse, the
IIR comb *post-filter*, on its output,

    y[n] = p̂[n] + g(n) Σ_d t_d y[n - T(n) + d].

Without quantization ``y == x``. With it, the coding noise of ``p̂`` comes out
shaped by ``1 / (1 - g Σ t_d z^(d-T))``: raised under the harmonics, where the
speech masks it, and lowered between them, where the plain coder filled the
gaps with noise. The taps ``t_d`` are symmetric and sum to 1, so the comb is a
low-pass comb (its teeth fade at high frequencies where an integer lag no
longer matches the harmonics), and the IIR is stable for ``g < 1``.

Per 20 ms frame ``k`` the encoder sends a flag and, when on, the lag ``T``
(``LAG_BITS``) and the gain index (``GAIN_BITS``). Frame ``k``'s parameters
govern the samples ``[kN, (k+1)N)`` of the signal; over the first
``FADE`` samples the filter cross-fades from frame ``k-1``'s parameters.
The MDCT block of frame ``k`` spans ``[kN - L, (k+1)N)``, so the encoder
needs no look-ahead beyond the frame, and the decoder can post-filter every
sample as soon as the MDCT overlap-add has made it final: the tool adds no
delay.

Everything here is plain numpy on float64 arrays; states are explicit, so
block-by-block processing equals whole-signal processing.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME",
    "LAG_MIN",
    "LAG_MAX",
    "PitchParams",
    "PitchAnalyzer",
    "PreFilter",
    "PostFilter",
    "gain_value",
    "estimate_pitch",
    "normalized_correlation",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FRAME = 320
LAG_BITS = 8
GAIN_BITS = 3
LAG_MIN = 32  # 500 Hz
LAG_MAX = LAG_MIN + (1 << LAG_BITS) - 1  # 287: 56 Hz
GAIN_STEP = 3.0 / 32.0  # g = GAIN_STEP * (index + 1): 0.094 .. 0.75
FADE = 80  # cross-fade length in samples (5 ms)
TAPS = np.array([0.0, 0.2680, 0.4638, 0.2680, 0.0])  # t_d for d = -2 .. 2
HISTORY = LAG_MAX + 2  # past samples the filters reach back
_REACH = int(np.flatnonzero(TAPS)[-1]) - 2  # how far past ``n - T`` the taps read

_FADE_W = np.sin(0.5 * np.pi * (np.arange(FADE) + 0.5) / FADE) ** 2


def gain_value(index: npt.ArrayLike) -> FloatArray:
    """Comb gain of a gain index; index -1 (tool off) gives 0."""
    if isinstance(index, (int, np.integer)):  # one frame's (the decoder's, per frame)
        j = float(index)
        return np.asarray(0.0 if j < 0 else GAIN_STEP * (j + 1.0), dtype=np.float64)
    i = np.asarray(index, dtype=np.float64)
    return np.asarray(np.where(i < 0, 0.0, GAIN_STEP * (i + 1.0)), dtype=np.float64)


class PitchParams(NamedTuple):
    """Per-frame parameters: lag in samples and gain index (-1 = off)."""

    lag: IntArray
    gain: IntArray

    @classmethod
    def off(cls, n: int) -> PitchParams:
        return cls(np.full(n, LAG_MIN, dtype=np.int64), np.full(n, -1, dtype=np.int64))

    def bits(self) -> IntArray:
        """Raw widths of each frame's pitch fields (format 3's layout; format 4
        range-codes them, :mod:`codec.residual.sidemodel`)."""
        return np.where(self.gain >= 0, 1 + LAG_BITS + GAIN_BITS, 1).astype(np.int64)


# ---------------------------------------------------------------------- analysis


_LAGS = np.arange(LAG_MIN, LAG_MAX + 1)


def _past_windows(x: npt.NDArray[Any], n_frames: int, n_lags: int, at: int) -> npt.NDArray[Any]:
    """The view ``past[k, j, n] = x[at + k FRAME - j + n]`` (frame ``k`` against
    consecutive lags, the first at ``at``), no copy."""
    s = x.strides[0]
    return np.lib.stride_tricks.as_strided(
        x[at:], shape=(n_frames, n_lags, FRAME), strides=(FRAME * s, -s, s), writeable=False
    )


def _denominators(
    pad: FloatArray, n_frames: int, h: int, lags: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """``cur`` (the frames at ``pad[h:]``), the energies of the frames and of their
    windows ``T = lags`` earlier, and the denominators ``sqrt(E_cur E_past)`` of
    :func:`normalized_correlation`; also the running sum of squares they come from."""
    cur = pad[h : h + n_frames * FRAME].reshape(n_frames, FRAME)
    e_cur = np.einsum("kn,kn->k", cur, cur)
    # energies from one running sum over the whole pad, so that rows do not
    # depend on how many frames come with them
    used = pad[: h + n_frames * FRAME]
    c = np.concatenate(([0.0], np.cumsum(used * used)))
    starts = h + np.arange(n_frames) * FRAME
    e_past = c[starts[:, None] - lags + FRAME] - c[starts[:, None] - lags]
    den = np.sqrt(np.maximum(e_cur[:, None] * e_past, 1e-20))
    return cur, e_cur, e_past, den, c


def normalized_correlation(
    pad: FloatArray, n_frames: int, lags: IntArray = _LAGS, *, first: int = 0
) -> FloatArray:
    """Normalised correlation of each frame with the signal ``T`` samples earlier.

    ``pad`` holds ``max(lags)`` samples of history, then ``first + n_frames``
    frames of ``FRAME`` samples; the last ``n_frames`` are correlated. Returns
    shape (n_frames, len(lags)), the same rows as with ``first = 0`` on all frames.
    """
    h = int(lags.max()) + first * FRAME
    cur, _, _, den, _ = _denominators(pad, n_frames, h, lags)
    step = np.diff(lags)
    if lags.size > 1 and bool(np.all(step == 1)) and n_frames:
        # every frame against every lag in one einsum over a view of ``pad``:
        # the same products and sums per element (one row of ``cur`` against
        # one window of ``pad``) as the loops below, with one numpy call
        past = _past_windows(pad, n_frames, lags.size, h - int(lags[0]))
        out = np.einsum("kn,kjn->kj", cur, past)
    else:
        # frame by frame, all lags in one einsum
        out = np.empty((n_frames, lags.size))
        windows = np.lib.stride_tricks.sliding_window_view(pad, FRAME)
        starts = h + np.arange(n_frames) * FRAME
        for k in range(n_frames):
            past = windows[starts[k] - lags]
            out[k] = np.einsum("kn,kn->k", np.broadcast_to(cur[k], past.shape), past)
    out /= den
    return out


class _ScreenedCorrelation:
    """:func:`normalized_correlation` on all lags, exact where a decision needs it.

    The encoder's choice of lag reads the correlation matrix only through
    comparisons: the best lag of a row, the best of a few lags around its
    sub-multiples, and thresholds. So the matrix is first computed in float32
    (about twice as fast), with a rigorous bound ``delta`` per row on how far
    each value can lie from the float64 value :func:`normalized_correlation`
    computes; a comparison that the bound decides is decided, and only the values
    it leaves open are computed in float64, by the same einsum on the same
    numbers, so every result equals the plain computation's bit for bit.

    The bound: a dot product of ``n = FRAME`` float64 values rounded to float32
    and summed in float32 (any order) lies within ``(n + 3) u32 + n u64`` times
    ``sum |x||y| <= sqrt(E_cur E_past)`` of the float64 one, ``u32 = 2**-24``, so
    within ``330 u32 < 2e-5`` of it once divided by the row's denominators (whose
    energies come from a running sum with its own error bound). Rows where the
    bound does not hold or is useless (digital silence, non-finite values) are
    computed in float64 outright.
    """

    def __init__(self, pad: FloatArray, n_frames: int, first: int) -> None:
        h = LAG_MAX + first * FRAME
        cur, e_cur, e_past, den, c = _denominators(pad, n_frames, h, _LAGS)
        self._pad, self._cur, self._den = pad, cur, den
        self._starts = h + np.arange(n_frames) * FRAME
        p32 = pad[h - LAG_MAX : h + n_frames * FRAME].astype(np.float32)
        cur32 = p32[LAG_MAX:].reshape(n_frames, FRAME)
        with np.errstate(all="ignore"):
            past32 = _past_windows(p32, n_frames, _LAGS.size, LAG_MAX - LAG_MIN)
            approx = np.einsum("kn,kjn->kj", cur32, past32).astype(np.float64)
            approx /= den
            # error of a window's energy from the running sum: 2 sums of at most
            # ``c.size`` terms, each with its squaring, all below c[-1]
            c_err = 3.0 * c.size * 2.0**-53 * float(c[-1])
            e_min = e_past.min(axis=1)
            ratio = np.sqrt((1.0 + 1e-9) * (1.0 + c_err / e_min)) * (1.0 + 1e-9)
            self._delta = 2e-5 * ratio + 1e-30
            plain = ~((e_min > 0) & (e_cur * e_min > 1e-12) & np.isfinite(approx).all(axis=1))
        self._known = np.zeros(approx.shape, dtype=bool)
        self._values = approx  # float64 values where _known, float32 ones elsewhere
        self._plain = plain
        for a, b in _runs(np.flatnonzero(plain)):
            past = _past_windows(pad, b - a, _LAGS.size, h - LAG_MIN + a * FRAME)
            self._values[a:b] = np.einsum("kn,kjn->kj", cur[a:b], past)
            self._values[a:b] /= den[a:b]
            self._known[a:b] = True
            self._delta[a:b] = 0.0

    def exact(self, rows: IntArray, cols: IntArray) -> FloatArray:
        """The float64 values at ``(rows, cols)``, computing those not known yet."""
        need = ~self._known[rows, cols]
        if need.any():
            r, c = rows[need], cols[need]
            s = self._pad.strides[0]
            windows = np.lib.stride_tricks.as_strided(
                self._pad, (self._pad.size - FRAME + 1, FRAME), (s, s), writeable=False
            )
            win = windows[self._starts[r] - _LAGS[c]]
            self._values[r, c] = np.einsum("kn,kn->k", self._cur[r], win) / self._den[r, c]
            self._known[r, c] = True
        return np.asarray(self._values[rows, cols])

    def argmax(self, rows: IntArray, cols: npt.NDArray[np.intp]) -> IntArray:
        """Per row, the first of ``cols[i]`` (in order) whose float64 value is largest."""
        vals = self._values[rows[:, None], cols]
        d = self._delta[rows]
        # candidates: values that can still be the largest
        cand = vals >= (vals.max(axis=1) - 2.0 * d)[:, None]
        pos = np.argmax(cand, axis=1)
        open_ = (cand.sum(axis=1) != 1) & ~self._plain[rows]
        if open_.any():
            sub = cand[open_]
            r = np.broadcast_to(rows[open_, None], sub.shape)[sub]
            v = np.full(sub.shape, -np.inf)
            v[sub] = self.exact(r, cols[open_][sub])
            pos[open_] = np.argmax(v, axis=1)
        plain = self._plain[rows]
        if plain.any():  # float64 already: the plain argmax (which also handles NaN)
            pos[plain] = np.argmax(vals[plain], axis=1)
        return np.asarray(cols[np.arange(rows.size), pos], dtype=np.int64)

    def at_least(
        self, rows: IntArray, cols: IntArray, threshold: FloatArray
    ) -> npt.NDArray[np.bool_]:
        """Whether the float64 value at ``(rows, cols)`` is ``>= threshold``."""
        vals = self._values[rows, cols]
        d = self._delta[rows]
        out = vals - d >= threshold
        open_ = ~out & (vals + d >= threshold)
        if open_.any():
            out[open_] = self.exact(rows[open_], cols[open_]) >= threshold[open_]
        return out


def _runs(idx: IntArray) -> list[tuple[int, int]]:
    """Runs of consecutive integers in sorted ``idx`` as ``(start, stop)`` pairs."""
    if idx.size == 0:
        return []
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in np.split(idx, cut)]


def estimate_pitch(
    x: FloatArray, *, min_lag: int = 40, max_lag: int = 320
) -> tuple[IntArray, FloatArray]:
    """Best lag in ``[min_lag, max_lag]`` and its normalised correlation per frame of ``x``.

    Frame ``k`` is ``x[k*FRAME : (k+1)*FRAME]`` (the last one zero-padded),
    correlated with the signal ``T`` samples earlier (zeros before ``x``).
    Used by the concealment to decide whether a lost frame is voiced.
    """
    xa = np.asarray(x, dtype=np.float64)
    n_frames = -(-xa.size // FRAME)
    if n_frames == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    lags = np.arange(min_lag, max_lag + 1)
    pad = np.zeros(max_lag + n_frames * FRAME)
    pad[max_lag : max_lag + xa.size] = xa
    corr = normalized_correlation(pad, n_frames, lags)
    best = np.argmax(corr, axis=1)
    return lags[best].astype(np.int64), corr[np.arange(n_frames), best]


class PitchAnalyzer(NamedTuple):
    """The encoder's choice of lag and gain per frame (open loop, on the input).

    The lag is the shortest one whose correlation is within ``octave`` of the
    best (so a comb on twice the period, whose extra teeth would raise the
    noise between harmonics, is avoided); the gain is ``scale`` times the
    correlation, quantized, and the tool is off below ``threshold``.
    """

    threshold: float = 0.6
    scale: float = 0.7
    octave: float = 0.9

    def choose(self, pad: FloatArray, n_frames: int, *, first: int = 0) -> PitchParams:
        """Parameters of frames ``first .. first + n_frames - 1`` of ``pad``.

        ``pad`` holds ``LAG_MAX`` samples of history, then the frames. The
        analysis high-pass starts at the beginning of ``pad``, so a frame's
        parameters depend on where ``pad`` starts but not on ``first``: a
        streaming encoder gets the same parameters frame by frame as in one call.
        """
        if n_frames == 0:
            return PitchParams.off(0)
        hp = _highpass(_highpass(pad[: LAG_MAX + (first + n_frames) * FRAME]))
        corr = _ScreenedCorrelation(hp, n_frames, first)
        rows = np.arange(n_frames)
        j = corr.argmax(rows, np.broadcast_to(np.arange(_LAGS.size), (n_frames, _LAGS.size)))
        best = corr.exact(rows, j)
        # prefer a sub-multiple of the best lag whose correlation is close to it
        for m in (2, 3, 4):
            c = np.rint((j + LAG_MIN) / m).astype(np.int64) - LAG_MIN
            win = np.clip(c[:, None] + np.arange(-2, 3)[None, :], 0, _LAGS.size - 1)
            jm = corr.argmax(rows, win)
            better = (c >= 0) & (jm < j)
            better[better] = corr.at_least(rows[better], jm[better], self.octave * best[better])
            j = np.where(better, jm, j)
        lag = _LAGS[j]
        rho = corr.exact(rows, j)
        g = self.scale * rho
        gidx = np.clip(np.rint(g / GAIN_STEP) - 1, 0, (1 << GAIN_BITS) - 1).astype(np.int64)
        h = LAG_MAX + first * FRAME
        cur = hp[h : h + n_frames * FRAME].reshape(n_frames, FRAME)
        loud = np.einsum("kn,kn->k", cur, cur) >= FRAME * _SILENCE
        gidx = np.where((rho >= self.threshold) & loud, gidx, -1)
        return PitchParams(lag.astype(np.int64), gidx)


_SILENCE = 10.0 ** (-50.0 / 10.0)  # mean power below which the tool stays off (-50 dBFS)
_HP_LENGTH = 160  # moving-average length of the analysis high-pass (first null at 100 Hz)


def _highpass(x: FloatArray) -> FloatArray:
    """``x`` minus its 10 ms moving average: removes DC and hum below ~100 Hz for the search."""
    c = np.concatenate((np.zeros(_HP_LENGTH), np.cumsum(x)))
    return np.asarray(x - (c[_HP_LENGTH:] - c[:-_HP_LENGTH]) / _HP_LENGTH, dtype=np.float64)


# ---------------------------------------------------------------------- filters


def _weights() -> FloatArray:
    """Weight of the new parameters at each sample of a frame (fade in, then 1)."""
    w = np.ones(FRAME)
    w[:FADE] = _FADE_W
    return w


_W = _weights()


class PreFilter:
    """The encoder's FIR comb (streaming; frame ``k`` filters ``[kN, (k+1)N)``)."""

    def __init__(self) -> None:
        self._hist = np.zeros(HISTORY)
        self._lag = LAG_MIN
        self._gain = 0.0

    def history(self, length: int) -> FloatArray:
        """The last ``length`` input samples (``length <= HISTORY``)."""
        return self._hist[HISTORY - length :]

    def process(self, x: FloatArray, params: PitchParams) -> FloatArray:
        """Filter whole frames ``x`` (n * FRAME samples) with their parameters."""
        n = params.lag.size
        xa = np.asarray(x, dtype=np.float64)
        pad = np.concatenate((self._hist, xa))
        lag, g = params.lag, gain_value(params.gain)
        # the previous frame's parameters, faded out at the start of each frame
        lag_p = np.r_[self._lag, lag[:-1]].astype(np.int64)
        g_p = np.r_[self._gain, g[:-1]]
        pos = HISTORY + np.arange(n)[:, None] * FRAME + np.arange(FRAME)[None, :]
        comb_new = _comb(pad, pos, lag)
        comb_old = _comb(pad, pos, lag_p)
        out = xa.reshape(n, FRAME) - (
            (g[:, None] * _W) * comb_new + (g_p[:, None] * (1.0 - _W)) * comb_old
        )
        self._hist = pad[-HISTORY:].copy()
        if n:
            self._lag, self._gain = int(lag[-1]), float(g[-1])
        return np.asarray(out.reshape(-1), dtype=np.float64)


def _comb(pad: FloatArray, pos: npt.NDArray[np.int64], lag: npt.ArrayLike) -> FloatArray:
    """``Σ_d t_d pad[pos - lag + d]`` (``lag`` broadcast against ``pos``)."""
    base = pos - (np.asarray(lag)[:, None] if np.ndim(lag) else np.asarray(lag))
    out = TAPS[2] * pad[base]
    for d in (1, 2):
        if TAPS[2 + d]:
            out = out + TAPS[2 + d] * (pad[base - d] + pad[base + d])
    return np.asarray(out, dtype=np.float64)


# the comb's taps as Python floats for the decoder's inner loop, which is written out
# for three taps (``t_0`` and ``t_-1 = t_1``; ``t_±2`` are zero)
_T_MID = float(TAPS[2])
_T_SIDE = float(TAPS[3])
if _REACH != 1 or TAPS[0] or TAPS[1] != TAPS[3]:  # pragma: no cover - a change of TAPS
    raise ImportError("PostFilter's inner loop is written for three symmetric taps")
_W_OLD = 1.0 - _W  # weight of the previous frame's parameters
# and as 0-d arrays, which numpy multiplies by with less overhead than Python floats
_T_MID_0D = np.array(_T_MID)
_T_SIDE_0D = np.array(_T_SIDE)


def _comb_run(buf: FloatArray, base: int, length: int) -> FloatArray:
    """:func:`_comb` at the consecutive positions ``base + lag .. base + lag + length - 1``
    (slices instead of index arrays; the same arithmetic)."""
    c = buf[base : base + length] * _T_MID_0D
    side = buf[base - 1 : base - 1 + length] + buf[base + 1 : base + 1 + length]
    side *= _T_SIDE_0D
    c += side
    return c


def _comb_add(buf: FloatArray, p: int, end: int, lag: int, g: float) -> None:
    """``buf[n] += g * comb[n]`` for ``n`` in ``[p, end)``, in order (the IIR comb).

    ``comb[n] = t_0 y[n - lag] + t_1 (y[n - lag - 1] + y[n - lag + 1])`` with the
    same operations as :func:`_comb`, ``y`` being ``buf`` itself: chunks of at most
    ``lag - _REACH`` samples, so that each reads only finished outputs.
    """
    step = lag - _REACH
    a = p - lag  # where the comb of ``buf[p]`` is centred
    g_0d = np.array(g)  # (as a 0-d array: the same product, less overhead)
    while p < end:
        e = p + step if p + step < end else end
        b = a + e - p
        c = buf[a:b] * _T_MID_0D
        side = buf[a - 1 : b - 1] + buf[a + 1 : b + 1]
        side *= _T_SIDE_0D
        c += side
        c *= g_0d
        out = buf[p:e]
        out += c
        a, p = b, e


def _unchanged(buf: FloatArray, p: int, end: int, lag: int) -> bool:
    """Whether :func:`_comb_add` with ``g = 0`` would leave ``buf[p:end]`` as it is.

    It adds ``0 * comb``, a zero of either sign, which leaves each nonzero
    ``buf[n]`` bit for bit as it is, as long as every ``comb`` is finite: so
    when the samples that the comb reads (finished outputs, then these same
    samples) are far below overflow (their energy is finite and below 1e300;
    a NaN or infinity fails that too).
    """
    seg = buf[p - lag - _REACH : end]
    return bool(np.dot(seg, seg) < 1e300 and buf[p:end].all())


def _comb_fade(
    buf: FloatArray, p: int, end: int, j: int, lag: int, g: float, lag_p: int, g_p: float
) -> int:
    """The cross-fade of a frame from sample ``j`` of it (``j < FADE``) at ``buf[p]``.

    ``buf[n] += (g W) comb + (g_p (1 - W)) comb_p`` (the second term only when
    ``g_p`` is nonzero), in chunks as short as the shorter lag, up to the end
    of the chunk that starts before ``FADE`` (or ``end``); returns where they
    stop. Both combs of a chunk are read from one run of combs over the
    finished outputs (:func:`_comb_run` from the longer lag to the shorter).
    """
    step = (min(lag, lag_p) if g_p else lag) - _REACH
    f_end = min(end, p + -(-(FADE - j) // step) * step)
    gw = g * _W[j : j + f_end - p]
    gw_p = g_p * _W_OLD[j : j + f_end - p] if g_p else gw  # (only read when g_p)
    lo = p - max(lag, lag_p)  # the first comb that the chunk reads
    i = 0
    while p < f_end:
        e = p + step if p + step < f_end else f_end
        n = e - p
        if g_p:
            c = _comb_run(buf, lo, n + abs(lag - lag_p))
            acc = gw[i : i + n] * c[p - lag - lo : e - lag - lo]
            acc += gw_p[i : i + n] * c[p - lag_p - lo : e - lag_p - lo]
        else:
            acc = gw[i : i + n] * _comb_run(buf, p - lag, n)
        out = buf[p:e]
        out += acc
        lo, i, p = lo + n, i + n, e
    return p


def _comb_frames(buf: FloatArray, frames: list[tuple[int, float]], j: int) -> None:
    """:meth:`PostFilter.process` frame by frame, chunk by chunk: ``buf`` holds
    ``HISTORY`` past outputs, then the inputs from sample ``j`` of a frame, which
    become the outputs; ``frames`` are the ``(lag, gain)`` of that frame's
    predecessor, that frame and the next ones."""
    stop = buf.size
    p = HISTORY
    for (lag_p, g_p), (lag, g) in pairwise(frames):
        end = min(stop, p + FRAME - j)  # the frame's samples are ``buf[p:end]``
        if j < FADE and (g or g_p):
            q = _comb_fade(buf, p, end, j, lag, g, lag_p, g_p)
            if g or not _unchanged(buf, q, end, lag):
                _comb_add(buf, q, end, lag, g)  # (x + 0 * comb, where that is not x)
        elif g:
            _comb_add(buf, p, end, lag, g)
        p, j = end, 0


# from how many frames in one call the post-filter goes in steps (:func:`_schedule`):
# each step costs more than a chunk, and pays off where it does many chunks at once
_SIDE_BY_SIDE = 100
# the weights of a frame's comb at its samples (``W``), then of the previous frame's
# (``1 - W``): what :func:`_schedule`'s weight indices point into
_W_BOTH = np.concatenate((_W, _W_OLD))


def _ceil_div(a: IntArray, b: IntArray) -> IntArray:
    return -(-a // b)


def _runs_of(out: IntArray, firsts: IntArray, lens: IntArray) -> IntArray:
    """Runs of consecutive numbers from ``firsts``, ``lens`` long (none empty), one
    after another, computed in ``out`` (all ones)."""
    heads = np.cumsum(lens[:-1])
    out[0] = firsts[0]
    out[heads] = firsts[1:] - (firsts[:-1] + lens[:-1] - 1)
    return np.cumsum(out, out=out)


def _schedule(
    lags: IntArray, gains: FloatArray, j: int, m: int
) -> tuple[IntArray, IntArray, FloatArray, list[tuple[int, int, int, int]]] | None:
    """The work of :func:`_comb_frames`, in steps that each do many chunks at once.

    The same chunks, with the same operations per sample, and one more: after a
    frame's cross-fade from a comb that was on to one that is off, the samples
    get ``+= 0 * comb`` always (:func:`_comb_frames` skips that where it would
    leave them as they are, :func:`_unchanged`). Then the frames whose samples
    get chunks come in *stretches* without a frame between them; a stretch reads
    nothing that another one changes (a frame between two is longer than the
    comb reaches, or they are the first frame's history), so the stretches go
    side by side: step ``s`` is chunk ``s`` of every stretch, chunks being
    numbered in order in their stretch.

    Returns, per *term* ``w comb`` (the steps' samples, in each step those with
    one term, then those with two, then their second terms), its sample ``at``
    (an index into ``buf`` of :func:`_comb_frames`), ``cm``, its comb's centre less
    one (the comb reads ``buf[cm]``, ``buf[cm + 1]`` and ``buf[cm + 2]``), the
    weight ``w``, and per step ``(first term, samples, samples with two terms,
    end)``; or None when no sample gets a chunk.

    Where the time goes is in the arrays with an entry per term: each is built
    from a value per chunk as runs of consecutive numbers (:func:`_runs_of`), and
    ``w`` is read from a table of every gain times ``_W_BOTH`` (the same products).
    """
    gains = np.ascontiguousarray(gains, dtype=np.float64)  # (its bits pick table rows)
    lag, g, lag_p, g_p = lags[1:], gains[1:], lags[:-1], gains[:-1]
    f = np.arange(lag.size)
    jf = np.where(f == 0, j, 0)  # where each frame's samples start in it
    p = HISTORY + f * FRAME - j + jf  # and in ``buf``
    end = np.minimum(p + FRAME - jf, HISTORY + m)
    on, on_p = g != 0, g_p != 0
    fade = (jf < FADE) & (on | on_p)
    two = fade & on_p  # the cross-fade has both terms
    step_f = np.where(two, np.minimum(lag, lag_p), lag) - _REACH
    f_end = np.where(fade, np.minimum(end, p + _ceil_div(FADE - jf, step_f) * step_f), p)
    n_fade = np.where(fade, _ceil_div(f_end - p, step_f), 0)
    step_s = lag - _REACH
    n_chunks = n_fade + np.where(fade | on, _ceil_div(end - f_end, step_s), 0)
    total = int(n_chunks.sum())
    if not total:
        return None
    c0 = np.cumsum(n_chunks) - n_chunks  # each frame's first chunk
    first = n_chunks > 0  # the first frames of the stretches
    first[1:] &= n_chunks[:-1] == 0
    # the chunks, in order: their frame, their number in it and in the stretch
    fr = np.repeat(f, n_chunks)
    k = np.arange(total)
    o = k - c0[fr]
    step = k - np.maximum.accumulate(np.where(first, c0, 0))[fr]
    in_fade = o < n_fade[fr]
    size = np.where(in_fade, step_f[fr], step_s[fr])
    start = np.where(in_fade, p[fr] + o * size, f_end[fr] + (o - n_fade[fr]) * size)
    stop = np.minimum(start + size, np.where(in_fade, f_end[fr], end[fr]))
    both = in_fade & two[fr]
    # the terms: every chunk's first terms, then the second terms of the chunks
    # that have two; sorted by step, and in a step by kind (0: the chunks with one
    # term, 1: the first terms of those with two, 2: their second terms)
    fb = fr[both]
    t_len = stop - start
    t_len = np.concatenate((t_len, t_len[both]))
    t_step = np.concatenate((step, step[both]))
    t_kind = np.concatenate((both.astype(np.int64), np.full(fb.size, 2)))
    order = np.argsort(3 * t_step + t_kind, kind="stable")
    lens = t_len[order]
    # per term (in step order), the first of each of its runs of consecutive
    # numbers: its samples' places in ``buf``, their combs' centres less one, and
    # their weights' places in a table of each gain (one row per bit pattern)
    # times _W_BOTH (``W`` at the sample's place in its frame, then ``1 - W``):
    # ``g W`` as ``g * W`` elementwise, and where the fade is over ``g``, as ``W = 1``
    t_start = np.concatenate((start, start[both]))[order]
    t_lag = np.concatenate((lag[fr], lag_p[fb]))[order]
    bits, row = np.unique(gains.view(np.int64), return_inverse=True)
    table = bits.view(np.float64)[:, None] * _W_BOTH
    t_w = t_start - np.concatenate(((p - jf)[fr], (p - jf - FRAME)[fb]))[order]
    t_w += np.concatenate((row[1:][fr], row[:-1][fb]))[order] * _W_BOTH.size
    run = np.ones(int(lens.sum()), dtype=np.int64)
    w = table.reshape(-1).take(_runs_of(run, t_w, lens))
    at = _runs_of(np.ones(run.size, dtype=np.int64), t_start, lens)
    run.fill(1)
    cm = _runs_of(run, t_start - t_lag - 1, lens)
    # the steps
    s_of, kind = t_step[order], t_kind[order]
    n_steps = int(step.max()) + 1
    terms = np.bincount(s_of, lens, n_steps).astype(np.int64)
    ends = np.cumsum(terms)
    ones = np.bincount(s_of, lens * (kind == 0), n_steps).astype(np.int64)
    twos = np.bincount(s_of, lens * (kind == 1), n_steps).astype(np.int64)
    starts = (ends - terms).tolist()
    steps = list(zip(starts, (ones + twos).tolist(), twos.tolist(), ends.tolist(), strict=True))
    return at, cm, w, steps


def _comb_steps(
    buf: FloatArray,
    at: IntArray,
    cm: IntArray,
    w: FloatArray,
    steps: list[tuple[int, int, int, int]],
) -> None:
    """Add the terms of :func:`_schedule` to ``buf``, step by step.

    A sample ``x`` becomes ``x + w comb`` or, with two terms,
    ``x + (w comb + w' comb')``, with ``comb = t_0 y[c] + t_1 (y[c - 1] + y[c + 1])``:
    the operations of :func:`_comb_frames`, in the same order.
    """
    # ``left[i]``, ``mid[i]``, ``right[i]``: ``buf[i]``, ``buf[i + 1]``, ``buf[i + 2]``
    left, mid, right = buf[:-2], buf[1:-1], buf[2:]
    for a, n, n2, b in steps:
        i = cm[a:b]
        c = mid.take(i)
        c *= _T_MID_0D
        side = left.take(i)
        side += right.take(i)
        side *= _T_SIDE_0D
        c += side
        np.multiply(w[a:b], c, out=c)
        if n2:
            c[n - n2 : n] += c[n:]
            c = c[:n]
        # the inputs (a step reads only samples that earlier steps finished)
        out = at[a : a + n]
        buf[out] = np.add(buf[out], c, out=c)


class PostFilter:
    """The decoder's IIR comb, the exact inverse of :class:`PreFilter` (streaming).

    Feed samples in order with :meth:`process`, giving the parameters of
    every frame that the samples reach (:meth:`push_params` before the
    samples of that frame arrive).
    """

    def __init__(self) -> None:
        self._hist = np.zeros(HISTORY)  # past outputs
        self._pos = 0  # absolute index of the next input sample
        self._params: dict[int, tuple[int, float]] = {}
        self._last = (LAG_MIN, 0.0)

    def push_params(self, frame: int, lag: int, gain: float) -> None:
        """Parameters of frame ``frame`` (frames in increasing order)."""
        self._params[frame] = (int(lag), float(gain))

    def push_many(self, frames: Iterable[int], params: Iterable[tuple[int, float]]) -> None:
        """:meth:`push_params` for several frames: ``(lag, gain)`` pairs of Python
        ``int`` and ``float``."""
        self._params.update(zip(frames, params, strict=True))

    def _frame(self, k: int) -> tuple[int, float]:
        if k < 0:
            return (LAG_MIN, 0.0)
        return self._params.get(k, self._last)

    def process(self, x: FloatArray) -> FloatArray:
        """Filter the next samples; returns as many.

        The outputs start as a copy of the inputs, so the samples where the
        comb is off are done; the others get ``+= acc``, in chunks short
        enough that the comb reads only finished outputs. Over the first
        ``FADE`` samples of a frame (to the end of the last chunk that starts
        before ``FADE``) ``acc = (g W) comb + (g_p (1 - W)) comb_p``, the chunks
        as short as the shorter lag; after it ``acc = g comb``. A few frames go
        chunk by chunk (:func:`_comb_frames`); more go in steps, each one chunk
        of every stretch of frames that the comb links (:func:`_schedule`).
        """
        xa = np.asarray(x, dtype=np.float64)
        m = xa.size
        if m == 0:
            return np.zeros(0)
        buf = np.concatenate((self._hist, xa))  # the outputs, after the history
        first, j = divmod(self._pos, FRAME)  # the first frame, and where in it
        last = (self._pos + m - 1) // FRAME
        frames = [self._frame(k) for k in range(first - 1, last + 1)]
        if last - first < _SIDE_BY_SIDE:
            _comb_frames(buf, frames, j)
        else:
            lags, gains = zip(*frames, strict=True)
            plan = _schedule(np.array(lags), np.array(gains), j, m)
            if plan is not None:
                _comb_steps(buf, *plan)
        self._hist = buf[-HISTORY:].copy()
        self._pos += m
        done = self._pos // FRAME
        self._last = self._frame(done - 1)
        for key in [key for key in self._params if key < done - 1]:
            del self._params[key]
        return buf[HISTORY:]
