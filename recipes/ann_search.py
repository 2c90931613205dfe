"""Approximate nearest-neighbour search with compressed vectors: Recall@T of PVQ, RVQ and AVQ.

``python -m recipes.ann_search --out DIR [--quick] [--datasets sift,logmel]
[--bits 32,64] [--variants pvq,rvq,avq] [--methods kmeans,nsvq] [--no-faiss]
[--quiet] [--seed 0]``

The reference paper's SIFT1M experiment (database vectors compressed to 32 or
64 bits, exhaustive search by asymmetric distances, Recall@T) redone on data
that can be reached here; SIFT1M itself is not available on this machine.

Datasets (nothing is downloaded)
    ``sift``    128-dim SIFT descriptors (OpenCV ``cv2.SIFT_create``) of the
                sample images bundled in scikit-image's wheel.  Base and learn
                vectors come from the same 16 images under *disjoint*
                augmentations (base: scales 0.5, 0.75, 1, 1.5, 2 x rotations
                0, 40, 80 degrees; learn: scales 0.6, 1.25 x rotations 20, 60
                degrees); queries come from 4 held-out images (scales 0.8, 1,
                1.3, rotation 0 and 30 degrees), so no query image is in the
                database.  Random subsets of the sizes below are kept.
    ``logmel``  128-band log-mel frames (dB; 1024-point Hann window, 20 ms hop,
                HTK mel scale 0-8 kHz; frames more than 50 dB below the file's
                loudest frame dropped) of the shared speech set: train split
                for base and learn (disjoint random frames), dev split for the
                queries (other speakers' files).

Quantizers
    ``32`` bits = 4 codebooks x 256 codewords, ``64`` bits = 8 x 256 (``--quick``:
    16 codewords, i.e. 16 and 32 bits).  PVQ splits the 128 dimensions
    equally (32 or 16 per codebook); RVQ is greedy; AVQ encodes the database
    with beam ``--beam`` (default 1, greedy: on this 2-core machine beam 2
    costs about 2 ms per 128-dim vector at 8 x 256; ``--quick`` uses 2).
    ``kmeans``: :func:`codec.quantizers.train_quantizer` with 6 Lloyd
    iterations per k-means run and 1 joint refinement round (AVQ trains with
    beam 1); ``nsvq``: ``--steps`` (100) Adam steps of 1024 vectors, k-means
    initialisation (AVQ trains with beam 1).  Learn set 8000 vectors, base
    100000, 500 queries: a reduced setting chosen so the whole run fits in
    about half an hour on 2 shared cores (the paper trains far longer).
    faiss rows (``faiss-cpu``, optional): ``IndexPQ``,
    ``IndexResidualQuantizer`` (beam 1) and ``IndexLocalSearchQuantizer``
    (5 training iterations, 4 ILS iterations per encoding) with the same
    codebook counts and sizes, one thread.

Search and metrics
    :class:`codec.quantizers.AdcIndex` (exhaustive ADC, one thread of numpy)
    returns the top 100; ground truth is :func:`codec.quantizers.exact_search`
    on the uncompressed base.  Recall@T is the fraction of queries whose true
    nearest neighbour is among the first T returned (the paper's definition).
    ``encode_us``: wall time of encoding the base, per vector; ``search_ms``:
    wall time of the search, per query.

Outputs in ``--out``
    ``results.json``  rows: ``dataset, variant, method, bits, recall_at_1,
                      recall_at_10, recall_at_100, encode_us, search_ms`` plus
                      ``stages, bits_per_stage, library, recall_curve, mse,
                      train_s, n_base, n_learn, n_queries``.
    ``run.json``      command, sizes, wall time.
    ``results.md``    the tables.
    ``ann_recall.png`` Recall@T vs T per dataset and budget (copied to
                      ``docs/figures/ann_recall.png`` by a default run).
    ``data_*.npz``    cached dataset vectors (reused by a rerun).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from codec.errors import ParameterError
from codec.quantizers import AdcIndex, Quantizer, exact_search, train_quantizer
from recipes._common import (
    DEFAULT_MANIFEST,
    REPO_ROOT,
    markdown_table,
    mel_filterbank,
    missing_data,
    parse_names,
    settings_hash,
    write_json,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

VERSION = 1
DATASETS = ("sift", "logmel")
CURVE_T = (1, 2, 5, 10, 20, 50, 100)
ROW_KEYS = (
    "dataset",
    "variant",
    "method",
    "bits",
    "recall_at_1",
    "recall_at_10",
    "recall_at_100",
    "encode_us",
    "search_ms",
)
FIGURE = REPO_ROOT / "docs" / "figures" / "ann_recall.png"

# scikit-image's bundled sample images (no network); the last 4 give the queries
SIFT_BASE_IMAGES = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coins",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "text",
)
SIFT_QUERY_IMAGES = ("coffee", "rocket", "retina", "logo")
BASE_AUG = tuple((s, a) for s in (0.5, 0.75, 1.0, 1.5, 2.0) for a in (0.0, 40.0, 80.0))
LEARN_AUG = tuple((s, a) for s in (0.6, 1.25) for a in (20.0, 60.0))
QUERY_AUG = tuple((s, a) for s in (0.8, 1.0, 1.3) for a in (0.0, 30.0))


@dataclass(frozen=True)
class Sizes:
    """Vector counts and training effort of one run."""

    base: int
    learn: int
    queries: int
    bits_per_stage: int
    steps: int
    iters: int
    refine: int
    beam: int


FULL = Sizes(
    base=100_000,
    learn=8000,
    queries=500,
    bits_per_stage=8,
    steps=100,
    iters=6,
    refine=1,
    beam=1,
)
QUICK = Sizes(
    base=3000, learn=1500, queries=100, bits_per_stage=4, steps=20, iters=4, refine=1, beam=2
)


@dataclass
class Dataset:
    """Base, learn and query vectors of one dataset."""

    name: str
    base: FloatArray
    learn: FloatArray
    queries: FloatArray
    note: str


# ----------------------------------------------------------------------------- data


def _need(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ParameterError(f"{what} needs the {module} package: pip install 'svq[ann]'")


def _subset(x: FloatArray, n: int, rng: np.random.Generator) -> FloatArray:
    if x.shape[0] <= n:
        return x
    return x[np.sort(rng.choice(x.shape[0], n, replace=False))]


def _sift_of(
    images: Sequence[str], augs: Sequence[tuple[float, float]], progress: bool, desc: str
) -> FloatArray:
    import cv2
    import skimage.data
    from tqdm import tqdm

    sift = cv2.SIFT_create()  # type: ignore[attr-defined]
    out: list[FloatArray] = []
    with tqdm(total=len(images) * len(augs), desc=desc, disable=not progress) as bar:
        for name in images:
            img = np.asarray(getattr(skimage.data, name)())
            if img.ndim == 3:
                img = img[..., :3].mean(axis=2)
            if img.dtype != np.uint8:
                lo, hi = float(img.min()), float(img.max())
                img = (img - lo) / max(hi - lo, 1e-12) * 255.0
            gray = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
            for scale, angle in augs:
                h, w = gray.shape
                im = cv2.resize(
                    gray,
                    (max(16, round(w * scale)), max(16, round(h * scale))),
                    interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                )
                if angle:
                    hh, ww = im.shape
                    rot = cv2.getRotationMatrix2D((ww / 2, hh / 2), angle, 1.0)
                    im = cv2.warpAffine(im, rot, (ww, hh), borderMode=cv2.BORDER_REFLECT)
                _, des = sift.detectAndCompute(im, None)
                if des is not None:
                    out.append(des.astype(np.float64))
                bar.update(1)
    return np.concatenate(out) if out else np.empty((0, 128))


def load_sift(sizes: Sizes, quick: bool, rng: np.random.Generator, progress: bool) -> Dataset:
    """SIFT descriptors of scikit-image's sample images (see the module docstring)."""
    _need("cv2", "dataset 'sift'")
    _need("skimage", "dataset 'sift'")
    base_imgs: Sequence[str] = SIFT_BASE_IMAGES
    query_imgs: Sequence[str] = SIFT_QUERY_IMAGES
    base_aug: Sequence[tuple[float, float]] = BASE_AUG
    learn_aug: Sequence[tuple[float, float]] = LEARN_AUG
    query_aug: Sequence[tuple[float, float]] = QUERY_AUG
    if quick:
        base_imgs, query_imgs = base_imgs[:4], query_imgs[:1]
        base_aug, learn_aug, query_aug = ((1.0, 0.0),), ((0.6, 20.0),), ((1.0, 0.0),)
    base = _sift_of(base_imgs, base_aug, progress, "sift base")
    learn = _sift_of(base_imgs, learn_aug, progress, "sift learn")
    queries = _sift_of(query_imgs, query_aug, progress, "sift queries")
    note = (
        f"SIFT of {len(base_imgs)} scikit-image sample images x {len(base_aug)} augmentations "
        f"(base; {base.shape[0]} descriptors before subsampling), the same images x "
        f"{len(learn_aug)} other augmentations (learn), {len(query_imgs)} held-out images x "
        f"{len(query_aug)} augmentations (queries)"
    )
    return Dataset(
        "sift",
        _subset(base, sizes.base, rng),
        _subset(learn, sizes.learn, rng),
        _subset(queries, sizes.queries, rng),
        note,
    )


