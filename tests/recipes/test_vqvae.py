"""recipes/vqvae.py: helpers on known cases, numpy vs torch bottleneck, ``--quick`` end to end.

The end-to-end tests need torch (they skip cleanly without it). They use the
shared speech set when it is there, else a two-file manifest of ``samples/``
(the female clip as train, the male one as dev), so that CI runs them too.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # recipes/ is not installed; plain `pytest` lacks the repo root
    sys.path.insert(0, str(ROOT))

from recipes import vqvae as recipe  # noqa: E402

SPEECH = ROOT.parent / "shared" / "data" / "speech"
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


# ----------------------------------------------------------------------------- pure helpers


def test_psnr_identical_is_inf() -> None:
    x = np.linspace(-80.0, 0.0, 100)
    assert recipe.psnr(x, x) == math.inf


def test_psnr_known_values() -> None:
    x = np.zeros((4, 4))
    # error of 8 dB everywhere: 10 log10(80^2 / 64) = 20 dB
    assert recipe.psnr(x, x + 8.0) == pytest.approx(20.0)
    assert recipe.psnr(x, x + 0.8) == pytest.approx(40.0)
    assert recipe.psnr(x, x + 1.0, peak=10.0) == pytest.approx(20.0)


def test_psnr_noise_is_low() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-80.0, 0.0, size=(64, 64))
    y = rng.uniform(-80.0, 0.0, size=(64, 64))
    assert recipe.psnr(x, y) < 8.0  # two independent uniform signals: about 7.8 dB
    assert recipe.psnr(x, x + rng.normal(0, 0.1, x.shape)) > 55.0


def test_psnr_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        recipe.psnr(np.zeros(3), np.zeros(4))


def test_patches_cut_whole_patches() -> None:
    spec = np.arange(2 * 10, dtype=np.float64).reshape(2, 10)
    p = recipe.patches(spec, size=4, hop=3)
    assert p.shape == (3, 2, 4)  # starts 0, 3, 6
    np.testing.assert_array_equal(p[1], spec[:, 3:7])
    np.testing.assert_array_equal(p[2], spec[:, 6:10])
    assert recipe.patches(spec, size=11, hop=1).shape == (0, 2, 11)
    assert recipe.patches(spec, size=5, hop=5).shape == (2, 2, 5)


def test_mel_filterbank_shape_and_cover() -> None:
    fb = recipe.mel_filterbank()
    assert fb.shape == (recipe.N_MELS, recipe.N_FFT // 2 + 1)
    assert np.all(fb >= 0) and np.all(fb <= 1.0 + 1e-12)
    assert np.all(fb.max(axis=1) > 0)  # every band has some bin
    centres = fb.argmax(axis=1)
    assert np.all(np.diff(centres) >= 0)


def test_log_mel_range_and_frames() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    y = np.sin(2 * np.pi * 440 * t) + 1e-3 * rng.standard_normal(t.size)
    spec = recipe.log_mel(y)
    assert spec.shape == (recipe.N_MELS, 1 + (16000 - recipe.WIN) // recipe.HOP)
    assert spec.max() == 0.0
    assert spec.min() >= -recipe.TOP_DB
    # the 440 Hz band is the loudest
    fb = recipe.mel_filterbank()
    band = int(fb[:, round(440 * recipe.N_FFT / 16000)].argmax())
    assert int(spec.mean(axis=1).argmax()) == band
    assert recipe.log_mel(np.zeros(10)).shape == (recipe.N_MELS, 0)


# ----------------------------------------------------------------------------- bottleneck


@needs_torch
@pytest.mark.parametrize("variant", recipe.VARIANTS)
def test_numpy_bottleneck_equals_torch(variant: str) -> None:
    import torch

    rng = np.random.default_rng(2)
    stages, bps, split = recipe.structure(variant, 8)
    dims = list(split) if split else [recipe.LATENT_DIM] * stages
    cbs = [
        torch.nn.Parameter(torch.tensor(rng.standard_normal((1 << bps, d)), dtype=torch.float32))
        for d in dims
    ]
    z = torch.tensor(rng.standard_normal((300, recipe.LATENT_DIM)), dtype=torch.float32)
    (zq, q), codes = recipe.bottleneck_torch(z, cbs, variant)
    assert zq.shape == z.shape and len(q) == stages
    quant = recipe.export_quantizer(cbs, variant, "ste", 0)
    assert quant.variant == variant and quant.bits == 8
    idx = quant.encode(z.double().numpy())
    np.testing.assert_array_equal(idx, codes)
    zn = torch.from_numpy(quant.decode(idx)).float()
    assert torch.equal(zn, zq.detach())
    # gradients reach the codebooks through the torch reconstruction
    zq.sum().backward()
    assert all(c.grad is not None and float(c.grad.abs().sum()) > 0 for c in cbs)


# ----------------------------------------------------------------------------- end to end


SAMPLES = ROOT / "samples"


@pytest.fixture(scope="module")
def data_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``--data`` for the quick runs: the shared manifest, else one over ``samples/``."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    if SPEECH.exists():
        return []
    manifest = tmp_path_factory.mktemp("manifest") / "manifest.csv"
    manifest.write_text(
        "file,split\n"
        f"{SAMPLES / 'vctk_p233_female.wav'},train\n"
        f"{SAMPLES / 'librispeech_1034_male.wav'},dev\n"
    )
    return ["--data", str(manifest)]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, data_args: list[str]) -> Path:
    out = tmp_path_factory.mktemp("vqvae") / "out"
    assert recipe.main(["--quick", "--quiet", *data_args, "--out", str(out)]) == 0
    return out


def _rows(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((out / "results.json").read_text())
    return rows


def test_quick_outputs(quick_run: Path) -> None:
    rows = _rows(quick_run)
    got = {(r["variant"], r["method"]) for r in rows}
    want = {(v, m) for v in recipe.VARIANTS for m in recipe.METHODS} | {("none", "ae")}
    assert got == want
    for r in rows:
        assert math.isfinite(r["psnr_db"]) and r["psnr_db"] > 0
        assert r["train_s"] >= 0
        if r["method"] != "ae":
            assert r["bits"] == 8
            assert r["stages"] * r["bits_per_stage"] == 8
            assert r["psnr_torch_db"] == r["psnr_db"]
            assert r["bottleneck_max_diff"] == 0.0
    md = (quick_run / "results.md").read_text()
    assert "| variant |" in md and "NSVQ minus STE" in md
    assert (quick_run / "vqvae_psnr.png").stat().st_size > 1000
    run = json.loads((quick_run / "run.json").read_text())
    assert run["psnr_peak_db"] == recipe.TOP_DB and run["steps"] == recipe.QUICK.steps


def test_quick_same_seed_same_numbers(
    quick_run: Path, tmp_path: Path, data_args: list[str]
) -> None:
    out = tmp_path / "again"
    argv = ["--quick", "--quiet", *data_args, "--variants", "vq,pvq", "--out", str(out)]
    assert recipe.main(argv) == 0
    first = {(r["variant"], r["method"]): r for r in _rows(quick_run)}
    for r in _rows(out):
        ref = first[(r["variant"], r["method"])]
        for key in ("psnr_db", "psnr_torch_db", "used_pct", "bits"):
            assert r[key] == ref[key], (r["variant"], r["method"], key)


def test_missing_data_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        recipe.main(["--quick", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "not found" in err[-1] and "--data" in err[-1]


def test_bad_options_are_rejected(tmp_path: Path) -> None:
    for argv in (["--variants", "xyz"], ["--methods", "kmeans"], ["--bits", "7"]):
        with pytest.raises(SystemExit):
            recipe.main(["--quick", "--out", str(tmp_path), *argv])
