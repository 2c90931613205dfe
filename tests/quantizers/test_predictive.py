"""Predictive quantizers: streams, states after a loss, training, files, end-to-end transform."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codec.errors import ParameterError
from codec.quantizers import (
    AVQ,
    PVQ,
    RVQ,
    VQ,
    CodebookError,
    PredictiveQuantizer,
    load_codebook,
    load_predictive,
    load_quantizer,
    train_predictive,
)
from codec.quantizers.predictive import trace

ROOT = Path(__file__).resolve().parents[2]
D = 6


def _streams(n_streams: int = 12, length: int = 60, rho: float = 0.9, seed: int = 0):
    """AR(1) vector streams (strong frame-to-frame correlation, like LSFs) and offsets."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_streams):
        x = np.empty((length, D))
        x[0] = rng.standard_normal(D)
        for t in range(1, length):
            x[t] = rho * x[t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(D)
        out.append(x + np.arange(D))
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in out])])
    return np.concatenate(out), offsets


def _inner(variant: str, seed: int = 1) -> object:
    rng = np.random.default_rng(seed)
    if variant == "vq":
        return VQ([rng.standard_normal((16, D))])
    if variant == "pvq":
        return PVQ([rng.standard_normal((8, 3)), rng.standard_normal((8, 3))])
    cls = RVQ if variant == "rvq" else AVQ
    return cls([0.5 * rng.standard_normal((8, D)) for _ in range(2)], beam=2)


def _pq(variant: str, kind: str, safety: bool, hidden: int = 0) -> PredictiveQuantizer:
    rng = np.random.default_rng(5)
    transform = None
    if hidden:
        transform = {
            "enc_U": rng.standard_normal((hidden, 2 * D)), "enc_c": rng.standard_normal(hidden),
            "enc_V": 0.1 * rng.standard_normal((D, hidden)),
            "dec_U": rng.standard_normal((hidden, 2 * D)), "dec_c": rng.standard_normal(hidden),
            "dec_V": 0.1 * rng.standard_normal((D, hidden)),
        }  # fmt: skip
    return PredictiveQuantizer(
        _inner(variant),  # type: ignore[arg-type]
        np.arange(D, dtype=float),
        0.5 * np.eye(D) + 0.05 * rng.standard_normal((D, D)),
        kind=kind,
        safety=_inner(variant, seed=2) if safety else None,  # type: ignore[arg-type]
        transform=transform,
    )


CASES = [
    (v, k, s, h)
    for v in ("vq", "rvq", "avq", "pvq")
    for k, s, h in (("ma", False, 0), ("ar", True, 0), ("ar", False, 4))
]


@pytest.mark.parametrize("variant,kind,safety,hidden", CASES)
def test_encoder_and_decoder_states_agree_bit_for_bit(
    variant: str, kind: str, safety: bool, hidden: int
) -> None:
    pq = _pq(variant, kind, safety, hidden)
    x, _ = _streams(1, 80)
    s_enc, s_dec = pq.initial_state(), pq.initial_state()
    idx_steps = []
    for t in range(len(x)):
        idx, xh_enc, s_enc = pq.encode_step(x[t : t + 1], s_enc)
        xh_dec, s_dec = pq.decode_step(idx, s_dec)
        assert np.array_equal(s_enc, s_dec) and np.array_equal(xh_enc, xh_dec), t
        idx_steps.append(idx[0])
    # the whole-stream calls give the same indices and vectors
    idx_all = pq.encode(x)
    assert np.array_equal(idx_all, np.array(idx_steps))
    xh_all, _ = pq.quantize(x)
    assert np.array_equal(pq.decode(idx_all), xh_all)
    if safety:
        assert 0 < idx_all[:, 0].sum() < len(x), "the encoder never switched modes"


