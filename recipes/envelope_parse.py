"""Could a memoryless coarse envelope set the residual's entropy tables, so that a
predictive envelope survives frame loss? (issue 13, screening)

With a predictive envelope, a lost frame leaves the decoder's predictor state
wrong; the residual's range decoder draws its tables from the decoded
envelope, so every frame until the next safety-net frame becomes
undecodable (RESULTS.md section 3). The candidate design splits the envelope:
a memoryless coarse stage that alone chooses the tables, and a refinement
that may be predicted from the previous frame and only shapes the spectrum.
This recipe measures both sides of that trade:

1. Value bits. The codec codes the first --files files of --data's dev split
   at each of --bitrates; their decoded values are costed under the tables of
   the decoded envelope (today), of coarse memoryless envelopes of it (the
   12-bit vq-1x12; the first 1, 2 or 3 stages of rvq-4x8) and of no envelope,
   the per-frame scale index re-chosen for each to give the fewest bits.
2. Spectral distortion. On all of the dev split: the coarse vq-1x12 plus a
   refinement of --refine (RVQ stages x bits, trained by k-means on the train
   split): memoryless, or AR-predicted from the previous frame's decoded
   refinement (matrix by least squares; codebooks on open-loop targets, then
   once more on closed-loop ones); beside the shipped memoryless codebooks.
3. MA prediction (AMR-WB's form, the factor fitted): the mean-removed LSFs
   predicted from the previous frame's decoded innovation, so that each frame's tables can come
   from its own innovation plus the mean, and a loss damages one frame. Its
   spectral distortion (innovations coded by --ma, RVQ STAGESxBITS), and in
   part 1 the value bits under the tables of mean + innovation.

Writes summary.md and results.json to --out.

Run: python -m recipes.envelope_parse --out out/envelope_parse
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recipes._common import (
    DEFAULT_MANIFEST,
    audio_files,
    markdown_table,
    missing_data,
    parse_floats,
    write_json,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

COARSE = "vq-1x12"
"""The memoryless coarse stage (a shipped 12-bit codebook)."""
STAGED = "rvq-4x8"
"""The shipped RVQ whose first stages serve as coarser or finer memoryless envelopes."""
REFERENCES = ("avq-4x6", "rvq-4x8", COARSE)


# ----------------------------------------------------------------------------- value bits


def _value_bits(q: IntArray, last: IntArray, ratio: FloatArray, cb: int) -> FloatArray:
    """Bits of each frame's values (bins below ``last``) under the grid tables of
    ``ratio``, with the scale index that gives the fewest."""
    from codec.residual import tcx as T

    mask = np.arange(cb)[None, :] < last[:, None]
    best = np.full(q.shape[0], np.inf)
    for kappa in T._frame_kappas():
        grid = T._grid_index(kappa * ratio[:, :cb])
        best = np.minimum(best, (T._value_costs(q, grid) * mask).sum(axis=1))
    return best


def value_bits(audio: Path, rate: float, ma: MovingAverage | None = None) -> dict[str, FloatArray]:
    """Per-frame value bits of ``audio`` coded at ``rate``, under each envelope's tables
    (with ``ma``, also under those of each frame's MA innovation plus the mean)."""
    import io

    import soundfile as sf

    import codec
    from codec.analysis import lsf_to_lpc, stabilize_lsf
    from codec.bitstream import ContainerReader
    from codec.pipeline import StreamDecoder
    from codec.registry import load_envelope
    from codec.residual import tcx as T
    from codec.residual.rangecoder import decode_values_many

    x, sr = sf.read(audio, dtype="float64", always_2d=True)
    reader = ContainerReader(io.BytesIO(codec.encode(x.mean(axis=1), sr, rate)), "raise")
    frames = [f for block in reader.blocks(1 << 30) for f in block if f is not None]
    dec = StreamDecoder(reader.header)
    coder, env = dec.tcx, dec.env
    idx, fields, decs = coder.read_side(frames, env.field_bits)
    n, cb = len(frames), coder.config.coded_bins
    pitch = coder.pitch_of(fields)
    last = fields["last"] * T.LAST_UNIT

    def ratio_of(lsf: FloatArray) -> FloatArray:  # the model shape as the decoder forms it
        return coder.model_shape(lsf_to_lpc(stabilize_lsf(lsf)), fields, pitch)[1]

    lsf = env.decode(idx)
    decoded = ratio_of(lsf)
    grid = T._grid_index(T._frame_kappas()[fields["kappa"]][:, None] * decoded[:, :cb])
    vals, errors = decode_values_many(decs, T._grid_table().reshape(T._N_GRID, -1), grid, last)
    if any(e is not None for e in errors):  # pragma: no cover - the codec's own stream
        raise RuntimeError(f"{audio}: the coded values do not decode")
    q = np.asarray(vals, dtype=np.int64)
    coarse = load_envelope(COARSE).quantizer
    staged = load_envelope(STAGED).quantizer
    parts = staged.encode(lsf)
    books = staged.codebooks
    ratios = {"decoded envelope (today)": decoded}
    ratios[f"{COARSE} of it (12 bits)"] = ratio_of(coarse.decode(coarse.encode(lsf)))
    for k in (1, 2, 3):
        rec = staged.mean + sum(books[s][parts[:, s]] for s in range(k))
        bits = k * staged.bits_per_stage
        ratios[f"{STAGED}, first {k} stage{'s' if k > 1 else ''} ({bits} bits)"] = ratio_of(rec)
    if ma is not None:
        _, innov = ma.code(lsf, _previous(np.array([0, n]), n))
        ratios[f"MA innovation + mean ({ma.bits} bits)"] = ratio_of(ma.mean + innov)
    ratios["no envelope (flat)"] = np.ones_like(decoded)
    return {name: _value_bits(q, last, r, cb) for name, r in ratios.items()}


# ----------------------------------------------------------------------------- two layers


def _previous(offsets: IntArray, n: int) -> IntArray:
    """Each frame's previous frame in the same file; -1 at a file's start."""
    prev = np.arange(n) - 1
    prev[offsets[:-1][offsets[:-1] < n]] = -1
    return prev


def _closed_loop(
    q: Any, e: FloatArray, w: FloatArray, prev: IntArray, a: FloatArray, *, ar: bool = True
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Code ``e`` frame by frame, each frame predicted as ``last @ a`` (zero at a
    file's start), ``last`` being the previous frame's decoded value (AR) or its
    decoded innovation (``ar=False``: MA). Returns the decoded values, the
    targets the quantizer saw and the decoded innovations."""
    out = np.zeros_like(e)
    target = np.zeros_like(e)
    innov = np.zeros_like(e)
    last = np.zeros(e.shape[1])
    for i in range(e.shape[0]):
        if prev[i] < 0:
            last = np.zeros(e.shape[1])
        pred = last @ a
        target[i] = e[i] - pred
        innov[i] = q.decode(q.encode(target[i : i + 1], weights=w[i : i + 1]))[0]
        out[i] = pred + innov[i]
        last = out[i] if ar else innov[i]
    return out, target, innov


def two_layers(
    train: Any, dev: Any, stages: int, bits: int, seed: int
) -> list[tuple[str, int, FloatArray]]:
    """Decoded dev LSFs of the coarse stage plus each refinement (name, bits, LSFs)."""
    from codec.analysis import lsf_weights
    from codec.quantizers import train_quantizer
    from codec.registry import load_envelope

    coarse = load_envelope(COARSE).quantizer
    w_t, w_d = lsf_weights(train.lsf), lsf_weights(dev.lsf)
    c_t = coarse.decode(coarse.encode(train.lsf, weights=w_t))
    c_d = coarse.decode(coarse.encode(dev.lsf, weights=w_d))
    e_t, e_d = train.lsf - c_t, dev.lsf - c_d
    total = coarse.bits + stages * bits
    kw = {"variant": "rvq", "stages": stages, "bits": bits, "method": "kmeans", "seed": seed}
    plain = train_quantizer(e_t, **kw)
    rows = [
        (
            f"{COARSE} + memoryless rvq-{stages}x{bits}",
            total,
            c_d + plain.decode(plain.encode(e_d, weights=w_d)),
        )
    ]
    p_t, p_d = _previous(train.offsets, len(e_t)), _previous(dev.offsets, len(e_d))
    before = np.where(p_t[:, None] >= 0, e_t[np.maximum(p_t, 0)], 0.0)
    a = np.linalg.lstsq(before, e_t, rcond=None)[0]  # e(n) ~ e(n-1) @ a
    open_q = train_quantizer(e_t - before @ a, **kw)
    decoded, _, _ = _closed_loop(open_q, e_d, w_d, p_d, a)
    rows.append((f"{COARSE} + AR rvq-{stages}x{bits}, open-loop trained", total, c_d + decoded))
    _, target, _ = _closed_loop(open_q, e_t, w_t, p_t, a)
    closed_q = train_quantizer(target, **kw)
    decoded, _, _ = _closed_loop(closed_q, e_d, w_d, p_d, a)
    rows.append((f"{COARSE} + AR rvq-{stages}x{bits}, closed-loop retrained", total, c_d + decoded))
    return rows


class MovingAverage:
    """MA-predictive envelope: ``x(n) - mean = u(n) + u(n-1) @ b``, the innovation
    ``u`` coded by an RVQ (``u`` zero before a file's first frame)."""

    def __init__(self, mean: FloatArray, b: FloatArray, q: Any) -> None:
        self.mean, self.b, self.q = mean, b, q

    @property
    def bits(self) -> int:
        return int(self.q.bits)

    def code(self, lsf: FloatArray, prev: IntArray) -> tuple[FloatArray, FloatArray]:
        """Decoded LSFs and decoded innovations of consecutive frames (``prev``:
        :func:`_previous` of their files)."""
        from codec.analysis import lsf_weights

        z, w = lsf - self.mean, lsf_weights(lsf)
        out, _, innov = _closed_loop(self.q, z, w, prev, self.b, ar=False)
        return self.mean + out, innov


def _open_loop_innovations(z: FloatArray, prev: IntArray, beta: float) -> FloatArray:
    """``u(n) = z(n) - beta u(n-1)`` with unquantized ``u`` (zero before a file's start)."""
    u = np.zeros_like(z)
    for i in range(len(z)):
        u[i] = z[i] - beta * u[prev[i]] if prev[i] >= 0 else z[i]
    return u


def train_moving_average(train: Any, stages: int, bits: int, seed: int) -> MovingAverage:
    """MA with ``b = beta I`` (AMR-WB's form; it uses ``beta = 1/3``), ``beta`` in
    0, 0.1, .., 0.9 giving the least open-loop innovation energy; the RVQ by k-means
    on the open-loop innovations, then once more on the closed-loop ones."""
    from codec.quantizers import train_quantizer

    mean = train.lsf.mean(axis=0)
    z = train.lsf - mean
    prev = _previous(train.offsets, len(z))
    energy = {
        beta: float(np.mean(_open_loop_innovations(z, prev, beta) ** 2))
        for beta in np.round(np.arange(10) * 0.1, 1)
    }
    beta = min(energy, key=energy.__getitem__)
    b = beta * np.eye(z.shape[1])
    kw = {"variant": "rvq", "stages": stages, "bits": bits, "method": "kmeans", "seed": seed}
    model = MovingAverage(mean, b, train_quantizer(_open_loop_innovations(z, prev, beta), **kw))
    before = np.zeros_like(z)
    _, innov = model.code(train.lsf, prev)
    before[prev >= 0] = innov[prev[prev >= 0]]
    model.q = train_quantizer(z - before @ b, **kw)  # closed-loop targets
    return model


def sd_row(name: str, bits: int, lsf: FloatArray, decoded: FloatArray) -> dict[str, Any]:
    from codec.analysis import lsf_to_lpc, spectral_distortion, stabilize_lsf

    sd = spectral_distortion(lsf_to_lpc(lsf), lsf_to_lpc(stabilize_lsf(decoded)))
    return {
        "config": name,
        "bits": bits,
        "mean_sd_db": float(sd.mean()),
        "pct_over_2_db": float(100.0 * np.mean(sd > 2.0)),
        "pct_over_4_db": float(100.0 * np.mean(sd > 4.0)),
    }


# ----------------------------------------------------------------------------- main


def _refine(text: str) -> tuple[int, int]:
    try:
        stages, bits = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected STAGESxBITS such as 2x6, got {text!r}"
        ) from None
    if not (1 <= stages <= 8 and 1 <= bits <= 12):
        raise argparse.ArgumentTypeError("stages must be 1-8 and bits 1-12")
    return stages, bits


def _rates(text: str) -> list[float]:
    try:
        rates = parse_floats(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not rates:
        raise argparse.ArgumentTypeError("give at least one bitrate")
    return rates


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.envelope_parse",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=" ".join(__doc__.split("\n\n")[1:3]).replace("\n", " "),
    )
    p.add_argument(
        "--data",
        default=str(DEFAULT_MANIFEST),
        help="manifest .csv or folder of speech (default: the shared set)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--files", type=int, default=16, help="dev files for the value bits (default 16)"
    )
    p.add_argument(
        "--bitrates", type=_rates, default="8,13.2", help="value bits at these kbit/s (8,13.2)"
    )
    p.add_argument(
        "--refine", type=_refine, default=(2, 6), help="refinement RVQ, STAGESxBITS (default 2x6)"
    )
    p.add_argument(
        "--ma", type=_refine, default=(4, 6), help="MA innovations' RVQ, STAGESxBITS (default 4x6)"
    )
    p.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.files < 1:
        p.error("--files must be >= 1")
    problem = missing_data(args.data, flag="--data", needs="a folder or manifest .csv of speech")
    if problem:
        p.error(problem)
    rates = args.bitrates
    files = audio_files(args.data, split="dev", limit=args.files)
    if not files:
        p.error(f"--data {args.data}: no audio files in the dev split")

    from tqdm import tqdm

    from codec.analysis import lsf_weights
    from codec.features import collection_features
    from codec.registry import load_envelope

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    feats = out / "features"
    train = collection_features(
        args.data, split="train", out=feats / "train_lsf.npy", progress=not args.quiet
    )
    dev = collection_features(
        args.data, split="dev", out=feats / "dev_lsf.npy", progress=not args.quiet
    )
    sd = []
    for name in REFERENCES:
        q = load_envelope(name).quantizer
        dec = q.decode(q.encode(dev.lsf, weights=lsf_weights(dev.lsf)))
        sd.append(sd_row(f"{name}, memoryless (shipped)", q.bits, dev.lsf, dec))
    stages, b = args.refine
    for name, total, dec in two_layers(train, dev, stages, b, args.seed):
        sd.append(sd_row(name, total, dev.lsf, dec))
    from codec.quantizers import train_quantizer

    st, bt = args.ma
    plain = train_quantizer(
        train.lsf, variant="rvq", stages=st, bits=bt, method="kmeans", seed=args.seed
    )
    dec = plain.decode(plain.encode(dev.lsf, weights=lsf_weights(dev.lsf)))
    sd.append(sd_row(f"rvq-{st}x{bt}, memoryless (trained as the MA's)", plain.bits, dev.lsf, dec))
    ma = train_moving_average(train, *args.ma, args.seed)
    dec, _ = ma.code(dev.lsf, _previous(dev.offsets, len(dev.lsf)))
    name = f"MA rvq-{args.ma[0]}x{args.ma[1]}, b = {ma.b[0, 0]:g} I"
    sd.append(sd_row(name, ma.bits, dev.lsf, dec))
    bits: dict[str, dict[str, list[FloatArray]]] = {}
    cells = [(rate, f) for rate in rates for f in files]
    for rate, f in tqdm(cells, desc="value bits", disable=args.quiet, unit="file"):
        for name, v in value_bits(f, rate, ma).items():
            bits.setdefault(f"{rate:g}", {}).setdefault(name, []).append(v)

    frames = {r: int(sum(v.size for v in next(iter(per.values())))) for r, per in bits.items()}
    means = {
        r: {n: float(np.concatenate(v).mean()) for n, v in per.items()} for r, per in bits.items()
    }
    names = list(next(iter(means.values())))
    base = "decoded envelope (today)"
    table1 = markdown_table(
        ["value bits per frame, tables from", *(f"{r} kbit/s" for r in means)],
        [
            [n, *(f"{m[n]:.1f} ({100 * (m[n] / m[base] - 1):+.1f} %)" for m in means.values())]
            for n in names
        ],
    )
    table2 = markdown_table(
        ["envelope", "bits", "mean SD dB", "% > 2 dB", "% > 4 dB"],
        [
            [
                r["config"],
                r["bits"],
                f"{r['mean_sd_db']:.3f}",
                f"{r['pct_over_2_db']:.2f}",
                f"{r['pct_over_4_db']:.3f}",
            ]
            for r in sd
        ],
    )
    counts = ", ".join(f"{frames[r]} frames at {r} kbit/s" for r in frames)
    command = "python -m recipes.envelope_parse " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (
        f"# Envelope for the entropy tables: coarse and memoryless?\n\n`{command}`\n\n"
        f"Value bits: {len(files)} dev files ({counts}); "
        "the scale index re-chosen per frame for each envelope.\n\n"
        f"{table1}\n\nSpectral distortion, all {dev.lsf.shape[0]} dev frames "
        f"(refinements trained on {train.lsf.shape[0]} train frames):\n\n{table2}\n\n"
        f"Wall time {time.time() - start:.0f} s.\n"
    )
    (out / "summary.md").write_text(text)
    write_json(
        out / "results.json", {"command": command, "value_bits": means, "frames": frames, "sd": sd}
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
