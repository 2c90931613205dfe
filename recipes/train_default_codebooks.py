"""Train the envelope codebooks that svq ships (avq-4x6, ..., pvq-4x4).

``python -m recipes.train_default_codebooks [--data ../shared/data/speech/manifest.csv]
[--split train] [--only NAME,...] [--out out/default_codebooks | --install]``

Each codebook is trained on the LSF vectors of the training split (speakers
balanced so that no speaker holds more than 5 % of the frames) with LSF
inverse-spacing weights, and saved as ``NAME.cb``. ``CODEBOOKS.json`` beside
them records, per codebook, its settings, content hash, the training data's
key (SHA-256 over the files' relative names and contents, the same on any
machine), the SHA-256 of the training matrix, and the command.

The codebooks go to ``out/default_codebooks`` unless ``--install`` asks to
replace the shipped ones in ``codec/data/`` (which changes the codec's output).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from codec.analysis import (
    lsf_to_lpc,
    lsf_weights,
    sd_summary,
    spectral_distortion,
    stabilize_lsf,
)
from codec.errors import ParameterError
from codec.quantizers import check_train_settings, train_quantizer
from codec.registry import DATA_DIR
from recipes._common import SHARED_SPEECH as SPEECH
from recipes._common import missing_data, training_lsf

# name: (variant, stages, bits per stage, method, options)
DEFAULTS: dict[str, tuple[str, int, int, str, dict[str, object]]] = {
    "avq-4x6": ("avq", 4, 6, "kmeans", {}),
    "rvq-4x6": ("rvq", 4, 6, "kmeans", {"beam": 4}),
    # 32 bits, M-best 8: the default envelope of the 13.2-24.4 kbit/s modes
    "rvq-4x8": ("rvq", 4, 8, "kmeans", {"beam": 8}),
    "pvq-4x6": ("pvq", 4, 6, "kmeans", {}),
    "vq-1x12": ("vq", 1, 12, "kmeans", {"iters": 15}),
    # the reference paper's setting: 16 bits in 4 codebooks of 4 bits
    "avq-4x4": ("avq", 4, 4, "nsvq", {}),
    "rvq-4x4": ("rvq", 4, 4, "nsvq", {}),
    "pvq-4x4": ("pvq", 4, 4, "nsvq", {}),
}


DESCRIPTION = (
    "Train the envelope codebooks that svq ships, on the train split of the shared speech "
    "set, into out/default_codebooks (or, with --install, over the shipped ones in codec/data)."
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m recipes.train_default_codebooks", description=DESCRIPTION
    )
    p.add_argument(
        "--data", default=str(SPEECH / "manifest.csv"), help="folder or manifest (%(default)s)"
    )
    p.add_argument("--split", default="train", help="manifest split (default train)")
    p.add_argument("--eval", default=None, help="optional folder/manifest to report SD on")
    p.add_argument("--eval-split", default="dev", help="split of --eval (default dev)")
    p.add_argument("--only", default="", help="comma-separated subset of " + ",".join(DEFAULTS))
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--out", default="out/default_codebooks", help="output folder (default: %(default)s)"
    )
    where.add_argument(
        "--install",
        action="store_true",
        help=f"write into the package's {DATA_DIR.relative_to(DATA_DIR.parents[1])} instead, "
        "replacing the shipped codebooks",
    )
    p.add_argument("--cache", default="cache", help="feature cache folder (default: cache)")
    args = p.parse_args(argv)
    for flag, source, needs in (
        ("--data", args.data, f"training speech (split {args.split!r})"),
        ("--eval", args.eval, f"evaluation speech (split {args.eval_split!r})"),
    ):
        problem = missing_data(source, flag=flag, needs=needs) if source else None
        if problem:
            p.error(problem)

    names = [n for n in args.only.split(",") if n] or list(DEFAULTS)
    unknown = sorted(set(names) - set(DEFAULTS))
    if unknown:
        p.error(f"unknown codebook names: {', '.join(unknown)}")
    for name in names:  # torch for the NSVQ ones, before hours of feature extraction
        variant, stages, bits, method, options = DEFAULTS[name]
        try:
            check_train_settings(variant, stages, bits, method, 0, 16, **options)
        except ParameterError as exc:
            p.error(f"{name}: {exc}")
    cache = Path(args.cache)
    x, key = training_lsf(args.data, split=args.split, cache=cache / f"{args.split}_lsf.npy")
    w = lsf_weights(x)
    data_sha = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
    dev = None
    if args.eval:
        dev, _ = training_lsf(
            args.eval,
            split=args.eval_split,
            cache=cache / f"{args.eval_split}_lsf.npy",
            balance=False,
        )
    out = DATA_DIR if args.install else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "CODEBOOKS.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in names:
        variant, stages, bits, method, options = DEFAULTS[name]
        t0 = time.perf_counter()
        q = train_quantizer(
            x,
            variant=variant,
            stages=stages,
            bits=bits,
            method=method,
            weights=w,
            seed=0,
            progress=True,
            **options,
        )
        secs = time.perf_counter() - t0
        q.save(out / f"{name}.cb")
        entry: dict[str, object] = {
            "variant": variant,
            "stages": stages,
            "bits_per_stage": bits,
            "method": method,
            "options": options,
            "content_hash": q.content_hash,
            "train_data_key": key,
            "train_matrix_sha256": data_sha,
            "train_vectors": int(x.shape[0]),
            "train_seconds": round(secs, 1),
            "command": "python -m recipes.train_default_codebooks " + " ".join(sys.argv[1:]),
        }
        if dev is not None:
            dq = stabilize_lsf(q.decode(q.encode(dev, weights=lsf_weights(dev))))
            entry["dev_sd"] = sd_summary(spectral_distortion(lsf_to_lpc(dev), lsf_to_lpc(dq)))
        manifest[name] = entry
        print(f"{name}: {secs:.1f} s, hash {q.content_hash[:16]}", entry.get("dev_sd", ""))
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