@pytest.mark.parametrize("variant", ["vq", "rvq", "avq", "pvq"])
def test_ma_decoder_is_exact_one_frame_after_a_loss(variant: str) -> None:
    pq = _pq(variant, "ma", False)
    x, _ = _streams(1, 40, seed=3)
    idx = pq.encode(x)
    lost = 10
    s_enc, s_dec = pq.initial_state(), pq.initial_state()
    last = None
    for t in range(len(x)):
        _, _, s_enc = pq.encode_step(x[t : t + 1], s_enc)
        if t == lost:
            s_dec = pq.conceal_step(last, s_dec)  # concealed: repeat the last vector
        else:
            last, s_dec = pq.decode_step(idx[t : t + 1], s_dec)
        if t == lost:
            assert not np.array_equal(s_enc, s_dec)
        if t >= lost + 1:
            assert np.array_equal(s_enc, s_dec), t


def test_ar_safety_net_resynchronises_after_a_loss() -> None:
    pq = _pq("rvq", "ar", True)
    x, _ = _streams(1, 120, seed=4)
    idx = pq.encode(x)
    lost = 20
    s_enc, s_dec = pq.initial_state(), pq.initial_state()
    synced_at = None
    last = None
    for t in range(len(x)):
        _, _, s_enc = pq.encode_step(x[t : t + 1], s_enc)
        if t == lost:
            s_dec = pq.conceal_step(last, s_dec)
        else:
            last, s_dec = pq.decode_step(idx[t : t + 1], s_dec)
        if t > lost and idx[t, 0] == 1 and synced_at is None:
            synced_at = t
        if synced_at is not None:
            assert np.array_equal(s_enc, s_dec), t
        elif t >= lost:
            assert not np.array_equal(s_enc, s_dec), t
    assert synced_at is not None


def test_streams_are_independent_and_reset() -> None:
    pq = _pq("rvq", "ar", True)
    x, off = _streams(5, 30)
    idx = pq.encode(x, offsets=off)
    for i in range(5):
        a, b = off[i], off[i + 1]
        assert np.array_equal(pq.encode(x[a:b]), idx[a:b])
    assert np.array_equal(
        pq.decode(idx, offsets=off)[off[2] : off[3]], pq.decode(idx[off[2] : off[3]])
    )


@pytest.mark.parametrize("variant,kind,safety,hidden", CASES)
def test_file_roundtrip_keeps_everything(
    tmp_path: Path, variant: str, kind: str, safety: bool, hidden: int
) -> None:
    pq = _pq(variant, kind, safety, hidden)
    pq.save(tmp_path / "p.cb")
    p2 = load_predictive(tmp_path / "p.cb")
    assert p2.content_hash == pq.content_hash and p2.config == pq.config
    assert isinstance(load_codebook(tmp_path / "p.cb"), PredictiveQuantizer)
    x, _ = _streams(2, 20)
    assert np.array_equal(p2.encode(x), pq.encode(x))
    assert np.array_equal(p2.quantize(x)[0], pq.quantize(x)[0])


def test_predictive_and_plain_files_are_told_apart(tmp_path: Path) -> None:
    pq = _pq("avq", "ar", True)
    pq.save(tmp_path / "p.cb")
    with pytest.raises(CodebookError, match="predictive codebook.*load_codebook"):
        load_quantizer(tmp_path / "p.cb")
    q = _inner("rvq")
    q.save(tmp_path / "q.cb")  # type: ignore[attr-defined]
    with pytest.raises(CodebookError, match="memoryless codebook"):
        load_predictive(tmp_path / "q.cb")
    assert isinstance(load_codebook(tmp_path / "q.cb"), RVQ)


def test_tampered_predictor_is_detected(tmp_path: Path) -> None:
    pq = _pq("rvq", "ma", False)
    pq.save(tmp_path / "p.cb")
    with np.load(tmp_path / "p.cb") as z:
        data = {k: z[k] for k in z.files}
    data["pred__matrix"] = data["pred__matrix"] + 1e-9
    with open(tmp_path / "t.cb", "wb") as f:
        np.savez(f, **data)
    with pytest.raises(CodebookError, match="content hash mismatch"):
        load_predictive(tmp_path / "t.cb")
    del data["pred__mean"]
    with open(tmp_path / "u.cb", "wb") as f:
        np.savez(f, **data)
    with pytest.raises(CodebookError, match="unexpected or missing"):
        load_predictive(tmp_path / "u.cb")


