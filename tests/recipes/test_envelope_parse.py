"""recipes/envelope_parse.py on the sample files: value bits, two-layer envelopes, the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # recipes/ is not installed; plain `pytest` lacks the repo root
    sys.path.insert(0, str(ROOT))

from recipes import envelope_parse as recipe  # noqa: E402

SAMPLES = ROOT / "samples"


def test_value_bits_of_the_decoded_envelope_are_the_fewest_and_match_the_coded_stream():
    """Under the decoded envelope's tables (the scale index re-chosen) the values cost
    no more than as coded, and about what the frames hold; no envelope costs much more."""
    import soundfile as sf

    import codec
    from codec.bitstream import read_header

    f = SAMPLES / "vctk_p233_female.wav"
    bits = recipe.value_bits(f, 13.2)
    today = bits["decoded envelope (today)"]
    x, sr = sf.read(f)
    h = read_header(codec.encode(x, sr, 13.2))
    assert today.shape == (h.frame_count,)
    # the values fill most of a 264-bit frame (the rest: envelope and side fields)
    assert 120 < today.mean() < 8 * h.frame_bytes
    for name, v in bits.items():
        assert v.shape == today.shape and np.all(np.isfinite(v)), name
        if name != "decoded envelope (today)":
            assert v.mean() > today.mean(), name
    assert bits["no envelope (flat)"].mean() > 1.2 * today.mean()


def test_moving_average_codes_each_file_from_a_zero_state():
    """The MA innovation of a file's first frame is coded without prediction, and the
    decoded LSFs are the mean plus the innovation plus the predicted part."""
    from codec.features import collection_features

    fs = collection_features(SAMPLES)
    ma = recipe.train_moving_average(fs, 1, 6, seed=0)
    prev = recipe._previous(fs.offsets, fs.lsf.shape[0])
    dec, innov = ma.code(fs.lsf, prev)
    first = fs.offsets[:-1]
    np.testing.assert_allclose(dec[first], ma.mean + innov[first])
    later = np.flatnonzero(prev >= 0)
    np.testing.assert_allclose(dec[later], ma.mean + innov[later] + innov[later - 1] @ ma.b)
    assert recipe.sd_row("ma", ma.bits, fs.lsf, dec)["mean_sd_db"] < 4.0


def test_two_layers_and_closed_loop_prediction():
    from codec.features import collection_features

    fs = collection_features(SAMPLES)
    rows = recipe.two_layers(fs, fs, 1, 6, seed=0)
    assert [r[1] for r in rows] == [18, 18, 18]
    for name, _, dec in rows:
        assert dec.shape == fs.lsf.shape and np.all(np.isfinite(dec)), name
        row = recipe.sd_row(name, 18, fs.lsf, dec)
        assert 0.0 < row["mean_sd_db"] < 4.0
    # the predictor starts from zero at every file: a file's first frame is coded
    # as by the memoryless quantizer of the same targets
    prev = recipe._previous(fs.offsets, fs.lsf.shape[0])
    assert list(prev[fs.offsets[:-1]]) == [-1] * (len(fs.offsets) - 1)
    assert np.all(prev[1:][prev[1:] >= 0] == np.arange(1, prev.size)[prev[1:] >= 0] - 1)


def test_cli_writes_the_summary(tmp_path):
    out = tmp_path / "out"
    argv = ["--data", str(SAMPLES), "--out", str(out), "--files", "1", "--bitrates", "8"]
    assert recipe.main([*argv, "--refine", "1x6", "--ma", "2x5", "-q"]) == 0
    res = json.loads((out / "results.json").read_text())
    names = {"decoded envelope (today)", "MA innovation + mean (10 bits)", "no envelope (flat)"}
    assert set(res["value_bits"]["8"]) >= names
    assert [r["bits"] for r in res["sd"]] == [24, 32, 12, 18, 18, 18, 10, 10]
    summary = (out / "summary.md").read_text()
    assert "| vq-1x12 + AR rvq-1x6, closed-loop retrained | 18 |" in summary


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--refine", "2"], "expected STAGESxBITS"),
        (["--ma", "2x13"], "bits 1-12"),
        (["--files", "0"], "--files must be >= 1"),
        (["--bitrates", ""], "at least one bitrate"),
        (["--data", "/nonexistent/manifest.csv"], "not found"),
    ],
)
def test_bad_arguments(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        # (the sample files as data, so that a clone without ../shared checks the same)
        recipe.main(["--data", str(SAMPLES), "--out", str(tmp_path / "o"), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
