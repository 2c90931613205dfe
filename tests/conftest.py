"""Shared fixtures: real speech from samples/ and the shared data set when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED_SPEECH = ROOT.parent / "shared" / "data" / "speech"


@pytest.fixture(scope="session")
def speech() -> tuple[np.ndarray, int]:
    """A real speech excerpt (male, 6 s, 16 kHz) as float64."""
    x, sr = sf.read(SAMPLES / "librispeech_1034_male.wav", dtype="float64")
    return x, sr


@pytest.fixture(scope="session")
def speech_female() -> tuple[np.ndarray, int]:
    x, sr = sf.read(SAMPLES / "vctk_p233_female.wav", dtype="float64")
    return x, sr
