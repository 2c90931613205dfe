"""Streaming encoder/decoder, the streaming container and the pitch filters in chunks."""

from __future__ import annotations

import io
import struct
import tracemalloc

import numpy as np
import pytest

import codec
from codec.audio import resample
from codec.bitstream import (
    HEADER_BYTES,
    ContainerReader,
    ContainerWriter,
    pack_file,
    reseal,
    unpack_file,
)
from codec.errors import BitstreamError, ParameterError
from codec.pipeline import PITCH_GROUP, StreamDecoder, StreamEncoder
from codec.residual.tcx import frame_signs


@pytest.fixture(scope="module")
def long_speech(speech):
    """About 7 s of speech: more than three encoder blocks of 100 frames."""
    x, sr = speech
    n = 3 * PITCH_GROUP * 320 + 1234
    return np.resize(x, n), sr


def _chunks(x, rng, largest):
    i = 0
    while i < len(x):
        c = int(rng.integers(1, largest))
        yield x[i : i + c]
        i += c


@pytest.mark.parametrize("rate", [16000, 44100])
def test_encoder_output_does_not_depend_on_chunking(long_speech, rate):
    x, sr = long_speech
    if rate != sr:
        x = resample(x, sr, rate)
    whole = codec.encode(x, rate, 13.2)
    rng = np.random.default_rng(rate)
    for largest in (50, 5000, 40000):
        enc = StreamEncoder(rate, 13.2, block_frames=PITCH_GROUP)
        frames = []
        for chunk in _chunks(x, rng, largest):
            frames += enc.push(chunk)
        frames += enc.finish()
        assert pack_file(enc.header(), frames) == whole


def test_encoder_emits_frames_while_input_arrives(long_speech):
    x, sr = long_speech
    enc = StreamEncoder(sr, 8.0, block_frames=PITCH_GROUP)
    emitted = [len(enc.push(chunk)) for chunk in np.array_split(x, 20)]
    assert sum(emitted) >= 2 * PITCH_GROUP  # frames come out before the end of the input
    assert max(emitted) <= PITCH_GROUP
    enc.finish()
    with pytest.raises(ParameterError):
        enc.push(x[:10])


def test_encoder_header_needs_finish(speech):
    enc = StreamEncoder(16000, 13.2)
    with pytest.raises(ParameterError, match="before finish"):
        enc.header()


def test_decoder_output_does_not_depend_on_grouping(long_speech):
    x, sr = long_speech
    data = codec.encode(x, sr, 9.6)
    whole, _ = codec.decode(data)
    header, frames = unpack_file(data)
    rng = np.random.default_rng(3)
    for largest in (2, 37, 400):
        dec = StreamDecoder(header)
        out = [dec.decode(group) for group in _chunks(frames, rng, largest)]
        out.append(dec.flush())
        y = np.concatenate(out)
        assert np.array_equal(y, whole)


def test_decoder_refuses_extra_or_missing_frames(speech):
    x, sr = speech
    header, frames = unpack_file(codec.encode(x[:8000], sr, 13.2))
    dec = StreamDecoder(header)
    with pytest.raises(BitstreamError, match="more frames"):
        dec.decode(frames + frames[:1])
    with pytest.raises(BitstreamError, match="a frame of 5 bytes"):
        StreamDecoder(header).decode([b"12345"])
    dec = StreamDecoder(header)
    dec.decode(frames[:-1])
    with pytest.raises(BitstreamError, match="ended after"):
        dec.flush()


def test_container_writer_matches_pack_file(speech):
    x, sr = speech
    data = codec.encode(x[:16000], sr, 24.4)
    header, frames = unpack_file(data)
    w = ContainerWriter(header.frame_bytes)
    w.add(frames[:5])
    w.add(frames[5:])
    out = io.BytesIO()
    w.write(out, header)
    w.close()
    assert out.getvalue() == data
    with pytest.raises(BitstreamError):
        ContainerWriter(header.frame_bytes).add([b"short"])


def test_container_reader_blocks_and_errors(speech):
    x, sr = speech
    data = codec.encode(x[:32000], sr, 16.4)
    header, frames = unpack_file(data)
    reader = ContainerReader(io.BytesIO(data))
    assert reader.header == header
    got = [fr for block in reader.blocks(7) for fr in block]
    assert got == frames
    damaged = bytearray(data)
    damaged[HEADER_BYTES + 3] ^= 0x10
    for bad, what in (
        (data[:-1], "truncated"),
        (data + b"\0", "trailing"),
        (bytes(damaged), "block 0 .* CRC"),
        (data[:20], "header"),
        (b"RIFF" + data[4:], "magic"),
    ):
        with pytest.raises(BitstreamError, match=what):
            ContainerReader(io.BytesIO(bad))
        with pytest.raises(BitstreamError):
            unpack_file(bad)


def test_header_announcing_huge_stream_allocates_nothing(speech):
    """A header claiming 2**32 - 1 frames is rejected by size, before any allocation."""
    x, sr = speech
    data = bytearray(codec.encode(x[:3200], sr, 8.0))
    fmt = "<IHIHIQ"  # sample_rate .. sample_count, right after the 7-byte prefix
    fields = list(struct.unpack_from(fmt, data, 7))
    fields[4] = 2**32 - 1
    fields[5] = (2**32 - 1) * 320
    struct.pack_into(fmt, data, 7, *fields)
    forged = reseal(bytes(data))
    tracemalloc.start()
    try:
        for attempt in (lambda: codec.decode(forged), lambda: ContainerReader(io.BytesIO(forged))):
            with pytest.raises(BitstreamError, match="truncated"):
                attempt()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(forged) + 1_000_000


def test_frame_signs_depend_only_on_the_frame():
    a = frame_signs(np.arange(10, 20))
    b = frame_signs([15])
    assert np.array_equal(a[5], b[0])
    assert set(np.unique(a)) == {-1.0, 1.0}
    assert abs(frame_signs(np.arange(2000)).mean()) < 0.01


def test_header_envelope_id_must_be_a_printable_name(speech):
    x, sr = speech
    data = bytearray(codec.encode(x[:3200], sr, 8.0))
    data[32:56] = b"../../../etc/x".ljust(24, b"\0")
    with pytest.raises(BitstreamError, match="envelope id"):
        codec.decode(reseal(bytes(data)))
