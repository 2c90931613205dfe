"""Transform coded excitation (TCX): the residual coder under the LPC envelope.

Per 20 ms frame (all frames processed together where they are independent):

1. MDCT of the pre-emphasised signal (low-overlap window, :mod:`codec.mdct`).
2. Shaping: each bin ``k`` is multiplied by ``|Â(e^{jw_k}/γ)|`` of the
   *quantized* LPC (γ = 0.92), so that white quantization noise in the shaped
   domain becomes noise under the perceptual weighting ``1/Â(z/γ)``; after
   de-emphasis that is the inverse of the pSNR weighting filter
   ``W(z) = Â(z/0.92)/(1 - 0.68 z^-1)``.
3. A global step size Δ (7-bit log index, 1.5 dB steps) and dead-zone scalar
   quantization ``q = sign(x) floor(|x|/Δ + 0.5 - θ)``.
4. Entropy coding with the range coder of :mod:`codec.rangecoder`. The model
   comes from the envelope: bin ``k`` is a quantized Laplacian whose mean
   magnitude is ``κ r_k``, where ``r_k = |Â(w_k/γ)| / |Â(w_k)|`` is the
   expected shape of the shaped spectrum (normalised to mean 1) and ``κ`` is
   a per-frame spread coded with 5 bits. Only bins below ``last`` (coded in
   units of 8 bins, 6 bits) are coded; the rest are zero.
5. Rate loop: the smallest Δ whose estimated cost fits the frame's budget
   (binary search, vectorised over frames), then real coding, raising Δ if a
   frame still overflows. A frame never exceeds its byte budget.
6. Noise filling: bins quantized to zero above :data:`NOISE_FILL_START_HZ`
   are filled at the decoder with ``±ν r_k`` (ν coded with 3 bits), using a
   deterministic pseudo-random sign sequence.

Frame payload (one range-coded stream, zero-padded to B bytes): envelope
indices (raw bits), gain (7), κ (5), ν (3), last (6), then the values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from codec import mdct
from codec.errors import BitstreamError, ParameterError
from codec.rangecoder import (
    CdfTables,
    RangeDecoder,
    RangeEncoder,
    laplace_cdfs_from_index,
    laplace_tables_from_index,
    scale_index,
    symbol_costs,
)

__all__ = ["TcxConfig", "TCX", "FIXED_FIELDS"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

N_BINS = 320
GAIN_BITS = 8
GAIN_STEPS_PER_OCTAVE = 8
KAPPA_BITS = 5
NOISE_BITS = 3
LAST_BITS = 6
LAST_UNIT = 8
FIXED_FIELDS = (
    ("gain", GAIN_BITS),
    ("kappa", KAPPA_BITS),
    ("noise", NOISE_BITS),
    ("last", LAST_BITS),
)
NOISE_FILL_START_HZ = 1000.0
_MAX_ABS = 15  # values beyond are escape-coded
_GAIN_OFFSET = 128  # Δ = 2 ** ((i - 128) / 8)
_KAPPA_OFFSET = 20  # κ = 2 ** ((j - 20) / 4)
_NOISE_STEP = 0.035
NOISE_SCALE = 0.35


@dataclass(frozen=True)
class TcxConfig:
    """Tunable parameters of the TCX coder (fixed per format version)."""

    gamma: float = 0.8
    """Perceptual weighting factor of the shaping envelope ``Â(z/γ)``."""
    tilt: float = 0.95
    """Low-frequency emphasis μ of the shaping: gains divided by ``|1 - μ e^{-jw}|``."""
    deadzone: float = 0.2
    """Rounding offset θ of the dead-zone quantizer (0 = plain rounding)."""
    overlap: int = 80
    """MDCT window overlap in samples."""
    noise_fill: bool = True
    postfilter: float = 0.0
    """Strength β of the decoder's formant postfilter ``(|Â(w/γn)| / |Â(w/γd)|)^β`` (0 = off)."""
    pf_gamma_num: float = 0.7
    pf_gamma_den: float = 0.9


def _gain_step(index: npt.ArrayLike) -> FloatArray:
    return np.asarray(
        2.0 ** ((np.asarray(index, dtype=np.float64) - _GAIN_OFFSET) / GAIN_STEPS_PER_OCTAVE)
    )


