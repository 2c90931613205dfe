"""recipes/train_postfilter.py: a short real run end to end, resume, and its errors.

Needs torch (skips cleanly without it). Uses the shared speech set when it is
there, else a manifest of ``samples/``, so that CI runs it too.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from codec.postfilter import Enhancer, load_weights  # noqa: E402
from recipes import train_postfilter as recipe  # noqa: E402

SAMPLES = ROOT / "samples"
HAS_TORCH = importlib.util.find_spec("torch") is not None
pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = tmp_path_factory.mktemp("manifest") / "manifest.csv"
    m.write_text(
        "file,split\n"
        f"{SAMPLES / 'vctk_p233_female.wav'},train\n"
        f"{SAMPLES / 'librispeech_1034_male.wav'},train\n"
    )
    return m


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, manifest: Path) -> Path:
    out = tmp_path_factory.mktemp("pf") / "out"
    argv = ["--data", str(manifest), "--out", str(out), "--bitrates", "8,24.4", "--steps", "4"]
    argv += [
        "--batch",
        "2",
        "--hidden",
        "8",
        "--workers",
        "1",
        "--checkpoint-every",
        "2",
        "--quiet",
    ]
    assert recipe.main(argv) == 0
    return out


def test_run_writes_data_checkpoint_and_weights(run: Path) -> None:
    items = sorted((run / "data").glob("*.npz"))
    assert len(items) == 4  # 2 files x 2 bitrates
    with np.load(items[0]) as z:
        assert z["feats"].shape[1] == recipe.N_FEATURES
        assert z["decoded"].shape == z["clean"].shape
        assert z["feats"].shape[0] == z["lags"].shape[0]
    info = json.loads((run / "train.json").read_text())
    w = load_weights(run / "postfilter.npz", sha256=info["sha256"])
    assert info["steps"] == 4 and w.hidden == 8 and info["n_params"] == w.n_params
    assert np.isfinite(info["final_loss"]) and info["final_loss"] > 0
    # the exported weights run in the numpy decoder
    e = Enhancer(w)
    e.push(np.zeros((2, recipe.N_FEATURES)), [100, 100])
    assert np.all(np.isfinite(e.process(np.random.default_rng(0).normal(size=640))))


def test_rerun_resumes_and_exports_the_same_weights(
    run: Path, manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (run / "postfilter.npz").read_bytes()
    # a slow rerun (each clock reading a second later than the last): the
    # training time in the weights' info is still the finished run's (it once
    # took the rerun's clock, and the rounded figure could change the bytes)
    ticks = iter(range(1_000_000))
    monkeypatch.setattr(recipe.time, "perf_counter", lambda: 1e6 + float(next(ticks)))
    argv = ["--data", str(manifest), "--out", str(run), "--bitrates", "8,24.4", "--steps", "4"]
    argv += ["--batch", "2", "--hidden", "8", "--workers", "1", "--quiet"]
    assert recipe.main(argv) == 0
    assert (run / "postfilter.npz").read_bytes() == before


def test_missing_data_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert recipe.main(["--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not found" in err and "\n" not in err
