"""Range encoding of many streams at once (rangecoder.OpRecorder / encode_many)
gives the scalar encoder's bytes, and the TCX encoder's two paths agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import codec
from codec.audio import read_audio
from codec.errors import ParameterError
from codec.pipeline import Tools
from codec.residual import tcx as tcx_mod
from codec.residual.rangecoder import (
    OpRecorder,
    RangeEncoder,
    encode_many,
    encode_many_finished,
    escape_fields,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _random_streams(seed: int, n: int, most: int) -> tuple[list[RangeEncoder], list[OpRecorder]]:
    rng = np.random.default_rng(seed)
    encs, recs = [], []
    for _ in range(n):
        enc, rec = RangeEncoder(), OpRecorder()
        for _ in range(int(rng.integers(0, most))):
            kind = int(rng.integers(0, 4))
            if kind == 0:  # raw bits, up to 20 (split into 16-bit chunks)
                nb = int(rng.integers(0, 21))
                v = int(rng.integers(0, 1 << nb)) if nb else 0
                enc.encode_bits(v, nb)
                rec.encode_bits(v, nb)
            elif kind == 1:  # a table of a power-of-two total, often very skewed
                tb = int(rng.integers(1, 17))
                top = (1 << tb) - 1
                cdf = [0, *sorted({int(c) for c in rng.integers(1, top + 1, size=3)}), 1 << tb]
                s = int(rng.integers(0, len(cdf) - 1)) if rng.random() < 0.5 else len(cdf) - 2
                enc.encode_symbol(s, cdf)
                rec.encode_symbol(s, cdf)
            else:  # intervals with escape fields after some
                k = int(rng.integers(1, 8))
                cums = rng.integers(0, 1 << 14, size=k).tolist()
                freqs = [int(rng.integers(1, (1 << 15) - c + 1)) for c in cums]
                after = [
                    (j, escape_fields(int(rng.integers(16, 5000)), 15)) for j in range(0, k, 3)
                ]
                enc.encode_intervals(cums, freqs, 15, after)
                fields = dict(after)
                for j, (c, f) in enumerate(zip(cums, freqs, strict=True)):  # as TCX lays them out
                    rec.cums.append(c)
                    rec.freqs.append(f)
                    rec.shifts.append(15)
                    rec.encode_fields(fields.get(j, []))
        encs.append(enc)
        recs.append(rec)
    return encs, recs


def _arrays(recs: list[OpRecorder]) -> tuple[np.ndarray, ...]:
    counts = np.array([len(r.cums) for r in recs], dtype=np.int64)
    width = max(1, int(counts.max()))
    c = np.zeros((len(recs), width), dtype=np.int64)
    f = np.ones_like(c)
    s = np.zeros_like(c)
    for i, r in enumerate(recs):
        c[i, : counts[i]] = r.cums
        f[i, : counts[i]] = r.freqs
        s[i, : counts[i]] = r.shifts
    return c, f, s, counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encode_many_equals_the_scalar_encoder(seed: int) -> None:
    encs, recs = _random_streams(seed, 120, 300)
    many = encode_many(*_arrays(recs))
    for one, other in zip(encs, many, strict=True):
        assert other.finish() == one.finish()
        assert other.tell() == one.tell()
        assert (other._low, other._rng) == (one._low, one._rng)


def test_encode_many_carries_across_long_ff_runs() -> None:
    # symbols at the very top of their table push low up: long 0xFF runs, then a carry
    cdf = [0, 1, 1 << 16]
    enc, rec = RangeEncoder(), OpRecorder()
    for _ in range(400):
        enc.encode_symbol(1, cdf)
        rec.encode_symbol(1, cdf)
    enc.encode_bits(1, 1)
    rec.encode_bits(1, 1)
    (out,) = encode_many(*_arrays([rec]))
    assert out.finish() == enc.finish()


def _finished(recs: list[OpRecorder], width: int) -> tuple[np.ndarray, np.ndarray]:
    """encode_many_finished of the recorded streams (laid out step by step, by
    decreasing length as it takes them), back in the streams' order."""
    c, f, s, counts = _arrays(recs)
    order = np.argsort(-counts, kind="stable")
    steps = int(counts.max()) if counts.size else 0
    lay = [np.ascontiguousarray(a[order, :steps].T).astype(np.uint64) for a in (c, f, s)]
    tell, rows = encode_many_finished(*lay, counts[order], width)
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    return tell[back], rows[back]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encode_many_finished_equals_the_scalar_encoder(seed: int) -> None:
    """tell() and finish() (zero-padded) of every stream, without encoders."""
    encs, recs = _random_streams(seed, 120, 300)
    width = max(len(e.finish()) for e in encs) + int(seed)
    tell, rows = _finished(recs, width)
    assert tell.tolist() == [e.tell() for e in encs]
    for enc, row in zip(encs, rows, strict=True):
        data = enc.finish()
        assert row.tobytes() == data + bytes(width - len(data))


