"""Benchmark: memory and time of finishing one long chapter (stitch, finish, measure, export, check).

    .venv/bin/python bench/bench_finish.py [--minutes 120] [--label after] [--chain] [--out bench/results]

A speech-like chapter is synthesized (deterministic for --seed): pieces of 3-14 s, each a run of
"syllables" (a low-passed sawtooth at a drifting f0 plus breath noise, under a raised-cosine
envelope of 120-300 ms) grouped into words with short gaps, piece levels spread over +-4 dB around -24 dBFS RMS, 0.15-0.4 s of
near-silence around each piece (what the stitcher trims). Boundary kinds cycle through the five
pause kinds, so the chapter has head/tail room tone and pauses like a real one.

Each stage runs in a FRESH subprocess and reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(the process's peak resident set, ffmpeg children not included) and wall time:

- ``stitch``:  synthesize the pieces (kept alive, as delivery.finish_chapter does), ``stitch_chapter``
- ``finish``:  load the stitched chapter, ``dynamics.finish(audio, settings, spans=...)``
- ``measure``: load the finished chapter, ``meter.measure`` (what check_audio does)
- ``export``:  load the finished chapter, ``encode.export_chapter`` to the default formats without
  m4b (mp3 for the default profile; m4b is a whole-book export), incl. the lossy-gain check
- ``check``:   ``profiles.check_file`` on the exported mp3 (decode + measure)
- ``chain`` (with --chain): all of the above in ONE process as delivery.finish_chapter does it
  (pieces, stitched chapter and finished chapter alive until the end, float master WAV written
  from ``audio.astype(np.float32)``, a copy)
- ``chain-lean`` (with --chain-lean): the same, dropping what is no longer needed as a caller could
  (the pieces once stitched, the stitched audio once finished, no copy for the master WAV)

``input MiB`` is ru_maxrss once the stage's inputs are loaded, ``peak MiB`` the peak of the whole
stage, ``+ MiB`` their difference (the stage's own working memory). The chapter size is
n_samples x 4 bytes (float32). Results go to ``<out>/finish-<date>.json`` (runs are merged by
label and minutes) and ``.md`` (regenerated from the json).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR = 44100
STAGES = ("stitch", "finish", "measure", "export", "check")
BOUNDARY_CYCLE = ("sentence", "turn", "sentence", "paragraph", "sentence", "turn", "scene")


# --------------------------------------------------------------------------------- synthesis

def synth_pieces(minutes: float, seed: int = 0):
    """Speech-like pieces whose stitched length is about ``minutes`` (StitchPiece list)."""
    from scipy.signal import lfilter

    from dia_core.audio.stitch import StitchPiece
    from dia_core.settings import DeliverySettings

    pauses = DeliverySettings().pauses
    rng = np.random.default_rng(seed)
    pieces, total, i = [], 0.0, 0
    target = minutes * 60.0
    while total < target:
        boundary = "chapter_start" if i == 0 else BOUNDARY_CYCLE[i % len(BOUNDARY_CYCLE)]
        speech = min(rng.uniform(3.0, 14.0), max(0.5, target - total))
        env = []
        t = 0.0
        while t < speech:                                  # words of 1-4 syllables, short gaps
            for _ in range(int(rng.integers(1, 5))):
                n = int(rng.uniform(0.12, 0.30) * SR)
                stress = 2.5 if rng.random() < 0.08 else 1.0     # stressed syllables: the limiter's work
                env.append((0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(n) + 0.5) / n)) ** 0.6
                           * rng.uniform(0.4, 1.0) * stress)
                t += n / SR
            gap = int(rng.uniform(0.04, 0.15) * SR)
            env.append(np.zeros(gap))
            t += gap / SR
        e = np.concatenate(env).astype(np.float32)
        # voiced part: a sawtooth at a drifting f0 (harmonics falling 6 dB/octave), plus breath
        # noise; both low-passed (one pole at ~1.5 kHz, then ~4 kHz) like speech's spectrum
        f0 = rng.uniform(95, 220) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * np.arange(len(e)) / SR))
        saw = (np.cumsum(f0 / SR) % 1.0).astype(np.float32) * 2 - 1
        src = saw + 0.3 * rng.standard_normal(len(e), dtype=np.float32)
        x = lfilter([0.35, 0.35], [1.0, -0.3], lfilter([0.2], [1.0, -0.8], src)).astype(np.float32) * e
        rms = float(np.sqrt(np.mean(np.square(x[e > 0.1], dtype=np.float64)))) or 1.0
        x *= np.float32(10 ** ((-24.0 + rng.uniform(-4, 4)) / 20) / rms)
        lead, trail = (int(rng.uniform(0.15, 0.4) * SR) for _ in range(2))
        quiet = lambda n: (rng.standard_normal(n, dtype=np.float32) * np.float32(1e-4))  # noqa: E731
        pieces.append(StitchPiece(np.concatenate([quiet(lead), x, quiet(trail)]), boundary, f"s{i:04d}"))
        total += len(x) / SR + (getattr(pauses, boundary) if i else pauses.chapter_start)
        i += 1
    return pieces


# ------------------------------------------------------------------------------------ stages

def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children (ffmpeg)."""
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def _settings(profile: str):
    from dia_core.settings import DeliverySettings
    return replace(DeliverySettings(), profile=profile)


