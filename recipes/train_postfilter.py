"""Train the decoder post-filter (issue 11) on svq's own output.

Three stages, each resumable (``--stage data`` stops after the first):

1. **data**: every file of the train split is encoded and decoded by svq at
   every bitrate (half of the decodes with 10 % simulated frame loss, under
   either concealment), recording what the decoder knows per frame
   (:mod:`codec.postfilter.features`). One ``.npz`` per (file, bitrate) in
   ``OUT/data``; existing ones are kept.
2. **train**: the network of :mod:`codec.postfilter.network` and the filters
   of :mod:`codec.postfilter.filters`, written again in torch below (the same
   function), trained on random 1 s segments against the clean signal with a
   multi-resolution STFT loss (spectral convergence + log magnitude) plus
   ``--loudness-weight`` times a loudness-domain disturbance
   (:func:`loudness_loss`, after PMSQE: added noise costs more than missing
   energy). Neither is PESQ. Seeded; a checkpoint every
   ``--checkpoint-every`` steps; a rerun resumes from ``OUT/checkpoint.pt``.
3. **export**: the weights as ``OUT/postfilter.npz`` (float32, no pickle) with
   its SHA-256, and with ``--install`` into ``codec/data`` (weights plus
   ``POSTFILTER.json``, whose ``default_on`` lists the bitrates where the
   post-filter is on by default: ``--default-on``).

Usage::

    python -m recipes.train_postfilter --out out/postfilter
    python -m recipes.train_postfilter --out out/postfilter --install --default-on 8,9.6,13.2

(the second run finds the data and the finished checkpoint and only exports).

Needs the ``train`` extra (torch). The decoder itself runs the weights in numpy.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import codec
from codec.audio import read_audio, to_mono_16k
from codec.bitstream import check_file
from codec.errors import ParameterError
from codec.modes import BITRATES_KBPS, mode_for
from codec.pipeline import DECODE_BLOCK_FRAMES, StreamDecoder, simulate_loss
from codec.postfilter import (
    N_FEATURES,
    SHIPPED_INDEX,
    Weights,
    WeightsError,
    load_weights,
    save_weights,
    shipped_weights,
)
from codec.postfilter.features import N_BASE
from codec.postfilter.filters import (
    A_MAX,
    BRANCH_INDEX,
    FADE,
    FADE_WEIGHTS,
    G_MAX,
    GAIN_INDEX,
    HIST,
    LONG,
    PRE,
    SHAPE_FLOOR,
    SHAPE_INDEX,
    SHORT,
    SUB,
)
from codec.postfilter.network import (
    BRANCH_TAPS,
    COMB_TAPS,
    CONTEXT,
    FIR_TAPS,
    MAX_BRANCH_CHANNELS,
    SUBFRAMES,
    branch_channels,
    raw_width,
)
from recipes._common import (
    DEFAULT_MANIFEST,
    audio_files,
    display_name,
    mel_filterbank,
    parse_floats,
)

FRAME = SUB * SUBFRAMES
SEGMENT_FRAMES = 50  # 1 s training segments
PAST = 2 * CONTEXT + 1  # feature frames before a segment: the convolutions and the fade


# --------------------------------------------------------------------------- data


def _decode_item(job: tuple[str, str, float, float, str, int, str]) -> str:
    path, name, bitrate, loss, conceal, seed, out = job
    target = Path(out)
    if target.exists():
        return "kept"
    x, sr = read_audio(path)
    data = codec.encode(x, sr, bitrate)
    header, frames, _ = check_file(data)
    mask = simulate_loss(header.frame_count, loss, seed=seed) if loss > 0 else None
    dec = StreamDecoder(header, conceal=conceal, enhance=False, record_features=True)  # type: ignore[arg-type]
    parts = []
    step = DECODE_BLOCK_FRAMES
    for k0 in range(0, header.frame_count, step):
        block: list[bytes | None] = list(frames[k0 : k0 + step])
        if mask is not None:
            for i in np.flatnonzero(mask[k0 : k0 + step]):
                block[i] = None
        parts.append(dec.decode(block))
    parts.append(dec.flush())
    y = np.concatenate(parts)
    assert dec.features is not None and dec.comb_lags is not None
    feats = np.concatenate(dec.features)
    lags = np.concatenate(dec.comb_lags)
    clean = to_mono_16k(x, sr)
    tmp = target.with_suffix(".part.npz")
    np.savez(
        tmp,
        clean=np.asarray(clean, dtype=np.float32),
        decoded=y.astype(np.float32),
        feats=feats.astype(np.float32),
        lags=lags.astype(np.int16),
        bitrate=np.float64(bitrate),
        loss=np.float64(loss),
    )
    tmp.replace(target)
    return "made"


def prepare(
    files: Sequence[Path],
    source: str | Path,
    out: Path,
    bitrates: Sequence[float],
    *,
    seed: int,
    workers: int,
    quiet: bool,
) -> list[Path]:
    """Decode every (file, bitrate) once; returns the item files."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    jobs = []
    for f in files:
        stem = display_name(f, source).replace("/", "__").rsplit(".", 1)[0]
        for b in bitrates:
            lossy = rng.random() < 0.5
            conceal = "interpolate" if rng.random() < 0.5 else "causal"
            s = int(rng.integers(1 << 30))
            jobs.append(
                (str(f), stem, b, 0.1 if lossy else 0.0, conceal, s, str(out / f"{stem}@{b:g}.npz"))
            )
    bar = tqdm(total=len(jobs), desc="decode train", unit="item", disable=quiet)
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            for _ in ex.map(_decode_item, jobs, chunksize=4):
                bar.update()
    else:
        for j in jobs:
            _decode_item(j)
            bar.update()
    bar.close()
    return [Path(j[-1]) for j in jobs]


