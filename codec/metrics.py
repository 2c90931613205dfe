"""Quality measures: PESQ-WB, perceptual SNR, ViSQOL, DNSMOS, alignment (design brief, section 4).

Every function takes explicit sample rates; signals at another rate are
resampled with soxr (never with a sample-count resampler), and a reference and
a test signal at different rates are refused.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from codec.analysis import autocorrelation, levinson
from codec.audio import resample
from codec.errors import ParameterError

__all__ = [
    "align",
    "band_limited",
    "pesq_wb",
    "psnr",
    "visqol_speech",
    "dnsmos",
    "DnsmosScores",
    "PSNR_GAMMA",
    "PSNR_TILT",
    "PSNR_BAND_EDGE_HZ",
    "PSNR_BAND_SHARE",
]

FloatArray = npt.NDArray[np.float64]
PSNR_GAMMA = 0.92
PSNR_TILT = 0.68
_FRAME = 320


def _check(
    ref: npt.ArrayLike, deg: npt.ArrayLike, rate: int, deg_rate: int | None
) -> tuple[FloatArray, FloatArray]:
    r = np.asarray(ref, dtype=np.float64)
    d = np.asarray(deg, dtype=np.float64)
    if r.ndim != 1 or d.ndim != 1:
        raise ParameterError("metrics take mono 1-D signals")
    if deg_rate is not None and deg_rate != rate:
        raise ParameterError(f"sample rates differ: reference {rate} Hz, test {deg_rate} Hz")
    if rate != 16000:
        r = resample(r, rate, 16000)
        d = resample(d, rate, 16000)
    n = min(r.size, d.size)
    return r[:n], d[:n]


def align(ref: npt.ArrayLike, deg: npt.ArrayLike, *, max_lag: int = 1600) -> tuple[FloatArray, int]:
    """Shift ``deg`` to best match ``ref`` (cross-correlation peak within ±max_lag).

    Returns
    -------
    aligned : ndarray, shape (len(ref),)
        ``deg`` delayed/advanced by the lag and zero-padded to ``ref``'s length.
    lag : int
        Samples by which ``deg`` lagged ``ref`` (positive: ``deg`` was late).
    """
    r = np.asarray(ref, dtype=np.float64)
    d = np.asarray(deg, dtype=np.float64)
    n = 1 << int(np.ceil(np.log2(r.size + d.size + 1)))
    xc = np.fft.irfft(np.fft.rfft(d, n) * np.conj(np.fft.rfft(r, n)), n)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    vals = xc[lags % n]
    lag = int(lags[int(np.argmax(vals))])
    out = np.zeros(r.size)
    if lag >= 0:
        seg = d[lag : lag + r.size]
        out[: seg.size] = seg
    else:
        seg = d[: r.size + lag]
        out[-lag : -lag + seg.size] = seg
    return out, lag


def pesq_wb(
    ref: npt.ArrayLike, deg: npt.ArrayLike, sample_rate: int, *, deg_rate: int | None = None
) -> float:
    """Wideband PESQ (ITU-T P.862.2) with the ``pesq`` package, mode ``wb``.

    Both signals are brought to 16 kHz and cut to equal length. Raises the
    ``pesq`` package's error when it cannot score a file (for example no
    utterance found); callers count those failures instead of dropping them.
    """
    from pesq import pesq

    r, d = _check(ref, deg, sample_rate, deg_rate)
    return float(pesq(16000, r, d, "wb"))


PSNR_BAND_EDGE_HZ = 4500.0
PSNR_BAND_SHARE = 1e-5
"""A reference with less than this share (-50 dB) of its energy above
:data:`PSNR_BAND_EDGE_HZ` is band-limited (an 8 kHz source, a telephone
recording): :func:`psnr` refuses it unless given ``noise_floor_db``. On the
dev set the share is 2.6e-3 or more; an 8 kHz source resampled to 16 kHz has
about 1e-7."""


def band_limited(ref: npt.ArrayLike) -> bool:
    """Whether a 16 kHz reference has (almost) nothing above 4.5 kHz (:data:`PSNR_BAND_SHARE`)."""
    x = np.asarray(ref, dtype=np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    total = float(power.sum())
    if total == 0.0:
        return False
    high = float(power[np.fft.rfftfreq(x.size, 1.0 / 16000) > PSNR_BAND_EDGE_HZ].sum())
    return high < PSNR_BAND_SHARE * total


def _weighting_numerators(ref: FloatArray, floor: float = 1e-9) -> FloatArray:
    """Per-frame ``A(z/γ)`` of the reference, shape (n_frames, 17).

    ``floor`` is the white-noise correction of each frame's autocorrelation
    (``r[0] *= 1 + floor``); 1e-9 only keeps silent frames solvable.
    """
    n_frames = -(-ref.size // _FRAME)
    padded = np.zeros(n_frames * _FRAME)
    padded[: ref.size] = ref
    frames = padded.reshape(n_frames, _FRAME) * np.hanning(_FRAME)
    r = autocorrelation(frames, 16)
    r[:, 0] = r[:, 0] * (1.0 + floor) + 1e-12
    a, _, _ = levinson(r)
    return np.asarray(a * PSNR_GAMMA ** np.arange(17), dtype=np.float64)


def _weight(x: FloatArray, num: FloatArray) -> FloatArray:
    """Filter with per-frame FIR ``num`` (state carried), then ``1/(1 - 0.68 z^-1)``."""
    n_frames = num.shape[0]
    padded = np.zeros(16 + n_frames * _FRAME)
    padded[16 : 16 + x.size] = x
    hist = np.lib.stride_tricks.sliding_window_view(padded, 17)[:, ::-1]  # x[n], x[n-1], ...
    hist = hist[: n_frames * _FRAME].reshape(n_frames, _FRAME, 17)
    from scipy.signal import lfilter

    fir = np.einsum("fnk,fk->fn", hist, num).reshape(-1)[: x.size]
    return np.asarray(lfilter([1.0], [1.0, -PSNR_TILT], fir), dtype=np.float64)


def psnr(
    ref: npt.ArrayLike,
    deg: npt.ArrayLike,
    sample_rate: int,
    *,
    deg_rate: int | None = None,
    do_align: bool = True,
    noise_floor_db: float | None = None,
) -> float:
    """Perceptual SNR in dB (design brief, section 4).

    Per 20 ms frame of the reference: LPC of order 16 (autocorrelation method,
    Hann window); weighting ``W(z) = A(z/0.92) / (1 - 0.68 z^-1)`` applied to
    both signals with the coefficients switched per frame and the filter state
    carried; ``10 log10(sum x_w^2 / sum (x_w - y_w)^2)`` over the whole file,
    after aligning the test signal to the reference.

    Band-limited references are refused. ``W`` follows the reference's
    spectrum inverted, so where the reference is empty (above 4 kHz for an
    8 kHz source) it boosts the test signal by up to about 50 dB: the score
    then measures the coder's noise filling of a band the reference never had
    (-8 to -20 dB at 13.2 kbit/s, against +7 dB for the same speech at full
    band). ``noise_floor_db`` (e.g. -40, the white-noise correction of
    speech coders' LPC analysis) adds that floor to each frame's
    autocorrelation, which bounds ``W``'s range and gives meaningful scores
    for such references; the scores are not comparable to the default
    definition's (the dev-set tables and anchors use the default).

    Raises
    ------
    ParameterError
        The reference is band-limited (:func:`band_limited`) and no
        ``noise_floor_db`` is given.
    """
    r, d = _check(ref, deg, sample_rate, deg_rate)
    if noise_floor_db is None and band_limited(r):
        raise ParameterError(
            "pSNR: the reference has almost no energy above 4.5 kHz (a narrowband source?); "
            "the weighting would boost that empty band by up to 50 dB and score the coder's "
            "noise there; pass noise_floor_db=-40 for a bounded (non-standard) score"
        )
    if do_align:
        d, _ = align(r, d)
    floor = 1e-9 if noise_floor_db is None else 10.0 ** (noise_floor_db / 10.0)
    num = _weighting_numerators(r, floor)
    xw = _weight(r, num)
    yw = _weight(d, num)
    err = float(np.sum((xw - yw) ** 2))
    sig = float(np.sum(xw**2))
    if err == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max(sig, 1e-30) / err))


_VISQOL: dict[str, Any] = {}


def visqol_speech(
    ref: npt.ArrayLike, deg: npt.ArrayLike, sample_rate: int, *, deg_rate: int | None = None
) -> float:
    """ViSQOL v3 MOS-LQO in speech mode (16 kHz, lattice mapper), on a 1-5 scale.

    Uses ``visqol-python`` with its ``lattice`` extra (the C++ tool's default
    mapping; its models ship inside the package, nothing is downloaded). The
    decoded signal is aligned to the reference first. Raises
    :class:`ParameterError` when the package or its lattice model is missing
    (``pip install "svq[eval]"``).
    """
    r, d = _check(ref, deg, sample_rate, deg_rate)
    d, _ = align(r, d)
    api = _VISQOL.get("speech")
    if api is None:
        try:
            import visqol
        except ImportError as exc:
            raise ParameterError(
                "ViSQOL needs visqol-python with its lattice extra: pip install 'svq[eval]'"
            ) from exc
        api = visqol.VisqolApi()
        try:
            api.create(mode="speech", use_lattice_model=True)
        except (ImportError, FileNotFoundError) as exc:
            raise ParameterError(
                f"ViSQOL's lattice model is not available ({exc}); install visqol-python[lattice]"
            ) from exc
        _VISQOL["speech"] = api
    return float(api.measure_from_arrays(r, d, 16000).moslqo)


class DnsmosScores(NamedTuple):
    """DNSMOS P.835 scores (1-5): overall, speech signal, background, and the P.808 MOS."""

    ovrl: float
    sig: float
    bak: float
    p808: float


_DNSMOS: dict[str, Any] = {}


def _dnsmos_model() -> Any:
    model = _DNSMOS.get("model")
    if model is not None:
        return model
    try:
        import onnxruntime as ort
        from speechmos import dnsmos as sm
    except ImportError as exc:
        raise ParameterError(
            f"DNSMOS needs speechmos and onnxruntime ({exc}): pip install 'svq[eval]'"
        ) from exc
    from pathlib import Path

    root = Path(sm.__file__).resolve().parent / "dnsmos_models"
    primary, p808 = root / "sig_bak_ovr.onnx", root / "model_v8.onnx"
    if not (primary.is_file() and p808.is_file()):
        raise ParameterError(f"DNSMOS models not found in {root}; reinstall speechmos")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one process per core in the recipes
    opts.inter_op_num_threads = 1
    model = sm.DNSMOS.__new__(sm.DNSMOS)
    model.primary_model_path = str(primary)
    model.onnx_sess = ort.InferenceSession(str(primary), opts, providers=["CPUExecutionProvider"])
    model.p808_onnx_sess = ort.InferenceSession(str(p808), opts, providers=["CPUExecutionProvider"])
    _DNSMOS["model"] = model
    return model


def dnsmos(audio: npt.ArrayLike, sample_rate: int) -> DnsmosScores:
    """DNSMOS (Reddy et al., ICASSP 2022) of one signal: no reference, 1-5 scale.

    A non-intrusive measure: trained networks predict the ITU-T P.835 ratings
    (overall ``ovrl``, speech ``sig``, background ``bak``) and a P.808 MOS from
    the signal alone, over 9 s windows hopped by 1 s (shorter signals are
    repeated to 9 s). Uses the ONNX models shipped inside the ``speechmos``
    package, run by ``onnxruntime`` on one thread; nothing is downloaded. The
    signal is brought to 16 kHz and clipped to [-1, 1]. Raises
    :class:`ParameterError` when the packages are missing (``pip install "svq[eval]"``).
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ParameterError("metrics take mono 1-D signals")
    if x.size == 0:
        raise ParameterError("DNSMOS needs a non-empty signal")
    if sample_rate != 16000:
        x = resample(x, sample_rate, 16000)
    model = _dnsmos_model()
    res = model(np.clip(x, -1.0, 1.0).astype(np.float32), 16000, False)
    return DnsmosScores(
        float(res["ovrl_mos"]), float(res["sig_mos"]), float(res["bak_mos"]), float(res["p808_mos"])
    )
