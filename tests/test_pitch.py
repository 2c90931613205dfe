"""The pitch pre-/post-filter tool (codec.residual.pitch) and the coded top band."""

from __future__ import annotations

import numpy as np
import pytest

import codec
from codec.analysis import pre_emphasis
from codec.errors import BitstreamError
from codec.residual import pitch
from codec.residual.harmonic import apply_harmonic, harmonic_shape
from codec.residual.pitch import (
    FRAME,
    LAG_MAX,
    LAG_MIN,
    PitchAnalyzer,
    PitchParams,
    PostFilter,
    PreFilter,
    estimate_pitch,
    gain_value,
)
from codec.residual.tcx import N_BINS, TCX, TcxConfig


def _random_params(n: int, rng: np.random.Generator) -> PitchParams:
    return PitchParams(rng.integers(LAG_MIN, LAG_MAX + 1, n), rng.integers(-1, 8, n))


def _postfilter(p: np.ndarray, params: PitchParams, cuts: list[int]) -> np.ndarray:
    post = PostFilter()
    for k in range(params.lag.size):
        post.push_params(k, int(params.lag[k]), float(gain_value(params.gain[k])))
    return np.concatenate([post.process(p[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])


def test_postfilter_inverts_prefilter_in_any_chunks(speech):
    x, _ = speech
    n = 60
    y = x[: n * FRAME]
    rng = np.random.default_rng(3)
    params = _random_params(n, rng)
    pre = PreFilter()
    split = 17
    p = np.concatenate(
        (
            pre.process(y[: split * FRAME], PitchParams(params.lag[:split], params.gain[:split])),
            pre.process(y[split * FRAME :], PitchParams(params.lag[split:], params.gain[split:])),
        )
    )
    whole = PreFilter().process(y, params)
    assert np.array_equal(p, whole)  # the pre-filter streams by frames
    assert not np.allclose(p, y)  # and does filter
    cuts = sorted({0, y.size, *rng.integers(1, y.size, 12).tolist()})
    out = _postfilter(p, params, cuts)
    assert np.max(np.abs(out - y)) < 1e-12
    assert np.array_equal(out, _postfilter(p, params, [0, y.size]))


def _postfilter_reference(x: np.ndarray, params: PitchParams) -> np.ndarray:
    """The post-filter sample by sample in Python floats: the same operations, in order."""
    w = pitch._W
    t0, t1 = float(pitch.TAPS[2]), float(pitch.TAPS[3])
    g_of = [float(g) for g in gain_value(params.gain)]
    y = [0.0] * pitch.HISTORY
    for n, xn in enumerate(x.tolist()):
        k, j = divmod(n, FRAME)
        lag, g = int(params.lag[k]), g_of[k]
        lag_p, g_p = (int(params.lag[k - 1]), g_of[k - 1]) if k else (LAG_MIN, 0.0)

        def comb(t: int) -> float:
            b = len(y) - t
            return t0 * y[b] + t1 * (y[b - 1] + y[b + 1])

        if j < pitch.FADE and (g or g_p):
            acc = (g * float(w[j])) * comb(lag)
            if g_p:
                acc += (g_p * float(1.0 - w[j])) * comb(lag_p)
            y.append(xn + acc)
        else:
            y.append(xn + g * comb(lag) if g else xn)
    return np.array(y[pitch.HISTORY :])


def test_postfilter_matches_the_sample_by_sample_reference():
    rng = np.random.default_rng(7)
    n = 16
    lag = rng.choice([LAG_MIN, LAG_MIN + 1, 60, 81, 150, LAG_MAX - 1, LAG_MAX], n)
    gain = rng.integers(-1, 8, n)
    gain[[3, 4, 9, 12]] = -1  # off frames after on ones, and two in a row
    params = PitchParams(lag.astype(np.int64), gain.astype(np.int64))
    x = rng.standard_normal(n * FRAME - 77)
    ref = _postfilter_reference(x, params)
    for step in (1, 31, 80, FRAME - 1, FRAME, FRAME + 1, 1000):
        cuts = [*range(0, x.size, step), x.size]
        assert np.array_equal(_postfilter(x, params, cuts), ref), step
    cuts = sorted({0, x.size, *rng.integers(1, x.size, 20).tolist()})
    assert np.array_equal(_postfilter(x, params, cuts), ref)


@pytest.mark.parametrize("side_by_side", [0, pitch._SIDE_BY_SIDE])
def test_postfilter_in_steps_matches_the_reference(monkeypatch, side_by_side):
    """Many frames in one call go in steps, chunks of several stretches of frames at
    once (with ``side_by_side = 0`` every call does): the same samples."""
    monkeypatch.setattr(pitch, "_SIDE_BY_SIDE", side_by_side)
    rng = np.random.default_rng(11)
    n = 2 * pitch._SIDE_BY_SIDE + 9
    lag = rng.integers(LAG_MIN, LAG_MAX + 1, n)
    lag[rng.random(n) < 0.3] = LAG_MIN
    gain = np.where(rng.random(n) < 0.6, rng.integers(0, 8, n), -1)
    gain[40:60] = 7  # a long stretch, to run on after the others
    params = PitchParams(lag.astype(np.int64), gain.astype(np.int64))
    x = rng.standard_normal(n * FRAME - 123)
    ref = _postfilter_reference(x, params)
    cuts = sorted({0, x.size, *rng.integers(1, x.size, 3).tolist()})
    for c in ([0, x.size], cuts, [0, 45, 46, 700, x.size]):
        assert np.array_equal(_postfilter(x, params, c), ref), c


def test_postfilter_in_steps_with_any_gains(monkeypatch):
    """Gains of any value (each its own row of the steps' weight table, ``-0.0`` and
    ``0.0`` apart): the steps give what the chunk loop gives."""
    rng = np.random.default_rng(5)
    n = 150
    lag = rng.integers(LAG_MIN, LAG_MAX + 1, n)
    gain = np.where(rng.random(n) < 0.6, rng.random(n) * 0.8, 0.0)
    gain[rng.random(n) < 0.1] = -0.0
    gain[70:90] = 0.75
    x = rng.standard_normal(n * FRAME - 50)

    def run(side_by_side: int) -> np.ndarray:
        monkeypatch.setattr(pitch, "_SIDE_BY_SIDE", side_by_side)
        post = PostFilter()
        post.push_many(range(n), zip(lag.tolist(), gain.tolist(), strict=True))
        return np.concatenate([post.process(x[:1000]), post.process(x[1000:])])

    steps, frames = run(0), run(10**9)
    assert steps.tobytes() == frames.tobytes()


def test_tool_off_is_the_identity(speech):
    x, _ = speech
    params = PitchParams.off(10)
    y = x[: 10 * FRAME]
    assert np.array_equal(PreFilter().process(y, params), y)
    assert np.array_equal(_postfilter(y, params, [0, y.size]), y)


def _pad(x: np.ndarray) -> np.ndarray:
    return np.concatenate((np.zeros(LAG_MAX), x))


def test_analyzer_finds_the_period_not_its_multiple():
    rng = np.random.default_rng(0)
    n = 12
    period = 97
    t = np.arange(n * FRAME)
    phases = rng.uniform(0, 2 * np.pi, 12)
    x = sum(0.1 / h * np.cos(2 * np.pi * h * t / period + phases[h - 1]) for h in range(1, 13))
    x = x + 0.003 * rng.standard_normal(t.size)
    y, _ = pre_emphasis(x, state=0.0)
    params = PitchAnalyzer().choose(_pad(y), n)
    assert np.all(params.gain[2:] >= 0)
    assert np.all(np.abs(params.lag[2:] - period) <= 1)


@pytest.mark.parametrize(
    "signal",
    [
        lambda t, rng: 0.3 * rng.standard_normal(t.size),  # white noise
        lambda t, rng: np.zeros(t.size),  # silence
        lambda t, rng: (
            1e-3 * np.sin(2 * np.pi * 40 * t / 16000)  # quiet hum
            + 1e-4 * rng.standard_normal(t.size)
        ),
    ],
)
def test_analyzer_keeps_the_tool_off_without_a_pitch(signal):
    rng = np.random.default_rng(1)
    t = np.arange(10 * FRAME)
    params = PitchAnalyzer().choose(_pad(signal(t, rng)), 10)
    assert np.all(params.gain < 0)
    assert np.all(params.bits() == 1)


def _choose_reference(analyzer: PitchAnalyzer, pad: np.ndarray, n: int, first: int = 0):
    """The analyzer's decisions on the plain float64 correlation matrix (no screening)."""
    hp = pitch._highpass(pitch._highpass(pad[: LAG_MAX + (first + n) * FRAME]))
    corr = pitch.normalized_correlation(hp, n, first=first)
    rows = np.arange(n)
    j = np.argmax(corr, axis=1)
    best = corr[rows, j]
    for m in (2, 3, 4):
        c = np.rint((j + LAG_MIN) / m).astype(np.int64) - LAG_MIN
        win = np.clip(c[:, None] + np.arange(-2, 3)[None, :], 0, pitch._LAGS.size - 1)
        jm = win[rows, np.argmax(corr[rows[:, None], win], axis=1)]
        better = (c >= 0) & (corr[rows, jm] >= analyzer.octave * best) & (jm < j)
        j = np.where(better, jm, j)
    rho = corr[rows, j]
    g = analyzer.scale * rho
    gidx = np.clip(np.rint(g / pitch.GAIN_STEP) - 1, 0, 7).astype(np.int64)
    cur = hp[LAG_MAX + first * FRAME :][: n * FRAME].reshape(n, FRAME)
    loud = np.einsum("kn,kn->k", cur, cur) >= FRAME * pitch._SILENCE
    return pitch._LAGS[j], np.where((rho >= analyzer.threshold) & loud, gidx, -1)


def _tricky_signals(speech: np.ndarray) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    t = np.arange(24 * FRAME)
    pulses = np.zeros(t.size)
    pulses[::80] = 0.5  # exact ties between the period and its multiples
    tone = np.sin(2 * np.pi * t / 64.0)  # a period that is a whole number of samples
    gaps = speech[: t.size].copy()
    gaps[3 * FRAME : 9 * FRAME] = 0.0  # digital silence inside speech
    gaps[15 * FRAME : 16 * FRAME] = 1e-7 * rng.standard_normal(FRAME)  # near silence
    return [
        speech[: 60 * FRAME],
        0.9 * speech[FRAME : 61 * FRAME] / np.max(np.abs(speech)),
        pulses,
        tone,
        np.round(tone * 3) / 3,  # coarse steps: many equal products
        gaps,
        1e6 * speech[: t.size],  # far outside the audio range
        np.zeros(t.size),
        0.3 * rng.standard_normal(t.size),
    ]


def test_analyzer_decides_as_on_the_plain_float64_correlation(speech):
    """The screened correlation (float32 first, float64 where a decision is open)
    gives the same lags and gains as the plain float64 matrix, bit for bit."""
    x, _ = speech
    analyzer = PitchAnalyzer()
    for y in _tricky_signals(x):
        pad = _pad(y)
        n = y.size // FRAME
        for first, count in ((0, n), (5, n - 5), (n - 1, 1)):
            got = analyzer.choose(pad, count, first=first)
            lag, gain = _choose_reference(analyzer, pad, count, first)
            assert np.array_equal(got.lag, lag)
            assert np.array_equal(got.gain, gain)


def test_screened_correlation_answers_as_the_float64_matrix(speech):
    """Its argmax over any lags and its threshold tests, including thresholds at a
    value's last bit, equal those of :func:`normalized_correlation`."""
    x, _ = speech
    rng = np.random.default_rng(5)
    for y in _tricky_signals(x):
        hp = pitch._highpass(pitch._highpass(_pad(y)))
        n = y.size // FRAME
        exact = pitch.normalized_correlation(hp, n)
        rows = np.arange(n)
        screened = pitch._ScreenedCorrelation(hp, n, 0)
        every = np.broadcast_to(np.arange(pitch._LAGS.size), exact.shape)
        assert np.array_equal(screened.argmax(rows, every), np.argmax(exact, axis=1))
        for width in (2, 5, 40):
            cols = rng.integers(0, pitch._LAGS.size, (n, width))
            want = cols[rows, np.argmax(exact[rows[:, None], cols], axis=1)]
            assert np.array_equal(screened.argmax(rows, cols), want)
        cols = rng.integers(0, pitch._LAGS.size, n)
        value = exact[rows, cols]
        for thr in (value, np.nextafter(value, np.inf), np.nextafter(value, -np.inf)):
            fresh = pitch._ScreenedCorrelation(hp, n, 0)
            assert np.array_equal(fresh.at_least(rows, cols, thr), value >= thr)
            assert np.array_equal(fresh.exact(rows, cols), value)


def test_parameters_round_trip_through_the_frame(speech):
    x, _ = speech
    rng = np.random.default_rng(7)
    n = 30
    tcx = TCX(TcxConfig(coded_bins=120))
    coefs = tcx.analyze(x[: n * FRAME])[:n]
    a = np.zeros((n, 17))
    a[:, 0] = 1.0
    env = rng.integers(0, 64, (n, 4))
    params = _random_params(n, rng)
    frames = tcx.encode(coefs, a, env, [6] * 4, 33, pitch=params)
    assert all(len(f) == 33 for f in frames)
    decoded, got = tcx.decode(frames, [6] * 4, lambda idx: a)
    on = params.gain >= 0
    assert np.array_equal(got.gain, params.gain)
    assert np.array_equal(got.lag[on], params.lag[on])
    assert decoded.shape == (n, N_BINS)


def test_top_band_is_noise_at_its_own_level():
    rng = np.random.default_rng(2)
    n = 40
    tcx = TCX(TcxConfig(coded_bins=120))
    coefs = rng.standard_normal((n, N_BINS)) * np.linspace(1.0, 0.3, N_BINS)
    a = np.zeros((n, 17))
    a[:, 0] = 1.0
    env = np.zeros((n, 4), dtype=np.int64)
    frames = tcx.encode(coefs, a, env, [6] * 4, 33)
    decoded, _ = tcx.decode(frames, [6] * 4, lambda idx: a)
    top = decoded[:, 120:]
    assert np.all(np.sum(top**2, axis=1) > 0)  # filled, not a hole
    assert np.all(decoded[:, 120:] != coefs[:, 120:])  # noise, not the values
    ratio = np.sum(top**2) / np.sum(coefs[:, 120:] ** 2)
    scale = tcx.config.hf_scale**2
    assert 0.5 * scale < ratio < 2.0 * scale  # the level the encoder sent (3 dB steps)


def test_frame_coding_beyond_the_mode_band_is_rejected(speech):
    x, _ = speech
    wide, narrow = TCX(TcxConfig(coded_bins=N_BINS)), TCX(TcxConfig(coded_bins=80))
    coefs = wide.analyze(x[: 10 * FRAME])[:10]
    a = np.zeros((10, 17))
    a[:, 0] = 1.0
    frames = wide.encode(coefs, a, np.zeros((10, 4), dtype=np.int64), [6] * 4, 80)
    with pytest.raises(BitstreamError, match="bandwidth"):
        narrow.decode(frames, [6] * 4, lambda idx: a)


def test_voiced_loss_recovers_through_the_comb_memory(speech):
    """After a lost voiced frame the post-filter's memory differs, then decays away."""
    x, sr = speech
    data = codec.encode(x, sr, 13.2)
    n = codec.info(data).frame_count
    plain, _ = codec.decode(data)
    y_pre, _ = pre_emphasis(x, state=0.0)
    params = PitchAnalyzer().choose(_pad(y_pre), n - 1)
    on = params.gain >= 0
    # a frame inside a run of at least 8 frames with the comb on
    runs = [k for k in range(5, n - 12) if on[k : k + 8].all()]
    k = runs[len(runs) // 2]
    lost = np.zeros(n, dtype=bool)
    lost[k] = True
    y, _ = codec.decode(data, lost=lost)
    diff = [np.sum((y - plain)[j * FRAME : (j + 1) * FRAME] ** 2) for j in range(k, k + 10)]
    level = np.sum(plain[k * FRAME : (k + 10) * FRAME] ** 2) / 10
    assert diff[0] > 0
    assert diff[-1] < 0.01 * level
    assert diff[-1] < diff[1]


def test_estimate_pitch_on_a_pulse_train():
    t = np.arange(3 * FRAME)
    x = (t % 150 == 0).astype(float)
    lags, corr = estimate_pitch(x)
    assert lags[-1] == 150 and corr[-1] > 0.99


def test_harmonic_shape_peaks_on_the_harmonics():
    lag = 256  # 62.5 Hz: a harmonic on the centre of bins 2, 7, 12, ...
    h = harmonic_shape([lag, lag], [True, False], N_BINS, depth=0.5)
    assert np.array_equal(h[1], np.ones(N_BINS))  # tool off: no harmonic model
    k = np.arange(N_BINS)
    on_harmonic = (k % 5 == 2) & (k < 40)
    assert on_harmonic.sum() == 8
    assert np.all(h[0, on_harmonic] > 1.35)
    assert np.all(h[0, (k % 5 == 1) & (k < 40)] < 0.7)  # between two harmonics
    assert np.all(h[0, k >= 160] == 1.0)  # fades out by 4 kHz
    assert abs(h[0].mean() - 1.0) < 0.05


def test_harmonic_model_is_the_same_row_by_row():
    """Few rows compute their combs row by row, more once per distinct lag: the same."""
    rng = np.random.default_rng(2)
    n = 40
    lags = rng.integers(LAG_MIN, LAG_MAX + 1, n).astype(np.float64)
    lags[::3] = lags[0]
    on = rng.random(n) < 0.7
    x = rng.standard_normal((n, N_BINS))
    whole = apply_harmonic(x.copy(), lags, on, depth=0.5)
    rows = np.concatenate(
        [
            apply_harmonic(x[i : i + 1].copy(), lags[i : i + 1], on[i : i + 1], depth=0.5)
            for i in range(n)
        ]
    )
    assert whole.tobytes() == rows.tobytes()
    assert not np.array_equal(whole, x)


def test_harmonic_model_is_part_of_the_frame(speech):
    """Decoding with the model off reads other values: the tables really depend on it."""
    x, _ = speech
    n = 30
    coded = TCX(TcxConfig(coded_bins=120))
    coefs = coded.analyze(x[: n * FRAME])[:n]
    a = np.zeros((n, 17))
    a[:, 0] = 1.0
    y, _ = pre_emphasis(x[: n * FRAME], state=0.0)
    params = PitchAnalyzer().choose(_pad(y), n)
    assert np.any(params.gain >= 0)
    frames = coded.encode(coefs, a, np.zeros((n, 4), dtype=np.int64), [6] * 4, 33, pitch=params)
    right, _ = coded.decode(frames, [6] * 4, lambda idx: a)
    again, _ = coded.decode(frames, [6] * 4, lambda idx: a)
    assert np.array_equal(right, again)
    plain = TCX(TcxConfig(coded_bins=120, harmonic_depth=0.0))
    try:
        wrong, _ = plain.decode(frames, [6] * 4, lambda idx: a)
    except BitstreamError:  # the wrong tables may even read past a frame's end
        return
    voiced = params.gain >= 0
    assert not np.allclose(right[voiced], wrong[voiced])
