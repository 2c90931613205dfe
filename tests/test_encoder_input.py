"""The encoder's input matrix: formats, rates, channels, damaged and odd inputs, outputs.

Every case runs ``svq encode`` in-process and checks the contract of the CLI:
either exit 0 and a stream that decodes to ``round(n * 16000 / rate)`` samples
(exactly ``n`` for 16 kHz input), or exit 2 with exactly one stderr line
``svq: error: ...`` and no traceback. In every case the output folder holds
only the expected files (no partial or temporary output) and the input file's
bytes and mtime are unchanged.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import codec
from codec.audio import resample
from codec.cli import main
from codec.errors import AudioInputError, CodecError, ParameterError

ROOT = Path(__file__).resolve().parents[1]
RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000)
SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


@pytest.fixture(scope="module")
def clip(speech) -> np.ndarray:
    """0.3 s of real speech at 16 kHz, scaled to leave headroom for integer formats."""
    x, sr = speech
    assert sr == 16000
    seg = x[int(0.5 * sr) : int(0.8 * sr)]
    return 0.9 * seg / max(1.0, float(np.abs(seg).max()) / 0.9)


# ------------------------------------------------------------------ helpers


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    return src_dir, out_dir


def _cli(capsys: pytest.CaptureFixture[str], argv: Sequence[str]) -> tuple[int, str]:
    capsys.readouterr()  # drop anything printed before
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def _assert_one_line_error(rc: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert rc == 2, f"exit {rc}, stderr {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("svq: error:"), err


def _expected_length(n_samples: int, rate: int) -> int:
    return round(n_samples * 16000 / rate)


def _assert_length(got: int, n_samples: int, rate: int) -> None:
    if rate == 16000:
        assert got == n_samples
    else:
        assert abs(got - _expected_length(n_samples, rate)) <= 2, (got, n_samples, rate)


def _check_encode(
    capsys: pytest.CaptureFixture[str],
    src: Path,
    out_dir: Path,
    *,
    n_samples: int,
    rate: int,
    expect: str,
) -> tuple[int, str]:
    """Encode ``src`` into ``out_dir/out.svq`` and check the CLI contract.

    ``expect`` is "ok" (must succeed), "error" (must fail cleanly) or "either".
    On success the stream is also decoded through the API and ``svq decode``.
    """
    out = out_dir / "out.svq"
    before_src = _fingerprint(src) if src.is_file() else None
    src_listing = _listing(src.parent) if src.parent.is_dir() else None
    out_listing = _listing(out_dir)
    rc, err = _cli(capsys, ["encode", str(src), str(out), "-q"])
    assert "Traceback" not in err, err
    if rc == 0:
        assert expect != "error", f"{src.name}: expected an error, encode succeeded"
        assert err == "", f"-q printed {err!r}"
        assert _listing(out_dir) == out_listing | {"out.svq"}
        y, sr = codec.decode(out.read_bytes())
        assert sr == 16000 and y.ndim == 1 and y.dtype == np.float64
        assert np.all(np.isfinite(y))
        _assert_length(y.size, n_samples, rate)
        wav = out_dir / "out.wav"
        rc_dec, err_dec = _cli(capsys, ["decode", str(out), str(wav), "-q"])
        assert rc_dec == 0 and err_dec == "", err_dec
        info = sf.info(str(wav))
        assert info.samplerate == 16000 and info.channels == 1 and info.frames == y.size
        assert _listing(out_dir) == out_listing | {"out.svq", "out.wav"}
    else:
        assert expect != "ok", f"{src.name}: expected success, got {err!r}"
        _assert_one_line_error(rc, err)
        assert _listing(out_dir) == out_listing, "partial or temporary output left behind"
    if before_src is not None:
        assert _fingerprint(src) == before_src, "the input file changed"
    if src_listing is not None:
        assert _listing(src.parent) == src_listing
    return rc, err


def _write_wav(path: Path, data: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), data, rate, format="WAV", subtype=subtype)
    return path


# ------------------------------------------------------------------ formats, rates, channels


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_sample_formats(tmp_path, capsys, clip, subtype):
    src_dir, out_dir = _folders(tmp_path)
    src = _write_wav(src_dir / f"{subtype}.wav", clip, 16000, subtype)
    assert sf.info(str(src)).subtype == subtype
    _check_encode(capsys, src, out_dir, n_samples=clip.size, rate=16000, expect="ok")
    # the format is read at the right scale: the decoded level is close to the input's
    y, _ = codec.decode((out_dir / "out.svq").read_bytes())
    ratio = float(np.sqrt(np.mean(y**2) / np.mean(clip**2)))
    assert 0.5 < ratio < 2.0, ratio


@pytest.mark.parametrize("rate", RATES)
def test_sample_rates(tmp_path, capsys, clip, rate):
    src_dir, out_dir = _folders(tmp_path)
    x = resample(clip, 16000, rate)
    src = _write_wav(src_dir / f"r{rate}.wav", x, rate)
    _check_encode(capsys, src, out_dir, n_samples=x.size, rate=rate, expect="ok")


@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel(tmp_path, capsys, clip, channels, rate):
    src_dir, out_dir = _folders(tmp_path)
    x = resample(clip, 16000, rate)
    gains = np.linspace(1.0, 0.3, channels)
    noise = 0.01 * np.random.default_rng(channels).standard_normal((x.size, channels))
    data = np.clip(x[:, None] * gains[None, :] + noise, -1.0, 1.0)
    src = _write_wav(src_dir / f"c{channels}.wav", data, rate, "FLOAT")
    assert sf.info(str(src)).channels == channels
    _check_encode(capsys, src, out_dir, n_samples=x.size, rate=rate, expect="ok")


def test_noise_input(tmp_path, capsys):
    src_dir, out_dir = _folders(tmp_path)
    x = 0.3 * np.random.default_rng(1).standard_normal(4801).clip(-3, 3) / 3
    src = _write_wav(src_dir / "noise.wav", x, 48000, "PCM_24")
    _check_encode(capsys, src, out_dir, n_samples=x.size, rate=48000, expect="ok")


# ------------------------------------------------------------------ tiny and non-finite input


@pytest.mark.parametrize(
    ("n", "rate", "subtype", "expect"),
    [
        (0, 16000, "PCM_16", "either"),
        (0, 48000, "FLOAT", "either"),
        (1, 16000, "PCM_16", "ok"),
        (1, 8000, "PCM_16", "ok"),
        (1, 44100, "FLOAT", "either"),  # rounds to 0 samples at 16 kHz
        (2, 16000, "PCM_U8", "ok"),
        (321, 16000, "PCM_16", "ok"),
    ],
)
def test_tiny_inputs(tmp_path, capsys, clip, n, rate, subtype, expect):
    src_dir, out_dir = _folders(tmp_path)
    src = _write_wav(src_dir / f"n{n}.wav", clip[:n], rate, subtype)
    assert sf.info(str(src)).frames == n
    _check_encode(capsys, src, out_dir, n_samples=n, rate=rate, expect=expect)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_non_finite_samples_are_a_clear_error(tmp_path, capsys, clip, subtype, value):
    src_dir, out_dir = _folders(tmp_path)
    x = clip.copy()
    x[len(x) // 2] = value
    src = _write_wav(src_dir / "bad.wav", x, 16000, subtype)
    _, err = _check_encode(capsys, src, out_dir, n_samples=x.size, rate=16000, expect="error")
    assert "nan" in err.lower() or "infinite" in err.lower(), err


# ------------------------------------------------------------------ unreadable input


def _text_file(d: Path) -> Path:
    p = d / "notes.wav"
    p.write_text("this is not audio\n" * 20)
    return p


def _empty_file(d: Path) -> Path:
    p = d / "empty.wav"
    p.write_bytes(b"")
    return p


def _garbage_file(d: Path) -> Path:
    p = d / "garbage.wav"
    p.write_bytes(np.random.default_rng(7).bytes(3000))
    return p


def _truncated_wav(d: Path) -> Path:
    full = d / "full.tmpwav"
    sf.write(str(full), np.zeros(1000), 16000, format="WAV", subtype="PCM_16")
    p = d / "truncated.wav"
    p.write_bytes(full.read_bytes()[:30])
    full.unlink()
    return p


def _svq_as_input(d: Path) -> Path:
    p = d / "stream.wav"
    p.write_bytes(codec.encode(np.zeros(800), 16000, 13.2))
    return p


def _missing(d: Path) -> Path:
    return d / "missing.wav"


def _directory(d: Path) -> Path:
    p = d / "folder.wav"
    p.mkdir()
    (p / "inside.txt").write_text("x")
    return p


@pytest.mark.parametrize(
    "make",
    [_text_file, _empty_file, _garbage_file, _truncated_wav, _svq_as_input, _missing, _directory],
    ids=lambda f: f.__name__.strip("_"),
)
def test_unreadable_inputs(tmp_path, capsys, make):
    src_dir, out_dir = _folders(tmp_path)
    src = make(src_dir)
    _check_encode(capsys, src, out_dir, n_samples=0, rate=16000, expect="error")


# ------------------------------------------------------------------ outputs


def _permissions_enforced(folder: Path) -> bool:
    """False where writing into a read-only folder still works (root with CAP_DAC_OVERRIDE)."""
    probe = folder / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_bytes(b"")
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
        (probe / "x").unlink(missing_ok=True)
        probe.rmdir()
    return False


def test_unwritable_output_folder(tmp_path, capsys, clip):
    if os.geteuid() == 0 and not _permissions_enforced(tmp_path):
        pytest.skip("running as root: file permissions are not enforced")
    src_dir, out_dir = _folders(tmp_path)
    src = _write_wav(src_dir / "in.wav", clip, 16000)
    out_dir.chmod(0o555)
    try:
        _check_encode(capsys, src, out_dir, n_samples=clip.size, rate=16000, expect="error")
    finally:
        out_dir.chmod(0o755)


def test_output_folder_missing(tmp_path, capsys, clip):
    src_dir, out_dir = _folders(tmp_path)
    src = _write_wav(src_dir / "in.wav", clip, 16000)
    before = _fingerprint(src)
    rc, err = _cli(capsys, ["encode", str(src), str(out_dir / "sub" / "o.svq"), "-q"])
    _assert_one_line_error(rc, err)
    assert _listing(out_dir) == set() and _fingerprint(src) == before


def test_output_is_a_directory(tmp_path, capsys, clip):
    src_dir, out_dir = _folders(tmp_path)
    src = _write_wav(src_dir / "in.wav", clip, 16000)
    (out_dir / "o.svq").mkdir()
    rc, err = _cli(capsys, ["encode", str(src), str(out_dir / "o.svq"), "-q", "--force"])
    _assert_one_line_error(rc, err)
    assert _listing(out_dir) == {"o.svq"} and list((out_dir / "o.svq").iterdir()) == []


def test_existing_output_needs_force(tmp_path, capsys, clip):
    src_dir, out_dir = _folders(tmp_path)
    src = _write_wav(src_dir / "in.wav", clip, 16000)
    before_src = _fingerprint(src)
    out = out_dir / "out.svq"
    out.write_bytes(b"keep me")
    os.utime(out, ns=(1_000_000_000, 1_000_000_000))
    before_out = _fingerprint(out)
    rc, err = _cli(capsys, ["encode", str(src), str(out), "-q"])
    _assert_one_line_error(rc, err)
    assert "exists" in err
    assert _fingerprint(out) == before_out and _listing(out_dir) == {"out.svq"}

    rc, err = _cli(capsys, ["encode", str(src), str(out), "-q", "--force"])
    assert rc == 0 and err == "", err
    assert _listing(out_dir) == {"out.svq"}
    assert out.read_bytes()[:4] == b"SVQ\x1a"
    y, _ = codec.decode(out.read_bytes())
    assert y.size == clip.size
    assert _fingerprint(src) == before_src


def test_output_file_mode_follows_umask(tmp_path, capsys, clip):
    """New outputs get the usual mode 0o666 minus the umask, like any other tool's output."""
    src_dir, out_dir = _folders(tmp_path)
    src = _write_wav(src_dir / "in.wav", clip, 16000)
    umask = os.umask(0o022)
    os.umask(umask)
    svq, wav = out_dir / "out.svq", out_dir / "out.wav"
    assert _cli(capsys, ["encode", str(src), str(svq), "-q"])[0] == 0
    assert _cli(capsys, ["decode", str(svq), str(wav)])[0] == 0
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in (svq, wav)}
    assert modes == {"out.svq": oct(0o666 & ~umask), "out.wav": oct(0o666 & ~umask)}


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_output_equal_to_input(tmp_path, capsys, clip, spelling, force):
    src_dir, _ = _folders(tmp_path)
    src = _write_wav(src_dir / "in.wav", clip, 16000)
    if spelling == "same":
        out = src
    elif spelling == "dotted":
        out = src_dir / "." / ".." / "in" / "in.wav"
    else:
        out = src_dir / "link.wav"
        out.symlink_to(src)
    before = _fingerprint(src)
    listing = _listing(src_dir)
    rc, err = _cli(capsys, ["encode", str(src), str(out), "-q", *(["--force"] if force else [])])
    _assert_one_line_error(rc, err)
    assert _fingerprint(src) == before
    assert _listing(src_dir) == listing
    if spelling == "symlink":
        assert out.is_symlink()


