"""Packaging: every file the codec needs at run time is declared as package data."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")
def test_shipped_codebooks_are_package_data():
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["codec"]
    needed = [p.relative_to(ROOT / "codec").as_posix() for p in (ROOT / "codec" / "data").iterdir()]
    needed.append("py.typed")
    assert needed
    missing = [f for f in needed if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
