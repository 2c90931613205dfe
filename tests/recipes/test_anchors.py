"""Live anchors: time alignment and measured bitrate on real speech (skip without the tools)."""

from __future__ import annotations

import numpy as np
import pytest

from codec.metrics import align, pesq_wb
from recipes import anchors as A

SVQ_RATES = [8.0, 9.6, 13.2, 16.4, 24.4, 32.0]
CASES = [(name, r) for name in A.ANCHORS for r in A.anchor_rates(name, SVQ_RATES)]


def _need(name: str) -> None:
    note = A.missing_note(name)
    if note is not None:
        pytest.skip(note)


@pytest.mark.parametrize(("name", "kbps"), CASES, ids=[f"{n}-{r:g}" for n, r in CASES])
def test_anchor_output_is_aligned_and_at_its_rate(name, kbps, speech):
    _need(name)
    x, sr = speech
    x = x[: 4 * sr]
    out = A.run_anchor(name, x, kbps)
    assert out.audio.shape == x.shape
    _, lag = align(x, out.audio, max_lag=800)
    assert abs(lag) <= 1, f"{name} at {kbps:g} kbit/s is {lag} samples off"
    assert A.nominal_ok(name, kbps, out.payload_kbps), out.payload_kbps
    assert out.file_kbps > out.payload_kbps
    assert pesq_wb(x, out.audio, sr) > 3.0


@pytest.mark.parametrize("name", A.ANCHORS)
def test_alignment_holds_on_a_second_speaker(name, speech_female):
    _need(name)
    x, sr = speech_female
    x = x[: 3 * sr]
    kbps = A.anchor_rates(name, [13.2])[0]
    out = A.run_anchor(name, x, kbps)
    raw_corr = float(np.dot(x, out.audio) / np.sqrt(np.dot(x, x) * np.dot(out.audio, out.audio)))
    assert abs(align(x, out.audio)[1]) <= 1
    assert raw_corr > 0.5  # waveform-matching at lag 0, not just a peak somewhere


def test_rates_and_columns():
    assert A.anchor_rates("amrwb", SVQ_RATES) == [8.85, 12.65, 15.85, 23.85]
    assert A.anchor_rates("opus-cbr", [8.0, 13.2]) == [8.0, 13.2]
    assert A.column_rate("amrwb", 12.65, SVQ_RATES) == 13.2
    assert A.column_rate("amrwb", 23.85, [32.0]) is None
    with pytest.raises(ValueError, match="unknown anchor"):
        A.missing_note("g729")


def test_missing_tool_gives_one_line_note(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    note = A.missing_note("opus-cbr")
    assert note is not None and "\n" not in note and "apt-get" in note
    with pytest.raises(RuntimeError, match="opusenc"):
        A.run_anchor("opus-cbr", np.zeros(1600), 8.0)
