"""Encoder and decoder: the stages of svq in sequence.

``encode``: audio -> mono 16 kHz -> pre-emphasis -> LPC/LSF analysis ->
envelope quantizer -> quantized LPC (via the decoder's own envelope decoder)
-> TCX residual coder -> frames -> ``.svq`` container.

``decode``: container -> frames -> envelope + TCX decoding -> inverse MDCT,
overlap-add -> de-emphasis -> 16 kHz audio of the input's length, time-aligned
with it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from codec.analysis import (
    FRAME_LENGTH,
    LOOKAHEAD,
    SAMPLE_RATE,
    WINDOW_LENGTH,
    analysis_window,
    de_emphasis,
    lpc_of_frames,
    lpc_to_lsf,
    lsf_to_lpc,
    pre_emphasis,
)
from codec.audio import downmix
from codec.bitstream import CHECK_FRAMES, Header, OnDamage, check_file, damage_error, pack_file
from codec.concealment import FADE, MUTE_AFTER, Concealer
from codec.envelope import EnvelopeCoder
from codec.errors import BitstreamError, ParameterError
from codec.modes import Mode, mode_for
from codec.registry import find_envelope, hash_bytes, load_envelope
from codec.residual import mdct
from codec.residual.pitch import LAG_MAX, PitchAnalyzer, PitchParams, PostFilter, PreFilter
from codec.residual.pitch import gain_value as pitch_gain
from codec.residual.rangecoder import RangeDecoder
from codec.residual.tcx import N_BINS, TCX, TcxConfig

if TYPE_CHECKING:  # imported when a stream uses it (decoder start-up)
    from codec.postfilter import Enhancer

__all__ = [
    "encode",
    "decode",
    "info",
    "simulate_loss",
    "StreamEncoder",
    "StreamDecoder",
    "StreamInfo",
    "BLOCK_FRAMES",
    "DECODE_BLOCK_FRAMES",
    "PITCH_GROUP",
    "ALGORITHMIC_DELAY",
    "Tools",
    "residual_coder",
]

FloatArray = npt.NDArray[np.float64]
_RESIDUAL_CODERS = {TCX.coder_id: TCX}
# shipped codebook used by `--envelope VARIANT` (plain VQ cannot afford 24 bits)
VARIANT_CODEBOOKS = {"avq": "avq-4x6", "rvq": "rvq-4x6", "pvq": "pvq-4x6", "vq": "vq-1x12"}
_PF_LAG0 = 160  # the post-filter comb's lag when the pitch tool sent none lately (100 Hz)
_PF_LAG_HOLD = 3
"""Frames the post-filter's comb keeps the pitch tool's last lag after it went off;
then :data:`_PF_LAG0`. Bounded, so that a lost or damaged stretch changes the
post-filter's output for a bounded time after it (damage stays local)."""
ALGORITHMIC_DELAY = FRAME_LENGTH + mdct.DEFAULT_OVERLAP + (WINDOW_LENGTH - FRAME_LENGTH) // 2
"""Samples from an input sample's arrival to its decoded output (480 = 30 ms): the
frame (20 ms), the MDCT overlap (5 ms) and the LPC window's look-ahead (5 ms).
The decoder adds none: the pitch post-filter is causal."""
_LEAD = 200  # samples before frame k's hop that its MDCT block starts at ((N + L) / 2)
_TAIL = 120  # samples after frame k's hop its MDCT block / LPC window reach


def _envelope_for(
    bitrate_kbps: float,
    envelope: str | None,
    codebook: str | os.PathLike[str] | None,
) -> EnvelopeCoder:
    if codebook is not None:
        env = load_envelope(codebook)
        if envelope is not None and env.variant != envelope:
            raise ParameterError(
                f"--envelope {envelope} does not match the codebook's variant {env.variant}"
            )
        return env
    name = mode_for(bitrate_kbps).default_envelope
    if envelope is not None and envelope != name.split("-")[0]:
        name = VARIANT_CODEBOOKS.get(envelope, "")
        if not name:
            raise ParameterError(f"unknown envelope {envelope!r} (avq, rvq, pvq or vq)")
    return load_envelope(name)


class Tools(NamedTuple):
    """Switches for the residual coder's tools, for ablation experiments.

    Not stored in the stream: a stream encoded with some tools off decodes
    correctly only with the same switches. The defaults are the codec.
    """

    pitch: bool = True
    """Pitch pre-/post-filter (off: every frame sends the 1-bit "off" flag)."""
    band_split: bool = True
    """Code the mode's band by value and fill the band above with noise (off: the
    whole band is coded by value, as in format 1)."""
    harmonic: bool = True
    """Harmonic model in the entropy coder (needs the pitch tool's lag)."""
    side_model: bool = True
    """Side fields range-coded under the mode's trained tables (format 4,
    :mod:`codec.residual.sidemodel`; off: raw bits, as in format 3). The tables
    belong to the mode's coded band: without ``band_split`` the fields are raw."""
    fill: bool = True
    """Encoder only: the bits the rate loop leaves are spent on one more step for
    the bins that gain most (``TcxConfig.fill_slack``; off: they are padding)."""
    short_blocks: bool = True
    """Transient frames coded as four short MDCTs (format 6,
    :mod:`codec.residual.blocks`; off: no transient flag, every frame long)."""
    top_shape: bool = True
    """Transient frames carry their top band's level in each short block (format 7,
    :mod:`codec.residual.topshape`; off: the top band's noise is flat within a
    frame, as in format 6). Needs ``short_blocks``."""
    model_fill: bool = True
    """The noise filler's level per bin from the entropy model (format 8,
    :mod:`codec.residual.noisefill`; off: one level per frame times the model
    shape, as in format 7)."""