def logmel_frames(
    audio: FloatArray, fb: FloatArray, n_fft: int = 1024, hop: int = 320
) -> FloatArray:
    """Log-mel frames (dB) of one signal, frames 50 dB below the loudest dropped."""
    if audio.shape[0] < n_fft:
        return np.empty((0, fb.shape[0]))
    n = 1 + (audio.shape[0] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(audio[idx] * np.hanning(n_fft)[None, :], axis=1)) ** 2
    db = 10.0 * np.log10(spec @ fb.T + 1e-10)
    energy = 10.0 * np.log10(spec.sum(axis=1) + 1e-10)
    keep = energy >= energy.max() - 50.0
    out: FloatArray = db[keep]
    return out


def load_logmel(
    sizes: Sizes, manifest: Path, rng: np.random.Generator, progress: bool, quick: bool
) -> Dataset:
    """Log-mel frames of the speech manifest's train (base, learn) and dev (queries) splits."""
    import soundfile as sf
    from tqdm import tqdm

    problem = missing_data(manifest, flag="--data", needs="speech (train and dev splits)")
    if problem:
        raise ParameterError(problem)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    folder = manifest.parent
    files = {s: [folder / r["file"] for r in rows if r.get("split") == s] for s in ("train", "dev")}
    if not files["train"] or not files["dev"]:
        raise ParameterError(f"--data {manifest}: needs files in both the train and dev splits")
    if quick:  # a few files are enough for the tiny sizes
        files = {s: [f[i] for i in rng.permutation(len(f))[:12]] for s, f in files.items()}
    fb = mel_filterbank(128, 1024, 16000)
    parts: dict[str, FloatArray] = {}
    for split, paths in files.items():
        frames = []
        for p in tqdm(paths, desc=f"logmel {split}", disable=not progress):
            audio, sr = sf.read(p, dtype="float64", always_2d=True)
            if sr != 16000:
                raise ParameterError(f"{p}: expected 16 kHz audio, got {sr} Hz")
            frames.append(logmel_frames(audio.mean(axis=1), fb))
        parts[split] = np.concatenate(frames)
    train = parts["train"][rng.permutation(parts["train"].shape[0])]
    n_base = min(sizes.base, train.shape[0] // 2)
    base_x = train[:n_base]
    learn_x = train[n_base : n_base + sizes.learn]
    note = (
        f"log-mel frames: {parts['train'].shape[0]} train frames of {len(files['train'])} files "
        f"(disjoint random base/learn subsets), {parts['dev'].shape[0]} dev frames of "
        f"{len(files['dev'])} files (queries)"
    )
    return Dataset("logmel", base_x, learn_x, _subset(parts["dev"], sizes.queries, rng), note)


def load_dataset(
    name: str, sizes: Sizes, out: Path, manifest: Path, quick: bool, seed: int, progress: bool
) -> Dataset:
    """Build (or reload from ``out/data_*.npz``) one dataset."""
    key = settings_hash([VERSION, name, sizes.base, sizes.learn, sizes.queries, quick, seed])
    cache = out / f"data_{name}_{key}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            return Dataset(name, z["base"], z["learn"], z["queries"], str(z["note"]))
    rng = np.random.default_rng(seed)
    if name == "sift":
        ds = load_sift(sizes, quick, rng, progress)
    else:
        ds = load_logmel(sizes, manifest, rng, progress, quick)
    np.savez(cache, base=ds.base, learn=ds.learn, queries=ds.queries, note=np.array(ds.note))
    return ds


# ----------------------------------------------------------------------------- methods


def recall_curve(ids: IntArray, truth: IntArray) -> dict[int, float]:
    """Recall@T for :data:`CURVE_T` (T up to the number of returned ids)."""
    hit = ids == truth[:, None]
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), ids.shape[1])
    return {t: float(np.mean(first < t)) for t in CURVE_T if t <= ids.shape[1]}


