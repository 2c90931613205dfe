"""VQ-VAE on speech log-mel patches: NSVQ against STE in the bottleneck, for VQ, RVQ, AVQ and PVQ.

``python -m recipes.vqvae --out DIR [--quick] [--variants vq,rvq,avq,pvq]
[--methods ste,nsvq] [--steps N] [--seed 0] [--quiet]``

The reference NSVQ papers (Vali & Bäckström) train a VQ-VAE on CIFAR-10 and
report that noise substitution gives a higher PSNR than the straight-through
estimator in the bottleneck.  This recipe repeats that comparison on our
speech, with the quantizers of :mod:`codec.quantizers` in the bottleneck.

Data
    Log-mel spectrograms of the shared speech set (manifest ``split`` train /
    dev, 16 kHz): 512-point STFT with a 400-sample (25 ms) Hann window and a
    160-sample (10 ms) hop, power spectrum through a 64-band HTK mel
    filterbank (0-8 kHz, computed in numpy), ``10 log10`` and clipped to the
    80 dB below each utterance's maximum, then shifted so that the maximum is
    0 dB: every value lies in [-80, 0] dB.  Patches of 64 bands x 64 frames
    (0.64 s) are cut every 32 frames from train files and every 64 frames from
    dev files (silence included).  The network sees ``(x - mean) / std`` with
    the scalar mean and standard deviation of the train patches.

PSNR
    ``10 log10(80^2 / MSE)`` with the MSE in dB^2 over every value of every
    dev patch (one number per model), i.e. the peak is the fixed 80 dB range
    of the data; identical patches give ``inf`` (``null`` in JSON).

Model
    Encoder: conv 4x4 stride 2 (1 -> 32 channels), ReLU, conv 4x4 stride 2
    (32 -> 64), ReLU, conv 3x3 (64 -> 64), ReLU, conv 1x1 (64 -> D = 16):
    a 16 x 16 grid of 16-dimensional latent vectors per patch.  The decoder
    mirrors it (conv 1x1 is replaced by conv 3x3 D -> 64, then two transposed
    convs).  Float32, Adam (lr 1e-3 for the network and the codebooks, cosine
    decay to 1e-4), batches of 32 patches, MSE loss in the normalised domain.

Bottleneck (``--bits`` per latent vector, default 8; 256 latents per patch,
i.e. 0.5 bit per log-mel value)
    ``vq``  one codebook of ``2^bits`` codewords;
    ``rvq`` 2 codebooks of ``2^(bits/2)``, greedy search;
    ``avq`` 2 codebooks of ``2^(bits/2)``, beam search (beam 4);
    ``pvq`` 2 codebooks of ``2^(bits/2)`` on the halves (8 + 8 dimensions).
    The hard assignment of every batch is the variant's own numpy search
    (:func:`codec.quantizers.gradient._search_fn`, the searches the quantizer
    objects use in ``encode``); the reconstruction is done in torch from the
    codebook tensors.

Training
    A plain autoencoder (no quantization) is trained for ``--warmup`` steps;
    every run starts from it.  The codebooks of a variant are initialised by
    :func:`codec.quantizers.train_quantizer` (k-means, no mean removal) on the
    warm encoder's outputs of 20000 random train latents, identical for STE
    and NSVQ.  Then encoder, decoder and codebooks train jointly for
    ``--steps`` steps:

    ``ste``  VQ-VAE: the decoder gets ``z + sg(z_q - z)`` (straight-through
             gradient to the encoder); loss = reconstruction + codebook loss +
             0.25 x commitment loss ``||z - sg(z_q)||^2``.  The codebook loss
             is ``||sg(z) - z_q||^2`` for VQ, the straight-through residual
             chain ``sum_m ||sg(t_m) - q_m||^2`` (``t_1 = z``,
             ``t_{m+1} = t_m - sg(q_m)``) for RVQ and AVQ, and the per
             sub-vector loss for PVQ (as in :mod:`codec.quantizers.gradient`).
    ``nsvq`` the decoder gets ``z + ||z - z_q|| v / ||v||`` (``v`` standard
             normal per latent vector): the quantization error is replaced by
             noise of the same norm, so the reconstruction loss alone reaches
             the encoder and, through ``||z - z_q||``, the selected codewords.
             Substitution of the final output for every variant.

    Both methods move codewords used less than 5 % of their uniform share in
    a 100-step window (``--steps``/10 when shorter) onto busy ones (as
    :mod:`codec.quantizers.gradient` does for NSVQ) during the first 75 % of
    the steps.  The autoencoder upper bound trains the same ``--steps``
    further without quantization.

Evaluation
    The trained codebooks are exported to a :mod:`codec.quantizers` quantizer
    (``VQ``/``RVQ``/``AVQ``/``PVQ``, numpy); the dev latents are quantized with
    its ``encode``/``decode`` and decoded by the network: ``psnr_db``.  The
    same done with the torch bottleneck gives ``psnr_torch_db``;
    ``bottleneck_max_diff`` is the largest difference between the two
    bottleneck outputs (0 when they agree bit for bit).

Deterministic for a seed (numpy generators for batches, seeded torch
initialisation and noise, deterministic algorithms, ``--threads`` torch
threads, default 1).

Outputs in ``--out`` (default ``out/vqvae``)
    ``results.json``  rows ``variant, method, bits, stages, bits_per_stage,
                      psnr_db, psnr_torch_db, bottleneck_max_diff, used_pct,
                      train_s, steps, note`` (the autoencoder row: variant
                      ``none``, method ``ae``, bits null).
    ``run.json``      command, settings, data sizes, normalisation, wall time.
    ``results.md``    the table and the STE/NSVQ differences.
    ``vqvae_psnr.png`` PSNR by variant, STE and NSVQ bars, the autoencoder as
                      a line; copied to ``docs/figures/`` by a default run.
    ``patches-<hash>.npz`` the log-mel patches (a rerun reuses them).
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from codec.audio import read_audio
from codec.quantizers import AVQ, PVQ, RVQ, VQ, Quantizer, train_quantizer
from codec.quantizers.base import make_progress
from recipes import _common
from recipes._common import (
    DEFAULT_MANIFEST,
    REPO_ROOT,
    fmt_value,
    markdown_table,
    missing_data,
    parse_names,
    settings_hash,
    write_json,
)

__all__ = [
    "RunConfig",
    "VARIANTS",
    "METHODS",
    "log_mel",
    "mel_filterbank",
    "patches",
    "psnr",
    "bottleneck_torch",
    "export_quantizer",
    "build_parser",
    "main",
]

FloatArray = npt.NDArray[np.float64]
VERSION = 1
SR = 16000
N_FFT = 512
WIN = 400
HOP = 160
N_MELS = 64
PATCH = 64
TOP_DB = 80.0
"""Dynamic range of the log-mel values and PSNR peak (dB)."""
LATENT_DIM = 16
CHANNELS = 16
BETA = 0.25
BATCH = 32
LR = 1e-3
LR_FINAL = 0.1
"""Final learning rate as a fraction of LR (cosine decay)."""
AVQ_BEAM = 4
INIT_VECTORS = 20000
REPLACE_EVERY = 100
REPLACE_THRESHOLD = 0.05
REPLACE_UNTIL = 0.75
VARIANTS = ("vq", "rvq", "avq", "pvq")
METHODS = ("ste", "nsvq")
_CLASSES: dict[str, type[Quantizer]] = {"vq": VQ, "rvq": RVQ, "avq": AVQ, "pvq": PVQ}
FIGURE = REPO_ROOT / "docs" / "figures" / "vqvae_psnr.png"


@dataclass(frozen=True)
class RunConfig:
    """Sizes of one run of the recipe (the default and ``--quick`` settings)."""

    steps: int
    warmup: int
    train_files: int | None
    dev_files: int | None
    batch: int = BATCH
    bits: int = 8


DEFAULT = RunConfig(steps=1000, warmup=500, train_files=None, dev_files=None)
QUICK = RunConfig(steps=12, warmup=8, train_files=4, dev_files=2, batch=8)


# ----------------------------------------------------------------------------- data


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SR) -> FloatArray:
    """The recipe's mel filterbank (:func:`recipes._common.mel_filterbank`)."""
    return _common.mel_filterbank(n_mels, n_fft, sr)


