"""Small helpers shared by the recipes: training LSFs with speaker balancing."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt

from codec.features import FeatureSet, collection_features

__all__ = ["SPEECH", "training_lsf", "balance_speakers"]

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech"


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
    """LSF training matrix of ``source`` (cached) and the features' data key."""
    fs = collection_features(source, out=cache, split=split, progress=True)
    rows = balance_speakers(fs) if balance else np.arange(fs.lsf.shape[0])
    return fs.lsf[rows], fs.key
