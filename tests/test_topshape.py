"""The noise's level per short block in transient frames (codec.residual.topshape, format 7)."""

from __future__ import annotations

import numpy as np
import pytest

import codec
from codec.bitstream import check_file
from codec.modes import mode_for
from codec.pipeline import Tools, residual_coder
from codec.registry import find_envelope
from codec.residual import blocks, topshape
from codec.residual.tcx import READ_MANY_MIN_FRAMES, TCX, TcxConfig

N = 320
ONSET = 0.4137  # s: mid-frame (frame 20 holds 0.400-0.420 s)


def _interleaved(amps: list[float], lo: int, rng: np.random.Generator) -> np.ndarray:
    """One frame's interleaved coefficients: random signs, block j's top-band
    bins (from ``lo``) of magnitude ``amps[j]``, the band below loud (it must
    not count)."""
    block = np.arange(N) % blocks.SHORT_BLOCKS
    mag = np.where(np.arange(N) < lo, 100.0, np.asarray(amps)[block])
    return mag * rng.choice([-1.0, 1.0], N)


def test_levels_are_halvings_below_the_loudest_block() -> None:
    rng = np.random.default_rng(0)
    xs = np.stack(
        [
            _interleaved([1.0, 0.5, 0.25, 0.125], 120, rng),
            _interleaved([0.01, 0.01, 1.0, 0.6], 120, rng),  # -40 dB: the deepest level
            _interleaved([0.0, 0.0, 0.0, 0.0], 120, rng),  # a silent top band
        ]
    )
    lv = topshape.levels(xs, 120)
    assert lv.tolist() == [[0, 1, 2, 3], [3, 3, 0, 1], [0, 0, 0, 0]]
    assert topshape.levels(xs, N).tolist() == [[0] * 4] * 3  # no top band
    assert topshape.levels(xs[:0], 120).shape == (0, 4)


def test_gains_keep_the_mean_square_and_apply_scales_only_the_top_band() -> None:
    lv = np.array([[0, 1, 2, 3], [0, 0, 0, 0], [3, 0, 3, 3]])
    g = topshape.gains(lv)
    assert np.allclose(np.mean(g**2, axis=1), 1.0)
    assert np.allclose(g[0] / g[0, 0], [1, 0.5, 0.25, 0.125])
    assert np.allclose(g[1], 1.0)
    ratio = np.random.default_rng(1).uniform(0.5, 2.0, (3, N))
    out = topshape.apply(ratio, lv, 160)
    assert np.array_equal(out[:, :160], ratio[:, :160])
    for p in (160, 161, 162, 163, 317):
        assert np.allclose(out[:, p], ratio[:, p] * g[:, p % 4])
    assert np.array_equal(topshape.apply(ratio, lv, N), ratio)


def _fricative_onset() -> np.ndarray:
    """Near silence, then a loud broadband (fricative-like) burst from mid-frame;
    twice (2 s: enough frames for the decoder's lock-step reader)."""
    rng = np.random.default_rng(5)
    t = np.arange(32000) / 16000.0
    env = (((t % 1.0) > ONSET) & ((t % 1.0) < 0.75)).astype(float)
    hiss = np.diff(rng.standard_normal(t.size + 1))  # tilted up: most energy high
    voice = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((150, 300, 450)))
    return 0.1 * (hiss + voice) * env + 1e-4 * rng.standard_normal(t.size)


def _fields(data: bytes, rate: float, tools: Tools | None = None) -> dict[str, np.ndarray]:
    header, frames, _ = check_file(data)
    bits = find_envelope(header.codebook_hash, ()).field_bits
    return residual_coder(rate, tools or Tools()).read_side(frames, bits)[1]


