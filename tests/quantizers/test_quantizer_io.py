"""File format: round trip, extra arrays, content hash, corrupt or foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codec.errors import CodecError
from codec.quantizers import AVQ, PVQ, RVQ, VQ, CodebookError, Quantizer, load_quantizer


def _quantizer() -> AVQ:
    rng = np.random.default_rng(3)
    cbs = [rng.standard_normal((4, 5)) for _ in range(3)]
    return AVQ(cbs, rng.standard_normal(5), beam=4, method="kmeans", seed=7)


def _rewrite(src: Path, dst: Path, **changes: np.ndarray) -> None:
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    with open(dst, "wb") as f:
        np.savez(f, **data)


def test_hash_is_deterministic_and_content_based() -> None:
    a, b = _quantizer(), _quantizer()
    assert a.content_hash == b.content_hash and len(a.content_hash) == 64
    c = AVQ([cb + 1e-12 for cb in a.codebooks], a.mean, beam=4, method="kmeans", seed=7)
    assert c.content_hash != a.content_hash
    d = AVQ(a.codebooks, a.mean, beam=2, method="kmeans", seed=7)
    assert d.content_hash != a.content_hash


def test_extra_arrays_roundtrip_and_hash(tmp_path: Path) -> None:
    q = _quantizer()
    h0 = q.content_hash
    ma = np.array([[0.5, 0.25], [0.1, 0.0]])
    q.save(tmp_path / "a.bin", extra={"ma_predictor": ma})
    assert q.content_hash != h0
    q2 = load_quantizer(tmp_path / "a.bin")
    np.testing.assert_array_equal(q2.extra["ma_predictor"], ma)
    assert q2.content_hash == q.content_hash
    q2.extra["order"] = np.arange(3)
    q2.save(tmp_path / "b.bin")
    q3 = load_quantizer(tmp_path / "b.bin")
    assert set(q3.extra) == {"ma_predictor", "order"}
    assert q3.content_hash == q2.content_hash


def test_bad_extra_rejected(tmp_path: Path) -> None:
    q = _quantizer()
    with pytest.raises(CodecError):
        q.save(tmp_path / "x.cb", extra={"bad name/": np.zeros(2)})
    q = _quantizer()
    with pytest.raises(CodecError):
        q.save(tmp_path / "x.cb", extra={"s": np.array(["text"])})


def test_byte_flip_detected(tmp_path: Path) -> None:
    q = _quantizer()
    path = tmp_path / "q.cb"
    q.save(path)
    raw = bytearray(path.read_bytes())
    for offset in (len(raw) // 3, len(raw) // 2):
        bad = bytearray(raw)
        bad[offset] ^= 0x55
        (tmp_path / "bad.cb").write_bytes(bytes(bad))
        with pytest.raises(CodebookError):
            load_quantizer(tmp_path / "bad.cb")


def test_tampered_array_detected(tmp_path: Path) -> None:
    q = _quantizer()
    path = tmp_path / "q.cb"
    q.save(path)
    cb = q.codebooks[1].copy()
    cb[0, 0] += 0.001
    _rewrite(path, tmp_path / "t.cb", codebook_1=cb)
    with pytest.raises(CodebookError, match="hash"):
        load_quantizer(tmp_path / "t.cb")


@pytest.mark.parametrize(
    "change",
    [
        {"content_hash": None},
        {"codebook_2": None},
        {"mean": None},
        {"unexpected": np.zeros(3)},
        {"mean": np.zeros(5, dtype=np.float32)},
        {"mean": np.zeros(4)},
        {"config": np.frombuffer(b"{not json", dtype=np.uint8)},
    ],
)
def test_malformed_files(tmp_path: Path, change: dict[str, np.ndarray]) -> None:
    q = _quantizer()
    q.save(tmp_path / "q.cb")
    _rewrite(tmp_path / "q.cb", tmp_path / "m.cb", **change)
    with pytest.raises(CodebookError):
        load_quantizer(tmp_path / "m.cb")


@pytest.mark.parametrize(
    ("key", "value"), [("format_version", 2), ("variant", "xyz"), ("stages", 2), ("split", [5])]
)
def test_config_changes_detected(tmp_path: Path, key: str, value: object) -> None:
    q = _quantizer()
    q.save(tmp_path / "q.cb")
    cfg = json.loads(q.config.to_json())
    cfg[key] = value
    text = json.dumps(cfg).encode()
    _rewrite(tmp_path / "q.cb", tmp_path / "c.cb", config=np.frombuffer(text, dtype=np.uint8))
    with pytest.raises(CodebookError):
        load_quantizer(tmp_path / "c.cb")


def test_foreign_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "text.cb").write_text("hello")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    for name in ("text.cb", "plain.npy", "missing.cb"):
        with pytest.raises(CodebookError):
            load_quantizer(tmp_path / name)


@pytest.mark.parametrize(
    "q",
    [
        VQ([np.eye(4)]),
        RVQ([np.eye(4), -np.eye(4)], np.ones(4), beam=3),
        PVQ([np.zeros((2, 1)), np.ones((2, 3))], np.arange(4.0)),
    ],
)
def test_roundtrip_hand_built(tmp_path: Path, q: Quantizer) -> None:
    q.save(tmp_path / "h.cb")
    q2 = load_quantizer(tmp_path / "h.cb")
    assert q2.config == q.config and q2.content_hash == q.content_hash
    assert q2.codebooks[0].flags.writeable is False


def test_sha256_is_hashlibs_digest_without_loading_hashlib():
    """The codec's SHA-256 (CPython's built-in module) gives hashlib's digests, and a
    decoder process that loads a codebook does not import hashlib (OpenSSL)."""
    import hashlib
    import subprocess
    import sys

    from codec.quantizers.base import sha256

    rng = np.random.default_rng(0)
    for size in (0, 1, 63, 64, 65, 4096, 100_003):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        h = sha256()
        h.update(data[: size // 3])
        h.update(data[size // 3 :])
        assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    code = (
        "import sys; from codec.registry import load_envelope; "
        "load_envelope('avq-4x6'); print('hashlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
