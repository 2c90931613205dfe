"""The trained decoder post-filter (codec.postfilter): numpy inference, streaming, switches.

The numpy-against-torch test needs torch (skips cleanly without it); the rest
run on a plain install.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import codec
from codec import postfilter
from codec.bitstream import check_file
from codec.errors import WeightsError
from codec.pipeline import StreamDecoder
from codec.postfilter import Enhancer, Weights, frame_features, load_weights, save_weights
from codec.postfilter.features import N_BASE, N_FEATURES
from codec.postfilter.filters import (
    A_MAX,
    BRANCH_INDEX,
    GAIN_INDEX,
    AdaptiveFilter,
    identity_kernels,
    kernels,
    shaping,
)
from codec.postfilter.network import (
    N_RAW,
    SUBFRAMES,
    FeatureNet,
    _grid_bits,
    _GridLayer,
    raw_width,
)

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
F = postfilter.N_FEATURES


def random_weights(
    hidden: int = 24, scale: float = 0.3, seed: int = 0, channels: int = 0, features: int = F
) -> Weights:
    rng = np.random.default_rng(seed)
    h = hidden
    width = SUBFRAMES * raw_width(channels)
    return Weights(
        mean=rng.normal(size=features),
        std=rng.uniform(0.5, 2.0, size=features),
        w1=rng.normal(size=(features, h)) * scale,
        b1=rng.normal(size=h) * 0.1,
        w2=rng.normal(size=(3 * h, h)) * scale / 2,
        b2=rng.normal(size=h) * 0.1,
        w3=rng.normal(size=(3 * h, h)) * scale / 2,
        b3=rng.normal(size=h) * 0.1,
        w4=rng.normal(size=(h, width)) * scale,
        b4=rng.normal(size=width) * 0.1,
        info={"test": True},
    )


@pytest.fixture(scope="module")
def stream(speech: tuple[np.ndarray, int]) -> bytes:
    x, sr = speech
    return codec.encode(x[: 3 * sr], sr, 8.0)


def decode_with(
    data: bytes,
    w: Weights | None,
    chunk: int,
    lost: np.ndarray | None = None,
    conceal: str = "causal",
) -> np.ndarray:
    h, frames, _ = check_file(data)
    dec = StreamDecoder(h, enhance=False, conceal=conceal)  # type: ignore[arg-type]
    if w is not None:
        dec.enhancer = Enhancer(w)
    parts = []
    for k0 in range(0, len(frames), chunk):
        block: list[bytes | None] = list(frames[k0 : k0 + chunk])
        if lost is not None:
            for i in np.flatnonzero(lost[k0 : k0 + chunk]):
                block[i] = None
        parts.append(dec.decode(block))
    parts.append(dec.flush())
    return np.concatenate(parts)


# ----------------------------------------------------------------------------- filters


def test_identity_kernels_pass_the_signal_through() -> None:
    f = AdaptiveFilter()
    x = np.random.default_rng(1).normal(size=2000)
    np.testing.assert_allclose(f.process(x), x, rtol=0, atol=1e-14)  # nothing pushed: identity


def test_kernels_shapes_and_constraints() -> None:
    raw = np.random.default_rng(2).normal(size=(7, SUBFRAMES, raw_width(1)))
    before = raw.copy()
    g, c, h, bp, bq = kernels(raw)
    assert np.array_equal(raw, before)  # the input is not written to
    assert g.shape == (7, SUBFRAMES) and np.all((g > 0) & (g < 0.75))
    np.testing.assert_allclose(c.sum(-1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(h, axis=-1), np.exp(raw[..., GAIN_INDEX]))
    assert bp.shape == bq.shape == (7, SUBFRAMES, 1, 16)
    np.testing.assert_allclose(bp[..., 0, 1:], raw[..., BRANCH_INDEX + 1 : BRANCH_INDEX + 16])
    np.testing.assert_allclose(bq.sum(-1), 0.0, atol=1e-12)  # the branch adds no DC
    assert kernels(raw[..., :N_RAW])[3].shape == (7, SUBFRAMES, 0, 16)  # no branch
    assert kernels(np.zeros(raw_width(3)))[4].shape == (3, 16)
    with pytest.raises(ValueError, match="raw parameters have 30 values"):
        kernels(np.zeros(30))
    a = shaping(raw)
    assert a.shape == (7, SUBFRAMES) and np.all(np.abs(a) < A_MAX)
    g0, c0, h0, p0, q0 = identity_kernels((3,), channels=2)
    assert np.all(g0 == 0) and np.all(h0[:, 0] == 1) and np.all(h0[:, 1:] == 0)
    assert p0.shape == q0.shape == (3, 2, 16)
    assert np.all(q0 == 0) and np.all(p0[..., 0] == 1) and np.all(p0[..., 1:] == 0)


def test_filters_match_direct_formula() -> None:
    """One frame of known kernels against the formula written out sample by sample."""
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(1, SUBFRAMES, raw_width(2)))
    lag = 100
    f = AdaptiveFilter(branch_channels=2)
    f.push(0, [lag], raw)
    x = rng.normal(size=320)
    y = f.process(x)
    g, c, h, bp, bq = kernels(raw[0])
    a = shaping(raw[0])
    assert np.all(np.abs(a) > 1e-3)  # the shaper is on
    xp = np.r_[np.zeros(400), x]
    o = 400

    def ratio(n: int) -> float:
        e16 = sum(xp[o + n - i] ** 2 for i in range(16)) / 16
        e80 = sum(xp[o + n - i] ** 2 for i in range(80)) / 80
        return float((e16 + 1e-4 * e80 + 1e-12) / ((1 + 1e-4) * e80 + 1e-12))

    def one(n: int, s: int) -> float:
        def z(m: int) -> float:
            return float(
                xp[o + m] + g[s] * sum(c[s, d] * xp[o + m - lag + d - 2] for d in range(5))
            )

        def u(m: int, k: int) -> float:
            return sum(bp[s, k, j] * z(m - j) for j in range(16))

        branch = sum(bq[s, k, j] * abs(u(n - j, k)) for k in range(2) for j in range(16))
        return sum(h[s, j] * z(n - j) for j in range(16)) + branch

    w = np.sin(0.5 * np.pi * (np.arange(40) + 0.5) / 40) ** 2
    for n in (0, 5, 39, 40, 79, 80, 100, 161, 250, 319):
        s, p = divmod(n, 80)
        want, ex = one(n, s), a[s]
        if p < 40:
            prev = x[n] if s == 0 else one(n, s - 1)  # subframe -1: identity
            want = w[p] * want + (1 - w[p]) * prev
            ex = w[p] * a[s] + (1 - w[p]) * (0.0 if s == 0 else a[s - 1])
        want *= ratio(n) ** (ex / 2)
        assert abs(y[n] - want) < 1e-6 * abs(want) + 1e-12, n  # the shaper's float32 exp, log


# ----------------------------------------------------------------------------- decoder


@pytest.mark.parametrize("channels", [0, 1])
def test_chunked_decoding_equals_whole_file(stream: bytes, channels: int) -> None:
    w = random_weights(channels=channels)
    assert w.branch_channels == channels
    whole = decode_with(stream, w, 100)
    assert not np.allclose(whole, decode_with(stream, None, 100))  # the filter does something
    for chunk in (1, 7, 33):
        assert np.array_equal(decode_with(stream, w, chunk), whole), chunk


@pytest.mark.parametrize(
    ("conceal", "width"), [("causal", N_FEATURES), ("interpolate", N_FEATURES), ("causal", N_BASE)]
)
def test_chunked_decoding_equals_whole_file_with_loss(
    stream: bytes, conceal: str, width: int
) -> None:
    """Also where the interpolating concealment holds frames back across calls:
    each frame's coded shares reach the network with that frame."""
    w = random_weights(seed=4, features=width)
    lost = codec.pipeline.simulate_loss(len(check_file(stream)[1]), 0.2, seed=3)
    whole = decode_with(stream, w, 100, lost, conceal)
    for chunk in (1, 3):
        assert np.array_equal(decode_with(stream, w, chunk, lost, conceal), whole), chunk