def train_ours(
    x: FloatArray, variant: str, method: str, stages: int, sizes: Sizes, seed: int, progress: bool
) -> Quantizer:
    """Train one of the library's quantizers with the recipe's effort settings."""
    opts: dict[str, Any] = {"progress": progress}
    if variant == "avq":
        opts.update(beam=sizes.beam, train_beam=1)
    if method == "kmeans":
        opts.update(
            iters=sizes.iters, refine_iters=sizes.refine, refine_sample=10000, final_iters=1
        )
    else:
        opts.update(steps=sizes.steps, batch_size=1024, init_sample=10000)
    return train_quantizer(
        x,
        variant=variant,
        stages=stages,
        bits=sizes.bits_per_stage,
        method=method,
        seed=seed,
        **opts,
    )


def run_ours(
    ds: Dataset, q: Quantizer, truth: IntArray, k: int
) -> tuple[dict[int, float], float, float, float]:
    """Index the base with ``q``; Recall@T, encode µs/vector, search ms/query, base MSE."""
    t0 = time.perf_counter()
    codes = q.encode(ds.base)
    encode_us = (time.perf_counter() - t0) / ds.base.shape[0] * 1e6
    index = AdcIndex(q)
    index.add_codes(codes)
    t0 = time.perf_counter()
    _, ids = index.search(ds.queries, k)
    search_ms = (time.perf_counter() - t0) / ds.queries.shape[0] * 1e3
    err = ds.base - q.decode(codes)
    mse = float(np.mean(np.einsum("ij,ij->i", err, err)))
    return recall_curve(ids, truth), encode_us, search_ms, mse


