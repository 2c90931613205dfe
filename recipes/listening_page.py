"""A static listening page: dev clips through svq at every bitrate and through each anchor.

``python -m recipes.listening_page --out DIR`` writes

``DIR/index.html``  per clip: the original beside svq at every bitrate and each live
                    anchor (:mod:`recipes.anchors`), each with its player, spectrogram
                    and metrics
``DIR/blind.html``  a MUSHRA-style blind test (ITU-R BS.1534): per clip and bitrate a
                    trial with the open reference, a hidden reference, the 3.5 kHz and
                    7 kHz low-pass anchors, svq and the codec anchors at that rate, in
                    random order; 0-100 sliders; the scores download as a CSV
``DIR/audio/``, ``DIR/spec/``, ``DIR/clips.json``

Everything is plain HTML and JavaScript with relative paths: open the files from
disk, no server and no network. Spectrograms are drawn with ``librosa.display``.

Example
-------
python -m recipes.listening_page --out out/listening --clips 3
python -m recipes.listening_page --out out/listening --files ls1034,p233 --seconds 6
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import codec
from codec.audio import SAMPLE_RATE, read_audio, to_mono_16k
from codec.errors import ParameterError
from codec.modes import BITRATES_KBPS, mode_for
from recipes import anchors
from recipes._common import DEFAULT_MANIFEST, audio_files, fmt_kbps, parse_floats, parse_names

__all__ = ["main", "build_parser"]

METRIC_NAMES = {"pesq": "PESQ-WB", "psnr": "pSNR dB", "dnsmos": "DNSMOS", "visqol": "ViSQOL"}
LOWPASS_ANCHORS = {"lp3.5k": 3500.0, "lp7k": 7000.0}


@dataclass
class Stimulus:
    """One decoded version of a clip."""

    system: str
    """``original``, ``svq``, an anchor name or a low-pass anchor."""
    kbps: float | None
    audio: np.ndarray
    payload_kbps: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    wav: str = ""
    png: str = ""

    @property
    def label(self) -> str:
        return self.system if self.kbps is None else f"{self.system} {fmt_kbps(self.kbps)}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9.]+", "-", self.label.lower()).strip("-")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[-60:]


def _lowpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, cutoff, btype="low", fs=SAMPLE_RATE, output="sos")
    return np.asarray(sosfiltfilt(sos, x), dtype=np.float64)


def _score(name: str, ref: np.ndarray, deg: np.ndarray) -> float:
    from codec import metrics as m

    if name == "pesq":
        return m.pesq_wb(ref, deg, SAMPLE_RATE)
    if name == "psnr":
        return m.psnr(ref, deg, SAMPLE_RATE)
    if name == "dnsmos":
        return m.dnsmos(deg, SAMPLE_RATE).ovrl
    if name == "visqol":
        return m.visqol_speech(ref, deg, SAMPLE_RATE)
    raise ValueError(name)


def _spectrogram(path: Path, x: np.ndarray, title: str) -> None:
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = librosa.amplitude_to_db(
        np.abs(librosa.stft(x.astype(np.float32), n_fft=512, hop_length=128)), ref=1.0, top_db=90
    )
    fig, ax = plt.subplots(figsize=(4.6, 1.9))
    librosa.display.specshow(
        s,
        sr=SAMPLE_RATE,
        hop_length=128,
        x_axis="time",
        y_axis="hz",
        ax=ax,
        cmap="magma",
        vmin=-90,
        vmax=0,
    )
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)
    ax.set_xlabel("")
    ax.set_ylabel("Hz", fontsize=6)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _write_wav(path: Path, x: np.ndarray) -> None:
    import soundfile as sf

    sf.write(path, np.clip(x, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")


def make_clip(
    path: Path,
    *,
    seconds: float,
    bitrates: Sequence[float],
    anchor_names: Sequence[str],
    metric_names: Sequence[str],
    post_filter: bool = False,
) -> tuple[np.ndarray, list[Stimulus]]:
    """The original excerpt and all its stimuli (svq, anchors, low-pass anchors), scored.

    With ``post_filter``, svq is also decoded with the trained post-filter on
    (``svq+pf``; :mod:`codec.postfilter`)."""
    audio, rate = read_audio(path)
    ref = to_mono_16k(audio, rate)[: int(seconds * SAMPLE_RATE)]
    stimuli = [Stimulus("original", None, ref)]
    for b in bitrates:
        data = codec.encode(ref, SAMPLE_RATE, b)
        y, _ = codec.decode(data)
        stimuli.append(Stimulus("svq", b, np.asarray(y, dtype=np.float64)[: ref.size], b))
        if post_filter:
            y, _ = codec.decode(data, enhance=True)
            stimuli.append(Stimulus("svq+pf", b, np.asarray(y, dtype=np.float64)[: ref.size], b))
    for name in anchor_names:
        for r in anchors.anchor_rates(name, list(bitrates)):
            out = anchors.run_anchor(name, ref, r)
            stimuli.append(Stimulus(name, r, out.audio, out.payload_kbps))
    for name, cutoff in LOWPASS_ANCHORS.items():
        stimuli.append(Stimulus(name, None, _lowpass(ref, cutoff)))
    for st in stimuli:
        for m in metric_names:
            try:
                st.metrics[m] = _score(m, ref, st.audio)
            except Exception as exc:  # noqa: BLE001 - a metric that cannot score is shown as such
                print(f"note: {m} failed on {path.name} {st.label}: {exc}", file=sys.stderr)
                st.metrics[m] = math.nan
    return ref, stimuli


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em;max-width:1400px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
img.spec{height:110px;display:block}audio{width:230px}
.trial{border:1px solid #bbb;padding:.6em 1em;margin:1em 0;border-radius:6px}
.row{display:flex;align-items:center;gap:1em;margin:.3em 0}
.row label{width:4em;font-weight:bold}.row input[type=range]{width:320px}
.row output{width:2.5em;text-align:right}.hidden{display:none}
button{padding:.35em .9em;margin:.2em}.note{color:#555;font-size:.9em}
"""


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def index_html(clips: list[dict[str, Any]], metric_names: Sequence[str], command: str) -> str:
    """The browsing page."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>svq listening page</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>svq listening page</h1>",
        f"<p class='note'>codec {html.escape(codec.__version__)}; made by "
        f"<code>{html.escape(command)}</code>. Metrics against the original excerpt "
        "(DNSMOS needs no reference). <a href='blind.html'>Blind test (MUSHRA-style)</a></p>",
    ]
    heads = "".join(f"<th>{METRIC_NAMES[m]}</th>" for m in metric_names)
    for clip in clips:
        parts.append(f"<h2 id='{clip['id']}'>{html.escape(clip['name'])}</h2>")
        parts.append(
            "<table><tr><th>system</th><th>kbit/s</th><th>measured</th>"
            f"<th>listen</th>{heads}<th>spectrogram</th></tr>"
        )
        for st in clip["stimuli"]:
            cells = "".join(
                f"<td class='num'>{_fmt(st['metrics'].get(m))}</td>" for m in metric_names
            )
            parts.append(
                f"<tr><td>{html.escape(st['system'])}</td>"
                f"<td class='num'>{_fmt(st['kbps'])}</td>"
                f"<td class='num'>{_fmt(st['payload_kbps'])}</td>"
                f"<td><audio controls preload='metadata' src='{st['wav']}'></audio></td>"
                f"{cells}<td><img class='spec' alt='spectrogram {html.escape(st['label'])}' "
                f"src='{st['png']}'></td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


BLIND_JS = r"""
"use strict";
const TRIALS = JSON.parse(document.getElementById("trials").textContent);
const state = {listener: "", index: 0, scores: [], order: {}};
function shuffle(a) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
function solo(el) {
  el.addEventListener("play", () => {
    document.querySelectorAll("audio").forEach(a => { if (a !== el) a.pause(); });
  });
}
function stopAll() {
  document.querySelectorAll("audio").forEach(a => { a.pause(); a.currentTime = 0; });
}
function render() {
  const box = document.getElementById("trial");
  box.innerHTML = "";
  const done = state.index >= TRIALS.length;
  document.getElementById("done").classList.toggle("hidden", !done);
  if (done) { return; }
  const t = TRIALS[state.index];
  if (!state.order[state.index]) {
    state.order[state.index] = shuffle(t.stimuli.map((_, i) => i));
  }
  const h = document.createElement("h2");
  h.textContent = `Trial ${state.index + 1} of ${TRIALS.length}: ${t.title}`;
  box.appendChild(h);
  const ref = document.createElement("div");
  ref.className = "row";
  ref.innerHTML = "<label>Ref</label>";
  const ra = document.createElement("audio");
  ra.controls = true; ra.preload = "metadata"; ra.src = t.reference;
  solo(ra);
  ref.appendChild(ra);
  box.appendChild(ref);
  state.order[state.index].forEach((k, pos) => {
    const s = t.stimuli[k];
    const row = document.createElement("div");
    row.className = "row";
    const lab = document.createElement("label");
    lab.textContent = String.fromCharCode(65 + pos);
    const au = document.createElement("audio");
    au.controls = true; au.preload = "metadata"; au.src = s.wav;
    solo(au);
    const sl = document.createElement("input");
    sl.type = "range"; sl.min = 0; sl.max = 100; sl.value = 50; sl.dataset.stimulus = k;
    sl.className = "score";
    const out = document.createElement("output");
    out.textContent = "50";
    sl.addEventListener("input", () => { out.textContent = sl.value; });
    row.append(lab, au, sl, out);
    box.appendChild(row);
  });
}
function saveTrial() {
  const t = TRIALS[state.index];
  stopAll();
  state.listener = document.getElementById("listener").value.trim() || "anonymous";
  document.querySelectorAll("#trial input.score").forEach((sl, pos) => {
    const s = t.stimuli[Number(sl.dataset.stimulus)];
    state.scores = state.scores.filter(r => !(r.trial === state.index && r.system === s.system));
    state.scores.push({trial: state.index, clip: t.clip, kbps: t.kbps,
                       position: String.fromCharCode(65 + pos), system: s.system,
                       stimulus_kbps: s.kbps, score: Number(sl.value)});
  });
  state.index += 1;
  render();
  document.getElementById("count").textContent = String(state.scores.length);
}
function csvText() {
  const q = v => `"${String(v === null || v === undefined ? "" : v).replace(/"/g, '""')}"`;
  const lines = ["listener,trial,clip,trial_kbps,position,system,stimulus_kbps,score"];
  state.scores.forEach(r => lines.push([state.listener, r.trial + 1, r.clip, r.kbps, r.position,
    r.system, r.stimulus_kbps, r.score].map(q).join(",")));
  return lines.join("\n") + "\n";
}
function download() {
  const blob = new Blob([csvText()], {type: "text/csv"});
  const a = document.getElementById("csvlink");
  a.href = URL.createObjectURL(blob);
  a.download = `mushra-${(state.listener || "anonymous").replace(/[^A-Za-z0-9_-]/g, "_")}.csv`;
  a.click();
}
window.svqMushra = {state, csvText, saveTrial, render};
document.getElementById("save").addEventListener("click", saveTrial);
document.getElementById("back").addEventListener("click", () => {
  if (state.index > 0) { state.index -= 1; render(); }
});
document.getElementById("download").addEventListener("click", download);
render();
"""


def blind_html(trials: list[dict[str, Any]]) -> str:
    """The MUSHRA-style page (systems hidden, order shuffled per trial in the browser)."""
    data = json.dumps(trials).replace("</", "<\\/")
    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            "<title>svq blind listening test</title>",
            f"<style>{CSS}</style></head><body>",
            "<h1>Blind listening test (MUSHRA-style)</h1>",
            "<p class='note'>Listen to the reference (Ref), then rate every item A, B, ... "
            "from 0 (bad) to 100 (excellent, indistinguishable from Ref). One item is the "
            "hidden reference: rate it 100. Items are in random order; the systems are hidden. "
            "Save each trial, then download your scores as CSV. "
            "<a href='index.html'>Back to the listening page</a></p>",
            "<p>Listener name: <input id='listener' size='20' placeholder='your name'></p>",
            "<div id='trial' class='trial'></div>",
            "<p><button id='back'>Previous trial</button>"
            "<button id='save'>Save scores and next trial</button>"
            "<button id='download'>Download CSV</button> "
            "<span class='note'>scores saved: <span id='count'>0</span></span>"
            "<a id='csvlink' class='hidden'>csv</a></p>",
            "<p id='done' class='hidden'><b>All trials done.</b> Download the CSV.</p>",
            f"<script type='application/json' id='trials'>{data}</script>",
            f"<script>{BLIND_JS}</script>",
            "</body></html>",
        ]
    )


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m recipes.listening_page",
        description="Write a static listening page (and a blind MUSHRA-style test) for a few "
        "clips: the original beside svq at every bitrate and each live anchor.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data", default=str(DEFAULT_MANIFEST), help="folder or manifest CSV")
    p.add_argument("--split", default="dev", help="manifest split (default: %(default)s)")
    p.add_argument("--clips", type=int, default=3, help="number of clips (default: %(default)s)")
    p.add_argument(
        "--files",
        default="",
        help="comma-separated parts of file names to pick clips by (instead of the first N)",
    )
    p.add_argument("--seconds", type=float, default=8.0, help="excerpt length (default: 8)")
    p.add_argument(
        "--bitrates",
        default=",".join(fmt_kbps(b) for b in BITRATES_KBPS),
        help="svq bitrates (default: %(default)s)",
    )
    p.add_argument(
        "--anchors", default=",".join(anchors.ANCHORS), help="anchors (default: %(default)s)"
    )
    p.add_argument(
        "--metrics",
        default="pesq,psnr,dnsmos",
        help="metrics per stimulus from pesq,psnr,dnsmos,visqol (default: %(default)s)",
    )
    p.add_argument(
        "--post-filter",
        action="store_true",
        help="also svq with the trained decoder post-filter on (svq+pf), in the page and trials",
    )
    p.add_argument(
        "--blind-bitrates",
        default="8,13.2",
        help="bitrates with a blind trial per clip (default: %(default)s)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Write the pages; returns the exit status."""
    import shlex

    p = build_parser()
    args = p.parse_args(argv)
    try:
        bitrates = [mode_for(b).bitrate_kbps for b in parse_floats(args.bitrates)]
        blind_rates = [mode_for(b).bitrate_kbps for b in parse_floats(args.blind_bitrates)]
    except (ValueError, ParameterError) as exc:
        p.error(f"bitrates: {exc}")
    blind_rates = [b for b in blind_rates if b in bitrates]
    metric_names = parse_names(args.metrics)
    for m in metric_names:
        if m not in METRIC_NAMES:
            p.error(f"--metrics: {m!r} is not one of {', '.join(METRIC_NAMES)}")
    if args.clips < 1 or args.seconds <= 0:
        p.error("--clips and --seconds must be positive")
    wanted = parse_names(args.anchors)
    for a in wanted:
        if a not in anchors.ANCHORS:
            p.error(f"--anchors: {a!r} is not one of {', '.join(anchors.ANCHORS)}")
    anchor_names, notes = anchors.available_anchors(wanted)
    for n in notes:
        print(n, file=sys.stderr)
    try:
        files = audio_files(args.data, split=args.split)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.files:
        keys = [k for k in args.files.split(",") if k.strip()]
        picked = []
        for k in keys:
            hits = [f for f in files if k.strip() in f.name]
            if not hits:
                print(f"error: --files: no {args.split} file name contains {k!r}", file=sys.stderr)
                return 2
            picked.append(hits[0])
        files = picked
    else:
        files = files[: args.clips]

    out = Path(args.out)
    command = "python -m recipes.listening_page " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    clips, trials = [], []
    for ci, f in enumerate(files):
        cid = f"clip{ci + 1}"
        (out / "audio" / cid).mkdir(parents=True, exist_ok=True)
        (out / "spec" / cid).mkdir(parents=True, exist_ok=True)
        print(f"{cid}: {f.name}", file=sys.stderr)
        _, stimuli = make_clip(
            f,
            seconds=args.seconds,
            bitrates=bitrates,
            anchor_names=anchor_names,
            metric_names=metric_names,
            post_filter=args.post_filter,
        )
        for st in stimuli:
            st.wav = f"audio/{cid}/{st.slug}.wav"
            st.png = f"spec/{cid}/{st.slug}.png"
            _write_wav(out / st.wav, st.audio)
            _spectrogram(out / st.png, st.audio, f"{f.name[-40:]} · {st.label}")
        rows = [
            {
                "system": st.system,
                "kbps": st.kbps,
                "label": st.label,
                "payload_kbps": st.payload_kbps,
                "metrics": {k: (v if math.isfinite(v) else None) for k, v in st.metrics.items()},
                "wav": st.wav,
                "png": st.png,
            }
            for st in stimuli
        ]
        clips.append({"id": cid, "name": f.name, "path": str(f), "stimuli": rows})
        by = {st.label: st for st in stimuli}
        for b in blind_rates:
            items = [by["original"], by["lp3.5k"], by["lp7k"], by[f"svq {fmt_kbps(b)}"]]
            if args.post_filter:
                items.append(by[f"svq+pf {fmt_kbps(b)}"])
            for name in anchor_names:
                for r in anchors.anchor_rates(name, [b]):
                    if anchors.column_rate(name, r, [b]) is not None:
                        items.append(by[f"{name} {fmt_kbps(r)}"])
            trials.append(
                {
                    "clip": f.name,
                    "kbps": b,
                    "title": f"clip {ci + 1}, about {fmt_kbps(b)} kbit/s",
                    "reference": by["original"].wav,
                    "stimuli": [
                        {
                            "system": "hidden-reference" if st.system == "original" else st.system,
                            "kbps": st.kbps,
                            "wav": st.wav,
                        }
                        for st in items
                    ],
                }
            )
    (out / "index.html").write_text(index_html(clips, metric_names, command))
    (out / "blind.html").write_text(blind_html(trials))
    (out / "clips.json").write_text(json.dumps({"command": command, "clips": clips}, indent=1))
    print(f"wrote {out / 'index.html'} and {out / 'blind.html'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