def test_no_enhance_is_the_plain_decoder(stream: bytes) -> None:
    plain = decode_with(stream, None, 100)
    y, _ = codec.decode(stream, enhance=False, conceal="causal")
    assert np.array_equal(y, plain)


def test_enhance_true_uses_shipped_weights(stream: bytes) -> None:
    if postfilter.shipped_weights() is None:
        with pytest.raises(codec.errors.ParameterError, match="no post-filter weights"):
            codec.decode(stream, enhance=True)
        return
    y, _ = codec.decode(stream, enhance=True, conceal="causal")
    assert np.array_equal(y, decode_with(stream, postfilter.shipped_weights(), 100))


def test_default_follows_the_shipped_list(stream: bytes) -> None:
    y, _ = codec.decode(stream)
    plain, _ = codec.decode(stream, enhance=False)
    on = postfilter.shipped_weights() is not None and postfilter.default_on(8.0)
    assert np.array_equal(y, plain) != on


def test_features_record_every_frame(stream: bytes) -> None:
    h, frames, _ = check_file(stream)
    dec = StreamDecoder(h, enhance=False, record_features=True)
    lost = [None if i % 5 == 2 else fr for i, fr in enumerate(frames)]
    dec.decode(lost)
    assert dec.features is not None and dec.comb_lags is not None
    feats = np.concatenate(dec.features)
    assert feats.shape == (h.frame_count, F)
    was_lost = np.array([i % 5 == 2 for i in range(h.frame_count)])
    np.testing.assert_array_equal(feats[:, N_BASE - 1], was_lost)
    assert np.all(feats[:, 23 + 0] == 1.0)  # 8 kbit/s one-hot
    # the coded shares: none in a lost frame; in [0, 1]; in a received frame of
    # speech the lowest bands are mostly coded and the noise filler has a share
    shares = feats[:, N_BASE:]
    assert shares.shape[1] == N_FEATURES - N_BASE
    assert np.all(shares[was_lost] == 0.0)
    assert shares.min() >= 0.0 and shares.max() <= 1.0
    got = shares[~was_lost]
    loud = feats[~was_lost, 1] > np.median(feats[~was_lost, 1])
    assert got[loud, :4].mean() > 0.5
    assert 0.0 < got[loud].mean() < 1.0
    lags = np.concatenate(dec.comb_lags)
    assert lags.min() >= 32 and lags.max() <= 287


