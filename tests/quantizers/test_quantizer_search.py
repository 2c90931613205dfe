"""Search correctness: brute force on tiny codebooks, beam/M-best never worse than greedy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.quantizers import AVQ, PVQ, RVQ, VQ, Quantizer


def _werr(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    e = (x - y) ** 2
    return (e if w is None else w * e).sum(axis=1)


def _brute_force(q: Quantizer, x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Smallest weighted error over every index combination."""
    k = q.codebook_size
    combos = np.array(list(itertools.product(range(k), repeat=q.stages)), dtype=np.int64)
    recon = q.decode(combos)  # (C, D)
    err = ((x[:, None, :] - recon[None]) ** 2 * (1.0 if w is None else w[:, None, :])).sum(2)
    return err.min(axis=1)


def _setup(seed: int, n: int = 200, dim: int = 5) -> tuple[np.ndarray, np.ndarray, list]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    w = rng.uniform(0.05, 5.0, size=(n, dim))
    cbs = [rng.standard_normal((4, dim)) * s for s in (1.0, 0.6, 0.35)]
    return x, w, cbs


@pytest.mark.parametrize("weighted", [False, True])
def test_vq_is_weighted_nearest(weighted: bool) -> None:
    x, w, cbs = _setup(0)
    ww = w if weighted else None
    q = VQ([np.concatenate(cbs)[:8]], mean=np.full(5, 0.1))
    got = _werr(x, q.decode(q.encode(x, ww)), ww)
    np.testing.assert_allclose(got, _brute_force(q, x, ww), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_pvq_is_exhaustive(weighted: bool) -> None:
    x, w, cbs = _setup(1)
    ww = w if weighted else None
    q = PVQ([cbs[0][:, :2], cbs[1][:, :1], cbs[2][:, :2]], mean=np.arange(5.0) * 0.1)
    got = _werr(x, q.decode(q.encode(x, ww)), ww)
    np.testing.assert_allclose(got, _brute_force(q, x, ww), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("cls", [AVQ, RVQ])
def test_wide_beam_is_exhaustive(cls: type[Quantizer], weighted: bool) -> None:
    x, w, cbs = _setup(2)
    ww = w if weighted else None
    q = cls(cbs, mean=np.zeros(5), beam=64)  # 64 >= every partial-set count
    got = _werr(x, q.decode(q.encode(x, ww)), ww)
    np.testing.assert_allclose(got, _brute_force(q, x, ww), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [AVQ, RVQ])
def test_beam_never_worse_than_greedy(cls: type[Quantizer]) -> None:
    rng = np.random.default_rng(5)
    dim, n = 8, 3000
    x = rng.standard_normal((n, dim))
    w = rng.uniform(0.1, 4.0, size=(n, dim))
    cbs = [rng.standard_normal((8, dim)) * 0.7**m for m in range(4)]
    greedy = cls(cbs, beam=1)
    e_g = _werr(x, greedy.decode(greedy.encode(x, w)), w)
    wins = 0
    for beam in (2, 3, 8, 16):
        q = cls(cbs, beam=beam)
        e_b = _werr(x, q.decode(q.encode(x, w)), w)
        assert np.all(e_b <= e_g)
        wins += int(np.sum(e_b < e_g - 1e-12))
    assert wins > 0  # the wider search actually finds better solutions


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    stages=st.integers(1, 4),
    bits=st.integers(1, 3),
    beam=st.integers(1, 9),
    dim=st.integers(1, 5),
)
def test_beam_property(seed: int, stages: int, bits: int, beam: int, dim: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, dim))
    w = rng.uniform(0.1, 3.0, size=(40, dim))
    cbs = [rng.standard_normal((2**bits, dim)) for _ in range(stages)]
    for cls in (AVQ, RVQ):
        g, b = cls(cbs, beam=1), cls(cbs, beam=beam)
        idx = b.encode(x, w)
        assert idx.shape == (40, stages) and idx.min() >= 0 and idx.max() < 2**bits
        e_g = _werr(x, g.decode(g.encode(x, w)), w)
        assert np.all(_werr(x, b.decode(idx), w) <= e_g)


def test_avq_uses_each_codebook_once_in_order() -> None:
    # codebook m only contains multiples of unit vector m: the index columns must follow
    dim = 3
    cbs = [np.outer(np.arange(4.0), np.eye(dim)[m]) for m in range(3)]
    q = AVQ(cbs, beam=8)
    x = np.array([[3.0, 1.0, 2.0], [0.0, 2.0, 1.0]])
    np.testing.assert_array_equal(q.encode(x), [[3, 1, 2], [0, 2, 1]])
    np.testing.assert_allclose(q.decode(q.encode(x)), x)


def test_ops_per_vector_formulas() -> None:
    cb = np.zeros((16, 16))
    assert VQ([cb]).ops_per_vector() == 16 + 16 * 48 + 16
    assert RVQ([cb] * 4).ops_per_vector() == 16 + 4 * (16 * 48 + 16 + 16)
    assert PVQ([cb[:, :4]] * 4).ops_per_vector() == 16 + 4 * (16 * 12 + 16)
    assert AVQ([cb] * 4, beam=8).ops_per_vector() > AVQ([cb] * 4, beam=1).ops_per_vector()
    assert RVQ([cb] * 4, beam=8).ops_per_vector() > RVQ([cb] * 4).ops_per_vector()


def test_chunking_is_transparent() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((9000, 4))
    q = AVQ([rng.standard_normal((4, 4)) for _ in range(3)], beam=4)
    whole = q.encode(x)
    parts = np.concatenate([q.encode(x[:123]), q.encode(x[123:])])
    np.testing.assert_array_equal(whole, parts)
