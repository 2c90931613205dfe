"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_python_api_example_runs(monkeypatch):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S)
    assert block is not None
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    audio = scope["audio"]
    assert np.concatenate(scope["out"]).shape == audio.shape  # type: ignore[attr-defined]
    assert scope["concealed"].shape == audio.shape  # type: ignore[attr-defined]
