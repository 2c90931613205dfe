"""Low-overlap MDCT for 20 ms frames at 16 kHz.

Window
------
The window has length ``2N`` (``N`` = hop = 320 samples) but only ``N + L``
non-zero samples (``L`` = ``overlap``, even, ``0 < L <= N``)::

    [ (N-L)/2 zeros | rise (L) | ones (N-L) | fall (L) | (N-L)/2 zeros ]

The rise is ``sin(pi/(2L) (j + 1/2))`` (``shape="sine"``) or the
Kaiser-Bessel-derived slope (``shape="kbd"``); the fall is its mirror image.
Both satisfy the Princen-Bradley condition ``w[n]**2 + w[n+N]**2 == 1`` and
``w[n] == w[2N-1-n]``, so MDCT -> IMDCT -> overlap-add is perfectly
reconstructing (time-domain aliasing cancellation, TDAC).  Low overlap (as in
AAC-LD / EVS TCX) keeps the delay small: a frame needs only ``L`` samples
beyond its own ``N``.

Transform
---------
Orthonormal MDCT (``X = C @ (w * x)``, ``y = w * (C.T @ X)``) with::

    C[k, n] = sqrt(2/N) cos(pi/N (n + 1/2 + N/2) (k + 1/2)),  n < 2N, k < N

computed through the TDAC folding and a length-``N`` DCT-IV evaluated with
one complex FFT of length ``N/2`` (O(N log N), vectorised over frames).
Because the scaling is orthonormal, the lapped transform is orthogonal: the
sum of the squared coefficients of all frames equals the energy of the
signal (Parseval).

Framing and delay
-----------------
Frame ``k`` (``k = 0, 1, ...``) windows the input samples
``[k*N - (N+L)/2, k*N - (N+L)/2 + 2N)``; its non-zero part is
``[k*N - L, (k+1)*N)``: the rise covers ``[k*N - L, k*N)`` and the window
ends exactly at the end of the frame's hop.  Hence an encoder can compute
frame ``k`` as soon as input sample ``(k+1)*N - 1`` has arrived (no
lookahead), and after overlap-adding frame ``k`` the output samples
``[k*N - L, (k+1)*N - L)`` are final.  The algorithmic delay of a streaming
analysis/synthesis chain is therefore the frame length plus ``L`` samples
(``320 + L``; 400 samples = 25 ms at the default ``L = 80``), and the
streaming output is the input delayed by ``L`` samples
(:class:`MdctAnalyzer` / :class:`MdctSynthesizer`).

The batch functions hide this: :func:`analysis` codes
``ceil((len(x) + L) / N)`` frames (input zero-padded on both sides) and
:func:`synthesis` removes the ``L``-sample delay, so
``synthesis(analysis(x), length=len(x))`` equals ``x`` to rounding error
(about ``1e-15`` relative), time-aligned and of the same length.

Relation to the LPC framing of :mod:`codec.analysis`: its coding frame
``k`` is ``[k*N, (k+1)*N)`` with an analysis window over
``[k*N - 80, (k+1)*N + 80)``.  For ``L <= 80`` the support of MDCT frame
``k`` lies inside that window, so LPC frame ``k`` is the natural envelope of
MDCT frame ``k``.  :func:`analysis` returns ``ceil((len + L) / N)`` frames,
one more than :func:`codec.analysis.num_frames` when ``len % N`` is 0 or
greater than ``N - L`` (that extra frame only carries the last ``L``
samples' aliasing cancellation).
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codec.errors import ParameterError

__all__ = [
    "DEFAULT_OVERLAP",
    "FRAME",
    "MdctAnalyzer",
    "MdctSynthesizer",
    "analysis",
    "dct4",
    "fold",
    "imdct",
    "mdct",
    "mdct_matrix",
    "mdct_window",
    "n_frames",
    "synthesis",
]

#: Frame hop in samples (20 ms at 16 kHz).
FRAME: int = 320
#: Default overlap (window slope length) in samples (5 ms at 16 kHz).
DEFAULT_OVERLAP: int = 80

FloatArray = NDArray[np.float64]


def _check_n_overlap(n: int, overlap: int) -> None:
    if n < 2 or n % 2:
        raise ParameterError(f"MDCT size n must be even and >= 2, got {n}")
    if overlap < 2 or overlap > n or overlap % 2:
        raise ParameterError(f"overlap must be even and in [2, n], got {overlap}")


def _kbd_slope(length: int, alpha: float) -> FloatArray:
    """Rising half of a Kaiser-Bessel-derived window of total length ``2*length``."""
    kaiser = np.kaiser(length + 1, np.pi * alpha)
    csum = np.cumsum(kaiser)
    out: FloatArray = np.sqrt(csum[:length] / csum[length])
    return out


def mdct_window(
    n: int = FRAME, overlap: int = DEFAULT_OVERLAP, shape: str = "sine", kbd_alpha: float = 4.0
) -> FloatArray:
    """Low-overlap MDCT window.

    Parameters
    ----------
    n : int, optional
        Hop size / number of coefficients ``N`` (even), default 320.
    overlap : int, optional
        Slope length ``L`` in samples (even, ``2 <= L <= N``), default 80.
        ``L == N`` gives the ordinary full-overlap sine/KBD window.
    shape : {"sine", "kbd"}, optional
        Slope shape.
    kbd_alpha : float, optional
        Kaiser parameter of the KBD slope.

    Returns
    -------
    ndarray of float64, shape (2n,)
        ``(N-L)/2`` zeros, rise of ``L``, ``N-L`` ones, fall of ``L``,
        ``(N-L)/2`` zeros.  Satisfies ``w**2 + roll(w, N)**2 == 1`` and
        ``w == w[::-1]``.
    """
    _check_n_overlap(n, overlap)
    if shape == "sine":
        rise = np.sin(np.pi / (2 * overlap) * (np.arange(overlap) + 0.5))
    elif shape == "kbd":
        rise = _kbd_slope(overlap, kbd_alpha)
    else:
        raise ParameterError(f"unknown window shape {shape!r}")
    pad = (n - overlap) // 2
    w = np.zeros(2 * n)
    w[pad : pad + overlap] = rise
    w[pad + overlap : n + pad] = 1.0
    w[n + pad : n + pad + overlap] = rise[::-1]
    return w


def mdct_matrix(n: int) -> FloatArray:
    """Orthonormal MDCT basis, for reference and tests (O(n^2) memory).

    Parameters
    ----------
    n : int
        Number of coefficients ``N``.

    Returns
    -------
    ndarray of float64, shape (n, 2n)
        ``C[k, m] = sqrt(2/N) cos(pi/N (m + 1/2 + N/2) (k + 1/2))``.
    """
    k = np.arange(n)[:, None] + 0.5
    m = np.arange(2 * n)[None, :] + 0.5 + n / 2
    out: FloatArray = np.sqrt(2.0 / n) * np.cos(np.pi / n * k * m)
    return out


@functools.cache
def _twiddles(n: int) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """The pre- and post-twiddles of :func:`dct4` of size ``n`` (read-only)."""
    h = np.arange(n // 2)
    pre = np.exp(-1j * np.pi * (h + 0.25) / n)
    post = np.sqrt(2.0 / n) * np.exp(-1j * np.pi * h / n)
    pre.flags.writeable = post.flags.writeable = False
    return pre, post


_SCRATCH_MAX = 1 << 21
"""Largest scratch array kept between calls, in elements (16 MiB of float64)."""
_scratch = threading.local()


def _scratch_array(name: str, shape: tuple[int, ...], dtype: Any = np.float64) -> NDArray[Any]:
    """A per-thread work array of ``shape`` (contents undefined), reused by the next
    call that asks for ``name``: a fresh large temporary costs more in first-touch
    page faults than the arithmetic done in it. Never returned to a caller."""
    size = math.prod(shape)
    if size > _SCRATCH_MAX:
        return np.empty(shape, dtype)
    store = _scratch.__dict__
    buf = store.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(size, dtype)
        store[name] = buf
    out: NDArray[Any] = buf[:size].reshape(shape)
    return out


def dct4(v: FloatArray) -> FloatArray:
    """Orthonormal DCT-IV along the last axis (self-inverse), via an n/2 FFT."""
    return _dct4(v, np.empty(v.shape, dtype=np.float64))


def _dct4(v: FloatArray, out: FloatArray) -> FloatArray:
    """:func:`dct4` of ``v`` written into ``out`` (same shape, not overlapping ``v``)."""
    n = v.shape[-1]
    pre, post = _twiddles(n)
    if n < 4:  # one complex value: numpy's in-place product of a single element rounds
        # differently from its out-of-place one; keep dct4's original arithmetic
        z1 = (v[..., 0::2] + 1j * v[..., ::-1][..., 0::2]) * pre
        u = np.fft.fft(z1, axis=-1) * post
        out[..., 0::2] = u.real
        out[..., ::-1][..., 0::2] = -u.imag
        return out
    # z = (even + 1j * odd reversed) * pre, the parts written as the complex product and
    # sum form them: real (even + 0 * odd) (1j * x has the real part 0 * x - 1 * 0),
    # imaginary 0 + (odd + 0); then the products, the FFT and its scaling in place
    z = _scratch_array("dct4", (*v.shape[:-1], n // 2), np.complex128)
    odd = v[..., ::-1][..., 0::2]
    zr = z.real
    np.multiply(odd, 0.0, out=zr)
    np.add(v[..., 0::2], zr, out=zr)
    np.add(odd, 0.0, out=z.imag)
    z *= pre
    np.fft.fft(z, axis=-1, out=z)
    z *= post
    out[..., 0::2] = z.real
    np.negative(z.imag, out=out[..., ::-1][..., 0::2])
    return out


def _check_window(window: ArrayLike, length: int | None = None) -> FloatArray:
    w = np.asarray(window, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] < 4 or w.shape[0] % 4:
        raise ParameterError(f"window must be 1-D with a length multiple of 4, got {w.shape}")
    if length is not None and w.shape[0] != length:
        raise ParameterError(f"window length {w.shape[0]} does not match the data ({length})")
    return w


def mdct(frames: ArrayLike, window: ArrayLike) -> FloatArray:
    """Windowed orthonormal MDCT of blocks of ``2N`` samples.

    Parameters
    ----------
    frames : array_like of float, shape (..., 2N)
        Input blocks (any leading dimensions, e.g. ``(n_frames, 2N)``).
    window : array_like of float, shape (2N,)
        Analysis window, e.g. :func:`mdct_window`.

    Returns
    -------
    ndarray of float64, shape (..., N)
        ``mdct_matrix(N) @ (window * frame)`` for every frame.
    """
    x, w = _frames_and_window(frames, window)
    folded = _fold(x, w, _scratch_array("mdct", (*x.shape[:-1], w.shape[0] // 2)))
    return _dct4(folded, np.empty(folded.shape))


def fold(frames: ArrayLike, window: ArrayLike) -> FloatArray:
    """The windowed blocks folded to ``N`` samples (time-domain aliasing): the
    input of the MDCT's DCT-IV, so ``mdct(f, w) == dct4(fold(f, w))`` and,
    the DCT-IV being orthonormal, both have the same energy.

    Parameters and shapes as :func:`mdct`.
    """
    x, w = _frames_and_window(frames, window)
    return _fold(x, w, np.empty((*x.shape[:-1], w.shape[0] // 2)))


def _frames_and_window(frames: ArrayLike, window: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The blocks of :func:`mdct` / :func:`fold` and their window, checked."""
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim < 1:
        raise ParameterError("frames must have shape (..., 2N)")
    return x, _check_window(window, x.shape[-1])


