"""Short blocks for transient frames (codec.residual.blocks, format 6)."""

from __future__ import annotations

import numpy as np
import pytest

import codec
from codec.bitstream import check_file, pack_file, unpack_file
from codec.errors import ParameterError
from codec.pipeline import StreamDecoder, StreamEncoder, Tools, residual_coder
from codec.registry import find_envelope
from codec.residual import blocks, mdct

N, L, H = 320, 80, 80


def _short_matrix() -> np.ndarray:
    """The long coefficients of every unit short coefficient, from the definition:
    block j's sine-windowed inverse MDCT placed at its 5 ms hop inside the long
    frame's window, then the long windowed MDCT."""
    wl, ws = mdct.mdct_window(N, L), mdct.mdct_window(H, H)
    pad = (N - L) // 2
    out = np.zeros((N, N))
    for p in range(N):
        i, j = divmod(p, blocks.SHORT_BLOCKS)
        c = np.zeros(H)
        c[i] = 1.0
        frame = np.zeros(2 * N)
        frame[pad + H * j : pad + H * j + 2 * H] = mdct.imdct(c, ws)
        out[:, p] = mdct.mdct(frame, wl)
    return out


def test_short_and_long_are_one_orthogonal_map() -> None:
    r = _short_matrix()
    assert np.allclose(r.T @ r, np.eye(N), atol=1e-12)  # the blocks fit the long edges
    x = np.random.default_rng(0).standard_normal((7, N))
    assert np.allclose(blocks.to_short(x), x @ r, atol=1e-12)
    assert np.allclose(blocks.to_long(blocks.to_short(x)), x, atol=1e-12)
    assert np.allclose(blocks.to_short(blocks.to_long(x)), x, atol=1e-12)
    # Parseval: the same energy in both domains
    assert np.allclose((blocks.to_short(x) ** 2).sum(1), (x**2).sum(1))


def test_swapping_a_frame_keeps_perfect_reconstruction() -> None:
    """Any frame may be short: the overlap-add with long neighbours still cancels
    the aliasing (the signal comes back)."""
    x = np.random.default_rng(1).standard_normal(20 * N)
    c = mdct.analysis(x, N, L)
    short = blocks.to_short(c[5:9])
    c2 = c.copy()
    c2[5:9] = blocks.to_long(short)
    assert np.allclose(mdct.synthesis(c2, N, L, length=x.size), x, atol=1e-10)


def test_short_coefficients_stay_in_their_block() -> None:
    """A click in the third 5 ms of a frame's hop lands in block 2 or 3's coefficients."""
    x = np.zeros(10 * N)
    k = 4
    x[k * N + 2 * H + 40 - L // 2 + 40] = 1.0  # inside block 2's flat-ish middle
    c = mdct.analysis(x, N, L)
    e = blocks.block_energies(blocks.to_short(c[k]))
    assert e.argmax() in (2, 3) and e[:2].sum() < 1e-20
    # the long frame cannot tell where in the frame the click is
    assert (np.abs(c[k]) > 1e-3).mean() > 0.5


def test_detect_marks_onsets_not_steady_sounds() -> None:
    t = np.arange(16000) / 16000.0
    steady = 0.3 * np.sin(2 * np.pi * 440 * t)
    onset = np.where(t > 0.4, steady, 0.0) + 1e-4 * np.random.default_rng(2).standard_normal(t.size)
    c_steady = mdct.analysis(steady, N, L)
    c_onset = mdct.analysis(onset, N, L)
    assert not blocks.detect(c_steady[2:-2]).any()
    marks = blocks.detect(c_onset)
    assert marks.sum() >= 1 and marks[19:22].any() and marks.sum() <= 3
    assert not blocks.detect(np.zeros((3, N))).any()  # silence
    assert blocks.detect(np.zeros((0, N))).shape == (0,)


def test_detect_measures_the_short_blocks_energies() -> None:
    """detect() takes each block's energy from the folded samples (no DCT): the
    short coefficients' energies, so the decision is the ratio rule on them."""
    rng = np.random.default_rng(4)
    c = rng.standard_normal((50, N)) * rng.random((50, 1))
    e = blocks.block_energies(blocks.to_short(c))
    folded = np.sum(blocks._folded(c, L) ** 2, axis=-1)
    assert np.allclose(folded, e, rtol=1e-12)
    for ratio in (1.5, 2.0, 4.0):
        want = e.max(axis=1) > ratio * e.min(axis=1)
        assert np.array_equal(blocks.detect(c, ratio), want)
        short, swapped = blocks.split(c, ratio)
        assert np.array_equal(short, want)
        assert np.array_equal(swapped, blocks.to_short(c[want]))  # the same numbers


def test_short_blocks_need_a_matching_overlap() -> None:
    with pytest.raises(ParameterError, match="overlap"):
        blocks.to_short(np.zeros((1, N)), overlap=160)


def _burst() -> np.ndarray:
    """Silence, then a voiced burst starting mid-frame, then silence."""
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000.0
    tone = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((180, 360, 540, 720)))
    env = ((t > 0.4137) & (t < 0.75)).astype(float)
    return 0.2 * tone * env + 1e-4 * rng.standard_normal(t.size)


@pytest.mark.parametrize("rate", [8.0, 24.4])
def test_the_flag_is_sent_and_read(rate: float) -> None:
    x = _burst()
    data = codec.encode(x, 16000, rate)
    header, frames, _ = check_file(data)
    tcx = residual_coder(rate)
    bits = find_envelope(header.codebook_hash, ()).field_bits
    _, fields, _ = tcx.read_side(frames, bits)
    flags = fields["transient"]
    assert set(np.unique(flags)) <= {0, 1} and 1 <= flags.sum() <= 6
    assert flags[20] or flags[21]  # the onset at 0.414 s lies in frame 20 (+ overlap)
    # without the tool no frame is flagged and the streams differ
    off = codec.encode(x, 16000, rate, tools=Tools(short_blocks=False))
    assert off != data
    plain = residual_coder(rate, Tools(short_blocks=False))
    _, f_off, _ = plain.read_side(check_file(off)[1], bits)
    assert not f_off["transient"].any()


def test_short_blocks_keep_the_noise_out_of_the_silence_before_an_onset() -> None:
    x = _burst()
    start = int(0.4137 * 16000)
    before = slice(start - 200, start - 20)  # the 11 ms before the onset
    err = {}
    for on in (True, False):
        data = codec.encode(x, 16000, 13.2, tools=Tools(short_blocks=on))
        y, _ = codec.decode(data, tools=Tools(short_blocks=on), enhance=False)
        err[on] = float(np.sum((y[before] - x[before]) ** 2))
    assert err[True] < 0.25 * err[False]


def test_transient_frames_code_the_same_in_any_chunking() -> None:
    """Encoder chunks and decoder groups change nothing around a transient frame."""
    x = _burst()
    data = codec.encode(x, 16000, 24.4)
    enc = StreamEncoder(16000, 24.4)
    frames = []
    for i in range(0, x.size, 333):
        frames += enc.push(x[i : i + 333])
    frames += enc.finish()
    assert pack_file(enc.header(), frames) == data
    whole, _ = codec.decode(data, enhance=False)
    header, frames = unpack_file(data)
    for size in (1, 3, 500):
        dec = StreamDecoder(header, enhance=False)
        out = [dec.decode(frames[i : i + size]) for i in range(0, len(frames), size)]
        out.append(dec.flush())
        assert np.array_equal(np.concatenate(out), whole)