def run_faiss(
    ds: Dataset, kind: str, stages: int, nbits: int, truth: IntArray, k: int, seed: int
) -> tuple[dict[int, float], float, float, float, float]:
    """faiss PQ / RQ / LSQ: Recall@T, encode µs, search ms, base MSE, train s."""
    import faiss

    faiss.omp_set_num_threads(1)
    d = ds.base.shape[1]
    index: Any
    if kind == "pq":
        index = faiss.IndexPQ(d, stages, nbits)
    elif kind == "rq":
        index = faiss.IndexResidualQuantizer(d, stages, nbits)
        index.rq.max_beam_size = 1
    else:
        index = faiss.IndexLocalSearchQuantizer(d, stages, nbits)
        index.lsq.random_seed = seed
        index.lsq.train_iters = 5
        index.lsq.encode_ils_iters = 4
    learn = np.ascontiguousarray(ds.learn, dtype=np.float32)
    base = np.ascontiguousarray(ds.base, dtype=np.float32)
    t0 = time.perf_counter()
    index.train(learn)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    codes = index.sa_encode(base)
    encode_us = (time.perf_counter() - t0) / base.shape[0] * 1e6
    index.add(base)
    t0 = time.perf_counter()
    _, ids = index.search(np.ascontiguousarray(ds.queries, dtype=np.float32), k)
    search_ms = (time.perf_counter() - t0) / ds.queries.shape[0] * 1e3
    err = ds.base - index.sa_decode(codes).astype(np.float64)
    mse = float(np.mean(np.einsum("ij,ij->i", err, err)))
    return recall_curve(ids.astype(np.int64), truth), encode_us, search_ms, mse, train_s


# ----------------------------------------------------------------------------- report


