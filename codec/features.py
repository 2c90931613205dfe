"""LSF feature matrices of audio collections, with an on-disk cache.

``svq features DIR_OR_MANIFEST --out FILE.npy`` stores the LSFs of every
frame of every file in one ``(n_frames, 16)`` float64 matrix and a JSON
sidecar ``FILE.json`` naming the files, their frame ranges and a cache key.
A second run with the same inputs finds the key unchanged and returns at once.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from codec.analysis import lsf_features
from codec.audio import read_audio
from codec.errors import ParameterError
from codec.fileio import atomic_write

__all__ = ["AUDIO_EXTENSIONS", "FeatureSet", "list_audio", "collection_features"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
FEATURE_VERSION = 1  # bump when the analysis changes so caches are invalidated


@dataclass(frozen=True)
class FeatureSet:
    """LSF matrix of a collection and where each file's frames are."""

    lsf: npt.NDArray[np.float64]
    """All frames, shape (n_frames, 16)."""
    files: list[str]
    """Audio files in order."""
    offsets: npt.NDArray[np.int64]
    """Frame offsets, shape (len(files) + 1,): file i owns rows offsets[i]:offsets[i+1]."""
    key: str
    """Cache key (sha256 over the file list, sizes, mtimes and analysis version)."""


def list_audio(source: str | Path, *, split: str | None = None) -> list[Path]:
    """Audio files of a folder (recursively, sorted) or of a manifest CSV.

    A manifest has a ``file`` column with paths relative to the manifest's
    folder and optionally a ``split`` column filtered by ``split``.
    """
    src = Path(source)
    if not src.exists():
        raise ParameterError(f"{src}: not found")
    if src.is_dir():
        if split is not None and (src / "manifest.csv").exists():
            return list_audio(src / "manifest.csv", split=split)
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    elif src.is_file() and src.suffix.lower() == ".csv":
        with src.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows and "file" not in rows[0]:
            raise ParameterError(f"{src}: manifest has no 'file' column")
        files = [src.parent / r["file"] for r in rows if split is None or r.get("split") == split]
    elif src.is_file() and src.suffix.lower() in AUDIO_EXTENSIONS:
        files = [src]
    else:
        raise ParameterError(f"{src}: not a folder, a manifest .csv or an audio file")
    if not files:
        raise ParameterError(f"{src}: no audio files found")
    return files


def _cache_key(files: list[Path]) -> str:
    h = hashlib.sha256(f"svq-features-v{FEATURE_VERSION}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def collection_features(
    source: str | Path,
    *,
    out: str | Path | None = None,
    split: str | None = None,
    progress: bool = False,
) -> FeatureSet:
    """LSFs of every frame of every audio file in ``source``.

    Parameters
    ----------
    source : path
        Folder, manifest CSV or single audio file (see :func:`list_audio`).
    out : path, optional
        ``.npy`` cache file; its ``.json`` sidecar holds files, offsets and key.
        If both exist with the current key, they are loaded instead of recomputed.
        Written atomically.
    split : str, optional
        Manifest split to keep (``train``, ``dev``).
    progress : bool
        Show a progress bar.
    """
    files = list_audio(source, split=split)
    key = _cache_key(files)
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        cached = _load_cache(out_path, key)
        if cached is not None:
            return cached
    from tqdm import tqdm

    mats = []
    offsets = [0]
    for f in tqdm(files, desc="LSF features", unit="file", disable=not progress):
        audio, rate = read_audio(f)
        m = lsf_features(audio, rate)
        mats.append(m)
        offsets.append(offsets[-1] + m.shape[0])
    fs = FeatureSet(
        lsf=np.concatenate(mats, axis=0),
        files=[str(f) for f in files],
        offsets=np.asarray(offsets, dtype=np.int64),
        key=key,
    )
    if out_path is not None:
        _save_cache(out_path, fs)
    return fs


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _load_cache(path: Path, key: str) -> FeatureSet | None:
    side = _sidecar(path)
    if not (path.exists() and side.exists()):
        return None
    try:
        meta = json.loads(side.read_text())
        if meta.get("key") != key:
            return None
        lsf = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    offsets = np.asarray(meta["offsets"], dtype=np.int64)
    if lsf.ndim != 2 or offsets[-1] != lsf.shape[0]:
        return None
    return FeatureSet(lsf=lsf, files=list(meta["files"]), offsets=offsets, key=key)


def _save_cache(path: Path, fs: FeatureSet) -> None:
    atomic_write(path, lambda fh: np.save(fh, fs.lsf))
    meta = {
        "key": fs.key,
        "files": fs.files,
        "offsets": fs.offsets.tolist(),
        "version": FEATURE_VERSION,
    }
    atomic_write(_sidecar(path), json.dumps(meta, indent=1).encode())
