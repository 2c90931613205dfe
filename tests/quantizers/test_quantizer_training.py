"""Training behaviour: gradient methods improve on their init, weights matter, variant
ranking on synthetic data, parameter validation."""

from __future__ import annotations

import numpy as np
import pytest

from codec.errors import ParameterError
from codec.quantizers import RVQ, VARIANTS, train_quantizer


def _mixed(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)) @ rng.standard_normal((dim, dim))


def _ar1(n: int, dim: int, rho: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, dim))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for d in range(1, dim):
        x[:, d] = rho * x[:, d - 1] + np.sqrt(1 - rho**2) * e[:, d]
    return x


@pytest.mark.parametrize("method", ["ste", "nsvq"])
@pytest.mark.parametrize("variant", ["vq", "rvq", "avq", "pvq"])
def test_gradient_training_improves_on_init(variant: str, method: str) -> None:
    x = _mixed(1500, 6, seed=4)
    rng = np.random.default_rng(5)
    w = rng.uniform(0.5, 2.0, size=x.shape)
    stages = 1 if variant == "vq" else 3
    common = {
        "variant": variant,
        "stages": stages,
        "bits": 3,
        "method": method,
        "weights": w,
        "init": "data",
        "batch_size": 256,
        "progress": False,
        "beam": 4,
    }
    if variant in ("vq", "pvq"):
        common.pop("beam")
    init = train_quantizer(x, steps=0, **common)
    trained = train_quantizer(x, steps=150, lr=0.03, **common)
    assert trained.distortion(x, w) < 0.9 * init.distortion(x, w)


@pytest.mark.parametrize("variant", ["rvq", "avq"])
def test_nsvq_default_init_not_worse_than_init(variant: str) -> None:
    x = _mixed(2000, 6, seed=8)
    common = {
        "variant": variant,
        "stages": 2,
        "bits": 3,
        "method": "nsvq",
        "progress": False,
        "batch_size": 256,
    }
    init = train_quantizer(x, steps=0, **common)
    trained = train_quantizer(x, steps=200, **common)
    assert trained.distortion(x) < init.distortion(x)


def test_polish_option_and_epochs() -> None:
    x = _mixed(1200, 4, seed=2)
    common = {
        "variant": "avq",
        "stages": 2,
        "bits": 3,
        "method": "nsvq",
        "progress": False,
        "batch_size": 300,
    }
    pure = train_quantizer(x, epochs=2, **common)
    polished = train_quantizer(x, epochs=2, polish_iters=3, **common)
    assert polished.distortion(x) <= pure.distortion(x) + 1e-12
    assert pure.content_hash != polished.content_hash


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    x = _mixed(300, 3, seed=1)
    q = train_quantizer(
        x, variant="rvq", stages=2, bits=2, method="nsvq", steps=5, batch_size=64, progress=True
    )
    assert q.bits == 4


@pytest.mark.parametrize("variant", VARIANTS)
def test_weighted_training_beats_unweighted_in_weighted_metric(variant: str) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3000, 4))
    w = np.tile([20.0, 1.0, 1.0, 0.05], (len(x), 1))
    stages = 1 if variant == "vq" else 2
    kw = {"variant": variant, "stages": stages, "bits": 3, "method": "kmeans", "progress": False}
    q_w = train_quantizer(x, weights=w, **kw)
    q_u = train_quantizer(x, **kw)
    assert q_w.distortion(x, w) < 0.9 * q_u.distortion(x, w)


def test_kmeans_rvq_refinement_not_worse_than_greedy_stages() -> None:
    x = _mixed(3000, 8, seed=6)
    base = train_quantizer(
        x, variant="rvq", stages=3, bits=3, method="kmeans", refine_iters=0, progress=False
    )
    refined = train_quantizer(x, variant="rvq", stages=3, bits=3, method="kmeans", progress=False)
    assert refined.distortion(x) <= base.distortion(x)


def test_synthetic_correlated_avq_rvq_beat_pvq() -> None:
    x = _ar1(4000, 64, rho=0.98, seed=0)  # strongly correlated
    kw = {
        "stages": 4,
        "bits": 3,
        "method": "kmeans",
        "progress": False,
        "iters": 15,
        "refine_iters": 4,
    }
    mse = {v: train_quantizer(x, variant=v, **kw).distortion(x) for v in ("rvq", "avq", "pvq")}
    assert mse["avq"] < 0.9 * mse["pvq"]
    assert mse["rvq"] < 0.9 * mse["pvq"]
    assert mse["avq"] <= mse["rvq"]


def test_synthetic_iid_pvq_about_as_good_as_rvq() -> None:
    x = np.random.default_rng(1).standard_normal((4000, 64))
    kw = {
        "stages": 4,
        "bits": 3,
        "method": "kmeans",
        "progress": False,
        "iters": 15,
        "refine_iters": 4,
    }
    pvq = train_quantizer(x, variant="pvq", **kw).distortion(x)
    rvq = train_quantizer(x, variant="rvq", **kw).distortion(x)
    assert pvq <= 1.05 * rvq


X = np.random.default_rng(0).standard_normal((64, 4))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((X,), {"variant": "nope"}),
        ((X,), {"method": "sgd"}),
        ((X,), {"bits": 0}),
        ((X,), {"bits": 17}),
        ((X,), {"bits": 2.5}),
        ((X,), {"variant": "vq", "stages": 2}),
        ((X,), {"stages": 0}),
        ((X[:, 0],), {}),
        ((np.where(X > 1.5, np.nan, X),), {}),
        ((X,), {"weights": -np.ones_like(X)}),
        ((X,), {"weights": np.ones((3, 4))}),
        ((X,), {"bogus_option": 1}),
        ((X,), {"beam": 0}),
        ((X,), {"lr": -1.0}),
        ((X,), {"init": "magic"}),
        ((X,), {"variant": "pvq", "split": (1, 1, 1)}),
        ((X,), {"variant": "pvq", "stages": 5}),
        ((X,), {"variant": "rvq", "split": (2, 2)}),
        ((X[:10],), {"bits": 4}),
    ],
)
def test_bad_parameters_raise(args: tuple, kwargs: dict) -> None:
    kwargs = {"method": "kmeans", "stages": 4, "bits": 2, **kwargs}
    with pytest.raises(ParameterError):
        train_quantizer(*args, **kwargs)


def test_bad_encode_decode_arguments() -> None:
    q = RVQ([np.eye(4), -np.eye(4)])
    with pytest.raises(ParameterError):
        q.encode(np.zeros((3, 5)))
    with pytest.raises(ParameterError):
        q.encode(np.full((2, 4), np.nan))
    with pytest.raises(ParameterError):
        q.encode(np.zeros((2, 4)), weights=np.zeros((2, 4)))
    with pytest.raises(ParameterError):
        q.decode(np.array([[0, 4]]))
    with pytest.raises(ParameterError):
        q.decode(np.array([0, 1]))
    with pytest.raises(ParameterError):
        q.decode(np.array([[0.0, 1.0]]))
    with pytest.raises(ParameterError):
        RVQ([np.eye(4), np.eye(3)])
    with pytest.raises(ParameterError):
        RVQ([np.zeros((3, 4))])  # not a power of two
