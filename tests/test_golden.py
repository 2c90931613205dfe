"""Golden vectors: a committed input encodes to committed bytes, which decode to committed audio.

Regenerate with ``python tests/golden/make_golden.py`` when a change is meant to
alter the bitstream or the decoded signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import codec
from codec import postfilter

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = [("golden_8k", 8.0), ("golden_24p4k", 24.4)]


@pytest.mark.parametrize(("name", "rate"), CASES)
def test_encoder_reproduces_golden_bytes(name, rate):
    audio, sr = sf.read(GOLDEN / "input.wav", dtype="float64")
    expected = (GOLDEN / f"{name}.svq").read_bytes()
    assert codec.encode(audio, sr, rate) == expected


@pytest.mark.parametrize(("name", "rate"), CASES)
def test_decoder_reproduces_golden_audio(name, rate):
    """The plain decoder (the format's): no post-filter."""
    y, sr = codec.decode((GOLDEN / f"{name}.svq").read_bytes(), enhance=False)
    ref = np.load(GOLDEN / f"{name}_decoded.npy")
    assert sr == 16000 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)


@pytest.mark.parametrize(("name", "rate"), CASES)
def test_post_filtered_decoder_reproduces_golden_audio(name, rate):
    """The shipped post-filter's output (decoder side; regenerated with its weights)."""
    path = GOLDEN / f"{name}_enhanced.npy"
    if postfilter.shipped_weights() is None:
        pytest.skip("no post-filter weights shipped")
    y, _ = codec.decode((GOLDEN / f"{name}.svq").read_bytes(), enhance=True)
    ref = np.load(path)
    assert y.shape == ref.shape
    assert not np.allclose(ref, np.load(GOLDEN / f"{name}_decoded.npy"), atol=1e-3)
    np.testing.assert_allclose(y, ref, atol=1e-5)
