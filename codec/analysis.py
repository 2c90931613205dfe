"""LPC / LSF analysis front end.

Every function here is a pure, vectorised array function (time axis last,
frames first), float64 throughout. The chain used by the codec is::

    audio (16 kHz) -> pre_emphasis -> frame_signal (windowed, 20 ms hop)
        -> autocorrelation -> lag window + white-noise correction
        -> levinson (order 16) -> lpc_to_lsf

and :func:`lsf_features` runs it on audio of any sample rate.

Frame alignment
---------------
Coding frame ``k`` covers samples ``[k*320, (k+1)*320)``. Its LPC analysis
window (an asymmetric-free Hann window of :data:`WINDOW_LENGTH` = 480 samples,
30 ms) is centred on the frame centre, so it spans ``[k*320 - 80,
k*320 + 400)``: the analysis needs a lookahead of :data:`LOOKAHEAD` = 80
samples (5 ms) beyond the end of the frame. Samples outside the signal are
zeros.

References
----------
T. Bäckström, *Speech Coding with Code-Excited Linear Prediction*, Springer
2017 (ch. 4-5: LPC, LSF); 3GPP TS 26.445 §5.1.9 (lag window, LSF search);
F. Itakura, "Line spectrum representation of linear predictor coefficients",
JASA 1975; P. Kabal & R. P. Ramachandran, "The computation of line spectral
frequencies using Chebyshev polynomials", IEEE TASSP 1986.
"""

from __future__ import annotations

import itertools
import sys
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from codec.errors import ParameterError

__all__ = [
    "SAMPLE_RATE",
    "FRAME_LENGTH",
    "ORDER",
    "WINDOW_LENGTH",
    "LOOKAHEAD",
    "PRE_EMPHASIS",
    "MIN_LSF_GAP",
    "LpcResult",
    "lpc_of_frames",
    "pre_emphasis",
    "de_emphasis",
    "num_frames",
    "frame_signal",
    "analysis_window",
    "autocorrelation",
    "lag_window",
    "levinson",
    "lpc_analysis",
    "lpc_to_lsf",
    "lsf_to_lpc",
    "lsf_weights",
    "stabilize_lsf",
    "stable_lsf_and_lpc",
    "reflection_coefficients",
    "lpc_spectrum_db",
    "spectral_distortion",
    "sd_summary",
    "lsf_features",
]

FloatArray = npt.NDArray[np.float64]

SAMPLE_RATE = 16000
"""Internal sample rate in Hz."""
FRAME_LENGTH = 320
"""Coding frame hop in samples (20 ms)."""
ORDER = 16
"""LPC order."""
WINDOW_LENGTH = 480
"""LPC analysis window length in samples (30 ms)."""
LOOKAHEAD = (WINDOW_LENGTH - FRAME_LENGTH) // 2
"""Samples of lookahead past the end of a frame needed by its analysis window."""
PRE_EMPHASIS = 0.68
"""Pre-emphasis coefficient (the EVS wideband value)."""
MIN_LSF_GAP = 2.0 * np.pi * 50.0 / SAMPLE_RATE
"""Minimum distance between adjacent LSFs after stabilisation (50 Hz, in rad)."""

_LAG_WINDOW_HZ = 60.0  # Gaussian lag-window bandwidth (G.722.2 uses 60 Hz)
_WHITE_NOISE_CORRECTION = 1.0001  # r[0] *= 1 + 1e-4, i.e. a -40 dB noise floor
_ENERGY_FLOOR = 1e-10  # absolute floor on r[0] so silence stays well posed
_GRID_POINTS = (512, 8192)  # root-search grids on (0, pi): coarse, then fine for failures
_LFILTER_FROM = 1 << 22  # de-emphasis: scipy's lfilter pays off beyond ~4 min of samples
_BISECTIONS = 18  # then one regula-falsi step: error ~ (pi/512/2**18)**2, far below 1e-12 rad


# --------------------------------------------------------------------------
# Filtering with explicit state


def _check_coef(coef: float) -> None:
    if not -1.0 < coef < 1.0:
        raise ParameterError(f"emphasis coefficient must be in (-1, 1), got {coef}")


def pre_emphasis(
    x: npt.ArrayLike, *, coef: float = PRE_EMPHASIS, state: float = 0.0
) -> tuple[FloatArray, float]:
    """Pre-emphasis filter ``y[n] = x[n] - coef * x[n-1]``.

    Parameters
    ----------
    x : array_like, shape (n,)
        Input samples.
    coef : float
        Filter coefficient in (-1, 1).
    state : float
        The input sample preceding ``x[0]`` (0 at the start of a signal).

    Returns
    -------
    y : ndarray, shape (n,)
        Filtered samples.
    state : float
        State to pass with the next block (the last input sample), so that
        block-by-block filtering equals filtering the whole signal.
    """
    _check_coef(coef)
    xa = np.asarray(x, dtype=np.float64)
    if xa.size == 0:
        return xa.copy(), float(state)
    y = xa.copy()
    y[0] -= coef * state
    y[1:] -= coef * xa[:-1]
    return y, float(xa[-1])


def de_emphasis(
    y: npt.ArrayLike, *, coef: float = PRE_EMPHASIS, state: float = 0.0
) -> tuple[FloatArray, float]:
    """De-emphasis filter ``x[n] = y[n] + coef * x[n-1]``, the inverse of :func:`pre_emphasis`.

    Parameters
    ----------
    y : array_like, shape (n,)
        Pre-emphasised samples.
    coef : float
        Filter coefficient in (-1, 1).
    state : float
        The previous output sample (0 at the start of a signal).

    Returns
    -------
    x : ndarray, shape (n,)
        De-emphasised samples.
    state : float
        The last output sample, to pass with the next block.
    """
    _check_coef(coef)
    ya = np.asarray(y, dtype=np.float64)
    if ya.size == 0:
        return ya.copy(), float(state)
    if ya.size >= _LFILTER_FROM or "scipy.signal" in sys.modules:
        from scipy.signal import lfilter  # costs ~0.5-0.9 s to import: only for long inputs

        out, _ = lfilter([1.0], [1.0, -coef], ya, zi=np.array([coef * state]))
        out = np.asarray(out, dtype=np.float64)
    else:
        # the same arithmetic as lfilter's direct form II (y = z + x, z = c * y), so
        # the output is bit-identical whichever branch runs
        out = _first_order_exact(ya, float(coef), float(state))
    return out, float(out[-1])


