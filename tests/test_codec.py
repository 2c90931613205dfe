"""End-to-end tests of the codec: encode/decode API, bitstream sizes, alignment, errors."""

from __future__ import annotations

import numpy as np
import pytest

import codec
from codec.bitstream import FORMAT_VERSION, HEADER_BYTES, reseal, unpack_file
from codec.errors import AudioInputError, BitstreamError, ParameterError
from codec.metrics import align, pesq_wb
from codec.modes import BITRATES_KBPS, mode_for


@pytest.fixture(scope="module")
def short_speech(speech_female):
    x, sr = speech_female
    return x[: 2 * sr], sr


@pytest.mark.parametrize("bitrate", BITRATES_KBPS)
def test_round_trip_every_bitrate(short_speech, bitrate):
    x, sr = short_speech
    data = codec.encode(x, sr, bitrate)
    header, frames = unpack_file(data)
    fb = mode_for(bitrate).frame_bytes
    assert fb == round(bitrate * 1000 * 0.02 / 8)
    assert header.frame_bytes == fb and all(len(f) == fb for f in frames)
    blocks = -(-header.frame_count // 50)
    assert len(data) == 76 + header.frame_count * fb + 4 * blocks  # header, frames, CRCs
    y, rate = codec.decode(data)
    assert rate == 16000 and y.shape == x.shape
    # time-aligned: the cross-correlation peaks at lag 0
    _, lag = align(x, y, max_lag=320)
    assert lag == 0
    assert np.corrcoef(x, y)[0, 1] > 0.5


def test_quality_increases_with_bitrate(short_speech):
    x, sr = short_speech
    scores = [pesq_wb(x, codec.decode(codec.encode(x, sr, b))[0], sr) for b in (8.0, 32.0)]
    assert scores[1] > scores[0] + 0.5
    assert scores[0] > 1.8  # far above what a broken codec scores (~1.1)


def test_deterministic(short_speech):
    x, sr = short_speech
    assert codec.encode(x, sr, 13.2) == codec.encode(x, sr, 13.2)
    data = codec.encode(x, sr, 13.2)
    np.testing.assert_array_equal(codec.decode(data)[0], codec.decode(data)[0])


def test_any_rate_and_channels(short_speech):
    from codec.audio import resample

    x, sr = short_speech
    x44 = resample(x, sr, 44100)
    stereo = np.c_[x44, x44]
    y, rate = codec.decode(codec.encode(stereo, 44100, 16.4))
    assert rate == 16000 and abs(y.size - x.size) <= 1


def test_short_and_silent_input():
    for n in (1, 100, 320, 321):
        y, _ = codec.decode(codec.encode(np.zeros(n), 16000, 8))
        assert y.shape == (n,) and np.all(np.isfinite(y))
    y, _ = codec.decode(codec.encode(np.zeros(0), 16000, 8))
    assert y.shape == (0,)


def test_bad_parameters(short_speech):
    x, sr = short_speech
    with pytest.raises(ParameterError, match="supported: 8, 9.6, 13.2, 16.4, 24.4, 32"):
        codec.encode(x, sr, 12.0)
    with pytest.raises(AudioInputError, match="NaN"):
        codec.encode(np.r_[x[:100], np.nan], sr, 8)
    with pytest.raises(ParameterError):
        codec.encode(x, sr, 8, codebook="/nonexistent/file.cb")


def test_corrupt_streams_raise_bitstream_errors(short_speech):
    x, sr = short_speech
    data = codec.encode(x, sr, 13.2)
    with pytest.raises(BitstreamError, match="block 0 .* CRC"):
        codec.decode(data[:200] + bytes([data[200] ^ 0x10]) + data[201:])
    with pytest.raises(BitstreamError, match="header is damaged"):
        codec.decode(data[: HEADER_BYTES - 1] + bytes([data[HEADER_BYTES - 1] ^ 1]) + data[76:])
    with pytest.raises(BitstreamError, match="truncated"):
        codec.decode(data[:-7])
    with pytest.raises(BitstreamError, match="magic"):
        codec.decode(b"RIFF" + data[4:])
    with pytest.raises(BitstreamError, match="version"):
        codec.decode(data[:4] + bytes([FORMAT_VERSION + 1]) + data[5:])


def test_unknown_codebook_hash_is_named(short_speech):
    x, sr = short_speech
    data = bytearray(codec.encode(x, sr, 8))
    data[56:72] = b"\xab" * 16  # the codebook hash field
    forged = reseal(bytes(data))
    with pytest.raises(BitstreamError, match="unknown codebook abab"):
        codec.decode(forged)


def test_info(short_speech):
    x, sr = short_speech
    st = codec.info(codec.encode(x, sr, 24.4))
    assert st.bitrate_kbps == 24.4 and st.frame_bytes == 61
    assert st.sample_count == x.size and st.duration_s == pytest.approx(2.0)
    assert st.format_version == 8 and st.delay_ms == 30.0
    assert st.coded_band_hz == 7000.0  # 24.4 kbit/s codes 0-7 kHz by value


def test_format_1_stream_gets_a_clear_error(short_speech):
    x, sr = short_speech
    data = codec.encode(x, sr, 13.2)
    for version in (1, 2):
        old = reseal(data[:4] + bytes([version]) + data[5:])
        with pytest.raises(
            BitstreamError, match=f"version {version} files were written by svq 0.{version}"
        ):
            codec.decode(old)


@pytest.mark.parametrize("variant", ["avq", "rvq", "pvq", "vq"])
def test_every_envelope_variant_and_paper_setting(short_speech, variant):
    x, sr = short_speech
    y, _ = codec.decode(codec.encode(x, sr, 9.6, envelope=variant))
    assert y.shape == x.shape
    if variant != "vq":  # the paper's 16-bit, 4-codebook setting, shipped by name
        data = codec.encode(x, sr, 9.6, codebook=f"{variant}-4x4")
        assert codec.info(data).envelope_id == f"{variant}-4x4"
        assert codec.decode(data)[0].shape == x.shape


def test_broken_codebook_on_search_path_is_skipped(short_speech, tmp_path, monkeypatch):
    from codec.analysis import lsf_features, lsf_weights
    from codec.quantizers import train_quantizer

    x, sr = short_speech
    lsf = lsf_features(x, sr)
    q = train_quantizer(
        lsf, variant="rvq", stages=2, bits=3, method="kmeans", weights=lsf_weights(lsf)
    )
    q.save(tmp_path / "b_good.cb")
    (tmp_path / "a_broken.cb").write_bytes(b"not a codebook")
    data = codec.encode(x, sr, 8, codebook=tmp_path / "b_good.cb")
    monkeypatch.setenv("SVQ_CODEBOOK_PATH", str(tmp_path))
    y, _ = codec.decode(data)  # found on the path, after skipping the broken file
    assert y.shape == x.shape
