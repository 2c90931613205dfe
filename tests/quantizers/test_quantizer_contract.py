"""Contract tests of every variant x training method on small data."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codec.quantizers import (
    METHODS,
    VARIANTS,
    Quantizer,
    QuantizerConfig,
    load_quantizer,
    train_quantizer,
)

DIM = 6
BITS = 3
SMALL = {
    "iters": 5,
    "refine_iters": 2,
    "steps": 25,
    "batch_size": 128,
    "init_iters": 2,
    "replace_every": 10,
    "progress": False,
}
CASES = list(itertools.product(VARIANTS, METHODS))


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((DIM, DIM))
    x = rng.standard_normal((n, DIM)) @ mix + 3.0
    w = rng.uniform(0.2, 3.0, size=(n, DIM))
    return x, w


def _stages(variant: str) -> int:
    return 1 if variant == "vq" else 3


def _train(variant: str, method: str, seed: int = 0, weighted: bool = True) -> Quantizer:
    x, w = _data()
    return train_quantizer(
        x,
        variant=variant,
        stages=_stages(variant),
        bits=BITS,
        method=method,
        weights=w if weighted else None,
        seed=seed,
        **SMALL,
    )


@pytest.fixture(scope="module")
def trained() -> dict[tuple[str, str], Quantizer]:
    return {(v, m): _train(v, m) for v, m in CASES}


@pytest.mark.parametrize(("variant", "method"), CASES)
def test_encode_decode_contract(
    trained: dict[tuple[str, str], Quantizer], variant: str, method: str
) -> None:
    q = trained[(variant, method)]
    x, w = _data(n=150, seed=1)
    stages = _stages(variant)
    assert q.stages == stages and q.bits_per_stage == BITS and q.bits == stages * BITS
    assert q.dim == DIM and q.config.variant == variant and q.config.method == method
    assert isinstance(q.config, QuantizerConfig)
    assert len(q.codebooks) == stages and all(c.shape[0] == 2**BITS for c in q.codebooks)
    for weights in (None, w):
        idx = q.encode(x, weights=weights)
        assert idx.shape == (len(x), stages) and idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() < 2**BITS
        xh = q.decode(idx)
        assert xh.shape == x.shape and xh.dtype == np.float64
        xq, idx2 = q.quantize(x, weights)
        np.testing.assert_array_equal(idx2, idx)
        np.testing.assert_array_equal(xq, xh)
    # decoded vectors live in the input space (mean added back)
    assert abs(q.decode(q.encode(x)).mean() - x.mean()) < 1.0
    assert q.encode(np.empty((0, DIM))).shape == (0, stages)
    assert q.ops_per_vector() > 0


@pytest.mark.parametrize(("variant", "method"), CASES)
def test_save_load_roundtrip(
    trained: dict[tuple[str, str], Quantizer], variant: str, method: str, tmp_path: Path
) -> None:
    q = trained[(variant, method)]
    path = tmp_path / "lsf.cb"
    q.save(path)
    assert path.exists() and not (tmp_path / "lsf.cb.npz").exists()
    q2 = load_quantizer(path)
    assert type(q2) is type(q)
    assert q2.config == q.config
    assert q2.content_hash == q.content_hash
    x, w = _data(n=100, seed=2)
    np.testing.assert_array_equal(q2.encode(x, w), q.encode(x, w))
    np.testing.assert_array_equal(q2.decode(q.encode(x)), q.decode(q.encode(x)))
    np.testing.assert_array_equal(q2.mean, q.mean)


@pytest.mark.parametrize(("variant", "method"), CASES)
def test_deterministic(
    trained: dict[tuple[str, str], Quantizer], variant: str, method: str
) -> None:
    q = trained[(variant, method)]
    again = _train(variant, method, seed=0)
    assert again.content_hash == q.content_hash
    for a, b in zip(again.codebooks, q.codebooks, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("variant", VARIANTS)
def test_other_seed_differs(variant: str) -> None:
    a = _train(variant, "kmeans", seed=0, weighted=False)
    b = _train(variant, "kmeans", seed=1, weighted=False)
    assert a.content_hash != b.content_hash


def test_remove_mean_option() -> None:
    x, _ = _data()
    q = train_quantizer(
        x, variant="rvq", stages=2, bits=2, method="kmeans", remove_mean=False, **SMALL
    )
    assert not q.config.remove_mean and np.all(q.mean == 0)
    q2 = train_quantizer(x, variant="rvq", stages=2, bits=2, method="kmeans", **SMALL)
    np.testing.assert_allclose(q2.mean, x.mean(axis=0))


def test_package_import_is_light() -> None:
    code = (
        "import sys, codec.quantizers; "
        "assert 'torch' not in sys.modules; "
        "assert 'codec.quantizers.gradient' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
