"""MSE of AVQ, RVQ and PVQ on 64-dimensional synthetic data (the reference paper's Figure 2).

``python -m recipes.synthetic_vq [--out DIR] [--bits 12,16,...,40] [--methods kmeans,ste,nsvq]
[--grad-bits 12,16,20,24] [--n N] [--n-test N] [--quick]``

The data experiment of Vali & Bäckström (ICASSP 2023, Figure 2): ``M = 4``
codebooks of 3..10 bits (12..40 bits per vector) on 64-dimensional correlated
and uncorrelated Gaussian data, trained on ``--n`` vectors and scored by the
MSE on a separate, independently drawn test set of ``--n-test`` vectors.

Data (seeded; the paper does not publish its generator)
    ``uncorrelated``  i.i.d. Gaussian, variance ``SIGMA2 = 2`` per dimension.
    ``correlated``    Gaussian with covariance ``SIGMA2 * Q T Q'``, where
                      ``T_ij = RHO**|i - j|`` (AR(1), ``RHO = 0.99``) and ``Q`` is a
                      seeded random orthogonal matrix.  The spectrum is that of a
                      strongly correlated AR(1) process (two eigenvalues hold 92 %
                      of the energy), but the rotation spreads every principal
                      direction over all 64 coordinates: no split into contiguous
                      sub-vectors can isolate the correlation, so a product
                      quantizer has to spend its bits on the same few latent
                      directions in every sub-vector.  Without the rotation the
                      AR(1) correlation is local, most of it falls inside the
                      16-dimensional PVQ blocks, and PVQ comes much closer to RVQ
                      than in the paper.
    Both have the same total variance (128 per vector).

MSE
    The squared Euclidean error per 64-dimensional vector (summed over the
    dimensions), averaged over the test vectors.  With ``SIGMA2 = 2`` the
    uncorrelated curves land on the paper's scale (about 110-118 at 12 bits);
    the correlated 12-bit RVQ/AVQ points also come close to the paper's (about
    5-6).  The absolute scale of the paper's correlated data is unknown, so only
    the shape (AVQ <= RVQ << PVQ on correlated data; PVQ as good as the others
    on uncorrelated data) should be compared.

Training data and budget (default run; wall times in the report)
    * Each cell trains on the first ``max(--n, --per-codeword * K)`` vectors of
      one seeded draw: 16384 for K <= 256, 32768 at 36 bits (K = 512) and 65536
      at 40 bits (K = 1024), i.e. at least 64 vectors per codeword.  With fewer
      the large codebooks overfit: the test MSE stops falling while the
      training MSE keeps falling.
    * k-means (LBG) for every bit budget: Lloyd iterations 20 (K <= 32) or 10,
      k-means++ seeding on 4096 vectors, joint RVQ/AVQ refinement on random
      subsets of 4096 vectors (4 rounds; RVQ then 1 full-data round), AVQ
      refinement searched with beam 2 (the encoder uses beam 8).
    * AVQ k-means with K >= 512 codewords (36 and 40 bits): the library's joint
      least-squares update solves one ``(MK x MK)`` system per output dimension
      (64 of them) and would need 2.1 / 8.6 GB at K = 512 / 1024; those AVQ rows
      use the RVQ k-means codebooks of the same budget, searched with the AVQ
      beam search, and carry a ``note`` saying so.
    * STE and NSVQ at ``--grad-bits`` (default 12, 16, 20, 24), ``--steps``
      Adam steps (300) of 1024 vectors, AVQ assignments searched with beam 2
      during training (their AVQ training runs a beam search on every batch).
    * ``train_mse`` is measured on the first ``--n-test`` training vectors.

Outputs in ``--out`` (default ``out/synthetic_vq``)
    ``results.json``    ``{"settings": ..., "rows": [...]}``; rows have ``data,
                        variant, method, bits, stages, bits_per_stage, mse,
                        train_mse, train_s, note, key``.  A rerun reuses rows
                        whose settings ``key`` is unchanged.
    ``results.md``      one MSE table per data set, the paper's values beside.
    ``synthetic_vq.png`` two panels, MSE against bits, paper dashed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from codec.quantizers import AVQ, Quantizer, train_quantizer
from recipes._common import REPO_ROOT, markdown_table, parse_names, settings_hash, write_json

__all__ = [
    "DATASETS",
    "PAPER_CURVES",
    "Settings",
    "build_parser",
    "make_data",
    "train_options",
    "run_cell",
    "main",
]

FloatArray = npt.NDArray[np.float64]

DIM = 64
"""Vector dimension of the experiment."""
STAGES = 4
"""Codebooks per quantizer (``M``)."""
SIGMA2 = 2.0
"""Variance per dimension (both data sets)."""
RHO = 0.99
"""AR(1) correlation coefficient of the correlated data."""
DATASETS = ("correlated", "uncorrelated")
VARIANTS = ("avq", "rvq", "pvq")
DEFAULT_BITS = (12, 16, 20, 24, 28, 32, 36, 40)
PAPER_CURVES = REPO_ROOT.parent / "shared" / "reference" / "paper_curves.json"
PAPER_KEY = "synthetic_64d_M4_mse"
VERSION = 1
"""Bump when the data generator or the scoring changes (invalidates reused rows)."""


@dataclass(frozen=True)
class Settings:
    """Everything that determines one result row except the cell itself.

    A cell with ``K`` codewords per codebook trains on the first
    ``max(n_train, per_codeword * K)`` vectors of the training draw.
    """

    n_train: int
    n_test: int
    per_codeword: int
    seed: int
    steps: int
    batch_size: int
    quick: bool

    def n_cell(self, bits_per_stage: int) -> int:
        """Training vectors of a cell."""
        return max(self.n_train, self.per_codeword << bits_per_stage)


def make_data(kind: str, n: int, *, seed: int, part: int) -> FloatArray:
    """Draw ``n`` vectors of one data set (see the module docstring).

    Parameters
    ----------
    kind : {"correlated", "uncorrelated"}
    n : int
        Number of vectors.
    seed : int
        Experiment seed; the rotation ``Q`` depends on it only.
    part : int
        0 for training, 1 for test data (independent draws).

    Returns
    -------
    ndarray, shape (n, 64)
    """
    rng = np.random.default_rng([seed, part, DATASETS.index(kind)])
    z = rng.standard_normal((n, DIM))
    if kind == "uncorrelated":
        return np.sqrt(SIGMA2) * z
    if kind != "correlated":
        raise ValueError(f"unknown data set {kind!r}")
    lags = np.abs(np.subtract.outer(np.arange(DIM), np.arange(DIM)))
    chol = np.linalg.cholesky(SIGMA2 * RHO**lags)
    q, r = np.linalg.qr(np.random.default_rng([seed, 99]).standard_normal((DIM, DIM)))
    q = q * np.sign(np.diag(r))  # Haar-distributed rotation
    out: FloatArray = z @ (q @ chol).T
    return out


def train_options(
    variant: str, method: str, bits_per_stage: int, settings: Settings
) -> tuple[dict[str, Any], str]:
    """Training options of one cell and a note on any budget shortcut.

    Returns
    -------
    options : dict
        Keyword options for :func:`codec.quantizers.train_quantizer`; for an
        AVQ cell that borrows the RVQ codebooks (:func:`borrows_rvq`) the RVQ's.
    note : str
        Empty unless the cell deviates from the variant's full training.
    """
    k = 1 << bits_per_stage
    if method != "kmeans":
        opts: dict[str, Any] = {"steps": settings.steps, "batch_size": settings.batch_size}
        if variant == "avq":
            opts["train_beam"] = 2
        return opts, ""
    opts = {"iters": 20 if k <= 32 else 10, "init_sample": 4096}
    if variant == "pvq":
        return opts, ""
    opts.update(refine_iters=4, refine_sample=4096, final_iters=1)
    note = ""
    if borrows_rvq(variant, method, bits_per_stage):
        note = (
            "AVQ with K >= 512: the RVQ k-means codebooks of the same budget, "
            "searched with the AVQ beam search (no joint LS update)"
        )
    elif variant == "avq":
        opts.update(train_beam=2, final_iters=0)
    return opts, note


def borrows_rvq(variant: str, method: str, bits_per_stage: int) -> bool:
    """AVQ k-means cells whose joint LS update is too costly (K >= 512) use RVQ codebooks."""
    return variant == "avq" and method == "kmeans" and bits_per_stage >= 9


def _mse(x: FloatArray, y: FloatArray) -> float:
    return float(np.mean(np.sum((x - y) ** 2, axis=1)))


def run_cell(
    data: str,
    variant: str,
    method: str,
    bits: int,
    x_train: FloatArray,
    x_test: FloatArray,
    settings: Settings,
    memo: dict[tuple[str, str, str, int], tuple[Quantizer, float]] | None = None,
) -> dict[str, Any]:
    """Train one quantizer (or take it from ``memo``) and score it; returns a result row.

    The training MSE is measured on the first ``n_test`` training vectors.
    """
    memo = {} if memo is None else memo
    bps = bits // STAGES
    _, note = train_options(variant, method, bps, settings)
    borrow = borrows_rvq(variant, method, bps)
    base = "rvq" if borrow else variant
    key = (data, base, method, bits)
    if key not in memo:
        opts, _ = train_options(base, method, bps, settings)
        t0 = time.perf_counter()
        q = train_quantizer(
            x_train,
            variant=base,
            stages=STAGES,
            bits=bps,
            method=method,
            seed=settings.seed,
            progress=False,
            **opts,
        )
        memo[key] = (q, time.perf_counter() - t0)
    q, train_s = memo[key]
    if borrow:
        q = AVQ(q.codebooks, q.mean, method=method, seed=settings.seed)
    x_fit = x_train[: settings.n_test]
    n_cell = x_train.shape[0]
    return {
        "data": data,
        "variant": variant,
        "method": method,
        "bits": bits,
        "stages": STAGES,
        "bits_per_stage": bps,
        "mse": _mse(x_test, q.decode(q.encode(x_test))),
        "train_mse": _mse(x_fit, q.decode(q.encode(x_fit))),
        "train_s": round(train_s, 2),
        "n_train": int(n_cell),
        "note": note,
    }


def _row_key(settings: Settings, data: str, variant: str, method: str, bits: int) -> str:
    opts, note = train_options(variant, method, bits // STAGES, settings)
    cell = [VERSION, asdict(settings), data, variant, method, bits, opts, note]
    return settings_hash(cell)


def load_paper(path: Path = PAPER_CURVES) -> dict[str, Any] | None:
    """The paper's Figure 2 values (``bits`` and per data set ``{AVQ: [...], ...}``)."""
    try:
        curves = json.loads(path.read_text())[PAPER_KEY]
    except (OSError, KeyError, ValueError):
        return None
    return dict(curves)