class Items:
    """The decoded training items in memory, and random segments of them; the
    first ``width`` feature columns (:data:`N_BASE` or :data:`N_FEATURES`)."""

    def __init__(self, paths: Sequence[Path], width: int = N_BASE) -> None:
        self.items = []
        self.width = width
        for p in paths:
            with np.load(p) as z:
                item = {k: z[k] for k in ("clean", "decoded", "feats", "lags")}
            if item["feats"].shape[1] < width:
                raise SystemExit(
                    f"error: {p} holds {item['feats'].shape[1]} features, not {width}: "
                    f"it was decoded by an earlier svq; delete {p.parent} and rerun"
                )
            item["feats"] = item["feats"][:, :width]
            n = min(item["clean"].size, item["decoded"].size) // FRAME
            if n >= SEGMENT_FRAMES:
                self.items.append(item)
        if not self.items:
            raise SystemExit("error: no decoded training items of at least 1 s")
        feats = np.concatenate([it["feats"] for it in self.items]).astype(np.float64)
        self.mean = feats.mean(axis=0)
        self.std = np.maximum(feats.std(axis=0), 1e-3)
        self.frames = np.array(
            [min(it["clean"].size, it["decoded"].size) // FRAME for it in self.items]
        )

    def batch(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        """``size`` random segments of :data:`SEGMENT_FRAMES` frames with their context."""
        k_seg = SEGMENT_FRAMES
        p = (self.frames - k_seg + 1).astype(np.float64)
        which = rng.choice(len(self.items), size=size, p=p / p.sum())
        feats = np.zeros((size, PAST + k_seg, self.width), dtype=np.float32)
        valid = np.zeros((size, PAST + k_seg), dtype=np.float32)
        lags = np.full((size, 1 + k_seg), 160, dtype=np.int64)
        x = np.zeros((size, HIST + k_seg * FRAME), dtype=np.float32)
        target = np.zeros((size, k_seg * FRAME), dtype=np.float32)
        for b, i in enumerate(which):
            it = self.items[i]
            k0 = int(rng.integers(0, self.frames[i] - k_seg + 1))
            lo = k0 - PAST
            src = slice(max(lo, 0), k0 + k_seg)
            feats[b, max(lo, 0) - lo :] = it["feats"][src]
            valid[b, max(lo, 0) - lo :] = 1.0
            if k0 >= 1:
                lags[b, 0] = it["lags"][k0 - 1]
            lags[b, 1:] = it["lags"][k0 : k0 + k_seg]
            s0 = k0 * FRAME
            h0 = max(s0 - HIST, 0)
            x[b, HIST - (s0 - h0) :] = it["decoded"][h0 : s0 + k_seg * FRAME]
            target[b] = it["clean"][s0 : s0 + k_seg * FRAME]
        return {"feats": feats, "valid": valid, "lags": lags, "x": x, "target": target}


# --------------------------------------------------------------------------- torch model


def torch_model(
    hidden: int,
    mean: np.ndarray,
    std: np.ndarray,
    comb_gain: float = 0.035,
    branch_channels: int = 0,
) -> Any:
    """The post-filter in torch: the same function as :class:`codec.postfilter.Enhancer`
    (with a rectifying branch of ``branch_channels``)."""
    import torch
    from torch import nn

    class PostFilterNet(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float64))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float64))
            self.l1 = nn.Linear(len(mean), hidden)
            self.l2 = nn.Linear(3 * hidden, hidden)
            self.l3 = nn.Linear(3 * hidden, hidden)
            self.width = raw_width(branch_channels)
            self.l4 = nn.Linear(hidden, SUBFRAMES * self.width)
            with torch.no_grad():
                self.l4.weight.mul_(0.05)
                self.l4.bias.zero_()
                # the branch starts silent (q = 0; its gradient is not: p starts at e_0)
                second = BRANCH_INDEX + branch_channels * BRANCH_TAPS
                self.l4.weight.view(SUBFRAMES, self.width, hidden)[:, second:] = 0.0
                # the comb's initial gain: G_MAX * sigmoid(bias)
                self.l4.bias.view(SUBFRAMES, self.width)[:, 0] = math.log(
                    comb_gain / (G_MAX - comb_gain)
                )

        def raw(self, feats: Any, valid: Any) -> Any:
            """Raw parameters of the last ``n - 2 * CONTEXT`` frames (B, m, SUBFRAMES, width)."""
            u = (feats.to(self.mean.dtype) - self.mean) / self.std
            u = u.to(self.l1.weight.dtype)
            h1 = torch.tanh(self.l1(u)) * valid[..., None]
            h2 = torch.tanh(self.l2(_taps_t(h1))) * valid[:, CONTEXT:, None]
            h3 = torch.tanh(self.l3(_taps_t(h2)))
            r = self.l4(h3)
            return r.view(r.shape[0], r.shape[1], SUBFRAMES, self.width)

        def forward(self, feats: Any, valid: Any, lags: Any, x: Any) -> Any:
            """Enhanced samples of the segment (B, m * 320); see :meth:`Items.batch`."""
            r = self.raw(feats, valid)  # frames -1 .. m-1
            g, c, h, bp, bq = _kernels_t(r)
            a = A_MAX * torch.tanh(r[..., SHAPE_INDEX])
            first = valid[:, 2 * CONTEXT]  # is frame -1 in the stream?
            ident = torch.zeros_like(h)
            ident[..., 0] = 1.0
            keep = first.reshape(-1, 1, 1).to(g.dtype)  # (B, 1, 1): frame -1's subframes
            # frame -1 outside the stream: its subframes pass the signal unchanged
            g = torch.cat((g[:, :1] * keep, g[:, 1:]), 1)
            h = torch.cat(
                (h[:, :1] * keep[..., None] + ident[:, :1] * (1 - keep[..., None]), h[:, 1:]), 1
            )
            k2, i2 = keep[..., None, None], ident[:, :1, :, None]  # with the channel axis
            bp = torch.cat((bp[:, :1] * k2 + i2 * (1 - k2), bp[:, 1:]), 1)
            bq = torch.cat((bq[:, :1] * k2, bq[:, 1:]), 1)
            a = torch.cat((a[:, :1] * keep, a[:, 1:]), 1)
            bsz, m1 = g.shape[:2]
            m = m1 - 1
            a = a.reshape(bsz, m1 * SUBFRAMES)
            g = g.reshape(bsz, m1 * SUBFRAMES)
            c = c.reshape(bsz, m1 * SUBFRAMES, COMB_TAPS)
            h = h.reshape(bsz, m1 * SUBFRAMES, FIR_TAPS)
            bp = bp.reshape(bsz, m1 * SUBFRAMES, branch_channels, BRANCH_TAPS)
            bq = bq.reshape(bsz, m1 * SUBFRAMES, branch_channels, BRANCH_TAPS)
            lag = lags.repeat_interleave(SUBFRAMES, dim=1)
            s = m * SUBFRAMES
            start = HIST + SUB * torch.arange(s)[None, :].expand(bsz, s)
            cur = slice(SUBFRAMES, None)
            prev = slice(SUBFRAMES - 1, m1 * SUBFRAMES - 1)
            kc = (g[:, cur], c[:, cur], h[:, cur], bp[:, cur], bq[:, cur])
            kp = (g[:, prev], c[:, prev], h[:, prev], bp[:, prev], bq[:, prev])
            y = _run_t(x, start, lag[:, cur], kc, SUB)
            yp = _run_t(x, start, lag[:, prev], kp, FADE)
            w = torch.tensor(FADE_WEIGHTS, dtype=y.dtype)
            y = torch.cat((w * y[..., :FADE] + (1 - w) * yp, y[..., FADE:]), -1)
            y = y * _shaper_gains_t(x, start, a[:, cur], a[:, prev])
            return y.reshape(bsz, s * SUB)

    return PostFilterNet()


