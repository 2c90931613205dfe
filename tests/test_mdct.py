"""Tests of the low-overlap MDCT (codec.residual.mdct)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.errors import ParameterError
from codec.residual.mdct import (
    DEFAULT_OVERLAP,
    FRAME,
    MdctAnalyzer,
    MdctSynthesizer,
    analysis,
    dct4,
    imdct,
    mdct,
    mdct_matrix,
    mdct_window,
    n_frames,
    synthesis,
)

OVERLAPS = [2, 64, DEFAULT_OVERLAP, 128, FRAME]


@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("shape", ["sine", "kbd"])
def test_window_princen_bradley(overlap: int, shape: str) -> None:
    w = mdct_window(FRAME, overlap, shape)
    assert w.shape == (2 * FRAME,)
    np.testing.assert_allclose(w[:FRAME] ** 2 + w[FRAME:] ** 2, 1.0, atol=1e-14)
    np.testing.assert_array_equal(w, w[::-1])
    assert np.count_nonzero(w) == FRAME + overlap
    pad = (FRAME - overlap) // 2
    assert np.all(w[:pad] == 0) and np.all(w[pad + overlap : FRAME + pad] == 1.0)
    assert np.all(np.diff(w[pad : pad + overlap]) > 0)


@pytest.mark.parametrize("n", [4, 16, 64, FRAME])
def test_mdct_matches_direct_definition(n: int) -> None:
    rng = np.random.default_rng(n)
    w = mdct_window(n, min(n, 2 * (n // 4) or 2))
    frames = rng.standard_normal((5, 2 * n))
    c = mdct_matrix(n)
    np.testing.assert_allclose(mdct(frames, w), (frames * w) @ c.T, atol=1e-9)
    coefs = rng.standard_normal((5, n))
    np.testing.assert_allclose(imdct(coefs, w), w * (coefs @ c), atol=1e-9)
    # single frame (1-D input) and extra leading dimensions
    np.testing.assert_allclose(mdct(frames[0], w), c @ (w * frames[0]), atol=1e-9)
    assert mdct(frames.reshape(5, 1, 2 * n), w).shape == (5, 1, n)


@pytest.mark.parametrize("overlap", [2, DEFAULT_OVERLAP, FRAME])
def test_orthonormal_basis(overlap: int) -> None:
    c = mdct_matrix(FRAME)
    w = mdct_window(FRAME, overlap)
    # the windowed basis functions of one frame are orthonormal ...
    np.testing.assert_allclose((c * w**2) @ c.T, np.eye(FRAME), atol=1e-10)
    # ... and orthogonal to those of the neighbouring frame (lapped orthogonal transform)
    cross = (c[:, FRAME:] * w[FRAME:]) @ (c[:, :FRAME] * w[:FRAME]).T
    np.testing.assert_allclose(cross, 0.0, atol=1e-10)


@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("length", [0, 1, 79, 319, 320, 321, 640, 999, 4000])
def test_perfect_reconstruction_random(overlap: int, length: int) -> None:
    rng = np.random.default_rng(length + overlap)
    x = rng.standard_normal(length)
    coefs = analysis(x, overlap=overlap)
    assert coefs.shape == (n_frames(length, FRAME, overlap), FRAME)
    y = synthesis(coefs, overlap=overlap, length=length)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-10)
    # default length: all complete samples, the tail beyond the signal is ~0
    full = synthesis(coefs, overlap=overlap)
    assert full.shape[0] == max(coefs.shape[0] * FRAME - overlap, 0) >= length
    np.testing.assert_allclose(full[:length], x, atol=1e-10)
    np.testing.assert_allclose(full[length:], 0.0, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(0, 2000),
    half_overlap=st.integers(1, FRAME // 2),
    kbd=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_perfect_reconstruction_property(
    length: int, half_overlap: int, kbd: bool, seed: int
) -> None:
    overlap = 2 * half_overlap
    shape = "kbd" if kbd else "sine"
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, length)
    coefs = analysis(x, overlap=overlap, shape=shape)
    y = synthesis(coefs, overlap=overlap, shape=shape, length=length)
    np.testing.assert_allclose(y, x, atol=1e-10)


def test_perfect_reconstruction_speech(speech: tuple[np.ndarray, int]) -> None:
    x, sr = speech
    assert sr == 16000
    coefs = analysis(x)
    y = synthesis(coefs, length=len(x))
    np.testing.assert_allclose(y, x, atol=1e-10)
    # energy compaction on speech: most energy in a few percent of the coefficients
    e = np.sort((coefs**2).ravel())[::-1]
    assert e[: e.size // 20].sum() > 0.8 * e.sum()


def test_perfect_reconstruction_other_sizes() -> None:
    rng = np.random.default_rng(1)
    for n, overlap in [(256, 64), (160, 160), (480, 96), (8, 4)]:
        x = rng.standard_normal(3 * n + 5)
        y = synthesis(analysis(x, n, overlap), n, overlap, length=x.size)
        np.testing.assert_allclose(y, x, atol=1e-10)


@pytest.mark.parametrize("overlap", [64, DEFAULT_OVERLAP, 128])
def test_parseval(overlap: int) -> None:
    # orthonormal TDAC: coefficient energy == signal energy (signal fully covered)
    rng = np.random.default_rng(overlap)
    x = rng.standard_normal(5 * FRAME + 17) * np.linspace(0.1, 3.0, 5 * FRAME + 17)
    coefs = analysis(x, overlap=overlap)
    assert np.sum(coefs**2) == pytest.approx(np.sum(x**2), rel=1e-12)
    # a single windowed frame loses energy only in the slopes
    frame = analysis(x, overlap=overlap)[2]
    assert np.sum(frame**2) <= np.sum(x[2 * FRAME - overlap : 3 * FRAME] ** 2) * (1 + 1e-12)


def test_sinusoid_energy_localised() -> None:
    t = np.arange(16000) / 16000.0
    f = 1000.0
    x = np.sin(2 * np.pi * f * t)
    coefs = analysis(x)[5:-5]
    k = int(round(f / (8000.0 / FRAME) - 0.5))  # bin centres at (k + 1/2) * 25 Hz
    band = np.sum(coefs[:, k - 6 : k + 7] ** 2, axis=1)
    assert np.all(band > 0.99 * np.sum(coefs**2, axis=1))


@pytest.mark.parametrize("overlap", [2, DEFAULT_OVERLAP, FRAME])
def test_streaming_equals_batch(overlap: int) -> None:
    rng = np.random.default_rng(7)
    length = 7 * FRAME + 123
    x = rng.standard_normal(length)
    coefs = analysis(x, overlap=overlap)
    k = coefs.shape[0]
    padded = np.zeros(k * FRAME)
    padded[:length] = x
    ana = MdctAnalyzer(overlap=overlap)
    stream = np.array([ana.process(chunk) for chunk in padded.reshape(k, FRAME)])
    np.testing.assert_allclose(stream, coefs, atol=1e-12)

    syn = MdctSynthesizer(overlap=overlap)
    out = np.concatenate([syn.process(c) for c in coefs])
    assert out.shape == (k * FRAME,)
    # streaming output = input delayed by `overlap` samples
    np.testing.assert_allclose(out[overlap:], synthesis(coefs, overlap=overlap), atol=1e-12)
    np.testing.assert_allclose(out[overlap : overlap + length], x, atol=1e-10)
    np.testing.assert_allclose(out[:overlap], 0.0, atol=1e-12)


def test_synthesizer_state_is_explicit() -> None:
    rng = np.random.default_rng(3)
    coefs = rng.standard_normal((6, FRAME))
    a = MdctSynthesizer()
    first = [a.process(c) for c in coefs[:3]]
    assert a.state.shape == (DEFAULT_OVERLAP,)
    b = MdctSynthesizer()
    b.state = a.state.copy()  # hand the state over: frame k only needs frame k-1's tail
    rest_a = [a.process(c) for c in coefs[3:]]
    rest_b = [b.process(c) for c in coefs[3:]]
    np.testing.assert_array_equal(np.concatenate(rest_a), np.concatenate(rest_b))
    a.reset()
    np.testing.assert_array_equal(a.process(coefs[0]), first[0])


def test_frame_support() -> None:
    # frame k depends only on samples [k*N - L, (k+1)*N)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(6 * FRAME)
    base = analysis(x)
    for k in (1, 3):
        y = x.copy()
        y[: k * FRAME - DEFAULT_OVERLAP] += 1.0
        y[(k + 1) * FRAME :] -= 2.0
        np.testing.assert_allclose(analysis(y)[k], base[k], atol=1e-12)


def test_n_frames() -> None:
    assert n_frames(0) == 0
    assert n_frames(1) == 1
    assert n_frames(FRAME - DEFAULT_OVERLAP) == 1
    assert n_frames(FRAME - DEFAULT_OVERLAP + 1) == 2
    assert n_frames(FRAME) == 2


def test_errors() -> None:
    with pytest.raises(ParameterError):
        mdct_window(320, 81)
    with pytest.raises(ParameterError):
        mdct_window(320, 322)
    with pytest.raises(ParameterError):
        mdct_window(321, 80)
    with pytest.raises(ParameterError):
        mdct_window(320, 80, "hann")
    w = mdct_window()
    with pytest.raises(ParameterError):
        mdct(np.zeros((2, 600)), w)
    with pytest.raises(ParameterError):
        imdct(np.zeros((2, 300)), w)
    with pytest.raises(ParameterError):
        analysis(np.zeros((2, 320)))
    with pytest.raises(ParameterError):
        synthesis(np.zeros((2, 300)))
    with pytest.raises(ParameterError):
        synthesis(np.zeros((2, 320)), length=2 * 320)
    with pytest.raises(ParameterError):
        MdctSynthesizer().process(np.zeros(319))
    with pytest.raises(ParameterError):
        MdctAnalyzer().process(np.zeros(321))


def _imdct_reference(coefs: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The inverse MDCT written out: the DCT-IV unfolded to ``2N`` samples, windowed."""
    u = dct4(coefs)
    q = coefs.shape[-1] // 2
    u1, u2 = u[..., :q], u[..., q:]
    return np.concatenate((u2, -u2[..., ::-1], -u1[..., ::-1], -u1), axis=-1) * window


