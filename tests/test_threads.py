"""codec.encode / codec.decode from several threads at once give the bytes of serial calls."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import codec
from codec.residual import rangecoder

JOBS = [  # (start s, length s, bitrate, envelope variant)
    (0.0, 2.3, 13.2, None),
    (1.0, 1.7, 8.0, "rvq"),
    (2.0, 2.1, 32.0, None),
    (0.5, 1.9, 9.6, "pvq"),
    (3.0, 1.3, 24.4, "vq"),
    (1.5, 2.0, 16.4, None),
]


def _clear_caches() -> None:
    """Cold caches, so that the threads also race to fill them."""
    for module in (codec.registry, rangecoder):
        for value in vars(module).values():
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()


@pytest.fixture(scope="module")
def clips(speech):
    x, sr = speech
    return [(x[int(a * sr) : int((a + n) * sr)], sr, br, env) for a, n, br, env in JOBS]


def _encode(clip) -> bytes:
    x, sr, br, env = clip
    return codec.encode(x, sr, br, envelope=env)


def _decode(data: bytes, lost_seed: int | None) -> np.ndarray:
    lost = None
    if lost_seed is not None:
        lost = codec.simulate_loss(codec.info(data).frame_count, 0.2, seed=lost_seed)
    return codec.decode(data, lost=lost)[0]


def test_threads_encode_and_decode_as_serial_calls(clips):
    serial_bytes = [_encode(c) for c in clips]
    serial_audio = [_decode(d, s) for d in serial_bytes for s in (None, 3)]
    _clear_caches()
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _round in range(2):  # each clip twice, all at once
            enc = [pool.submit(_encode, c) for c in clips for _ in range(2)]
            got = [f.result() for f in enc]
            assert got[0::2] == serial_bytes and got[1::2] == serial_bytes
            dec = [pool.submit(_decode, d, s) for d in serial_bytes for s in (None, 3)]
            for f, ref in zip(dec, serial_audio, strict=True):
                assert np.array_equal(f.result(), ref)


def test_threads_mixing_encode_decode_and_damage(clips):
    data = _encode(clips[0])
    damaged = bytearray(data)
    damaged[codec.bitstream.HEADER_BYTES + 60 * 33] ^= 0x80  # block 1
    ref_clean = codec.decode(data)[0]
    ref_concealed = codec.decode(bytes(damaged), on_damage="conceal")[0]
    ref_bytes = [_encode(c) for c in clips]

    def work(i: int):
        kind = i % 4
        if kind == 0:
            return "enc", i, _encode(clips[i % len(clips)])
        if kind == 1:
            return "clean", i, codec.decode(data)[0]
        if kind == 2:
            return "conceal", i, codec.decode(bytes(damaged), on_damage="conceal")[0]
        try:
            codec.decode(bytes(damaged))
        except codec.DamagedStreamError as exc:
            return "strict", i, exc.blocks
        return "strict", i, None

    _clear_caches()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(24)))
    for kind, i, value in results:
        if kind == "enc":
            assert value == ref_bytes[i % len(clips)]
        elif kind == "clean":
            assert np.array_equal(value, ref_clean)
        elif kind == "conceal":
            assert np.array_equal(value, ref_concealed)
        else:
            assert value == (1,)


_BLAS_PROBE = """
import os, sys
from codec.cli import main
rc = main(sys.argv[1:])
loaded = "threadpoolctl" in sys.modules
from threadpoolctl import threadpool_info
blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
print(rc, loaded, os.environ.get("OPENBLAS_NUM_THREADS"), *blas)
"""


@pytest.mark.parametrize("asked", [None, "2"], ids=["default", "user-set"])
def test_cli_loads_blas_on_one_thread(tmp_path, asked):
    """``svq encode``/``decode`` load BLAS with one thread, without threadpoolctl,
    unless the user's environment asks for threads: then they are kept, and the
    codec pins its calls with threadpoolctl."""
    import os
    import subprocess
    import sys

    import soundfile as sf

    wav, svq, out = tmp_path / "in.wav", tmp_path / "in.svq", tmp_path / "out.wav"
    t = np.arange(8000) / 16000
    sf.write(wav, 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    if asked:
        env["OPENBLAS_NUM_THREADS"] = asked
    for args in (["encode", str(wav), str(svq), "-q"], ["decode", str(svq), str(out), "-q"]):
        cmd = [sys.executable, "-c", _BLAS_PROBE, *args]
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        assert run.returncode == 0, run.stderr
        if asked:
            # (OpenBLAS may start fewer threads than asked on a one-core machine)
            assert run.stdout.split()[:3] == ["0", "True", asked]
        else:
            assert run.stdout.split() == ["0", "False", "1", "1"]
