"""Damage stays local: per-block CRC-32, strict and concealing decodes, svq info on damage."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import codec
from codec.bitstream import CHECK_FRAMES, HEADER_BYTES, ContainerReader, check_file
from codec.cli import main
from codec.errors import BitstreamError, DamagedStreamError, ParameterError

BLOCK_S = 1.0  # CHECK_FRAMES frames of 20 ms
RECOVERY_S = 0.25  # the allowance after a damaged block for decoder states
LEAD_S = 0.005  # frame k's MDCT block starts 5 ms before its 20 ms hop (the overlap)


def _speech_seconds(speech, seconds):
    x, sr = speech
    return np.resize(x, int(seconds * sr)), sr


@pytest.fixture(scope="module")
def twelve_s(speech):
    x, sr = _speech_seconds(speech, 12.3)
    data = codec.encode(x, sr, 13.2)
    return data, codec.decode(data)[0]


def _flip(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


def _block_of_byte(data: bytes, pos: int) -> int:
    """The block that byte ``pos`` (after the header) belongs to, its CRC included."""
    h = codec.bitstream.read_header(data)
    block_size = CHECK_FRAMES * h.frame_bytes + 4
    return (pos - HEADER_BYTES) // block_size


def _assert_damage_is_local(clean: np.ndarray, concealed: np.ndarray, block: int) -> None:
    """Identical output outside [block start - 5 ms, block end + 250 ms]."""
    sr = 16000
    lo = int((block * BLOCK_S - LEAD_S) * sr)
    hi = int(((block + 1) * BLOCK_S + RECOVERY_S) * sr)
    assert concealed.shape == clean.shape
    assert np.array_equal(concealed[: max(lo, 0)], clean[: max(lo, 0)])
    assert np.array_equal(concealed[hi:], clean[hi:])


def test_strict_by_default_and_conceal_on_request(twelve_s):
    data, clean = twelve_s
    pos = HEADER_BYTES + 3 * (CHECK_FRAMES * 33 + 4) + 17 * 33 + 9  # block 3, frame 167
    bad = _flip(data, pos, 0xFF)
    with pytest.raises(DamagedStreamError, match=r"block 3 \(3.00-4.00 s\)") as err:
        codec.decode(bad)
    assert err.value.blocks == (3,)
    with pytest.raises(DamagedStreamError):
        codec.decode(bad, on_damage="raise")
    y, rate = codec.decode(bad, on_damage="conceal")
    assert rate == 16000 and y.shape == clean.shape
    # concealing a damaged block is exactly decoding its frames as lost
    n = codec.info(data).frame_count
    lost = np.zeros(n, dtype=bool)
    lost[3 * CHECK_FRAMES : 4 * CHECK_FRAMES] = True
    assert np.array_equal(y, codec.decode(data, lost=lost)[0])
    assert not np.array_equal(y, clean)
    _assert_damage_is_local(clean, y, 3)
    # an undamaged file decodes the same in both modes
    assert np.array_equal(codec.decode(data, on_damage="conceal")[0], clean)


def test_conceal_combines_with_simulated_loss(twelve_s):
    data, _ = twelve_s
    n = codec.info(data).frame_count
    lost = codec.simulate_loss(n, 0.1, seed=1)
    bad = _flip(data, len(data) - 2)  # the last block's CRC
    both = lost.copy()
    both[(n - 1) // CHECK_FRAMES * CHECK_FRAMES :] = True
    y, _ = codec.decode(bad, lost=lost, on_damage="conceal")
    assert np.array_equal(y, codec.decode(data, lost=both)[0])
    assert not lost[-1]  # the caller's mask is left alone


def test_damaged_header_is_always_an_error(twelve_s):
    data, _ = twelve_s
    for pos in (5, 19, 40, 60, HEADER_BYTES - 1):
        with pytest.raises(BitstreamError, match="header|version"):
            codec.decode(_flip(data, pos), on_damage="conceal")
        with pytest.raises(BitstreamError, match="header|version"):
            codec.info(_flip(data, pos))
    with pytest.raises(BitstreamError, match="truncated"):
        codec.decode(data[:-3], on_damage="conceal")


def test_on_damage_must_be_known(twelve_s):
    data, _ = twelve_s
    with pytest.raises(ParameterError, match="on_damage"):
        codec.decode(data, on_damage="ignore")
    with pytest.raises(ParameterError, match="on_damage"):
        ContainerReader(io.BytesIO(data), "skip")  # type: ignore[arg-type]


def test_one_flipped_byte_loses_at_most_one_block(twelve_s):
    data, clean = twelve_s
    rng = np.random.default_rng(14)
    positions = [HEADER_BYTES, len(data) - 1, *rng.integers(HEADER_BYTES, len(data), 6)]
    for pos in positions:
        pos = int(pos)
        bad = _flip(data, pos, int(rng.integers(1, 256)))
        _, _, damaged = check_file(bad)
        assert damaged == (_block_of_byte(data, pos),)
        y, _ = codec.decode(bad, on_damage="conceal")
        _assert_damage_is_local(clean, y, damaged[0])


@pytest.mark.slow
def test_one_flipped_byte_in_a_minute_loses_at_most_one_block(speech):
    """The issue's target on a 60 s file: 20 single-byte flips, one at a time."""
    x, sr = _speech_seconds(speech, 60.0)
    data = codec.encode(x, sr, 13.2)
    clean = codec.decode(data)[0]
    rng = np.random.default_rng(60)
    for pos in rng.integers(HEADER_BYTES, len(data), 20):
        bad = _flip(data, int(pos), int(rng.integers(1, 256)))
        _, _, damaged = check_file(bad)
        assert len(damaged) == 1
        y, _ = codec.decode(bad, on_damage="conceal")
        _assert_damage_is_local(clean, y, damaged[0])