def _fold(x: FloatArray, w: FloatArray, out: FloatArray) -> FloatArray:
    """:func:`fold` of ``x`` (shape (..., 2N)) written into ``out`` (shape (..., N)):
    ``[-c reversed - d, a - b reversed]`` of the windowed quarters ``a, b, c, d``."""
    n = w.shape[0] // 2
    q = n // 2
    z = _scratch_array("fold", x.shape)
    np.multiply(x, w, out=z)
    lo = out[..., :q]
    np.negative(z[..., n + q - 1 : n - 1 : -1], out=lo)
    lo -= z[..., n + q :]
    np.subtract(z[..., :q], z[..., n - 1 : q - 1 : -1], out=out[..., q:])
    return out


def imdct(coefs: ArrayLike, window: ArrayLike) -> FloatArray:
    """Windowed orthonormal inverse MDCT, ready for overlap-add.

    Parameters
    ----------
    coefs : array_like of float, shape (..., N)
        MDCT coefficients.
    window : array_like of float, shape (2N,)
        Synthesis window (the analysis window).

    Returns
    -------
    ndarray of float64, shape (..., 2N)
        ``window * (mdct_matrix(N).T @ coefs)``; overlap-adding consecutive
        blocks with hop ``N`` reconstructs the signal.
    """
    x = np.asarray(coefs, dtype=np.float64)
    if x.ndim < 1:
        raise ParameterError("coefs must have shape (..., N)")
    w = _check_window(window, 2 * x.shape[-1])
    u = _dct4(x, _scratch_array("imdct", x.shape))
    return _windowed_span(u, w, 0, w.shape[0], np.empty((*x.shape[:-1], w.shape[0])))


