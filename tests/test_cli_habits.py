"""CLI habits of issue 15: train without torch, codebooks, decode rate/report, -q/-v, terminals,
misleading extensions, file names in errors, MP3 length, one-line descriptions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import codec
from codec.cli import OUTPUT_RATES, build_parser, main
from codec.modes import mode_for
from codec.registry import hash_bytes, load_envelope, shipped_codebooks

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SAMPLE = SAMPLES / "vctk_p233_female.wav"


@pytest.fixture(scope="module")
def svq_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("svq") / "a.svq"
    assert main(["encode", str(SAMPLE), str(path), "-q"]) == 0
    return path


def _run(args: list[str], **kw) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "codec", *args], env=env, check=False, **kw)


# ----------------------------------------------------------------------------- train


def test_train_default_method_works_without_torch(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # a plain install: torch cannot be imported
    out = tmp_path / "k.cb"
    assert main(["train", "--data", str(SAMPLES), "--out", str(out), "-q"]) == 0
    assert "kmeans" in capsys.readouterr().out
    assert load_envelope(out).quantizer.config.method == "kmeans"


def test_train_gradient_method_without_torch_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "broken.wav").write_bytes(b"RIFF not audio")  # reading it would fail differently
    out = tmp_path / "n.cb"
    rc = main(["train", "--data", str(bad), "--method", "nsvq", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "svq[train]" in err and "torch" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--stages", "0"], "stages"),
        (["--bits", "17"], "bits"),
        (["--variant", "vq", "--stages", "4"], "stages must be 1"),
        (["--variant", "pvq", "--stages", "17"], "stages <= dim"),
        (["--beam", "0"], "beam"),
    ],
)
def test_train_checks_settings_before_features(tmp_path, capsys, extra, word):
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "broken.wav").write_bytes(b"RIFF not audio")
    rc = main(["train", "--data", str(bad), "--out", str(tmp_path / "x.cb"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and word in err and "broken.wav" not in err


def test_train_missing_data_says_not_found(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x.cb")])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_train_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in [
        ("--variant", "avq"),
        ("--stages", "4"),
        ("--bits", "4"),
        ("--method", "kmeans"),
        ("--seed", "0"),
    ]:
        assert f"(default: {default})" in text.split(option, 2)[-1].split("--", 1)[0], option
    assert "beam" in text and "default: the variant's" in text


# ----------------------------------------------------------------------------- codebooks


def test_decode_with_a_mismatching_codebook_names_both_hashes(tmp_path, capsys):
    mine = tmp_path / "mine.cb"
    other = tmp_path / "other.cb"
    for cb, seed in ((mine, "0"), (other, "1")):
        assert main(["train", "--data", str(SAMPLES), "--out", str(cb), "--seed", seed, "-q"]) == 0
    svq = tmp_path / "a.svq"
    assert main(["encode", str(SAMPLE), str(svq), "--codebook", str(mine), "-q"]) == 0
    capsys.readouterr()
    wav = tmp_path / "a.wav"
    assert main(["decode", str(svq), str(wav), "--codebook", str(other)]) == 2
    err = capsys.readouterr().err
    assert "does not match" in err and "pass it with --codebook" not in err
    assert hash_bytes(load_envelope(other).content_hash).hex() in err
    assert hash_bytes(load_envelope(mine).content_hash).hex() in err
    assert str(svq) in err and not wav.exists()


def test_decode_warns_when_the_given_codebook_is_not_the_streams(svq_file, tmp_path, capsys):
    """A shipped stream decodes with its own codebook; a wrong --codebook is named, not silent."""
    wav, ref = tmp_path / "a.wav", tmp_path / "ref.wav"
    assert main(["decode", str(svq_file), str(ref), "-q"]) == 0
    assert main(["decode", str(svq_file), str(wav), "--codebook", "pvq-4x4"]) == 0
    err = capsys.readouterr().err
    assert "warning: --codebook pvq-4x4 is not the stream's codebook" in err
    assert wav.read_bytes() == ref.read_bytes()
    # the stream's own codebook given: no warning; -q silences the warning
    name = mode_for(13.2).default_envelope
    assert main(["decode", str(svq_file), str(wav), "-f", "--codebook", name]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["decode", str(svq_file), str(wav), "-f", "-q", "--codebook", "pvq-4x4"]) == 0
    assert capsys.readouterr().err == ""


def test_decode_loads_only_the_streams_shipped_codebook(svq_file, monkeypatch):
    """The index of shipped hashes spares the decoder loading every shipped codebook."""
    from codec import registry

    loaded: list[str] = []
    real = registry.load_envelope
    monkeypatch.setattr(registry, "load_envelope", lambda p: loaded.append(os.fspath(p)) or real(p))
    from codec.bitstream import ContainerReader
    from codec.pipeline import StreamDecoder

    with open(svq_file, "rb") as fh:
        h = ContainerReader(fh).header
    StreamDecoder(h)
    assert len(loaded) == 1 and Path(loaded[0]).stem == mode_for(13.2).default_envelope


def test_codebooks_lists_shipped_and_path_ones(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cbs"
    folder.mkdir()
    assert main(["train", "--data", str(SAMPLES), "--out", str(folder / "mine.cb"), "-q"]) == 0
    (folder / "junk.cb").write_bytes(b"not a codebook")
    monkeypatch.setenv("SVQ_CODEBOOK_PATH", str(folder))
    capsys.readouterr()
    assert main(["codebooks"]) == 0
    text = capsys.readouterr().out
    for name, path in shipped_codebooks().items():
        assert name in text
        assert hash_bytes(load_envelope(path).content_hash).hex() in text
    assert hash_bytes(load_envelope(folder / "mine.cb").content_hash).hex() in text
    assert str(folder / "mine.cb") in text and "unreadable" in text
    assert main(["codebooks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    origins = {r["name"]: r["origin"] for r in rows}
    assert origins["avq-4x6"] == "shipped" and origins["mine"] == "SVQ_CODEBOOK_PATH"


# ----------------------------------------------------------------------------- decode


def test_decode_reports_what_it_wrote_unless_quiet(svq_file, tmp_path, capsys):
    out = tmp_path / "o.wav"
    assert main(["decode", str(svq_file), str(out)]) == 0
    err = capsys.readouterr().err
    assert err.strip() == f"{out}: 80000 samples, 5.00 s, 16000 Hz 16-bit mono WAV"
    assert main(["decode", str(svq_file), str(out), "-f", "-q"]) == 0
    assert main(["encode", str(SAMPLE), str(tmp_path / "b.svq"), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_verbose_prints_settings(svq_file, tmp_path, capsys):
    assert main(["encode", str(SAMPLE), str(tmp_path / "v.svq"), "-v"]) == 0
    assert mode_for(13.2).default_envelope in capsys.readouterr().err
    assert main(["decode", str(svq_file), str(tmp_path / "v.wav"), "-v"]) == 0
    err = capsys.readouterr().err
    assert "251 frames" in err and "16000 Hz" in err
    with pytest.raises(SystemExit):
        main(["decode", str(svq_file), str(tmp_path / "w.wav"), "-q", "-v"])


@pytest.mark.parametrize("rate", [8000, 48000, 44100])
def test_decode_rate_resamples_with_soxr(svq_file, tmp_path, rate):
    import soxr

    ref = tmp_path / "ref.wav"
    out = tmp_path / f"o{rate}.wav"
    assert main(["decode", str(svq_file), str(ref), "-q"]) == 0
    assert main(["decode", str(svq_file), str(out), "--rate", str(rate), "-q"]) == 0
    y16, r16 = sf.read(ref, dtype="float64")
    y, r = sf.read(out, dtype="float64")
    assert r == rate and y.size == round(y16.size * rate / 16000)
    want = soxr.resample(y16, 16000, rate, quality="VHQ")
    assert np.max(np.abs(y - want)) < 2.0 / 32768  # resampled 16 kHz output, requantized


def test_decode_rate_through_a_pipe_has_an_exact_header(svq_file):
    res = _run(["decode", "-", "-", "-r", "8000"], input=svq_file.read_bytes())
    assert res.returncode == 0, res.stderr
    import io

    y, r = sf.read(io.BytesIO(res.stdout))
    assert r == 8000 and y.size == 40000 and len(res.stdout) == 44 + 2 * 40000


def test_decode_rejects_other_rates(svq_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["decode", str(svq_file), str(tmp_path / "o.wav"), "--rate", "11025"])
    assert exc.value.code == 2 and "11025" in capsys.readouterr().err
    assert 8000 in OUTPUT_RATES and 48000 in OUTPUT_RATES


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("cmd", ["encode", "decode"])
def test_refuses_to_write_binary_to_a_terminal(svq_file, cmd):
    master, slave = os.openpty()
    try:
        src = SAMPLE if cmd == "encode" else svq_file
        res = _run([cmd, str(src), "-"], stdout=slave, stderr=subprocess.PIPE)
    finally:
        os.close(slave)
        os.close(master)
    assert res.returncode == 2
    assert b"terminal" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_warns_when_the_extension_contradicts_the_content(svq_file, tmp_path, capsys):
    assert main(["encode", str(SAMPLE), str(tmp_path / "out.wav")]) == 0
    assert "warning: " in capsys.readouterr().err
    assert codec.info((tmp_path / "out.wav").read_bytes()).frame_count == 251
    assert main(["decode", str(svq_file), str(tmp_path / "o.svq")]) == 0
    assert "will hold a WAV file" in capsys.readouterr().err
    assert main(["decode", str(svq_file), str(tmp_path / "o.wav")]) == 0
    assert main(["encode", str(SAMPLE), str(tmp_path / "b.svq")]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["decode", "info"])
def test_bad_magic_names_the_file(tmp_path, capsys, cmd):
    args = [cmd, str(SAMPLE)] + ([str(tmp_path / "o.wav")] if cmd == "decode" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{SAMPLE}: not an svq file (bad magic)" in err
    assert not (tmp_path / "o.wav").exists()


# ----------------------------------------------------------------------------- MP3


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_mp3_encodes_only_the_decoded_samples(tmp_path):
    x, rate = sf.read(SAMPLE, dtype="float64")
    whole = tmp_path / "whole.mp3"
    sf.write(whole, x, rate, format="MP3")
    cut = tmp_path / "cut.mp3"  # a cut download: its header promises more than it holds
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 4])
    decoded = 0
    with sf.SoundFile(cut) as f:
        claimed = f.frames
        while block := f.read(4096).shape[0]:
            decoded += block
    assert claimed > decoded  # the situation under test
    svq = tmp_path / "cut.svq"
    assert main(["encode", str(cut), str(svq), "-q"]) == 0
    assert codec.info(svq.read_bytes()).sample_count == decoded
    wav = tmp_path / "cut.wav"
    assert main(["decode", str(svq), str(wav), "-q"]) == 0
    assert sf.info(wav).frames == decoded


# ----------------------------------------------------------------------------- help


def test_every_subcommand_has_a_one_line_description(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert set(helps) == set(sub.choices)
    for name, sp in sub.choices.items():
        assert helps[name] and "\n" not in helps[name], name
        assert sp.description, name
        for text in (helps[name], sp.description, sp.format_help()):
            assert "``" not in text and ":func:" not in text and ":mod:" not in text, name


# ----------------------------------------------------------------------------- exit

# a run of the ``svq`` entry point (codec.cli.run), optionally with an atexit handler;
# under ``python -v`` the interpreter's teardown prints "# cleanup" lines
_ENTRY = """
import sys
from codec.cli import run
if {register}:
    import atexit
    atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
