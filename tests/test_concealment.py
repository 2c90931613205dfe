"""Frame-loss concealment: lost frames are replaced, faded and muted, never fail the decoder."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import codec
from codec.bitstream import unpack_file
from codec.cli import main
from codec.concealment import MUTE_AFTER, Concealer
from codec.errors import ParameterError
from codec.metrics import pesq_wb
from codec.pipeline import StreamDecoder


@pytest.fixture(scope="module")
def coded(speech):
    x, sr = speech
    data = codec.encode(x, sr, 13.2)
    return x, data, codec.info(data).frame_count


def test_simulate_loss_mask():
    m = codec.simulate_loss(20000, 0.1, seed=4)
    assert m.dtype == np.bool_ and m.shape == (20000,)
    assert 0.09 < m.mean() < 0.11
    assert np.array_equal(m, codec.simulate_loss(20000, 0.1, seed=4))
    assert not np.array_equal(m, codec.simulate_loss(20000, 0.1, seed=5))
    assert not codec.simulate_loss(100, 0.0).any()
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(ParameterError, match="loss rate"):
            codec.simulate_loss(10, bad)


def test_no_loss_is_the_plain_decode(coded):
    _, data, n = coded
    plain, _ = codec.decode(data)
    same, _ = codec.decode(data, lost=np.zeros(n, dtype=bool))
    assert np.array_equal(plain, same)


def test_lost_mask_must_match_the_stream(coded):
    _, data, n = coded
    for bad in (np.zeros(n + 1, dtype=bool), np.zeros(n), [0, 1]):
        with pytest.raises(ParameterError, match="boolean array"):
            codec.decode(data, lost=bad)


# the post-filter's network sees a frame's loss flag for two more frames
# through each of its two causal convolutions: 4 frames longer to recover
@pytest.mark.parametrize("enhance, recovered", [(False, 104), (True, 108)])
def test_concealed_frames_keep_length_and_energy(coded, enhance, recovered):
    x, data, n = coded
    plain, _ = codec.decode(data, enhance=enhance)
    lost = np.zeros(n, dtype=bool)
    lost[100] = True  # one frame inside speech
    y, _ = codec.decode(data, lost=lost, enhance=enhance)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    seg = slice(100 * 320, 101 * 320)
    e_plain, e_conc = np.sum(plain[seg] ** 2), np.sum(y[seg] ** 2)
    assert 0.05 * e_plain < e_conc < 3.0 * e_plain  # neither silence nor a burst
    assert np.array_equal(y[: 98 * 320], plain[: 98 * 320])  # before the loss: untouched
    # after recovery: the same again
    assert np.allclose(y[recovered * 320 :], plain[recovered * 320 :])


def test_long_burst_fades_to_silence(coded):
    _, data, n = coded
    lost = np.zeros(n, dtype=bool)
    start = 80
    lost[start : start + MUTE_AFTER + 6] = True
    y, _ = codec.decode(data, lost=lost)
    muted = slice((start + MUTE_AFTER + 1) * 320, (start + MUTE_AFTER + 5) * 320)
    assert np.max(np.abs(y[muted])) < 1e-3
    energies = [np.sum(y[(start + k) * 320 : (start + k + 1) * 320] ** 2) for k in range(1, 7)]
    assert energies[-1] < energies[0]


def test_everything_lost_is_silence(coded):
    x, data, n = coded
    y, _ = codec.decode(data, lost=np.ones(n, dtype=bool))
    assert y.shape == x.shape and np.max(np.abs(y)) == 0.0


def test_concealment_beats_muting(coded, monkeypatch):
    """At 10 % loss the concealed signal scores clearly better than muting lost frames."""
    x, data, n = coded
    lost = codec.simulate_loss(n, 0.1, seed=1)
    concealed, _ = codec.decode(data, lost=lost, conceal="causal")
    monkeypatch.setattr(Concealer, "substitute", lambda self, k: np.zeros(self.n))
    muted, _ = codec.decode(data, lost=lost, conceal="causal")
    p_conc, p_mute = pesq_wb(x, concealed, 16000), pesq_wb(x, muted, 16000)
    assert p_conc > p_mute + 0.2
    assert p_conc > 2.0


def test_cli_simulate_loss(coded, tmp_path, capsys):
    x, data, n = coded
    src = tmp_path / "in.svq"
    src.write_bytes(data)
    out = tmp_path / "out.wav"
    assert main(["decode", str(src), str(out), "--simulate-loss", "10%", "--seed", "7"]) == 0
    err = capsys.readouterr().err
    lost = codec.simulate_loss(n, 0.1, seed=7)
    assert f"concealed {int(lost.sum())} of {n} frames" in err
    y, rate = sf.read(out, dtype="float64")
    ref, _ = codec.decode(data, lost=lost)  # the CLI's default for files: interpolate
    assert rate == 16000 and y.shape == ref.shape
    assert np.max(np.abs(y - ref)) < 1.5 / 32767
    # the same seed gives the same file; another seed another one
    out2 = tmp_path / "out2.wav"
    assert main(["decode", str(src), str(out2), "--simulate-loss", "0.1", "--seed", "7"]) == 0
    assert out2.read_bytes() == out.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["decode", str(src), str(tmp_path / "x.wav"), "--simulate-loss", "1.5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "loss rate" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.wav").exists()


# --------------------------------------------------------------------------- look-ahead


def _burst_mask(n: int) -> np.ndarray:
    """Single losses, a burst of 3, one longer than MUTE_AFTER, and a loss at the very end."""
    lost = np.zeros(n, dtype=bool)
    lost[[20, 41, 57, 90, 133]] = True
    lost[100:103] = True
    lost[150 : 150 + MUTE_AFTER + 3] = True
    lost[-1] = True
    return lost


def test_conceal_option_is_checked(coded):
    _, data, _ = coded
    with pytest.raises(ParameterError, match="conceal"):
        codec.decode(data, conceal="guess")  # type: ignore[arg-type]


def test_without_loss_both_concealments_are_the_plain_decode(coded):
    _, data, n = coded
    plain, _ = codec.decode(data)
    for mode in ("causal", "interpolate"):
        y, _ = codec.decode(data, lost=np.zeros(n, dtype=bool), conceal=mode)
        assert np.array_equal(y, plain)
    header, frames = unpack_file(data)
    dec = StreamDecoder(header, conceal="interpolate", block_frames=1)
    y = np.concatenate([dec.decode([fr]) for fr in frames] + [dec.flush()])
    assert np.array_equal(y, plain)


def test_both_conceal_a_lost_frame(coded):
    _, data, n = coded
    plain, _ = codec.decode(data, enhance=False)  # the concealment itself, no post-filter
    lost = np.zeros(n, dtype=bool)
    lost[100] = True
    seg = slice(100 * 320, 101 * 320)
    for mode in ("causal", "interpolate"):
        y, _ = codec.decode(data, lost=lost, conceal=mode, enhance=False)
        assert np.all(np.isfinite(y)) and y.shape == plain.shape
        assert 0.05 * np.sum(plain[seg] ** 2) < np.sum(y[seg] ** 2) < 3.0 * np.sum(plain[seg] ** 2)
        assert np.array_equal(y[: 98 * 320], plain[: 98 * 320])
        assert np.allclose(y[104 * 320 :], plain[104 * 320 :])


def _log_spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference in dB of the two frames' power spectra (Hann window, 512 bins)."""
    w = np.hanning(a.size)
    pa = np.abs(np.fft.rfft(a * w, 512)) ** 2 + 1e-7
    pb = np.abs(np.fft.rfft(b * w, 512)) ** 2 + 1e-7
    return float(np.sqrt(np.mean((10.0 * np.log10(pa / pb)) ** 2)))


