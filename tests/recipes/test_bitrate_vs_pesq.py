"""recipes/bitrate_vs_pesq.py: outputs, resumability and failure counting (fast mode).

Runs the recipe's ``main`` on the two files of ``samples/`` (training on them
too, one quantizer), in one process so that a monkeypatched encoder reaches
the cells.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # recipes/ is not installed; plain `pytest` lacks the repo root
    sys.path.insert(0, str(ROOT))

import codec.pipeline  # noqa: E402
from recipes import bitrate_vs_pesq as recipe  # noqa: E402

SAMPLES = ROOT / "samples"
ENCODE = codec.pipeline.encode
FAST = [
    "--data", str(SAMPLES),
    "--train", str(SAMPLES),
    "--variants", "avq",
    "--methods", "kmeans",
    "--limit", "2",
    "--jobs", "1",
    "--no-anchors",
    "--metrics", "pesq,psnr",
    "--quiet",
]  # fmt: skip
COLUMNS = {
    "file",
    "config",
    "bitrate_kbps",
    "pesq_wb",
    "psnr_db",
    "measured_kbps",
    "encode_s",
    "decode_s",
    "error",
}


class CountingEncode:
    """Wraps ``codec.pipeline.encode``: counts calls, optionally fails chosen cells."""

    def __init__(self, fail_kbps: float | None = None) -> None:
        self.calls = 0
        self.fail_kbps = fail_kbps

    def __call__(self, audio: Any, sample_rate: int, bitrate_kbps: float, **kw: Any) -> bytes:
        self.calls += 1
        if (
            self.fail_kbps is not None
            and kw.get("codebook") is not None
            and abs(bitrate_kbps - self.fail_kbps) < 1e-9
        ):
            raise RuntimeError("injected encoder failure")
        return ENCODE(audio, sample_rate, bitrate_kbps, **kw)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "per_file.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return data


def test_fast_run_resume_and_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    args = [*FAST, "--out", str(out)]
    # cells are keyed by a hash of the codec's sources; pin it so that a concurrent
    # edit of codec/ during the test does not (correctly) invalidate the cells
    monkeypatch.setattr(recipe, "codec_fingerprint", lambda: "pinned")

    # 1: fresh run, 2 files x (default, avq-kmeans) x 2 bitrates
    enc = CountingEncode()
    monkeypatch.setattr(codec.pipeline, "encode", enc)
    assert recipe.main([*args, "--bitrates", "8,32"]) == 0
    assert enc.calls == 8
    rows = _rows(out)
    assert COLUMNS <= set(rows[0])
    assert len(rows) == 8
    assert {r["config"] for r in rows} == {"default", "avq-kmeans"}
    assert all(r["error"] == "" for r in rows)
    for r in rows:
        assert 1.0 <= float(r["pesq_wb"]) <= 4.7
        nominal = float(r["bitrate_kbps"])
        # whole file = frames + header/CRC: a little above nominal
        assert nominal <= float(r["measured_kbps"]) < 1.1 * nominal
    s = _summary(out)
    assert s["n_files"] == 2 and s["n_failed"] == 0
    assert s["cells_computed"] == 8 and s["cells_reused"] == 0
    for cfg in ("default", "avq-kmeans"):
        for rate in ("8", "32"):
            cell = s["results"][cfg][rate]
            assert cell["n_files"] == 2 and cell["n_failed"] == 0
            for metric in ("pesq_wb", "psnr_db"):
                assert set(cell[metric]) == {"mean", "median", "q025", "q975"}
                assert cell[metric]["q025"] <= cell[metric]["median"] <= cell[metric]["q975"]
    assert (
        s["results"]["default"]["32"]["pesq_wb"]["mean"]
        > (s["results"]["default"]["8"]["pesq_wb"]["mean"])
    )
    assert [c["config"] for c in s["complexity"]] == ["default", "avq-kmeans"]
    assert s["complexity"][1]["ops_per_vector"] > 0
    for name in ("grid_pesq_wb.png", "grid_psnr_db.png", "anchors.png", "complexity.png"):
        assert (out / name).stat().st_size > 1000
    assert (out / "codebooks" / "avq-kmeans-4x4.cb").stat().st_size > 0
    assert "| avq-kmeans |" in (out / "results.md").read_text()
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["bitrates"] == [8.0, 32.0]
    assert config["args"]["limit"] == 2

    # 2: same arguments again: nothing recomputed, codebook taken from the cache
    enc2 = CountingEncode()
    monkeypatch.setattr(codec.pipeline, "encode", enc2)
    assert recipe.main([*args, "--bitrates", "8,32"]) == 0
    assert enc2.calls == 0
    s = _summary(out)
    assert s["cells_computed"] == 0 and s["cells_reused"] == 8
    assert len(_rows(out)) == 8

    # 3: a new bitrate whose avq-kmeans cells fail: only the new cells run, failures counted
    enc3 = CountingEncode(fail_kbps=13.2)
    monkeypatch.setattr(codec.pipeline, "encode", enc3)
    assert recipe.main([*args, "--bitrates", "8,13.2,32"]) == 0
    assert enc3.calls == 4
    s = _summary(out)
    assert s["n_failed"] == 2
    failed = s["results"]["avq-kmeans"]["13.2"]
    assert (failed["n_files"], failed["n_ok"], failed["n_failed"]) == (2, 0, 2)
    assert failed["pesq_wb"]["mean"] is None
    assert any("injected" in e for e in failed["errors"])
    assert s["results"]["default"]["13.2"]["n_failed"] == 0
    rows = _rows(out)
    assert len(rows) == 12
    bad = [r for r in rows if r["error"]]
    assert {(r["config"], r["bitrate_kbps"]) for r in bad} == {("avq-kmeans", "13.2")}
    assert all(r["pesq_wb"] == "" for r in bad)
    assert "2 failed" in (out / "results.md").read_text()

    # 4: --retry-failed recomputes exactly the failed cells
    enc4 = CountingEncode()
    monkeypatch.setattr(codec.pipeline, "encode", enc4)
    assert recipe.main([*args, "--bitrates", "8,13.2,32", "--retry-failed"]) == 0
    assert enc4.calls == 2
    assert _summary(out)["n_failed"] == 0


def _ogg_page(packets: list[bytes], seq: int) -> bytes:
    lacing = b"".join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
    head = b"OggS" + bytes([0, 0]) + struct.pack("<qII", 0, 1, seq) + b"\0\0\0\0"
    return head + bytes([len(lacing)]) + lacing + b"".join(packets)


def test_ogg_payload_counts_audio_packets_only() -> None:
    audio = [b"a" * 40, b"b" * 300, b"c" * 255]
    data = _ogg_page([b"OpusHead" + b"\0" * 11], 0) + _ogg_page([b"OpusTags" + b"x" * 600], 1)
    data += _ogg_page(audio[:2], 2) + _ogg_page(audio[2:], 3)
    assert recipe.ogg_payload_bytes(data) == 40 + 300 + 255


@pytest.mark.skipif(
    shutil.which("opusenc") is None or shutil.which("opusdec") is None,
    reason="opus-tools not installed",
)
def test_opus_configs(tmp_path: Path) -> None:
    out = tmp_path / "opus"
    argv = [a for a in FAST if a != "--no-anchors"]
    argv += ["--anchors", "opus-cbr,opus-vbr", "--variants", "", "--bitrates", "16.4"]
    argv += ["--limit", "1", "--out", str(out)]
    assert recipe.main(argv) == 0
    rows = {r["config"]: r for r in _rows(out)}
    assert set(rows) == {"default", "opus-cbr", "opus-vbr"}
    for name in ("opus-cbr", "opus-vbr"):
        r = rows[name]
        assert r["error"] == ""
        assert float(r["pesq_wb"]) > 3.0
        assert float(r["payload_kbps"]) < float(r["measured_kbps"])
        assert abs(int(r["lag"])) < 160


def test_agreement_known_cases() -> None:
    """A metric that ranks like PESQ gets rho = 1, a reversed one -1; orderings follow means."""
    cfgs = [
        recipe.Config(name="default", kind="svq"),
        recipe.Config(name="amrwb", kind="anchor", rates=(8.85, 12.65)),
    ]
    rows = []
    for f in ("a.wav", "b.wav"):
        for cfg, rate, pesq in (
            ("default", 8.0, 2.0),
            ("default", 13.2, 3.0),
            ("amrwb", 8.85, 2.5),
            ("amrwb", 12.65, 2.9),
        ):
            rows.append(
                {
                    "file": f, "config": cfg, "bitrate_kbps": rate, "error": "",
                    "pesq_wb": pesq, "psnr_db": 10 - pesq, "dnsmos_ovrl": pesq / 2,
                    "measured_kbps": rate, "payload_kbps": rate, "encode_s": 0.1,
                    "decode_s": 0.1, "duration_s": 1.0,
                }
            )  # fmt: skip
    metrics = ("pesq_wb", "psnr_db", "dnsmos_ovrl")
    agree = recipe.agreement(rows, cfgs, [8.0, 13.2], metrics)
    pf = agree["per_file_spearman"]
    assert pf["dnsmos_ovrl"]["median"] == pytest.approx(1.0)
    assert pf["psnr_db"]["median"] == pytest.approx(-1.0)
    assert pf["psnr_db"]["n_files"] == 2
    o = agree["orderings"]
    assert o["8"]["order"]["pesq_wb"] == ["amrwb@8.85", "default@8"]
    assert o["13.2"]["order"]["pesq_wb"] == ["default@13.2", "amrwb@12.65"]
    assert o["8"]["same_as_pesq"] == {"psnr_db": False, "dnsmos_ovrl": True}
    results = recipe.summarize(rows, cfgs, [8.0, 13.2], metrics)
    md = recipe.results_markdown("cmd", cfgs, [8.0, 13.2], results, [], 2, metrics, agree)
    assert "@8.85" in md and "✗" in md and "## DNSMOS OVRL" in md


def test_given_codebooks_run_as_their_own_configurations(
    tmp_path: Path, speech: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--codebook NAME=FILE``: a predictive codebook file and a shipped name, each a
    configuration at every bitrate, copied to OUT/codebooks, reused on a second run."""
    import numpy as np

    from codec.analysis import lsf_features
    from codec.quantizers import train_predictive

    lsf = lsf_features(*speech)
    pq = train_predictive(
        lsf, variant="rvq", stages=3, bits=4, method="kmeans", kind="ar", safety_net=True
    )
    cb = tmp_path / "ar.cb"
    pq.save(cb)
    monkeypatch.setattr(recipe, "codec_fingerprint", lambda: "pinned")
    out = tmp_path / "out"
    args = [
        "--data", str(SAMPLES), "--limit", "1", "--variants", "", "--no-default",
        "--no-anchors", "--metrics", "pesq,psnr", "--jobs", "1", "--quiet",
        "--bitrates", "8,13.2", "--out", str(out),
        "--codebook", f"pred={cb}", "--codebook", "mem=avq-4x4",
    ]  # fmt: skip
    assert recipe.main(args) == 0
    s = _summary(out)
    assert {c["name"] for c in s["configs"]} == {"pred", "mem"}
    assert all(c["given"] for c in s["configs"])
    pred = next(c for c in s["configs"] if c["name"] == "pred")
    assert "ar-predictive" in pred["envelope"] and pred["variant"] == "rvq"
    for name in ("pred", "mem"):
        for rate in ("8", "13.2"):
            cell = s["results"][name][rate]
            assert cell["n_ok"] == 1 and np.isfinite(cell["pesq_wb"]["mean"])
    assert (out / "codebooks" / "pred.cb").read_bytes() == cb.read_bytes()
    assert "| pred |" in (out / "results.md").read_text()
    assert recipe.main(args) == 0
    assert _summary(out)["cells_computed"] == 0
    # a codebook the codec refuses (AR without a safety net) stops the run before any cell
    bare = train_predictive(lsf, variant="rvq", stages=3, bits=4, method="kmeans", kind="ar")
    bare.save(tmp_path / "bare.cb")
    bad = [*args[:-4], "--codebook", f"bare={tmp_path / 'bare.cb'}", "--out", str(tmp_path / "o2")]
    assert recipe.main(bad) == 2
    assert not (tmp_path / "o2" / "cells.jsonl").exists()