def test_encode_many_finished_carries_and_short_rows() -> None:
    # streams ending in each of finish()'s three ways (low == 0; a carry; one more
    # byte), long runs of 0xFF bytes (symbols at the top of their table), and rows
    # narrower than some streams (only the rows of those that fit are specified)
    low, top = [0, 1, 1 << 16], [0, (1 << 16) - 1, 1 << 16]
    cases = [(top, 40, (1, 1)), (top, 0, None), (low, 3, (0, 8)), (top, 25, (255, 8))]
    cases.append((top, 2, (3, 2)))
    encs, recs = [], []
    for cdf, n_sym, tail in cases:
        enc, rec = RangeEncoder(), OpRecorder()
        for _ in range(n_sym):
            enc.encode_symbol(1, cdf)
            rec.encode_symbol(1, cdf)
        if tail is not None:
            enc.encode_bits(*tail)
            rec.encode_bits(*tail)
        encs.append(enc)
        recs.append(rec)
    ends = {(e._low == 0, e._low + e._rng > 1 << 56) for e in encs}
    assert ends == {(True, False), (False, True), (False, False)}
    for width in (1, 8, 60):
        tell, rows = _finished(recs, width)
        assert tell.tolist() == [e.tell() for e in encs]
        for enc, row in zip(encs, rows, strict=True):
            data = enc.finish()
            if enc.tell() <= 8 * width:
                assert row.tobytes() == data + bytes(width - len(data))
    empty = np.zeros((0, 0), dtype=np.uint64)
    tell, rows = encode_many_finished(empty, empty, empty, np.zeros(0, dtype=np.int64), 4)
    assert tell.shape == (0,) and rows.shape == (0, 4)
    with pytest.raises(ParameterError, match="non-increasing"):
        one = np.zeros((2, 2), dtype=np.uint64)
        encode_many_finished(one, one + 1, one, np.array([1, 2]), 4)


def test_encode_many_edge_cases_and_errors() -> None:
    assert encode_many(*(np.zeros((0, 3), dtype=np.int64),) * 3, np.zeros(0, dtype=np.int64)) == []
    (empty,) = encode_many(np.zeros((1, 2)), np.ones((1, 2)), np.zeros((1, 2)), np.array([0]))
    assert empty.finish() == RangeEncoder().finish()
    with pytest.raises(ParameterError, match="invalid intervals"):
        encode_many(np.array([[4]]), np.array([[1]]), np.array([[2]]), np.array([1]))
    with pytest.raises(ParameterError, match="shape"):
        encode_many(np.zeros((2, 2)), np.ones((2, 3)), np.zeros((2, 2)), np.array([1, 1]))
    with pytest.raises(ParameterError, match="counts"):
        encode_many(np.zeros((1, 2)), np.ones((1, 2)), np.zeros((1, 2)), np.array([3]))
    rec = OpRecorder()
    with pytest.raises(ParameterError, match="invalid cdf"):
        rec.encode_symbol(0, [0, 1, 3])  # total not a power of two
    with pytest.raises(ParameterError, match="does not fit"):
        rec.encode_bits(4, 2)
    with pytest.raises(ParameterError, match="out of range"):
        rec.encode_symbol(2, [0, 1, 2])


@pytest.mark.parametrize(
    ("bitrate", "tools"),
    [
        (8.0, Tools()),
        (13.2, Tools()),
        (32.0, Tools()),
        (13.2, Tools(side_model=False)),  # raw side fields: recorded frame by frame
        (24.4, Tools(pitch=False)),  # no pitch fields
        (16.4, Tools(short_blocks=False)),  # no transient flag
    ],
)
def test_tcx_many_path_equals_the_scalar_path(
    bitrate: float, tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, sr = read_audio(SAMPLES / "librispeech_1034_male.wav")
    monkeypatch.setattr(tcx_mod, "ENCODE_MANY_MIN_STREAMS", 1)  # every block at once
    many = codec.encode(x, sr, bitrate, tools=tools)
    monkeypatch.setattr(tcx_mod, "ENCODE_MANY_MIN_STREAMS", 10**9)
    assert codec.encode(x, sr, bitrate, tools=tools) == many


def _read(tcx: object, frames: list[bytes], bits: list[int]) -> object:
    try:
        idx, fields, decs = tcx.read_side(frames, bits)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - compared below
        return (type(exc), str(exc))
    return (
        idx.tolist(),
        {k: v.tolist() for k, v in fields.items()},
        [(d._val, d._rng, d._pos) for d in decs],
    )


@pytest.mark.parametrize("bitrate", [8.0, 24.4, 32.0])
def test_side_fields_of_many_frames_equal_the_scalar_reading(
    bitrate: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TCX.read_side reads many frames in lock-step (rangecoder.LockStepDecoder):
    the same fields and decoder states as the frame-by-frame loop on real
    frames, and the same first error (or the same result) on damaged ones."""
    from codec.bitstream import check_file
    from codec.pipeline import residual_coder
    from codec.registry import find_envelope

    x, sr = read_audio(SAMPLES / "vctk_p233_female.wav")
    header, frames, _ = check_file(codec.encode(x, sr, bitrate))
    tcx = residual_coder(bitrate)
    bits = list(find_envelope(header.codebook_hash, ()).field_bits)
    rng = np.random.default_rng(int(bitrate * 10))
    cases = [list(frames)]
    for _ in range(30):  # damaged: random bytes, flipped bits, truncated, all ones
        damaged = list(frames)
        for i in rng.choice(len(frames), size=3, replace=False).tolist():
            kind = int(rng.integers(0, 4))
            fr = bytearray(damaged[i])
            if kind == 0:
                fr = bytearray(rng.integers(0, 256, size=len(fr), dtype=np.uint8).tobytes())
            elif kind == 1:
                fr[int(rng.integers(0, len(fr)))] ^= 1 << int(rng.integers(0, 8))
            elif kind == 2:
                fr = fr[: int(rng.integers(0, 4))]
            else:
                fr = bytearray(b"\xff" * len(fr))
            damaged[i] = bytes(fr)
        cases.append(damaged)
    for case in cases:
        monkeypatch.setattr(tcx_mod, "READ_MANY_MIN_FRAMES", 1)
        many = _read(tcx, case, bits)
        monkeypatch.setattr(tcx_mod, "READ_MANY_MIN_FRAMES", 10**9)
        one = _read(tcx, case, bits)
        assert many == one
