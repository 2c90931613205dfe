"""A predictive envelope codebook in the codec (opt-in with --codebook / codebook=).

Small codebooks are trained here from real speech (k-means, 3 x 4 bits): the
predictor state runs through the stream in order, encoder and decoder states
agree bit for bit, the output does not depend on chunking or block size, and
after lost frames the decoder recovers (MA: after the next received frame;
AR with a safety net: at the next safety-net frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import codec
from codec.analysis import lsf_features
from codec.bitstream import CHECK_FRAMES, pack_file, unpack_file
from codec.cli import main
from codec.errors import BitstreamError, ParameterError
from codec.pipeline import StreamDecoder, StreamEncoder
from codec.quantizers import train_predictive, train_quantizer
from codec.registry import hash_bytes, load_envelope, shipped_codebooks
from codec.residual.rangecoder import RangeDecoder

RATE = 13.2


@pytest.fixture(scope="module")
def books(speech, speech_female, tmp_path_factory):
    """Paths of an MA codebook and an AR codebook with a safety net."""
    mats = [lsf_features(x, sr) for x, sr in (speech, speech_female)]
    x = np.concatenate(mats)
    offsets = [0, len(mats[0]), len(x)]
    folder = tmp_path_factory.mktemp("pred")
    out = {}
    for kind, safety in (("ma", False), ("ar", True)):
        pq = train_predictive(
            x, offsets, variant="rvq", stages=3, bits=4, method="kmeans",
            kind=kind, safety_net=safety,
        )  # fmt: skip
        out[kind] = folder / f"{kind}.cb"
        pq.save(out[kind])
    return out


@pytest.fixture(scope="module")
def streams(speech, books):
    """The speech excerpt encoded with each codebook (bytes)."""
    x, sr = speech
    return {kind: codec.encode(x, sr, RATE, codebook=path) for kind, path in books.items()}


def _snr(x, y):
    return 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2))


@pytest.mark.parametrize("kind", ["ma", "ar"])
def test_round_trip(speech, books, streams, kind):
    x, sr = speech
    data = streams[kind]
    env = load_envelope(books[kind])
    assert env.predictive
    h = codec.info(data)
    assert h.envelope_id == kind and h.codebook_hash == hash_bytes(env.content_hash).hex()
    y, rate = codec.decode(data, codebooks=[books[kind]])
    assert rate == 16000 and y.shape == x.shape
    # a memoryless shipped codebook of the mode, for scale
    ref, _ = codec.decode(codec.encode(x, sr, RATE))
    assert _snr(x, y) > _snr(x, ref) - 3.0


@pytest.mark.parametrize("kind", ["ma", "ar"])
def test_encoder_and_decoder_states_agree_frame_by_frame(speech, books, streams, kind):
    x, sr = speech
    enc = StreamEncoder(sr, RATE, codebook=books[kind], block_frames=1)
    header, _ = unpack_file(streams[kind])
    dec = StreamDecoder(header, [books[kind]], block_frames=1)
    frames = []
    for i in range(0, len(x), 320):
        for fr in enc.push(x[i : i + 320]):
            frames.append(fr)
            dec.decode([fr])
            assert np.array_equal(dec._env_state.state, enc._env_state.state)
            assert np.array_equal(dec._env_state.last, enc._env_state.last)
    frames += enc.finish()
    assert pack_file(enc.header(), frames) == streams[kind]


def _chunks(x, rng, largest):
    i = 0
    while i < len(x):
        c = int(rng.integers(1, largest))
        yield x[i : i + c]
        i += c


def test_encoder_output_does_not_depend_on_chunking_or_block_size(speech, books, streams):
    x, sr = speech
    x = np.resize(x, 2 * 100 * 320 + 8 * 320 + 123)  # crosses two blocks of 100
    whole = codec.encode(x, sr, RATE, codebook=books["ar"])
    rng = np.random.default_rng(5)
    for block, largest in ((1, 700), (7, 5000), (100, 40000)):
        enc = StreamEncoder(sr, RATE, codebook=books["ar"], block_frames=block)
        frames = []
        for chunk in _chunks(x, rng, largest):
            frames += enc.push(chunk)
        frames += enc.finish()
        assert pack_file(enc.header(), frames) == whole, block


@pytest.mark.parametrize("kind", ["ma", "ar"])
def test_decoder_output_does_not_depend_on_grouping_or_block_size(books, streams, kind):
    data = streams[kind]
    header, frames = unpack_file(data)
    whole, _ = codec.decode(data, codebooks=[books[kind]])
    lost = np.zeros(len(frames), dtype=bool)
    lost[[20, 99, 100, 101, 160]] = True
    given: list[bytes | None] = [None if lost[i] else fr for i, fr in enumerate(frames)]
    ref = StreamDecoder(header, [books[kind]])
    ref.decode(given)
    rng = np.random.default_rng(1)
    for block, largest in ((1, 3), (13, 40), (100, 400)):
        dec = StreamDecoder(header, [books[kind]], block_frames=block)
        out = [dec.decode(group) for group in _chunks(frames, rng, largest)]
        out.append(dec.flush())
        assert np.array_equal(np.concatenate(out), whole), block
        # with lost frames, the predictor's path does not depend on the blocks either
        # (the concealed audio does, as with a memoryless codebook)
        dec = StreamDecoder(header, [books[kind]], block_frames=block)
        for group in _chunks(given, rng, largest):
            dec.decode(group)
        assert np.array_equal(dec._env_state.state, ref._env_state.state), block
        assert dec.lost_frames == ref.lost_frames, block


def _safety_flags(frames):
    return np.array([RangeDecoder(fr).decode_bits(1) for fr in frames])


@pytest.mark.parametrize("kind", ["ma", "ar"])
def test_decoder_recovers_after_a_loss(speech, books, streams, kind):
    data = streams[kind]
    header, frames = unpack_file(data)
    clean, _ = codec.decode(data, codebooks=[books[kind]])
    lost = np.zeros(len(frames), dtype=bool)
    lost[60:63] = True
    y, _ = codec.decode(data, codebooks=[books[kind]], lost=lost)
    if kind == "ma":
        exact_from = 64  # frame 63 moves the state on, 64 decodes exactly
    else:
        flags = _safety_flags(frames)
        assert 0 < flags.mean() < 1  # the encoder chooses per frame
        exact_from = 63 + int(np.argmax(flags[63:] == 1))
    diff = np.flatnonzero(y != clean)
    assert diff.size and diff[0] >= 59 * 320
    # the output re-converges bit for bit once the state is exact, as soon as a
    # memoryless stream re-converges after losing every frame up to there (the
    # residual's concealment and the pitch post-filter recover over a few frames)
    x, sr = speech
    plain = codec.encode(x, sr, RATE)
    mask = np.zeros(len(frames), dtype=bool)
    mask[60:exact_from] = True
    ref = np.flatnonzero(codec.decode(plain, lost=mask)[0] != codec.decode(plain)[0])
    assert diff[-1] <= ref[-1] + 320
    # and the decoder's state is the encoder's again
    enc_dec = StreamDecoder(header, [books[kind]])
    enc_dec.decode(frames)
    dec = StreamDecoder(header, [books[kind]])
    dec.decode([None if lost[i] else fr for i, fr in enumerate(frames)])
    assert dec._env_state.exact
    assert np.array_equal(dec._env_state.state, enc_dec._env_state.state)


def test_state_is_inexact_until_recovery(books, streams):
    header, frames = unpack_file(streams["ma"])
    ref = StreamDecoder(header, [books["ma"]], block_frames=1)
    dec = StreamDecoder(header, [books["ma"]], block_frames=1)
    for i, fr in enumerate(frames[:40]):
        ref.decode([fr])
        dec.decode([None if i == 30 else fr])
        same = np.array_equal(dec._env_state.state, ref._env_state.state)
        assert same == (i != 30) and dec._env_state.exact == (i != 30), i
    assert dec.lost_frames == 2  # the lost frame and the one decoded from its state


def test_damaged_block_is_concealed_like_lost_frames(books, streams):
    data = streams["ma"]
    header, frames = unpack_file(data)
    bad = bytearray(data)
    at = data.find(frames[70])
    bad[at + 5] ^= 0xFF
    with pytest.raises(BitstreamError):
        codec.decode(bytes(bad), codebooks=[books["ma"]])
    y, _ = codec.decode(bytes(bad), codebooks=[books["ma"]], on_damage="conceal")
    lost = np.zeros(len(frames), dtype=bool)
    lost[CHECK_FRAMES : 2 * CHECK_FRAMES] = True
    ref, _ = codec.decode(data, codebooks=[books["ma"]], lost=lost)
    assert np.array_equal(y, ref)


def test_wrong_kind_of_codebook_is_a_one_line_error(speech, books, streams, tmp_path):
    x, sr = speech
    memoryless = shipped_codebooks()["rvq-4x6"]
    with pytest.raises(BitstreamError) as err:
        codec.decode(streams["ma"], codebooks=[memoryless])
    msg = str(err.value)
    assert "\n" not in msg and "memoryless" in msg and "does not match" in msg
    own = tmp_path / "own.cb"  # a memoryless codebook that is not shipped
    train_quantizer(lsf_features(x, sr), variant="rvq", stages=2, bits=4).save(own)
    plain = codec.encode(x[:16000], sr, RATE, codebook=own)
    with pytest.raises(BitstreamError) as err:
        codec.decode(plain, codebooks=[books["ma"]])
    msg = str(err.value)
    assert "\n" not in msg and "ma-predictive" in msg and "does not match" in msg


def test_ar_without_safety_net_is_refused(speech, tmp_path):
    x, sr = speech
    pq = train_predictive(
        lsf_features(x, sr), variant="rvq", stages=2, bits=4, method="kmeans", kind="ar"
    )
    path = tmp_path / "ar.cb"
    pq.save(path)
    with pytest.raises(ParameterError, match="safety net"):
        codec.encode(x, sr, RATE, codebook=path)


def test_cli_encode_and_decode_with_a_predictive_codebook(tmp_path, books, streams, capsys):
    wav = Path(__file__).resolve().parents[1] / "samples" / "librispeech_1034_male.wav"
    svq = tmp_path / "a.svq"
    out = tmp_path / "a.wav"
    assert main(["encode", str(wav), str(svq), "--codebook", str(books["ma"]), "-q"]) == 0
    assert svq.read_bytes() == streams["ma"]
    assert main(["decode", str(svq), str(out)]) == 2  # not shipped: named error
    assert "pass it with --codebook" in capsys.readouterr().err
    assert main(["decode", str(svq), str(out), "--codebook", str(books["ma"])]) == 0
    assert out.stat().st_size > 44
    assert main(["codebooks"]) == 0  # shipped ones still listed
    capsys.readouterr()
