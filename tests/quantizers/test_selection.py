"""The M-best search's fast selections equal argpartition + stable argsort, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from codec.quantizers.base import _smallest_sorted_slow, argmin_rows, smallest_sorted


def _cases(rng: np.random.Generator, shape: tuple[int, int]) -> list[np.ndarray]:
    n, total = shape
    plain = rng.standard_normal(shape)
    ties = np.round(rng.standard_normal(shape), 1)  # many equal values
    few = rng.integers(0, 3, shape).astype(float)  # a loose bound
    odd = rng.standard_normal(shape)
    odd[rng.random(shape) < 0.05] = np.inf
    odd[rng.random(shape) < 0.02] = np.nan
    dup = plain.copy()
    dup[:, 1] = dup[:, 0]  # an exact tie at the very bottom in some rows
    dup[:, 0] = dup.min(axis=1) - 1.0
    dup[:, 1] = dup[:, 0]
    return [plain, ties, few, odd, dup]


@pytest.mark.parametrize("shape", [(64, 2048), (16, 256), (9, 96), (5, 7)])
@pytest.mark.parametrize("t", [1, 4, 8, 9])
def test_smallest_sorted_equals_the_plain_selection(shape, t):
    rng = np.random.default_rng(shape[1] + t)
    for cand in _cases(rng, shape):
        if t >= shape[1]:
            continue
        assert np.array_equal(smallest_sorted(cand, t), _smallest_sorted_slow(cand, t))


@pytest.mark.parametrize("shape", [(64, 2048), (7, 5)])
def test_argmin_rows_equals_the_plain_selection(shape):
    rng = np.random.default_rng(shape[0])
    for cand in _cases(rng, shape):
        assert np.array_equal(argmin_rows(cand), _smallest_sorted_slow(cand, 1)[:, 0])
