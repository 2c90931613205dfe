"""Envelope quantizer: LSF vectors to integer indices and back.

Wraps a trained quantizer from :mod:`codec.quantizers` (which removes the
trained LSF mean itself). Search uses the LSF inverse-spacing weights of
:func:`codec.analysis.lsf_weights`; decoding always ends with
:func:`codec.analysis.stabilize_lsf`, so any index vector (even a corrupted
one) gives a stable synthesis filter. The encoder reconstructs with
:meth:`EnvelopeCoder.decode`, the decoder's own function.

A predictive codebook (:class:`codec.quantizers.PredictiveQuantizer`, opt-in
with ``--codebook``) keeps a state across frames: code it frame by frame, in
stream order, with :meth:`EnvelopeCoder.encode_frames` and
:meth:`EnvelopeCoder.decode_frames` (the encoder reconstructs with the
predictor's own decoding step, so both states agree bit for bit); a lost
frame's state is updated from its concealed envelope (the last decoded LSFs
drawn towards the mean by :data:`CONCEAL_DECAY` per lost frame).

The residual coder's entropy coding depends on the envelope, so a frame
decoded from a state that differs from the encoder's cannot be decoded: such
a frame only moves the state on and is concealed like a lost one. After a
loss the state is exact again after the next received frame (MA: its memory
is one frame), or at the next safety-net frame (AR with a safety net); an AR
codebook without a safety net would never recover, so the codec refuses it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from codec.analysis import lsf_weights, stabilize_lsf, stable_lsf_and_lpc
from codec.errors import ParameterError
from codec.quantizers import PredictiveQuantizer, Quantizer

__all__ = ["CONCEAL_DECAY", "EnvelopeCoder", "PredictorState"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

CONCEAL_DECAY = 0.9
"""A lost frame's envelope: the last decoded LSFs drawn towards the predictor's
mean, ``mean + CONCEAL_DECAY * (last - mean)`` (as AMR-WB's concealment)."""


class PredictorState(NamedTuple):
    """Where a predictive envelope stands between two frames of a stream."""

    state: FloatArray
    """The predictor state, shape (1, 16)."""
    last: FloatArray
    """The last decoded (or concealed) LSF vector, shape (16,)."""
    exact: bool = True
    """Whether the state is the encoder's, bit for bit (False after a lost frame
    until the predictor has recovered)."""


class EnvelopeCoder:
    """An LSF envelope quantizer with a name and a content hash."""

    __slots__ = ("quantizer", "name")

    def __init__(self, quantizer: Quantizer | PredictiveQuantizer, name: str) -> None:
        if quantizer.dim != 16:
            raise ParameterError(f"envelope quantizer must be 16-dimensional, got {quantizer.dim}")
        self.quantizer = quantizer
        self.name = name

    def __repr__(self) -> str:
        return f"EnvelopeCoder({self.quantizer!r}, {self.name!r})"

    @property
    def predictive(self) -> bool:
        """True for a predictive codebook (state across frames)."""
        return isinstance(self.quantizer, PredictiveQuantizer)

    @property
    def variant(self) -> str:
        """The (inner) quantizer's variant: vq, rvq, avq or pvq."""
        q = self.quantizer
        inner = q.quantizer if isinstance(q, PredictiveQuantizer) else q
        return str(inner.config.variant)

    @property
    def kind(self) -> str:
        """``memoryless``, or ``ma-predictive`` / ``ar-predictive`` (``+ safety net``)."""
        q = self.quantizer
        if not isinstance(q, PredictiveQuantizer):
            return "memoryless"
        return f"{q.kind}-predictive" + (" + safety net" if q.safety is not None else "")

    @property
    def description(self) -> str:
        """Kind, variant, stages x bits and total bits (``svq codebooks``)."""
        q = self.quantizer
        inner = q.quantizer if isinstance(q, PredictiveQuantizer) else q
        what = f"{self.variant} {inner.stages}x{inner.bits_per_stage} ({self.bits} bits)"
        return what if not self.predictive else f"{self.kind} {what}"

    @property
    def bits(self) -> int:
        """Bits per frame spent on the envelope (with a safety-net flag, if any)."""
        return int(self.quantizer.bits)

    @property
    def field_bits(self) -> list[int]:
        """Bit width of each index field, in bitstream order (a safety-net flag first)."""
        q = self.quantizer
        if isinstance(q, PredictiveQuantizer):
            return list(q.field_bits)
        return [q.bits_per_stage] * q.stages

    @property
    def content_hash(self) -> str:
        return str(self.quantizer.content_hash)

    def _memoryless(self) -> Quantizer:
        q = self.quantizer
        if isinstance(q, PredictiveQuantizer):
            raise ParameterError(
                f"codebook {self.name} is predictive: code it frame by frame in stream "
                "order (encode_frames / decode_frames)"
            )
        return q

    def _predictor(self) -> PredictiveQuantizer:
        q = self.quantizer
        if not isinstance(q, PredictiveQuantizer):
            raise ParameterError(f"codebook {self.name} is memoryless: it keeps no state")
        return q

    def encode(self, lsf: npt.ArrayLike) -> IntArray:
        """Indices (n_frames, stages) of LSF vectors (n_frames, 16), weighted search."""
        x = np.asarray(lsf, dtype=np.float64)
        return np.asarray(self._memoryless().encode(x, weights=lsf_weights(x)), dtype=np.int64)

    def decode(self, idx: npt.ArrayLike) -> FloatArray:
        """Quantized, stabilised LSF vectors (n_frames, 16) from indices."""
        return stabilize_lsf(self._memoryless().decode(np.asarray(idx, dtype=np.int64)))

    def decode_lpc(self, idx: npt.ArrayLike) -> FloatArray:
        """``lsf_to_lpc(self.decode(idx))``, shape (n_frames, 17): the polynomials
        that the stability check of :meth:`decode` computed."""
        lsf = self._memoryless().decode(np.asarray(idx, dtype=np.int64))
        return stable_lsf_and_lpc(lsf)[1]

    # ---- predictive codebooks: frames in stream order, with a state
    def initial_state(self) -> PredictorState:
        """The state at the start of a stream."""
        pq = self._predictor()
        return PredictorState(pq.initial_state(1), pq.mean.copy())

    def encode_frames(
        self, lsf: npt.ArrayLike, state: PredictorState
    ) -> tuple[IntArray, FloatArray, PredictorState]:
        """Code consecutive frames of a stream with a predictive codebook.

        Returns the indices (n, fields), the decoder's stabilised LSFs (n, 16)
        and the state after the last frame.
        """
        pq = self._predictor()
        x = np.asarray(lsf, dtype=np.float64)
        w = lsf_weights(x)
        idx = np.zeros((x.shape[0], pq.columns), dtype=np.int64)
        out = np.zeros_like(x)
        s, last = state.state, state.last
        for i in range(x.shape[0]):
            row, xh, s = pq.encode_step(x[i : i + 1], s, w[i : i + 1])
            idx[i], out[i], last = row[0], xh[0], xh[0]
        return idx, stabilize_lsf(out), PredictorState(s, last.copy())

    def check_recovers(self) -> None:
        """Raise ParameterError for a codebook whose state never recovers from a loss."""
        q = self.quantizer
        if isinstance(q, PredictiveQuantizer) and q.kind == "ar" and q.safety is None:
            raise ParameterError(
                f"codebook {self.name}: an AR-predictive codebook needs a safety net in the "
                "codec (svq train --predictive ar --safety-net): without one, the decoder "
                "would never recover from a lost frame"
            )

    def decode_frames(
        self, idx: npt.ArrayLike, lost: npt.ArrayLike, state: PredictorState
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], PredictorState]:
        """Decode consecutive frames of a stream with a predictive codebook.

        ``idx`` (n_received, fields) holds the indices of the frames where
        ``lost`` (n,) is False; a lost frame updates the state from its
        concealed envelope (:data:`CONCEAL_DECAY`).

        Returns
        -------
        lsf : ndarray, shape (n_received, 16)
            Stabilised LSFs of the received frames.
        exact : ndarray of bool, shape (n_received,)
            Whether each received frame was decoded from the encoder's state
            (a frame that was not is to be concealed; it still moved the state on).
        state : PredictorState
            The state after the last frame.
        """
        pq = self._predictor()
        arr = np.asarray(idx, dtype=np.int64).reshape(-1, pq.columns)
        mask = np.asarray(lost, dtype=bool)
        if arr.shape[0] != int((~mask).sum()):
            raise ParameterError("one index row is needed for each received frame")
        out = np.zeros((arr.shape[0], pq.dim))
        exact = np.zeros(arr.shape[0], dtype=bool)
        s, last, ok = state.state, state.last, state.exact
        j = 0
        for is_lost in mask:
            if is_lost:
                last = pq.mean + CONCEAL_DECAY * (last - pq.mean)
                s = pq.conceal_step(last[None, :], s)
                ok = False
                continue
            xh, s = pq.decode_step(arr[j : j + 1], s)
            out[j], last = xh[0], xh[0]
            safety_frame = pq.safety is not None and arr[j, 0] == 1
            exact[j] = ok or safety_frame
            # MA: the new state is the frame's own decoded error, exact whatever came before
            ok = exact[j] or pq.kind == "ma"
            j += 1
        lsf = stabilize_lsf(out) if out.shape[0] else out
        return lsf, exact, PredictorState(s, np.array(last, dtype=np.float64), bool(ok))
