"""CLI behaviour of svq encode / decode / info."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from codec.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "vctk_p233_female.wav"


def test_encode_decode_info(tmp_path, capsys):
    svq = tmp_path / "a.svq"
    wav = tmp_path / "a.wav"
    assert main(["encode", str(SAMPLE), str(svq), "--bitrate", "9.6", "-q"]) == 0
    assert main(["decode", str(svq), str(wav)]) == 0
    y, rate = sf.read(wav, dtype="int16")
    x, _ = sf.read(SAMPLE)
    assert rate == 16000 and y.shape == x.shape and sf.info(wav).subtype == "PCM_16"
    assert main(["info", str(svq), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["bitrate_kbps"] == 9.6 and meta["frame_bytes"] == 24
    assert meta["sample_count"] == x.size


def test_no_overwrite_without_force(tmp_path, capsys):
    svq = tmp_path / "a.svq"
    svq.write_bytes(b"keep me")
    assert main(["encode", str(SAMPLE), str(svq)]) == 2
    assert "exists" in capsys.readouterr().err
    assert svq.read_bytes() == b"keep me"
    assert main(["encode", str(SAMPLE), str(svq), "--force", "-q"]) == 0
    assert svq.read_bytes()[:4] == b"SVQ\x1a"


def test_errors_leave_no_output(tmp_path, capsys):
    out = tmp_path / "o.svq"
    assert main(["encode", str(SAMPLE), str(out), "--bitrate", "11"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("svq: error: unsupported bitrate 11") and "\n" not in err
    assert not out.exists()
    bad = tmp_path / "bad.svq"
    bad.write_bytes(b"SVQ\x1a" + bytes(100))
    wav = tmp_path / "o.wav"
    assert main(["decode", str(bad), str(wav)]) == 2
    assert not wav.exists() and list(tmp_path.iterdir()) == [bad]
    assert main(["decode", str(tmp_path / "missing.svq"), str(wav)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / "in.wav"
    src.write_bytes(SAMPLE.read_bytes())
    assert main(["encode", str(src), str(src), "--force"]) == 2
    assert src.read_bytes() == SAMPLE.read_bytes()


def test_stdin_stdout_pipes(tmp_path):
    enc = subprocess.run(
        [sys.executable, "-m", "codec", "encode", "-", "-", "--bitrate", "13.2"],
        input=SAMPLE.read_bytes(),
        capture_output=True,
        check=True,
    )
    assert enc.stdout[:4] == b"SVQ\x1a"
    dec = subprocess.run(
        [sys.executable, "-m", "codec", "decode", "-", "-"],
        input=enc.stdout,
        capture_output=True,
        check=True,
    )
    path = tmp_path / "piped.wav"
    path.write_bytes(dec.stdout)
    y, rate = sf.read(path)
    assert rate == 16000 and y.size == sf.info(SAMPLE).frames
    assert np.abs(y).max() > 0.01


def test_train_then_encode_with_own_codebook(tmp_path, capsys):
    feats = tmp_path / "f.npy"
    samples = SAMPLE.parent
    assert main(["features", str(samples), "--out", str(feats), "-q"]) == 0
    cb = tmp_path / "my.cb"
    args = ["train", "--data", str(feats), "--variant", "rvq", "--stages", "2", "--bits", "4"]
    assert main([*args, "--method", "kmeans", "--out", str(cb), "-q"]) == 0
    assert "training-set SD" in capsys.readouterr().out
    assert main([*args, "--method", "kmeans", "--out", str(cb), "-q"]) == 2  # exists
    svq = tmp_path / "a.svq"
    assert main(["encode", str(SAMPLE), str(svq), "--codebook", str(cb), "-q"]) == 0
    wav = tmp_path / "a.wav"
    assert main(["decode", str(svq), str(wav)]) == 2  # codebook not shipped: named error
    assert "unknown codebook" in capsys.readouterr().err and not wav.exists()
    assert main(["decode", str(svq), str(wav), "--codebook", str(cb)]) == 0
    assert sf.info(wav).frames == sf.info(SAMPLE).frames
