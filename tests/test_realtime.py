"""Frame-by-frame streaming (block sizes down to one frame), the live example, and the
speed paths that must not change results (BLAS pinning, de-emphasis without scipy)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import codec
from codec.analysis import LOOKAHEAD, de_emphasis
from codec.bitstream import pack_file, unpack_file
from codec.errors import ParameterError
from codec.pipeline import PITCH_GROUP, StreamDecoder, StreamEncoder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def three_groups(speech):
    """Speech crossing two pitch-analysis groups (4.5 s) with a ragged end."""
    x, sr = speech
    return np.resize(x, 2 * PITCH_GROUP * 320 + 8 * 320 + 123), sr


def _encode_in_chunks(x, sr, rate, block, chunk):
    enc = StreamEncoder(sr, rate, block_frames=block)
    frames = []
    for i in range(0, len(x), chunk):
        frames += enc.push(x[i : i + chunk])
    frames += enc.finish()
    return pack_file(enc.header(), frames)


@pytest.mark.parametrize(
    ("rate", "blocks"), [(13.2, (1, 7, 100, 137)), (8.0, (3, 64, 150)), (24.4, (250,))]
)
def test_encoder_output_does_not_depend_on_block_size(three_groups, rate, blocks):
    x, sr = three_groups
    whole = codec.encode(x, sr, rate)
    for block in blocks:
        assert _encode_in_chunks(x, sr, rate, block, 320) == whole, block


def test_block_size_with_resampled_input(speech):
    x, sr = speech
    from codec.audio import resample

    y = resample(x[: 3 * 16000], sr, 44100)
    whole = codec.encode(y, 44100, 24.4)
    assert _encode_in_chunks(y, 44100, 24.4, 1, 882) == whole


def test_one_frame_blocks_yield_each_frame_after_the_lookahead(speech):
    x, sr = speech
    enc = StreamEncoder(sr, 16.4, block_frames=1)
    assert enc.push(x[:320]) == []  # frame 0 still waits for its look-ahead
    assert enc.push(x[320 : 320 + LOOKAHEAD - 1]) == []
    assert len(enc.push(x[320 + LOOKAHEAD - 1 : 320 + LOOKAHEAD])) == 1  # frame 0, no later
    counts = [len(enc.push(x[i : i + 320])) for i in range(320 + LOOKAHEAD, 20 * 320, 320)]
    assert counts == [1] * len(counts)  # one frame per 20 ms pushed
    enc100 = StreamEncoder(sr, 16.4)
    assert enc100.push(x[: 50 * 320]) == []  # the default waits for a block of 500


def test_decoder_output_does_not_depend_on_block_size(speech):
    x, sr = speech
    data = codec.encode(x, sr, 9.6)
    whole, _ = codec.decode(data)
    header, frames = unpack_file(data)
    for block in (1, 13):
        dec = StreamDecoder(header, block_frames=block)
        y = np.concatenate([dec.decode(frames), dec.flush()])
        assert np.array_equal(y, whole)
    dec = StreamDecoder(header, block_frames=1)
    sizes = [dec.decode([fr]).size for fr in frames[:10]]
    assert sizes == [240] + [320] * 9  # every frame gives its 20 ms (the first one 15 ms)


@pytest.mark.parametrize("bad", [0, 501, 2.5, True, "4"])
def test_block_size_is_checked(bad):
    with pytest.raises(ParameterError, match="block_frames"):
        StreamEncoder(16000, 13.2, block_frames=bad)


@pytest.mark.parametrize("bad", [0, 1001, 2.5, True, "4"])
def test_decoder_block_size_is_checked(bad):
    header, _ = unpack_file(codec.encode(np.zeros(320), 16000, 13.2))
    with pytest.raises(ParameterError, match="block_frames"):
        StreamDecoder(header, block_frames=bad)


def test_decoder_block_sizes_give_the_same_output(speech):
    """The decoder's 20 s blocks (numpy range decoding of many frames) equal one-frame blocks."""
    x, sr = speech
    data = codec.encode(x, sr, 13.2)
    header, frames = unpack_file(data)
    outs = []
    for b in (1, 100, 500, 1000):
        dec = StreamDecoder(header, block_frames=b)
        outs.append(np.concatenate([dec.decode(list(frames)), dec.flush()]))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_live_header_decodes_while_the_stream_runs(speech):
    x, sr = speech
    x = x[: 2 * 16000]
    ref, _ = codec.decode(codec.encode(x, sr, 13.2))
    enc = StreamEncoder(sr, 13.2, block_frames=1)
    dec = StreamDecoder(enc.live_header(), block_frames=1)
    out = []
    for i in range(0, x.size, 320):
        out += [dec.decode([fr]) for fr in enc.push(x[i : i + 320])]
    out += [dec.decode([fr]) for fr in enc.finish()]
    y = np.concatenate(out)[: x.size]
    assert np.array_equal(y, ref)


def test_live_stream_example_matches_the_file_codec(speech):
    x, sr = speech
    x = x[: 16000 + 100]
    pcm = np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2")
    xq = pcm / 32768.0
    ref, _ = codec.decode(codec.encode(xq, sr, 13.2))
    expected = np.clip(np.rint(ref * 32767.0), -32768, 32767).astype("<i2").tobytes()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "live_stream.py"), "-b", "13.2", "-v"],
        input=pcm.tobytes(),
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout == expected
    assert "real time" in proc.stderr.decode()


def test_live_stream_run_reports_its_timing(speech):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import live_stream
    finally:
        sys.path.pop(0)
    x, _ = speech
    pcm = np.clip(np.rint(x[:8000] * 32768.0), -32768, 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    stats = live_stream.run(io.BytesIO(pcm), out, 8.0)
    assert len(out.getvalue()) == len(pcm)
    assert stats["frames"] == 26 and stats["mean_ms"] > 0.0


def test_de_emphasis_without_scipy_is_bit_exact():
    from scipy.signal import lfilter

    rng = np.random.default_rng(5)
    import codec.analysis as analysis

    for size in (1, 7, 320, 5000):
        y = rng.standard_normal(size) * 10.0 ** rng.uniform(-6, 0)
        state = float(rng.standard_normal())
        ref, _ = lfilter([1.0], [1.0, -0.68], y, zi=np.array([0.68 * state]))
        saved = sys.modules.pop("scipy.signal")  # the pure-Python branch
        try:
            out, last = de_emphasis(y, state=state)
        finally:
            sys.modules["scipy.signal"] = saved
        assert np.array_equal(out, ref) and last == ref[-1]
        old = analysis._LFILTER_FROM
        analysis._LFILTER_FROM = 0  # the scipy branch
        try:
            assert np.array_equal(de_emphasis(y, state=state)[0], ref)
        finally:
            analysis._LFILTER_FROM = old


def test_decoding_a_file_does_not_import_scipy(tmp_path, speech):
    x, sr = speech
    src = tmp_path / "x.svq"
    src.write_bytes(codec.encode(x[:16000], sr, 13.2))
    code = (
        "import sys, codec.cli; "
        f"codec.cli.main(['decode', {str(src)!r}, {str(tmp_path / 'y.wav')!r}, '-q']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert out.stdout.strip() == "[]"