def _f(x: float | None, nd: int = 3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def write_markdown(path: Path, rows: list[dict[str, Any]], header: dict[str, Any]) -> str:
    """``results.md``: caveat, datasets, one table per dataset."""
    lines = [
        "# ANN search with compressed vectors",
        "",
        f"Command: `{header['command']}` ({header['wall_s']} s).",
        "",
        "SIFT1M itself is not reachable here: the `sift` rows use SIFT descriptors of "
        "scikit-image's sample images and the `logmel` rows log-mel frames of our speech, "
        "so compare the *shapes* (ranking of the quantizers, Recall@T vs T) with the "
        "paper's figure, not the absolute numbers.",
        "",
        "Recall@T: fraction of queries whose true nearest neighbour (exact search on the "
        "uncompressed base) is among the first T returned by exhaustive ADC search. "
        f"Codebooks of {header['codewords']} codewords; encode µs per base vector and "
        "search ms per query, wall time, one thread (faiss) / numpy on a shared 2-core machine.",
        "",
    ]
    for ds in header["datasets"]:
        info = header["data"][ds]
        lines += [
            f"## {ds}",
            "",
            f"{info['note']}. Base {info['n_base']}, learn {info['n_learn']}, "
            f"queries {info['n_queries']}.",
            "",
        ]
        table = []
        for r in sorted(
            (r for r in rows if r["dataset"] == ds),
            key=lambda r: (r["bits"], r["library"], r["variant"], r["method"]),
        ):
            table.append(
                [
                    r["bits"],
                    f"{r['stages']}x{1 << r['bits_per_stage']}",
                    r["variant"],
                    r["method"],
                    r["library"],
                    _f(r["recall_at_1"]),
                    _f(r["recall_at_10"]),
                    _f(r["recall_at_100"]),
                    _f(r["mse"], 1),
                    _f(r["encode_us"], 1),
                    _f(r["search_ms"], 2),
                    _f(r["train_s"], 1),
                ]
            )
        lines.append(
            markdown_table(
                [
                    "bits",
                    "codebooks",
                    "variant",
                    "method",
                    "library",
                    "R@1",
                    "R@10",
                    "R@100",
                    "base MSE",
                    "encode µs",
                    "search ms/query",
                    "train s",
                ],
                table,
            )
        )
        lines.append("")
    lines += [
        "MSE: mean squared reconstruction error of the base vectors. faiss rows: PQ "
        "(IndexPQ), RQ (IndexResidualQuantizer, beam 1), LSQ (IndexLocalSearchQuantizer, "
        "5 training iterations, 4 ILS iterations per encoding).",
        "",
    ]
    text = "\n".join(lines)
    path.write_text(text)
    return text


def _label(r: dict[str, Any]) -> str:
    if r["library"] == "faiss":
        return f"faiss-{r['variant']}"
    return f"{r['variant']}-{r['method']}"


_COLORS = {
    "pvq": "tab:green",
    "rvq": "tab:blue",
    "avq": "tab:red",
    "pq": "tab:olive",
    "rq": "tab:cyan",
    "lsq": "tab:purple",
}


def plot(path: Path, rows: list[dict[str, Any]], datasets: Sequence[str]) -> None:
    """Recall@T vs T, one panel per dataset (columns) and budget (rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r["bits"] for r in rows})
    fig, axes = plt.subplots(
        len(budgets),
        len(datasets),
        figsize=(4.2 * len(datasets), 3.2 * len(budgets)),
        squeeze=False,
        sharey=True,
    )
    for i, bits in enumerate(budgets):
        for j, ds in enumerate(datasets):
            ax = axes[i][j]
            for r in rows:
                if r["dataset"] != ds or r["bits"] != bits:
                    continue
                ts = sorted(int(t) for t in r["recall_curve"])
                ax.plot(
                    ts,
                    [r["recall_curve"][str(t)] for t in ts],
                    color=_COLORS.get(r["variant"], "k"),
                    linestyle={"kmeans": "-", "nsvq": "--"}.get(r["method"], ":"),
                    marker={"kmeans": "o", "nsvq": "^"}.get(r["method"], "s"),
                    markersize=3,
                    linewidth=1.2,
                    label=_label(r),
                )
            ax.set_xscale("log")
            ax.set_ylim(0, 1.02)
            ax.grid(True, which="both", alpha=0.3)
            ax.set_title(f"{ds}, {bits} bits", fontsize=9)
            if i == len(budgets) - 1:
                ax.set_xlabel("T")
            if j == 0:
                ax.set_ylabel("Recall@T")
            ax.legend(fontsize=6, loc="lower right", ncol=2)
    fig.suptitle(
        "Exhaustive ADC search: Recall@T (solid k-means, dashed NSVQ, dotted faiss)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- CLI


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the recipe."""
    p = argparse.ArgumentParser(
        prog="python -m recipes.ann_search", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--out", default="out/ann_search", help="output folder (%(default)s)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny sizes for tests: {QUICK.base} base vectors, 16-codeword codebooks",
    )
    p.add_argument("--datasets", default="sift,logmel", help="datasets (%(default)s)")
    p.add_argument(
        "--bits",
        type=_ints,
        default=[32, 64],
        help="budgets with 256-codeword codebooks: 32 = 4 codebooks, 64 = 8 (32,64)",
    )
    p.add_argument("--variants", default="pvq,rvq,avq", help="quantizer variants (%(default)s)")
    p.add_argument("--methods", default="kmeans,nsvq", help="training methods (%(default)s)")
    p.add_argument("--no-faiss", action="store_true", help="leave out the faiss PQ/RQ/LSQ rows")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-row lines")
    p.add_argument(
        "--seed", type=int, default=0, help="data sampling and training seed (%(default)s)"
    )
    p.add_argument(
        "--data", default=str(DEFAULT_MANIFEST), help="speech manifest for 'logmel' (%(default)s)"
    )
    p.add_argument("--base", type=int, default=None, help=f"base vectors (default {FULL.base})")
    p.add_argument("--learn", type=int, default=None, help=f"learn vectors (default {FULL.learn})")
    p.add_argument(
        "--queries", type=int, default=None, help=f"query vectors (default {FULL.queries})"
    )
    p.add_argument(
        "--steps", type=int, default=None, help=f"NSVQ Adam steps (default {FULL.steps})"
    )
    p.add_argument(
        "--beam", type=int, default=None, help=f"AVQ encoding beam (default {FULL.beam})"
    )
    return p


def _sizes(args: argparse.Namespace) -> Sizes:
    s = QUICK if args.quick else FULL
    over = {
        name: getattr(args, name)
        for name in ("base", "learn", "queries", "steps", "beam")
        if getattr(args, name) is not None
    }
    for name, v in over.items():
        if v < 1:
            raise ParameterError(f"--{name} must be >= 1, got {v}")
    return Sizes(**{**s.__dict__, **over})


def main(argv: Sequence[str] | None = None) -> int:
    """Build the datasets, train, index, search and report; returns the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    datasets = parse_names(args.datasets)
    variants = parse_names(args.variants)
    methods = parse_names(args.methods)
    for what, got, allowed in (
        ("--datasets", datasets, DATASETS),
        ("--variants", variants, ("pvq", "rvq", "avq")),
        ("--methods", methods, ("kmeans", "nsvq", "ste")),
    ):
        bad = [g for g in got if g not in allowed]
        if bad or not got:
            p.error(
                f"{what}: expected names from {', '.join(allowed)}, got {', '.join(got) or 'none'}"
            )
    if any(b < 8 or b % 8 for b in args.bits):
        p.error("--bits: each budget must be a multiple of 8 (codebooks of 256 codewords)")
    try:
        sizes = _sizes(args)
    except ParameterError as exc:
        p.error(str(exc))
    progress = not args.quiet and sys.stderr.isatty()
    say: Callable[[str], None] = (
        (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    )
    use_faiss = not args.no_faiss
    if use_faiss and importlib.util.find_spec("faiss") is None:
        print("note: faiss is not installed, no faiss rows (pip install 'svq[ann]')")
        use_faiss = False
    if "nsvq" in methods and importlib.util.find_spec("torch") is None:
        p.error("method 'nsvq' needs torch: pip install 'svq[train]' (or --methods kmeans)")

    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else list(argv)
    header: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "recipes.ann_search", *given]),
        "datasets": datasets,
        "sizes": sizes.__dict__,
        "codewords": 1 << sizes.bits_per_stage,
        "data": {},
    }
    rows: list[dict[str, Any]] = []

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        say(_line(row))
        write_json(out / "results.json", rows)  # partial results as they come

    k = 100
    for name in datasets:
        try:
            ds = load_dataset(name, sizes, out, Path(args.data), args.quick, args.seed, progress)
        except ParameterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if ds.base.shape[0] < k or ds.learn.shape[0] < 1 << sizes.bits_per_stage:
            print(
                f"error: dataset {name!r} is too small ({ds.base.shape[0]} base vectors)",
                file=sys.stderr,
            )
            return 2
        t0 = time.perf_counter()
        _, gt = exact_search(ds.base, ds.queries, 1)
        truth = gt[:, 0]
        header["data"][name] = {
            "note": ds.note,
            "n_base": int(ds.base.shape[0]),
            "n_learn": int(ds.learn.shape[0]),
            "n_queries": int(ds.queries.shape[0]),
            "exact_search_s": round(time.perf_counter() - t0, 2),
        }
        n_b, n_l, n_q = ds.base.shape[0], ds.learn.shape[0], ds.queries.shape[0]
        say(f"{name}: base {n_b} x {ds.base.shape[1]}, learn {n_l}, queries {n_q}")
        common = {
            "dataset": name,
            "n_base": int(ds.base.shape[0]),
            "n_learn": int(ds.learn.shape[0]),
            "n_queries": int(ds.queries.shape[0]),
        }
        for bits in args.bits:
            stages = bits // 8
            total_bits = stages * sizes.bits_per_stage
            for variant in variants:
                for method in methods:
                    t0 = time.perf_counter()
                    q = train_ours(ds.learn, variant, method, stages, sizes, args.seed, progress)
                    train_s = time.perf_counter() - t0
                    curve, enc, srch, mse = run_ours(ds, q, truth, k)
                    record(
                        _row(common, variant, method, "svq", total_bits, stages, sizes,
                             curve, enc, srch, mse, train_s, q.beam)
                    )  # fmt: skip
            if use_faiss:
                for kind in ("pq", "rq", "lsq"):
                    curve, enc, srch, mse, train_s = run_faiss(
                        ds, kind, stages, sizes.bits_per_stage, truth, k, args.seed
                    )
                    record(
                        _row(common, kind, kind, "faiss", total_bits, stages, sizes,
                             curve, enc, srch, mse, train_s, 1)
                    )  # fmt: skip
    header["wall_s"] = round(time.perf_counter() - t_start, 1)
    write_json(out / "results.json", rows)
    write_json(out / "run.json", {**header, "args": vars(args), "version": VERSION})
    write_markdown(out / "results.md", rows, header)
    plot(out / "ann_recall.png", rows, datasets)
    default_run = (
        not args.quick
        and all(getattr(args, n) is None for n in ("base", "learn", "queries", "steps", "beam"))
        and set(datasets) == set(DATASETS)
        and sorted(args.bits) == [32, 64]
    )
    if default_run:
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "ann_recall.png", FIGURE)
    say(f"wrote {out / 'results.json'}, results.md, ann_recall.png ({header['wall_s']} s)")
    return 0


def _row(
    common: dict[str, Any],
    variant: str,
    method: str,
    library: str,
    bits: int,
    stages: int,
    sizes: Sizes,
    curve: dict[int, float],
    encode_us: float,
    search_ms: float,
    mse: float,
    train_s: float,
    beam: int,
) -> dict[str, Any]:
    def at(t: int) -> float:
        return curve[max(x for x in curve if x <= t)]

    return {
        "dataset": common["dataset"],
        "variant": variant,
        "method": method,
        "bits": bits,
        "recall_at_1": at(1),
        "recall_at_10": at(10),
        "recall_at_100": at(100),
        "encode_us": round(encode_us, 3),
        "search_ms": round(search_ms, 4),
        "library": library,
        "stages": stages,
        "bits_per_stage": sizes.bits_per_stage,
        "beam": beam,
        "recall_curve": {str(t): v for t, v in curve.items()},
        "mse": mse,
        "train_s": round(train_s, 2),
        **{k: v for k, v in common.items() if k != "dataset"},
    }


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['dataset']:7s} {r['bits']:3d} bits {_label(r):14s} R@1 {r['recall_at_1']:.3f} "
        f"R@10 {r['recall_at_10']:.3f} R@100 {r['recall_at_100']:.3f}  "
        f"encode {r['encode_us']:.1f} us  search {r['search_ms']:.2f} ms  "
        f"train {r['train_s']:.1f} s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