sys.argv = ["svq", *sys.argv[1:]]
run()
"""


def _entry(
    args: list[str], register: bool, verbose: bool = False
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = _ENTRY.format(register=register)
    flags = ["-v"] if verbose else []
    return subprocess.run([sys.executable, *flags, "-c", code, *args], env=env, capture_output=True)


def test_the_command_exits_without_the_interpreters_teardown(svq_file, tmp_path):
    """``svq`` ends with os._exit once its work is done: the output is complete and
    the report flushed, the teardown skipped; with an atexit handler waiting, the
    usual exit runs (the handler and the teardown)."""
    want = tmp_path / "want.wav"
    assert main(["decode", str(svq_file), str(want), "-q"]) == 0
    for register in (False, True):
        out = tmp_path / f"y{register}.wav"
        res = _entry(["decode", str(svq_file), str(out)], register)
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == want.read_bytes()
        assert res.stderr.decode().splitlines() == [
            f"{out}: 80000 samples, 5.00 s, 16000 Hz 16-bit mono WAV",  # flushed
            *(["atexit ran"] if register else []),
        ]
        verbose = _entry(["decode", "-f", "-q", str(svq_file), str(out)], register, verbose=True)
        assert verbose.returncode == 0
        assert (b"# cleanup" in verbose.stderr) == register


def test_the_commands_exit_status_and_output_survive_the_fast_exit(svq_file, tmp_path):
    res = _entry(["info", str(svq_file)], False)
    assert res.returncode == 0 and res.stdout.decode().startswith("format_version")
    assert res.stdout.endswith(b"\n")  # all of it, flushed before the exit
    res = _entry(["decode", str(tmp_path / "none.svq"), str(tmp_path / "y.wav")], False)
    assert res.returncode == 2
    assert res.stderr.decode().strip().splitlines() == [
        f"svq: error: {tmp_path / 'none.svq'}: no such file"
    ]
    want = tmp_path / "want.wav"
    assert main(["decode", str(svq_file), str(want), "-q"]) == 0
    res = _entry(["decode", "-q", str(svq_file), "-"], False)  # binary to a pipe
    assert res.returncode == 0 and res.stdout == want.read_bytes()


_GC_PROBE = """
import gc, sys
import codec.cli as cli
real = cli._cmd_decode
def probe(args):
    sys.stderr.write(f"work: gc on {gc.isenabled()}, frozen {gc.get_freeze_count() > 0}, "
                     f"numpy loaded {'numpy' in sys.modules}\\n")
    return real(args)