def _loud(rep) -> dict:
    return {k: rep.after.to_dict()[k] for k in ("integrated_lufs", "true_peak_dbtp", "sample_peak_dbfs",
                                                "rms_db", "noise_floor_db")}


def run_stage(stage: str, wd: Path, minutes: float, seed: int, profile: str) -> dict:
    from dia_core.audio import dynamics, encode, meter, profiles, stitch

    settings = _settings(profile)
    info: dict = {"stage": stage}
    t0 = time.perf_counter()
    if stage in ("stitch", "chain", "chain-lean", "book-chain"):
        pieces = synth_pieces(minutes, seed)
        info["pieces"] = len(pieces)
    elif stage in ("finish",):
        audio = np.load(wd / "chapter.npy")
        spans = [tuple(s) for s in json.loads((wd / "spans.json").read_text())]
    elif stage in ("measure", "export"):
        audio = np.load(wd / "finished.npy")
    info["input_s"] = time.perf_counter() - t0
    info["input_mib"] = _maxrss_mib()

    t0 = time.perf_counter()
    c0 = _cpu_s()
    if stage == "stitch":
        st = stitch.stitch_chapter(pieces, settings, seed=seed)
        info["wall_s"] = time.perf_counter() - t0
        np.save(wd / "chapter.npy", st.audio)
        (wd / "spans.json").write_text(json.dumps(st.spans))
        info["samples"] = len(st.audio)
    elif stage == "finish":
        y, rep = dynamics.finish(audio, settings, spans=spans)
        info["wall_s"] = time.perf_counter() - t0
        np.save(wd / "finished.npy", y)
        info.update(iterations=rep.iterations, gain_db=round(rep.gain_db, 4),
                    limiter_db=round(rep.limiter_max_reduction_db, 4), after=_loud(rep))
    elif stage == "measure":
        m = meter.measure(audio)
        info["wall_s"] = time.perf_counter() - t0
        info["measurements"] = m.to_dict()
    elif stage == "export":
        files = encode.export_chapter(audio, wd / "chapter", settings)
        info["wall_s"] = time.perf_counter() - t0
        info["files"] = {k: os.path.getsize(v) for k, v in files.items()}
    elif stage == "check":
        r = profiles.check_file(wd / "chapter.mp3", settings)
        info["wall_s"] = time.perf_counter() - t0
        info["measurements"] = r.measurements.to_dict()
        info["passed"] = r.passed
    elif stage == "book-chain":   # the whole finishing chain of delivery.finish_chapter, as it runs now
        from dataclasses import replace as _replace

        from dia_core.audio import captions, tempo

        book = _replace(settings, formats=("mp3", "flac"), captions=("vtt", "srt"))
        steps = {}
        t = [time.perf_counter()]

        def step(name):
            steps[name] = [time.perf_counter() - t[0], _maxrss_mib()]
            t[0] = time.perf_counter()

        try:   # delivery's own chain (dia_core.audio.chain), where the tree has it
            from dia_core.audio import chain
            takes = [p.audio for p in pieces]
            meta = ([0.94] * len(pieces), [p.boundary for p in pieces], [p.segment_id for p in pieces])
            pieces = None
            done = chain.finish_chapter_audio(takes, *meta, book, seed=seed, out_stem=wd / "book", on_step=step)
            audio, rep, spans, files = done.audio, done.loudness, done.spans, done.files
            del done
        except ImportError:   # before issue 18's finishing work: the steps delivery ran then
            pieces = [stitch.StitchPiece(tempo.change_tempo(p.audio, 0.94), p.boundary, p.segment_id) for p in pieces]
            step("tempo")
            st = stitch.stitch_chapter(pieces, book, seed=seed)
            del pieces
            step("stitch")
            audio, rep = dynamics.finish(st.audio, book, spans=st.spans)
            spans, st = st.spans, None
            step("finish")
            files = encode.export_chapter(audio, wd / "book", book)
            step("export")
        t = time.perf_counter()
        import soundfile as sf
        sf.write(wd / "master.wav", audio, SR, subtype="FLOAT", format="WAV")
        cues = [captions.Cue(float(a), float(b), "narrator", f"piece {i}") for i, (a, b) in enumerate(spans)]
        captions.write_vtt(cues, wd / "book.vtt")
        captions.write_srt(cues, wd / "book.srt")
        steps["master+captions"] = [time.perf_counter() - t, _maxrss_mib()]
        t = time.perf_counter()
        r = profiles.check_file(files["mp3"], book)
        steps["check"] = [time.perf_counter() - t, _maxrss_mib()]
        info["wall_s"] = time.perf_counter() - t0
        info["steps"] = {k: [round(v[0], 2), round(v[1], 1)] for k, v in steps.items()}
        info["samples"] = len(audio)
        info["measurements"] = r.measurements.to_dict()
        info["passed"] = r.passed
        info["after"] = _loud(rep)
    elif stage in ("chain", "chain-lean"):   # delivery.finish_chapter, in one process
        lean = stage == "chain-lean"
        steps = {}
        t = time.perf_counter()
        st = stitch.stitch_chapter(pieces, settings, seed=seed)
        if lean:
            del pieces
        steps["stitch"] = [time.perf_counter() - t, _maxrss_mib()]
        t = time.perf_counter()
        audio, rep = dynamics.finish(st.audio, settings, spans=st.spans)
        if lean:
            st = None
        steps["finish"] = [time.perf_counter() - t, _maxrss_mib()]
        t = time.perf_counter()
        files = encode.export_chapter(audio, wd / "chain", settings)
        steps["export"] = [time.perf_counter() - t, _maxrss_mib()]
        t = time.perf_counter()
        import soundfile as sf
        sf.write(wd / "master.wav", audio if lean else audio.astype(np.float32), SR, subtype="FLOAT", format="WAV")
        steps["master"] = [time.perf_counter() - t, _maxrss_mib()]
        t = time.perf_counter()
        primary = next((files[f] for f in ("mp3", "flac", "wav") if f in files), None)
        r = profiles.check_file(primary, settings)
        steps["check"] = [time.perf_counter() - t, _maxrss_mib()]
        info["wall_s"] = time.perf_counter() - t0
        info["steps"] = {k: [round(v[0], 2), round(v[1], 1)] for k, v in steps.items()}
        info["samples"] = len(audio)
        info["measurements"] = r.measurements.to_dict()
        info["after"] = _loud(rep)
    info["peak_mib"] = _maxrss_mib()
    info["cpu_s"] = _cpu_s() - c0
    return info


