"""recipes/train_side_model.py: a real run on the samples, its tables, and its errors."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from codec.bitstream import FORMAT_VERSION  # noqa: E402
from codec.residual import sidemodel  # noqa: E402
from recipes import train_side_model as recipe  # noqa: E402

SAMPLES = ROOT / "samples"


def test_run_writes_tables_that_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "file,split\n"
        f"{SAMPLES / 'vctk_p233_female.wav'},train\n"
        f"{SAMPLES / 'librispeech_1034_male.wav'},train\n"
    )
    shipped = hashlib.sha256(sidemodel.SHIPPED_PATH.read_bytes()).hexdigest()
    out = tmp_path / "out"
    argv = ["--data", str(manifest), "--out", str(out), "--stride", "1"]
    assert recipe.main([*argv, "--bitrates", "8,32", "--workers", "1", "--quiet"]) == 0
    doc = json.loads((out / "side-model.json").read_text())
    assert doc["format"] == FORMAT_VERSION and set(doc["modes"]) == {"8", "32"}
    m8 = sidemodel.ModelSide(doc["modes"]["8"], 80)
    m32 = sidemodel.ModelSide(doc["modes"]["32"], 320)
    assert "hf" in m8.fields and "hf" not in m32.fields
    counts = json.loads((out / "counts.json").read_text())
    frames = int(np.sum(counts["8"]["gain"]))
    assert frames > 300  # both files' frames counted
    # the tables follow the counts: the commonest gain is the cheapest
    gains = np.asarray(counts["8"]["gain"][0])
    assert int(np.argmin(m8.symbol_bits("gain")[0])) == int(np.argmax(gains))
    text = capsys.readouterr().out
    assert "bits/frame" in text and "sha256" in text
    # without --install the format's tables are untouched
    assert hashlib.sha256(sidemodel.SHIPPED_PATH.read_bytes()).hexdigest() == shipped


def test_missing_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert recipe.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not found" in err and len(err.splitlines()) == 1
    assert recipe.main(["--data", str(tmp_path), "--stride", "0", "--out", str(tmp_path)]) == 2