@pytest.mark.parametrize("overlap", [2, DEFAULT_OVERLAP, FRAME])
def test_synthesizer_block_is_the_overlap_add_of_imdct(overlap: int) -> None:
    """imdct and the synthesizer (which computes only the window's non-zero span)
    give exactly the numbers of the inverse MDCT written out, overlap-added."""
    rng = np.random.default_rng(5)
    coefs = rng.standard_normal((5, FRAME))
    coefs[2] = -0.0  # signed zeros pass through as in the reference
    w = mdct_window(FRAME, overlap)
    y = _imdct_reference(coefs, w)
    np.testing.assert_array_equal(imdct(coefs, w), y)
    np.testing.assert_array_equal(np.signbit(imdct(coefs, w)), np.signbit(y))
    start = (FRAME - overlap) // 2
    hop, tail = y[:, start : start + FRAME].copy(), y[:, start + FRAME : start + FRAME + overlap]
    state = rng.standard_normal(overlap)
    hop[0, :overlap] += state
    hop[1:, :overlap] += tail[:-1]
    syn = MdctSynthesizer(overlap=overlap)
    syn.state = state.copy()
    out = syn.process_block(coefs)
    np.testing.assert_array_equal(out, hop.reshape(-1))
    np.testing.assert_array_equal(np.signbit(out), np.signbit(hop.reshape(-1)))
    np.testing.assert_array_equal(syn.state, tail[-1])