def _first_order_sequential(y: FloatArray, c: float, state: float) -> FloatArray:
    """``x[k] = y[k] + c * x[k-1]`` (``x[-1] = state``), one sample at a time."""
    acc = itertools.accumulate(y.tolist(), lambda p, v: v + c * p, initial=state)
    return np.fromiter(acc, dtype=np.float64, count=y.size + 1)[1:]


_SEQUENTIAL_BELOW = 1536  # shorter inputs: the plain recursion is the fastest
_BLOCKS_FROM = 32768  # longer inputs: blocks run in lockstep (between: a doubling scan)
_FULL_PASS_SHARE = 8  # whole-array passes while more than 1/8 of the samples change
_MAX_FIX_ROUNDS = 200  # then the rest sample by sample (never reached on speech)


def _first_order_exact(y: FloatArray, c: float, state: float) -> FloatArray:
    """:func:`_first_order_sequential` computed with array operations, bit-identical.

    The result of the sequential recursion is the only sequence ``x`` with
    ``x[k] == fl(y[k] + fl(c * x[k-1]))`` at every ``k``, bit for bit (by
    induction on ``k``). Start from an approximation that satisfies that equation
    at every sample but a known few (:func:`_first_order_blocks`) or that is a few
    ulps off everywhere (a doubling scan, then whole-array passes of the equation),
    and re-evaluate the equation only where the value before changed, until
    nothing changes: the fixed point reached is that sequence. Each round makes at
    least the first inconsistent sample exact, so it terminates; on speech a few
    rounds over a few samples (blocks) or about 20 of shrinking size (doubling scan).
    Short inputs run the recursion itself.
    """
    n = y.size
    if n < _SEQUENTIAL_BELOW or not np.isfinite(y).all():
        return _first_order_sequential(y, c, state)
    if n >= _BLOCKS_FROM and abs(c) < 0.9:
        z, dirty = _first_order_blocks(y, c, state)
    else:
        z, dirty = _first_order_doubling(y, c, state)
    rounds = 0
    while dirty.size:
        if dirty[-1] == n:
            dirty = dirty[:-1]
            continue
        rounds += 1
        if rounds > _MAX_FIX_ROUNDS:  # pragma: no cover - slow convergence: finish in order
            k = int(dirty[0])  # every sample before it is final
            z[k:] = _first_order_sequential(y[k:], c, float(z[k - 1]) if k else state)
            break
        v = z[dirty - 1]
        v *= c
        v += y[dirty]
        keep = v.view(np.int64) != z[dirty].view(np.int64)
        z[dirty] = v
        dirty = dirty[keep] + 1
    return z


def _first_order_doubling(y: FloatArray, c: float, state: float) -> tuple[FloatArray, np.ndarray]:
    """A doubling scan (a few ulps off), then whole-array passes of the recursion's
    equation while many samples change; returns it and the samples after the last
    pass's changes (the only ones that can be inconsistent)."""
    n = y.size
    z = y.copy()
    z[0] += c * state
    tmp = np.empty(n)
    s, p = 1, c
    while s < n and p > 1e-18:  # z[k] = sum_{j < 2s} c^j y[k-j]
        np.multiply(z[:-s], p, out=tmp[: n - s])
        z[s:] += tmp[: n - s]
        s, p = 2 * s, p * p
    while True:
        np.multiply(z[:-1], c, out=tmp[1:])
        tmp[0] = c * state
        tmp += y
        changed = tmp.view(np.int64) != z.view(np.int64)  # bits: -0.0 too
        z, tmp = tmp, z
        if np.count_nonzero(changed) * _FULL_PASS_SHARE <= n:
            return z, np.flatnonzero(changed) + 1


