"""Tests of the .svq container (codec.bitstream)."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from codec.bitstream import (
    CHECK_FRAMES,
    FORMAT_VERSION,
    HEADER_BYTES,
    MAGIC,
    Header,
    check_file,
    file_size,
    format_table_markdown,
    pack_file,
    read_header,
    reseal,
    unpack_file,
)
from codec.errors import BitstreamError, CodecError, DamagedStreamError

ROOT = Path(__file__).resolve().parents[1]


def make(frames: int = 3, fb: int = 33) -> tuple[Header, list[bytes], bytes]:
    h = Header(
        sample_rate=16000,
        frame_length=320,
        bitrate_bps=13200,
        frame_bytes=fb,
        frame_count=frames,
        sample_count=max(frames * 320 - 5, 0),
        residual_coder=1,
        envelope_id="avq-4x6",
        codebook_hash=bytes(range(16)),
    )
    fr = [bytes([i]) * fb for i in range(frames)]
    return h, fr, pack_file(h, fr)


def test_roundtrip_and_size():
    h, fr, data = make()
    assert len(data) == 7 + 65 + 4 + 3 * 33 + 4  # header, its CRC, one block and its CRC
    h2, fr2 = unpack_file(data)
    assert h2 == h and fr2 == fr
    assert data[:4] == MAGIC and data[4] == FORMAT_VERSION == 8
    assert len(data) == file_size(h) and HEADER_BYTES == 76


@pytest.mark.parametrize("frames", [0, 1, 49, 50, 51, 100, 123])
def test_blocks_of_fifty_frames(frames):
    h, fr, data = make(frames)
    blocks = -(-frames // CHECK_FRAMES)
    assert len(data) == HEADER_BYTES + frames * 33 + 4 * blocks
    assert check_file(data) == (h, fr, ())
    # the frames sit between the block checks
    pos = HEADER_BYTES
    for k in range(blocks):
        n = min(CHECK_FRAMES, frames - k * CHECK_FRAMES)
        assert data[pos : pos + n * 33] == b"".join(fr[k * CHECK_FRAMES : k * CHECK_FRAMES + n])
        pos += n * 33 + 4
    assert pos == len(data)


def test_block_check_covers_header_and_block_number():
    """Block k's CRC is the CRC-32 of the header bytes, k (u32) and the frames."""
    h, fr, data = make(120)
    crc0 = data[HEADER_BYTES + 50 * 33 : HEADER_BYTES + 50 * 33 + 4]
    expected = zlib.crc32(data[:72] + struct.pack("<I", 0) + b"".join(fr[:50]))
    assert crc0 == struct.pack("<I", expected)
    # swapping two blocks of the same size keeps every frame intact but fails both checks
    b0 = data[HEADER_BYTES : HEADER_BYTES + 50 * 33 + 4]
    b1 = data[HEADER_BYTES + 50 * 33 + 4 : HEADER_BYTES + 2 * (50 * 33 + 4)]
    swapped = data[:HEADER_BYTES] + b1 + b0 + data[HEADER_BYTES + 2 * len(b0) :]
    assert check_file(swapped)[2] == (0, 1)


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x40]) + data[pos + 1 :]


def test_damage_in_each_part_of_a_file():
    h, fr, data = make(120)  # blocks of 50, 50, 20 frames
    block1 = HEADER_BYTES + 50 * 33 + 4
    last_crc = len(data) - 4
    # header: every byte of the prefix, the fields and the header CRC is an error
    for pos in range(HEADER_BYTES):
        with pytest.raises(BitstreamError, match="header|magic|version|not an svq"):
            check_file(_flip(data, pos))
    # frames: only their block is damaged
    assert check_file(_flip(data, HEADER_BYTES))[2] == (0,)
    assert check_file(_flip(data, block1 + 7 * 33 + 5))[2] == (1,)
    assert check_file(_flip(data, last_crc - 1))[2] == (2,)
    # a block check itself: only its block
    assert check_file(_flip(data, block1 - 2))[2] == (0,)
    assert check_file(_flip(data, last_crc + 3))[2] == (2,)  # the file's last 4 bytes
    # the tail: cut or extended is an error (the header announces the size)
    with pytest.raises(BitstreamError, match="truncated"):
        check_file(data[:-1])
    with pytest.raises(BitstreamError, match="trailing"):
        check_file(data + b"\0")
    # damaged frames are returned as they are, for concealment to replace
    h2, fr2, damaged = check_file(_flip(data, block1 + 7 * 33 + 5))
    assert h2 == h and fr2[:50] == fr[:50] and fr2[100:] == fr[100:] and fr2[57] != fr[57]


