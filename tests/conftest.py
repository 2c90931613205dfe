"""Shared fixtures: real speech from samples/ and the shared data set when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import settings

# CI runs the property tests on fixed examples (a failure there can be rerun
# and its example is printed) and without a per-example deadline (a loaded
# 2-core machine is not a slow implementation); local runs stay random.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

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