def test_interpolation_is_closer_to_the_true_frames(speech, speech_female):
    """Log-spectral distance of each lost frame to the loss-free decode, averaged over
    isolated losses and bursts of 3 in two real speech files. (The waveform error is
    no measure here: neither path restores the phase, and the causal one's fade
    lowers the error of a random-phase substitute by lowering its level.)"""
    dist: dict[str, list[float]] = {"causal": [], "interpolate": []}
    for x, sr in (speech, speech_female):
        data = codec.encode(x, sr, 13.2)
        n = codec.info(data).frame_count
        plain, _ = codec.decode(data)
        for burst in (1, 3):
            lost = np.zeros(n, dtype=bool)
            for start in range(10, n - 10, 9):
                lost[start : start + burst] = True
            for mode, d in dist.items():
                y, _ = codec.decode(data, lost=lost, conceal=mode)  # type: ignore[arg-type]
                for k in np.flatnonzero(lost):
                    seg = slice(k * 320, (k + 1) * 320)
                    d.append(_log_spectral_distance(y[seg], plain[seg]))
    causal, interp = np.mean(dist["causal"]), np.mean(dist["interpolate"])
    assert interp < 0.97 * causal, (causal, interp)


def test_interpolating_stream_does_not_depend_on_chunking(coded):
    _, data, n = coded
    lost = _burst_mask(n)
    whole, _ = codec.decode(data, lost=lost, conceal="interpolate")
    causal, _ = codec.decode(data, lost=lost, conceal="causal")
    assert not np.array_equal(whole, causal)
    header, frames = unpack_file(data)
    given: list[bytes | None] = [None if lost[k] else fr for k, fr in enumerate(frames)]
    rng = np.random.default_rng(5)
    for block, largest in ((1, 1), (50, 7), (3, 40), (50, n)):
        dec = StreamDecoder(header, conceal="interpolate", block_frames=block)
        out, k = [], 0
        while k < n:
            step = int(rng.integers(1, largest + 1))
            out.append(dec.decode(given[k : k + step]))
            k += step
        out.append(dec.flush())
        assert np.array_equal(np.concatenate(out), whole)
    # the default stream decoder stays causal
    dec = StreamDecoder(header)
    assert np.array_equal(np.concatenate([dec.decode(given), dec.flush()]), causal)


