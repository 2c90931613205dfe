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
    argv += ["--batch", "2", "--hidden", "8", "--workers", "1", "--checkpoint-every", "2"]
    argv += ["--loudness-weight", "2", "--quiet"]
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
    assert info["loudness_weight"] == 2.0
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
    argv += ["--batch", "2", "--hidden", "8", "--workers", "1", "--loudness-weight", "2", "--quiet"]
    assert recipe.main(argv) == 0
    assert (run / "postfilter.npz").read_bytes() == before


def test_coded_shares_train_a_wider_first_layer(run: Path, manifest: Path, tmp_path: Path) -> None:
    """--coded-shares trains on all the features (the run's data reused); data of
    fewer features (an earlier svq's) is refused in one line."""
    out = tmp_path / "coded"
    out.mkdir()
    (out / "data").symlink_to(run / "data")
    argv = ["--data", str(manifest), "--out", str(out), "--bitrates", "8,24.4", "--steps", "2"]
    argv += ["--batch", "2", "--hidden", "8", "--workers", "1", "--coded-shares", "--quiet"]
    assert recipe.main(argv) == 0
    info = json.loads((out / "train.json").read_text())
    w = load_weights(out / "postfilter.npz", sha256=info["sha256"])
    assert w.mean.size == recipe.N_FEATURES == info["features"] and Enhancer(w).reads_coded
    assert "features" not in json.loads((run / "train.json").read_text())
    assert not Enhancer(load_weights(run / "postfilter.npz")).reads_coded
    old = tmp_path / "old" / "data"
    old.mkdir(parents=True)
    for item in sorted((run / "data").glob("*.npz")):
        with np.load(item) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["feats"] = arrays["feats"][:, : recipe.N_BASE]
        np.savez(old / item.name, **arrays)
    argv[3] = str(old.parent)
    with pytest.raises(SystemExit, match=r"holds 30 features, not 50: .*delete"):
        recipe.main(argv)


def test_a_step_with_a_nan_loss_is_left_out(
    run: Path, manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One non-finite loss must not spoil the model: the step is left out and counted."""
    calls = iter(range(1_000_000))
    real = recipe.stft_loss

    def flaky(y, t, kind="stft"):  # type: ignore[no-untyped-def]
        value = real(y, t, kind)
        return value * float("nan") if next(calls) == 2 else value  # step 1's loss

    monkeypatch.setattr(recipe, "stft_loss", flaky)
    out = tmp_path / "nan"
    out.mkdir()
    (out / "data").symlink_to(run / "data")
    argv = ["--data", str(manifest), "--out", str(out), "--bitrates", "8,24.4", "--steps", "3"]
    argv += ["--batch", "2", "--hidden", "8", "--workers", "1", "--quiet"]
    assert recipe.main(argv) == 0
    info = json.loads((out / "train.json").read_text())
    assert info["skipped_steps"] == 1 and np.isfinite(info["final_loss"])
    w = load_weights(out / "postfilter.npz")
    assert all(np.isfinite(getattr(w, n)).all() for n in ("w1", "w2", "w3", "w4"))
    assert "skipped_steps" not in json.loads((run / "train.json").read_text())


def test_init_starts_from_given_weights(run: Path, manifest: Path, tmp_path: Path) -> None:
    """--init loads the weights into the torch model exactly (every array, the
    feature normalisation included); a network of another width is refused."""
    w = load_weights(run / "postfilter.npz")
    items = recipe.Items(sorted((run / "data").glob("*.npz")))
    model = recipe.torch_model(8, items.mean + 1.0, items.std, 0.035, 0)
    recipe.load_into(model, w)
    back = recipe.to_weights(model, {})
    for name in ("mean", "std", "w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4"):
        assert np.array_equal(getattr(back, name), getattr(w, name).astype(np.float32)), name
    wide = recipe.torch_model(9, items.mean, items.std, 0.035, 0)
    with pytest.raises(ValueError, match="do not fit"):
        recipe.load_into(wide, w)


def test_adversarial_fine_tuning_runs_resumes_and_records(
    run: Path, manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--init W --adversarial: a discriminator trains beside the network, its state
    is in the checkpoint (a rerun resumes to the same weights), and the info says
    where training started and with what weight."""
    start = load_weights(run / "postfilter.npz")
    out = tmp_path / "gan"
    out.mkdir()
    (out / "data").symlink_to(run / "data")
    argv = ["--data", str(manifest), "--out", str(out), "--bitrates", "8,24.4", "--steps", "3"]
    argv += ["--batch", "2", "--hidden", "8", "--workers", "1", "--quiet", "--lr", "1e-2"]
    argv += ["--init", str(run / "postfilter.npz"), "--adversarial", "0.5"]
    argv += ["--checkpoint-every", "2"]
    assert recipe.main(argv) == 0
    info = json.loads((out / "train.json").read_text())
    assert info["init"] == start.sha256 and info["adversarial"] == 0.5
    assert "init" not in json.loads((run / "train.json").read_text())
    w = load_weights(out / "postfilter.npz", sha256=info["sha256"])
    assert w.hidden == 8 and not np.allclose(w.w4, start.w4)  # it trained from there
    import torch

    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3 and "disc" in state and "d_opt" in state
    before = (out / "postfilter.npz").read_bytes()
    assert recipe.main(argv) == 0
    assert (out / "postfilter.npz").read_bytes() == before
    # a network of another width is refused in one line
    capsys.readouterr()
    bad = argv + ["--hidden", "16"]
    assert recipe.main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --init") and "8 wide" in err and "\n" not in err
    assert recipe.main(argv[:-4] + ["--adversarial", "-1"]) == 2


def test_discriminator_scores_and_generator_terms() -> None:
    """The discriminator gives a score map per FFT size; the generator's terms are
    zero feature matching for the target itself, and their gradients are finite
    on digital silence (the magnitude is taken through its squares)."""
    import torch

    from recipes import _adversarial as adv

    torch.manual_seed(0)
    d = adv.discriminator()
    x = torch.from_numpy(_speech(1.0)).float()[None].repeat(2, 1)
    outs = d(x)
    assert len(outs) == len(adv.DISC_FFTS)
    for score, feats in outs:
        assert score.shape[:2] == (2, 1) and len(feats) == 4
    g, fm = adv.generator_terms(d, x, x)
    assert float(fm.detach()) == 0.0 and float(g.detach()) > 0
    silent = torch.zeros(2, 16000, requires_grad=True)
    g, fm = adv.generator_terms(d, x, silent)
    (g + fm).backward()
    assert torch.isfinite(silent.grad).all()
    loss = adv.discriminator_loss(d, x, silent)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in d.parameters())