def test_comb_lag_is_held_for_a_bounded_time(stream: bytes) -> None:
    """The comb keeps the pitch tool's last lag for _PF_LAG_HOLD frames after it went off,
    then 160: a lost stretch cannot change the post-filter's lags for long after it."""
    from codec.pipeline import _PF_LAG0, _PF_LAG_HOLD

    h, frames, _ = check_file(stream)
    dec = StreamDecoder(h, enhance=False, record_features=True)
    dec.decode(list(frames))
    assert dec.features is not None and dec.comb_lags is not None
    gain = np.concatenate(dec.features)[:, 21]
    lags = np.concatenate(dec.comb_lags)
    assert (gain > 0).any() and (gain == 0).any()
    last, age = _PF_LAG0, _PF_LAG_HOLD
    want = []
    for k in range(gain.size):
        if gain[k] > 0:
            last, age = int(lags[k]), 0
        else:
            age += 1
            if age > _PF_LAG_HOLD:
                last = _PF_LAG0
        want.append(last)
    np.testing.assert_array_equal(lags, want)
    # somewhere the held lag ran out
    assert bool(np.any((gain == 0) & (lags == _PF_LAG0)))


def test_frame_features_bands() -> None:
    coefs = np.zeros((2, 320))
    coefs[0, :4] = 1.0  # band 0 only
    coefs[1, 300] = 2.0  # last band (240..320)
    f = frame_features(coefs, [40, 287], [0.0, 0.5], [False, True], 13.2)
    assert f[0, 0] == pytest.approx(0.0, abs=1e-6) and f[0, 1] < -20
    assert f[1, 19] == pytest.approx(np.log(4.0 / 80 + 1e-9))
    assert list(f[:, 20]) == [0.0, 1.0] and list(f[:, 29]) == [0.0, 1.0]
    assert f[1, 22] == pytest.approx((287 - 32) / 256)
    assert f[0, 23 + 2] == 1.0 and f[0, 23:29].sum() == 1.0
    assert np.all(f[:, N_BASE:] == 0.0)  # nothing said to be coded
    coded = np.zeros_like(coefs)
    coded[1, 300] = 1.0  # a quarter of the last band's energy
    g = frame_features(coefs, [40, 287], [0.0, 0.5], [False, True], 13.2, coded)
    np.testing.assert_array_equal(g[:, :N_BASE], f[:, :N_BASE])
    assert g[1, N_BASE + 19] == pytest.approx(0.25, rel=1e-6)
    assert np.count_nonzero(g[:, N_BASE:]) == 1