@pytest.mark.parametrize(
    "bad, why",
    [("pred", "NAME=FILE"), ("x=/no/such.cb", "no such codebook"), ("a b=avq-4x4", "NAME")],
)
def test_given_codebook_errors(bad: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        recipe.main(["--out", "/tmp/unused-out", "--codebook", bad])
    assert exc.value.code == 2
    assert why in capsys.readouterr().err


def test_post_filter_configurations(tmp_path: Path) -> None:
    """``--post-filter``: the shipped configuration decoded without and with the post-filter."""
    out = tmp_path / "out"
    args = [
        "--data", str(SAMPLES), "--limit", "1", "--variants", "", "--no-default",
        "--no-anchors", "--metrics", "pesq,psnr", "--jobs", "1", "--quiet",
        "--bitrates", "8", "--out", str(out), "--post-filter",
    ]  # fmt: skip
    assert recipe.main(args) == 0
    s = _summary(out)
    assert {c["name"] for c in s["configs"]} == {recipe.PLAIN_CONFIG, recipe.ENHANCED_CONFIG}
    plain = s["results"][recipe.PLAIN_CONFIG]["8"]["psnr_db"]["mean"]
    enhanced = s["results"][recipe.ENHANCED_CONFIG]["8"]["psnr_db"]["mean"]
    assert plain != enhanced  # the post-filter changed the decoded signal


def test_post_filter_weights_run_as_their_own_configurations(tmp_path: Path) -> None:
    """``--post-filter-weights NAME=FILE``: the shipped configuration decoded with those
    weights; a copy of the shipped weights scores exactly as ``default-enhanced``, other
    weights differently, and a second run reuses every cell."""
    import numpy as np

    from codec import postfilter
    from codec.postfilter import Weights, save_weights

    shipped = postfilter.shipped_weights()
    if shipped is None:
        pytest.skip("no post-filter weights shipped")
    same = tmp_path / "same.npz"
    save_weights(shipped, same)
    rng = np.random.default_rng(0)
    other = Weights(**{**vars(shipped), "b4": shipped.b4 + rng.normal(size=shipped.b4.size) * 0.3})
    save_weights(other, tmp_path / "other.npz")
    out = tmp_path / "out"
    args = [
        "--data", str(SAMPLES), "--limit", "1", "--variants", "", "--no-default",
        "--no-anchors", "--metrics", "pesq,psnr", "--jobs", "1", "--quiet",
        "--bitrates", "8", "--out", str(out), "--post-filter",
        "--post-filter-weights", f"same={same}",
        "--post-filter-weights", f"other={tmp_path / 'other.npz'}",
    ]  # fmt: skip
    assert recipe.main(args) == 0
    s = _summary(out)
    names = {c["name"] for c in s["configs"]}
    assert names == {recipe.PLAIN_CONFIG, recipe.ENHANCED_CONFIG, "same", "other"}

    def mean(name: str) -> float:
        return float(s["results"][name]["8"]["psnr_db"]["mean"])

    assert mean("same") == mean(recipe.ENHANCED_CONFIG)
    assert mean("other") != mean("same")
    assert recipe.main(args) == 0
    assert _summary(out)["cells_computed"] == 0


@pytest.mark.parametrize(
    "bad, why",
    [("w", "NAME=FILE"), ("x=/no/such.npz", "no such post-filter weights"), ("a b=x", "NAME")],
)
def test_post_filter_weights_errors(bad: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        recipe.main(["--out", "/tmp/unused-out", "--post-filter-weights", bad])
    assert exc.value.code == 2
    assert why in capsys.readouterr().err


def test_post_filter_weights_not_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not post-filter weights stops the run before any cell, in one line."""
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    out = tmp_path / "out"
    args = [
        "--data", str(SAMPLES), "--limit", "1", "--variants", "", "--no-default",
        "--no-anchors", "--metrics", "pesq,psnr", "--jobs", "1", "--quiet", "--bitrates", "8",
        "--out", str(out), "--post-filter-weights", f"junk={tmp_path / 'junk.npz'}",
    ]  # fmt: skip
    assert recipe.main(args) == 2
    err = capsys.readouterr().err
    assert "--post-filter-weights" in err and "not post-filter weights" in err
    assert not (out / "cells.jsonl").exists()