def _fmt(v: float) -> str:
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def write_markdown(
    path: Path, rows: list[dict[str, Any]], paper: dict[str, Any] | None, header: dict[str, Any]
) -> str:
    """Write the MSE tables (one per data set) and return the text."""
    bits = sorted({int(r["bits"]) for r in rows})
    st = header["settings"]
    n_cells = sorted({int(r["n_train"]) for r in rows if "n_train" in r})
    lines = ["# Synthetic 64-d data, M = 4 codebooks: test MSE per vector", ""]
    lines += [f"Command: `{header['command']}` (wall time {header.get('wall_s', '?')} s)", ""]
    lines += [
        f"Data: {DIM}-d Gaussian, variance {SIGMA2:g} per dimension; correlated = AR(1) "
        f"rho {RHO:g} covariance under a random rotation. Training vectors per cell: "
        f"{', '.join(map(str, n_cells))} (at least {st['per_codeword']} per codeword); "
        f"{st['n_test']} test vectors; MSE = squared error per vector (summed over the "
        "dimensions), averaged over the test set. Paper: ICASSP 2023 Figure 2 (their data "
        "generator is not published; compare shapes, not absolute values).",
        "",
    ]
    for data in DATASETS:
        sub = [r for r in rows if r["data"] == data]
        if not sub:
            continue
        table = []
        keys = sorted({(r["variant"], r["method"]) for r in sub}, key=_order)
        for variant, method in keys:
            cells = {
                int(r["bits"]): r["mse"]
                for r in sub
                if (r["variant"], r["method"]) == (variant, method)
            }
            table.append(
                [f"{variant}-{method}", *(_fmt(cells[b]) if b in cells else "" for b in bits)]
            )
        if paper is not None and data in paper:
            pb = [int(b) for b in paper["bits"]]
            for name, vals in paper[data].items():
                ref = dict(zip(pb, vals, strict=True))
                table.append([f"paper {name}", *(_fmt(ref[b]) if b in ref else "" for b in bits)])
        lines += [f"## {data}", "", markdown_table(["config", *map(str, bits)], table), ""]
    notes = sorted({r["note"] for r in rows if r.get("note")})
    if notes:
        lines += ["Notes:", "", *(f"- {n}" for n in notes), ""]
    text = "\n".join(lines)
    path.write_text(text)
    return text