def _taps_t(h: Any) -> Any:
    import torch

    n = h.shape[1] - CONTEXT
    return torch.cat([h[:, i : i + n] for i in range(CONTEXT + 1)], dim=-1)


def _kernels_t(r: Any) -> Any:
    import torch

    g = G_MAX * torch.sigmoid(r[..., 0])
    c = torch.softmax(r[..., 1 : 1 + COMB_TAPS], dim=-1)
    h = r[..., 1 + COMB_TAPS : 1 + COMB_TAPS + FIR_TAPS]
    h = h + torch.nn.functional.one_hot(torch.tensor(0), FIR_TAPS).to(h.dtype)
    h = h * (torch.exp(r[..., GAIN_INDEX]) / torch.sqrt((h * h).sum(-1)))[..., None]
    ch = branch_channels(r.shape[-1])
    cb = ch * BRANCH_TAPS
    p = r[..., BRANCH_INDEX : BRANCH_INDEX + cb].unflatten(-1, (ch, BRANCH_TAPS))
    p = p + torch.nn.functional.one_hot(torch.tensor(0), BRANCH_TAPS).to(p.dtype)
    q = r[..., BRANCH_INDEX + cb : BRANCH_INDEX + 2 * cb].unflatten(-1, (ch, BRANCH_TAPS))
    return g, c, h, p, q - q.mean(-1, keepdim=True)