# ----------------------------------------------------------------------------------- driver

def _md(data: dict) -> str:
    lines = ["# Finishing benchmark (bench/bench_finish.py)", "",
             f"Machine: {data['machine']}. Peak RSS = `ru_maxrss` of a fresh subprocess per stage "
             "(ffmpeg children not included); chapter = n_samples x 4 bytes (float32 mono 44.1 kHz). "
             "`input` = RSS once the stage's inputs are loaded (the synthesized pieces for stitch/chain, "
             "the chapter .npy otherwise), `+` = peak - input. `cpu s` = user + system CPU time of the "
             "stage (ffmpeg children included), steadier than wall time on a shared machine.", ""]
    runs = sorted(data["runs"], key=lambda r: (r["profile"], r["minutes"], r["label"] != "before", r["label"]))
    pairs = [(b, a) for b in runs for a in runs if b["label"] == "before" and a["label"] == "after"
             and (b["minutes"], b["profile"]) == (a["minutes"], a["profile"])]
    if pairs:
        lines += ["## Before / after", "", "| minutes | stage | peak MiB before | peak MiB after | "
                  "peak / chapter before | after | cpu s before | after |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for b, a in pairs:
            after = {st["stage"]: st for st in a["stages"]}
            for st in b["stages"]:
                if st["stage"] in after:
                    x = after[st["stage"]]
                    cpu = (f"{st['cpu_s']:.1f} | {x['cpu_s']:.1f}" if "cpu_s" in st and "cpu_s" in x
                           else f"- | {x.get('cpu_s', 0):.1f}")
                    lines.append(f"| {b['minutes']:g} | {st['stage']} | {st['peak_mib']:,.0f} | {x['peak_mib']:,.0f} | "
                                 f"{st['peak_mib'] / b['chapter_mib']:.1f} | {x['peak_mib'] / a['chapter_mib']:.1f} | {cpu} |")
        lines.append("")
    for run in runs:
        mib = run["chapter_mib"]
        lines += [f"## {run['label']}: {run['minutes']:g} min ({run['samples']:,} samples, chapter "
                  f"{mib:,.0f} MiB), profile {run['profile']}, {run['date']}", "",
                  "| stage | wall s | cpu s | input MiB | peak MiB | + MiB | peak / chapter |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for st in run["stages"]:
            cpu = f"{st['cpu_s']:.1f}" if "cpu_s" in st else "-"
            lines.append(f"| {st['stage']} | {st['wall_s']:.1f} | {cpu} | {st['input_mib']:,.0f} | {st['peak_mib']:,.0f} | "
                         f"{st['peak_mib'] - st['input_mib']:,.0f} | {st['peak_mib'] / mib:.2f} |")
        lines.append("")
        for st in run["stages"]:
            if st["stage"].startswith("chain") or st["stage"] == "book-chain":
                lines.append(f"{st['stage']} steps (seconds, ru_maxrss MiB after the step): " + ", ".join(
                    f"{k} {v[0]:.1f} s / {v[1]:,.0f}" for k, v in st["steps"].items()))
            if st["stage"] == "finish":
                lines.append(f"finish: {st['iterations']} iteration(s), gain {st['gain_db']:+.3f} dB, limiter "
                             f"{st['limiter_db']:.3f} dB; after: {json.dumps(st['after'])}")
            if st["stage"] == "check":
                lines.append(f"check_file (mp3): passed={st['passed']} {json.dumps(st['measurements'])}")
        lines.append("")
    if data.get("notes"):
        lines += ["## Notes", "", data["notes"], ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--label", default="current", help="name of this run in the results (e.g. before/after)")
    ap.add_argument("--profile", default="acx")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--chain", action="store_true", help="also run the whole chain in one process")
    ap.add_argument("--chain-lean", action="store_true", help="also run the chain dropping finished inputs")
    ap.add_argument("--book-chain", action="store_true",
                    help="also run the whole chain as a book's chapter: tempo, stitch, finish (gain, limiter), "
                         "MP3 + FLAC, master WAV, VTT + SRT captions, check of the MP3")
    ap.add_argument("--no-save", action="store_true", help="print only")
    ap.add_argument("--workdir", help="keep the intermediate files here (default: a temp dir), so that "
                                      "stages can be run by separate invocations (e.g. --stages stitch,finish "
                                      "then --stages measure,export,check); stages of one label merge")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.stage:   # child
        info = run_stage(a.stage, Path(a.workdir), a.minutes, a.seed, a.profile)
        print("RESULT " + json.dumps(info))
        return 0

    stages = [s for s in a.stages.split(",") if s] + (["chain"] if a.chain else []) + \
        (["chain-lean"] if a.chain_lean else []) + (["book-chain"] if a.book_chain else [])
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-finish-") as tmp:
        wd = a.workdir or tmp
        Path(wd).mkdir(parents=True, exist_ok=True)
        for stage in stages:
            cmd = [sys.executable, __file__, "--stage", stage, "--workdir", wd, "--minutes", str(a.minutes),
                   "--seed", str(a.seed), "--profile", a.profile]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(p.stdout, p.stderr, file=sys.stderr)
                return 1
            info = json.loads(next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))[7:])
            results.append(info)
            print(f"{stage:8s} wall {info['wall_s']:7.1f} s   cpu {info['cpu_s']:7.1f} s   input {info['input_mib']:8,.0f} MiB   "
                  f"peak {info['peak_mib']:8,.0f} MiB", flush=True)
    key = (a.label, a.minutes, a.profile)
    stem = Path(a.out) / f"finish-{dt.date.today().isoformat()}"
    data = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {}
    old = next((r for r in data.get("runs", []) if (r["label"], r["minutes"], r["profile"]) == key), None)
    if old and a.workdir:   # same label, stages run by separate invocations: merge them by name
        names = {r["stage"] for r in results}
        results = sorted([r for r in old["stages"] if r["stage"] not in names] + results,
                         key=lambda r: (STAGES + ("chain", "chain-lean", "book-chain")).index(r["stage"]))
    samples = next((r["samples"] for r in results if "samples" in r), 0)
    if not samples and (Path(wd) / "finished.npy").exists():
        samples = len(np.load(Path(wd) / "finished.npy", mmap_mode="r"))
    run = {"label": a.label, "minutes": a.minutes, "profile": a.profile, "seed": a.seed,
           "date": dt.date.today().isoformat(), "samples": samples, "chapter_mib": samples * 4 / 2 ** 20,
           "stages": results}
    print(json.dumps(run, indent=1))
    if a.no_save:
        return 0
    stem.parent.mkdir(parents=True, exist_ok=True)
    data["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2 ** 30:.0f} GiB RAM, "
                       f"Python {platform.python_version()}, numpy {np.__version__}")
    runs = [r for r in data.get("runs", []) if (r["label"], r["minutes"], r["profile"]) != key]
    data["runs"] = runs + [run]
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    stem.with_suffix(".md").write_text(_md(data))
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