def _windowed_span(
    u: FloatArray, w: FloatArray, lo: int, hi: int, out: FloatArray | None = None
) -> FloatArray:
    """Samples ``lo .. hi - 1`` of the windowed inverse MDCT whose DCT-IV output is
    ``u`` (shape (..., N)): of ``w * y`` with ``y = [u2, -u2 reversed, -u1 reversed,
    -u1]`` (``u1``, ``u2``: the halves of ``u``; the middle two are ``-u``
    reversed), for ``lo <= N/2`` and ``3N/2 <= hi <= 2N``; written into ``out``
    (shape (..., hi - lo)) when given."""
    n = u.shape[-1]
    q = n // 2
    a = q - lo  # the samples of u2
    if out is None:
        out = np.empty((*u.shape[:-1], hi - lo))
    out[..., :a] = u[..., q + lo :]
    np.negative(u[..., ::-1], out=out[..., a : a + n])
    np.negative(u[..., : hi - lo - a - n], out=out[..., a + n :])
    out *= w[lo:hi]
    return out


def n_frames(length: int, n: int = FRAME, overlap: int = DEFAULT_OVERLAP) -> int:
    """Number of frames :func:`analysis` produces for ``length`` samples.

    Parameters
    ----------
    length : int
        Signal length in samples.
    n, overlap : int, optional
        Hop and overlap.

    Returns
    -------
    int
        ``ceil((length + overlap) / n)``, or 0 for an empty signal.
    """
    if length < 0:
        raise ParameterError("length must be >= 0")
    if length == 0:
        return 0
    return -(-(length + overlap) // n)


def analysis(
    signal: ArrayLike, n: int = FRAME, overlap: int = DEFAULT_OVERLAP, shape: str = "sine"
) -> FloatArray:
    """MDCT of a whole signal.

    Parameters
    ----------
    signal : array_like of float, shape (n_samples,)
        Input signal (any length).
    n : int, optional
        Hop / coefficients per frame (default 320 = 20 ms at 16 kHz).
    overlap : int, optional
        Window overlap ``L`` in samples (default 80).
    shape : {"sine", "kbd"}, optional
        Window slope shape.

    Returns
    -------
    ndarray of float64, shape (n_frames, n)
        Frame ``k`` covers input samples ``[k*n - L, (k+1)*n)`` (non-zero
        window part; samples outside the signal are zeros);
        ``n_frames = ceil((n_samples + L) / n)`` (see :func:`n_frames`).
        The trailing frame exists because the last ``L`` samples sit on a
        window slope and need the next frame to cancel the aliasing.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise ParameterError(f"signal must be 1-D, got shape {x.shape}")
    w = mdct_window(n, overlap, shape)
    k = n_frames(x.shape[0], n, overlap)
    if k == 0:
        return np.zeros((0, n))
    lead = (n + overlap) // 2
    xp = np.zeros((k + 1) * n)
    xp[lead : lead + x.shape[0]] = x
    blocks = np.lib.stride_tricks.sliding_window_view(xp, 2 * n)[::n]
    return mdct(blocks, w)


def synthesis(
    coefs: ArrayLike,
    n: int = FRAME,
    overlap: int = DEFAULT_OVERLAP,
    shape: str = "sine",
    length: int | None = None,
) -> FloatArray:
    """Inverse of :func:`analysis`: IMDCT, overlap-add and delay removal.

    Parameters
    ----------
    coefs : array_like of float, shape (n_frames, n)
        MDCT coefficients as returned by :func:`analysis`.
    n, overlap, shape : optional
        Must match the analysis.
    length : int, optional
        Output length (at most ``n_frames*n - overlap``).  Default: all
        fully reconstructed samples, ``n_frames*n - overlap``.

    Returns
    -------
    ndarray of float64, shape (length,)
        Time-aligned with the analysed signal (zero delay):
        ``synthesis(analysis(x), length=len(x)) == x`` up to rounding.
    """
    c = np.asarray(coefs, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != n:
        raise ParameterError(f"coefs must have shape (n_frames, {n}), got {c.shape}")
    k = c.shape[0]
    full = max(k * n - overlap, 0)
    if length is None:
        length = full
    if not 0 <= length <= full:
        raise ParameterError(f"length must be in [0, {full}], got {length}")
    w = mdct_window(n, overlap, shape)
    blocks = imdct(c, w)
    out = np.zeros((k + 1) * n)
    out[: k * n] += blocks[:, :n].reshape(-1)
    out[n:] += blocks[:, n:].reshape(-1)
    lead = (n + overlap) // 2
    return out[lead : lead + length].copy()


class MdctAnalyzer:
    """Streaming MDCT analysis, one hop of ``n`` new samples per frame.

    Parameters
    ----------
    n, overlap, shape : optional
        As in :func:`analysis`.

    Notes
    -----
    ``process`` called on consecutive chunks ``x[k*n:(k+1)*n]`` returns the
    rows of ``analysis(x)``; to get the final frame(s) feed zero chunks
    until ``n_frames(len(x))`` frames were produced (one more when
    ``len(x)`` is a multiple of ``n``).  The state is the last ``overlap``
    input samples.
    """

    def __init__(self, n: int = FRAME, overlap: int = DEFAULT_OVERLAP, shape: str = "sine") -> None:
        self.n = n
        self.overlap = overlap
        self.window = mdct_window(n, overlap, shape)
        self.history: FloatArray = np.zeros(overlap)

    def reset(self) -> None:
        """Clear the state (as at construction)."""
        self.history = np.zeros(self.overlap)

    def process(self, chunk: ArrayLike) -> FloatArray:
        """MDCT of the frame ending with ``chunk``.

        Parameters
        ----------
        chunk : array_like of float, shape (n,)
            The next ``n`` input samples.

        Returns
        -------
        ndarray of float64, shape (n,)
            Coefficients of the frame covering ``[history, chunk]``.
        """
        x = np.asarray(chunk, dtype=np.float64)
        n, ov = self.n, self.overlap
        if x.shape != (n,):
            raise ParameterError(f"chunk must have shape ({n},), got {x.shape}")
        block = np.zeros(2 * n)
        start = (n - ov) // 2
        block[start : start + ov] = self.history
        block[start + ov : start + ov + n] = x
        self.history = x[n - ov :].copy()
        return mdct(block, self.window)


class MdctSynthesizer:
    """Streaming IMDCT + overlap-add; frame ``k`` only needs frame ``k-1``'s tail.

    Parameters
    ----------
    n, overlap, shape : optional
        As in :func:`synthesis`.

    Attributes
    ----------
    state : ndarray of float64, shape (overlap,)
        Windowed IMDCT output of the previous frame over the first
        ``overlap`` samples of the next output hop (zeros initially).

    Notes
    -----
    ``process(coefs[k])`` returns output samples ``[k*n - L, (k+1)*n - L)``
    of the signal time axis, i.e. the input delayed by ``L = overlap``
    samples; concatenating the outputs and dropping the first ``L`` samples
    gives :func:`synthesis` exactly.
    """

    def __init__(self, n: int = FRAME, overlap: int = DEFAULT_OVERLAP, shape: str = "sine") -> None:
        self.n = n
        self.overlap = overlap
        self.window = mdct_window(n, overlap, shape)
        self.state: FloatArray = np.zeros(overlap)

    def reset(self) -> None:
        """Clear the state (as at construction)."""
        self.state = np.zeros(self.overlap)

    def process(self, coefs_frame: ArrayLike) -> FloatArray:
        """Synthesise one hop of output.

        Parameters
        ----------
        coefs_frame : array_like of float, shape (n,)
            MDCT coefficients of the next frame.

        Returns
        -------
        ndarray of float64, shape (n,)
            The next ``n`` output samples (delay ``overlap`` samples).
        """
        c = np.asarray(coefs_frame, dtype=np.float64)
        n = self.n
        if c.shape != (n,):
            raise ParameterError(f"coefs_frame must have shape ({n},), got {c.shape}")
        return self.process_block(c[None, :])

    def process_block(self, coefs: ArrayLike) -> FloatArray:
        """Synthesise ``k`` hops at once (vectorised :meth:`process`).

        Parameters
        ----------
        coefs : array_like of float, shape (k, n)

        Returns
        -------
        ndarray of float64, shape (k * n,)
        """
        c = np.asarray(coefs, dtype=np.float64)
        n, ov = self.n, self.overlap
        if c.ndim != 2 or c.shape[1] != n:
            raise ParameterError(f"coefs must have shape (k, {n}), got {c.shape}")
        if c.shape[0] == 0:
            return np.zeros(0)
        # imdct's samples from the window's first non-zero one on: the hop, then the
        # overlap with the next frame
        start = (n - ov) // 2
        u = _dct4(c, _scratch_array("synth", c.shape))
        y = _windowed_span(u, self.window, start, start + n + ov)
        out = y[:, :n]
        tails = y[:, n:]
        out[0, :ov] += self.state
        out[1:, :ov] += tails[:-1]
        self.state = tails[-1].copy()
        return np.asarray(out.reshape(-1), dtype=np.float64)
