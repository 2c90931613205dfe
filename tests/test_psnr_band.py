"""pSNR of band-limited references (issue 15): refused by default, bounded with a noise floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

import codec
from codec.audio import resample
from codec.errors import ParameterError
from codec.metrics import band_limited, psnr


@pytest.fixture(scope="module")
def narrowband(speech_female):
    x, rate = speech_female
    return resample(resample(x, rate, 8000), 8000, 16000)  # an 8 kHz source, as encode sees it


def test_band_limited_detection(speech, speech_female, narrowband):
    assert not band_limited(speech[0]) and not band_limited(speech_female[0])
    assert band_limited(narrowband)
    assert not band_limited(np.zeros(320))


def test_narrowband_reference_is_refused_without_a_noise_floor(narrowband):
    dec, _ = codec.decode(codec.encode(narrowband, 16000, 13.2))
    with pytest.raises(ParameterError, match="4.5 kHz"):
        psnr(narrowband, dec, 16000)
    # the same call at 8 kHz (the source's own rate) is refused too
    with pytest.raises(ParameterError, match="noise_floor_db"):
        psnr(resample(narrowband, 16000, 8000), resample(dec, 16000, 8000), 8000)


def test_noise_floor_gives_a_bounded_score(speech_female, narrowband):
    x, rate = speech_female
    wide = psnr(x, codec.decode(codec.encode(x, rate, 13.2))[0], rate)
    dec, _ = codec.decode(codec.encode(narrowband, 16000, 13.2))
    floored = psnr(narrowband, dec, 16000, noise_floor_db=-40)
    unguarded = psnr(narrowband, dec, 16000, noise_floor_db=-90)  # the default's floor
    assert unguarded < 0.0 < floored  # the absurd value, and a plausible one
    assert math.isfinite(floored) and abs(floored - wide) < 6.0


def test_default_definition_is_unchanged_for_wideband(speech_female):
    x, rate = speech_female
    dec, _ = codec.decode(codec.encode(x, rate, 13.2))
    assert psnr(x, dec, rate) == psnr(x, dec, rate, noise_floor_db=-90)
