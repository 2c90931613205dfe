"""AdcIndex / exact_search: ADC distances, recall on solvable cases, ordering, chunking, errors."""

from __future__ import annotations

import numpy as np
import pytest

from codec.errors import ParameterError
from codec.quantizers import AVQ, PVQ, RVQ, VQ, AdcIndex, exact_search, train_quantizer

STAGES = {"vq": 1, "rvq": 3, "avq": 3, "pvq": 3}


def _data(n: int = 600, dim: int = 9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)) * np.linspace(2.0, 0.5, dim) + 3.0


@pytest.fixture(scope="module", params=sorted(STAGES))
def trained(request: pytest.FixtureRequest) -> tuple[str, object]:
    variant = request.param
    q = train_quantizer(
        _data(),
        variant=variant,
        stages=STAGES[variant],
        bits=3,
        method="kmeans",
        iters=5,
        refine_iters=2,
        progress=False,
    )
    return variant, q


def test_adc_distances_equal_brute_force_to_decoded(trained: tuple[str, object]) -> None:
    variant, q = trained
    base = _data(300, seed=1)
    queries = _data(25, seed=2)
    index = AdcIndex(q, query_batch=7, chunk=50)  # type: ignore[arg-type]
    index.add(base)
    dist, ids = index.search(queries, 300)
    decoded = q.decode(q.encode(base))  # type: ignore[attr-defined]
    brute = ((queries[:, None, :] - decoded[None, :, :]) ** 2).sum(axis=2)
    got = np.take_along_axis(brute, ids, axis=1)
    scale = (queries**2).sum(axis=1, keepdims=True) + 1.0
    np.testing.assert_allclose(dist, got, rtol=1e-9, atol=1e-9 * scale.max())
    assert np.array_equal(np.sort(ids, axis=1), np.tile(np.arange(300), (25, 1)))
    assert np.all(np.diff(dist, axis=1) >= -1e-9), variant


@pytest.mark.parametrize("variant", sorted(STAGES))
def test_exactly_representable_database_gives_recall_one(variant: str) -> None:
    rng = np.random.default_rng(3)
    dim, k = 6, 8
    if variant == "pvq":
        cbs = [rng.standard_normal((k, 2)) * 4 for _ in range(3)]
        q: object = PVQ(cbs, rng.standard_normal(dim))
    elif variant == "vq":
        q = VQ([rng.standard_normal((k, dim)) * 4], rng.standard_normal(dim))
    else:
        cls = RVQ if variant == "rvq" else AVQ
        # orthogonal supports: every sum of codewords is uniquely and exactly decodable
        cbs = [np.zeros((k, dim)) for _ in range(3)]
        for m in range(3):
            cbs[m][:, 2 * m : 2 * m + 2] = rng.standard_normal((k, 2)) * 4
        q = cls(cbs, rng.standard_normal(dim))
    codes = np.unique(rng.integers(0, k, size=(200, 3 if variant != "vq" else 1)), axis=0)
    base = q.decode(codes)  # type: ignore[attr-defined]
    index = AdcIndex(q)  # type: ignore[arg-type]
    index.add(base)
    assert np.array_equal(index.codes, codes)
    _, truth = exact_search(base, base, 1)
    _, ids = index.search(base, 10)
    assert np.array_equal(truth[:, 0], np.arange(len(base)))
    assert np.mean(ids[:, 0] == truth[:, 0]) == 1.0


def test_exact_search_matches_brute_force_and_orders() -> None:
    base, queries = _data(257, seed=4), _data(13, seed=5)
    d, i = exact_search(base, queries, 20, query_batch=4, chunk=31)
    brute = ((queries[:, None, :] - base[None]) ** 2).sum(axis=2)
    order = np.argsort(brute, axis=1)[:, :20]
    assert np.array_equal(i, order)
    np.testing.assert_allclose(d, np.take_along_axis(brute, order, axis=1), rtol=1e-9)
    assert np.all(np.diff(d, axis=1) >= 0)


def test_chunking_gives_identical_results(trained: tuple[str, object]) -> None:
    _, q = trained
    base, queries = _data(500, seed=6), _data(40, seed=7)
    results = []
    for qb, ch in ((1000, 100000), (3, 17), (64, 1), (40, 499)):
        index = AdcIndex(q, query_batch=qb, chunk=ch)  # type: ignore[arg-type]
        index.add(base[:200])
        index.add(base[200:])
        results.append(index.search(queries, 15))
    for d, i in results[1:]:
        assert np.array_equal(i, results[0][1])
        np.testing.assert_allclose(d, results[0][0], rtol=1e-12, atol=1e-10)
    e1 = exact_search(base, queries, 15)
    e2 = exact_search(base, queries, 15, query_batch=5, chunk=7)
    assert np.array_equal(e1[1], e2[1])


def test_k_larger_than_database_pads() -> None:
    q = VQ([np.eye(4)[[0, 1, 2, 3]]])
    index = AdcIndex(q)
    index.add(np.eye(4)[:3])
    d, i = index.search(np.eye(4)[:1], 5)
    assert i[0, 0] == 0 and list(i[0, 3:]) == [-1, -1]
    assert np.all(np.isinf(d[0, 3:]))
    ed, ei = exact_search(np.eye(4)[:2], np.eye(4)[:1], 3)
    assert ei[0].tolist() == [0, 1, -1] and np.isinf(ed[0, 2])


def test_errors(trained: tuple[str, object]) -> None:
    _, q = trained
    index = AdcIndex(q)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="empty"):
        index.search(_data(2), 1)
    index.add(_data(10))
    with pytest.raises(ParameterError, match="dimension"):
        index.search(np.zeros((2, 5)), 1)
    with pytest.raises(ParameterError, match="dimension"):
        index.add(np.zeros((2, 5)))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="k must be"):
            index.search(_data(2), bad)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        index.add_codes(np.full((1, index.quantizer.stages), 99))
    with pytest.raises(ParameterError):
        AdcIndex("not a quantizer")  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        AdcIndex(q, chunk=0)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="non-empty"):
        exact_search(np.zeros((0, 3)), np.zeros((1, 3)), 1)
    with pytest.raises(ParameterError, match="dimension"):
        exact_search(np.zeros((4, 3)), np.zeros((1, 2)), 1)
    with pytest.raises(ParameterError, match="k must be"):
        exact_search(np.zeros((4, 3)), np.zeros((1, 3)), 0)
    for msg in ("empty", "k must be"):
        try:
            AdcIndex(q).search(_data(1), 0 if msg != "empty" else 1)  # type: ignore[arg-type]
        except ParameterError as exc:
            assert "\n" not in str(exc)