def log_mel(y: FloatArray, fb: FloatArray | None = None) -> FloatArray:
    """Log-mel spectrogram in dB, shape ``(N_MELS, frames)``, values in ``[-TOP_DB, 0]``.

    Frames of ``WIN`` samples (Hann) every ``HOP`` samples, zero-padded to
    ``N_FFT``; the power is clipped ``TOP_DB`` below the maximum of the
    utterance and the maximum is shifted to 0 dB.  Signals shorter than one
    frame give zero frames.
    """
    fb = mel_filterbank() if fb is None else fb
    y = np.asarray(y, dtype=np.float64)
    n = 0 if y.size < WIN else 1 + (y.size - WIN) // HOP
    if n == 0:
        return np.zeros((fb.shape[0], 0))
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = y[idx] * np.hanning(WIN + 2)[1:-1]
    power = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) ** 2
    db = 10.0 * np.log10(np.maximum(power @ fb.T, 1e-20)).T
    top = float(db.max())
    return np.asarray(np.maximum(db, top - TOP_DB) - top, dtype=np.float64)


def patches(spec: FloatArray, size: int = PATCH, hop: int = PATCH) -> FloatArray:
    """Patches ``(n, bands, size)`` cut from ``spec`` ``(bands, frames)`` every ``hop`` frames.

    Only whole patches are kept (none when ``frames < size``).
    """
    bands, frames = spec.shape
    starts = range(0, frames - size + 1, hop) if frames >= size else range(0)
    out = np.zeros((len(starts), bands, size))
    for i, s in enumerate(starts):
        out[i] = spec[:, s : s + size]
    return out