def _shaper_gains_t(x: Any, start: Any, a: Any, a_prev: Any) -> Any:
    """:func:`codec.postfilter.filters.shaper_gains` in torch, batched: (B, S, SUB)."""
    import torch

    bsz, s = start.shape
    ar = torch.arange(SUB + LONG - 1)
    idx = ((start - (LONG - 1))[..., None] + ar).reshape(bsz, -1)
    p = torch.gather(x, 1, idx).reshape(bsz, s, -1) ** 2
    e_short = p[..., LONG - SHORT :].unfold(-1, SHORT, 1).mean(-1)
    e_long = p.unfold(-1, LONG, 1).mean(-1)
    ratio = (e_short + SHAPE_FLOOR * e_long + 1e-12) / ((1.0 + SHAPE_FLOOR) * e_long + 1e-12)
    w = torch.tensor(FADE_WEIGHTS, dtype=x.dtype)
    ex = a[..., None].expand(bsz, s, SUB)
    ex = torch.cat((w * a[..., None] + (1 - w) * a_prev[..., None], ex[..., FADE:]), -1)
    return ratio ** (0.5 * ex)


def _run_t(x: Any, start: Any, lag: Any, k: Any, length: int) -> Any:
    """:func:`codec.postfilter.filters.run` in torch, batched: x (B, L), the rest (B, S, ...).

    The per-subframe filters are depthwise (grouped) convolutions, one group
    per subframe."""
    import torch
    from torch.nn.functional import conv1d

    g, c, h, p, q = k
    bsz, s = start.shape
    n = bsz * s
    span = length + PRE
    ar = torch.arange(span + COMB_TAPS - 1)
    base = start - PRE - lag - COMB_TAPS // 2
    xl = torch.gather(x, 1, (base[..., None] + ar).reshape(bsz, -1)).reshape(1, n, -1)
    comb = conv1d(xl, c.reshape(n, 1, COMB_TAPS), groups=n)
    xs = torch.gather(x, 1, ((start - PRE)[..., None] + ar[:span]).reshape(bsz, -1))
    z = xs.reshape(1, n, span) + g.reshape(1, n, 1) * comb
    y = conv1d(z[..., PRE - (FIR_TAPS - 1) :], h.flip(-1).reshape(n, 1, FIR_TAPS), groups=n)
    ch = p.shape[2]
    if not ch:
        return y.reshape(bsz, s, length)
    nc = n * ch
    u = conv1d(
        z[..., PRE - 2 * (BRANCH_TAPS - 1) :], p.flip(-1).reshape(nc, 1, BRANCH_TAPS), groups=n
    )
    v = conv1d(u.abs(), q.flip(-1).reshape(nc, 1, BRANCH_TAPS), groups=nc)
    y = y + v.reshape(n, ch, length).sum(1)
    return y.reshape(bsz, s, length)


LOSSES = ("stft", "mel")


