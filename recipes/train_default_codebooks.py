"""Train the envelope codebooks shipped in ``codec/data/``.

``python -m recipes.train_default_codebooks [--data ../shared/data/speech/manifest.csv]
[--split train] [--only NAME,...] [--out codec/data]``

Each codebook is trained on the LSF vectors of the training split (speakers
balanced so that no speaker holds more than 5 % of the frames) with LSF
inverse-spacing weights, and saved as ``NAME.cb``. ``CODEBOOKS.json`` beside
them records, per codebook, its settings, content hash, the training data's
key (a hash of the file list, sizes and modification times, see
:mod:`codec.features`), the SHA-256 of the training matrix, and the command.
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
from codec.quantizers import train_quantizer
from codec.registry import DATA_DIR
from recipes._common import SHARED_SPEECH as SPEECH
from recipes._common import training_lsf

# name: (variant, stages, bits per stage, method, options)
DEFAULTS: dict[str, tuple[str, int, int, str, dict[str, object]]] = {
    "avq-4x6": ("avq", 4, 6, "kmeans", {}),
    "rvq-4x6": ("rvq", 4, 6, "kmeans", {"beam": 4}),
    "pvq-4x6": ("pvq", 4, 6, "kmeans", {}),
    "vq-1x12": ("vq", 1, 12, "kmeans", {"iters": 15}),
    # the reference paper's setting: 16 bits in 4 codebooks of 4 bits
    "avq-4x4": ("avq", 4, 4, "nsvq", {}),
    "rvq-4x4": ("rvq", 4, 4, "nsvq", {}),
    "pvq-4x4": ("pvq", 4, 4, "nsvq", {}),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(SPEECH / "manifest.csv"), help="folder or manifest")
    p.add_argument("--split", default="train", help="manifest split (default train)")
    p.add_argument("--eval", default=None, help="optional folder/manifest to report SD on")
    p.add_argument("--eval-split", default="dev")
    p.add_argument("--only", default="", help="comma-separated subset of " + ",".join(DEFAULTS))
    p.add_argument("--out", default=str(DATA_DIR), help="output folder (default codec/data)")
    p.add_argument("--cache", default="cache", help="feature cache folder")
    args = p.parse_args(argv)

    names = [n for n in args.only.split(",") if n] or list(DEFAULTS)
    unknown = sorted(set(names) - set(DEFAULTS))
    if unknown:
        p.error(f"unknown codebook names: {', '.join(unknown)}")
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
    out = Path(args.out)
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