def test_network_does_not_depend_on_how_frames_are_grouped() -> None:
    w = postfilter.shipped_weights() or random_weights(hidden=192)
    feats = w.mean + w.std * np.random.default_rng(3).normal(size=(90, w.mean.size)) * 3
    whole = FeatureNet(w)(feats)
    for chunk in (1, 4, 15, 16, 37):  # both ways of computing the convolutions
        net = FeatureNet(w)
        parts = [net(feats[k : k + chunk]) for k in range(0, len(feats), chunk)]
        assert np.array_equal(np.concatenate(parts), whole), chunk


@pytest.mark.parametrize("fan_in", [16, 30, 72, 576, 1000, 4096])
def test_grid_products_are_exact(fan_in: int) -> None:
    """On the integer grid a float64 matrix product equals the exact (int64) one."""
    a_bits, b_bits = _grid_bits(fan_in)
    assert fan_in * 2 ** (a_bits + b_bits) <= 2**52
    rng = np.random.default_rng(fan_in)
    w = rng.normal(size=(fan_in, 8))
    w[:, 0] = 0.0  # a dead unit
    w[:, 1] = 1.0  # a unit whose weights all sit at the grid's bound 2^b
    layer = _GridLayer(w)
    assert np.abs(layer.q).max() <= 2**b_bits
    top = np.abs(w).max(axis=0)  # each column within half a step of its own grid
    assert np.all(np.abs(layer.q * layer.scale * layer.step - w) <= top * 2.0**-b_bits)
    x = layer.act(rng.normal(size=(40, fan_in)) * 3)  # tanh on the input grid
    x[0] = layer.step  # every input at +-1: with unit 1 the sum reaches the bound
    x[1] = -layer.step
    exact = x.astype(np.int64) @ layer.q.astype(np.int64)
    assert np.array_equal(x @ layer.q, exact.astype(np.float64))
    assert np.array_equal(layer.dot(x, 40), exact * layer.scale)


# ----------------------------------------------------------------------------- weights


def test_weights_round_trip_and_hash(tmp_path: Path) -> None:
    w = random_weights()
    digest = save_weights(w, tmp_path / "pf.npz")
    back = load_weights(tmp_path / "pf.npz", sha256=digest)
    assert back.sha256 == digest and back.info == {"test": True}
    for name in ("w1", "w2", "b4", "mean"):
        np.testing.assert_allclose(getattr(back, name), getattr(w, name), rtol=1e-6, atol=1e-7)
    with pytest.raises(WeightsError, match="do not match their hash"):
        load_weights(tmp_path / "pf.npz", sha256="0" * 64)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="not post-filter weights"):
        load_weights(tmp_path / "bad.npz")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(tmp_path / "missing.npz")


def test_weights_name_their_branch(tmp_path: Path) -> None:
    """The output layer's width gives the branch's channels; another width is refused,
    and a filter takes only raw parameters of its own width."""
    for ch in (0, 1, 3):
        save_weights(random_weights(channels=ch), tmp_path / "pf.npz")
        assert load_weights(tmp_path / "pf.npz").branch_channels == ch
    w = random_weights(channels=1)
    bad = Weights(**{**vars(w), "w4": w.w4[:, :-4], "b4": w.b4[:-4]})
    save_weights(bad, tmp_path / "bad.npz")
    with pytest.raises(WeightsError, match="post-filter array"):
        load_weights(tmp_path / "bad.npz")
    f = AdaptiveFilter(branch_channels=1)
    with pytest.raises(ValueError, match="for 0 branch channels, not 1"):
        f.push(0, [100], np.zeros((1, SUBFRAMES, N_RAW)))
    f.push(0, [100], np.zeros((1, SUBFRAMES, raw_width(1))))