def _periodic(period: int, n: int) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / period) + 0.5 * np.sin(4 * np.pi * t / period + 0.3)


def test_waveform_bridge_continues_a_periodic_signal():
    """Between two voiced neighbours, the bridge is the signal itself when it is periodic."""
    from codec.residual import mdct

    n, ov, period = 320, 80, 100
    c = Concealer(n, ov)
    x = _periodic(period, 6 * n)
    # history ends where lost frame k = 3 rises: 3n - ov; the next frame is k + 1 = 4
    c.observe(x[: 3 * n - ov])
    window = mdct.mdct_window(n, ov)
    lead = (n - ov) // 2
    next_block = x[4 * n - ov - lead : 4 * n - ov - lead + 2 * n]
    next_coefs = mdct.mdct(next_block, window)
    c._lag = period
    bridge = c._waveform_bridge(next_coefs, 1)
    assert bridge is not None and bridge.shape == (n + ov,)
    assert np.allclose(bridge, x[3 * n - ov : 4 * n], atol=1e-9)
    # an onset (nothing voiced before): the next frame's cycle repeated backwards
    c._lag = 0
    onset = c._waveform_bridge(next_coefs, 1)
    assert onset is not None and np.allclose(onset, x[3 * n - ov : 4 * n], atol=1e-9)
    # an unvoiced next frame gives no bridge
    noise = np.random.default_rng(0).standard_normal(2 * n)
    assert c._waveform_bridge(mdct.mdct(noise, window), 1) is None


def test_bridged_signs_restore_a_periodic_frame():
    """With the bridge's signs, the interpolated substitute of a lost frame of a
    stationary periodic signal is that frame (same magnitudes on both sides)."""
    from codec.residual import mdct

    n, ov, period = 320, 80, 80
    x = _periodic(period, 8 * n)
    window = mdct.mdct_window(n, ov)
    lead = (n - ov) // 2
    coefs = [mdct.mdct(x[k * n - ov - lead : k * n - ov - lead + 2 * n], window) for k in (3, 4, 5)]
    c = Concealer(n, ov)
    c.observe(x[: 4 * n - ov])
    c.good(coefs[0])
    sub = c.interpolate(4, coefs[2], 1, 1)
    assert np.allclose(sub, coefs[1], atol=1e-6 * np.abs(coefs[1]).max())