def test_plain_codebook_files_load_and_hash_as_before(tmp_path: Path) -> None:
    # hash of this quantizer computed before predictive files existed
    rng = np.random.default_rng(1)
    q = RVQ([rng.standard_normal((4, 3)) for _ in range(2)], rng.standard_normal(3), beam=2,
            method="kmeans", seed=3)  # fmt: skip
    assert q.content_hash == "00da6254bb66b5e451c32ece5e19a05deaac280c1adf2c0b2f4120ab949f07f7"
    q.save(tmp_path / "q.cb")
    assert load_quantizer(tmp_path / "q.cb").content_hash == q.content_hash
    shipped = json.loads((ROOT / "codec" / "data" / "CODEBOOKS.json").read_text())
    for name, info in shipped.items():
        path = ROOT / "codec" / "data" / f"{name}.cb"
        assert load_quantizer(path).content_hash == info["content_hash"], name
        assert load_codebook(path).content_hash == info["content_hash"], name


def test_bad_settings_are_refused() -> None:
    q = _inner("rvq")
    with pytest.raises(ParameterError, match="kind"):
        PredictiveQuantizer(q, np.zeros(D), np.eye(D), kind="lpc")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="matrix"):
        PredictiveQuantizer(q, np.zeros(D), np.eye(D + 1))  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="safety-net"):
        PredictiveQuantizer(q, np.zeros(D), np.eye(D), safety=_inner("vq"))  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="mean"):
        PredictiveQuantizer(
            RVQ([np.ones((2, D)), np.zeros((2, D))], np.ones(D)), np.zeros(D), np.eye(D)
        )
    pq = _pq("rvq", "ar", True)
    with pytest.raises(ParameterError, match="flags"):
        pq.decode_step(np.array([[2, 0, 0]]), pq.initial_state())
    with pytest.raises(ParameterError, match="state"):
        pq.decode_step(np.array([[0, 0, 0]]), np.zeros((2, D)))


@pytest.mark.parametrize("method", ["kmeans", "ste", "nsvq"])
@pytest.mark.parametrize("variant", ["vq", "rvq", "avq", "pvq"])
def test_training_every_variant_and_method_beats_memoryless(variant: str, method: str) -> None:
    pytest.importorskip("torch") if method != "kmeans" else None
    from codec.quantizers import train_quantizer

    x, off = _streams(16, 80, rho=0.95, seed=7)
    stages = 1 if variant == "vq" else 2
    kw = dict(variant=variant, stages=stages, bits=4, method=method, seed=0)
    if method != "kmeans":
        kw["steps"] = 60
    pq = train_predictive(x, off, kind="ar", safety_net=True, closed_loop=1, **kw)
    mem = train_quantizer(x, **kw)
    xh, idx = pq.quantize(x, offsets=off)
    err_p = np.mean(np.sum((x - xh) ** 2, axis=1))
    err_m = mem.distortion(x)
    assert err_p < 0.8 * err_m, (err_p, err_m)
    assert pq.bits == mem.bits + 1 and idx.shape[1] == stages + 1


def test_ma_training_and_scalar_matrix() -> None:
    x, off = _streams(8, 60, seed=9)
    pq = train_predictive(x, off, variant="rvq", stages=2, bits=3, kind="ma", matrix=1 / 3)
    np.testing.assert_array_equal(pq.matrix, np.eye(D) / 3)
    assert pq.bits == 6 and pq.kind == "ma"
    states, idx, xh = trace(pq, x, offsets=off)
    assert np.array_equal(states[off[:-1]], np.zeros((8, D)))


def test_end_to_end_numpy_inference_equals_torch() -> None:
    pytest.importorskip("torch")
    from codec.quantizers.endtoend import numpy_vs_torch, train_end_to_end

    x, off = _streams(8, 60, seed=11)
    for method in ("ste", "nsvq"):
        pq = train_end_to_end(x, off, variant="avq", stages=2, bits=3, method=method,
                              hidden=8, rounds=2, steps=30, batch_size=128)  # fmt: skip
        assert pq.transform is not None and np.any(pq.transform["enc_V"] != 0)
        states, _, _ = trace(pq, x, offsets=off)
        diff = numpy_vs_torch(pq, x - pq.mean, states)
        assert diff["u"] <= 1e-6 and diff["z_hat"] <= 1e-6, diff