@pytest.mark.parametrize("rate", [8.0, 13.2, 24.4])
def test_levels_are_sent_in_transient_frames_and_read_back(rate: float) -> None:
    x = _fricative_onset()
    data = codec.encode(x, 16000, rate)
    f = _fields(data, rate)
    short = f["transient"] > 0
    assert short.any()
    assert not f["levels"][~short].any()  # only transient frames carry levels
    # the onset frame: the blocks before the burst are quiet
    onset = int(np.flatnonzero(short)[0])
    assert f["levels"][onset, 0] >= 2 and f["levels"][onset].min() == 0
    # the lock-step reader (many frames) and the scalar one (few) agree
    header, frames, _ = check_file(data)
    tcx = residual_coder(rate)
    bits = find_envelope(header.codebook_hash, ()).field_bits
    few = [tcx.read_side(frames[i : i + 2], bits)[1] for i in range(0, len(frames), 2)]
    assert len(frames) >= READ_MANY_MIN_FRAMES
    for name in ("levels", "transient", "gain", "hf"):
        assert np.array_equal(np.concatenate([g[name] for g in few]), f[name])


def test_no_levels_without_a_top_band_or_without_the_tool() -> None:
    x = _fricative_onset()
    assert mode_for(32.0).coded_bins == N  # 32 kbit/s codes every bin: nothing to shape
    on = codec.encode(x, 16000, 32.0)
    assert on == codec.encode(x, 16000, 32.0, tools=Tools(top_shape=False))
    assert not _fields(on, 32.0)["levels"].any()
    data = codec.encode(x, 16000, 13.2, tools=Tools(top_shape=False))
    assert data != codec.encode(x, 16000, 13.2)
    f = _fields(data, 13.2, Tools(top_shape=False))
    assert f["transient"].any() and not f["levels"].any()


def _band_energy(y: np.ndarray, lo_hz: float, seg: slice) -> float:
    spec = np.fft.rfft(y[seg] * np.hanning(seg.stop - seg.start))
    hz = np.fft.rfftfreq(seg.stop - seg.start, 1 / 16000)
    return float(np.sum(np.abs(spec[hz >= lo_hz]) ** 2))


@pytest.mark.parametrize("rate", [8.0, 13.2])
def test_the_top_band_noise_stays_out_of_the_silence_before_an_onset(rate: float) -> None:
    x = _fricative_onset()
    start = int(ONSET * 16000)
    before = slice(start - 96, start - 16)  # 5 ms before the onset, inside its frame
    lo_hz = mode_for(rate).coded_bins * 25.0 + 500.0  # well inside the top band
    energy = {}
    for on in (True, False):
        tools = Tools(top_shape=on)
        y, _ = codec.decode(codec.encode(x, 16000, rate, tools=tools), tools=tools, enhance=False)
        energy[on] = _band_energy(y, lo_hz, before)
    assert energy[True] < 0.25 * energy[False]


def test_only_the_top_bands_noise_follows_the_levels(monkeypatch) -> None:
    """Decoded with the levels and with flat gains: in each transient frame's
    interleaved coefficients the band above the coded one differs by exactly
    the block's gain; the coded band (values and noise fill) and the long
    frames do not change."""
    x = _fricative_onset()
    tcx = TCX(TcxConfig(coded_bins=120))
    coefs = tcx.analyze(x)
    n = coefs.shape[0]
    a = np.zeros((n, 17))
    a[:, 0] = 1.0
    env = np.zeros((n, 4), dtype=np.int64)
    frames = tcx.encode(coefs, a, env, [6] * 4, 33)
    _, fields, _ = tcx.read_side(frames, [6] * 4)
    short = fields["transient"] > 0
    assert short.sum() >= 2 and fields["levels"][short].any()
    g = topshape.gains(fields["levels"][short])[:, np.arange(N) % blocks.SHORT_BLOCKS]
    shaped, _ = tcx.decode(frames, [6] * 4, lambda idx: a)
    monkeypatch.setattr(topshape, "gains", lambda lv: np.ones(np.shape(lv)))
    flat, _ = tcx.decode(frames, [6] * 4, lambda idx: a)
    assert np.array_equal(shaped[~short], flat[~short])
    s, f = blocks.to_short(shaped[short]), blocks.to_short(flat[short])
    assert np.allclose(s[:, :120], f[:, :120], rtol=1e-12, atol=1e-12)
    assert np.allclose(s[:, 120:], (f * g)[:, 120:], rtol=1e-9, atol=1e-12)
    assert not np.allclose(s[:, 120:], f[:, 120:])
