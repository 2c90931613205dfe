"""svq decode --conceal: how the CLI conceals lost frames (simulated loss, damaged blocks)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import codec
from codec.bitstream import CHECK_FRAMES, HEADER_BYTES
from codec.cli import build_parser, main
from codec.concealment import MUTE_AFTER


@pytest.fixture(scope="module")
def coded(speech):
    x, sr = speech
    data = codec.encode(x, sr, 13.2)
    return data, codec.info(data).frame_count


@pytest.fixture()
def svq_file(tmp_path, coded):
    path = tmp_path / "in.svq"
    path.write_bytes(coded[0])
    return path


def _as_written(y: np.ndarray) -> np.ndarray:
    """Samples as the CLI's 16-bit WAV holds them, read back as float64 by soundfile."""
    return np.clip(np.rint(y * 32767.0), -32768, 32767) / 32768.0


def _decode(svq, out, *options) -> np.ndarray:
    assert main(["decode", "-q", str(svq), str(out), *options]) == 0
    y, rate = sf.read(out, dtype="float64")
    assert rate == 16000
    return y


def test_conceal_option_is_parsed_and_checked(svq_file, tmp_path, capsys):
    parser = build_parser()
    assert parser.parse_args(["decode", "a.svq", "b.wav"]).conceal == "interpolate"
    for value in ("interpolate", "causal"):
        assert parser.parse_args(["decode", "a.svq", "b.wav", "--conceal", value]).conceal == value
    out = tmp_path / "x.wav"
    for bad in (["--conceal", "linear"], ["--conceal"]):
        with pytest.raises(SystemExit) as exc:
            main(["decode", str(svq_file), str(out), *bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "--conceal" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()


def test_conceal_help_says_what_each_choice_means():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    text = " ".join(sub.choices["decode"].format_help().split())
    assert "interpolate (default; the whole file is at hand)" in text
    assert f"a run of up to {MUTE_AFTER} lost frames ({20 * MUTE_AFTER} ms)" in text
    assert "causal: extrapolated from the past frames only" in text
    assert "without lost frames both give the same output" in text


def test_without_loss_both_choices_are_the_plain_decode(svq_file, tmp_path, coded):
    data, _ = coded
    plain = tmp_path / "plain.wav"
    y = _decode(svq_file, plain)
    assert np.array_equal(y, _as_written(codec.decode(data)[0]))
    for value in ("interpolate", "causal"):
        out = tmp_path / f"{value}.wav"
        _decode(svq_file, out, "--conceal", value)
        assert out.read_bytes() == plain.read_bytes(), value


def test_simulated_loss_is_concealed_as_chosen(svq_file, tmp_path, coded, capsys):
    data, n = coded
    lost = codec.simulate_loss(n, 0.1, seed=7)
    # the seed gives runs short enough to interpolate
    assert lost.any() and not lost[-1]
    got = {}
    for value in ("interpolate", "causal"):
        out = tmp_path / f"{value}.wav"
        assert (
            main(
                [
                    "decode",
                    str(svq_file),
                    str(out),
                    "--simulate-loss",
                    "10%",
                    "--seed",
                    "7",
                    "--conceal",
                    value,
                ]
            )
            == 0
        )
        err = capsys.readouterr().err
        assert f"concealed {int(lost.sum())} of {n} frames" in err and value in err
        got[value], _ = sf.read(out, dtype="float64")
        ref, _ = codec.decode(data, lost=lost, conceal=value)
        assert np.array_equal(got[value], _as_written(ref)), value
    default = _decode(svq_file, tmp_path / "default.wav", "--simulate-loss", "0.1", "--seed", "7")
    assert np.array_equal(default, got["interpolate"])
    a, b = got["interpolate"], got["causal"]
    assert a.shape == b.shape == (codec.info(data).sample_count,)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    assert not np.array_equal(a, b)


def test_damaged_blocks_and_loss_use_the_choice(tmp_path, coded):
    data, n = coded
    h = codec.bitstream.read_header(data)
    pos = HEADER_BYTES + 2 * (CHECK_FRAMES * h.frame_bytes + 4) + 3 * h.frame_bytes + 5
    bad = tmp_path / "bad.svq"
    bad.write_bytes(data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1 :])
    lost = codec.simulate_loss(n, 0.1, seed=3)
    got = {}
    for value in ("interpolate", "causal"):
        got[value] = _decode(
            bad,
            tmp_path / f"{value}.wav",
            "--conceal-damaged",
            "--simulate-loss",
            "0.1",
            "--seed",
            "3",
            "--conceal",
            value,
        )
        ref, _ = codec.decode(
            bytes(bad.read_bytes()), lost=lost, on_damage="conceal", conceal=value
        )
        assert np.array_equal(got[value], _as_written(ref)), value
    assert not np.array_equal(got["interpolate"], got["causal"])
    # a damaged block alone (CHECK_FRAMES > MUTE_AFTER lost frames) is concealed causally
    assert CHECK_FRAMES > MUTE_AFTER
    alone = [
        _decode(bad, tmp_path / f"d{v}.wav", "--conceal-damaged", "--conceal", v)
        for v in ("interpolate", "causal")
    ]
    assert np.array_equal(alone[0], alone[1])