def _residual_coder(coder_id: int, mode: Mode, tools: Tools) -> TCX:
    """The residual coder of a stream, configured for its mode."""
    bins = mode.coded_bins if tools.band_split else N_BINS
    # the tables are the mode's: they need its coded band
    tables = tools.side_model and bins == mode.coded_bins
    config = TcxConfig(coded_bins=bins, side_model=f"{mode.bitrate_kbps:g}" if tables else "")
    if not tools.harmonic:
        config = config._replace(harmonic_depth=0.0)
    if not tools.fill:
        config = config._replace(fill_slack=0)
    if not tools.short_blocks:
        config = config._replace(short_blocks=False)
    if not tools.top_shape:
        config = config._replace(top_shape=False)
    if not tools.model_fill:
        config = config._replace(model_fill=False)
    return _RESIDUAL_CODERS[coder_id](config)


def residual_coder(bitrate_kbps: float, tools: Tools = Tools()) -> TCX:
    """The residual coder the codec uses at a bitrate (with ``tools``), for
    reading a stream's frames outside the decoder (e.g. ``TCX.read_side``)."""
    return _residual_coder(TCX.coder_id, mode_for(bitrate_kbps), tools)


BLOCK_FRAMES = 500
"""Default and largest number of frames the encoder processes together (10 s):
memory is bounded by this block, not by the length of the signal. Any block
size from 1 to this gives the same output (``block_frames=``); smaller blocks
mean lower latency, larger ones less work per frame (Python's overhead per
block: 500-frame blocks encode about a fifth faster than 100-frame ones)."""
DECODE_BLOCK_FRAMES = 1000
"""The decoder's default and largest block (20 s; any size gives the same
output): the residual's range decoding runs for all frames of a block at once
in numpy (``rangecoder.decode_values_many``), whose cost per symbol position
falls with more frames at once (1000-frame blocks decode up to 8 % faster as a
whole process than 500-frame ones, for about 15 MB more memory); memory stays
flat in the duration."""
PITCH_GROUP = 100
"""The encoder's pitch analysis high-passes the signal in runs of this many
frames (frames 0-99, 100-199, ...), whatever the block size, so that its
output does not depend on how the input arrives or on the block size."""


Conceal = Literal["causal", "interpolate"]
"""Concealment of lost frames: extrapolation only, or interpolation with look-ahead."""


def _check_block(block_frames: int, most: int = BLOCK_FRAMES) -> int:
    if isinstance(block_frames, bool) or not isinstance(block_frames, (int, np.integer)):
        raise ParameterError(f"block_frames must be an integer, got {block_frames!r}")
    if not 1 <= block_frames <= most:
        raise ParameterError(f"block_frames must be in [1, {most}], got {block_frames}")
    return int(block_frames)


_BLAS: Any = None  # threadpoolctl's controller; False: none needed, or none at hand


def blas_is_single_threaded() -> None:
    """Tell the codec that BLAS was loaded with one thread (the CLI sets the
    environment for that before numpy loads), so that :func:`_one_blas_thread`
    need not load threadpoolctl (about 5 ms of start-up)."""
    global _BLAS
    _BLAS = False


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread: the codec's matrices are small, and a second thread
    doubles the CPU time of a block without making it faster (results are the
    same either way: threads split the output, not the sums)."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        except Exception:  # pragma: no cover - threadpoolctl missing or failing
            _BLAS = False
    if not _BLAS:  # pragma: no cover
        yield
        return
    with _BLAS.limit(limits=1, user_api="blas"):
        yield


