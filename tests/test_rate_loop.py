"""The TCX rate loop decides without trial coding what trial coding decides."""

from __future__ import annotations

import numpy as np
import pytest

import codec
from codec.residual import tcx as tcx_module
from codec.residual.pitch import PitchParams
from codec.residual.tcx import TCX


def _captured(speech, monkeypatch, rate):
    """The arguments of the first TCX.encode call of a 2 s encoding."""
    x, sr = speech
    seen = []
    original = TCX.encode

    def spy(self, *args, **kwargs):
        seen.append((self, args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TCX, "encode", spy)
    codec.encode(x[: 2 * sr], sr, rate)
    monkeypatch.setattr(TCX, "encode", original)
    return seen[0]


def _setup(coder, coefs, a_q, env_idx, env_bits, frame_bytes, pitch):
    xs, ratio, side, fixed, _ = coder._prepare(coefs, a_q, env_idx, env_bits, pitch)
    return xs, ratio, side, fixed, 8 * frame_bytes


@pytest.mark.parametrize("rate", [8.0, 32.0])
@pytest.mark.parametrize("sure_bits", [1e-6, 1e3])
def test_rate_loop_equals_trial_coding(speech, monkeypatch, rate, sure_bits):
    """From start gains around, below and above the estimate (so that the loop
    goes coarser as well as finer), and with every decision left to trial coding
    (``sure_bits`` 1000), the gains and payloads are those of coding by trial."""
    coder, args, kwargs = _captured(speech, monkeypatch, rate)
    coefs, a_q, env_idx, env_bits, frame_bytes = args
    pitch = kwargs.get("pitch") or PitchParams.off(coefs.shape[0])
    xs, ratio, side, fixed, budget = _setup(
        coder, coefs, a_q, env_idx, env_bits, frame_bytes, pitch
    )
    monkeypatch.setattr(tcx_module, "_SURE_BITS", sure_bits)
    rng = np.random.default_rng(1)
    n = xs.shape[0]
    # the finest gain whose ideal cost fits, frame by frame
    estimate = np.full(n, 255)
    for g in range(254, -1, -1):
        bits = coder._total_cost(xs, ratio, np.full(n, g))
        estimate = np.where(fixed + bits <= budget - 2, g, estimate)
    for shift in (-6, -1, 0, 2):
        gain = np.clip(estimate + shift + rng.integers(-1, 2, n), 0, 255)
        cannot_fit = rng.random(n) < 0.3
        final, coded = coder._rate_loop(xs, ratio, gain, cannot_fit, side, fixed, budget)
        heads = coder._prepare(coefs, a_q, env_idx, env_bits, pitch)[4]
        frames = coder._code_frames(
            xs, ratio, final, coded, gain, cannot_fit, side, heads, frame_bytes
        )
        for i in range(n):
            ref = coder._rate_loop_frame(
                xs[i], ratio[i], int(gain[i]), bool(cannot_fit[i]), side[i], budget
            )
            assert frames[i] == ref + bytes(frame_bytes - len(ref)), (shift, i)
        if sure_bits > 1:
            assert coded  # decided by trial coding


@pytest.mark.parametrize("rate", [8.0, 13.2, 32.0])
def test_fill_slack_spends_the_bits_left(speech, monkeypatch, rate):
    """The bins that get one more step from the left-over bits: at most
    ``fill_slack`` per frame, one step each towards the unquantized value,
    each lowering that bin's error; every frame still fits (the payloads
    are the real coder's), and more of the budget is used."""
    coder, args, kwargs = _captured(speech, monkeypatch, rate)
    coefs, a_q, env_idx, env_bits, frame_bytes = args
    pitch = kwargs.get("pitch") or PitchParams.off(coefs.shape[0])
    xs, ratio, side, fixed, budget = _setup(
        coder, coefs, a_q, env_idx, env_bits, frame_bytes, pitch
    )
    assert coder.config.fill_slack == 8
    plain = TCX(coder.config._replace(fill_slack=0))
    frames_plain = plain.encode(coefs, a_q, env_idx, env_bits, frame_bytes, pitch=pitch)
    frames = coder.encode(coefs, a_q, env_idx, env_bits, frame_bytes, pitch=pitch)
    assert all(len(f) == frame_bytes for f in frames)
    _, fields_plain, _ = plain.read_side(frames_plain, env_bits)
    _, fields, _ = coder.read_side(frames, env_bits)
    gains = fields["gain"]
    assert np.array_equal(gains, fields_plain["gain"])  # the rate loop's gains
    q, filled = coder._fill_slack(xs, ratio, gains, fixed, budget)
    step = tcx_module._frame_steps()[gains][:, None]
    q0 = coder._quantize(xs, step[:, 0], ratio)
    d = q - q0
    assert np.all(np.abs(d) <= 1) and np.all((np.abs(d) > 0).sum(axis=1) <= 8)
    v = xs / step
    assert np.all(np.sign(d[d != 0]) == np.sign(v[d != 0]))
    assert np.all((np.abs(v - q) < np.abs(v - q0))[d != 0])
    assert filled.mean() > 0.5  # most frames had bits left for a step
    assert [f != g for f, g in zip(frames, frames_plain, strict=True)] == filled.tolist()

    def used(fr: list[bytes]) -> int:
        return sum(len(x.rstrip(b"\0")) for x in fr)

    assert used(frames) > used(frames_plain)


def test_top_columns_equal_a_stable_full_sort() -> None:
    """The left-over-bits search picks its bins with a partial sort (tcx._top):
    the same columns, in the same order, as the stable full sort, ties included."""
    from codec.residual.tcx import _top

    rng = np.random.default_rng(0)
    for _ in range(300):
        n, width, m = (
            int(v) for v in (rng.integers(1, 40), rng.integers(1, 40), rng.integers(1, 12))
        )
        if rng.random() < 0.5:
            score = rng.integers(-3, 3, size=(n, width)).astype(np.float64)  # many ties
        else:
            score = rng.normal(size=(n, width))
        want = np.argsort(-score, axis=1, kind="stable")[:, :m]
        assert np.array_equal(_top(score, m), want)
    # more columns than the rounds of argmax take, and infinite scores: the partial sort
    for _ in range(100):
        n, width = (int(v) for v in rng.integers(1, 40, size=2))
        m = int(rng.integers(1, 30))
        score = rng.integers(-3, 3, size=(n, width)).astype(np.float64)
        if rng.random() < 0.5:
            score[rng.random((n, width)) < 0.2] = rng.choice([np.inf, -np.inf])
        want = np.argsort(-score, axis=1, kind="stable")[:, :m]
        assert np.array_equal(_top(score, m), want)


@pytest.mark.parametrize("rate", [8.0, 13.2, 24.4, 32.0])
def test_encoder_fast_paths_equal_their_references(speech, monkeypatch, rate):
    """The binary search's cost from magnitudes (``_search_cost``) and the
    left-over-bits loop on per-frame arrays (``indexed``) give the numbers of
    the reference code (``_cost(_quantize(...))``; the loop that costs whole
    frames), bit for bit."""
    coder, args, kwargs = _captured(speech, monkeypatch, rate)
    coefs, a_q, env_idx, env_bits, frame_bytes = args
    pitch = kwargs.get("pitch") or PitchParams.off(coefs.shape[0])
    xs, ratio, _, fixed, budget = _setup(coder, coefs, a_q, env_idx, env_bits, frame_bytes, pitch)
    base = tcx_module._grid_base(ratio[:, : coder.config.coded_bins])
    search = coder._search_cost(xs, ratio, base)
    n = xs.shape[0]
    rng = np.random.default_rng(int(rate * 10))
    for g in (np.zeros(n, dtype=np.int64), rng.integers(0, 256, n), np.full(n, 255)):
        step = tcx_module._gain_step(g)
        ref = coder._cost(coder._quantize(xs, step, ratio), ratio, base=base)[0]
        assert np.array_equal(search(step), ref)
    frames = coder.encode(coefs, a_q, env_idx, env_bits, frame_bytes, pitch=pitch)
    gains = coder.read_side(frames, env_bits)[1]["gain"]
    for g in (gains, np.minimum(gains + 2, 255)):  # the real gains; coarser (more left)
        q, filled = coder._fill_slack(xs, ratio, g, fixed, budget, base)
        q_ref, filled_ref = coder._fill_slack(xs, ratio, g, fixed, budget, base, indexed=False)
        assert filled.any()
        assert np.array_equal(q, q_ref) and np.array_equal(filled, filled_ref)


def test_escape_fields_many_equals_escape_fields() -> None:
    from codec.residual.rangecoder import MAX_ESCAPE_BITS, escape_fields, escape_fields_many

    m = tcx_module._MAX_ABS
    rng = np.random.default_rng(3)
    excess = [
        1,
        2,
        3,
        4,
        5,
        (1 << 16) - 1,
        1 << 16,
        (1 << 17) + 5,
        (1 << (MAX_ESCAPE_BITS + 1)) - 1,
    ]
    excess += rng.integers(1, 1 << (MAX_ESCAPE_BITS + 1), 300).tolist()
    v = np.array([(m + e) * s for e in excess for s in (1, -1)], dtype=np.int64)
    count, owner, val, width = escape_fields_many(v, m)
    ref = [escape_fields(int(x), m) for x in v]
    assert count.tolist() == [len(f) for f in ref]
    assert owner.tolist() == [i for i, f in enumerate(ref) for _ in f]
    assert list(zip(val.tolist(), width.tolist(), strict=True)) == [p for f in ref for p in f]


@pytest.mark.parametrize("rate", [8.0, 32.0])
def test_encoder_shortcuts_equal_their_references(speech, monkeypatch, rate):
    """The shortcuts of the encoder give the numbers of what they replace: the
    grid cache (``_GridCache``) those of ``_grid_index``, ``_quantize`` in place
    the dead-zone formula, ``_noise_index`` ``noisefill.factor_index``, and the
    rate loop's values at the final gains (``q_out``) ``_quantize`` at those gains."""
    from codec.residual import noisefill

    coder, args, kwargs = _captured(speech, monkeypatch, rate)
    coefs, a_q, env_idx, env_bits, frame_bytes = args
    pitch = kwargs.get("pitch") or PitchParams.off(coefs.shape[0])
    xs, ratio, side, fixed, budget = _setup(
        coder, coefs, a_q, env_idx, env_bits, frame_bytes, pitch
    )
    n, cb = xs.shape[0], coder.config.coded_bins
    rng = np.random.default_rng(int(rate))
    cache = tcx_module._GridCache(ratio[:, :cb])
    for _ in range(4):  # random frames and κ, asked again and again
        rows = rng.integers(0, n, size=n // 2)
        kap = rng.integers(0, 32, size=rows.size)
        want = tcx_module._grid_index(tcx_module._frame_kappas()[kap][:, None] * ratio[rows, :cb])
        assert np.array_equal(cache.get(rows, kap), want)
    step = tcx_module._gain_step(rng.integers(100, 200, n))
    v = xs / step[:, None]
    v[:, :4] = [0.0, -0.0, 0.3, -0.3]  # zeros of either sign and dead-zone values
    for theta in (0.0, 0.2, 0.5, 0.7, -0.6):  # (the last two: the formula itself)
        q = TCX(coder.config._replace(deadzone=theta))._quantize(v, np.ones(n))
        mag = np.floor(np.abs(v[:, :cb]) + 0.5 - theta)
        want = (np.sign(v[:, :cb]) * np.maximum(mag, 0.0)).astype(np.int64)
        assert np.array_equal(q[:, :cb], want) and not q[:, cb:].any()
    q = coder._quantize(xs, step, ratio)
    kap = coder._kappa_index(q[:, :cb], ratio[:, :cb], coder._last(q[:, :cb]))
    grid = tcx_module._grid_index(tcx_module._frame_kappas()[kap][:, None] * ratio[:, :cb])
    vs = xs / step[:, None]
    mask = coder._noise_mask(q)[:, :cb]
    rho = tcx_module._fill_table()[grid]
    want = noisefill.factor_index(vs[:, :cb], rho, mask, tcx_module.NOISE_BITS)
    assert np.array_equal(coder._noise_index(vs, q, ratio, grid), want)
    base = tcx_module._grid_base(ratio[:, :cb])
    for theta in (0.0, 0.7):  # the search's cost at other dead zones
        c = TCX(coder.config._replace(deadzone=theta))
        ref = c._cost(c._quantize(xs, step, ratio), ratio, base=base)[0]
        assert np.array_equal(c._search_cost(xs, ratio, base)(step), ref)
    search = coder._search_cost(xs, ratio, base)
    lo, gain = np.zeros(n, dtype=np.int64), np.full(n, 255)
    while np.any(lo < gain):  # encode()'s search, for gains to start from
        mid = (lo + gain) // 2
        fits = search(tcx_module._gain_step(mid)) <= budget - fixed - 2.0
        gain = np.where(fits, mid, gain)
        lo = np.where(fits, lo, np.minimum(mid + 1, gain))
    cannot_fit = np.zeros(n, dtype=bool)
    q_out = np.zeros(xs.shape, dtype=np.int64)
    final, _ = coder._rate_loop(
        xs, ratio, gain, cannot_fit, side, fixed, budget, grids=cache, q_out=q_out
    )
    plain, _ = coder._rate_loop(xs, ratio, gain, cannot_fit, side, fixed, budget)
    assert np.array_equal(final, plain)
    assert np.array_equal(q_out, coder._quantize(xs, tcx_module._frame_steps()[final], ratio))


@pytest.mark.parametrize("rate", [13.2, 32.0])
def test_fill_slack_running_totals_equal_the_reference(speech, monkeypatch, rate):
    """The left-over-bits loop decides most trials from running totals and the
    rest (κ moved, or near a rounding edge) over whole frames: the values are
    those of the loop that costs whole frames, over frames where κ changes."""
    coder, args, kwargs = _captured(speech, monkeypatch, rate)
    coefs, a_q, env_idx, env_bits, frame_bytes = args
    pitch = kwargs.get("pitch") or PitchParams.off(coefs.shape[0])
    xs, ratio, _, fixed, budget = _setup(coder, coefs, a_q, env_idx, env_bits, frame_bytes, pitch)
    cb = coder.config.coded_bins
    base = tcx_module._grid_base(ratio[:, :cb])
    frames = coder.encode(coefs, a_q, env_idx, env_bits, frame_bytes, pitch=pitch)
    gains = coder.read_side(frames, env_bits)[1]["gain"]
    moved = 0
    for more in (0, 1, 3, 6):  # coarser gains leave more bits, so more steps and κ moves
        g = np.minimum(gains + more, 255)
        q, filled = coder._fill_slack(xs, ratio, g, fixed, budget, base)
        q_ref, filled_ref = coder._fill_slack(xs, ratio, g, fixed, budget, base, indexed=False)
        assert np.array_equal(q, q_ref) and np.array_equal(filled, filled_ref)
        q0 = coder._quantize(xs, tcx_module._frame_steps()[g], ratio)
        kap = [coder._kappa_index(v, ratio, coder._last(v)) for v in (q0, q)]
        moved += int(np.count_nonzero(kap[0] != kap[1]))
    assert moved > 0