def _first_order_blocks(y: FloatArray, c: float, state: float) -> tuple[FloatArray, np.ndarray]:
    """The recursion run in blocks side by side, one array operation per sample of a block.

    Block b (samples ``[bL, (b+1)L)``, ``L >= W``) starts ``W`` samples early from 0,
    so its error has shrunk by ``|c|^W < 2^-60`` when it reaches its own samples
    (where it has usually merged with the exact sequence); block 0 starts from ``state``.
    Every sample then satisfies the recursion's equation with the sample before
    it, except perhaps the first of each block: those are returned as the ones to
    check.
    """
    n = y.size
    warm = int(np.ceil(-60.0 * np.log(2.0) / np.log(max(abs(c), 1e-300))))
    length = max(warm, min(256, int(np.sqrt(n)) // 4))
    blocks = -(-n // length)
    # rows[j, b]: sample j of block b, counted from the start of its warm-up (the
    # last warm samples of block b - 1, zeros before the signal)
    rows = np.empty((warm + length, blocks))
    full = (blocks - 1) * length
    rows[warm:, :-1] = y[:full].reshape(blocks - 1, length).T
    rows[warm : warm + n - full, -1] = y[full:]
    rows[warm + n - full :, -1] = 0.0
    rows[:warm, 1:] = rows[length:, :-1]
    rows[:warm, 0] = 0.0
    tmp = np.empty(blocks)
    prev = np.zeros(blocks)
    for j in range(warm):
        np.multiply(prev, c, out=tmp)
        np.add(rows[j], tmp, out=prev)
    prev[0] = state
    for j in range(warm, warm + length):
        np.multiply(prev, c, out=tmp)
        prev = rows[j]
        np.add(prev, tmp, out=prev)
    z = np.ascontiguousarray(rows[warm:].T).reshape(-1)[:n]
    return z, np.arange(length, n, length)


# --------------------------------------------------------------------------
# Framing and windowing


def num_frames(n_samples: int, frame_length: int = FRAME_LENGTH) -> int:
    """Number of coding frames for a signal of ``n_samples`` (at least one)."""
    return max(1, -(-int(n_samples) // frame_length))


def analysis_window(length: int = WINDOW_LENGTH) -> FloatArray:
    """Periodic Hann window of ``length`` samples used for LPC analysis."""
    n = np.arange(length)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * (n + 0.5) / length)


def frame_signal(
    x: npt.ArrayLike,
    *,
    frame_length: int = FRAME_LENGTH,
    window_length: int = WINDOW_LENGTH,
    window: npt.ArrayLike | None = None,
) -> FloatArray:
    """Cut a signal into windowed analysis frames aligned with the coding frames.

    Frame ``k`` holds samples ``[k*hop - (W-hop)/2, k*hop + (W+hop)/2)`` (zeros
    outside the signal), multiplied by the analysis window.

    Parameters
    ----------
    x : array_like, shape (n,)
        Signal.
    frame_length : int
        Hop between frames in samples.
    window_length : int
        Analysis window length ``W`` (>= frame_length, same parity).
    window : array_like, shape (W,), optional
        Window to apply; defaults to :func:`analysis_window`.

    Returns
    -------
    frames : ndarray, shape (num_frames(n), W)
    """
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim != 1:
        raise ParameterError(f"frame_signal expects a 1-D signal, got shape {xa.shape}")
    if window_length < frame_length or (window_length - frame_length) % 2:
        raise ParameterError("window_length must be >= frame_length with an even difference")
    n_frames = num_frames(xa.size, frame_length)
    pad = (window_length - frame_length) // 2
    total = (n_frames - 1) * frame_length + window_length
    padded = np.zeros(total)
    padded[pad : pad + xa.size] = xa
    frames = np.lib.stride_tricks.sliding_window_view(padded, window_length)[::frame_length]
    w = analysis_window(window_length) if window is None else np.asarray(window, np.float64)
    return frames[:n_frames] * w


# --------------------------------------------------------------------------
# LPC


def autocorrelation(frames: npt.ArrayLike, order: int = ORDER) -> FloatArray:
    """Autocorrelation ``r[k] = sum_n x[n] x[n+k]`` for lags 0..order, per frame.

    Parameters
    ----------
    frames : array_like, shape (..., W)
    order : int

    Returns
    -------
    r : ndarray, shape (..., order + 1)
    """
    f = np.asarray(frames, dtype=np.float64)
    n = f.shape[-1]
    nfft = 1 << int(np.ceil(np.log2(n + order + 1)))
    spec = np.fft.rfft(f, nfft, axis=-1)
    # |X|^2 = re*re + im*im written into the spectrum itself, with a zero imaginary part:
    # the complex array that irfft makes of a real input, without its casting pass
    parts = spec.view(np.float64)
    np.multiply(parts, parts, out=parts)
    np.add(spec.real, spec.imag, out=spec.real)
    spec.imag = 0.0
    r = np.fft.irfft(spec, nfft, axis=-1)[..., : order + 1]
    return np.ascontiguousarray(r)


def lag_window(
    order: int = ORDER, *, bandwidth_hz: float = _LAG_WINDOW_HZ, sample_rate: int = SAMPLE_RATE
) -> FloatArray:
    """Gaussian lag window ``exp(-(2 pi f0 k / fs)^2 / 2)`` for lags 0..order."""
    k = np.arange(order + 1)
    return np.exp(-0.5 * (2.0 * np.pi * bandwidth_hz * k / sample_rate) ** 2)


def levinson(r: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Levinson-Durbin recursion, vectorised over frames.

    Solves the normal equations for ``A(z) = 1 + sum_k a_k z^-k`` (note the
    sign: the prediction is ``x[n] ~ -sum_k a_k x[n-k]``).

    Parameters
    ----------
    r : array_like, shape (..., p + 1)
        Autocorrelation sequences with ``r[..., 0] > 0``.

    Returns
    -------
    a : ndarray, shape (..., p + 1)
        LPC polynomial coefficients with ``a[..., 0] == 1``.
    k : ndarray, shape (..., p)
        Reflection coefficients, clipped to (-1, 1).
    err : ndarray, shape (...,)
        Final prediction error power.
    """
    ra = np.asarray(r, dtype=np.float64)
    p = ra.shape[-1] - 1
    batch = ra.shape[:-1]
    a = np.zeros((*batch, p + 1))
    a[..., 0] = 1.0
    refl = np.zeros((*batch, p))
    err = ra[..., 0].copy()
    tiny = np.finfo(np.float64).tiny
    for i in range(1, p + 1):
        acc = np.einsum("...j,...j->...", a[..., :i], ra[..., i:0:-1])
        ki = -acc / np.maximum(err, tiny)
        ki = np.clip(ki, -0.999999, 0.999999)
        # a_j += k a_{i-j} (j < i): the products are formed from the old values first
        a[..., 1:i] += ki[..., None] * a[..., i - 1 : 0 : -1]
        a[..., i] = ki
        refl[..., i - 1] = ki
        err = err * (1.0 - ki * ki)
    return a, refl, err


class LpcResult(NamedTuple):
    """LPC analysis of a signal, one row per 20 ms coding frame."""

    a: FloatArray
    """LPC polynomials, shape (n_frames, ORDER + 1), ``a[:, 0] == 1``."""
    reflection: FloatArray
    """Reflection coefficients, shape (n_frames, ORDER)."""
    error: FloatArray
    """Prediction error power, shape (n_frames,)."""
    energy: FloatArray
    """Windowed frame energy ``r[0]`` before conditioning, shape (n_frames,)."""


def lpc_analysis(x16: npt.ArrayLike, *, order: int = ORDER) -> LpcResult:
    """LPC analysis of a (pre-emphasised) 16 kHz signal, one vector per coding frame.

    Windowing (:func:`frame_signal`), autocorrelation, Gaussian lag window,
    white-noise correction (-40 dB) and an absolute energy floor, then
    :func:`levinson`. Never fails: silence yields ``A(z) = 1``.
    """
    return lpc_of_frames(frame_signal(x16), order=order)


def lpc_of_frames(frames: npt.ArrayLike, *, order: int = ORDER) -> LpcResult:
    """LPC analysis of windowed frames (n, W), as :func:`lpc_analysis` does after framing.

    The streaming encoder frames the signal itself and calls this.
    """
    r = autocorrelation(frames, order)
    energy = r[:, 0].copy()
    r = r * lag_window(order)
    r[:, 0] = r[:, 0] * _WHITE_NOISE_CORRECTION + _ENERGY_FLOOR
    a, k, err = levinson(r)
    return LpcResult(a=a, reflection=k, error=err, energy=energy)


# --------------------------------------------------------------------------
# LPC <-> LSF


def _chebyshev_series(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Chebyshev series of the deflated sum and difference polynomials of LPC rows (n, p + 1).

    For even order p = 2m: ``P(z) = A(z) + z^-(p+1) A(1/z)`` has a root at z = -1 and
    ``Q(z) = A(z) - z^-(p+1) A(1/z)`` one at z = 1. The deflated ``P(z)/(1 + z^-1)`` and
    ``Q(z)/(1 - z^-1)`` are symmetric of degree p with coefficients ``s_0 = e_0``,
    ``s_i = e_i - s_{i-1}`` (P, ``e_i = a_i + a_{p+1-i}``) and ``s_i = e_i + s_{i-1}`` (Q,
    ``e_i = a_i - a_{p+1-i}``), ``a_{p+1} = 0``. On the unit circle ``s(e^jw) e^{jmw} =
    c_0 + sum_k c_k T_k(cos w)`` with ``c_0 = s_m`` and ``c_k = 2 s_{m-k}``.

    Returns ``c`` (n, m + 1) for P and for Q. Only ``s_0 .. s_m`` enter ``c``, so the
    recursion stops there; it runs on contiguous columns, each value rounded by the
    same operations as in the whole-row form (``c_0`` still as ``(2 s_m) 0.5``).
    """
    p = a.shape[-1] - 1
    m = p // 2
    col = np.ascontiguousarray(a.T)  # (p + 1, n): a_i as a contiguous row
    cp = np.empty((m + 1, a.shape[0]))
    cq = np.empty((m + 1, a.shape[0]))
    sp = col[0] + 0.0  # e_0 = a_0 +- a_{p+1}
    sq = col[0] - 0.0
    for i in range(1, m + 1):
        cp[m + 1 - i] = sp
        cq[m + 1 - i] = sq
        sp = (col[i] + col[p + 1 - i]) - sp
        sq = (col[i] - col[p + 1 - i]) + sq
    cp[0] = sp
    cq[0] = sq
    for c in (cp, cq):
        c *= 2.0
        c[0] *= 0.5
    return cp.T.copy(), cq.T.copy()  # fresh C-order arrays, as BLAS is given them


_GRID_TABLES: dict[tuple[int, int], tuple[FloatArray, FloatArray]] = {}


def _grid_table(terms: int, grid_points: int) -> tuple[FloatArray, FloatArray]:
    """The grid ``w`` on [0, pi] and ``T_k(cos w) = cos(k w)`` (terms, G + 1), cached.

    Computed by the same expressions as afresh, so the same values; read-only,
    since they are shared between calls (and threads).
    """
    key = (terms, grid_points)
    table = _GRID_TABLES.get(key)
    if table is None:
        w = np.linspace(0.0, np.pi, grid_points + 1)
        tk = np.cos(np.outer(np.arange(terms), w))
        w.flags.writeable = False
        tk.flags.writeable = False
        table = _GRID_TABLES[key] = (w, tk)
    return table


_TABLED_STEPS = 6  # bisection steps on the coarse grid that are looked up in a table
_STEP_TABLES: dict[int, tuple[FloatArray, FloatArray, FloatArray]] = {}


def _step_table(grid_points: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The first :data:`_TABLED_STEPS` bisection steps in every interval of the grid, cached.

    The midpoints of a grid interval ``[w_j, w_j+1]`` form a binary tree: node h
    (1 at the first step) has the children ``2h`` (its lower half) and ``2h + 1``
    (its upper half). Returns ``cos`` of node h's midpoint at ``[j, h]`` (1 <= h <
    2**S) and the bounds ``lo``, ``hi`` of the leaves ``2**S + l`` at ``[j, l]``; each
    midpoint formed from the same two floats as in the bisection (``0.5 * (lo +
    hi)``), so the values are those it would compute. Read-only.
    """
    tables = _STEP_TABLES.get(grid_points)
    if tables is None:
        w, _ = _grid_table(1, grid_points)
        lo = w[:-1, None]
        hi = w[1:, None]
        cosines = np.zeros((grid_points, 1 << _TABLED_STEPS))
        for s in range(_TABLED_STEPS):
            mid = 0.5 * (lo + hi)
            cosines[:, 1 << s : 2 << s] = np.cos(mid)
            lo = np.stack([lo, mid], axis=2).reshape(grid_points, -1)
            hi = np.stack([mid, hi], axis=2).reshape(grid_points, -1)
        tables = (cosines, lo, hi)
        for t in tables:
            t.flags.writeable = False
        _STEP_TABLES[grid_points] = tables
    return tables


def _clenshaw(
    ck: FloatArray, x: FloatArray, top_nonzero: bool, out: FloatArray | None = None
) -> FloatArray:
    """Evaluate Chebyshev series at finite points ``x``; ``ck[k]`` (broadcast to x) holds c_k.

    Clenshaw's recurrence ``b_k = 2x b_{k+1} - b_{k+2} + c_k`` from ``b = +0`` above
    the top term, then ``f = x b_1 - b_2 + c_0`` (into ``out`` if given), every
    operation rounded as written. Operations that are exact identities are skipped:
    ``v - (+0) == v`` for every v, and the top step ``(2x) (+0) - (+0) + c == c``
    when no ``c`` of the top row is a zero (``top_nonzero``; the product is a zero
    as x is finite).
    """
    top = ck.shape[0] - 1
    two_x = 2.0 * x
    b1: FloatArray | None = None  # b_{k+1}; None: the +0 of the start
    b2: FloatArray | None = None  # b_{k+2}
    spare: FloatArray | None = None  # a scratch array no longer needed (b_{k+3})
    own1 = own2 = False  # whether b1, b2 are scratch arrays of this function
    for k in range(top, -1, -1):
        mult = two_x if k else x
        if k == 0 and out is not None:
            spare = out
        if b1 is None:
            own = not (top_nonzero and k)
            t = np.add(mult * 0.0, ck[k], out=spare) if own else ck[k]
        else:
            own = True
            t = np.multiply(mult, b1, out=spare)
            if b2 is not None:
                t -= b2
            t += ck[k]
        spare = b2 if own2 else None
        b1, b2, own1, own2 = t, b1, own, own1
    assert b1 is not None
    return b1


def _roots_on_grid(c: FloatArray, grid_points: int) -> tuple[FloatArray, np.ndarray]:
    """Roots in (0, pi) of Chebyshev series ``c`` (n, m+1) by sign change + bisection.

    Returns ``(roots, ok)``: roots (n, m) in ascending order of frequency and a
    boolean (n,) that is False where the grid did not show exactly m sign changes.
    """
    return _roots_on_grids([c], grid_points)[0]


def _roots_on_grids(
    series: list[FloatArray], grid_points: int
) -> list[tuple[FloatArray, np.ndarray]]:
    """:func:`_roots_on_grid` of each array of series (all with the same number of
    terms), the bisections of all in one loop (they are elementwise, so each row's
    result is the same as alone).

    The bisection runs on (m, R) arrays (root j of the R rows in row j, with each
    row's coefficients spread alongside), and its first steps on the coarse grid
    look their cosines up in :func:`_step_table`; every value is the one of the
    plain loop: ``mid = 0.5 * (lo + hi)``, ``f(mid)`` by :func:`_clenshaw` at
    ``cos(mid)``, and lo moves to mid where f(mid) has the sign bit of f(lo), else hi.
    """
    g1 = grid_points + 1
    m = series[0].shape[1] - 1
    w, tk = _grid_table(m + 1, grid_points)
    brackets = []
    vals = np.empty(0)
    for c in series:
        n = c.shape[0]
        if vals.shape != (n, g1):
            vals = np.empty((n, g1))  # one buffer for all series (the same BLAS call)
            sign = np.empty(n * g1, dtype=bool)
            change = np.empty(max(n * g1 - 1, 0), dtype=bool)
        np.matmul(c, tk, out=vals)
        # sign changes along the flattened rows; the pairs that straddle two rows are dropped
        np.signbit(vals.ravel(), out=sign)
        np.not_equal(sign[1:], sign[:-1], out=change)
        change[grid_points::g1] = False
        left = np.flatnonzero(change)  # flat index of each bracket's left end, row by row
        row = left // g1
        ok = np.bincount(row, minlength=n) == m
        rows = np.flatnonzero(ok)
        # (m, rows), C order: root j of each row in row j
        left = np.ascontiguousarray(left[ok[row]].reshape(rows.size, m).T)
        cols = left - rows * g1
        flat = vals.ravel()
        cr = np.ascontiguousarray(c[rows].T)
        brackets.append((ok, rows, w[cols], w[cols + 1], flat[left], flat[left + 1], cr, cols))
    # (m, R) arrays: root j of the R rows with a bracket for every root, series after series
    lo, hi, flo, fhi, ck, cols = (
        np.concatenate([b[i] for b in brackets], axis=1) for i in range(2, 8)
    )
    if lo.size:
        # scratch for the history of f(mid) and the coefficients spread over the roots
        # (contiguous operands): the grid values are no longer needed
        size = lo.size
        if vals.size >= (_BISECTIONS + m + 1) * size:
            scratch = vals.ravel()
        else:
            scratch = np.empty((_BISECTIONS + m + 1) * size)
        fmids = scratch[: _BISECTIONS * size].reshape(_BISECTIONS, *lo.shape)
        spread = scratch[_BISECTIONS * size : (_BISECTIONS + m + 1) * size]
        spread = spread.reshape(m + 1, *lo.shape)
        np.copyto(spread, ck[:, None, :])  # c_k of each root's series
        # c_m is 2 s_0 = 2 a_0 in lpc_to_lsf
        top_nonzero = bool(np.all(ck[m] != 0.0))
        # lo moves only to a mid whose f has the sign bit of f(lo), so that bit is fixed
        # and each f(mid) is tested against it; f at the bounds is needed only at the end,
        # read from the history of f(mid) at the last step that moved each bound
        slo = np.signbit(flo)
        to_lo = np.empty((_BISECTIONS, *lo.shape), dtype=bool)
        mid = np.empty_like(lo)
        x = np.empty_like(lo)
        # the first steps on the coarse grid walk the tree of :func:`_step_table`
        tabled = min(_TABLED_STEPS, _BISECTIONS) if grid_points == _GRID_POINTS[0] else 0
        if tabled:
            cosines, lo_leaf, hi_leaf = (t.ravel() for t in _step_table(grid_points))
            base = cols << _TABLED_STEPS  # the table row of each root's grid interval
            node = base + 1  # flat table index of the current node
            half = np.empty_like(node)
        for i in range(_BISECTIONS):
            if i < tabled:
                np.take(cosines, node, out=x)
            else:
                np.add(lo, hi, out=mid)
                mid *= 0.5
                np.cos(mid, out=x)
            _clenshaw(spread, x, top_nonzero, out=fmids[i])
            np.signbit(fmids[i], out=to_lo[i])
            np.equal(to_lo[i], slo, out=to_lo[i])
            if i < tabled:  # to the child: the upper half where lo moves up
                np.subtract(node, base, out=half)
                node += half
                node += to_lo[i]
                if i == tabled - 1:  # a leaf: its bounds
                    node -= 1 << _TABLED_STEPS
                    lo = lo_leaf[node]
                    hi = hi_leaf[node]
            else:
                lo = np.where(to_lo[i], mid, lo)
                hi = np.where(to_lo[i], hi, mid)
        step = np.arange(1, _BISECTIONS + 1, dtype=np.int8)[:, None, None]
        for moved, f in ((to_lo, flo), (~to_lo, fhi)):
            last = (moved * step).max(axis=0).ravel()  # 1 + the last step that moved it; 0: none
            at = np.flatnonzero(last)
            np.put(f, at, fmids.take((last[at] - 1).astype(np.intp) * size + at))
        # final regula-falsi step inside the bracket
        denom = flo - fhi
        safe = np.abs(denom) > 0
        t = np.where(safe, flo / np.where(safe, denom, 1.0), 0.5)
        found = lo + np.clip(t, 0.0, 1.0) * (hi - lo)
    else:
        found = lo
    out = []
    start = 0
    for c, (ok, rows, *_) in zip(series, brackets, strict=True):
        roots = np.zeros((c.shape[0], m))
        roots[rows] = found[:, start : start + rows.size].T
        start += rows.size
        out.append((roots, ok))
    return out


def lpc_to_lsf(a: npt.ArrayLike) -> FloatArray:
    """LPC polynomial to line spectral frequencies.

    Root search of the deflated sum and difference polynomials in the
    Chebyshev domain (Kabal & Ramachandran 1986) on a 512-point frequency
    grid (8192 points where that misses roots), refined by bisection and a
    final regula-falsi step; the accuracy is then set by the conditioning of
    the polynomial (about 1e-13 rad typically, 1e-7 rad for nearly coincident
    LSFs). A polynomial whose roots cannot
    all be found on the unit circle (not minimum phase, or roots closer than
    the grid) is bandwidth-expanded (``a_k *= 0.994^k``) until they can, so the
    function never fails.

    Parameters
    ----------
    a : array_like, shape (..., p + 1)
        LPC polynomials ``[1, a_1, ..., a_p]`` (p even); rows are normalised
        by ``a[..., 0]``.

    Returns
    -------
    lsf : ndarray, shape (..., p)
        Ascending LSFs in (0, pi), in radians.

    Examples
    --------
    >>> import numpy as np
    >>> lsf = lpc_to_lsf(np.r_[1.0, np.zeros(16)])
    >>> bool(np.allclose(lsf, np.arange(1, 17) * np.pi / 17))
    True
    """
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] < 3 or (arr.shape[-1] - 1) % 2:
        raise ParameterError(f"LPC vectors must have odd length >= 3 (even order), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr[..., 0] == 0):
        raise ParameterError("LPC vectors must be finite with a non-zero a[0]")
    batch = arr.shape[:-1]
    p = arr.shape[-1] - 1
    flat = (arr / arr[..., :1]).reshape(-1, p + 1)
    out = np.zeros((flat.shape[0], p))
    todo = np.arange(flat.shape[0])
    work = flat
    expand = 0.994 ** np.arange(p + 1)
    for attempt in range(200):
        grid = _GRID_POINTS[min(attempt, 1)]
        (rp, okp), (rq, okq) = _roots_on_grids(list(_chebyshev_series(work)), grid)
        ok = okp & okq
        lsf = np.sort(np.concatenate([rp, rq], axis=1), axis=1)
        out[todo[ok]] = lsf[ok]
        if ok.all():
            break
        todo = todo[~ok]
        # first retry on the fine grid unchanged, then bandwidth-expand
        work = work[~ok] * (expand if attempt > 0 else 1.0)
    else:  # pragma: no cover - bandwidth expansion converges to A(z) = 1
        out[todo] = np.arange(1, p + 1) * np.pi / (p + 1)
    return out.reshape(*batch, p)


def lsf_to_lpc(lsf: npt.ArrayLike) -> FloatArray:
    """Line spectral frequencies to LPC polynomial, the exact inverse of :func:`lpc_to_lsf`.

    Parameters
    ----------
    lsf : array_like, shape (..., p)
        LSFs in radians (p even), ascending. LSFs 0, 2, 4, ... are the roots of
        the sum polynomial P, LSFs 1, 3, 5, ... those of Q.

    Returns
    -------
    a : ndarray, shape (..., p + 1)
        ``[1, a_1, ..., a_p]``.
    """
    w = np.asarray(lsf, dtype=np.float64)
    if w.ndim == 0 or w.shape[-1] < 2 or w.shape[-1] % 2:
        raise ParameterError(f"LSF vectors must have even length >= 2, got {w.shape}")
    p = w.shape[-1]
    batch = w.shape[:-1]
    flat = w.reshape(-1, p)
    n = flat.shape[0]

    # coefficient-major layout (coefficients in rows, one column per polynomial), so
    # that every operation runs along a contiguous row; the same elementwise operations
    # in the same order as on one polynomial per row
    half = p // 2
    roots = np.empty((half, 2 * n))
    roots[:, :n] = flat[:, 0::2].T  # P's roots (LSFs 0, 2, ...), then Q's (1, 3, ...)
    roots[:, n:] = flat[:, 1::2].T
    m2c = np.cos(roots)
    m2c *= -2.0
    # product of the quadratics 1 - 2 cos(w) z^-1 + z^-2: poly <- poly + m2c z^-1 poly + z^-2 poly
    poly = np.zeros((p + 2, 2 * n))
    poly[0] = 1.0
    for j in range(half):
        deg = 2 * j
        prev = poly[: deg + 1].copy()
        poly[1 : deg + 2] += prev * m2c[j]
        poly[2 : deg + 3] += prev
    pp = poly[:, :n]  # degree p, coefficients 0..p
    qq = poly[:, n:]
    # (P (1 + z^-1) + Q (1 - z^-1)) / 2
    a = np.empty((p + 1, n))
    a[0] = pp[0] + qq[0]
    np.add(pp[1 : p + 1], pp[:p], out=a[1:])
    a[1:] += qq[1 : p + 1] - qq[:p]
    a *= 0.5
    a = np.ascontiguousarray(a.T)
    return a.reshape(*batch, p + 1)


def lsf_weights(lsf: npt.ArrayLike, *, power: float = 1.0) -> FloatArray:
    """Inverse-spacing weights for weighted LSF distances.

    ``w_i = (1/(w_i - w_{i-1}) + 1/(w_{i+1} - w_i))^power`` with ``w_0 = 0`` and
    ``w_{p+1} = pi`` (Laroia, Phamdo & Farvardin, ICASSP 1991): LSFs that sit
    close together mark a formant, where the envelope is most sensitive.
    The weights are normalised to mean 1 per vector.

    Parameters
    ----------
    lsf : array_like, shape (..., p)
    power : float
        Exponent (1 is the classic choice).

    Returns
    -------
    w : ndarray, shape (..., p), positive and finite.
    """
    w = np.asarray(lsf, dtype=np.float64)
    zero = np.zeros((*w.shape[:-1], 1))
    edges = np.concatenate([zero, w, zero + np.pi], axis=-1)
    gaps = np.maximum(np.diff(edges, axis=-1), 1e-4)
    weights = (1.0 / gaps[..., :-1] + 1.0 / gaps[..., 1:]) ** power
    return np.asarray(weights / weights.mean(axis=-1, keepdims=True), dtype=np.float64)


def reflection_coefficients(a: npt.ArrayLike) -> FloatArray:
    """Reflection coefficients of LPC polynomials by the step-down recursion.

    ``A(z)`` is minimum phase (``1/A(z)`` stable) exactly when every
    ``|k_i| < 1``. Computed in extended precision (``np.longdouble``), since
    the float64 recursion can miss the instability of a polynomial with a
    cluster of roots. Rows where the recursion meets ``|k| >= 1`` get ``k = 1`` for
    the remaining entries.

    Parameters
    ----------
    a : array_like, shape (..., p + 1)

    Returns
    -------
    k : ndarray, shape (..., p), in the order ``k_1 .. k_p``.
    """
    # extended precision: for clustered roots the float64 recursion can miss instability
    arr: npt.NDArray[np.longdouble] = np.array(a, dtype=np.longdouble)
    batch = arr.shape[:-1]
    p = arr.shape[-1] - 1
    # coefficient-major (one column per polynomial), so that the operations run along
    # contiguous rows: the same elementwise operations as on one polynomial per row
    cur = np.ascontiguousarray(arr.reshape(-1, p + 1).T)
    if not np.all(cur[0] == 1.0):  # x / 1 == x: normalised rows skip the division
        cur = cur / cur[:1]
    k = np.ones((p, cur.shape[1]), dtype=np.longdouble)
    alive = np.ones(cur.shape[1], dtype=bool)
    nxt = np.empty_like(cur)
    for m in range(p, 0, -1):
        km = cur[m]
        alive &= np.abs(km) < 1.0
        if alive.all():  # where(alive, km, .) is km itself
            km_safe = km
            k[m - 1] = km
        elif alive.any():
            km_safe = np.where(alive, km, 0.0)
            k[m - 1] = np.where(alive, km, 1.0)
        else:  # no row left: the rest of k stays 1
            break
        if m > 1:
            # cur[i] <- (cur[i] - k_m cur[m - i]) / (1 - k_m²), i < m, into the other
            # buffer; only rows 1 .. m - 1: row 0 feeds nothing but itself
            denom = 1.0 - km_safe * km_safe
            rows = nxt[1:m]
            np.multiply(km_safe, cur[m - 1 : 0 : -1], out=rows)
            np.subtract(cur[1:m], rows, out=rows)
            rows /= denom
            cur, nxt = nxt, cur
    return np.array(k.T, dtype=np.float64, order="C").reshape(*batch, p)


def _enforce_gaps(w: FloatArray, gap: FloatArray) -> FloatArray:
    """Push sorted LSFs apart to at least ``gap`` (per row) inside (0, pi)."""
    p = w.shape[-1]
    # forward pass w_i >= w_{i-1} + gap (w_0 = 0), backward w_i <= w_{i+1} - gap (w_{p+1} = pi);
    # elementwise max/min leave an already valid vector bit-exactly unchanged.
    lower = np.zeros(w.shape[:-1])
    for i in range(p):
        lower = np.maximum(w[..., i], lower + gap)
        w[..., i] = lower
    upper = np.full(w.shape[:-1], np.pi)
    for i in range(p - 1, -1, -1):
        upper = np.minimum(w[..., i], upper - gap)
        w[..., i] = upper
    return w


def stabilize_lsf(lsf: npt.ArrayLike, *, min_gap: float = MIN_LSF_GAP) -> FloatArray:
    """Order LSFs and enforce a minimum gap so that the synthesis filter is stable.

    After sorting, every LSF is pushed up to at least ``min_gap`` above its
    lower neighbour (and above 0), then down to at least ``min_gap`` below its
    upper neighbour (and below pi). Strictly increasing LSFs in (0, pi) give a
    minimum-phase ``A(z)`` in exact arithmetic; in float64 a cluster of LSFs
    packed at 0 or pi can still give a numerically unstable polynomial, so
    each result is checked with :func:`reflection_coefficients` and rows that
    fail are re-spaced with a 1.5x larger gap until they pass. Non-finite
    entries are replaced by the neutral (equally spaced) value for their
    position. Valid vectors come back unchanged.

    Parameters
    ----------
    lsf : array_like, shape (..., p)
    min_gap : float
        Minimum spacing in radians; requires ``(p + 1) * min_gap < pi``.

    Returns
    -------
    lsf : ndarray, shape (..., p)
    """
    return stable_lsf_and_lpc(lsf, min_gap=min_gap)[0]


def stable_lsf_and_lpc(
    lsf: npt.ArrayLike, *, min_gap: float = MIN_LSF_GAP
) -> tuple[FloatArray, FloatArray]:
    """:func:`stabilize_lsf` and :func:`lsf_to_lpc` of its result, shape (..., p + 1):
    the polynomials that the stability check computes anyway (the same numbers as
    ``lsf_to_lpc(stabilize_lsf(lsf))``)."""
    w = np.array(lsf, dtype=np.float64)
    p = w.shape[-1]
    if not 0.0 < min_gap * (p + 1) < np.pi:
        raise ParameterError(f"min_gap {min_gap} too large for {p} LSFs")
    neutral = np.arange(1, p + 1) * np.pi / (p + 1)
    bad = ~np.isfinite(w)
    if bad.any():
        w[bad] = np.broadcast_to(neutral, w.shape)[bad]
    shape = w.shape
    w = np.sort(np.clip(w, 0.0, np.pi), axis=-1).reshape(-1, p)
    out = _enforce_gaps(w.copy(), np.full(w.shape[0], min_gap))
    gap = min_gap
    a = lsf_to_lpc(out)
    k = reflection_coefficients(a)
    todo = np.nonzero(np.any(np.abs(k) >= 0.9999, axis=-1))[0]
    respaced = todo.size > 0
    while todo.size:
        gap = min(gap * 1.5, 0.95 * np.pi / (p + 1))
        out[todo] = _enforce_gaps(w[todo].copy(), np.full(todo.size, gap))
        k = reflection_coefficients(lsf_to_lpc(out[todo]))
        todo = todo[np.any(np.abs(k) >= 0.9999, axis=-1)]
    if respaced:
        a = lsf_to_lpc(out)  # of the re-spaced vectors, as for any (whole batch)
    return out.reshape(shape), a.reshape(*shape[:-1], p + 1)


# --------------------------------------------------------------------------
# Spectral distortion


def lpc_spectrum_db(a: npt.ArrayLike, *, n_fft: int = 512) -> FloatArray:
    """Envelope ``10 log10 |1/A(e^jw)|^2`` in dB on ``n_fft/2 + 1`` bins over 0..fs/2."""
    spec = np.fft.rfft(np.asarray(a, dtype=np.float64), n_fft, axis=-1)
    power = np.maximum(spec.real**2 + spec.imag**2, 1e-30)
    return np.asarray(-10.0 * np.log10(power), dtype=np.float64)


def spectral_distortion(
    a_ref: npt.ArrayLike, a_test: npt.ArrayLike, *, n_fft: int = 512
) -> FloatArray:
    """Per-frame spectral distortion between two LPC envelopes, in dB.

    ``SD = sqrt(mean_f (10 log10 |1/A(f)|^2 - 10 log10 |1/Â(f)|^2)^2)`` over
    the bins from 0 to 8 kHz inclusive (design brief, section 4).

    Parameters
    ----------
    a_ref, a_test : array_like, shape (..., p + 1)

    Returns
    -------
    sd : ndarray, shape (...,)
    """
    d = lpc_spectrum_db(a_ref, n_fft=n_fft) - lpc_spectrum_db(a_test, n_fft=n_fft)
    return np.asarray(np.sqrt(np.mean(d * d, axis=-1)), dtype=np.float64)


def sd_summary(sd: npt.ArrayLike) -> dict[str, float]:
    """Mean SD (dB) and the percentage of frames in 2-4 dB and above 4 dB."""
    s = np.asarray(sd, dtype=np.float64).ravel()
    if s.size == 0:
        raise ParameterError("sd_summary needs at least one frame")
    return {
        "mean_sd_db": float(s.mean()),
        "pct_2_4_db": float(100.0 * np.mean((s > 2.0) & (s <= 4.0))),
        "pct_over_4_db": float(100.0 * np.mean(s > 4.0)),
    }


# --------------------------------------------------------------------------
# Entry point


def lsf_features(audio: npt.ArrayLike, sample_rate: int) -> FloatArray:
    """LSF vectors of every 20 ms coding frame of an audio signal.

    The one entry point used by codec stages and recipes: mono downmix,
    conversion to 16 kHz, pre-emphasis, LPC analysis, LSF.

    Parameters
    ----------
    audio : array_like, shape (n,) or (n, channels)
        Samples (float in [-1, 1] or any scale).
    sample_rate : int
        Sample rate of ``audio`` in Hz.

    Returns
    -------
    lsf : ndarray, shape (num_frames(n16), 16)
        Ascending LSFs in (0, pi), radians.
    """
    from codec.audio import to_mono_16k

    x16 = to_mono_16k(audio, sample_rate)
    y, _ = pre_emphasis(x16)
    return lpc_to_lsf(lpc_analysis(y).a)
