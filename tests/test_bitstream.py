"""Tests of the .svq container (codec.bitstream)."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from codec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    Header,
    format_table_markdown,
    pack_file,
    read_header,
    unpack_file,
)
from codec.errors import BitstreamError, CodecError

ROOT = Path(__file__).resolve().parents[1]


def make(frames: int = 3, fb: int = 33) -> tuple[Header, list[bytes], bytes]:
    h = Header(
        sample_rate=16000,
        frame_length=320,
        bitrate_bps=13200,
        frame_bytes=fb,
        frame_count=frames,
        sample_count=frames * 320 - 5,
        residual_coder=1,
        envelope_id="avq-4x6",
        codebook_hash=bytes(range(16)),
    )
    fr = [bytes([i]) * fb for i in range(frames)]
    return h, fr, pack_file(h, fr)


def test_roundtrip_and_size():
    h, fr, data = make()
    assert len(data) == 7 + 65 + 3 * 33 + 4
    h2, fr2 = unpack_file(data)
    assert h2 == h and fr2 == fr
    assert data[:4] == MAGIC and data[4] == FORMAT_VERSION


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"RIFF" + d[4:], "bad magic"),
        (lambda d: d[:4] + bytes([9]) + d[5:], "unsupported svq format version 9"),
        (lambda d: d[:-10], "truncated"),
        (lambda d: d + b"\0", "trailing"),
        (lambda d: d[:80] + bytes([d[80] ^ 1]) + d[81:], "CRC-32 mismatch"),
        (lambda d: d[:3], "not an svq file"),
        (lambda d: b"", "not an svq file"),
    ],
)
def test_corruption_is_detected(mutate, message):
    _, _, data = make()
    with pytest.raises(BitstreamError, match=message):
        unpack_file(mutate(data))


def test_huge_frame_count_allocates_nothing():
    h, fr, data = make()
    body = bytearray(data[:-4])
    # frame_count field sits after sample_rate(4) frame_length(2) bitrate(4) frame_bytes(2)
    struct.pack_into("<I", body, 7 + 12, 2**32 - 1)
    bad = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(BitstreamError, match="more samples|truncated"):
        unpack_file(bad)


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
