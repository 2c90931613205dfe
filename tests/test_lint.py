"""ruff and mypy run as part of the test suite, so a lint error fails the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
        pytest.skip(f"{tool} is not installed (pip install -e '.[test]')")
    exe = shutil.which(tool) or str(Path(sys.executable).parent / tool)
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_clean():
    res = _run("ruff", "check", "codec", "tests", "recipes", "benchmarks")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_clean():
    res = _run("mypy")
    assert res.returncode == 0, res.stdout + res.stderr
