"""Small helpers shared by the recipes: data paths, speaker-balanced LSFs, hashing, output.

Nothing here does signal processing; recipes import :mod:`codec` for that.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import codec
from codec.errors import ParameterError
from codec.features import FeatureSet, collection_features, list_audio
from codec.fileio import atomic_write

__all__ = [
    "mel_filterbank",
    "REPO_ROOT",
    "SHARED_SPEECH",
    "DEFAULT_MANIFEST",
    "audio_files",
    "missing_data",
    "display_name",
    "settings_hash",
    "write_json",
    "markdown_table",
    "fmt_kbps",
    "parse_floats",
    "parse_names",
    "balance_speakers",
    "training_lsf",
    "data_content_key",
    "codec_fingerprint",
    "single_threaded_children",
    "summary_stats",
    "fmt_value",
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

    Raises
    ------
    ParameterError
        ``source`` is missing (the message says what data is needed and where
        the default is), or holds no audio.
    """
    problem = missing_data(source, flag="--data", needs="a folder or manifest .csv of speech")
    if problem:
        raise ParameterError(problem)
    files = list_audio(source, split=split)
    return files[:limit] if limit is not None else files


def missing_data(source: str | Path, *, flag: str, needs: str) -> str | None:
    """A one-line message when ``source`` does not exist, else None.

    The message names the path, what the recipe needs, the shared data set
    the defaults point to, and the option that gives another source.
    """
    src = Path(source)
    if src.exists():
        return None
    return (
        f"{flag} {src}: not found. This recipe needs {needs}; by default it reads the shared "
        f"speech set {DEFAULT_MANIFEST} (its manifest has train and dev splits). "
        f"Give {flag} FOLDER or {flag} MANIFEST.csv"
    )


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


def balance_speakers(
    fs: FeatureSet, *, max_share: float = 0.05, seed: int = 0
) -> npt.NDArray[np.int64]:
    """Row indices of ``fs.lsf`` where no speaker holds more than ``max_share`` of the frames.

    Speakers come from the ``speaker`` column of a ``manifest.csv`` beside the
    audio (one speaker per file otherwise). Over-represented speakers (VCTK
    p239 is a third of the train split) are subsampled at random.
    """
    speakers = _speakers(fs.files)
    n = fs.lsf.shape[0]
    owner = np.empty(n, dtype=object)
    for i, spk in enumerate(speakers):
        owner[fs.offsets[i] : fs.offsets[i + 1]] = spk
    rng = np.random.default_rng(seed)
    cap = max(1, int(max_share * n))
    keep = []
    for spk in dict.fromkeys(speakers):
        rows = np.nonzero(owner == spk)[0]
        if rows.size > cap:
            rows = np.sort(rng.choice(rows, cap, replace=False))
        keep.append(rows)
    return np.sort(np.concatenate(keep)).astype(np.int64)


def _speakers(files: list[str]) -> list[str]:
    table: dict[str, str] = {}
    for folder in {Path(f).resolve().parent.parent for f in files}:
        manifest = folder / "manifest.csv"
        if manifest.exists():
            with manifest.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    table[str((folder / row["file"]).resolve())] = row.get("speaker", row["file"])
    return [table.get(str(Path(f).resolve()), f) for f in files]


def training_lsf(
    source: str | Path, *, split: str | None, cache: Path, balance: bool = True
) -> tuple[npt.NDArray[np.float64], str]:
    """LSF training matrix of ``source`` (cached) and its data key (:func:`data_content_key`)."""
    fs = collection_features(source, out=cache, split=split, progress=True)
    rows = balance_speakers(fs) if balance else np.arange(fs.lsf.shape[0])
    return fs.lsf[rows], data_content_key([Path(f) for f in fs.files], source)


def data_content_key(files: Sequence[Path], source: str | Path) -> str:
    """SHA-256 over the files' names (relative to ``source``'s folder) and contents.

    The same data gives the same key on any machine, wherever it is stored and
    whatever its modification times (the feature cache's key uses those, to be fast).
    """
    h = hashlib.sha256(b"svq-data-v1\n")
    for f in files:
        digest = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        h.update(f"{display_name(f, source)}\0{digest.hexdigest()}\n".encode())
    return h.hexdigest()


def codec_fingerprint() -> str:
    """SHA-256 prefix over the codec package's sources, shipped codebooks and post-filter.

    Results computed by other codec code are stale (the recipes recompute or flag them).
    """
    root = Path(codec.__file__).resolve().parent
    h = hashlib.sha256(codec.__version__.encode())
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".cb", ".npz", ".json") and "__pycache__" not in p.parts:
            try:
                data = p.read_bytes()
            except OSError:  # a file replaced while we read: fingerprint what is there
                continue
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + data)
    return h.hexdigest()[:16]


@contextlib.contextmanager
def single_threaded_children() -> Iterator[None]:
    """Ask BLAS/OpenMP in worker processes for one thread each (one process per core)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def summary_stats(values: Iterable[float | None]) -> dict[str, float]:
    """Mean, median and 2.5 / 97.5 % quantiles of the finite values (NaN when none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": math.nan, "median": math.nan, "q025": math.nan, "q975": math.nan}
    q025, q975 = np.quantile(v, [0.025, 0.975])
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "q025": float(q025),
        "q975": float(q975),
    }


def fmt_value(x: float | None, digits: int) -> str:
    """A number for a Markdown table; an en dash for a missing or non-finite one."""
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def mel_filterbank(n_mels: int, n_fft: int, sr: int) -> npt.NDArray[np.float64]:
    """Triangular HTK-mel filters ``(n_mels, n_fft // 2 + 1)`` from 0 Hz to ``sr / 2``, peak 1.

    A band narrower than one FFT bin gets its nearest bin, so no band is empty.
    (The log-mel features of ``recipes.ann_search`` and ``recipes.vqvae``.)
    """

    def mel(f: Any) -> Any:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m: Any) -> Any:
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
    edges = hz(np.linspace(0.0, float(mel(sr / 2)), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    fb = np.asarray(np.maximum(0.0, np.minimum(up, down)), dtype=np.float64)
    for i in np.nonzero(fb.sum(axis=1) == 0)[0]:
        fb[i, int(np.argmin(np.abs(freqs - mid[i, 0])))] = 1.0
    return fb