cli._cmd_decode = probe
sys.stderr.write(f"before: gc on {gc.isenabled()}\\n")
sys.argv = ["svq", *sys.argv[1:]]
cli.run()
"""


def test_the_command_holds_the_collector_off_only_through_the_imports(svq_file, tmp_path):
    """``svq`` freezes what its imports made and works with the collector on;
    ``main`` called from a program leaves the collector alone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "y.wav"
    res = subprocess.run(
        [sys.executable, "-c", _GC_PROBE, "decode", "-q", str(svq_file), str(out)],
        env=env,
        capture_output=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.decode().splitlines() == [
        "before: gc on True",
        "work: gc on True, frozen True, numpy loaded True",
    ]
    import gc

    frozen = gc.get_freeze_count()
    assert main(["decode", "-q", "-f", str(svq_file), str(out)]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen


# ----------------------------------------------------------------------------- huge pages

_HEAP_PROBE = """
import sys
import codec.cli as cli

def huge_heap_mb():
    # the heap's mappings marked MADV_HUGEPAGE ("hg" in their VmFlags), in MB
    total, heap = 0, False
    for line in open("/proc/self/smaps"):
        first = line.split(maxsplit=1)[0]
        if "-" in first and not first.endswith(":"):  # a mapping's first line
            lo, hi = (int(x, 16) for x in first.split("-"))
            heap = line.rstrip().endswith("[heap]")
        elif first == "VmFlags:" and heap and " hg" in line:
            total += hi - lo
    return total >> 20

real = cli._cmd_decode
def probe(args):
    sys.stderr.write(f"work: {huge_heap_mb()}\\n")
    return real(args)
cli._cmd_decode = probe
sys.argv = ["svq", *sys.argv[1:]]
if sys.argv[1] == "main":
    sys.argv.pop(1)
    cli.main()
else:
    cli.run()
"""


def _thp_on_madvise() -> bool:
    try:
        return "[madvise]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _thp_on_madvise(),
    reason="transparent huge pages on madvise (Linux) only",
)
def test_the_command_marks_its_heap_for_huge_pages_and_main_does_not(svq_file, tmp_path):
    """``svq`` grows its heap by HEAP_RESERVE and marks it MADV_HUGEPAGE before the
    imports (the page faults it saves are measured in RESULTS.md §5); ``main``
    called from a program leaves the heap alone; the output is the same."""
    from codec.cli import HEAP_RESERVE

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    got = {}
    for how in ("run", "main"):
        out = tmp_path / f"{how}.wav"
        res = subprocess.run(
            [
                sys.executable,
                "-c",
                _HEAP_PROBE,
                *(["main"] if how == "main" else []),
                "decode",
                "-q",
                str(svq_file),
                str(out),
            ],
            env=env,
            capture_output=True,
        )
        assert res.returncode == 0, res.stderr
        (line,) = res.stderr.decode().splitlines()
        got[how] = int(line.removeprefix("work: "))
    assert got["main"] == 0
    assert got["run"] >= (HEAP_RESERVE >> 20) - 4
    assert (tmp_path / "run.wav").read_bytes() == (tmp_path / "main.wav").read_bytes()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _thp_on_madvise(),
    reason="transparent huge pages on madvise (Linux) only",
)
def test_no_heap_reserve_under_an_address_space_cap():
    """With ``ulimit -v`` set, the 128 MB reserve would count against the cap:
    ``svq`` then leaves its heap as it is."""
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30)); "
        "from codec.cli import _huge_page_heap; print(_huge_page_heap())"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False"]
    code = "from codec.cli import _huge_page_heap; print(_huge_page_heap())"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.stdout.split() == ["True"]