def test_reader_gives_none_for_the_frames_of_damaged_blocks(twelve_s):
    data, _ = twelve_s
    _, frames = codec.bitstream.unpack_file(data)
    bad = _flip(_flip(data, HEADER_BYTES + 5), len(data) - 40)  # blocks 0 and the last
    with pytest.raises(DamagedStreamError, match="block 0 .*2 of 13 blocks"):
        ContainerReader(io.BytesIO(bad))
    reader = ContainerReader(io.BytesIO(bad), "conceal")
    assert reader.damaged == (0, 12)
    for group in (7, 50, 100, 1000):
        got = [fr for block in reader.blocks(group) for fr in block]
        assert len(got) == len(frames)
        assert got[:50] == [None] * 50 and got[600:] == [None] * (len(frames) - 600)
        assert got[50:600] == frames[50:600]


@pytest.fixture()
def damaged_file(tmp_path, twelve_s):
    data, _ = twelve_s
    good = tmp_path / "good.svq"
    good.write_bytes(data)
    bad = tmp_path / "bad.svq"
    pos = HEADER_BYTES + 5 * (CHECK_FRAMES * 33 + 4) + 100
    bad.write_bytes(_flip(_flip(data, pos), pos + 2 * (CHECK_FRAMES * 33 + 4)))  # blocks 5, 7
    return good, bad


def test_cli_decode_is_strict_with_a_one_line_error(damaged_file, tmp_path, capsys):
    _, bad = damaged_file
    out = tmp_path / "out.wav"
    assert main(["decode", str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "block 5 (5.00-6.00 s)" in err and "--conceal-damaged" in err
    assert "2 of 13 blocks" in err and not out.exists()


def test_cli_conceal_damaged_counts_on_stderr(damaged_file, tmp_path, capsys, twelve_s):
    data, _ = twelve_s
    _, bad = damaged_file
    out = tmp_path / "out.wav"
    assert main(["decode", "--conceal-damaged", str(bad), str(out)]) == 0
    err = capsys.readouterr().err
    assert "concealed 2 damaged block(s) of 50 frames: 5 (5 s), 7 (7 s)" in err
    y, _ = sf.read(out, dtype="float64")
    lost = np.zeros(codec.info(data).frame_count, dtype=bool)
    lost[250:300] = lost[350:400] = True
    ref = np.clip(np.rint(codec.decode(data, lost=lost)[0] * 32767), -32768, 32767) / 32768
    assert np.array_equal(y, ref)
    assert main(["decode", "-q", "--conceal-damaged", str(bad), str(out), "-f"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_info_reports_damaged_blocks(damaged_file, capsys):
    good, bad = damaged_file
    assert main(["info", str(good)]) == 0
    cap = capsys.readouterr()
    assert "damaged_blocks  none" in cap.out and "blocks          13" in cap.out
    assert cap.err == ""
    assert main(["info", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["damaged_blocks"] == []
    # damaged blocks: the full report on stdout, exit status 1, one line on stderr
    assert main(["info", str(bad)]) == 1
    cap = capsys.readouterr()
    assert "damaged_blocks  5 (5 s), 7 (7 s)" in cap.out and "blocks          13" in cap.out
    assert cap.err.count("\n") == 1 and "2 of 13 blocks damaged" in cap.err
    assert str(bad) in cap.err
    assert main(["info", str(bad), "--json"]) == 1
    cap = capsys.readouterr()
    st = json.loads(cap.out)
    assert st["damaged_blocks"] == [5, 7] and st["format_version"] == 8
    assert "2 of 13 blocks damaged" in cap.err
    hdr = bad.with_name("hdr.svq")
    hdr.write_bytes(_flip(good.read_bytes(), 30))
    assert main(["info", str(hdr)]) == 2
    assert "header is damaged" in capsys.readouterr().err


def test_cli_info_exit_status_of_one_flipped_frame_byte(tmp_path, speech):
    """The exit status a script checks: 1 for a file with a flipped byte inside a frame."""
    x, sr = speech
    data = codec.encode(x, sr, 13.2)
    h = codec.bitstream.read_header(data)
    good = tmp_path / "good.svq"
    good.write_bytes(data)
    # a byte of frame 60 (block 1): past the header, block 0 and its CRC
    pos = HEADER_BYTES + CHECK_FRAMES * h.frame_bytes + 4 + 10 * h.frame_bytes + 7
    assert _block_of_byte(data, pos) == 1
    bad = tmp_path / "bad.svq"
    bad.write_bytes(_flip(data, pos, 0x40))
    blocks = codec.info(data).blocks
    for path, status in ((good, 0), (bad, 1)):
        res = subprocess.run(
            [sys.executable, "-m", "codec", "info", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == status, res.stderr
        assert "bitrate_kbps" in res.stdout and "frame_count" in res.stdout
        if status:
            assert "damaged_blocks  1 (1 s)" in res.stdout
            assert res.stderr.strip() == (
                f"svq: {bad}: 1 of {blocks} blocks damaged (CRC-32 failed): 1 (1 s)"
            )
        else:
            assert "damaged_blocks  none" in res.stdout and res.stderr == ""


def test_info_help_documents_exit_statuses():
    from codec.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    text = " ".join(sub.choices["info"].format_help().split())
    assert "Exit status: 0 if the file is intact; 1 if blocks of it are damaged" in text
    assert "2 on an error: a damaged header" in text