_METHOD_ORDER = {"kmeans": 0, "ste": 1, "nsvq": 2}
_VARIANT_ORDER = {"avq": 0, "rvq": 1, "pvq": 2}


def _order(key: tuple[str, str]) -> tuple[int, int]:
    return _VARIANT_ORDER.get(key[0], 9), _METHOD_ORDER.get(key[1], 9)


def plot(path: Path, rows: list[dict[str, Any]], paper: dict[str, Any] | None) -> None:
    """Two panels (correlated, uncorrelated): MSE against bits, paper dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {"avq": "tab:red", "rvq": "tab:blue", "pvq": "tab:green"}
    markers = {"kmeans": "o", "ste": "s", "nsvq": "^"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, data in zip(axes, DATASETS, strict=True):
        sub = [r for r in rows if r["data"] == data]
        for variant, method in sorted({(r["variant"], r["method"]) for r in sub}, key=_order):
            pts = sorted(
                (r["bits"], r["mse"])
                for r in sub
                if (r["variant"], r["method"]) == (variant, method)
            )
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker=markers.get(method, "x"),
                color=colors.get(variant, "k"),
                linestyle="-" if method == "kmeans" else ":",
                label=f"{variant.upper()} {method}",
            )
        if paper is not None and data in paper:
            for name, vals in paper[data].items():
                ax.plot(
                    paper["bits"],
                    vals,
                    linestyle="--",
                    color=colors.get(name.lower(), "k"),
                    alpha=0.5,
                    label=f"paper {name}",
                )
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("bits per vector (M = 4 codebooks)")
        ax.set_ylabel("MSE per 64-d vector")
        ax.set_title(f"{data} data")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Synthetic 64-d data (paper's absolute scale may differ)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the recipe."""
    p = argparse.ArgumentParser(
        prog="python -m recipes.synthetic_vq",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("--out", default="out/synthetic_vq", help="output folder (%(default)s)")
    p.add_argument(
        "--bits",
        type=_ints,
        default=None,
        help="total bits per vector, multiples of 4 in 4..64 (default 12,16,...,40)",
    )
    p.add_argument(
        "--methods",
        default=None,
        help="training methods (default kmeans,ste,nsvq; kmeans with --quick)",
    )
    p.add_argument("--variants", default="avq,rvq,pvq", help="quantizer variants (%(default)s)")
    p.add_argument("--data", default="correlated,uncorrelated", help="data sets (%(default)s)")
    p.add_argument(
        "--grad-bits",
        type=_ints,
        default=[12, 16, 20, 24],
        help="bit budgets at which STE/NSVQ are trained (default 12,16,20,24)",
    )
    p.add_argument("--n", type=int, default=16384, help="training vectors (%(default)s)")
    p.add_argument(
        "--per-codeword",
        type=int,
        default=64,
        help="at least this many training vectors per codeword of a codebook (%(default)s)",
    )
    p.add_argument("--n-test", type=int, default=4096, help="test vectors (%(default)s)")
    p.add_argument("--steps", type=int, default=300, help="STE/NSVQ Adam steps (%(default)s)")
    p.add_argument("--batch-size", type=int, default=1024, help="STE/NSVQ batch (%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="data and training seed (%(default)s)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2048 training / 1024 test vectors, 12 and 16 bits, k-means only",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the experiment; returns the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    methods = parse_names(args.methods or ("kmeans" if args.quick else "kmeans,ste,nsvq"))
    variants = parse_names(args.variants)
    datasets = parse_names(args.data)
    bits = args.bits if args.bits is not None else list(DEFAULT_BITS)
    n_train, n_test, steps, per_cw = args.n, args.n_test, args.steps, args.per_codeword
    if args.quick:
        n_train, n_test, steps, per_cw = 2048, 1024, min(steps, 50), 0
        bits = args.bits if args.bits is not None else [12, 16]
    bad = [b for b in bits if b % STAGES or not STAGES <= b <= 16 * STAGES]
    if bad:
        p.error(f"bits must be multiples of {STAGES} in {STAGES}..{16 * STAGES}, got {bad}")
    for name, given, allowed in (
        ("methods", methods, ("kmeans", "ste", "nsvq")),
        ("variants", variants, VARIANTS),
        ("data", datasets, DATASETS),
    ):
        unknown = sorted(set(given) - set(allowed))
        if unknown or not given:
            p.error(f"--{name}: unknown or empty {unknown}; expected some of {allowed}")
    if n_train < 1 << (max(bits) // STAGES) or n_test < 1:
        p.error(f"--n must be at least the codebook size 2**{max(bits) // STAGES}")
    settings = Settings(
        n_train, n_test, per_cw, args.seed, steps, args.batch_size, bool(args.quick)
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "results.json"
    old: dict[str, dict[str, Any]] = {}
    if res_path.exists():
        try:
            old = {r["key"]: r for r in json.loads(res_path.read_text()).get("rows", [])}
        except (ValueError, KeyError, TypeError, AttributeError):
            old = {}
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "recipes.synthetic_vq", *given])
    header = {"settings": asdict(settings), "command": command, "dim": DIM, "sigma2": SIGMA2,
              "rho": RHO, "stages": STAGES}  # fmt: skip
    rows: list[dict[str, Any]] = []
    memo: dict[tuple[str, str, str, int], tuple[Quantizer, float]] = {}
    t_start = time.perf_counter()
    for data in datasets:
        x_all = make_data(
            data, max(settings.n_cell(b // STAGES) for b in bits), seed=args.seed, part=0
        )
        x_test = make_data(data, n_test, seed=args.seed, part=1)
        for b in bits:
            for variant in variants:
                for method in methods:
                    if method != "kmeans" and b not in args.grad_bits and not args.quick:
                        continue
                    key = _row_key(settings, data, variant, method, b)
                    if key in old:
                        rows.append(old[key])
                        continue
                    x_train = x_all[: settings.n_cell(b // STAGES)]
                    row = run_cell(data, variant, method, b, x_train, x_test, settings, memo)
                    row["key"] = key
                    rows.append(row)
                    print(
                        f"{data:12s} {b:2d} bits {variant}-{method:6s} mse {row['mse']:8.3f}"
                        f" (train {row['train_mse']:.3f}, {row['train_s']:.1f} s)",
                        flush=True,
                    )
                    write_json(res_path, {**header, "rows": rows})
    header["wall_s"] = round(time.perf_counter() - t_start, 1)
    write_json(res_path, {**header, "rows": rows})
    paper = load_paper()
    write_markdown(out / "results.md", rows, paper, header)
    plot(out / "synthetic_vq.png", rows, paper)
    print(f"wrote {res_path}, results.md, synthetic_vq.png ({header['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
