"""recipes/listening_page.py in a real headless Chromium (marked ``browser``).

Skips when Debian's ``chromium`` / ``chromedriver`` or ``selenium`` are absent
(``apt-get install -y chromium chromium-driver``; ``pip install selenium``).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recipes import listening_page  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

WAIT_AUDIO = """
const done = arguments[arguments.length - 1];
const els = Array.from(document.querySelectorAll("audio"));
Promise.all(els.map(a => new Promise(res => {
  const report = () => res({src: a.getAttribute("src"), ready: a.readyState,
                            duration: a.duration, error: a.error ? a.error.code : null});
  if (a.readyState >= 2 || a.error) { report(); return; }
  a.addEventListener("loadeddata", report, {once: true});
  a.addEventListener("error", report, {once: true});
  a.preload = "auto"; a.load();
}))).then(done);
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("listening")
    argv = ["--out", str(out), "--data", str(ROOT / "samples"), "--clips", "1", "--seconds", "3"]
    argv += ["--bitrates", "13.2", "--blind-bitrates", "13.2", "--metrics", "pesq,psnr"]
    argv += ["--post-filter"]
    assert listening_page.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def driver():  # type: ignore[no-untyped-def]
    if CHROMIUM is None or DRIVER is None:
        pytest.skip(
            "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1400,1000",
    ):
        opts.add_argument(flag)  # fmt: skip
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # explicit driver path: Selenium Manager (which may download) is never called
    d = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    d.set_script_timeout(60)
    yield d
    d.quit()


def _severe(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_files_written(page: Path) -> None:
    clips = json.loads((page / "clips.json").read_text())["clips"]
    systems = {s["system"] for s in clips[0]["stimuli"]}
    assert {"original", "svq", "svq+pf", "lp3.5k", "lp7k"} <= systems
    assert '"system": "svq+pf"' in (page / "blind.html").read_text()  # in the blind trial
    for st in clips[0]["stimuli"]:
        assert (page / st["wav"]).stat().st_size > 1000
        assert (page / st["png"]).stat().st_size > 1000
        if st["system"] != "original":
            assert st["metrics"]["pesq"] is not None


def test_index_loads_and_every_audio_decodes(page: Path, driver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    driver.get((page / "index.html").as_uri())
    states = driver.execute_async_script(WAIT_AUDIO)
    n_stimuli = len(json.loads((page / "clips.json").read_text())["clips"][0]["stimuli"])
    assert len(states) == n_stimuli
    for s in states:
        assert s["error"] is None and s["ready"] >= 2, s
        assert 2.9 < s["duration"] < 3.1, s
    imgs = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    assert imgs and all(w > 0 for _, w in imgs), imgs
    assert _severe(driver) == []
    shot = tmp_path / "index.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10000


def test_blind_mode_records_a_score(page: Path, driver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    driver.get((page / "blind.html").as_uri())
    states = driver.execute_async_script(WAIT_AUDIO)
    assert states and all(s["error"] is None and s["ready"] >= 2 for s in states), states
    sliders = driver.find_elements(By.CSS_SELECTOR, "#trial input.score")
    assert len(sliders) >= 4  # hidden reference, two low-pass anchors, svq (+ codec anchors)
    driver.find_element(By.ID, "listener").send_keys("tester")
    driver.execute_script(
        "arguments[0].value = 87; arguments[0].dispatchEvent(new Event('input'));", sliders[0]
    )
    driver.find_element(By.ID, "save").click()
    text = driver.execute_script("return window.svqMushra.csvText()")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(sliders)
    assert {r["listener"] for r in rows} == {"tester"}
    first = [r for r in rows if r["position"] == "A"][0]
    assert first["score"] == "87"
    assert "hidden-reference" in {r["system"] for r in rows}
    assert driver.find_element(By.ID, "count").text == str(len(sliders))
    driver.find_element(By.ID, "download").click()  # builds the Blob link without an error
    href = driver.find_element(By.ID, "csvlink").get_attribute("href")
    assert href.startswith("blob:")
    assert _severe(driver) == []
    shot = tmp_path / "blind.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 5000
