"""Tests of the range coder and its Laplacian models (codec.residual.rangecoder)."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.errors import BitstreamError, ParameterError
from codec.residual.rangecoder import (
    MAX_ESCAPE_BITS,
    MAX_TOTAL,
    PRECISION,
    CdfTables,
    RangeDecoder,
    RangeEncoder,
    cost_bits,
    decode_values_many,
    escape_fields,
    laplace_cdf,
    laplace_cdfs,
    laplace_cdfs_from_index,
    laplace_tables,
    laplace_tables_from_index,
    scale_from_index,
    scale_index,
    symbol_costs,
)

# An operation is ("s", cdf) + symbol or ("b", nbits) + value.
Op = tuple[str, object, int]


def _random_cdf(rng: random.Random, max_symbols: int = 40) -> list[int]:
    n = rng.randint(1, max_symbols)
    total = rng.choice([rng.randint(n, 200), rng.randint(n, MAX_TOTAL), 1 << rng.randint(8, 16)])
    total = max(total, n)
    cuts = sorted(rng.sample(range(1, total), n - 1)) if n > 1 else []
    return [0, *cuts, total]


def _random_ops(rng: random.Random, n_ops: int, p_bits: float = 0.2) -> list[Op]:
    ops: list[Op] = []
    cdfs = [_random_cdf(rng) for _ in range(5)]
    for _ in range(n_ops):
        if rng.random() < p_bits:
            nb = rng.randint(0, 24)
            ops.append(("b", nb, rng.getrandbits(nb) if nb else 0))
        else:
            cdf = rng.choice(cdfs)
            # skewed symbol choice so that the streams are compressible
            weights = np.diff(cdf)
            s = rng.choices(range(len(cdf) - 1), weights=weights.tolist())[0]
            ops.append(("s", cdf, s))
    return ops


def _encode_ops(ops: Sequence[Op]) -> RangeEncoder:
    enc = RangeEncoder()
    for kind, arg, val in ops:
        if kind == "s":
            assert isinstance(arg, list)
            enc.encode_symbol(val, arg)
        else:
            assert isinstance(arg, int)
            enc.encode_bits(val, arg)
    return enc


def _decode_ops(data: bytes, ops: Sequence[Op]) -> list[int]:
    dec = RangeDecoder(data)
    out = []
    for kind, arg, _ in ops:
        if kind == "s":
            assert isinstance(arg, list)
            out.append(dec.decode_symbol(arg))
        else:
            assert isinstance(arg, int)
            out.append(dec.decode_bits(arg))
    return out


def _ideal_bits(ops: Sequence[Op]) -> float:
    bits = 0.0
    for kind, arg, val in ops:
        if kind == "s":
            assert isinstance(arg, list)
            bits -= math.log2((arg[val + 1] - arg[val]) / arg[-1])
        else:
            assert isinstance(arg, int)
            bits += arg
    return bits


def _reference_min_bytes(ops: Sequence[Op]) -> int:
    """Shortest zero-padded byte string inside the final coding interval.

    Replays the documented integer arithmetic of the coder with unbounded
    integers (no byte output), then searches the smallest byte count whose
    grid has a point in ``[L, L + R)``.
    """
    top, bot = 1 << PRECISION, 1 << (PRECISION - 8)
    low, rng, shifts = 0, top, 0

    def step(r: int, cum: int, freq: int) -> None:
        nonlocal low, rng, shifts
        low += r * cum
        rng = r * freq
        while rng <= bot:
            low <<= 8
            rng <<= 8
            shifts += 1

    for kind, arg, val in ops:
        if kind == "s":
            assert isinstance(arg, list)
            step(rng // arg[-1], arg[val], arg[val + 1] - arg[val])
        else:
            assert isinstance(arg, int)
            nbits = arg
            while nbits > 0:
                nb = min(nbits, 16)
                nbits -= nb
                step(rng >> nb, (val >> nbits) & ((1 << nb) - 1), 1)
    total_bits = PRECISION + 8 * shifts  # L = low / 2**total_bits
    m = 0
    while True:
        unit = total_bits - 8 * m
        if unit <= 0:
            return m
        v = -(-low >> unit) << unit
        if v < low + rng:
            return m
        m += 1


# ---------------------------------------------------------------- round trips


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(0, 120), pad=st.integers(0, 12))
def test_roundtrip_random_streams(seed: int, n_ops: int, pad: int) -> None:
    ops = _random_ops(random.Random(seed), n_ops)
    enc = _encode_ops(ops)
    data = enc.finish()
    expected = [v for _, _, v in ops]
    assert _decode_ops(data, ops) == expected
    # zero padding (the packer pads frames to B bytes) decodes identically
    assert _decode_ops(data + bytes(pad), ops) == expected
    # exact, shortest termination
    assert len(data) == _reference_min_bytes(ops)
    assert not data or data[-1] != 0
    assert len(data) <= math.ceil(_ideal_bits(ops) / 8) + 2


def test_roundtrip_big_seeded() -> None:
    rng = random.Random(1234)
    ops = _random_ops(rng, 20000, p_bits=0.1)
    enc = _encode_ops(ops)
    data = enc.finish()
    assert _decode_ops(data, ops) == [v for _, _, v in ops]
    ideal = _ideal_bits(ops)
    assert len(data) <= math.ceil(ideal / 8) + 2
    assert len(data) <= math.ceil(ideal / 8) + 1  # what the design guarantees (+ ~1e-9 bit/op)


def test_raw_bits_roundtrip_and_size() -> None:
    rng = random.Random(5)
    fields = [(nb, rng.getrandbits(nb)) for nb in [rng.randint(1, 40) for _ in range(3000)]]
    enc = RangeEncoder()
    for nb, v in fields:
        enc.encode_bits(v, nb)
    data = enc.finish()
    dec = RangeDecoder(data)
    assert [dec.decode_bits(nb) for nb, _ in fields] == [v for _, v in fields]
    assert len(data) <= math.ceil(sum(nb for nb, _ in fields) / 8) + 1


def test_encode_decode_freq_interface() -> None:
    rng = random.Random(7)
    items = []
    enc = RangeEncoder()
    for _ in range(2000):
        total = rng.randint(1, MAX_TOTAL)
        cum = rng.randrange(total)
        freq = rng.randint(1, total - cum)
        enc.encode(cum, freq, total)
        items.append((cum, freq, total))
    dec = RangeDecoder(enc.finish())
    for cum, freq, total in items:
        t = dec.decode_freq(total)
        assert cum <= t < cum + freq
        dec.advance(cum, freq, total)


def test_empty_and_trivial_streams() -> None:
    assert RangeEncoder().finish() == b""
    enc = RangeEncoder()
    for _ in range(1000):
        enc.encode_symbol(0, [0, 30000, 32768])  # most probable first symbol
        enc.encode(0, 1, 1)  # zero-information symbol
    data = enc.finish()
    assert len(data) <= math.ceil(1000 * -math.log2(30000 / 32768) / 8) + 1
    dec = RangeDecoder(data)
    for _ in range(1000):
        assert dec.decode_symbol([0, 30000, 32768]) == 0
        assert dec.decode_freq(1) == 0
        dec.advance(0, 1, 1)


def test_all_first_symbols_compress_to_nothing() -> None:
    # the code value 0.000... is inside the interval: every byte is 0, all stripped
    enc = RangeEncoder()
    for _ in range(500):
        enc.encode_symbol(0, [0, 1, 2])
    assert enc.finish() == b""
    dec = RangeDecoder(b"")
    assert [dec.decode_symbol([0, 1, 2]) for _ in range(500)] == [0] * 500
    assert dec.tell() == enc.tell() == 500


def test_carry_propagation_through_long_ff_runs() -> None:
    # last symbols push the code towards 0xffff..., then a carry ripples back
    rng = random.Random(3)
    for trial in range(30):
        ops: list[Op] = []
        cdf = [0, 1, 65535, 65536]
        for _ in range(rng.randint(10, 400)):
            ops.append(("s", cdf, 2 if rng.random() < 0.97 else 1))
        for _ in range(rng.randint(0, 20)):
            ops.append(("s", cdf, rng.choice([0, 1, 2])))
        if trial % 2:
            ops.append(("b", 16, 0xFFFF))
        enc = _encode_ops(ops)
        data = enc.finish()
        assert _decode_ops(data, ops) == [v for _, _, v in ops]
        assert _decode_ops(data + bytes(9), ops) == [v for _, _, v in ops]
        assert len(data) == _reference_min_bytes(ops)


def test_finish_is_a_snapshot() -> None:
    rng = random.Random(11)
    ops = _random_ops(rng, 300)
    enc = RangeEncoder()
    for i, (kind, arg, val) in enumerate(ops):
        if kind == "s":
            assert isinstance(arg, list)
            enc.encode_symbol(val, arg)
        else:
            assert isinstance(arg, int)
            enc.encode_bits(val, arg)
        if i % 37 == 0:
            part = enc.finish()
            assert enc.finish() == part
            assert _decode_ops(part, ops[: i + 1]) == [v for _, _, v in ops[: i + 1]]
    assert _decode_ops(enc.finish(), ops) == [v for _, _, v in ops]


# ---------------------------------------------------------------- tell


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_tell_is_an_upper_bound_and_in_sync(seed: int) -> None:
    ops = _random_ops(random.Random(seed), 80)
    enc = RangeEncoder()
    tells: list[int] = []
    ideal = 0.0
    for kind, arg, val in ops:
        if kind == "s":
            assert isinstance(arg, list)
            enc.encode_symbol(val, arg)
        else:
            assert isinstance(arg, int)
            enc.encode_bits(val, arg)
        ideal += _ideal_bits([(kind, arg, val)])
        t = enc.tell()
        assert len(enc.finish()) <= math.ceil(t / 8)
        assert t - 1 - 1e-9 < enc.bits_used() <= t + 1e-9
        assert enc.bits_used() >= ideal - 1e-6
        assert enc.bits_used() <= ideal + 1e-6 + 1e-9 * len(tells)
        tells.append(t)
    dec = RangeDecoder(enc.finish())
    for (kind, arg, _), t in zip(ops, tells, strict=True):
        if kind == "s":
            assert isinstance(arg, list)
            dec.decode_symbol(arg)
        else:
            assert isinstance(arg, int)
            dec.decode_bits(arg)
        assert dec.tell() == t
        assert t - 1 - 1e-9 < dec.bits_used() <= t + 1e-9


def test_tell_fits_budget() -> None:
    # the rate-control rule: stop when tell() would exceed 8*B bits
    rng = random.Random(9)
    budget = 40
    cdf = laplace_cdf(3.0, 15).tolist()
    enc = RangeEncoder()
    coded: list[int] = []
    while True:
        trial = enc.copy()
        s = rng.randrange(31)
        trial.encode_symbol(s, cdf)
        if trial.tell() > 8 * budget:
            break
        enc, coded = trial, [*coded, s]
    data = enc.finish()
    assert len(data) <= budget
    frame = data + bytes(budget - len(data))
    dec = RangeDecoder(frame)
    assert [dec.decode_symbol(cdf) for _ in coded] == coded
    assert dec.tell() <= 8 * budget


# ---------------------------------------------------------------- batch API


def test_encode_values_laplace_roundtrip_and_cost() -> None:
    rng = np.random.default_rng(42)
    n, m = 320 * 40, 15
    scales = np.exp(rng.uniform(np.log(0.05), np.log(40.0), n))
    q = np.round(rng.laplace(0.0, scales)).astype(np.int64)
    q[::97] *= 1000  # force long escapes
    q[5] = m + (1 << (MAX_ESCAPE_BITS + 1)) - 1  # largest codable magnitude
    q[6] = -q[5]
    cdfs = laplace_cdfs(scales, m)
    tables = laplace_tables(scales, m)
    assert np.array_equal(tables.to_array(), cdfs)
    enc = RangeEncoder()
    enc.encode_values(q, tables)
    data = enc.finish()
    enc2 = RangeEncoder()
    enc2.encode_values(q.tolist(), cdfs)  # array tables, list values: same stream
    assert enc2.finish() == data
    dec = RangeDecoder(data + bytes(3))
    assert dec.decode_values(tables) == q.tolist()
    assert RangeDecoder(data).decode_values(cdfs) == q.tolist()
    ideal = cost_bits(q, cdfs)
    assert ideal == pytest.approx(enc.bits_used(), abs=1e-3)
    assert 8 * len(data) < ideal + 8
    costs = symbol_costs(np.stack([q, np.zeros_like(q)]), cdfs)
    assert costs.shape == (2, n)
    assert costs[0].sum() == pytest.approx(ideal)
    assert cost_bits(q, tables) == pytest.approx(ideal)


def test_encode_symbols_matches_single_calls() -> None:
    rng = random.Random(21)
    rows = [_random_cdf(rng, 12) for _ in range(7)]
    width = max(len(r) for r in rows)
    rows = [r for r in rows if len(r) == width] or rows[:1]
    tables = [rows[rng.randrange(len(rows))] for _ in range(500)]
    syms = [rng.randrange(len(t) - 1) for t in tables]
    single = RangeEncoder()
    for s, t in zip(syms, tables, strict=True):
        single.encode_symbol(s, np.asarray(t))  # ndarray path
    batch = RangeEncoder()
    batch.encode_symbols(np.asarray(syms), CdfTables(tables))
    assert batch.finish() == single.finish()
    dec = RangeDecoder(batch.finish())
    assert dec.decode_symbols(tables) == syms
    dec2 = RangeDecoder(batch.finish())
    assert [dec2.decode_symbol(np.asarray(t)) for t in tables] == syms


def test_batch_errors_leave_encoder_unchanged() -> None:
    tables = laplace_tables(np.ones(3), 2)
    enc = RangeEncoder()
    enc.encode_bits(5, 3)
    before = enc.finish(), enc.tell()
    with pytest.raises(ParameterError):
        enc.encode_values([0, 1, 2 + (1 << (MAX_ESCAPE_BITS + 1))], tables)
    with pytest.raises(ParameterError):
        enc.encode_symbols([0, 6, 0], tables)
    with pytest.raises(ParameterError):
        enc.encode_values([0, 1], tables)  # length mismatch
    with pytest.raises(ParameterError):
        enc.encode_values([0.5, 1, 2], tables)  # type: ignore[list-item]
    assert (enc.finish(), enc.tell()) == before


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cum", "freq", "total"),
    [(0, 0, 10), (-1, 2, 10), (5, 6, 10), (0, 1, MAX_TOTAL + 1), (0, 1, 0)],
)
def test_invalid_intervals(cum: int, freq: int, total: int) -> None:
    with pytest.raises(ParameterError):
        RangeEncoder().encode(cum, freq, total)
    dec = RangeDecoder(b"\x12\x34")
    with pytest.raises(ParameterError):
        dec.advance(cum, freq, total)


def test_argument_errors() -> None:
    enc = RangeEncoder()
    with pytest.raises(ParameterError):
        enc.encode_symbol(3, [0, 1, 2])
    with pytest.raises(ParameterError):
        enc.encode_symbol(0, [0, 0, 2])  # zero frequency
    with pytest.raises(ParameterError):
        enc.encode_bits(8, 3)
    with pytest.raises(ParameterError):
        enc.encode_bits(0, -1)
    with pytest.raises(ParameterError):
        enc.encode(1.5, 1, 4)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        CdfTables([[0, 2, 1]])
    with pytest.raises(ParameterError):
        CdfTables([[1, 2, 3]])
    with pytest.raises(ParameterError):
        CdfTables(np.array([[0, 5, 3]], dtype=np.uint16))
    with pytest.raises(ParameterError):
        CdfTables([[0, 1, MAX_TOTAL + 1]])
    with pytest.raises(ParameterError):
        CdfTables([[0, 1], [0, 1, 2]])
    with pytest.raises(ParameterError):
        CdfTables(np.array([[0.0, 1.0]]))
    dec = RangeDecoder(b"\x80")
    with pytest.raises(ParameterError):
        dec.decode_symbol([0, np.int64(5), np.int64(8)])  # numpy scalars could overflow
    with pytest.raises(ParameterError):
        dec.decode_symbol([1, 5, 8])
    with pytest.raises(ParameterError):
        dec.decode_freq(0)
    dec = RangeDecoder(b"\x80")
    t = dec.decode_freq(4)
    with pytest.raises(ParameterError):
        dec.advance((t + 1) % 4, 1, 4)  # interval does not contain the target
    with pytest.raises(BitstreamError):
        RangeDecoder("not bytes")  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        laplace_cdf(0.0, 5)
    with pytest.raises(ParameterError):
        laplace_cdf(float("nan"), 5)
    with pytest.raises(ParameterError):
        laplace_cdf(1.0, 5000)
    with pytest.raises(ParameterError):
        laplace_cdfs_from_index([0, 999], 5)


_GARBAGE_CDFS = laplace_cdfs(np.geomspace(0.05, 60.0, 64), 4)
_GARBAGE_TABLES = laplace_tables_from_index(scale_index(np.geomspace(0.05, 60.0, 64)), 4)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64), seed=st.integers(0, 2**16))
def test_garbage_input_only_raises_bitstream_error(data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    dec = RangeDecoder(data)
    try:
        for _ in range(120):
            op = rng.randrange(5)
            if op == 0:
                dec.decode_bits(rng.randint(0, 20))
            elif op == 1:
                cdf = _random_cdf(rng)
                dec.decode_symbol(cdf)
            elif op == 2:
                total = rng.randint(1, MAX_TOTAL)
                t = dec.decode_freq(total)
                dec.advance(t, 1, total)
            elif op == 3:
                vals = dec.decode_values(_GARBAGE_TABLES)
                assert len(vals) == 64
            else:
                assert len(dec.decode_symbols(_GARBAGE_CDFS)) == 64
            assert dec.tell() >= 0
    except BitstreamError:
        pass


def test_long_escape_prefix_raises() -> None:
    # a run of 0xff bytes decodes, with a table where the escape is likely,
    # to an escape followed by an endless unary prefix
    tables = laplace_tables([1000.0], 0)
    with pytest.raises(BitstreamError):
        RangeDecoder(b"\xff" * 16).decode_values(tables)


def test_truncated_streams_never_crash() -> None:
    rng = np.random.default_rng(8)
    scales = rng.uniform(0.2, 30.0, 640)
    q = np.round(rng.laplace(0.0, scales)).astype(np.int64)
    tables = laplace_tables(scales, 7)
    enc = RangeEncoder()
    enc.encode_values(q, tables)
    data = enc.finish()
    for cut in range(0, len(data), max(1, len(data) // 25)):
        try:
            out = RangeDecoder(data[:cut]).decode_values(tables)
            assert len(out) == len(q)
        except BitstreamError:
            pass


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("max_abs", [0, 1, 7, 15, 40])
@pytest.mark.parametrize("total_bits", [12, 15, 16])
def test_laplace_cdf_properties(max_abs: int, total_bits: int) -> None:
    if 4 * (2 * max_abs + 2) > (1 << total_bits):
        pytest.skip("alphabet too large for the total")
    scales = np.geomspace(1e-3, 1e4, 300)
    cdfs = laplace_cdfs(scales, max_abs, total_bits)
    assert cdfs.shape == (300, 2 * max_abs + 3)
    assert cdfs.dtype == np.int64
    assert np.all(cdfs[:, 0] == 0)
    assert np.all(cdfs[:, -1] == 1 << total_bits)
    assert np.all(np.diff(cdfs, axis=1) >= 1)
    # vectorised == scalar
    for i in (0, 77, 299):
        assert np.array_equal(laplace_cdf(float(scales[i]), max_abs, total_bits), cdfs[i])
    # symmetric in the sign of the value
    freq = np.diff(cdfs, axis=1)[:, : 2 * max_abs + 1]
    assert np.array_equal(freq, freq[:, ::-1])


def test_laplace_cdf_matches_model() -> None:
    m, bits = 15, 15
    idx = np.arange(0, 129, 4)
    b = scale_from_index(idx)
    cdfs = laplace_cdfs_from_index(idx, m, bits)
    p = np.diff(cdfs, axis=1) / float(1 << bits)
    k = np.arange(-m, m + 1)
    rho = np.exp(-1.0 / (2.0 * b))[:, None]
    cells = 0.5 * (rho ** (2 * np.abs(k) - 1) - rho ** (2 * np.abs(k) + 1))
    model = np.where(k == 0, 1.0 - rho, cells)
    model = np.concatenate([model, rho ** (2 * m + 1)], axis=1)
    assert np.max(np.abs(p - model)) < 2.0 * (2 * m + 2) / (1 << bits)


def test_scale_grid() -> None:
    idx = np.arange(129)
    assert np.array_equal(scale_index(scale_from_index(idx)), idx)
    assert scale_index(1e-9) == 0
    assert scale_index(np.inf) == 128
    assert laplace_cdfs([1.0, 2.0], 3).shape == (2, 9)
    assert laplace_cdfs(np.ones((4, 5)), 3).shape == (4, 5, 9)
    assert len(laplace_tables_from_index(np.array([], dtype=np.int64), 3)) == 0


def test_laplace_tables_are_bit_exact() -> None:
    # Golden digest: the tables are part of the bitstream format and are
    # built with integer arithmetic only, so they must never change.
    digest = hashlib.sha256()
    for m, bits in [(15, 15), (4, 12), (40, 16)]:
        digest.update(laplace_cdfs_from_index(np.arange(129), m, bits).astype("<i8").tobytes())
    assert digest.hexdigest() == GOLDEN_TABLE_DIGEST


GOLDEN_TABLE_DIGEST = "08cb9df4a2b64f551afb7372807d3b1df3a8f77a69fad06a645a5b2ce7e2f642"


def test_encode_fields_equals_encode_bits_in_turn() -> None:
    rng = random.Random(11)
    for _ in range(200):
        fields = [(0, 0)] * rng.randint(0, 1)
        for _ in range(rng.randint(0, 12)):
            nb = rng.choice([1, 3, 8, 16, 17, 30])
            fields.append((rng.randrange(1 << nb), nb))
        prefix = rng.randrange(1 << 20)
        a, b = RangeEncoder(), RangeEncoder()
        for enc in (a, b):
            enc.encode_bits(prefix, 20)
        for value, nb in fields:
            a.encode_bits(value, nb)
        b.encode_fields(fields)
        assert a.finish() == b.finish() and a.tell() == b.tell()
        data = a.finish()
        c, d = RangeDecoder(data), RangeDecoder(data)
        widths = [20] + [nb for _, nb in fields]
        got = d.decode_fields(widths)
        assert got == [c.decode_bits(nb) for nb in widths]
        assert got[1:] == [v for v, _ in fields]
        assert c.tell() == d.tell() == a.tell()
    enc = RangeEncoder()
    enc.encode_bits(5, 3)
    before = enc.finish()
    with pytest.raises(ParameterError):
        enc.encode_fields([(1, 1), (4, 2)])
    assert enc.finish() == before and enc.tell() == 3


def test_encode_intervals_equals_encode_values() -> None:
    rng = np.random.default_rng(12)
    m = 6
    for trial in range(100):
        n = int(rng.integers(0, 60))
        index = rng.integers(0, 129, n)
        values = np.rint(rng.laplace(0.0, 0.3 + 4 * rng.random(), n)).astype(np.int64)
        if n and trial % 3 == 0:
            values[rng.integers(0, n)] = int(rng.choice([-1, 1])) * int(rng.integers(m + 1, 5000))
        tables = laplace_tables_from_index(index, m)
        a, b = RangeEncoder(), RangeEncoder()
        prefix = int(rng.integers(0, 1 << 13))
        for enc in (a, b):
            enc.encode_bits(prefix, 13)
        a.encode_values(values, tables)
        cdfs = laplace_cdfs_from_index(index, m)
        sym = np.where(np.abs(values) > m, 2 * m + 1, values + m)
        rows = np.arange(n)
        cums = cdfs[rows, sym]
        freqs = cdfs[rows, sym + 1] - cums
        escaped = np.flatnonzero(sym == 2 * m + 1)
        after = [(int(i), escape_fields(int(values[i]), m)) for i in escaped]
        b.encode_intervals(cums.tolist(), freqs.tolist(), 15, after)
        assert a.finish() == b.finish() and a.tell() == b.tell()
    with pytest.raises(ParameterError):
        RangeEncoder().encode_intervals([0, 1], [1, 1], 15, [(1, [(0, 1)]), (0, [(0, 1)])])
    with pytest.raises(ParameterError):
        escape_fields(3, 3)


def test_shipped_laplace_table_equals_computed() -> None:
    """codec/data/laplace-15-15.npy (a start-up cache) holds exactly the computed tables."""
    from codec.residual import rangecoder as rc

    path = rc._shipped_table_path(15, 15)
    assert path.is_file(), "regenerate with codec.residual.rangecoder.write_shipped_table()"
    rc._laplace_table.cache_clear()
    shipped = rc._laplace_table(15, 15)
    assert np.array_equal(shipped, rc._compute_laplace_table(15, 15))
    assert shipped.dtype == np.int64 and not shipped.flags.writeable
    # other arguments are computed, not read
    assert not rc._shipped_table_path(7, 12).exists()
    assert np.array_equal(rc._laplace_table(7, 12), rc._compute_laplace_table(7, 12))


# ---------------------------------------------------------------- many streams at once


def _state(dec: RangeDecoder) -> tuple[int, int, int]:
    return dec._val, dec._rng, dec._pos


def _fresh(frames: Sequence[bytes], heads: Sequence[int]) -> list[RangeDecoder]:
    """Decoders positioned after a raw field of ``heads[i]`` bits (as TCX's fields)."""
    decs = [RangeDecoder(f) for f in frames]
    for d, nb in zip(decs, heads, strict=True):
        d.decode_bits(nb)
    return decs


def _scalar_many(
    frames: Sequence[bytes], heads: Sequence[int], tab: np.ndarray, rows: np.ndarray, counts
) -> tuple[list[list[int] | str], list[tuple[int, int, int]]]:
    """Per frame: the values (or the error message) of decode_values, and the final state."""
    results: list[list[int] | str] = []
    states = []
    for d, row, c in zip(_fresh(frames, heads), rows, counts, strict=True):
        try:
            results.append(d.decode_values(tab[row[:c]]))
        except BitstreamError as exc:
            results.append(f"BitstreamError: {exc}")
        states.append(_state(d))
    return results, states


def _check_many(frames, heads, tab, rows, counts) -> list[BitstreamError | None]:
    """decode_values_many against the scalar loop: values, errors, states and tell()."""
    ref, ref_states = _scalar_many(frames, heads, tab, rows, counts)
    ref_tells = [
        8 * (pos - PRECISION // 8) + PRECISION + 1 - rng.bit_length() for _, rng, pos in ref_states
    ]
    decs = _fresh(frames, heads)
    values, errors = decode_values_many(decs, tab, rows, counts, collect_errors=True)
    assert values.shape == rows.shape and values.dtype == np.int64
    for i, (d, c) in enumerate(zip(decs, counts, strict=True)):
        if errors[i] is None:
            assert values[i, :c].tolist() == ref[i], f"frame {i}"
            assert not values[i, c:].any()
        else:
            assert isinstance(errors[i], BitstreamError)
            assert f"BitstreamError: {errors[i]}" == ref[i], f"frame {i}"
        assert _state(d) == ref_states[i], f"frame {i}"
        assert d.tell() == ref_tells[i]
    return errors


def _encode_frames(
    rng: np.random.Generator, tab: np.ndarray, n: int, width: int, m: int
) -> tuple[list[bytes], list[int], np.ndarray, np.ndarray, list[int]]:
    """n frames: a raw field, then counts[i] values with tables rows[i] (escapes, +-m, zeros)."""
    counts = rng.integers(0, width + 1, n)
    counts[: max(1, n // 10)] = 0  # empty frames
    counts[-1] = width
    rows = rng.integers(0, tab.shape[0], (n, width))
    frames, heads, tells = [], [], []
    for i in range(n):
        c = int(counts[i])
        scales = 2.0 ** (rows[i, :c] / 8.0 - 6.0)
        q = np.rint(rng.laplace(0.0, np.minimum(scales, 4.0 * m + 2.0))).astype(np.int64)
        if c:
            q[rng.integers(0, c, 2)] = [m, -m]
            if i % 3 == 0:  # escapes, some long
                q[rng.integers(0, c)] = int(rng.choice([-1, 1])) * int(rng.integers(m + 1, 1 << 20))
        enc = RangeEncoder()
        nb = int(rng.integers(0, 40))
        enc.encode_bits(int(rng.integers(0, 1 << nb)) if nb else 0, nb)
        enc.encode_values(q, tab[rows[i, :c]])
        data = enc.finish()
        if i % 4 == 1:
            data += bytes(int(rng.integers(1, 5)))  # zero padding decodes identically
        frames.append(data)
        heads.append(nb)
        tells.append(enc.tell())
    return frames, heads, rows, counts, tells


def _gap_stream(rng: np.random.Generator, tab: np.ndarray, rows: np.ndarray, head: int) -> bytes:
    """A stream whose decoding hits the unused top of the range at some symbol.

    The encoder codes symbols until its range is not a multiple of the total;
    the stream is then the top of its interval, where the next target is ``total``
    (random bytes land there with probability ``< 2**-32``).
    """
    total = int(tab[0, -1])
    enc = RangeEncoder()
    enc.encode_bits(0, head)
    for j, row in enumerate(rows[:-1]):
        enc.encode_values([int(rng.integers(-1, 2))], tab[[row]])
        if enc._rng % total and j >= 2:
            break
    else:
        raise AssertionError("no truncation in the range")
    top = enc._low + enc._rng - 1
    buf = bytearray(enc._buf)
    if top >> PRECISION:  # carry into the emitted bytes
        top -= 1 << PRECISION
        i = len(buf) - 1
        while buf[i] == 0xFF:
            buf[i] = 0
            i -= 1
        buf[i] += 1
    return bytes(buf) + top.to_bytes(PRECISION // 8, "big")


@pytest.mark.parametrize(("max_abs", "total_bits"), [(15, 15), (0, 12), (4, 16), (1, 4)])
def test_decode_values_many_equals_decode_values(max_abs: int, total_bits: int) -> None:
    rng = np.random.default_rng(max_abs * 100 + total_bits)
    tab = laplace_cdfs_from_index(np.arange(129), max_abs, total_bits)
    frames, heads, rows, counts, tells = _encode_frames(rng, tab, 150, 90, max_abs)
    assert _check_many(frames, heads, tab, rows, counts) == [None] * 150
    decs = _fresh(frames, heads)
    # CdfTables and unsigned arrays too
    values, _ = decode_values_many(
        decs, CdfTables(tab), rows.astype(np.uint8), counts.astype(np.uint16)
    )
    for i, d in enumerate(decs):
        assert d.tell() == tells[i]  # the encoder's
    flat = np.concatenate([values[i, : counts[i]] for i in range(150)])
    assert np.abs(flat).max() > max_abs + 1000  # long escapes were decoded
    assert np.sum(np.abs(flat) == max_abs) > 0
    # frames of the same length (the packer pads to B bytes), one of them full to the byte
    size = max(len(f) for f in frames)
    padded = [f.ljust(size, b"\0") for f in frames]
    assert _check_many(padded, heads, tab, rows, counts) == [None] * 150


def test_decode_values_many_narrow_tables_over_key_blocks() -> None:
    """The narrowest tables (their tails: buckets of several symbols, searched one by
    one) at every position, over several blocks of table keys and a partial one."""
    from codec.residual.rangecoder import _KEY_BLOCK

    rng = np.random.default_rng(17)
    tab = laplace_cdfs_from_index(np.arange(129), 15, 15)
    width = 2 * _KEY_BLOCK + 7
    frames, heads, rows, counts, _ = _encode_frames(rng, tab[:12], 80, width, 15)
    assert _check_many(frames, heads, tab[:12], rows, counts) == [None] * 80
    damaged = [f[: len(f) // 2] + b"\xff" * 6 if i % 5 == 0 else f for i, f in enumerate(frames)]
    errors = _check_many(damaged, heads, tab[:12], rows, counts)
    assert any(e is not None for e in errors)


@pytest.mark.parametrize("shift", [4, 8, 12, 15, 16])
def test_value_lookup_buckets_equal_a_binary_search(shift: int) -> None:
    """The bucket table of the values' symbol search (counted from the keys'
    buckets) equals its definition by searchsorted, with zero-frequency symbols
    (equal keys) and buckets that hold several entries."""
    from codec.residual.rangecoder import _ValueLookup

    rng = np.random.default_rng(shift)
    tables = [laplace_cdfs_from_index(np.arange(129), 15, 15)] if shift == 15 else []
    for _ in range(12):
        n, w = int(rng.integers(1, 30)), int(rng.integers(3, 40))
        freq = rng.integers(0, 4, (n, w - 1))
        cdf = np.cumsum(freq, axis=1) + np.arange(1, w)  # a few equal steps after rounding
        cdf = np.floor(cdf / cdf[:, -1:] * (1 << shift)).astype(np.int64)
        tables.append(np.concatenate((np.zeros((n, 1), dtype=np.int64), cdf), axis=1))
    for tab in tables:
        n_tables, width1 = tab.shape
        look = _ValueLookup(tab)
        b, stride = look.bucket_bits, look.stride
        keys = (tab + np.arange(n_tables)[:, None] * stride).ravel()
        starts = np.arange(n_tables * (stride >> b), dtype=np.int64) << b
        first = np.searchsorted(keys, starts, side="right")
        last = np.searchsorted(keys, starts + ((1 << b) - 1), side="right")
        want = np.where(last - first > 1, n_tables * width1 + 1, first)
        assert look.lut.dtype == want.dtype
        assert np.array_equal(look.lut, want)


def test_decode_values_many_ranges_on_the_renormalisation_thresholds() -> None:
    # power-of-two frequencies keep rng a power of two: it then lands exactly on
    # 2**48 and 2**40, where the decoder must (still) read one or two bytes
    tab = np.array([[0, 128, 192, 193, 1 << 15], [0, 1, 2, 66, 1 << 15]])  # M = 1
    rng = np.random.default_rng(4)
    frames, counts, heads = [], [], []
    rows = rng.integers(0, 2, (60, 50))
    for i in range(60):
        c = int(rng.integers(0, 51))
        q = rng.choice([-1, 0, 1], c) if i % 2 else rng.choice([-1, 0, 1, 2, -5], c)
        # rows[i] = 0: freqs 128, 64, 1 (escape 32575); rows[i] = 1: 1, 1, 64
        enc = RangeEncoder()
        enc.encode_bits(i, 6)
        enc.encode_values(q, tab[rows[i, :c]])
        frames.append(enc.finish())
        counts.append(c)
        heads.append(6)
    assert _check_many(frames, heads, tab, rows, np.array(counts)) == [None] * 60


def test_decode_values_many_frames_ending_on_a_byte() -> None:
    rng = np.random.default_rng(5)
    tab = laplace_cdfs_from_index(np.arange(129), 15, 15)
    frames, heads, rows, counts, tells = _encode_frames(rng, tab, 400, 40, 15)
    exact = [i for i in range(400) if tells[i] == 8 * len(frames[i]) and counts[i]]
    assert exact  # streams whose last symbol ends exactly on their last byte
    sel = np.array(exact + [0, 1, 2])
    got = _check_many(
        [frames[i] for i in sel], [heads[i] for i in sel], tab, rows[sel], counts[sel]
    )
    assert got == [None] * sel.size


def test_decode_values_many_corrupt_streams_fail_as_decode_values() -> None:
    rng = np.random.default_rng(9)
    kinds: dict[str, int] = {}
    for max_abs, width in [(15, 120), (0, 30), (2, 60)]:
        tab = laplace_cdfs_from_index(np.arange(129), max_abs, 15)
        frames, heads, rows, counts, _ = _encode_frames(rng, tab, 120, width, max_abs)
        damaged = []
        for i, f in enumerate(frames):
            if i % 4 == 0:
                f = f[: int(rng.integers(0, len(f) + 1))]  # truncated
            elif i % 4 == 1:
                f = rng.integers(0, 256, len(f) + 3, dtype=np.uint8).tobytes()  # garbage
            elif i % 4 == 2 and f:
                b = bytearray(f)
                b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
                f = bytes(b)
            elif i % 4 == 3 and counts[i] > 10:
                f = _gap_stream(rng, tab, rows[i, : counts[i]], heads[i])
            damaged.append(f)
        counts[5] = width
        damaged[5] = b"\xff" * 40  # an escape with an endless unary prefix (max_abs 0)
        for err in _check_many(damaged, heads, tab, rows, counts):
            if err is not None:
                kinds[str(err)] = kinds.get(str(err), 0) + 1
    assert kinds.get("range decoder target outside the coded range", 0) >= 3
    assert kinds.get("escape code too long", 0) >= 1


def test_decode_values_many_raises_first_failing_frame() -> None:
    tab = laplace_cdfs_from_index(np.arange(129), 0, 15)
    big = 128  # scale 2**10: escapes likely
    # frame 1: endless escape prefix; frame 3: a target outside the range
    bad = _gap_stream(np.random.default_rng(1), tab, np.zeros(30, dtype=np.int64), 0)
    frames = [b"", b"\xff" * 40, b"\x00", bad]
    rows = np.array([[big] * 30, [big] * 30, [0] * 30, [0] * 30])
    counts = np.array([30, 30, 30, 30])
    with pytest.raises(BitstreamError, match="escape code too long"):
        decode_values_many(_fresh(frames, [0] * 4), tab, rows, counts)
    with pytest.raises(BitstreamError, match="outside the coded range"):
        decode_values_many(_fresh(frames[2:], [0] * 2), tab, rows[2:], counts[2:])
    decs = _fresh(frames, [0] * 4)
    _, errors = decode_values_many(decs, tab, rows, counts, collect_errors=True)
    assert [e is None for e in errors] == [True, False, True, False]
    ref = RangeDecoder(b"\x00")
    assert ref.decode_values(tab[[0] * 30]) == [0] * 30
    assert _state(decs[2]) == _state(ref)


def test_decode_values_many_arguments() -> None:
    tab = laplace_cdfs_from_index(np.arange(129), 3, 12)
    frames = [b"\x12\x34", b"\x56"]
    rows = np.zeros((2, 4), dtype=np.int64)
    # nothing to decode: the decoders are untouched
    decs = _fresh(frames, [3, 5])
    before = [_state(d) for d in decs]
    values, errors = decode_values_many(decs, tab, rows, np.zeros(2, dtype=np.int64))
    assert values.shape == (2, 4) and not values.any() and errors == [None, None]
    assert [_state(d) for d in decs] == before
    values, errors = decode_values_many(
        [], tab, np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int64)
    )
    assert values.shape == (0, 4) and errors == []
    odd = tab.copy()
    odd[:, -1] += 1  # totals not a power of two
    for args in [
        (odd, rows, [1, 1]),
        (tab[:, :-1], rows, [1, 1]),  # an odd number of symbols
        (tab, rows, [1, 5]),  # count beyond the width
        (tab, rows, [-1, 1]),
        (tab, rows + 129, [1, 1]),  # no such table
        (tab, rows[:1], [1, 1]),  # shapes
        (tab, rows, [1.0, 1.0]),
        (tab.astype(float), rows, [1, 1]),
    ]:
        with pytest.raises(ParameterError):
            decode_values_many(_fresh(frames, [0, 0]), args[0], args[1], np.asarray(args[2]))
    with pytest.raises(ParameterError):
        decode_values_many([b"\x00"], tab, rows[:1], [1])  # type: ignore[list-item]


def test_tcx_decode_numpy_path_equals_scalar_path(monkeypatch, speech) -> None:
    """TCX.decode gives the same coefficients and the same errors on both paths."""
    import codec
    from codec.residual import tcx

    calls = []
    original = tcx.TCX.decode

    def spy(self, frames, *args, **kwargs):
        calls.append((self, list(frames), args, kwargs))
        return original(self, frames, *args, **kwargs)

    x, sr = speech
    monkeypatch.setattr(tcx.TCX, "decode", spy)
    codec.decode(codec.encode(x[: 3 * sr], sr, 13.2))
    monkeypatch.setattr(tcx.TCX, "decode", original)
    self, frames, args, kwargs = max(calls, key=lambda c: len(c[1]))
    assert len(frames) >= 100
    rng = np.random.default_rng(3)

    def run(frames: list[bytes], many: int) -> object:
        monkeypatch.setattr(tcx, "MANY_MIN_STREAMS", many)
        try:
            return original(self, frames, *args, **kwargs)
        except BitstreamError as exc:
            return str(exc)

    n_errors = 0
    for trial in range(12):
        damaged = list(frames)
        if trial:
            for i in rng.integers(0, len(frames), trial):
                b = bytearray(damaged[i])
                b[int(rng.integers(0, len(b)))] ^= 0xFF
                damaged[i] = bytes(b)
        a, b = run(damaged, 1), run(damaged, 10**9)
        if isinstance(b, str):
            n_errors += 1
            assert a == b
        else:
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1].lag, b[1].lag)
    assert 0 < n_errors < 12


_OUTSIDE = "range decoder target outside the coded range"


def test_escape_at_equals_the_bitwise_reference() -> None:
    """The escape decoder of decode_values_many (one function on ints, one byte in at
    most per raw bit) equals RangeDecoder._decode_escape_bits: value and state, and
    None exactly where the reference raises (targets outside the range, over-long
    prefixes), from states on the renormalisation threshold and at the end of data."""
    from codec.residual.rangecoder import _escape_at

    rnd = random.Random(11)
    bot = 1 << (PRECISION - 8)
    outcomes = set()
    for _ in range(20000):
        size = rnd.choice([0, 1, 3, 9, 30])
        kind = rnd.random()
        if kind < 0.2:
            data = b"\xff" * size  # long prefixes
        elif kind < 0.3:
            data = bytes(size)
        else:
            data = bytes(rnd.getrandbits(8) for _ in range(size))
        # (a bit halves rng: these reach bot, the renormalisation threshold, exactly)
        edge = rnd.choice([bot + 1, bot + 2, 2 * bot - 1, 2 * bot, 4 * bot + rnd.randrange(4)])
        rng = rnd.choice([rnd.randrange(bot + 1, (1 << PRECISION) + 1), edge, 1 << PRECISION])
        near_top = rng - rnd.randrange(2, 1 << 20)  # with 0xff bytes: long prefixes
        val = rnd.choice(
            [rnd.randrange(rng), rng - 1, rng - 2, rng >> 1, (rng >> 1) - 1, 0, near_top]
        )
        pos, m = rnd.randrange(size // 2 + 1), rnd.choice([0, 15, 200])
        dec = RangeDecoder(data)
        dec._val, dec._rng, dec._pos = val, rng, pos
        try:
            want: tuple[int, int, int, int] | None = (dec._decode_escape_bits(m), *_state(dec))
        except BitstreamError as exc:
            want = None
            outcomes.add(str(exc))
        outcomes.add(want is None)
        assert _escape_at(data, val, rng, pos, m) == want
    # every bit of a prefix landing rng on the threshold: val at k/16 of the range
    data = bytes(rnd.getrandbits(8) for _ in range(9))
    for rng in [(4 << j) * bot + d for j in range(4) for d in range(4)]:
        for k in range(17):
            for val in (k * rng // 16 - 1, k * rng // 16, k * rng // 16 + 1):
                if not 0 <= val < rng:
                    continue
                dec = RangeDecoder(data)
                dec._val, dec._rng, dec._pos = val, rng, 2
                try:
                    want = (dec._decode_escape_bits(15), *_state(dec))
                except BitstreamError:
                    want = None
                assert _escape_at(data, val, rng, 2, 15) == want
    assert outcomes == {True, False, "escape code too long", _OUTSIDE}


@pytest.mark.parametrize("n", [1, 40])
def test_lock_step_symbols_broadcast_equals_per_stream_tables(n: int) -> None:
    """LockStepDecoder.symbols with one table broadcast to every stream (a binary
    search) equals the same table given per stream (a comparison) and the scalar
    decode_symbol / decode_bits: symbols, bad streams and written-back states, on
    valid and damaged streams."""
    from codec.residual.rangecoder import LockStepDecoder

    rng = np.random.default_rng(n)
    cdfs = [
        np.array([0, 1, 5, 5, 9, 4096], dtype=np.int64),  # with a zero-frequency symbol
        np.concatenate(([0], np.sort(rng.choice(np.arange(1, 1 << 15), 200, replace=False)))),
        np.array([0, 1 << 12], dtype=np.int64),
    ]
    cdfs[1][-1] = 1 << 15
    plan = [("s", 1), ("b", 5), ("s", 0), ("s", 2), ("s", 1), ("b", 16), ("s", 0)]
    frames = []
    for _ in range(n):
        enc = RangeEncoder()
        for kind, a in plan:
            if kind == "s":
                cdf = cdfs[a].tolist()
                coded = np.flatnonzero(np.diff(cdfs[a]))  # (not the zero-frequency symbol)
                enc.encode_symbol(int(rng.choice(coded)), cdf)
            else:
                enc.encode_bits(int(rng.integers(0, 1 << a)), a)
        frames.append(enc.finish())
    cases = [frames]
    for _ in range(6):
        damaged = [bytearray(f) for f in frames]
        for f in damaged:
            if f and rng.random() < 0.5:
                f[int(rng.integers(0, len(f)))] = int(rng.integers(0, 256))
            elif rng.random() < 0.2:
                f[:] = b"\xff" * (len(f) + 2)
        cases.append([bytes(f) for f in damaged])
    for case in cases:
        results = []
        for broadcast in (True, False):
            decs = [RangeDecoder(f) for f in case]
            lock = LockStepDecoder(decs)
            got = []
            for kind, a in plan:
                if kind == "b":
                    got.append(lock.bits(a).tolist())
                    continue
                tab = np.broadcast_to(cdfs[a], (n, cdfs[a].size))
                got.append(lock.symbols(tab if broadcast else tab.copy()).tolist())
            lock.write_back()
            results.append((got, lock.bad.tolist(), [_state(d) for d in decs]))
        assert results[0] == results[1]
        got, bad, states = results[0]
        for i, f in enumerate(case):  # the scalar decoder: same symbols, or it raises
            dec = RangeDecoder(f)
            try:
                ref = [
                    dec.decode_symbol(cdfs[a].tolist()) if kind == "s" else dec.decode_bits(a)
                    for kind, a in plan
                ]
            except BitstreamError:
                assert bad[i]
                continue
            assert not bad[i]
            assert [col[i] for col in got] == ref
            assert states[i] == _state(dec)


def test_renormalisation_bytes_from_the_exponent_of_rng() -> None:
    """``decode_values_many`` counts the bytes a symbol reads in from the float64
    exponent of ``rng``; that count equals the scalar decoder's, ``#{thresholds >=
    rng}``, at and around every power of two and at random values."""
    from codec.residual import rangecoder as rc

    near = {(1 << k) + d for k in range(63) for d in range(-3, 4)}
    rng = np.array(
        sorted(x for x in near if 1 <= x < 1 << 57)
        + np.random.default_rng(1).integers(1 << 32, 1 << 57, 20_000).tolist(),
        dtype=np.int64,
    )
    want = rc._RENORM_BYTES[rc._RENORM_BELOW_I.searchsorted(rng)]
    exponent = (rng.astype(np.float64).view(np.int64) - 1) >> 52
    assert np.array_equal(rc._RENORM_BYTES_E[exponent], want)
    assert np.array_equal(rc._RENORM_SHL_E[exponent], 8 * want)