def _dct4_reference(v: np.ndarray) -> np.ndarray:
    """dct4's arithmetic written as complex expressions (before its work arrays)."""
    n = v.shape[-1]
    h = np.arange(n // 2)
    pre = np.exp(-1j * np.pi * (h + 0.25) / n)
    post = np.sqrt(2.0 / n) * np.exp(-1j * np.pi * h / n)
    u = np.fft.fft((v[..., 0::2] + 1j * v[..., ::-1][..., 0::2]) * pre, axis=-1) * post
    out = np.empty(v.shape)
    out[..., 0::2] = u.real
    out[..., ::-1][..., 0::2] = -u.imag
    return out


@pytest.mark.parametrize("n", [2, 8, 80, FRAME])
def test_dct4_bits_match_the_complex_expression(n: int) -> None:
    """Bit for bit, signed zeros and non-finite values included."""
    rng = np.random.default_rng(n)
    special = np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan, 1e-310, -1e300])
    for v in (
        rng.standard_normal((5, n)),
        rng.choice(special, (7, n)),
        rng.choice(np.array([0.0, -0.0]), (3, 4, n)),
        rng.standard_normal(n) * (rng.random(n) < 0.2),
    ):
        with np.errstate(all="ignore"):
            assert dct4(v).tobytes() == _dct4_reference(v).tobytes()


def test_work_arrays_do_not_leak_into_results() -> None:
    """Results stay valid after later calls (the work arrays are reused between calls)."""
    rng = np.random.default_rng(3)
    w = mdct_window(FRAME, DEFAULT_OVERLAP)
    a, b = rng.standard_normal((2, 6, FRAME))
    first = [dct4(a), mdct(np.concatenate([a, a], axis=-1), w), imdct(a, w)]
    copies = [x.copy() for x in first]
    dct4(b), mdct(np.concatenate([b, b], axis=-1), w), imdct(b, w)
    synth = MdctSynthesizer()
    out = synth.process_block(a)
    kept = out.copy()
    synth.process_block(b)
    for x, y in zip(first, copies, strict=True):
        assert x.tobytes() == y.tobytes()
    assert out.tobytes() == kept.tobytes()


def test_synthesis_in_threads_matches_serial() -> None:
    """Each thread has its own work arrays."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal((40 + 7 * i, FRAME)) for i in range(8)]

    def run(c: np.ndarray) -> bytes:
        s = MdctSynthesizer()
        return b"".join(s.process_block(c[i : i + 9]).tobytes() for i in range(0, len(c), 9))

    serial = [run(c) for c in inputs]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, inputs * 3)) == serial * 3