# ------------------------------------------------------------------ the API


@pytest.mark.parametrize("rate", RATES)
def test_api_lengths(clip, rate):
    x = resample(clip, 16000, rate)
    for audio in (x, np.stack([x, 0.5 * x], axis=1)):
        y, sr = codec.decode(codec.encode(audio, rate, 13.2))
        assert sr == 16000 and np.all(np.isfinite(y))
        _assert_length(y.size, x.size, rate)


@pytest.mark.parametrize("n", [0, 1, 2, 319, 320, 321, 641])
def test_api_tiny_lengths(clip, n):
    try:
        data = codec.encode(clip[:n], 16000, 13.2)
    except CodecError:
        assert n == 0
        return
    y, _ = codec.decode(data)
    assert y.size == n and np.all(np.isfinite(y))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_api_non_finite(clip, value):
    x = clip.copy()
    x[3] = value
    with pytest.raises(AudioInputError):
        codec.encode(x, 16000, 13.2)
    with pytest.raises(AudioInputError):
        codec.encode(np.stack([clip, x], axis=1), 44100, 8.0)


def test_api_bad_shapes_and_rates(clip):
    with pytest.raises(AudioInputError):
        codec.encode(np.zeros((10, 2, 2)), 16000, 13.2)
    with pytest.raises(AudioInputError):
        codec.encode(np.array(["a", "b"]), 16000, 13.2)
    for rate in (0, -16000, 16000.5):
        with pytest.raises(ParameterError):
            codec.encode(clip, rate, 13.2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("command", "stdin"),
    [
        ("encode", b""),
        ("encode", b"this is not audio\n"),
        ("decode", b""),
        ("decode", b"SVQ\x1a" + bytes(100)),
    ],
    ids=["encode-empty", "encode-text", "decode-empty", "decode-garbage"],
)
def test_bad_stdin_is_a_clean_error(capsys, monkeypatch, command, stdin):
    fake_in = io.TextIOWrapper(io.BytesIO(stdin))
    fake_out = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdin", fake_in)
    monkeypatch.setattr(sys, "stdout", fake_out)
    rc, err = _cli(capsys, [command, "-", "-"])
    _assert_one_line_error(rc, err)
    fake_out.flush()
    assert fake_out.buffer.getvalue() == b"", "partial output written to stdout"