def psnr(ref: npt.ArrayLike, est: npt.ArrayLike, peak: float = TOP_DB) -> float:
    """``10 log10(peak^2 / MSE)`` over all values; ``inf`` when ``ref == est``."""
    a = np.asarray(ref, dtype=np.float64)
    b = np.asarray(est, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} != {b.shape}")
    mse = float(np.mean((a - b) ** 2)) if a.size else 0.0
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def _manifest_files(manifest: Path, split: str, limit: int | None) -> list[Path]:
    with manifest.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("split") == split]
    files = [manifest.parent / r["file"] for r in rows]
    return files[:limit] if limit is not None else files


def load_patches(files: Sequence[Path], hop: int, desc: str, progress: bool | None) -> FloatArray:
    """Log-mel patches of every file (16 kHz; a multichannel file is averaged)."""
    fb = mel_filterbank()
    out = []
    bar = make_progress(len(files), desc, progress)
    try:
        for f in files:
            y, rate = read_audio(f)
            if rate != SR:
                raise SystemExit(f"{f}: sample rate {rate} Hz, this recipe needs {SR} Hz")
            if y.ndim == 2:
                y = y.mean(axis=1)
            out.append(patches(log_mel(y, fb), PATCH, hop))
            bar.update(1)
    finally:
        bar.close()
    return np.concatenate(out) if out else np.zeros((0, N_MELS, PATCH))


def _data(
    manifest: Path, cfg: RunConfig, out: Path, progress: bool | None
) -> tuple[FloatArray, FloatArray, str]:
    train_files = _manifest_files(manifest, "train", cfg.train_files)
    dev_files = _manifest_files(manifest, "dev", cfg.dev_files)
    if not train_files or not dev_files:
        raise SystemExit(f"{manifest}: needs files of both splits 'train' and 'dev'")
    key = settings_hash(
        {
            "v": VERSION,
            "train": [(f.name, f.stat().st_size) for f in train_files],
            "dev": [(f.name, f.stat().st_size) for f in dev_files],
            "mel": [SR, N_FFT, WIN, HOP, N_MELS, PATCH, TOP_DB],
        }
    )
    cache = out / f"patches-{key}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return z["train"], z["dev"], key
    train = load_patches(train_files, PATCH // 2, "log-mel train", progress)
    dev = load_patches(dev_files, PATCH, "log-mel dev", progress)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, train=train.astype(np.float32), dev=dev.astype(np.float32))
    tmp.replace(cache)
    return train.astype(np.float32), dev.astype(np.float32), key


# ----------------------------------------------------------------------------- model


