"""The decoder on damaged input: a CodecError subclass or a finite signal, nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codec
from codec.bitstream import HEADER_BYTES, reseal
from codec.errors import CodecError


@pytest.fixture(scope="module")
def valid(speech_female):
    x, sr = speech_female
    return codec.encode(x[:sr], sr, 13.2)


def _decode_or_error(data: bytes, on_damage: str = "raise") -> None:
    try:
        y, _ = codec.decode(data, on_damage=on_damage)
    except CodecError:
        return
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y), initial=0.0) <= 1.0  # never louder than full scale


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mutated_frames_with_valid_crc(valid, data):
    """Mutations behind recomputed CRCs reach the frame decoder itself."""
    body = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 12))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    _decode_or_error(reseal(bytes(body)))
    _decode_or_error(bytes(body), on_damage="conceal")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(valid, blob):
    _decode_or_error(blob)
    _decode_or_error(valid[:7] + blob)


def test_seeded_mutation_fuzz(valid):
    rng = np.random.default_rng(2026)
    detected = 0
    for _ in range(60):
        body = bytearray(valid)
        start = int(rng.integers(HEADER_BYTES, len(body) - 10))
        body[start : start + 10] = rng.bytes(10)
        cut = int(rng.integers(60, len(body)))
        for damaged in (reseal(bytes(body)), reseal(bytes(body[:cut]))):
            try:
                codec.decode(damaged)
            except CodecError:
                detected += 1
    assert detected >= 60  # every truncated file is detected
