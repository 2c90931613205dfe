"""The README's Python example runs as written, and its command lines parse with the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from codec.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _python_example() -> str:
    block = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S)
    assert block is not None
    return block.group(1)


def _run_example(code: str, monkeypatch) -> dict[str, object]:
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    audio = scope["audio"]
    assert np.concatenate(scope["out"]).shape == audio.shape  # type: ignore[attr-defined]
    assert scope["concealed"].shape == audio.shape  # type: ignore[attr-defined]
    return scope


def test_python_api_example_runs(monkeypatch):
    scope = _run_example(_python_example(), monkeypatch)
    assert scope["q"].config.method == "kmeans"  # type: ignore[attr-defined]


@pytest.mark.slow
def test_python_api_example_with_nsvq(monkeypatch):
    """The example's training with method="nsvq", as its comment offers (about 40 s)."""
    pytest.importorskip("torch")
    code = _python_example()
    assert 'method="kmeans"' in code and 'method="nsvq"' in code
    scope = _run_example(code.replace('method="kmeans"', 'method="nsvq"'), monkeypatch)
    assert scope["q"].config.method == "nsvq"  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- CLI section

_PLACEHOLDERS = {"RATE": "0.1", "N": "2", "HZ": "8000"}


def _cli_section() -> str:
    m = re.search(r"\n## Command line\n(.*?)\n## ", README, re.S)
    assert m is not None
    return m.group(1)


def _expand(tokens: list[str]) -> list[list[str]]:
    """Concrete argument lists from a synopsis: every bracketed part included, and each
    alternative of ``a|b`` tried once (the others at their first alternative)."""
    flat = [t.strip("[]") for t in tokens]
    flat = [t for t in flat if t]
    choices = [t.split("|") if "|" in t else [t] for t in flat]
    variants = [[c[0] for c in choices]]
    for i, c in enumerate(choices):
        for alt in c[1:]:
            v = [x[0] for x in choices]
            v[i] = alt
            variants.append(v)
    return [[_PLACEHOLDERS.get(t, "x" if t.isupper() else t) for t in v] for v in variants]


def _synopsis_commands() -> list[list[str]]:
    block = re.search(r"```\n(svq .*?)```", _cli_section(), re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.startswith("svq ")]
    assert len(lines) >= 8
    return [v[1:] for line in lines for v in _expand(line.split())]


def _inline_commands() -> list[list[str]]:
    """Whole ``svq`` commands in the section's inline code (a pipe, a redirection or at least
    two arguments; ``svq info`` in a sentence names a command), split at pipes."""
    found = []
    prose = re.sub(r"```.*?```", "", _cli_section(), flags=re.S)
    for span in re.findall(r"`([^`]*\bsvq [^`]*)`", prose):
        words = shlex.split(span)
        if len(words) < 4 and not {"|", "<", ">"} & set(words):
            continue
        command: list[str] = []
        for w in [*words, "|"]:
            if w == "|":
                if command and command[0] == "svq":
                    found.append(command[1:])
                command = []
            elif w in ("<", ">"):
                command.append("\0")  # the next word is a redirection target
            elif command and command[-1] == "\0":
                command.pop()
            else:
                command.append(w)
    assert len(found) >= 5
    return found


@pytest.mark.parametrize("argv", _synopsis_commands() + _inline_commands(), ids=" ".join)
def test_readme_command_lines_parse(argv, capsys):
    parser = build_parser()
    if argv == ["--version"]:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        assert exc.value.code == 0
        return
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # pragma: no cover - the failure message is the point
        pytest.fail(f"README line does not parse: svq {' '.join(argv)}: {capsys.readouterr().err}")
    assert args.command == argv[0]


def test_readme_recipe_commands_exist():
    for module in re.findall(r"python -m recipes\.(\w+)", README):
        assert (ROOT / "recipes" / f"{module}.py").is_file(), module
