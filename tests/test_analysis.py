"""Tests of the LPC/LSF analysis front end (codec.analysis)."""

from __future__ import annotations

from decimal import Decimal, getcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.signal import lfilter

from codec import analysis as an
from codec.errors import ParameterError


def random_lsf(rng: np.random.Generator, n: int, min_gap: float) -> np.ndarray:
    """Random ascending LSF vectors in (0, pi) with adjacent gaps >= min_gap."""
    p = an.ORDER
    slack = np.pi - (p + 1) * min_gap
    cuts = np.sort(rng.uniform(0.0, slack, (n, p)), axis=1)
    return cuts + np.arange(1, p + 1) * min_gap


def max_root_radius(a: np.ndarray) -> np.ndarray:
    return np.array([np.abs(np.roots(row)).max() for row in np.atleast_2d(a)])


def is_stable(a: np.ndarray) -> np.ndarray:
    """Minimum phase, decided independently of the code under test: the step-down
    recursion in 60-digit decimal arithmetic on the exact float64 coefficients
    (numpy.roots and float64 recursions are unreliable on clustered roots)."""
    getcontext().prec = 60
    out = []
    for row in np.atleast_2d(a):
        cur = [Decimal(float(c)) / Decimal(float(row[0])) for c in row]
        ok = True
        for m in range(len(cur) - 1, 0, -1):
            k = cur[m]
            if abs(k) >= 1:
                ok = False
                break
            cur = [(cur[i] - k * cur[m - i]) / (1 - k * k) for i in range(m)]
        out.append(ok)
    return np.array(out)


def test_reflection_coefficients_match_levinson():
    rng = np.random.default_rng(11)
    r = an.autocorrelation(rng.standard_normal((20, 480)))
    a, k, _ = an.levinson(r)
    np.testing.assert_allclose(an.reflection_coefficients(a), k, atol=1e-9)
    assert not is_stable(np.r_[1.0, -2.5, 1.0]).any()
    assert np.any(np.abs(an.reflection_coefficients(np.r_[1.0, -2.5, 1.0])) >= 1.0)


def speech_lpc(x: np.ndarray) -> np.ndarray:
    y, _ = an.pre_emphasis(x)
    return an.lpc_analysis(y).a


# ---------------------------------------------------------------- filters


def test_pre_emphasis_blockwise_equals_whole(speech):
    x, _ = speech
    whole, _ = an.pre_emphasis(x)
    state, parts = 0.0, []
    for block in np.array_split(x, 37):
        y, state = an.pre_emphasis(block, state=state)
        parts.append(y)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-15)
    np.testing.assert_allclose(whole, lfilter([1, -an.PRE_EMPHASIS], [1], x), atol=1e-14)


def test_de_emphasis_blockwise_equals_whole_and_inverts(speech):
    x, _ = speech
    y, _ = an.pre_emphasis(x)
    whole, _ = an.de_emphasis(y)
    np.testing.assert_allclose(whole, x, atol=1e-12)
    state, parts = 0.0, []
    for block in np.array_split(y, 23):
        z, state = an.de_emphasis(block, state=state)
        parts.append(z)
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-12)


