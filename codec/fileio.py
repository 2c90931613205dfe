"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


def atomic_write(path: str | Path, writer: Callable[[BinaryIO], object] | bytes) -> None:
    """Write ``path`` atomically.

    Parameters
    ----------
    path : path
        Destination; its folder is created if missing.
    writer : bytes or callable
        The bytes to write, or a function that writes to the open binary file.

    A failure (including KeyboardInterrupt) removes the temporary file and
    leaves any previous ``path`` untouched.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(writer, (bytes, bytearray)):
                fh.write(writer)
            else:
                writer(fh)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
