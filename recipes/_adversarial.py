"""Adversarial training terms for the post-filter (``train_postfilter --adversarial``).

A multi-resolution STFT discriminator, as in the GAN vocoders and codecs
(UnivNet's and EnCodec's): for each FFT size a small 2-D convolutional network
reads the log magnitude of a 1 s segment and scores every time-frequency patch
as clean speech or post-filter output. Least-squares GAN losses; the
generator also gets a feature-matching term (each discriminator layer's
features of its output against those of the clean target, L1, relative to
the target's mean magnitude, EnCodec's normalisation). A regression loss
averages over the fine structure it cannot predict; a discriminator penalises
the average itself, which is what NoLACE's adversarial training is for.

Training only (torch); nothing here runs in the decoder.
"""

from __future__ import annotations

from typing import Any

DISC_FFTS = (256, 512, 1024)
DISC_CHANNELS = 8


def discriminator(channels: int = DISC_CHANNELS, ffts: tuple[int, ...] = DISC_FFTS) -> Any:
    """The discriminator: one :class:`torch.nn.Module` over all FFT sizes."""
    import torch
    from torch import nn

    class ScaleD(nn.Module):  # type: ignore[misc]
        def __init__(self, n_fft: int) -> None:
            super().__init__()
            self.n_fft = n_fft
            self.register_buffer("win", torch.hann_window(n_fft))
            c = channels
            self.convs = nn.ModuleList(
                [
                    nn.Conv2d(1, c, (3, 5), stride=(1, 2), padding=(1, 2)),
                    nn.Conv2d(c, c, (3, 5), stride=(1, 2), padding=(1, 2)),
                    nn.Conv2d(c, c, (3, 5), stride=(1, 2), padding=(1, 2)),
                    nn.Conv2d(c, c, (3, 3), padding=(1, 1)),
                ]
            )
            self.out = nn.Conv2d(c, 1, (3, 3), padding=(1, 1))

        def forward(self, x: Any) -> tuple[Any, list[Any]]:
            s = torch.stft(x, self.n_fft, self.n_fft // 4, window=self.win, return_complex=True)
            # |s| through its squares: torch's complex abs has no finite gradient at 0
            mag = (s.real**2 + s.imag**2 + 1e-10).sqrt()
            h = torch.log(mag + 1e-4).transpose(1, 2)[:, None]  # (B, 1, frames, bins)
            feats = []
            for conv in self.convs:
                h = nn.functional.leaky_relu(conv(h), 0.2)
                feats.append(h)
            return self.out(h), feats

    class MultiD(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.scales = nn.ModuleList([ScaleD(n) for n in ffts])

        def forward(self, x: Any) -> list[tuple[Any, list[Any]]]:
            return [d(x) for d in self.scales]

    return MultiD()


def discriminator_loss(disc: Any, real: Any, fake: Any) -> Any:
    """Least-squares loss of the discriminator (``fake`` is detached here)."""
    total = real.new_zeros(())
    for (r, _), (f, _) in zip(disc(real), disc(fake.detach()), strict=True):
        total = total + ((r - 1) ** 2).mean() + (f**2).mean()
    return total / len(disc.scales)


def generator_terms(disc: Any, real: Any, fake: Any) -> tuple[Any, Any]:
    """The generator's least-squares adversarial loss and its feature-matching loss."""
    import torch

    with torch.no_grad():
        ref = [feats for _, feats in disc(real)]
    adv = fake.new_zeros(())
    fm = fake.new_zeros(())
    layers = 0
    for (f, feats), rfeats in zip(disc(fake), ref, strict=True):
        adv = adv + ((f - 1) ** 2).mean()
        for a, b in zip(feats, rfeats, strict=True):
            fm = fm + (a - b).abs().mean() / b.abs().mean().clamp_min(1e-6)
            layers += 1
    return adv / len(ref), fm / max(layers, 1)