@pytest.mark.parametrize("n", [100, 1535, 1536, 5000, 32767, 32768, 100_003])
@pytest.mark.parametrize("c", [an.PRE_EMPHASIS, -0.5, 0.3, 0.95])
def test_first_order_exact_is_the_recursion_bit_for_bit(speech, n, c):
    """Every path of the fast first-order recursion (sequential, doubling scan,
    blocks in lockstep) gives the sequential recursion's numbers, signed zeros
    and decays into subnormals included."""
    x, _ = speech
    rng = np.random.default_rng(n)
    y = np.resize(x, n) * rng.uniform(0.5, 2.0)
    y[n // 3 : n // 3 + 4000] = 0.0  # a decay into digital silence
    y[n // 2 : n // 2 + 50] = -0.0
    y[-200:] *= 1e-310  # subnormal inputs
    for state in (0.0, 0.7, -1e-300):
        want = an._first_order_sequential(y, c, state)
        got = an._first_order_exact(y, c, state)
        assert np.array_equal(got.view(np.int64), want.view(np.int64))


def test_emphasis_rejects_unstable_coefficient():
    with pytest.raises(ParameterError):
        an.de_emphasis(np.zeros(4), coef=1.0)


# ---------------------------------------------------------------- framing


def test_frame_alignment_and_count():
    x = np.arange(1000, dtype=float)
    frames = an.frame_signal(x, window=np.ones(an.WINDOW_LENGTH))
    assert frames.shape == (an.num_frames(1000), an.WINDOW_LENGTH) == (4, 480)
    # frame k starts LOOKAHEAD samples before k*320
    assert frames[1, an.LOOKAHEAD] == 320.0
    assert frames[0, : an.LOOKAHEAD].sum() == 0.0  # zeros before the signal
    assert an.num_frames(0) == 1 and an.num_frames(320) == 1 and an.num_frames(321) == 2


# ---------------------------------------------------------------- LPC


def test_levinson_recovers_known_ar16_model():
    rng = np.random.default_rng(3)
    a_true = an.lsf_to_lpc(random_lsf(rng, 1, 0.05))[0]
    # exact autocorrelation of the AR process 1/A(z) from its impulse response
    h = lfilter([1.0], a_true, np.r_[1.0, np.zeros(20000)])
    r = np.array([h[: h.size - k] @ h[k:] for k in range(an.ORDER + 1)])
    a, k, err = an.levinson(r)
    np.testing.assert_allclose(a, a_true, atol=1e-8)
    assert np.all(np.abs(k) < 1) and err > 0
    np.testing.assert_allclose(err, 1.0, rtol=1e-6)  # unit-variance innovation


def test_levinson_is_vectorised():
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((5, 480))
    r = an.autocorrelation(frames)
    a_batch, _, _ = an.levinson(r)
    for i in range(5):
        a_one, _, _ = an.levinson(r[i])
        np.testing.assert_allclose(a_batch[i], a_one, atol=1e-14)


def test_autocorrelation_matches_direct():
    rng = np.random.default_rng(1)
    f = rng.standard_normal(480)
    r = an.autocorrelation(f)
    direct = np.array([f[: 480 - k] @ f[k:] for k in range(17)])
    np.testing.assert_allclose(r, direct, atol=1e-10)


# ---------------------------------------------------------------- LSF


def test_lsf_recovered_from_constructed_polynomials():
    rng = np.random.default_rng(42)
    lsf = random_lsf(rng, 5000, min_gap=0.01)
    got = an.lpc_to_lsf(an.lsf_to_lpc(lsf))
    assert np.abs(got - lsf).max() < 1e-6


def test_lsf_agrees_with_numpy_roots_on_speech(speech):
    x, _ = speech
    a = speech_lpc(x)[::7]
    lsf = an.lpc_to_lsf(a)
    for row, w in zip(a, lsf, strict=True):
        ext = np.r_[row, 0.0]
        p_poly, q_poly = ext + ext[::-1], ext - ext[::-1]
        ang = np.angle(np.r_[np.roots(p_poly), np.roots(q_poly)])
        ref = np.sort(ang[(ang > 1e-9) & (ang < np.pi - 1e-9)])
        np.testing.assert_allclose(w, ref, atol=1e-7)


def test_lpc_lsf_roundtrip_on_speech(speech, speech_female):
    for x, _ in (speech, speech_female):
        a = speech_lpc(x)
        np.testing.assert_allclose(an.lsf_to_lpc(an.lpc_to_lsf(a)), a, atol=1e-8)


def test_lsf_shapes_and_batch_dims():
    rng = np.random.default_rng(5)
    lsf = random_lsf(rng, 12, 0.02).reshape(3, 4, 16)
    a = an.lsf_to_lpc(lsf)
    assert a.shape == (3, 4, 17)
    assert an.lpc_to_lsf(a).shape == (3, 4, 16)
    with pytest.raises(ParameterError):
        an.lpc_to_lsf(np.ones(16))
    with pytest.raises(ParameterError):
        an.lsf_to_lpc(np.ones(15))


def test_unstable_lpc_still_gives_valid_lsf():
    rng = np.random.default_rng(7)
    a = np.c_[np.ones(200), rng.standard_normal((200, 16)) * 3]  # mostly non-minimum-phase
    lsf = an.lpc_to_lsf(a)
    assert np.all(np.isfinite(lsf)) and np.all(np.diff(lsf, axis=1) > 0)
    assert np.all((lsf > 0) & (lsf < np.pi))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        (4, 16),
        elements=st.one_of(st.floats(-10, 10), st.sampled_from([np.nan, np.inf, -np.inf, np.pi])),
    )
)
def test_stabiliser_gives_stable_filter_for_adversarial_input(raw):
    w = an.stabilize_lsf(raw)
    assert np.all(np.diff(w, axis=1) >= an.MIN_LSF_GAP - 1e-12)
    assert np.all(w >= an.MIN_LSF_GAP - 1e-12) and np.all(w <= np.pi - an.MIN_LSF_GAP + 1e-12)
    assert np.all(is_stable(an.lsf_to_lpc(w)))


def test_stabiliser_keeps_valid_lsf_unchanged():
    rng = np.random.default_rng(9)
    lsf = random_lsf(rng, 100, 2 * an.MIN_LSF_GAP)
    lsf = lsf[(lsf[:, 0] > an.MIN_LSF_GAP) & (lsf[:, -1] < np.pi - an.MIN_LSF_GAP)]
    np.testing.assert_array_equal(an.stabilize_lsf(lsf), lsf)


def test_stabiliser_on_collapsed_lsfs():
    w = an.stabilize_lsf(np.full((1, 16), 1.0))
    np.testing.assert_allclose(np.diff(w), an.MIN_LSF_GAP, atol=1e-12)
    assert max_root_radius(an.lsf_to_lpc(w))[0] < 1.0
    for edge in (0.0, np.pi):  # packed against 0 or pi: needs the numerical check
        w = an.stabilize_lsf(np.full((2, 16), edge))
        assert np.all(is_stable(an.lsf_to_lpc(w)))
        assert np.all(np.diff(w, axis=1) >= an.MIN_LSF_GAP)