def test_weights_read_the_first_columns_of_the_features(tmp_path: Path) -> None:
    """A network reads the first N_BASE or all N_FEATURES columns (its first layer's
    width); the extra columns do not reach a network of N_BASE inputs; another width
    is refused."""
    for width in (N_BASE, N_FEATURES):
        save_weights(random_weights(features=width), tmp_path / "pf.npz")
        assert load_weights(tmp_path / "pf.npz").mean.size == width
    save_weights(random_weights(features=N_BASE + 1), tmp_path / "bad.npz")
    with pytest.raises(WeightsError, match="has 31 inputs, not 30 or 50"):
        load_weights(tmp_path / "bad.npz")
    feats = np.random.default_rng(1).normal(size=(12, N_FEATURES))
    other = feats.copy()
    other[:, N_BASE:] += 1.0
    base = random_weights(features=N_BASE)
    np.testing.assert_array_equal(FeatureNet(base)(feats), FeatureNet(base)(other))
    full = random_weights(features=N_FEATURES)
    assert not np.array_equal(FeatureNet(full)(feats), FeatureNet(full)(other))


def test_npz_holds_no_pickle(tmp_path: Path) -> None:
    save_weights(random_weights(), tmp_path / "pf.npz")
    with np.load(tmp_path / "pf.npz", allow_pickle=False) as z:  # raises on object arrays
        assert all(z[k].dtype != object for k in z.files)


def test_shipped_weights_are_small_and_named_by_hash() -> None:
    index = postfilter.SHIPPED_INDEX
    if not index.exists():
        pytest.skip("no post-filter weights shipped")
    meta = json.loads(index.read_text())
    path = index.parent / meta["file"]
    assert path.stat().st_size < 2 * 1024 * 1024
    w = postfilter.shipped_weights()
    assert w is not None and w.sha256 == meta["sha256"] and w.n_params == meta["n_params"]
    assert all(b in codec.modes.BITRATES_KBPS for b in meta["default_on"])


# ----------------------------------------------------------------------------- numpy == torch


@needs_torch
@pytest.mark.parametrize(("channels", "width"), [(0, N_BASE), (0, N_FEATURES), (2, N_FEATURES)])
def test_numpy_inference_matches_torch(channels: int, width: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT))
    from recipes import train_postfilter as recipe

    rng = np.random.default_rng(5)
    w0 = random_weights(hidden=16, features=width)
    model = recipe.torch_model(16, w0.mean, w0.std, branch_channels=channels).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    w = recipe.to_weights(model, {})
    k = 30
    feats = rng.normal(size=(k, F))
    lags = rng.integers(32, 288, size=k)
    x = rng.normal(size=k * 320) * 0.1
    e = Enhancer(w)
    e.push(feats, lags)
    want = e.process(x)
    past = recipe.PAST
    tf = np.zeros((1, past + k, width))  # (the recipe's items hold the first columns)
    tf[0, past:] = feats[:, :width]
    valid = np.zeros((1, past + k))
    valid[0, past:] = 1.0
    tl = np.r_[160, lags][None]
    tx = np.r_[np.zeros(recipe.HIST), x][None]
    got = model(*(torch.from_numpy(a) for a in (tf, valid, tl, tx))).detach().numpy()[0]
    assert np.max(np.abs(got - want)) < 1e-5
    assert np.max(np.abs(want - x)) > 1e-2  # not the identity


# ----------------------------------------------------------------------------- CLI


def test_cli_no_enhance(tmp_path: Path, stream: bytes) -> None:
    src = tmp_path / "s.svq"
    src.write_bytes(stream)
    out = tmp_path / "o.wav"
    r = subprocess.run(
        [sys.executable, "-m", "codec", "decode", "-q", "--no-enhance", str(src), str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    y, _ = sf.read(out, dtype="int16")
    plain, _ = codec.decode(stream, enhance=False)
    want = np.clip(np.round(plain * 32767), -32768, 32767).astype(np.int16)
    assert np.abs(y.astype(int) - want).max() <= 1