def structure(variant: str, bits: int) -> tuple[int, int, tuple[int, ...]]:
    """``(stages, bits_per_stage, split)`` of a variant at ``bits`` per latent vector."""
    if variant == "vq":
        return 1, bits, ()
    half = LATENT_DIM // 2
    return 2, bits // 2, ((half, LATENT_DIM - half) if variant == "pvq" else ())


def _beam(variant: str) -> int:
    return AVQ_BEAM if variant == "avq" else 1


def _search(variant: str) -> Any:
    from codec.quantizers.gradient import _search_fn

    return _search_fn(variant, _beam(variant))


def bottleneck_torch(z: Any, codebooks: Sequence[Any], variant: str) -> tuple[Any, Any]:
    """Hard quantization of latent vectors ``z`` ``(n, D)`` (torch) with torch codebooks.

    The indices come from the variant's numpy search on float64 copies; the
    reconstruction gathers and adds (RVQ, AVQ) or concatenates (PVQ) the
    codewords in torch, so gradients reach the codebook tensors.

    Returns
    -------
    (z_q, q) : the reconstruction ``(n, D)`` and the list of selected codewords per stage;
    codes : ndarray of int64, shape (n, stages)
    """
    import torch

    codes = _search(variant)(
        z.detach().double().numpy(),
        None,
        [c.detach().double().numpy() for c in codebooks],
    )
    ct = torch.from_numpy(codes)
    q = [c[ct[:, m]] for m, c in enumerate(codebooks)]
    zq = torch.cat(q, dim=1) if variant == "pvq" else torch.stack(q).sum(dim=0)
    return (zq, q), codes


def export_quantizer(codebooks: Sequence[Any], variant: str, method: str, seed: int) -> Quantizer:
    """The numpy :mod:`codec.quantizers` quantizer of torch codebooks (no mean removal)."""
    cbs = [c.detach().double().numpy().copy() for c in codebooks]
    return _CLASSES[variant](cbs, None, beam=_beam(variant), method=method, seed=seed)


