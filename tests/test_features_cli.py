"""Tests of the feature cache and the ``svq features`` command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from codec.analysis import lsf_features
from codec.audio import read_audio
from codec.cli import main
from codec.errors import ParameterError
from codec.features import collection_features, list_audio

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_collection_features_match_per_file_and_cache(tmp_path):
    out = tmp_path / "feat.npy"
    fs = collection_features(SAMPLES, out=out)
    assert len(fs.files) == 2 and fs.offsets[-1] == fs.lsf.shape[0]
    for i, f in enumerate(fs.files):
        x, sr = read_audio(f)
        rows = fs.lsf[fs.offsets[i] : fs.offsets[i + 1]]
        np.testing.assert_array_equal(rows, lsf_features(x, sr))
    assert out.exists() and out.with_suffix(".json").exists()
    # a second run loads the cache: poison the cached matrix to prove it is not recomputed
    np.save(out, np.zeros_like(fs.lsf))
    again = collection_features(SAMPLES, out=out)
    assert not again.lsf.any()
    # touching an input invalidates the cache
    src = tmp_path / "audio"
    shutil.copytree(SAMPLES, src)
    fs2 = collection_features(src, out=tmp_path / "b.npy")
    f0 = Path(fs2.files[0])
    time.sleep(0.01)
    f0.write_bytes(f0.read_bytes())
    fs3 = collection_features(src, out=tmp_path / "b.npy")
    assert fs3.key != fs2.key


def test_manifest_listing_with_split(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("x.wav", "y.wav"):
        shutil.copy(SAMPLES / "vctk_p233_female.wav", tmp_path / "a" / name)
    (tmp_path / "manifest.csv").write_text("file,split\na/x.wav,train\na/y.wav,dev\n")
    assert [p.name for p in list_audio(tmp_path / "manifest.csv", split="dev")] == ["y.wav"]
    assert len(list_audio(tmp_path / "manifest.csv")) == 2
    with pytest.raises(ParameterError):
        list_audio(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no audio files"):
        list_audio(tmp_path / "empty")


def test_cli_features_prints_summary(tmp_path, capsys):
    out = tmp_path / "f.npy"
    assert main(["features", str(SAMPLES), "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "files: 2" in text and "all ordered: True" in text
    meta = json.loads(out.with_suffix(".json").read_text())
    assert len(meta["files"]) == 2


def test_cli_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["features", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("svq: error:") and "\n" not in err
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert main(["features", str(bad), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot read audio" in err and "\n" not in err


def test_python_dash_m_codec_runs():
    res = subprocess.run(
        [sys.executable, "-m", "codec", "features", str(SAMPLES / "vctk_p233_female.wav"), "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "frames: 250" in res.stdout