def _two_rows(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``x`` with its row repeated when it has one: numpy multiplies a single row
    by a matrix with BLAS gemv, whose sums round differently from gemm's, so a
    one-frame block would not code exactly as the same frame in a larger block."""
    return np.concatenate((x, x)) if x.shape[0] == 1 else x


class StreamEncoder:
    """Encode audio that arrives in chunks; memory does not grow with the duration.

    Parameters
    ----------
    sample_rate : int
        Rate of the input in Hz (resampled to 16 kHz by a streaming soxr).
    bitrate_kbps : float
        One of 8, 9.6, 13.2, 16.4, 24.4, 32.
    envelope, codebook : optional
        As in :func:`encode`.

    block_frames : int, optional
        Frames coded together, 1 to :data:`BLOCK_FRAMES` (default). With 1, a
        frame comes out as soon as the 5 ms look-ahead of its LPC window has
        arrived; the frames are the same for every block size.

    Use :meth:`push` for each chunk of samples (shape (n,) or (n, channels))
    and collect the frames it returns, then :meth:`finish`; :meth:`header`
    gives the container header of what was encoded (:meth:`live_header` one
    to decode with while the stream is still running).
    """

    def __init__(
        self,
        sample_rate: int,
        bitrate_kbps: float,
        *,
        envelope: str | None = None,
        codebook: str | os.PathLike[str] | None = None,
        tools: Tools = Tools(),
        block_frames: int = BLOCK_FRAMES,
    ) -> None:
        self.block_frames = _check_block(block_frames)
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ParameterError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        self.mode = mode_for(bitrate_kbps)
        self.env = _envelope_for(bitrate_kbps, envelope, codebook)
        self.env.check_recovers()
        # a predictive envelope's state runs through the stream in frame order
        self._env_state = self.env.initial_state() if self.env.predictive else None
        self.tools = tools
        self.tcx = _residual_coder(TCX.coder_id, self.mode, tools)
        self._window = mdct.mdct_window(FRAME_LENGTH, self.tcx.config.overlap)
        self.sample_rate = int(sample_rate)
        self._resampler: Any = None
        if self.sample_rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(
                self.sample_rate, SAMPLE_RATE, 1, dtype="float64", quality="VHQ"
            )
        self._pre_state = 0.0
        self._pitch = PitchAnalyzer()
        self._prefilter = PreFilter()
        # pre-filtered signal over the MDCT lead of the next frame
        self._p_lead = np.zeros(_LEAD)
        # pre-emphasised signal from absolute sample index self._buf_start on;
        # frame k needs [k*N - _LEAD, (k+1)*N + _TAIL)
        self._buf = np.zeros(_LEAD)
        self._buf_start = -_LEAD
        # pitch-analysis input since the start of the current PITCH_GROUP
        self._group = np.zeros(LAG_MAX)
        self.sample_count = 0
        self.frame_count = 0
        self._finished = False

    def push(self, audio: npt.ArrayLike) -> list[bytes]:
        """Feed samples; returns the frames completed so far (possibly none)."""
        if self._finished:
            raise ParameterError("push() after finish()")
        x = downmix(audio)
        if self._resampler is not None:
            x = np.asarray(self._resampler.resample_chunk(x), dtype=np.float64)
        return self._add(x)

    def finish(self) -> list[bytes]:
        """Flush the resampler and code the last frames (the signal ends in zeros)."""
        if self._finished:
            return []
        frames: list[bytes] = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0), last=True)
            frames += self._add(np.asarray(tail, dtype=np.float64))
        self._finished = True
        total = self.tcx.n_frames(self.sample_count)
        need = total * FRAME_LENGTH + _TAIL - (self._buf_start + self._buf.size)
        self._buf = np.r_[self._buf, np.zeros(max(need, 0))]
        while self.frame_count < total:
            frames += self._code(min(self.block_frames, total - self.frame_count))
        return frames

    def header(self) -> Header:
        """The container header (after :meth:`finish`)."""
        if not self._finished:
            raise ParameterError("header() before finish()")
        return self._header()

    def _header(self) -> Header:
        return Header(
            sample_rate=SAMPLE_RATE,
            frame_length=FRAME_LENGTH,
            bitrate_bps=self.mode.bitrate_bps,
            frame_bytes=self.mode.frame_bytes,
            frame_count=self.frame_count,
            sample_count=self.sample_count,
            residual_coder=TCX.coder_id,
            envelope_id=self.env.name,
            codebook_hash=hash_bytes(self.env.content_hash),
        )

    def live_header(self) -> Header:
        """A header to decode this stream with while it is still running.

        Frame and sample counts are the largest the container holds (2**32 - 1
        frames, 2.7 years), so a :class:`StreamDecoder` given it decodes any
        number of frames as they come; do not write it to a file.
        """
        frames = 0xFFFFFFFF
        return self._header()._replace(
            frame_count=frames,
            sample_count=frames * FRAME_LENGTH - self.tcx.config.overlap,
        )

    def _add(self, x: FloatArray) -> list[bytes]:
        if x.size == 0:
            return []
        y, self._pre_state = pre_emphasis(x, state=self._pre_state)
        self.sample_count += x.size
        self._buf = np.r_[self._buf, y]
        frames: list[bytes] = []
        end = self._buf_start + self._buf.size
        # frame k needs its samples and the look-ahead of its LPC window
        while (self.frame_count + (n := self.block_frames)) * FRAME_LENGTH + LOOKAHEAD <= end:
            frames += self._code(n)
        return frames

    def _code(self, n: int) -> list[bytes]:
        with _one_blas_thread():
            return self._code_block(n)

    def _pitch_prefilter(self, k0: int, x: FloatArray) -> tuple[PitchParams, FloatArray]:
        """Pitch parameters of the frames of ``x`` (from frame ``k0`` on) and ``x``
        pre-filtered with them; the analysis runs group by group (:data:`PITCH_GROUP`),
        so a block may span several groups."""
        n = x.size // FRAME_LENGTH
        if not self.tools.pitch:
            params = PitchParams.off(n)
            return params, self._prefilter.process(x, params)
        lags, gains, parts = [], [], []
        i = 0
        while i < n:
            k = k0 + i
            m = min(n - i, PITCH_GROUP - k % PITCH_GROUP)
            x_k = x[i * FRAME_LENGTH : (i + m) * FRAME_LENGTH]
            if k % PITCH_GROUP == 0:
                self._group = self._prefilter.history(LAG_MAX).copy()
            self._group = np.concatenate((self._group, x_k))
            part = self._pitch.choose(self._group, m, first=k % PITCH_GROUP)
            parts.append(self._prefilter.process(x_k, part))
            lags.append(part.lag)
            gains.append(part.gain)
            i += m
        params = PitchParams(np.concatenate(lags), np.concatenate(gains))
        return params, np.concatenate(parts)

    def _code_block(self, n: int) -> list[bytes]:
        k0 = self.frame_count
        off = k0 * FRAME_LENGTH - _LEAD - self._buf_start
        seg = self._buf[off : off + (n - 1) * FRAME_LENGTH + _LEAD + FRAME_LENGTH + LOOKAHEAD]
        # LPC frame k: [k*N - 80, (k+1)*N + 80); MDCT frame k: [k*N - 200, k*N + 440)
        lpc_off = _LEAD - (WINDOW_LENGTH - FRAME_LENGTH) // 2
        lpc_frames = np.lib.stride_tricks.sliding_window_view(seg[lpc_off:], WINDOW_LENGTH)
        # a block of one frame is coded as two copies (see _two_rows), then cut
        a = lpc_of_frames(_two_rows(lpc_frames[::FRAME_LENGTH][:n]) * analysis_window()).a
        if self._env_state is not None:
            idx, lsf_q, self._env_state = self.env.encode_frames(lpc_to_lsf(a)[:n], self._env_state)
            a_q = lsf_to_lpc(_two_rows(lsf_q))[:n]
        else:
            idx = self.env.encode(lpc_to_lsf(a))
            a_q = self.env.decode_lpc(idx)[:n]
            idx = idx[:n]
        # pitch pre-filter: frame k's parameters filter [k*N, (k+1)*N)
        x_new = seg[_LEAD : _LEAD + n * FRAME_LENGTH]
        params, filtered = self._pitch_prefilter(k0, x_new)
        p = np.concatenate((self._p_lead, filtered, np.zeros(_TAIL)))
        self._p_lead = p[n * FRAME_LENGTH : n * FRAME_LENGTH + _LEAD].copy()
        blocks = np.lib.stride_tricks.sliding_window_view(p, 2 * FRAME_LENGTH)[::FRAME_LENGTH]
        coefs = mdct.mdct(blocks[:n], self._window)
        frames = self.tcx.encode(
            coefs, a_q, idx, self.env.field_bits, self.mode.frame_bytes, pitch=params
        )
        self.frame_count += n
        drop = self.frame_count * FRAME_LENGTH - _LEAD - self._buf_start
        self._buf = self._buf[drop:]
        self._buf_start += drop
        return frames


def encode(
    audio: npt.ArrayLike,
    sample_rate: int,
    bitrate_kbps: float,
    *,
    envelope: str | None = None,
    codebook: str | os.PathLike[str] | None = None,
    tools: Tools = Tools(),
) -> bytes:
    """Encode audio to a complete ``.svq`` byte string.

    Parameters
    ----------
    audio : array_like, shape (n,) or (n, channels)
        Samples, float in [-1, 1] (any sample rate, any channel count).
    sample_rate : int
        Rate of ``audio`` in Hz; resampled to 16 kHz.
    bitrate_kbps : float
        One of 8, 9.6, 13.2, 16.4, 24.4, 32.
    envelope : {'avq', 'rvq', 'pvq', 'vq'}, optional
        Envelope quantizer variant (shipped codebook of this bitrate's size).
    codebook : path, optional
        A codebook file (``svq train``) to use instead of the shipped ones.
    tools : Tools, optional
        Residual-coder tools to switch off for an ablation (decode with the
        same switches).

    Returns
    -------
    bytes
        Header and frames (exactly ``bitrate * 20 ms / 8`` bytes each), a CRC-32 per second.
        The same as :class:`StreamEncoder` gives for the same samples.
    """
    enc = StreamEncoder(
        sample_rate, bitrate_kbps, envelope=envelope, codebook=codebook, tools=tools
    )
    frames = enc.push(audio)
    frames += enc.finish()
    return pack_file(enc.header(), frames)


class StreamDecoder:
    """Decode the frames of one stream block by block, concealing lost frames.

    Parameters
    ----------
    header : Header
        The stream's header (:class:`codec.bitstream.ContainerReader`).
    codebooks : iterable of paths
        Extra codebook files to search for the one named in the header.

    block_frames : int, optional
        Most frames decoded together, 1 to :data:`DECODE_BLOCK_FRAMES` (default): a
        longer list given to :meth:`decode` is decoded in blocks of this size.
    conceal : {'causal', 'interpolate'}
        How lost frames are concealed. ``'causal'`` (default, for real time):
        extrapolated from the past as soon as the output reaches them.
        ``'interpolate'``: a run of up to :data:`codec.concealment.MUTE_AFTER`
        lost frames is held back until the next frame arrives (as a jitter
        buffer with look-ahead would) and interpolated between its two
        neighbours (:meth:`codec.concealment.Concealer.interpolate`; pitch
        post-filter lag and gain interpolated too); the output of those frames
        comes that much later. Longer runs, and a run at the end of the stream,
        are concealed causally. Without loss both give the same samples.

    Feed frames in order with :meth:`decode` (``None`` for a lost frame) and
    finish with :meth:`flush`; the concatenated outputs are the
    ``header.sample_count`` samples of the signal, time-aligned with the
    encoder's input and clipped to [-1, 1]. The output does not depend on how
    the frames are grouped or on the block size: each call returns every
    sample that the frames given so far make final (a frame of 20 ms gives
    20 ms, the first one 15 ms).
    """

    def __init__(
        self,
        header: Header,
        codebooks: Iterable[str | os.PathLike[str]] = (),
        *,
        tools: Tools = Tools(),
        block_frames: int = DECODE_BLOCK_FRAMES,
        conceal: Conceal = "causal",
        enhance: bool | None = None,
        record_features: bool = False,
    ) -> None:
        self.block_frames = _check_block(block_frames, DECODE_BLOCK_FRAMES)
        _check_header(header)
        if conceal not in ("causal", "interpolate"):
            raise ParameterError(f"conceal must be 'causal' or 'interpolate', got {conceal!r}")
        self.conceal = conceal
        self._held = 0  # lost frames held back for interpolation (conceal='interpolate')
        self.header = header
        self.env = find_envelope(header.codebook_hash, codebooks)
        # a predictive envelope's state, carried across blocks and lost frames
        self._env_state = self.env.initial_state() if self.env.predictive else None
        self.tcx = _residual_coder(
            header.residual_coder, mode_for(header.bitrate_bps / 1000.0), tools
        )
        overlap = self.tcx.config.overlap
        self._synth = mdct.MdctSynthesizer(FRAME_LENGTH, overlap)
        self._skip = overlap  # the MDCT chain delays by `overlap` samples
        self._de_state = 0.0
        self._concealer = Concealer(FRAME_LENGTH, overlap)
        self._comb = PostFilter()
        self._last_pitch = (LAG_MAX, 0.0)
        self._lost_run = 0
        self.frames_done = 0
        self.lost_frames = 0
        self._left = header.sample_count  # samples still to output before the postfilter
        # the trained post-filter (codec.postfilter): decoder side only
        self._bitrate = header.bitrate_bps / 1000.0
        self.enhancer = _enhancer(self._bitrate, enhance)
        self.features: list[FloatArray] | None = [] if record_features else None
        self.comb_lags: list[npt.NDArray[np.int64]] | None = [] if record_features else None
        self._pitch_of: dict[int, tuple[int, float]] = {}
        self._coded_of: dict[int, FloatArray] = {}  # frame -> its coded values' coefficients
        self._comb_lag = _PF_LAG0
        self._comb_age = _PF_LAG_HOLD  # frames since the pitch tool last sent a lag

    def decode(self, frames: Sequence[bytes | None]) -> FloatArray:
        """Decode the next frames; returns the samples now final (possibly none)."""
        n = len(frames)
        if n == 0:
            return np.zeros(0)
        if self.frames_done + n > self.header.frame_count:
            raise BitstreamError(
                f"more frames than the header announces ({self.header.frame_count})"
            )
        b = self.block_frames
        with _one_blas_thread():
            if n <= b:
                return self._decode_block(frames)
            return np.concatenate([self._decode_block(frames[i : i + b]) for i in range(0, n, b)])

    def _decode_block(self, frames: Sequence[bytes | None]) -> FloatArray:
        n = len(frames)
        k0 = self.frames_done
        received = [fr for fr in frames if fr is not None]
        for fr in received:
            if len(fr) != self.header.frame_bytes:
                raise BitstreamError(
                    f"a frame of {len(fr)} bytes; this stream's frames have "
                    f"{self.header.frame_bytes}"
                )
        lost = np.array([fr is None for fr in frames], dtype=bool)
        good = np.flatnonzero(~lost)
        lags = np.zeros(n, dtype=np.int64)
        gains = np.full(n, -1, dtype=np.int64)
        lpc_from_indices: Callable[[npt.NDArray[np.int64]], FloatArray] = self._lpc_from_indices
        if self._env_state is not None:
            # the predictor walks every frame; those it cannot decode exactly are concealed
            lpc_q = self._predictive_envelopes(received, lost)
            good = np.flatnonzero(~lost)
            received = [fr for i, fr in enumerate(frames) if fr is not None and not lost[i]]
            lpc_from_indices = functools.partial(_given_lpc, lpc_q)
        got = np.zeros((0, FRAME_LENGTH))
        if received:
            args = (received, self.env.field_bits, lpc_from_indices)
            if self.features is not None or (
                self.enhancer is not None and self.enhancer.reads_coded
            ):  # the coded values too, for the post-filter's features
                got, pitch, coded = self.tcx.decode_coded(*args, frame_index=k0 + good)
                self._coded_of.update(zip((k0 + good).tolist(), coded, strict=True))
            else:
                got, pitch = self.tcx.decode(*args, frame_index=k0 + good)
            lags[good], gains[good] = pitch.lag, pitch.gain
        if good.size == n:  # no frame lost: the decoded block itself
            coefs = got
        else:  # zeros where a frame is lost
            coefs = np.zeros((n, FRAME_LENGTH))
            coefs[good] = got
        if self.conceal == "interpolate":
            y = self._synthesize_interpolating(coefs, lost, lags, gains, k0)
        else:
            for i in range(n):
                if lost[i]:  # the last lag, the gain fading as the concealment does
                    self._conceal_pitch(k0 + i)
                else:
                    self._good_pitches(k0 + i, lags[i : i + 1], gains[i : i + 1])
            y = self._synthesize(coefs, lost, k0)
        self.frames_done += n
        self.lost_frames += int(lost.sum())
        if self._skip:
            cut = min(self._skip, y.size)
            y, self._skip = y[cut:], self._skip - cut
        y = y[: self._left]
        self._left -= y.size
        y = self._comb.process(y)
        x, self._de_state = de_emphasis(y, state=self._de_state)
        if self.enhancer is not None:
            x = self.enhancer.process(x)
        return _full_scale(x)

    def _push_pitch(self, k: int, lag: int, gain: float) -> None:
        """Frame ``k``'s pitch post-filter parameters (kept for the post-filter's features)."""
        self._comb.push_params(k, lag, gain)
        if self.enhancer is not None or self.features is not None:
            self._pitch_of[k] = (lag, gain)

    def _ola(self, block: FloatArray, k: int, lost: bool) -> FloatArray:
        """Synthesize frames ``k ..`` of ``block``; hand their features to the post-filter."""
        out = self._synth.process_block(block)
        if self.enhancer is None and self.features is None:
            return out
        n = block.shape[0]
        lags = np.empty(n, dtype=np.int64)
        gains = np.empty(n)
        comb = np.empty(n, dtype=np.int64)
        for i in range(n):
            lags[i], gains[i] = self._pitch_of.pop(k + i, (self._comb_lag, 0.0))
            if gains[i] > 0.0:  # the comb keeps the last lag the pitch tool sent ...
                self._comb_lag, self._comb_age = int(lags[i]), 0
            elif self._comb_age < _PF_LAG_HOLD:
                self._comb_age += 1
            else:  # ... for at most _PF_LAG_HOLD frames
                self._comb_lag = _PF_LAG0
            comb[i] = self._comb_lag
        coded = None  # (none recorded: the network does not read them)
        if self._coded_of and not lost:
            coded = np.zeros_like(block)
            for i in range(n):
                row = self._coded_of.pop(k + i, None)
                if row is not None:
                    coded[i] = row
        from codec.postfilter import frame_features

        feats = frame_features(block, comb, gains, np.full(n, lost), self._bitrate, coded)
        if self.enhancer is not None:
            self.enhancer.push(feats, comb)
        if self.features is not None and self.comb_lags is not None:
            self.features.append(feats)
            self.comb_lags.append(comb)
        return out

    def _synthesize(self, coefs: FloatArray, lost: npt.NDArray[np.bool_], k0: int) -> FloatArray:
        """Overlap-add the frames, substituting lost ones as the output reaches them."""
        parts = []
        i, n = 0, coefs.shape[0]
        while i < n:
            if lost[i]:
                block = self._concealer.substitute(k0 + i)[None, :]
                j = i + 1
            else:
                j = i + 1 + int(np.argmax(np.r_[lost[i + 1 :], True]))
                block = coefs[i:j]
                self._concealer.good(block[-1])
            parts.append(self._ola(block, k0 + i, bool(lost[i])))
            self._concealer.observe(parts[-1])
            i = j
        return np.concatenate(parts)

    def _conceal_pitch(self, k: int) -> None:
        """Post-filter parameters of causally concealed frame ``k``: the last lag,
        the gain fading as the concealment does."""
        self._lost_run += 1
        lag, gain = self._last_pitch
        self._last_pitch = (lag, gain * FADE if self._lost_run < MUTE_AFTER else 0.0)
        self._push_pitch(k, *self._last_pitch)

    def _good_pitches(
        self, k: int, lags: npt.NDArray[np.int64], gain_indices: npt.NDArray[np.int64]
    ) -> None:
        """Post-filter parameters of the received frames ``k, k + 1, ..``."""
        if not lags.size:
            return
        pairs = list(zip(lags.tolist(), pitch_gain(gain_indices).tolist(), strict=True))
        frames = range(k, k + lags.size)
        self._comb.push_many(frames, pairs)
        if self.enhancer is not None or self.features is not None:
            self._pitch_of.update(zip(frames, pairs, strict=True))
        self._lost_run = 0
        self._last_pitch = pairs[-1]

    def _synthesize_interpolating(
        self,
        coefs: FloatArray,
        lost: npt.NDArray[np.bool_],
        lags: npt.NDArray[np.int64],
        gains: npt.NDArray[np.int64],
        k0: int,
    ) -> FloatArray:
        """:meth:`_synthesize` with look-ahead: a run of lost frames followed by a
        good one is interpolated; a run still open at the block's end is held back."""
        held = self._held
        base = k0 - held
        lost = np.r_[np.ones(held, dtype=bool), lost]
        if held:
            coefs = np.vstack([np.zeros((held, coefs.shape[1])), coefs])
            lags = np.r_[np.zeros(held, dtype=np.int64), lags]
            gains = np.r_[np.full(held, -1, dtype=np.int64), gains]
        n = lost.size
        # a run of causally concealed frames that goes on from the last call stays causal
        causal_first = held == 0 and self._concealer.run > 0
        good = np.flatnonzero(~lost)
        start = int(good[-1]) + 1 if good.size else 0  # the trailing lost run
        trail = n - start
        at_end = base + n == self.header.frame_count
        hold = 0
        if 0 < trail <= MUTE_AFTER and not at_end and not (start == 0 and causal_first):
            hold = trail
        m = n - hold
        parts = []
        i = 0
        while i < m:
            j = i + int(np.argmax(np.r_[lost[i:] != lost[i], True]))  # end of the run
            if not lost[i]:
                self._good_pitches(base + i, lags[i:j], gains[i:j])
                block = coefs[i:j]
                self._concealer.good(block[-1])
                parts.append(self._ola(block, base + i, False))
                self._concealer.observe(parts[-1])
            elif j < n and j - i <= MUTE_AFTER and not (i == 0 and causal_first):
                length = j - i
                lag_p, g_p = self._last_pitch
                lag_n, g_n = int(lags[j]), float(pitch_gain(gains[j]))
                for t in range(1, length + 1):
                    w = t / (length + 1)
                    self._push_pitch(base + i + t - 1, *_mix_pitch(lag_p, g_p, lag_n, g_n, w))
                    sub = self._concealer.interpolate(base + i + t - 1, coefs[j], t, length)
                    parts.append(self._ola(sub[None, :], base + i + t - 1, True))
                    self._concealer.observe(parts[-1])
            else:
                j = min(j, m)
                for k in range(i, j):
                    self._conceal_pitch(base + k)
                    sub = self._concealer.substitute(base + k)[None, :]
                    parts.append(self._ola(sub, base + k, True))
                    self._concealer.observe(parts[-1])
            i = j
        self._held = hold
        return np.concatenate(parts) if parts else np.zeros(0)

    def flush(self) -> FloatArray:
        """The last samples, once every frame was given."""
        if self.frames_done != self.header.frame_count:
            raise BitstreamError(
                f"stream ended after {self.frames_done} of {self.header.frame_count} frames"
            )
        return np.zeros(0)

    def _predictive_envelopes(
        self, received: list[bytes], lost: npt.NDArray[np.bool_]
    ) -> FloatArray:
        """Move a predictive envelope's state through a block (lost frames concealed).

        Reads the envelope fields of the received frames; a frame decoded from
        a state that is not the encoder's is marked lost in ``lost`` (in
        place). Returns the LPC (n_kept, 17) of the frames still received.
        """
        assert self._env_state is not None
        bits = self.env.field_bits
        idx = np.zeros((len(received), len(bits)), dtype=np.int64)
        for i, fr in enumerate(received):
            dec = RangeDecoder(fr)
            idx[i] = [dec.decode_bits(nb) for nb in bits]
        lsf, exact, self._env_state = self.env.decode_frames(idx, lost, self._env_state)
        lost[np.flatnonzero(~lost)[~exact]] = True
        return lsf_to_lpc(lsf[exact]) if exact.any() else np.zeros((0, 17))

    def _lpc_from_indices(self, idx: npt.NDArray[np.int64]) -> FloatArray:
        limit = 1 << np.asarray(self.env.field_bits)
        if np.any(idx >= limit):  # pragma: no cover - raw bits cannot exceed the width
            raise BitstreamError("corrupt frame: envelope index out of range")
        return self.env.decode_lpc(idx)


def _enhancer(bitrate_kbps: float, enhance: bool | None) -> Enhancer | None:
    """The post-filter of a stream: on where shipped as default (``None``), or as asked."""
    if enhance is False:
        return None
    from codec import postfilter
    from codec.postfilter import Enhancer

    if enhance is None and not postfilter.default_on(bitrate_kbps):
        return None
    w = postfilter.shipped_weights()
    if w is None:
        if enhance:
            raise ParameterError("no post-filter weights are shipped with this svq (codec/data)")
        return None
    return Enhancer(w)


def _mix_pitch(lag_p: int, g_p: float, lag_n: int, g_n: float, w: float) -> tuple[int, float]:
    """Post-filter parameters at weight ``w`` between those before and after a loss:
    the gain linear, the lag linear when both sides are filtered and within 20 %
    of each other, otherwise the lag of the nearer (filtered) side."""
    if g_p == 0.0:
        lag = lag_n
    elif g_n == 0.0:
        lag = lag_p
    elif abs(lag_n - lag_p) <= 0.2 * min(lag_p, lag_n):
        lag = int(round(lag_p + w * (lag_n - lag_p)))
    else:
        lag = lag_p if w < 0.5 else lag_n
    return lag, (1.0 - w) * g_p + w * g_n


def _given_lpc(lpc: FloatArray, idx: npt.NDArray[np.int64]) -> FloatArray:
    """The LPC already decoded for these frames' envelope indices (a predictive envelope)."""
    if lpc.shape[0] != idx.shape[0]:  # pragma: no cover - the frames were counted before
        raise BitstreamError("envelope and residual frames disagree")
    return lpc


def _full_scale(x: FloatArray) -> FloatArray:
    """Clip to [-1, 1]: a damaged (or hostile) frame cannot make the output explode."""
    return np.clip(x, -1.0, 1.0)


def simulate_loss(frame_count: int, rate: float, *, seed: int = 0) -> npt.NDArray[np.bool_]:
    """Random frame-loss mask: each frame is lost independently with probability ``rate``.

    Parameters
    ----------
    frame_count : int
    rate : float
        Loss probability in [0, 1).
    seed : int

    Returns
    -------
    ndarray of bool, shape (frame_count,)
        True where the frame is lost (pass as ``lost=`` to :func:`decode`).
    """
    if not 0.0 <= rate < 1.0:
        raise ParameterError(f"loss rate must be in [0, 1), got {rate:g}")
    return np.random.default_rng(seed).random(frame_count) < rate


def decode(
    data: bytes,
    *,
    codebooks: Iterable[str | os.PathLike[str]] = (),
    lost: npt.ArrayLike | None = None,
    tools: Tools = Tools(),
    on_damage: OnDamage = "raise",
    conceal: Conceal = "interpolate",
    enhance: bool | None = None,
) -> tuple[FloatArray, int]:
    """Decode a ``.svq`` byte string.

    Parameters
    ----------
    data : bytes
        A complete ``.svq`` file.
    codebooks : iterable of paths
        Extra codebook files to search for the one named in the header.
    lost : array_like of bool, shape (frame_count,), optional
        Frames to treat as lost (concealed instead of decoded), e.g. from
        :func:`simulate_loss`.
    tools : Tools, optional
        The switches the stream was encoded with (:func:`encode`).
    on_damage : {'raise', 'conceal'}
        What a block of frames that fails its CRC-32 does: ``'raise'`` a
        :class:`codec.errors.DamagedStreamError` naming the first such block
        (default), or ``'conceal'``: its frames are decoded as lost ones. A
        damaged header is an error either way.
    conceal : {'interpolate', 'causal'}
        How lost frames are concealed (:class:`StreamDecoder`): the whole file is
        at hand, so by default a run of lost frames is interpolated between its
        neighbours; ``'causal'`` gives what a real-time decoder without look-ahead
        (``StreamDecoder``'s default) outputs. Without loss both are the same.
    enhance : bool, optional
        The trained post-filter (:mod:`codec.postfilter`): ``None`` (default)
        runs it at the bitrates where it is on by default, ``False`` never
        (the plain decoder's output), ``True`` at every bitrate.

    Returns
    -------
    audio : ndarray, shape (sample_count,)
        Float64 samples at 16 kHz in [-1, 1], aligned with the encoder's input.
    sample_rate : int
        16000.
    """
    if on_damage not in ("raise", "conceal"):
        raise ParameterError(f"on_damage must be 'raise' or 'conceal', got {on_damage!r}")
    header, frames, damaged = check_file(bytes(data))
    if damaged and on_damage == "raise":
        raise damage_error(header, damaged)
    dec = StreamDecoder(header, codebooks, tools=tools, conceal=conceal, enhance=enhance)
    mask = _loss_mask(lost, header.frame_count).copy()
    for k in damaged:
        mask[k * CHECK_FRAMES : (k + 1) * CHECK_FRAMES] = True
    out = []
    step = DECODE_BLOCK_FRAMES
    for k0 in range(0, header.frame_count, step):
        block: list[bytes | None] = list(frames[k0 : k0 + step])
        for i in np.flatnonzero(mask[k0 : k0 + step]):
            block[i] = None
        out.append(dec.decode(block))
    out.append(dec.flush())
    return np.concatenate(out), SAMPLE_RATE


def _loss_mask(lost: npt.ArrayLike | None, frame_count: int) -> npt.NDArray[np.bool_]:
    if lost is None:
        return np.zeros(frame_count, dtype=bool)
    mask = np.asarray(lost)
    if mask.shape != (frame_count,) or mask.dtype != np.bool_:
        raise ParameterError(
            f"lost must be a boolean array of the {frame_count} frames, got "
            f"{mask.dtype} of shape {mask.shape}"
        )
    return mask


def _check_header(h: Header) -> None:
    if h.sample_rate != SAMPLE_RATE or h.frame_length != FRAME_LENGTH:
        raise BitstreamError(
            f"unsupported stream: {h.sample_rate} Hz, {h.frame_length}-sample frames"
        )
    try:
        mode = mode_for(h.bitrate_bps / 1000.0)
    except ParameterError as exc:
        raise BitstreamError(f"corrupt header: {exc}") from exc
    if mode.frame_bytes != h.frame_bytes:
        raise BitstreamError("corrupt header: frame size does not match the bitrate")
    if h.residual_coder not in _RESIDUAL_CODERS:
        raise BitstreamError(f"unknown residual coder id {h.residual_coder}")
    if h.frame_count != TCX().n_frames(h.sample_count):
        raise BitstreamError("corrupt header: frame count does not match the sample count")


class StreamInfo(NamedTuple):
    """What ``svq info`` shows."""

    format_version: int
    bitrate_kbps: float
    frame_bytes: int
    frame_count: int
    sample_count: int
    duration_s: float
    envelope_id: str
    codebook_hash: str
    residual_coder: int
    file_bytes: int
    coded_band_hz: float
    """Upper edge of the band coded by value; above it, noise at a coded level."""
    delay_ms: float
    """Algorithmic delay of encoder + decoder (:data:`ALGORITHMIC_DELAY`)."""
    blocks: int
    """Blocks of frames with their own CRC-32 (:data:`codec.bitstream.CHECK_FRAMES` each)."""
    damaged_blocks: list[int]
    """Numbers of the blocks whose CRC-32 fails (block k starts at k s); empty if none."""


def info(data: bytes) -> StreamInfo:
    """Header summary of a ``.svq`` byte string (validates the whole file).

    A damaged header is an error; damaged blocks are listed in ``damaged_blocks``.
    """
    from codec.bitstream import FORMAT_VERSION

    h, _, damaged = check_file(bytes(data))
    return StreamInfo(
        format_version=FORMAT_VERSION,
        bitrate_kbps=h.bitrate_bps / 1000.0,
        frame_bytes=h.frame_bytes,
        frame_count=h.frame_count,
        sample_count=h.sample_count,
        duration_s=h.sample_count / SAMPLE_RATE,
        envelope_id=h.envelope_id,
        codebook_hash=h.codebook_hash.hex(),
        residual_coder=h.residual_coder,
        file_bytes=len(data),
        coded_band_hz=mode_for(h.bitrate_bps / 1000.0).coded_bins * SAMPLE_RATE / 640,
        delay_ms=1000.0 * ALGORITHMIC_DELAY / SAMPLE_RATE,
        blocks=-(-h.frame_count // CHECK_FRAMES),
        damaged_blocks=list(damaged),
    )