def test_damage_error_names_the_first_block_and_its_time():
    _, _, data = make(120)
    bad = _flip(_flip(data, HEADER_BYTES + 60 * 33), len(data) - 10)
    with pytest.raises(DamagedStreamError) as info:
        unpack_file(bad)
    msg = str(info.value)
    assert "block 1 (1.00-2.00 s)" in msg and "2 of 3 blocks damaged" in msg
    assert "\n" not in msg and info.value.blocks == (1, 2)
    assert isinstance(info.value, BitstreamError)
    # the last block ends with the signal (120 frames hold 120 * 320 - 5 samples)
    with pytest.raises(DamagedStreamError, match=r"block 2 \(2.00-2.40 s\)"):
        unpack_file(_flip(data, len(data) - 10))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"RIFF" + d[4:], "bad magic"),
        (lambda d: d[:4] + bytes([9]) + d[5:], "unsupported svq format version 9 .this build"),
        (lambda d: d[:-10], "truncated"),
        (lambda d: d + b"\0", "trailing"),
        (lambda d: d[:80] + bytes([d[80] ^ 1]) + d[81:], "block 0 .* CRC-32"),
        (lambda d: d[:30] + bytes([d[30] ^ 1]) + d[31:], "header is damaged"),
        (lambda d: d[:3], "not an svq file"),
        (lambda d: b"", "not an svq file"),
    ],
)
def test_corruption_is_detected(mutate, message):
    _, _, data = make()
    with pytest.raises(BitstreamError, match=message):
        unpack_file(mutate(data))


@pytest.mark.parametrize(
    ("version", "release"),
    [(1, "svq 0.1"), (2, "svq 0.2"), (4, "svq 0.4"), (6, "svq 0.6"), (7, "svq 0.7")],
)
def test_older_versions_name_the_release_that_wrote_them(version, release):
    _, _, data = make()
    old = reseal(data[:4] + bytes([version]) + data[5:])
    with pytest.raises(BitstreamError, match=f"version {version} files were written by {release}"):
        read_header(old)


def test_reseal_recomputes_every_check():
    h, fr, data = make(75)
    body = bytearray(data)
    body[HEADER_BYTES + 60 * 33] ^= 0xFF  # a frame of block 1
    body[32] = ord("r")  # the envelope name in the header
    fixed = reseal(bytes(body))
    h2, fr2, damaged = check_file(fixed)
    assert damaged == () and h2.envelope_id == "rvq-4x6"
    assert reseal(data) == data and reseal(data[:10]) == data[:10]


def test_huge_frame_count_allocates_nothing():
    h, fr, data = make()
    body = bytearray(data)
    # frame_count field sits after sample_rate(4) frame_length(2) bitrate(4) frame_bytes(2)
    struct.pack_into("<I", body, 7 + 12, 2**32 - 1)
    with pytest.raises(BitstreamError, match="more samples|truncated"):
        unpack_file(reseal(bytes(body)))


def test_errors_are_codec_errors():
    assert issubclass(BitstreamError, CodecError)
    with pytest.raises(CodecError):
        read_header(b"\0" * 100)


def test_frames_must_match_header():
    h, fr, _ = make()
    with pytest.raises(BitstreamError):
        pack_file(h, fr[:-1])
    with pytest.raises(BitstreamError):
        pack_file(h, [b"x"] * 3)


def test_format_doc_is_generated_from_the_table():
    doc = (ROOT / "docs" / "FORMAT.md").read_text()
    assert doc == format_table_markdown(), "regenerate: python -m codec.bitstream > docs/FORMAT.md"
    res = subprocess.run(
        [sys.executable, "-m", "codec.bitstream"], capture_output=True, text=True, check=True
    )
    assert res.stdout == doc


def test_frame_doc_is_generated_from_the_code():
    from codec.residual.tcx import frame_layout_markdown

    assert (ROOT / "docs" / "FRAME.md").read_text() == frame_layout_markdown()
