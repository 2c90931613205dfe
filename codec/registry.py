"""Codebook registry: shipped envelope codebooks and lookup by content hash.

Shipped codebooks live in ``codec/data/NAME.cb`` (made by
``python -m recipes.train_default_codebooks``). A bitstream names its
codebook by the first 16 bytes of the codebook's SHA-256 content hash; the
decoder looks for it among the shipped codebooks, the files given by the
caller, and the ``.cb`` files in the folders of the ``SVQ_CODEBOOK_PATH``
environment variable (``os.pathsep``-separated).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from codec.envelope import EnvelopeCoder
from codec.errors import BitstreamError, CodecError, ParameterError
from codec.quantizers import load_codebook

__all__ = [
    "DATA_DIR",
    "CodebookEntry",
    "shipped_codebooks",
    "path_codebooks",
    "list_codebooks",
    "load_envelope",
    "find_envelope",
    "hash_bytes",
]

DATA_DIR = Path(__file__).resolve().parent / "data"


def shipped_codebooks() -> dict[str, Path]:
    """Names and paths of the codebooks shipped with the package."""
    return {p.stem: p for p in sorted(DATA_DIR.glob("*.cb"))}


@functools.lru_cache(maxsize=1)
def _shipped_hashes() -> dict[bytes, str]:
    """Header hash -> name of the shipped codebooks, from ``data/CODEBOOKS.json``.

    Lets the decoder load only the codebook a stream names instead of every
    shipped one. A hint only: the codebook found is still checked by its own
    content hash, and a missing or stale index falls back to trying them all.
    """
    import json

    try:
        index = json.loads((DATA_DIR / "CODEBOOKS.json").read_text())
        return {hash_bytes(v["content_hash"]): k for k, v in index.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def hash_bytes(content_hash: str) -> bytes:
    """The 16 header bytes that name a codebook (first half of its SHA-256)."""
    return bytes.fromhex(content_hash)[:16]


@functools.lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int) -> EnvelopeCoder:
    q = load_codebook(path)  # memoryless or predictive
    return EnvelopeCoder(q, Path(path).stem)


def load_envelope(name_or_path: str | os.PathLike[str]) -> EnvelopeCoder:
    """Load a shipped codebook by name (e.g. ``avq-4x6``) or any codebook file."""
    text = os.fspath(name_or_path)
    shipped = shipped_codebooks()
    if text in shipped:
        path = shipped[text]
    else:
        path = Path(text)
        if not path.is_file():
            names = ", ".join(shipped) or "none"
            raise ParameterError(f"no codebook {text!r} (shipped: {names}; or give a .cb file)")
    return _load(str(path.resolve()), path.stat().st_mtime_ns)


def path_codebooks() -> list[Path]:
    """The ``.cb`` files in the folders of ``SVQ_CODEBOOK_PATH``, in path order."""
    paths: list[Path] = []
    for folder in os.environ.get("SVQ_CODEBOOK_PATH", "").split(os.pathsep):
        if folder:
            paths += sorted(Path(folder).glob("*.cb"))
    return paths


class CodebookEntry(NamedTuple):
    """A codebook the decoder can find by itself (``svq codebooks``)."""

    name: str
    path: Path
    origin: str
    """``shipped`` or ``SVQ_CODEBOOK_PATH``."""
    content_hash: str | None
    """Full SHA-256 content hash; None when the file cannot be loaded."""
    description: str
    """Variant, stages x bits and total bits, or why the file cannot be loaded."""


def list_codebooks() -> list[CodebookEntry]:
    """Shipped codebooks, then those found on ``SVQ_CODEBOOK_PATH``."""
    found = [(p, "shipped") for p in shipped_codebooks().values()]
    found += [(p, "SVQ_CODEBOOK_PATH") for p in path_codebooks()]
    entries = []
    for path, origin in found:
        try:
            env = _load(str(path.resolve()), path.stat().st_mtime_ns)
        except (CodecError, OSError) as exc:
            entries.append(CodebookEntry(path.stem, path, origin, None, f"unreadable: {exc}"))
            continue
        entries.append(CodebookEntry(path.stem, path, origin, env.content_hash, env.description))
    return entries


def find_envelope(
    codebook_hash: bytes, extra: Iterable[str | os.PathLike[str]] = ()
) -> EnvelopeCoder:
    """The codebook whose content hash starts with ``codebook_hash`` (16 bytes).

    ``extra`` codebooks (files or shipped names, given by the caller) are tried
    first; one that cannot be loaded is an error, while unreadable files among
    the shipped ones and on ``SVQ_CODEBOOK_PATH`` are skipped.

    Raises
    ------
    BitstreamError
        No known codebook has that hash (the message names the hash, and the
        given codebooks' own hashes when they do not match).
    """
    given: list[tuple[str, str, str]] = []
    for p in extra:
        env = load_envelope(p)
        if hash_bytes(env.content_hash) == codebook_hash:
            return env
        given.append((os.fspath(p), env.content_hash, env.kind))
    shipped = shipped_codebooks()
    candidates = list(shipped.values()) + path_codebooks()
    hinted = shipped.get(_shipped_hashes().get(bytes(codebook_hash), ""))
    if hinted is not None:  # the indexed one first; the rest only if it fails the check
        candidates.remove(hinted)
        candidates.insert(0, hinted)
    for path in candidates:
        try:
            env = load_envelope(path)
        except CodecError:  # unreadable or tampered candidates are skipped, not fatal
            continue
        if hash_bytes(env.content_hash) == codebook_hash:
            return env
    if given:
        name, h, kind = given[0]
        raise BitstreamError(
            f"codebook {name} ({kind}) does not match the stream: its hash is "
            f"{hash_bytes(h).hex()}, the stream's codebook is {codebook_hash.hex()}"
        )
    raise BitstreamError(
        f"unknown codebook {codebook_hash.hex()}: not shipped; pass it with --codebook "
        "or put it in a folder listed in SVQ_CODEBOOK_PATH"
    )