# ------------------------------------------------------------------ real pipes


def _svq(*args: str) -> list[str]:
    return [sys.executable, "-m", "codec", *args]


def test_stdin_stdout_real_pipes(tmp_path, clip):
    wav = _write_wav(tmp_path / "in.wav", clip, 16000)
    before = _fingerprint(wav)
    # stdin redirected from a file, stdout to a file: svq encode - - < in.wav > a.svq
    svq_file = tmp_path / "a.svq"
    with wav.open("rb") as fin, svq_file.open("wb") as fout:
        enc = subprocess.run(
            _svq("encode", "-", "-"),
            stdin=fin,
            stdout=fout,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    assert enc.returncode == 0 and enc.stderr == b"", enc.stderr.decode()
    data = svq_file.read_bytes()
    assert data[:4] == b"SVQ\x1a"
    y, _ = codec.decode(data)
    assert y.size == clip.size

    # svq decode - - < a.svq
    with svq_file.open("rb") as fin:
        dec_file = subprocess.run(
            _svq("decode", "-", "-"),
            stdin=fin,
            capture_output=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    assert dec_file.returncode == 0 and dec_file.stderr == b"", dec_file.stderr.decode()

    # real pipes: cat in.wav | svq encode - - | svq decode - - > b.wav
    cat = subprocess.Popen(["cat", str(wav)], stdout=subprocess.PIPE)
    assert cat.stdout is not None
    enc_p = subprocess.Popen(
        _svq("encode", "-", "-", "--bitrate", "13.2"),
        stdin=cat.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    cat.stdout.close()
    assert enc_p.stdout is not None and enc_p.stderr is not None
    dec_p = subprocess.Popen(
        _svq("decode", "-", "-"),
        stdin=enc_p.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    enc_p.stdout.close()
    out, dec_err = dec_p.communicate(timeout=120)
    enc_err = enc_p.stderr.read()
    enc_p.stderr.close()
    assert enc_p.wait(timeout=120) == 0, enc_err.decode()
    assert cat.wait(timeout=120) == 0
    assert dec_p.returncode == 0, dec_err.decode()
    assert enc_err == b"" and dec_err == b""

    # the piped chain gives the same bytes as the file-redirected runs
    assert out == dec_file.stdout
    piped = tmp_path / "b.wav"
    piped.write_bytes(out)
    z, rate = sf.read(str(piped), dtype="float64")
    assert rate == 16000 and z.ndim == 1 and z.size == clip.size
    assert np.abs(z).max() > 0.01
    assert _fingerprint(wav) == before
    assert _listing(tmp_path) == {"in.wav", "a.svq", "b.wav"}


def test_temporary_output_name_taken(tmp_path, monkeypatch):
    """A file already holding the next temporary name is left alone; the next name is used."""
    import itertools

    from codec import fileio

    monkeypatch.setattr(fileio, "_TEMPORARIES", itertools.count())
    dest = tmp_path / "out.bin"
    taken = tmp_path / f".out.bin.{os.getpid()}.0.tmp"
    taken.write_bytes(b"someone else's")
    fileio.atomic_write(dest, b"new")
    assert dest.read_bytes() == b"new"
    assert taken.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [taken.name, "out.bin"]