def test_missing_data_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert recipe.main(["--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not found" in err and "\n" not in err


def _speech(seconds: float = 1.0) -> np.ndarray:
    from codec.audio import read_audio, to_mono_16k

    x, sr = read_audio(SAMPLES / "vctk_p233_female.wav")
    y = to_mono_16k(x, sr)
    start = y.size // 3
    return np.asarray(y[start : start + int(16000 * seconds)], dtype=np.float64)


def test_loudness_loss_is_zero_for_the_target_and_level_free() -> None:
    import torch

    t = torch.from_numpy(_speech())[None]
    y = t + 0.01 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0), dtype=t.dtype)
    assert float(recipe.loudness_loss(t, t)) < 1e-6
    base = float(recipe.loudness_loss(y, t))
    assert base > 0.01
    # both signals scaled alike: the target's level is calibrated away
    assert float(recipe.loudness_loss(8.0 * y, 8.0 * t)) == pytest.approx(base, rel=1e-9)


def test_loudness_loss_costs_added_noise_more_than_missing_energy() -> None:
    import torch

    t = torch.from_numpy(_speech())[None]
    louder = float(recipe.loudness_loss(2.0 * t, t))  # +6 dB
    quieter = float(recipe.loudness_loss(0.5 * t, t))  # -6 dB
    assert louder > 2 * quieter > 0
    # and it passes gradients to the output
    y = (0.5 * t).clone().requires_grad_(True)
    recipe.loudness_loss(y, t).backward()
    assert y.grad is not None and bool(torch.isfinite(y.grad).all())
    assert float(y.grad.abs().sum()) > 0


def test_bark_bands_cover_every_bin_once() -> None:
    fb, width, quiet = recipe._bark_bands(512)
    assert fb.shape[1] == 257 and np.all(fb.sum(axis=0) == 1) and np.all(fb.sum(axis=1) >= 1)
    assert 40 <= fb.shape[0] <= 44 and np.all(width > 0)
    # the threshold in quiet: high at 0 Hz, lowest near 3-4 kHz
    assert quiet[0] > 20 and quiet.min() < 0