def test_stable_lsf_and_lpc_equals_the_polynomials_of_the_stabilised_lsfs():
    """The polynomials of the stability check are those of the result bit for bit,
    also where rows were re-spaced (packed against 0 or pi) and for a single row."""
    rng = np.random.default_rng(4)
    raw = np.concatenate(
        (random_lsf(rng, 50, 0.0), np.full((2, 16), 0.0), np.full((1, 16), np.pi))
    )
    for rows in (raw, raw[:1], raw[-2:], raw.reshape(53, 1, 16)):
        lsf, a = an.stable_lsf_and_lpc(rows)
        np.testing.assert_array_equal(lsf, an.stabilize_lsf(rows))
        np.testing.assert_array_equal(a, an.lsf_to_lpc(lsf))
        assert a.shape == (*rows.shape[:-1], 17)


def test_lsf_weights_positive_and_emphasise_close_pairs():
    w = np.linspace(0.2, 3.0, 16)
    w[5] = w[4] + 0.01
    wt = an.lsf_weights(w)
    assert np.all(wt > 0) and np.isclose(wt.mean(), 1.0)
    assert wt[4] == wt.max() or wt[5] == wt.max()


# ---------------------------------------------------------------- spectral distortion


def test_spectral_distortion_definition():
    a = an.lsf_to_lpc(np.linspace(0.2, 3.0, 16))
    assert an.spectral_distortion(a, a) == pytest.approx(0.0, abs=1e-12)
    # a pure gain of g on 1/A is a flat 20 log10(g) dB offset
    sd = an.spectral_distortion(a, a / 2.0)
    assert sd == pytest.approx(20 * np.log10(2.0), rel=1e-9)
    s = an.sd_summary(np.array([0.5, 1.0, 3.0, 5.0]))
    assert s == {"mean_sd_db": 2.375, "pct_2_4_db": 25.0, "pct_over_4_db": 25.0}


# ---------------------------------------------------------------- hostile inputs


HOSTILE = {
    "silence": np.zeros(16000),
    "dc": np.full(16000, 0.5),
    "sine": 0.9 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000),
    "clipped_noise": np.clip(np.random.default_rng(0).standard_normal(16000) * 10, -1, 1),
    "impulse": np.r_[1.0, np.zeros(15999)],
    "short": np.array([0.1, -0.2, 0.3]),
    "empty": np.zeros(0),
    "full_scale_square": np.sign(np.sin(2 * np.pi * 50 * np.arange(16000) / 16000)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_inputs_give_valid_lsf(name):
    lsf = an.lsf_features(HOSTILE[name], 16000)
    assert lsf.shape == (an.num_frames(HOSTILE[name].size), 16)
    assert np.all(np.isfinite(lsf))
    assert np.all(np.diff(lsf, axis=1) > 0)
    assert np.all((lsf > 0) & (lsf < np.pi))
    assert np.all(is_stable(an.lsf_to_lpc(lsf)))


def test_lsf_features_resamples_and_downmixes(speech):
    from scipy.signal import butter, sosfiltfilt

    from codec.audio import resample

    x, sr = speech
    # band-limit to 7 kHz so the resampler's anti-aliasing near 8 kHz does not matter
    x = sosfiltfilt(butter(10, 7000, fs=sr, output="sos"), x)
    x48 = resample(x, sr, 48000)
    stereo = np.c_[x48, 0.5 * x48] / 0.75
    got = an.lsf_features(stereo, 48000)
    ref = an.lsf_features(x, sr)
    assert got.shape == ref.shape
    sd = an.spectral_distortion(an.lsf_to_lpc(ref), an.lsf_to_lpc(got))
    assert np.median(sd) < 0.3


def _reflection_reference(a: np.ndarray) -> np.ndarray:
    """The step-down recursion in extended precision on whole polynomials, row by row."""
    out = np.ones((a.shape[0], a.shape[1] - 1))
    for r, row in enumerate(np.asarray(a, dtype=np.longdouble)):
        cur = row / row[0]
        for m in range(a.shape[1] - 1, 0, -1):
            km = cur[m]
            if not abs(km) < 1.0:
                break
            out[r, m - 1] = km
            cur = (cur[:m] - km * cur[m:0:-1]) / (1.0 - km * km)
    return out


def test_reflection_coefficients_are_the_step_down_recursion():
    """Bit for bit the recursion on whole rows (the vectorised one skips what feeds
    no coefficient), unstable rows included."""
    rng = np.random.default_rng(4)
    a = np.vstack(
        [
            an.levinson(an.autocorrelation(rng.standard_normal((30, 480))))[0],
            np.r_[2.0, 0.4 * rng.standard_normal(16)],  # not normalised
            np.poly(np.full(16, 0.999)),  # roots clustered at the unit circle
            np.r_[1.0, -2.5, 1.0, np.zeros(14)],  # unstable at k_2
            np.r_[1.0, 0.3, np.zeros(14), 1.5],  # unstable at k_16
        ]
    )
    k = an.reflection_coefficients(a)
    np.testing.assert_array_equal(k, _reflection_reference(a))
