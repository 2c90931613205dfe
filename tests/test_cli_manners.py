"""CLI habits of a codec tool: --version, bitrate forms, modes, short options, --seed."""

from __future__ import annotations

from pathlib import Path

import pytest

import codec
from codec.cli import main
from codec.errors import ParameterError
from codec.modes import MODES, mode_for, parse_bitrate

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "vctk_p233_female.wav"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"svq {codec.__version__} (format 8)"


@pytest.mark.parametrize(
    ("text", "kbps"),
    [("13.2", 13.2), ("13.2k", 13.2), ("13200", 13.2), ("8", 8.0), ("24.4kbps", 24.4)],
)
def test_bitrate_forms(text, kbps):
    assert parse_bitrate(text) == pytest.approx(kbps)


def test_unsupported_bitrate_names_the_nearest():
    with pytest.raises(ParameterError, match="nearest: 13.2"):
        mode_for(12.0)
    with pytest.raises(ParameterError, match="not a number"):
        parse_bitrate("fast")


def test_encode_with_short_options_and_rate_in_bits(tmp_path, capsys):
    out = tmp_path / "a.svq"
    assert main(["encode", str(SAMPLE), str(out), "-b", "9600", "-q"]) == 0
    assert codec.info(out.read_bytes()).bitrate_kbps == 9.6
    assert main(["encode", str(SAMPLE), str(out), "-b", "16.4k", "-f", "-q"]) == 0
    assert codec.info(out.read_bytes()).bitrate_kbps == 16.4
    capsys.readouterr()
    assert main(["encode", str(SAMPLE), str(out), "-b", "12k", "-f"]) == 2
    assert "nearest: 13.2" in capsys.readouterr().err


def test_modes_lists_every_bitrate(capsys):
    assert main(["modes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(MODES)
    assert lines[1].split()[:3] == ["8", "20", "24"]
    assert all("30 ms" in line for line in lines[1:])


def test_seed_without_simulated_loss_is_an_error(tmp_path, capsys):
    svq = tmp_path / "a.svq"
    svq.write_bytes(codec.encode(*__import__("soundfile").read(SAMPLE), 8))
    assert main(["decode", str(svq), str(tmp_path / "a.wav"), "--seed", "3"]) == 2
    assert "--simulate-loss" in capsys.readouterr().err
    assert not (tmp_path / "a.wav").exists()


def test_the_cli_keeps_freed_memory_for_reuse(monkeypatch, tmp_path):
    """``main`` sets glibc's malloc to keep freed blocks up to 32 MB for reuse
    (the page faults it saves are measured in RESULTS.md §5, not here)."""
    import ctypes

    import codec.cli as cli

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(cli.sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    assert main(["modes"]) == 0
    assert calls == [(-3, 32 << 20), (-1, 256 << 20)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    calls.clear()
    monkeypatch.setattr(cli.sys, "platform", "darwin")
    assert main(["modes"]) == 0
    assert calls == []
