"""Small helpers shared by the recipes: data paths, hashing, JSON and table output.

Nothing here does signal processing; recipes import :mod:`codec` for that.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codec.features import list_audio
from codec.fileio import atomic_write

__all__ = [
    "REPO_ROOT",
    "SHARED_SPEECH",
    "DEFAULT_MANIFEST",
    "audio_files",
    "display_name",
    "settings_hash",
    "write_json",
    "markdown_table",
    "fmt_kbps",
    "parse_floats",
    "parse_names",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SPEECH = REPO_ROOT.parent / "shared" / "data" / "speech"
DEFAULT_MANIFEST = SHARED_SPEECH / "manifest.csv"


def audio_files(source: str | Path, *, split: str | None, limit: int | None = None) -> list[Path]:
    """Audio files of a folder or manifest (:func:`codec.features.list_audio`), first ``limit``.

    Parameters
    ----------
    source : path
        Folder, manifest CSV or single audio file.
    split : str, optional
        Manifest split to keep; ignored for a folder without ``manifest.csv``.
    limit : int, optional
        Keep only the first ``limit`` files (in listing order).

    Returns
    -------
    list of Path
    """
    files = list_audio(source, split=split)
    return files[:limit] if limit is not None else files


def display_name(path: Path, source: str | Path) -> str:
    """``path`` relative to the data source's folder (the manifest's folder), else as given."""
    src = Path(source)
    base = src if src.is_dir() else src.parent
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def settings_hash(settings: Any, *, length: int = 12) -> str:
    """Short SHA-256 hex digest of a JSON-serialisable value (keys sorted)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _clean(value: Any) -> Any:
    """Replace non-finite floats by ``None`` so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, value: Any) -> None:
    """Write ``value`` as indented strict JSON (NaN/inf as ``null``), atomically."""
    text = json.dumps(_clean(value), indent=1, sort_keys=False, allow_nan=False)
    atomic_write(path, (text + "\n").encode())


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table (no trailing newline)."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_kbps(kbps: float) -> str:
    """Bitrate as a short key: ``8``, ``9.6``, ``13.2``."""
    return f"{kbps:g}"


def parse_floats(text: str) -> list[float]:
    """Comma-separated floats (``"8,9.6,13.2"``)."""
    return [float(t) for t in text.split(",") if t.strip()]


def parse_names(text: str) -> list[str]:
    """Comma-separated lower-case names, empty items dropped."""
    return [t.strip().lower() for t in text.split(",") if t.strip()]