def _kappa_value(index: npt.ArrayLike) -> FloatArray:
    return np.asarray(2.0 ** ((np.asarray(index, dtype=np.float64) - _KAPPA_OFFSET) / 4.0))


class TCX:
    """The TCX residual coder (residual coder id 1)."""

    coder_id = 1

    def __init__(self, config: TcxConfig | None = None) -> None:
        self.config = config or TcxConfig()
        k = np.arange(N_BINS)
        self._nf_start = int(np.ceil(NOISE_FILL_START_HZ / (8000.0 / N_BINS)))
        self._bin_index = k

    # ------------------------------------------------------------------ envelopes

    def envelopes(self, a_q: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Shaping gains ``|Â(w_k/γ)|`` and model shape ``r_k``, both (n, 320).

        ``w_k = π (k + 1/2) / 320`` are the MDCT bin centres.
        """
        a = np.asarray(a_q, dtype=np.float64)
        p = a.shape[-1] - 1
        gam = self.config.gamma ** np.arange(p + 1)
        spec_w = np.abs(np.fft.rfft(a * gam, 4 * N_BINS, axis=-1)[..., 1 : 2 * N_BINS : 2])
        spec = np.abs(np.fft.rfft(a, 4 * N_BINS, axis=-1)[..., 1 : 2 * N_BINS : 2])
        w = np.pi * (np.arange(N_BINS) + 0.5) / N_BINS
        mu = self.config.tilt
        tilt = 1.0 / np.sqrt(1.0 + mu * mu - 2.0 * mu * np.cos(w))
        shaping = np.maximum(spec_w * tilt, 1e-9)
        ratio = shaping / np.maximum(spec, 1e-9)
        ratio = ratio / ratio.mean(axis=-1, keepdims=True)
        return shaping, ratio

    # ------------------------------------------------------------------ helpers

    def _quantize(self, xs: FloatArray, step: FloatArray) -> IntArray:
        v = xs / step[..., None]
        mag = np.floor(np.abs(v) + 0.5 - self.config.deadzone)
        return (np.sign(v) * np.maximum(mag, 0.0)).astype(np.int64)

    @staticmethod
    def _kappa_index(q: IntArray, ratio: FloatArray, last: IntArray) -> IntArray:
        mask = np.arange(N_BINS) < last[..., None]
        cnt = np.maximum(mask.sum(axis=-1), 1)
        mean_mag = (np.abs(q) / ratio * mask).sum(axis=-1) / cnt
        j = np.rint(4.0 * np.log2(np.maximum(mean_mag, 1e-6))) + _KAPPA_OFFSET
        return np.clip(j, 0, (1 << KAPPA_BITS) - 1).astype(np.int64)

    @staticmethod
    def _last(q: IntArray) -> IntArray:
        nz = q != 0
        any_nz = nz.any(axis=-1)
        last_bin = N_BINS - np.argmax(nz[..., ::-1], axis=-1)
        units = np.where(any_nz, -(-last_bin // LAST_UNIT), 0)
        return np.asarray(units * LAST_UNIT, dtype=np.int64)

    def _tables(self, kappa_idx: IntArray, ratio: FloatArray) -> IntArray:
        scales = _kappa_value(kappa_idx)[..., None] * ratio
        return laplace_cdfs_from_index(scale_index(np.maximum(scales, 1e-9)), _MAX_ABS)

    @staticmethod
    def _coder_tables(kappa_idx: int | np.integer, ratio: FloatArray) -> CdfTables:
        scales = _kappa_value(kappa_idx) * ratio
        return laplace_tables_from_index(scale_index(np.maximum(scales, 1e-9)), _MAX_ABS)

    def _cost(self, q: IntArray, ratio: FloatArray) -> tuple[FloatArray, IntArray, IntArray]:
        last = self._last(q)
        kap = self._kappa_index(q, ratio, last)
        tables = self._tables(kap, ratio)
        mask = np.arange(N_BINS) < last[..., None]
        k = tables.shape[-1]
        costs = symbol_costs(q.reshape(-1), tables.reshape(-1, k)).reshape(q.shape)
        return np.asarray((costs * mask).sum(axis=-1), dtype=np.float64), kap, last

    # ------------------------------------------------------------------ encoder

    def analyze(self, y: FloatArray) -> FloatArray:
        """MDCT coefficients (n_frames, 320) of the pre-emphasised signal ``y``."""
        return mdct.analysis(y, N_BINS, self.config.overlap)

    def encode(
        self,
        coefs: FloatArray,
        a_q: FloatArray,
        env_idx: IntArray,
        env_field_bits: Sequence[int],
        frame_bytes: int,
    ) -> list[bytes]:
        """Code every frame into exactly ``frame_bytes`` bytes.

        Parameters
        ----------
        coefs : ndarray, shape (n, 320)
            MDCT of the pre-emphasised signal (:meth:`analyze`).
        a_q : ndarray, shape (n, 17)
            Quantized LPC of each frame (as the decoder will see it).
        env_idx : ndarray of int, shape (n, stages)
            Envelope indices, written first as raw bits.
        env_field_bits : sequence of int
            Bit width of each envelope index.
        frame_bytes : int
            Budget B per frame.
        """
        n = coefs.shape[0]
        budget = 8 * frame_bytes
        fixed = int(sum(env_field_bits)) + sum(b for _, b in FIXED_FIELDS)
        if fixed + 8 > budget:
            raise ParameterError(f"{frame_bytes}-byte frames cannot hold {fixed} side-info bits")
        shaping, ratio = self.envelopes(a_q)
        xs = coefs * shaping
        # binary search of the smallest gain index whose estimated cost fits
        avail = budget - fixed - 2.0  # margin for the coder's termination (refined below)
        lo = np.zeros(n, dtype=np.int64)
        hi = np.full(n, (1 << GAIN_BITS) - 1, dtype=np.int64)
        while np.any(lo < hi):
            mid = (lo + hi) // 2
            bits, _, _ = self._cost(self._quantize(xs, _gain_step(mid)), ratio)
            fits = bits <= avail
            hi = np.where(fits, mid, hi)
            lo = np.where(fits, lo, np.minimum(mid + 1, hi))
        gain = hi
        frames: list[bytes] = []
        for i in range(n):
            g = int(gain[i])
            while True:
                data = self._encode_frame(xs[i], ratio[i], g, env_idx[i], env_field_bits, budget)
                if data is not None:
                    break
                g += 1
                if g >= 1 << GAIN_BITS:  # pragma: no cover - the all-zero frame always fits
                    raise ParameterError("rate loop failed to fit a frame")
            # the estimate is conservative: try finer steps while they still fit
            while g > 0:
                finer = self._encode_frame(
                    xs[i], ratio[i], g - 1, env_idx[i], env_field_bits, budget
                )
                if finer is None:
                    break
                data, g = finer, g - 1
            frames.append(data + bytes(frame_bytes - len(data)))
        return frames

    def _encode_frame(
        self,
        xs: FloatArray,
        ratio: FloatArray,
        gain: int,
        env_idx: IntArray,
        env_field_bits: Sequence[int],
        budget: int,
    ) -> bytes | None:
        step = _gain_step(np.array([gain]))
        q = self._quantize(xs[None], step)
        last = self._last(q)
        kap = self._kappa_index(q, ratio[None], last)
        nf = self._noise_index(xs[None] / step[:, None], q, ratio[None])
        enc = RangeEncoder()
        for v, nb in zip(env_idx, env_field_bits, strict=True):
            enc.encode_bits(int(v), nb)
        enc.encode_bits(gain, GAIN_BITS)
        enc.encode_bits(int(kap[0]), KAPPA_BITS)
        enc.encode_bits(int(nf[0]), NOISE_BITS)
        enc.encode_bits(int(last[0]) // LAST_UNIT, LAST_BITS)
        n_code = int(last[0])
        if n_code:
            enc.encode_values(q[0, :n_code], self._coder_tables(kap[0], ratio[:n_code]))
        if enc.tell() > budget:
            return None
        data = enc.finish()
        return data if len(data) <= budget // 8 else None

    def _noise_mask(self, q: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """Zeroed bins that the decoder fills with noise."""
        return (q == 0) & (np.arange(N_BINS) >= self._nf_start)

    def _noise_index(self, v: FloatArray, q: IntArray, ratio: FloatArray) -> IntArray:
        """Noise-fill level index per frame (the scaled RMS of the zeroed bins)."""
        if not self.config.noise_fill:
            return np.zeros(v.shape[0], dtype=np.int64)
        mask = self._noise_mask(q)
        cnt = np.maximum(mask.sum(axis=-1), 1)
        level = NOISE_SCALE * np.sqrt(((v / ratio) ** 2 * mask).sum(axis=-1) / cnt)
        return np.clip(np.rint(level / _NOISE_STEP), 0, (1 << NOISE_BITS) - 1).astype(np.int64)

    # ------------------------------------------------------------------ decoder

    def decode(
        self,
        frames: Sequence[bytes],
        env_field_bits: Sequence[int],
        lpc_from_indices: Callable[[IntArray], FloatArray],
        *,
        first_frame: int = 0,
    ) -> FloatArray:
        """Decode frames to MDCT coefficients (n, 320) of the pre-emphasised signal.

        ``lpc_from_indices`` maps envelope indices (n, stages) to quantized LPC
        (n, 17) -- the envelope decoder. ``first_frame`` seeds the noise filler.
        """
        n = len(frames)
        decs = []
        idx = np.zeros((n, len(env_field_bits)), dtype=np.int64)
        side = np.zeros((n, len(FIXED_FIELDS)), dtype=np.int64)
        for i, fr in enumerate(frames):
            dec = RangeDecoder(fr)
            for j, nb in enumerate(env_field_bits):
                idx[i, j] = dec.decode_bits(nb)
            for j, (_, nb) in enumerate(FIXED_FIELDS):
                side[i, j] = dec.decode_bits(nb)
            decs.append(dec)
        a_q = lpc_from_indices(idx)
        shaping, ratio = self.envelopes(a_q)
        gain, kap, nf, last_units = side.T
        last = last_units * LAST_UNIT
        if np.any(last > N_BINS):
            raise BitstreamError("corrupt frame: coded bandwidth beyond 8 kHz")
        q = np.zeros((n, N_BINS))
        for i, dec in enumerate(decs):
            m = int(last[i])
            if m:
                q[i, :m] = dec.decode_values(self._coder_tables(kap[i], ratio[i, :m]))
            if dec.tell() > 8 * len(frames[i]):
                raise BitstreamError(f"corrupt frame {first_frame + i}: reads past its end")
        if self.config.noise_fill:
            rng = np.random.default_rng(0x519 + first_frame)
            signs = rng.integers(0, 2, size=(n, N_BINS)) * 2.0 - 1.0
            fill = self._noise_mask(q)
            q = np.where(fill, signs * (nf * _NOISE_STEP)[:, None] * ratio, q)
        coefs = np.asarray(q * _gain_step(gain)[:, None] / shaping, dtype=np.float64)
        if self.config.postfilter > 0.0:
            coefs = self._postfilter(coefs, a_q)
        return coefs

    def _postfilter(self, coefs: FloatArray, a_q: FloatArray) -> FloatArray:
        """Formant postfilter in the MDCT domain, energy preserving per frame."""
        p = a_q.shape[-1] - 1
        k = np.arange(p + 1)
        num = np.abs(np.fft.rfft(a_q * self.config.pf_gamma_num**k, 4 * N_BINS, axis=-1))
        den = np.abs(np.fft.rfft(a_q * self.config.pf_gamma_den**k, 4 * N_BINS, axis=-1))
        h = num[:, 1 : 2 * N_BINS : 2] / np.maximum(den[:, 1 : 2 * N_BINS : 2], 1e-9)
        h = h**self.config.postfilter
        e_in = np.sum(coefs**2, axis=-1)
        out = coefs * h
        e_out = np.sum(out**2, axis=-1)
        scale = np.sqrt(np.where(e_out > 0, e_in / np.maximum(e_out, 1e-30), 1.0))
        return np.asarray(out * scale[:, None], dtype=np.float64)

    def n_frames(self, n_samples: int) -> int:
        """Frames needed for ``n_samples`` (the MDCT's count, see :func:`codec.mdct.n_frames`)."""
        return mdct.n_frames(n_samples, N_BINS, self.config.overlap)

    def synthesize(self, coefs: FloatArray, n_samples: int) -> FloatArray:
        """Inverse MDCT and overlap-add to ``n_samples`` of pre-emphasised signal."""
        return mdct.synthesis(coefs, N_BINS, self.config.overlap, length=n_samples)
