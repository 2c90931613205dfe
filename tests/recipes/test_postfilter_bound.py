"""recipes/postfilter_bound.py on short excerpts of the sample files: exactness, oracle, CLI."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # recipes/ is not installed; plain `pytest` lacks the repo root
    sys.path.insert(0, str(ROOT))

import codec  # noqa: E402
from codec.bitstream import read_header  # noqa: E402
from recipes import postfilter_bound as recipe  # noqa: E402

SAMPLES = ROOT / "samples"


@pytest.fixture(scope="module")
def excerpt() -> np.ndarray:
    x, sr = sf.read(SAMPLES / "librispeech_1034_male.wav", dtype="float64")
    assert sr == 16000
    return x[: 3 * sr]


@pytest.fixture()
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for f in sorted(SAMPLES.glob("*.wav")):
        x, sr = sf.read(f, dtype="float64")
        sf.write(folder / f.name, x[: 2 * sr], sr, subtype="PCM_16")
    return folder


def test_mask_none_is_the_plain_decode_and_bin_is_closer(excerpt):
    run = recipe.encode_decode(excerpt, 24.4, ["none", "bin", "band8"])
    data = codec.encode(excerpt, 16000, 24.4)
    plain, _ = codec.decode(data)  # the hooks are inactive outside a session
    np.testing.assert_array_equal(run.audio["none"], plain)
    assert run.clean.shape == (read_header(data).frame_count, 320)
    assert not np.array_equal(run.audio["bin"], plain)

    # the bin oracle brings the synthesized coefficients closer to the clean ones
    # (at 24.4 kbit/s; at 8 most bins are noise-filled with random signs, and
    # matching their magnitudes raises the coefficient error while PESQ-WB rises)
    def err(mask: str) -> float:
        return float(np.sum((run.coefs[mask] - run.clean) ** 2))

    assert err("bin") < 0.9 * err("none")
    # a second session in the same process: no stacked hooks, the same result
    again = recipe.encode_decode(excerpt, 24.4, ["bin", "none"])
    np.testing.assert_array_equal(again.audio["bin"], run.audio["bin"])
    np.testing.assert_array_equal(again.audio["none"], plain)


def test_oracle_masks_move_towards_the_clean_coefficients():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((5, 320))
    decoded = clean * rng.uniform(0.3, 1.5, clean.shape) + 0.1 * rng.standard_normal(clean.shape)
    decoded[0, :40] = 0.0
    err = np.sum((decoded - clean) ** 2)
    binned = recipe.bin_mask(clean, decoded)
    assert np.sum((binned - clean) ** 2) < err
    np.testing.assert_array_equal(binned[0, :40], 0.0)  # X^ = 0: no change
    assert np.all(np.sign(binned) * np.sign(decoded) >= 0)  # the decoded sign is kept
    for width in (8, 20):
        banded = recipe.band_mask(clean, decoded, width)
        e = (banded**2).reshape(5, -1, width).sum(-1)
        e_clean = (clean**2).reshape(5, -1, width).sum(-1)
        coded = (decoded**2).reshape(5, -1, width).sum(-1) > 0
        np.testing.assert_allclose(e[coded], e_clean[coded], rtol=1e-9)


def test_cli_writes_three_files(tmp_path, data):
    out = tmp_path / "out"
    argv = ["--data", str(data), "--out", str(out), "--bitrates", "8", "--workers", "1"]
    assert recipe.main([*argv, "--masks", "none,bin", "--quiet"]) == 0
    rows = list(csv.DictReader((out / "per_file.csv").open()))
    assert list(rows[0]) == ["file", "bitrate_kbps", "mask", "pesq_wb", "psnr_db"]
    assert len(rows) == 4 and {r["mask"] for r in rows} == {"none", "bin"}
    assert all(1.0 < float(r["pesq_wb"]) < 4.7 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_files"] == 2 and summary["codec_version"] == codec.__version__
    s = summary["summary"]
    assert s["bin"]["8"]["pesq_wb"]["n"] == 2 and np.isfinite(s["none"]["8"]["psnr_db"]["mean"])
    md = (out / "summary.md").read_text()
    assert "| 8 kbit/s |" in md and "oracle" in md.lower() and "files: 2" in md
    assert "recipes.postfilter_bound" in md


def test_missing_data_is_a_one_line_usage_error(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "manifest.csv"
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        recipe.main(["--data", str(missing), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert f"--data {missing}: not found" in line and "shared speech set" in line
    assert "Traceback" not in err and not out.exists()


def test_unknown_mask_is_rejected(tmp_path):
    with pytest.raises(SystemExit):
        recipe.main(["--data", str(SAMPLES), "--out", str(tmp_path), "--masks", "bogus"])