def stft_loss(y: Any, t: Any, kind: str = "stft") -> Any:
    """Multi-resolution spectral loss, averaged over FFT sizes 1024 / 512 / 256 / 128.

    ``stft``: spectral convergence + mean |log magnitude difference| per FFT bin.
    ``mel``: spectral convergence + mean |log mel-band energy difference| (HTK mel
    bands, as many as the FFT resolves up to 80), which weights frequencies as
    hearing does instead of bin by bin (half of the bins lie above 4 kHz).
    """
    import torch

    total = y.new_zeros(())
    for n_fft in (1024, 512, 256, 128):
        win = torch.hann_window(n_fft, dtype=y.dtype)
        sy = torch.stft(y, n_fft, n_fft // 4, window=win, return_complex=True).abs()
        st = torch.stft(t, n_fft, n_fft // 4, window=win, return_complex=True).abs()
        sc = torch.linalg.norm(sy - st) / torch.linalg.norm(st).clamp_min(1e-8)
        if kind == "mel":
            fb = _mel_t(min(80, n_fft // 8), n_fft, y.dtype)
            my = torch.einsum("mf,bft->bmt", fb, sy * sy)
            mt = torch.einsum("mf,bft->bmt", fb, st * st)
            lm = 0.5 * (torch.log(my + 1e-9) - torch.log(mt + 1e-9)).abs().mean()
        else:
            lm = (torch.log(sy + 1e-5) - torch.log(st + 1e-5)).abs().mean()
        total = total + sc + lm
    return total / 4


LOUD_FFT = 512  # 32 ms frames, hop 16 ms: the frame of ITU-T P.862's ear model at 16 kHz
LOUD_LEVEL_DB = 70.0  # a segment's mean power is taken to be this sound level (dB SPL)
LOUD_GAMMA = 0.23  # Zwicker's exponent
LOUD_DEAD_ZONE = 0.25  # a loudness difference below this share of the smaller loudness is masked
LOUD_ASYM_FLOOR, LOUD_ASYM_CAP = 3.0, 12.0  # asymmetry factors below the floor count as 0


@functools.lru_cache(maxsize=4)
def _bark_bands(n_fft: int, sr: int = 16000, step: float = 0.5) -> tuple[Any, Any, Any]:
    """Rectangular bands of ``step`` Bark over the FFT bins: (bands x bins) 0/1 matrix,
    band widths in Bark and the threshold in quiet at each band's centre (dB SPL, Terhardt)."""
    freqs = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
    bark = 13.0 * np.arctan(0.00076 * freqs) + 3.5 * np.arctan((freqs / 7500.0) ** 2)
    edges = np.arange(0.0, bark[-1] + step / 2, step)
    idx = np.minimum(np.searchsorted(edges, bark, side="right") - 1, edges.size - 2)
    fb = np.zeros((edges.size - 1, freqs.size))
    fb[idx, np.arange(freqs.size)] = 1.0
    keep = fb.sum(axis=1) > 0
    fb = fb[keep]
    centre = (fb @ freqs) / fb.sum(axis=1)
    width = (fb @ np.gradient(bark)) + 1e-3
    khz = np.maximum(centre, 50.0) / 1000.0
    quiet = 3.64 * khz**-0.8 - 6.5 * np.exp(-0.6 * (khz - 3.3) ** 2) + 1e-3 * khz**4
    return fb, width, quiet


def loudness_loss(y: Any, t: Any) -> Any:
    """A perceptual disturbance in the loudness domain, after Martin-Donas et al.'s PMSQE
    (IEEE SPL 2018), itself modelled on P.862's ear model: not PESQ (no time alignment, no
    gain or frequency equalisation, no MOS mapping), differentiable.

    Both signals are scaled by the gain that brings the target segment's mean power
    to :data:`LOUD_LEVEL_DB`; band powers on half-Bark bands become loudness by
    Zwicker's law over the threshold in quiet; the per-band loudness difference
    outside a dead zone is the *symmetric* disturbance (L2 over bands, Bark
    weighted), and the same difference weighted by how much louder the output is
    than the target (``((P_y + c) / (P_t + c)) ** 1.2``, 0 below 3, capped at 12)
    the *asymmetric* one (L1): added noise costs more than missing energy. Returns
    ``0.1 * symmetric + 0.0309 * asymmetric`` averaged over frames (P.862's
    weights of the two).
    """
    import torch

    fb, width, quiet = (torch.from_numpy(a).to(y.dtype) for a in _bark_bands(LOUD_FFT))
    g = (1.0 / (t * t).mean(-1, keepdim=True).clamp_min(1e-7)).sqrt()
    win = torch.hann_window(LOUD_FFT, dtype=y.dtype)
    norm = (win * win).sum() * (LOUD_FFT // 2)

    def bands(s: Any) -> Any:  # (B, bands, frames), in units of 10 ** (dB SPL / 10)
        spec = torch.stft(s, LOUD_FFT, LOUD_FFT // 2, window=win, return_complex=True)
        p = (spec.real**2 + spec.imag**2) / norm
        return torch.einsum("kf,bft->bkt", fb, p) * (10.0 ** (LOUD_LEVEL_DB / 10))

    py, pt = bands(y * g), bands(t * g)
    p0 = (10.0 ** (quiet / 10))[:, None]
    scale = 0.05 * (p0 / 0.5) ** LOUD_GAMMA

    def loud(p: Any) -> Any:
        return scale * ((0.5 + 0.5 * p / p0) ** LOUD_GAMMA - 1.0).clamp_min(0.0)

    ly, lt = loud(py), loud(pt)
    d = ly - lt
    d = torch.sign(d) * (d.abs() - LOUD_DEAD_ZONE * torch.minimum(ly, lt)).clamp_min(0.0)
    asym = ((py + 50.0) / (pt + 50.0)) ** 1.2
    asym = torch.where(asym < LOUD_ASYM_FLOOR, 0.0, asym.clamp_max(LOUD_ASYM_CAP))
    w = width[:, None]
    sym = torch.sqrt(((d * w) ** 2).sum(1) + 1e-12)
    asy = (d.abs() * asym * w).sum(1)
    return (0.1 * sym + 0.0309 * asy).mean()


_MEL: dict[tuple[int, int], Any] = {}


def _mel_t(n_mels: int, n_fft: int, dtype: Any) -> Any:
    import torch

    key = (n_mels, n_fft)
    if key not in _MEL:
        _MEL[key] = torch.from_numpy(mel_filterbank(n_mels, n_fft, 16000))
    return _MEL[key].to(dtype)


def load_into(model: Any, w: Weights) -> None:
    """Set the torch model's parameters (and feature normalisation) to ``w``'s."""
    import torch

    pairs = [
        (model.mean, w.mean, False),
        (model.std, w.std, False),
        (model.l1.weight, w.w1, True),
        (model.l1.bias, w.b1, False),
        (model.l2.weight, w.w2, True),
        (model.l2.bias, w.b2, False),
        (model.l3.weight, w.w3, True),
        (model.l3.bias, w.b3, False),
        (model.l4.weight, w.w4, True),
        (model.l4.bias, w.b4, False),
    ]
    for t, arr, transpose in pairs:
        src = arr.T if transpose else arr
        if tuple(t.shape) != src.shape:
            raise ValueError(
                f"the initial weights do not fit this network ({src.shape} for {tuple(t.shape)}): "
                "give the same --hidden, --branch-channels and features"
            )
        with torch.no_grad():
            t.copy_(torch.as_tensor(np.ascontiguousarray(src), dtype=t.dtype))


def to_weights(model: Any, info: dict[str, Any]) -> Weights:
    """The torch model's parameters as numpy :class:`Weights`."""

    def a(t: Any) -> np.ndarray:
        return np.asarray(t.detach().cpu().numpy(), dtype=np.float64)

    return Weights(
        mean=a(model.mean),
        std=a(model.std),
        w1=a(model.l1.weight).T.copy(),
        b1=a(model.l1.bias),
        w2=a(model.l2.weight).T.copy(),
        b2=a(model.l2.bias),
        w3=a(model.l3.weight).T.copy(),
        b3=a(model.l3.bias),
        w4=a(model.l4.weight).T.copy(),
        b4=a(model.l4.bias),
        info=info,
    )


def train(
    items: Items,
    out: Path,
    *,
    steps: int,
    batch: int,
    hidden: int,
    lr: float,
    seed: int,
    checkpoint_every: int,
    quiet: bool,
    comb_gain: float = 0.035,
    branch_channels: int = 0,
    loss_kind: str = "stft",
    wave_weight: float = 0.0,
    loudness_weight: float = 0.0,
    init: Weights | None = None,
    adversarial: float = 0.0,
) -> Any:
    """Train (resuming from ``out/checkpoint.pt``); returns the model.

    ``init``: start from these weights (their width and branch, their feature
    normalisation) instead of a random network. ``adversarial``: the weight of a
    least-squares GAN term plus feature matching against a multi-resolution STFT
    discriminator (:mod:`recipes._adversarial`), trained alongside.
    """
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    model = torch_model(hidden, items.mean, items.std, comb_gain, branch_channels)
    if init is not None:
        load_into(model, init)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    disc = d_opt = None
    if adversarial:
        from recipes._adversarial import discriminator, discriminator_loss, generator_terms

        disc = discriminator()
        d_opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.8, 0.99))
    rng = np.random.default_rng(seed)
    step, log, elapsed, skipped = 0, [], 0.0, 0
    ck = out / "checkpoint.pt"
    if ck.exists():
        state = torch.load(ck, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        step, log, elapsed = state["step"], state["log"], state["elapsed"]
        skipped = state.get("skipped", 0)
        if disc is not None:
            disc.load_state_dict(state["disc"])
            d_opt.load_state_dict(state["d_opt"])
    bar = tqdm(total=steps, initial=step, desc="train post-filter", unit="step", disable=quiet)
    t0 = time.perf_counter() - elapsed

    def spectral(out: Any, target: Any) -> Any:
        """The STFT loss, plus the loudness term when it is weighted."""
        value = stft_loss(out, target, loss_kind)
        if loudness_weight:
            value = value + loudness_weight * loudness_loss(out, target)
        return value

    while step < steps:
        b = {k: torch.from_numpy(v) for k, v in items.batch(rng, batch).items()}
        y = model(b["feats"], b["valid"], b["lags"], b["x"])
        loss = spectral(y, b["target"])
        if wave_weight:  # the waveform error relative to the target's energy, per segment
            err = ((y - b["target"]) ** 2).sum(-1) / (b["target"] ** 2).sum(-1).clamp_min(1e-6)
            loss = loss + wave_weight * err.mean()
        logged = loss.item()  # the regression loss: comparable with and without a GAN
        if disc is not None:  # one discriminator step, then the generator's terms
            d_loss = discriminator_loss(disc, b["target"], y)
            d_opt.zero_grad()
            d_loss.backward()
            if torch.isfinite(d_loss):
                d_opt.step()
            adv, fm = generator_terms(disc, b["target"], y)
            loss = loss + adversarial * (adv + fm)
        base = math.nan
        if step % 10 == 0:  # the plain decoder's loss on the same segments, for the log
            with torch.no_grad():
                base = float(spectral(b["x"][:, HIST:], b["target"]))
        opt.zero_grad()
        loss.backward()  # (the discriminator's gradients from it are cleared before its step)
        if torch.isfinite(loss) and all(
            bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None
        ):
            opt.step()
        else:  # a step that would spoil the model is left out (and counted)
            skipped += 1
        sched.step()
        step += 1
        elapsed = time.perf_counter() - t0
        log.append((step, logged, base))
        bar.update()
        if step % 10 == 0:
            recent = np.array([r[1:] for r in log[-200:]])
            bar.set_postfix(
                loss=f"{recent[:, 0].mean():.4f}", plain=f"{np.nanmean(recent[:, 1]):.4f}"
            )
        if step % checkpoint_every == 0 or step == steps:
            state = {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "rng": rng.bit_generator.state,
                "step": step,
                "log": log,
                "elapsed": elapsed,
                "skipped": skipped,
            }
            if disc is not None:
                state["disc"], state["d_opt"] = disc.state_dict(), d_opt.state_dict()
            torch.save(state, out / "checkpoint.part")
            (out / "checkpoint.part").replace(ck)
    bar.close()
    # the time to the last step, so that a rerun on a finished checkpoint
    # exports byte-identical weights (their info carries this figure)
    model.train_seconds = elapsed
    model.train_log = log
    model.skipped_steps = skipped
    return model


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m recipes.train_postfilter",
        description="Train the decoder post-filter on svq's own decoded train split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data", default=str(DEFAULT_MANIFEST), help="folder or manifest .csv of speech"
    )
    p.add_argument("--split", default="train", help="manifest split to train on")
    p.add_argument("--out", required=True, help="output folder (data, checkpoint, weights)")
    p.add_argument(
        "--stage",
        choices=("data", "all"),
        default="all",
        help="data: only decode the train split; all: then train (resuming) and export",
    )
    p.add_argument("--bitrates", default=",".join(f"{b:g}" for b in BITRATES_KBPS))
    p.add_argument("--limit", type=int, default=None, help="only the first N files")
    p.add_argument("--steps", type=int, default=8000, help="training steps")
    p.add_argument("--batch", type=int, default=12, help="segments of 1 s per step")
    p.add_argument("--hidden", type=int, default=192, help="width of the feature network")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine decay)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss", choices=LOSSES, default="stft", help="training loss (stft_loss)")
    p.add_argument(
        "--wave-weight",
        type=float,
        default=0.0,
        help="weight of a waveform term (squared error / target energy) added to the loss",
    )
    p.add_argument(
        "--loudness-weight",
        type=float,
        default=10.0,
        help="weight of a perceptual loudness-domain disturbance (loudness_loss) added to the loss",
    )
    p.add_argument(
        "--comb-gain", type=float, default=0.035, help="initial gain of the pitch comb (0 .. 0.75)"
    )
    p.add_argument(
        "--branch-channels",
        type=int,
        default=0,
        help="channels of the rectifying branch (filters.py; 0: none, as shipped)",
    )
    p.add_argument(
        "--coded-shares",
        action="store_true",
        help=f"also feed the network each band's share of coded energy ({N_FEATURES} "
        f"features instead of {N_BASE}; features.py)",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="WEIGHTS",
        help="start from these weights (a postfilter.npz, or 'shipped'), not a random network",
    )
    p.add_argument(
        "--adversarial",
        type=float,
        default=0.0,
        help="weight of a least-squares GAN term plus feature matching against a "
        "multi-resolution STFT discriminator (recipes/_adversarial.py; 0: none, as shipped)",
    )
    p.add_argument("--workers", type=int, default=2, help="processes for the data stage")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument(
        "--install", action="store_true", help="export into codec/data (the shipped weights)"
    )
    p.add_argument(
        "--default-on",
        default="",
        help="with --install: bitrates (kbit/s, comma-separated) where it is on by default",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    try:
        import torch
    except ModuleNotFoundError:
        print("error: training needs torch: pip install 'svq[train]'", file=sys.stderr)
        return 2
    out = Path(a.out)
    try:
        bitrates = [mode_for(b).bitrate_kbps for b in parse_floats(a.bitrates)]
        on = [mode_for(b).bitrate_kbps for b in parse_floats(a.default_on)]
        files = audio_files(a.data, split=a.split, limit=a.limit)
    except (ParameterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.steps < 1 or a.batch < 1 or a.hidden < 1:
        print("error: --steps, --batch and --hidden must be >= 1", file=sys.stderr)
        return 2
    if not 0 <= a.branch_channels <= MAX_BRANCH_CHANNELS:
        print(f"error: --branch-channels must be 0 .. {MAX_BRANCH_CHANNELS}", file=sys.stderr)
        return 2
    if not 0.0 < a.comb_gain < G_MAX:
        print(f"error: --comb-gain must be in (0, {G_MAX})", file=sys.stderr)
        return 2
    if a.adversarial < 0 or not math.isfinite(a.adversarial):
        print("error: --adversarial must be a finite weight >= 0", file=sys.stderr)
        return 2
    init = None
    if a.init is not None:
        try:
            init = shipped_weights() if a.init == "shipped" else load_weights(a.init)
        except WeightsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if init is None:
            print("error: --init shipped: this svq ships no post-filter weights", file=sys.stderr)
            return 2
        if (init.hidden, init.branch_channels, init.mean.size) != (
            a.hidden,
            a.branch_channels,
            N_FEATURES if a.coded_shares else N_BASE,
        ):
            print(
                f"error: --init {a.init}: its network ({init.hidden} wide, "
                f"{init.branch_channels} branch channels, {init.mean.size} features) is not "
                f"the one asked for; give the same --hidden, --branch-channels, --coded-shares",
                file=sys.stderr,
            )
            return 2
    torch.set_num_threads(2)
    paths = prepare(
        files, a.data, out / "data", bitrates, seed=a.seed, workers=a.workers, quiet=a.quiet
    )
    if a.stage == "data":
        return 0
    items = Items(paths, N_FEATURES if a.coded_shares else N_BASE)
    model = train(
        items,
        out,
        steps=a.steps,
        batch=a.batch,
        hidden=a.hidden,
        lr=a.lr,
        seed=a.seed,
        checkpoint_every=a.checkpoint_every,
        quiet=a.quiet,
        comb_gain=a.comb_gain,
        branch_channels=a.branch_channels,
        loss_kind=a.loss,
        wave_weight=a.wave_weight,
        loudness_weight=a.loudness_weight,
        init=init,
        adversarial=a.adversarial,
    )
    log = model.train_log
    info = {
        "steps": a.steps,
        "batch": a.batch,
        "hidden": a.hidden,
        "lr": a.lr,
        "seed": a.seed,
        "comb_gain": a.comb_gain,
        # (only when on: the default's info, and so its hash, is that of before)
        **({"branch_channels": a.branch_channels} if a.branch_channels else {}),
        **({"features": N_FEATURES} if a.coded_shares else {}),
        **({"init": init.sha256} if init is not None else {}),
        **({"adversarial": a.adversarial} if a.adversarial else {}),
        "loss": a.loss,
        "wave_weight": a.wave_weight,
        "loudness_weight": a.loudness_weight,
        "files": len(files),
        "bitrates": bitrates,
        "svq": codec.__version__,
        "final_loss": float(np.nanmean([r[1] for r in log[-200:]])),
        "plain_loss": float(np.nanmean([r[2] for r in log[-200:]])),
        "train_seconds": round(float(model.train_seconds), 1),
        **({"skipped_steps": model.skipped_steps} if model.skipped_steps else {}),
    }
    if not all(bool(torch.isfinite(t).all()) for t in model.parameters()):
        print(f"error: the trained weights in {out} are not finite", file=sys.stderr)
        return 1
    w = to_weights(model, info)
    if model.skipped_steps:
        print(f"warning: {model.skipped_steps} steps left out (a loss or gradient not finite)")
    digest = save_weights(w, out / "postfilter.npz")
    (out / "train.json").write_text(
        json.dumps({**info, "sha256": digest, "n_params": w.n_params}, indent=1)
    )
    print(
        f"post-filter: {w.n_params} parameters, loss {info['final_loss']:.4f} "
        f"(plain decoder {info['plain_loss']:.4f}), sha256 {digest[:12]}, "
        f"-> {out / 'postfilter.npz'}"
    )
    if a.install:
        target = SHIPPED_INDEX.parent / "postfilter.npz"
        digest = save_weights(w, target)
        on = sorted(on)
        index = {"file": target.name, "sha256": digest, "default_on": on, "n_params": w.n_params}
        SHIPPED_INDEX.write_text(json.dumps(index, indent=1) + "\n")
        print(f"installed {target} and {SHIPPED_INDEX} (on by default at {on or 'no bitrate'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
