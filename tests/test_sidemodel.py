"""The side-field tables (codec/residual/sidemodel.py; format 4 on)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import codec
from codec.bitstream import FORMAT_VERSION, check_file
from codec.errors import ParameterError
from codec.modes import MODES
from codec.pipeline import Tools, residual_coder
from codec.registry import find_envelope
from codec.residual import sidemodel
from codec.residual.rangecoder import RangeDecoder, RangeEncoder

SHIPPED_SHA256 = "0792a8fbc9049944e14b8d912015c894f7928e14769a56e42ddee712f9b988cb"


def test_shipped_tables_are_the_formats() -> None:
    """The tables are part of format 8: changing them needs a new format version."""
    assert FORMAT_VERSION == 8
    digest = hashlib.sha256(sidemodel.SHIPPED_PATH.read_bytes()).hexdigest()
    assert digest == SHIPPED_SHA256
    doc = json.loads(sidemodel.SHIPPED_PATH.read_text())
    assert doc["format"] == 8 and set(doc["modes"]) == {f"{r:g}" for r in MODES}


@pytest.mark.parametrize("rate", list(MODES))
def test_every_table_is_complete(rate: float) -> None:
    cb = MODES[rate].coded_bins
    model = sidemodel.shipped(f"{rate:g}", cb)
    assert ("hf" in model.fields) == (cb < 320)
    for f in model.fields:
        bits = model.symbol_bits(f)
        assert bits.shape[1] == sidemodel.n_symbols(f, cb)
        # no symbol impossible, none more than 6 bits above its raw width
        assert np.all(np.isfinite(bits))
        assert bits.max() <= sidemodel.RAW_BITS[f] + 6.0 + 1e-9


def _random_fields(rng: np.random.Generator, cb: int, pitch: bool) -> dict[str, int]:
    on = int(rng.integers(2)) if pitch else 0
    v = {
        "gain": int(rng.integers(256)),
        "last": int(rng.integers(cb // 8 + 1)),
        "kappa": int(rng.integers(32)),
        "noise": int(rng.integers(8)),
        "hf": int(rng.integers(16)) if cb < 320 else 0,
    }
    if pitch:
        v.update(pitch_on=on, pitch_lag=int(rng.integers(256)) if on else 0)
        v["pitch_gain"] = int(rng.integers(8)) if on else 0
    return v


@pytest.mark.parametrize("rate", [8.0, 13.2, 32.0])
@pytest.mark.parametrize("raw", [False, True])
def test_round_trip_and_cost(rate: float, raw: bool) -> None:
    """Any field values come back; the encoder's cost is the coded information."""
    cb = MODES[rate].coded_bins
    side = sidemodel.RawSide(cb) if raw else sidemodel.shipped(f"{rate:g}", cb)
    rng = np.random.default_rng(3)
    for k in range(300):
        pitch = k % 5 != 0
        v = _random_fields(rng, cb, pitch)
        enc = RangeEncoder()
        enc.encode_bits(5, 3)  # something before, as the envelope
        side.write(enc, v)
        enc.encode_bits(1, 1)
        expected = 3.0 + 1.0 + float(side.cost({f: np.array([v[f]]) for f in v})[0])
        if pitch:
            on, lag, g = (np.array([v[f]]) for f in ("pitch_on", "pitch_lag", "pitch_gain"))
            expected += float(side.pitch_cost(on, lag, g)[0])
        assert enc.bits_used() == pytest.approx(expected, abs=1e-4)
        data = enc.finish()
        dec = RangeDecoder(data)
        assert dec.decode_bits(3) == 5
        got = side.read(dec, pitch=pitch)
        assert dec.decode_bits(1) == 1
        for f, value in v.items():
            assert got[f] == value, (f, v)
        if not pitch:
            assert got["pitch_on"] == 0


def test_tables_from_counts() -> None:
    cb = 80
    rng = np.random.default_rng(0)
    counts = {}
    for f in sidemodel.FIELDS:
        n = sidemodel.n_symbols(f, cb)
        ctx = 1 if f in ("pitch_on", "pitch_lag", "pitch_gain", "gain") else 8
        counts[f] = rng.integers(0, 50, (ctx, n)) * (rng.random((ctx, n)) < 0.5)
    counts["kappa"][3] = 0  # a context never seen: backs off to the field's distribution
    counts["kappa"][2, 7] = 10_000
    t1 = sidemodel.tables_from_counts(counts, cb)
    t2 = sidemodel.tables_from_counts(counts, cb)
    assert t1 == t2
    for rows in t1.values():
        for r in rows:
            assert sum(r) == 1 << sidemodel.TOTAL_BITS and min(r) >= 1
    assert int(np.argmax(t1["kappa"][2])) == 7
    marg = np.asarray(counts["kappa"]).sum(axis=0)
    assert int(np.argmax(t1["kappa"][3])) == int(np.argmax(marg))
    model = sidemodel.ModelSide(t1, cb)
    assert set(model.fields) == set(sidemodel.FIELDS)
    with pytest.raises(ParameterError, match="kappa"):
        sidemodel.tables_from_counts({**counts, "kappa": np.ones((8, 5))}, cb)
    bad = {**t1, "gain": [[1] * 256]}
    with pytest.raises(ParameterError, match="gain"):
        sidemodel.ModelSide(bad, cb)


def test_unknown_mode() -> None:
    with pytest.raises(ParameterError, match="no shipped side model"):
        sidemodel.shipped("11", 80)


def _fields(data: bytes, rate: float, tools: Tools) -> dict[str, np.ndarray]:
    header, frames, _ = check_file(data)
    tcx = residual_coder(rate, tools)
    _, fields, _ = tcx.read_side(frames, find_envelope(header.codebook_hash, ()).field_bits)
    return fields


@pytest.mark.parametrize("rate", [8.0, 13.2])
def test_the_saved_bits_go_to_the_spectrum(speech, rate: float) -> None:
    """On real speech the modelled side fields leave more bits to the values:
    frames are coded with finer steps than with the raw fields, and the
    ablation switch still decodes its own streams."""
    x, sr = speech
    model = codec.encode(x, sr, rate)
    raw_tools = Tools(side_model=False)
    raw = codec.encode(x, sr, rate, tools=raw_tools)
    assert len(model) == len(raw)
    g_model = _fields(model, rate, Tools())["gain"]
    g_raw = _fields(raw, rate, raw_tools)["gain"]
    assert g_model.mean() < g_raw.mean() - 0.3  # finer by a third of a 0.75 dB step or more
    y_raw, _ = codec.decode(raw, tools=raw_tools)
    y, _ = codec.decode(model)
    ref = x[: len(y)]
    err = float(np.sum((y - ref) ** 2))
    assert err < float(np.sum((y_raw - ref) ** 2))


def test_raw_widths_are_the_coders() -> None:
    from codec.residual import tcx

    raw = sidemodel.RAW_BITS
    assert raw["gain"] == tcx.GAIN_BITS and raw["kappa"] == tcx.KAPPA_BITS
    assert raw["noise"] == tcx.NOISE_BITS and raw["hf"] == tcx.HF_BITS
    assert raw["last"] == tcx.LAST_BITS
    assert sidemodel.RawSide(80).max_bits() == sum(raw.values())
