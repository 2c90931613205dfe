"""recipes/synthetic_vq.py and recipes/envelope_sd.py: quick runs, outputs and row keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # recipes/ is not installed; plain `pytest` lacks the repo root
    sys.path.insert(0, str(ROOT))

from recipes import envelope_sd, synthetic_vq  # noqa: E402

SAMPLES = ROOT / "samples"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic_vq")
    assert synthetic_vq.main(["--quick", "--bits", "12", "--out", str(out)]) == 0
    return out


def test_synthetic_outputs(synthetic: Path) -> None:
    res = json.loads((synthetic / "results.json").read_text())
    rows = res["rows"]
    assert {(r["data"], r["variant"]) for r in rows} == {
        (d, v) for d in ("correlated", "uncorrelated") for v in ("avq", "rvq", "pvq")
    }
    for r in rows:
        assert {"data", "variant", "method", "bits", "mse"} <= set(r)
        assert r["method"] == "kmeans" and r["bits"] == 12
        assert np.isfinite(r["mse"]) and r["mse"] > 0
    assert (synthetic / "results.md").read_text().count("|") > 10
    assert (synthetic / "synthetic_vq.png").stat().st_size > 10_000


def test_synthetic_correlated_shape(synthetic: Path) -> None:
    """AVQ and RVQ exploit the cross-sub-vector correlation that PVQ cannot."""
    rows = json.loads((synthetic / "results.json").read_text())["rows"]
    mse = {(r["data"], r["variant"]): r["mse"] for r in rows}
    pvq = mse[("correlated", "pvq")]
    assert mse[("correlated", "avq")] < 0.5 * pvq
    assert mse[("correlated", "rvq")] < 0.5 * pvq
    # on i.i.d. data the structures are within a few percent of each other
    unc = [mse[("uncorrelated", v)] for v in ("avq", "rvq", "pvq")]
    assert max(unc) < 1.1 * min(unc)


def test_synthetic_rerun_reuses_rows(synthetic: Path) -> None:
    before = json.loads((synthetic / "results.json").read_text())["rows"]
    assert synthetic_vq.main(["--quick", "--bits", "12", "--out", str(synthetic)]) == 0
    after = json.loads((synthetic / "results.json").read_text())["rows"]
    assert [r["mse"] for r in after] == [r["mse"] for r in before]


def test_synthetic_data_is_seeded() -> None:
    a = synthetic_vq.make_data("correlated", 8, seed=3, part=0)
    b = synthetic_vq.make_data("correlated", 8, seed=3, part=0)
    c = synthetic_vq.make_data("correlated", 8, seed=3, part=1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_envelope_sd_fast_path(tmp_path: Path) -> None:
    out = tmp_path / "env"
    argv = [
        "--train", str(SAMPLES), "--eval", str(SAMPLES), "--out", str(out),
        "--bits", "16", "--variants", "avq,rvq,pvq", "--methods", "kmeans",
        "--no-balance", "--time-vectors", "256", "--no-predictive",
    ]  # fmt: skip
    assert envelope_sd.main(argv) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["config"] for r in rows] == ["avq-4x4-kmeans", "rvq-4x4-kmeans", "pvq-4x4-kmeans"]
    for r in rows:
        assert set(envelope_sd.ROW_KEYS) <= set(r)
        assert list(r)[: len(envelope_sd.ROW_KEYS)] == list(envelope_sd.ROW_KEYS)
        assert r["bits"] == 16 and r["stages"] == 4
        assert 0 < r["mean_sd_db"] < 10
        assert 0 <= r["pct_2_4_db"] <= 100 and 0 <= r["pct_over_4_db"] <= 100
        assert r["us_per_vector"] > 0 and r["ops_per_vector"] > 0
    for name in ("results.md", "sd_vs_bits.png", "sd_vs_ops.png"):
        assert (out / name).stat().st_size > 0
    assert len(list((out / "codebooks").glob("*.cb"))) == 3
    # a rerun loads the cached codebooks and reproduces the numbers
    assert envelope_sd.main(argv) == 0
    again = json.loads((out / "results.json").read_text())
    assert [r["mean_sd_db"] for r in again] == [r["mean_sd_db"] for r in rows]


def test_envelope_sd_ma_predictive(tmp_path: Path) -> None:
    out = tmp_path / "env"
    argv = [
        "--train", str(SAMPLES), "--eval", str(SAMPLES), "--out", str(out),
        "--bits", "24", "--variants", "rvq", "--methods", "kmeans",
        "--no-balance", "--time-vectors", "128",
    ]  # fmt: skip
    assert envelope_sd.main(argv) == 0
    rows = {r["config"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(rows) == {"rvq-4x6-b4-kmeans", "ma-rvq-4x6-b4-kmeans"}
    plain, ma = rows["rvq-4x6-b4-kmeans"], rows["ma-rvq-4x6-b4-kmeans"]
    assert ma["predictor"] == pytest.approx(1 / 3) and plain["predictor"] == 0
    assert ma["ops_per_vector"] == plain["ops_per_vector"] + 2 * 16
    assert 0 < ma["mean_sd_db"] < 10 and ma["bits"] == 24


def test_envelope_sd_codec_predictive_and_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "env"
    argv = [
        "--train", str(SAMPLES), "--eval", str(SAMPLES), "--out", str(out),
        "--bits", "16", "--variants", "avq", "--methods", "kmeans,ste", "--steps", "8",
        "--no-balance", "--time-vectors", "64",
        "--only", "avq-4x4-kmeans,ar-avq-4x4-kmeans,e2e-avq-4x4-ste,e2e-avq-4x4-h32-ste",
    ]  # fmt: skip
    assert envelope_sd.main(argv) == 0
    rows = {r["config"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(rows) == {
        "avq-4x4-kmeans", "ar-avq-4x4-kmeans", "e2e-avq-4x4-ste", "e2e-avq-4x4-h32-ste"
    }  # fmt: skip
    plain, ar = rows["avq-4x4-kmeans"], rows["ar-avq-4x4-kmeans"]
    assert ar["prefix"] == "ar" and ar["bits"] == 16
    # prediction (a 16 x 16 matrix) costs more operations than the memoryless search
    assert ar["ops_per_vector"] > plain["ops_per_vector"]
    e2e = rows["e2e-avq-4x4-h32-ste"]
    assert e2e["ops_per_vector"] > rows["e2e-avq-4x4-ste"]["ops_per_vector"]
    for r in rows.values():
        assert 0 < r["mean_sd_db"] < 10 and r["us_per_vector"] > 0
    text = (out / "results.md").read_text()
    assert "16 bits: best" not in text  # no avq-4x4-nsvq reference row in this run
    assert len(list((out / "codebooks").glob("*.cb"))) == 4
    assert envelope_sd.main(argv) == 0  # cached
    again = {r["config"]: r["mean_sd_db"] for r in json.loads((out / "results.json").read_text())}
    assert again == {k: r["mean_sd_db"] for k, r in rows.items()}


def test_ma_predictor_round_trip() -> None:
    """The MA wrapper reproduces the LSFs exactly with a lossless 'quantizer'."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((30, 4))
    offsets = np.array([0, 10, 30])
    r = envelope_sd.open_loop_targets(z, offsets)
    # z(n) = r(n) + r(n-1)/3 inside each file, r = z at each file start
    np.testing.assert_allclose(r[0], z[0])
    np.testing.assert_allclose(r[10], z[10])
    np.testing.assert_allclose(z[11:30], r[11:30] + r[10:29] / 3.0)
