"""recipes.ann_search --quick end to end: logmel on the shared speech, sift when cv2 is there."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from recipes import ann_search
from recipes._common import SHARED_SPEECH

KEYS = (
    "dataset",
    "variant",
    "method",
    "bits",
    "recall_at_1",
    "recall_at_10",
    "recall_at_100",
    "encode_us",
    "search_ms",
)


def _check(out: Path, dataset: str, n_rows: int) -> list[dict[str, object]]:
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == n_rows
    for r in rows:
        assert all(k in r for k in KEYS)
        assert r["dataset"] == dataset
        r1, r10, r100 = r["recall_at_1"], r["recall_at_10"], r["recall_at_100"]
        assert 0.0 <= r1 <= r10 <= r100 <= 1.0
        assert r["encode_us"] > 0 and r["search_ms"] > 0
    md = (out / "results.md").read_text()
    assert "SIFT1M itself is not reachable" in md and "| R@1 |" in md
    assert (out / "ann_recall.png").stat().st_size > 1000
    return rows


def test_quick_logmel(tmp_path: Path) -> None:
    if not (SHARED_SPEECH / "manifest.csv").exists():
        pytest.skip(f"shared speech data {SHARED_SPEECH} is absent")
    out = tmp_path / "ann"
    argv = ["--out", str(out), "--quick", "--datasets", "logmel", "--bits", "32", "--quiet"]
    argv += ["--variants", "pvq,rvq,avq", "--methods", "kmeans,nsvq"]
    no_faiss = importlib.util.find_spec("faiss") is None
    if no_faiss:
        argv.append("--no-faiss")
    assert ann_search.main(argv) == 0
    rows = _check(out, "logmel", 6 if no_faiss else 9)
    assert {(r["variant"], r["method"]) for r in rows} >= {("avq", "nsvq"), ("pvq", "kmeans")}
    assert all(r["bits"] == 16 for r in rows)  # 4 codebooks x 16 codewords in --quick


def test_quick_sift(tmp_path: Path) -> None:
    if importlib.util.find_spec("cv2") is None or importlib.util.find_spec("skimage") is None:
        pytest.skip("cv2 / scikit-image not installed (pip install 'svq[ann]')")
    out = tmp_path / "ann"
    argv = ["--out", str(out), "--quick", "--datasets", "sift", "--bits", "32", "--quiet"]
    argv += ["--variants", "pvq,rvq", "--methods", "kmeans", "--no-faiss"]
    assert ann_search.main(argv) == 0
    _check(out, "sift", 2)


def test_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--datasets", "sift1m"], ["--bits", "12"], ["--variants", "xyz"]):
        with pytest.raises(SystemExit) as exc:
            ann_search.main(["--out", str(tmp_path), *argv])
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "expected names from" in err and "multiple of 8" in err


def test_missing_speech_data_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--out", str(tmp_path), "--quick", "--datasets", "logmel", "--quiet"]
    argv += ["--data", str(tmp_path / "nowhere.csv"), "--no-faiss"]
    assert ann_search.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --data") and "\n" not in err
