"""Recipes without their data, their --help, and where train_default_codebooks writes."""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

import pytest

from codec.registry import DATA_DIR
from recipes._common import data_content_key

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"

RECIPES = [
    "demo",
    "bitrate_vs_pesq",
    "envelope_sd",
    "synthetic_vq",
    "frame_loss",
    "residual_ablation",
    "train_default_codebooks",
    "postfilter_bound",
    "vqvae",
    "ann_search",
    "envelope_parse",
]


def _main(module: str, argv: list[str]) -> int:
    main = importlib.import_module(f"recipes.{module}").main
    try:
        return int(main(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("module", "flag"),
    [
        ("bitrate_vs_pesq", "--data"),
        ("frame_loss", "--data"),
        ("postfilter_bound", "--data"),
        ("envelope_parse", "--data"),
        ("envelope_sd", "--train"),
        ("envelope_sd", "--eval"),
        ("train_default_codebooks", "--data"),
        ("train_default_codebooks", "--eval"),
    ],
)
def test_missing_data_says_not_found_and_what_is_needed(tmp_path, capsys, module, flag):
    missing = tmp_path / "shared" / "data" / "speech" / "manifest.csv"
    out = tmp_path / "out"
    # the recipe's other data flag names existing audio, so that only `flag` is missing
    # (a clone without ../shared lacks the defaults too)
    other = {
        ("envelope_sd", "--train"): "--eval",
        ("envelope_sd", "--eval"): "--train",
        ("train_default_codebooks", "--data"): "--eval",
        ("train_default_codebooks", "--eval"): "--data",
    }.get((module, flag))
    extra = [other, str(SAMPLES)] if other else []
    assert _main(module, [flag, str(missing), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert f"{flag} {missing}: not found" in line and "shared speech set" in line
    assert "Traceback" not in err and "not a folder" not in err
    assert not out.exists()  # nothing written before the data check


@pytest.mark.parametrize("module", RECIPES)
def test_help_has_a_plain_description(capsys, module):
    assert _main(module, ["--help"]) == 0
    text = capsys.readouterr().out
    paragraphs = text.split("\n\n")
    assert len(paragraphs) > 2 and not paragraphs[1].startswith(("options", "positional"))
    for markup in ("``", ":func:", ":data:", ":mod:", ":class:"):
        assert markup not in text, (module, markup)


def test_train_default_codebooks_writes_beside_the_package_by_default(tmp_path, monkeypatch):
    shipped = {p.name: p.read_bytes() for p in DATA_DIR.iterdir()}
    data = tmp_path / "data"  # 24 files: one speaker each, none over the 5 % cap
    data.mkdir()
    for i in range(12):
        for f in SAMPLES.glob("*.wav"):
            shutil.copyfile(f, data / f"{i:02d}_{f.name}")
    monkeypatch.chdir(tmp_path)
    args = ["--data", str(data), "--only", "avq-4x6", "--cache", str(tmp_path / "c")]
    assert _main("train_default_codebooks", args) == 0
    made = tmp_path / "out" / "default_codebooks"
    assert (made / "avq-4x6.cb").is_file()
    assert {p.name: p.read_bytes() for p in DATA_DIR.iterdir()} == shipped
    entry = json.loads((made / "CODEBOOKS.json").read_text())["avq-4x6"]
    files = sorted(data.glob("*.wav"))
    assert entry["train_data_key"] == data_content_key(files, data)


def test_install_and_out_exclude_each_other(tmp_path, capsys):
    args = ["--install", "--out", str(tmp_path), "--data", str(SAMPLES)]
    assert _main("train_default_codebooks", args) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_data_key_depends_on_content_not_on_place_or_time(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for f in SAMPLES.glob("*.wav"):
        shutil.copyfile(f, a / f.name)
        shutil.copyfile(f, b / f.name)
        os.utime(b / f.name, (1_000_000_000, 1_000_000_000))
    key_a = data_content_key(sorted(a.glob("*.wav")), a)
    assert key_a == data_content_key(sorted(b.glob("*.wav")), b)
    victim = sorted(b.glob("*.wav"))[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    assert data_content_key(sorted(b.glob("*.wav")), b) != key_a