def _net(torch: Any) -> Any:
    nn = torch.nn
    c = CHANNELS

    class AE(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(
                nn.Conv2d(1, c, 4, 2, 1),
                nn.ReLU(),
                nn.Conv2d(c, 2 * c, 4, 2, 1),
                nn.ReLU(),
                nn.Conv2d(2 * c, 2 * c, 3, 1, 1),
                nn.ReLU(),
                nn.Conv2d(2 * c, LATENT_DIM, 1),
            )
            self.dec = nn.Sequential(
                nn.Conv2d(LATENT_DIM, 2 * c, 3, 1, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(2 * c, c, 4, 2, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(c, 1, 4, 2, 1),
            )

        def encode(self, x: Any) -> Any:
            """Latent vectors ``(B * 16 * 16, D)`` of patches ``(B, 1, 64, 64)``."""
            z = self.enc(x)
            return z.permute(0, 2, 3, 1).reshape(-1, LATENT_DIM)

        def decode(self, zf: Any, batch: int) -> Any:
            h = PATCH // 4
            z = zf.reshape(batch, h, h, LATENT_DIM).permute(0, 3, 1, 2)
            return self.dec(z)

    return AE()


def _cosine(steps: int) -> Any:
    def f(step: int) -> float:
        return LR_FINAL + (1.0 - LR_FINAL) * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))

    return f


def _batches(n: int, batch: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    out, perm, pos = [], rng.permutation(n), 0
    batch = min(batch, n)
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = rng.permutation(n), 0
        out.append(np.sort(perm[pos : pos + batch]))
        pos += batch
    return out


def _train_ae(
    torch: Any,
    net: Any,
    x: Any,
    steps: int,
    batch: int,
    seed: int,
    desc: str,
    progress: bool | None,
) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(steps))
    bar = make_progress(steps, desc, progress)
    try:
        for idx in _batches(x.shape[0], batch, steps, np.random.default_rng([seed, 1])):
            xb = x[torch.from_numpy(idx)]
            xh = net.decode(net.encode(xb), xb.shape[0])
            loss = torch.nn.functional.mse_loss(xh, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    finally:
        bar.close()


def _latents(torch: Any, net: Any, x: Any, batch: int = 256) -> Any:
    with torch.no_grad():
        return torch.cat([net.encode(x[s : s + batch]) for s in range(0, x.shape[0], batch)])


def _init_codebooks(
    torch: Any, net: Any, x: Any, variant: str, bits: int, seed: int
) -> list[FloatArray]:
    z = _latents(torch, net, x).double().numpy()
    rng = np.random.default_rng([seed, 2])
    if z.shape[0] > INIT_VECTORS:
        z = z[np.sort(rng.choice(z.shape[0], INIT_VECTORS, replace=False))]
    stages, bps, split = structure(variant, bits)
    opts: dict[str, Any] = {"remove_mean": False, "progress": False, "iters": 15}
    if variant in ("rvq", "avq"):
        opts.update(refine_iters=5, beam=_beam(variant))
    if split:
        opts["split"] = split
    q = train_quantizer(z, variant, stages, bps, method="kmeans", seed=seed, **opts)
    return [np.asarray(c) for c in q.codebooks]


def _train_vq(
    torch: Any,
    net: Any,
    cbs0: list[FloatArray],
    x: Any,
    variant: str,
    method: str,
    steps: int,
    batch: int,
    seed: int,
    progress: bool | None,
) -> list[Any]:
    from codec.quantizers.gradient import replace_dead  # imports torch

    f = torch.nn.functional
    cbs = [torch.nn.Parameter(torch.tensor(c, dtype=torch.float32)) for c in cbs0]
    opt = torch.optim.Adam([*net.parameters(), *cbs], lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(steps))
    gen = torch.Generator().manual_seed(seed + 7)
    rng = np.random.default_rng([seed, 3])
    k = cbs[0].shape[0]
    usage = np.zeros((len(cbs), k))
    scale = float(np.sqrt(np.mean(np.concatenate([c.ravel() for c in cbs0]) ** 2))) or 1.0
    bounds = np.cumsum([0, *[c.shape[1] for c in cbs0]])
    every = max(1, min(REPLACE_EVERY, steps // 10))
    bar = make_progress(steps, f"{method} {variant}", progress)
    try:
        for step, idx in enumerate(_batches(x.shape[0], batch, steps, rng), start=1):
            xb = x[torch.from_numpy(idx)]
            z = net.encode(xb)
            (zq, q), codes = bottleneck_torch(z, cbs, variant)
            for m in range(len(cbs)):
                usage[m] += np.bincount(codes[:, m], minlength=k)
            if method == "nsvq":
                err = torch.linalg.vector_norm(z - zq, dim=1, keepdim=True)
                v = torch.randn(z.shape, generator=gen, dtype=z.dtype)
                zt = z + err * v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
                loss = f.mse_loss(net.decode(zt, xb.shape[0]), xb)
            else:
                zst = z + (zq - z).detach()
                loss = f.mse_loss(net.decode(zst, xb.shape[0]), xb)
                loss = loss + BETA * f.mse_loss(z, zq.detach())
                if variant == "pvq":
                    for m, qm in enumerate(q):
                        loss = loss + f.mse_loss(qm, z[:, bounds[m] : bounds[m + 1]].detach())
                else:
                    target = z.detach()
                    for qm in q:
                        loss = loss + f.mse_loss(qm, target)
                        target = target - qm.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % every == 0:
                if step <= REPLACE_UNTIL * steps:
                    replace_dead(cbs, opt, usage, REPLACE_THRESHOLD, 1e-3 * scale, rng)
                usage[:] = 0
            bar.update(1)
    finally:
        bar.close()
    return cbs


def _evaluate(
    torch: Any, net: Any, dev: Any, cbs: list[Any] | None, variant: str, method: str, seed: int
) -> dict[str, Any]:
    """Dev PSNR through the numpy quantizer and through the torch bottleneck."""
    out_np, out_t, diff = [], [], 0.0
    used: list[set[int]] = [set() for _ in (cbs or [])]
    q = None if cbs is None else export_quantizer(cbs, variant, method, seed)
    with torch.no_grad():
        for s in range(0, dev.shape[0], 256):
            xb = dev[s : s + 256]
            z = net.encode(xb)
            if cbs is None or q is None:
                out_np.append(net.decode(z, xb.shape[0]).numpy())
                continue
            (zq_t, _), _codes = bottleneck_torch(z, cbs, variant)
            idx = q.encode(z.double().numpy())
            zq_n = torch.from_numpy(q.decode(idx)).float()
            diff = max(diff, float((zq_t - zq_n).abs().max()))
            for m in range(idx.shape[1]):
                used[m].update(np.unique(idx[:, m]).tolist())
            out_np.append(net.decode(zq_n, xb.shape[0]).numpy())
            out_t.append(net.decode(zq_t, xb.shape[0]).numpy())
    ref = dev.numpy()
    res: dict[str, Any] = {"xh": np.concatenate(out_np)}
    if out_t:
        res["xh_torch"] = np.concatenate(out_t)
        k = q.codebook_size if q is not None else 1
        res["used_pct"] = round(100.0 * float(np.mean([len(u) / k for u in used])), 1)
    res["bottleneck_max_diff"] = diff if out_t else None
    res["ref"] = ref
    return res


# ----------------------------------------------------------------------------- report


def _row(
    variant: str,
    method: str,
    bits: int | None,
    ev: dict[str, Any],
    std: float,
    train_s: float,
    steps: int,
) -> dict[str, Any]:
    ref = ev["ref"].astype(np.float64) * std
    p_np = psnr(ref, ev["xh"].astype(np.float64) * std)
    p_t = psnr(ref, ev["xh_torch"].astype(np.float64) * std) if "xh_torch" in ev else p_np
    stages, bps, split = structure(variant, bits) if bits else (0, 0, ())
    note = {
        "none": "autoencoder without quantization (upper bound)",
        "vq": f"1 x {bps} bits",
        "rvq": f"2 x {bps} bits, greedy search",
        "avq": f"2 x {bps} bits, beam {AVQ_BEAM}",
        "pvq": f"2 x {bps} bits on {'+'.join(map(str, split))} dimensions",
    }[variant]
    return {
        "variant": variant,
        "method": method,
        "bits": bits,
        "stages": stages or None,
        "bits_per_stage": bps or None,
        "psnr_db": round(p_np, 3),
        "psnr_torch_db": round(p_t, 3),
        "bottleneck_max_diff": ev["bottleneck_max_diff"],
        "used_pct": ev.get("used_pct"),
        "train_s": round(train_s, 1),
        "steps": steps,
        "note": note,
    }


def write_markdown(path: Path, rows: list[dict[str, Any]], header: dict[str, Any]) -> None:
    """``results.md``: the table and the NSVQ - STE differences per variant."""
    table = markdown_table(
        [
            "variant",
            "method",
            "bits/latent",
            "dev PSNR (dB)",
            "torch PSNR (dB)",
            "codewords used (%)",
            "train (s)",
            "note",
        ],
        [
            [
                r["variant"],
                r["method"],
                "–" if r["bits"] is None else r["bits"],
                fmt_value(r["psnr_db"], 2),
                fmt_value(r["psnr_torch_db"], 2),
                "–" if r["used_pct"] is None else f"{r['used_pct']:.1f}",
                f"{r['train_s']:.0f}",
                r["note"],
            ]
            for r in rows
        ],
    )
    lines = [
        "# VQ-VAE on log-mel patches: NSVQ against STE in the bottleneck",
        "",
        f"Command: `{header['command']}`  ",
        f"Train patches {header['train_patches']}, dev patches {header['dev_patches']}, "
        f"{header['steps']} steps after {header['warmup']} autoencoder warm-up steps, "
        f"batch {header['batch']}, seed {header['seed']}, wall time {header['wall_s']} s.  ",
        f"PSNR = 10 log10({TOP_DB:g}^2 / MSE), MSE in dB^2 over all dev log-mel values "
        f"(fixed {TOP_DB:g} dB range).",
        "",
        table,
        "",
    ]
    by = {(r["variant"], r["method"]): r["psnr_db"] for r in rows}
    diffs = [
        f"- {v}: NSVQ - STE = {by[(v, 'nsvq')] - by[(v, 'ste')]:+.2f} dB"
        for v in VARIANTS
        if (v, "ste") in by
        and (v, "nsvq") in by
        and by[(v, "ste")] is not None
        and by[(v, "nsvq")] is not None
    ]
    if diffs:
        lines += ["NSVQ minus STE (dev PSNR):", "", *diffs, ""]
    path.write_text("\n".join(lines))


def plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """Grouped bars: PSNR by variant, one bar per method, the autoencoder as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    width = 0.8 / max(len(methods), 1)
    colors = {"ste": "tab:blue", "nsvq": "tab:orange"}
    vals = []
    for j, m in enumerate(methods):
        ys = []
        for v in variants:
            r = next((r for r in rows if r["variant"] == v and r["method"] == m), None)
            ys.append(math.nan if r is None or r["psnr_db"] is None else r["psnr_db"])
        vals += [y for y in ys if math.isfinite(y)]
        xs = np.arange(len(variants)) + (j - (len(methods) - 1) / 2) * width
        bars = ax.bar(xs, ys, width, label=m.upper(), color=colors.get(m))
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ae = next((r["psnr_db"] for r in rows if r["method"] == "ae"), None)
    if ae is not None and math.isfinite(ae):
        ax.axhline(ae, color="k", linestyle="--", linewidth=1, label=f"no quantization ({ae:.1f})")
        vals.append(ae)
    if vals:
        lo, hi = min(vals), max(vals)
        ax.set_ylim(max(0.0, lo - 0.25 * (hi - lo + 1.0)), hi + 0.4 * (hi - lo + 1.0))
    bits = next((r["bits"] for r in rows if r["bits"]), None)
    ax.set_xticks(np.arange(len(variants)), [v.upper() for v in variants])
    ax.set_ylabel("dev PSNR (dB, 80 dB peak)")
    ax.set_title(f"VQ-VAE on speech log-mel patches, {bits} bits per latent vector")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the recipe."""
    p = argparse.ArgumentParser(
        prog="python -m recipes.vqvae", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--out", default="out/vqvae", help="output folder (%(default)s)")
    p.add_argument(
        "--data", default=str(DEFAULT_MANIFEST), help="speech manifest .csv (%(default)s)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny setting for tests: {QUICK.train_files} train / {QUICK.dev_files} dev files, "
        f"{QUICK.warmup} + {QUICK.steps} steps of {QUICK.batch} patches",
    )
    p.add_argument(
        "--variants", default=",".join(VARIANTS), help="bottleneck quantizers (%(default)s)"
    )
    p.add_argument("--methods", default=",".join(METHODS), help="training methods (%(default)s)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"training steps per run (default {DEFAULT.steps}, --quick {QUICK.steps})",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"autoencoder warm-up steps (default {DEFAULT.warmup}, --quick {QUICK.warmup})",
    )
    p.add_argument(
        "--bits",
        type=int,
        default=8,
        help="bits per latent vector, even, 2..16 (%(default)s): VQ 1 x bits, others 2 x bits/2",
    )
    p.add_argument("--train-files", type=int, default=None, help="use only the first N train files")
    p.add_argument("--dev-files", type=int, default=None, help="use only the first N dev files")
    p.add_argument("--seed", type=int, default=0, help="seed (%(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (%(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _settings(args: argparse.Namespace) -> RunConfig:
    base = QUICK if args.quick else DEFAULT
    return RunConfig(
        steps=base.steps if args.steps is None else args.steps,
        warmup=base.warmup if args.warmup is None else args.warmup,
        train_files=base.train_files if args.train_files is None else args.train_files,
        dev_files=base.dev_files if args.dev_files is None else args.dev_files,
        batch=base.batch,
        bits=args.bits,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Train and evaluate every variant x method; returns the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    variants = parse_names(args.variants)
    methods = parse_names(args.methods)
    bad = [v for v in variants if v not in VARIANTS] + [m for m in methods if m not in METHODS]
    if bad or not variants or not methods:
        p.error(f"unknown or empty --variants/--methods {bad}; expected {VARIANTS} and {METHODS}")
    if args.bits % 2 or not 2 <= args.bits <= 16:
        p.error(f"--bits must be even in 2..16, got {args.bits}")
    cfg = _settings(args)
    if cfg.steps < 0 or cfg.warmup < 0 or args.threads < 1:
        p.error("--steps and --warmup must be >= 0, --threads >= 1")
    problem = missing_data(args.data, flag="--data", needs="16 kHz speech with train/dev splits")
    if problem:
        p.error(problem)
    try:
        import torch
    except ImportError:
        p.error(
            "this recipe trains networks with torch, which is not installed: "
            "pip install 'svq[train]'"
        )
    progress = False if args.quiet else None
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_np, dev_np, data_key = _data(Path(args.data), cfg, out, progress)
    if train_np.shape[0] == 0 or dev_np.shape[0] == 0:
        p.error("no whole 64-frame patch in the train or dev data")
    mean, std = float(train_np.mean()), float(train_np.std()) or 1.0
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    rows: list[dict[str, Any]] = []
    try:
        x = torch.from_numpy((train_np - mean) / std).float()[:, None]
        dev = torch.from_numpy((dev_np - mean) / std).float()[:, None]
        torch.manual_seed(args.seed)
        net0 = _net(torch)
        t0 = time.perf_counter()
        _train_ae(torch, net0, x, cfg.warmup, cfg.batch, args.seed, "warm-up", progress)
        warm_s = time.perf_counter() - t0
        ae = copy.deepcopy(net0)
        t0 = time.perf_counter()
        _train_ae(torch, ae, x, cfg.steps, cfg.batch, args.seed + 1, "autoencoder", progress)
        ae_s = time.perf_counter() - t0
        rows.append(
            _row(
                "none",
                "ae",
                None,
                _evaluate(torch, ae, dev, None, "none", "ae", args.seed),
                std,
                ae_s,
                cfg.steps,
            )
        )
        print(f"autoencoder (no quantization): {rows[-1]['psnr_db']:.2f} dB", flush=True)
        for v in variants:
            t0 = time.perf_counter()
            cbs0 = _init_codebooks(torch, net0, x, v, cfg.bits, args.seed)
            init_s = time.perf_counter() - t0
            for m in methods:
                net = copy.deepcopy(net0)
                t0 = time.perf_counter()
                cbs = _train_vq(
                    torch, net, cbs0, x, v, m, cfg.steps, cfg.batch, args.seed, progress
                )
                train_s = init_s + time.perf_counter() - t0
                ev = _evaluate(torch, net, dev, cbs, v, m, args.seed)
                rows.append(_row(v, m, cfg.bits, ev, std, train_s, cfg.steps))
                r = rows[-1]
                print(
                    f"{v:4s} {m:5s} {r['psnr_db']:.2f} dB (torch {r['psnr_torch_db']:.2f})"
                    f"  used {r['used_pct']:.0f} %  train {train_s:.0f} s",
                    flush=True,
                )
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    given = sys.argv[1:] if argv is None else list(argv)
    header: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "recipes.vqvae", *given]),
        "data": args.data,
        "data_key": data_key,
        "train_patches": int(train_np.shape[0]),
        "dev_patches": int(dev_np.shape[0]),
        "norm_mean_db": round(mean, 4),
        "norm_std_db": round(std, 4),
        "steps": cfg.steps,
        "warmup": cfg.warmup,
        "warmup_s": round(warm_s, 1),
        "batch": cfg.batch,
        "bits": cfg.bits,
        "seed": args.seed,
        "threads": args.threads,
        "latent": [PATCH // 4, PATCH // 4, LATENT_DIM],
        "psnr_peak_db": TOP_DB,
        "torch": str(torch.__version__),
        "version": VERSION,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    write_json(out / "results.json", rows)
    write_json(out / "run.json", {**header, "args": vars(args)})
    write_markdown(out / "results.md", rows, header)
    plot(out / "vqvae_psnr.png", rows)
    default_run = (
        not args.quick
        and cfg == DEFAULT
        and args.seed == 0
        and args.data == str(DEFAULT_MANIFEST)
        and set(variants) == set(VARIANTS)
        and set(methods) == set(METHODS)
    )
    if default_run:
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "vqvae_psnr.png", FIGURE)
    print(f"wrote {out / 'results.json'}, results.md, vqvae_psnr.png ({header['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
