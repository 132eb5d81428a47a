"""Benchmark: finishing a whole book on this machine, the way a render finishes it.

    .venv/bin/python bench/bench_finish_book.py [--minutes 60] [--chapters 8] [--workers 2] [--label after]
        [--tempo-engine auto|atempo|rubberband|rubberband-hq]

A book of ``--chapters`` chapters, ``--minutes`` of audio in all, is synthesized first (speech-like
takes of 3-14 s, bench_finish.synth_pieces, one seed per chapter; not timed). Then every chapter
goes through the whole finishing chain as delivery.finish_chapter runs it
(dia_core.audio.chain.finish_chapter_audio: time stretch at the default speed_factor 0.94 with
the default engine (ffmpeg atempo since session 6; Rubber Band R2 before) or ``--tempo-engine``,
stitch with room tone and pauses, gain + true-peak limiter, MP3 + FLAC; then the float master WAV,
VTT + SRT captions and the profile check of the MP3), ``--workers`` chapters at a time as the
produce flow does (--finish-workers). Timed: wall and CPU seconds (this process and its ffmpeg
children) of the whole book; ``x real time`` = seconds of finished audio per wall second.

On a tree without dia_core.audio.chain (before the finishing work of issue 18) the same steps run
through the functions that delivery used then (ffmpeg rubberband per take, chapters one at a time).
Results: ``<out>/finish-book-<date>.json`` (runs merged by label) and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_finish import SR, synth_pieces  # noqa: E402


def _cpu_s() -> float:
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def finish_one(pieces, settings, out: Path, cid: str, steps: dict, lock) -> dict:
    from dia_core.audio import captions, profiles
    from dia_core.audiofile import write_wav_float

    t = [time.perf_counter()]

    def step(name):
        now = time.perf_counter()
        with lock:
            steps[name] = steps.get(name, 0.0) + now - t[0]
        t[0] = now

    takes = [p.audio for p in pieces]
    speeds = [0.94] * len(pieces)
    boundaries = [p.boundary for p in pieces]
    ids = [p.segment_id for p in pieces]
    pieces.clear()
    try:
        from dia_core.audio import chain
        done = chain.finish_chapter_audio(takes, speeds, boundaries, ids, settings, seed=0,
                                          out_stem=out / cid, on_step=step)
        audio, spans, files, loud = done.audio, done.spans, done.files, done.loudness
    except ImportError:   # the tree before chain.py: delivery's steps of that time
        from dia_core.audio import dynamics, encode, stitch, tempo
        ps = [stitch.StitchPiece(tempo.change_tempo(a, v), b, i) for a, v, b, i in zip(takes, speeds, boundaries, ids)]
        takes.clear()
        step("tempo")
        st = stitch.stitch_chapter(ps, settings, seed=0)
        del ps
        step("stitch")
        audio, loud = dynamics.finish(st.audio, settings, spans=st.spans)
        spans = st.spans
        del st
        step("finish")
        files = encode.export_chapter(audio, out / cid, settings)
        step("export")
    write_wav_float(audio, out / f"{cid}.master.wav")
    cues = [captions.Cue(float(a), float(b), "narrator", f"piece {i}") for i, (a, b) in enumerate(spans)]
    captions.write_vtt(cues, out / f"{cid}.vtt")
    captions.write_srt(cues, out / f"{cid}.srt")
    step("master+captions")
    report = profiles.check_file(files["mp3"], settings)
    step("check")
    return {"id": cid, "seconds": len(audio) / SR, "passed": report.passed,
            "rms_db": report.measurements.rms_db, "true_peak_dbtp": report.measurements.true_peak_dbtp,
            "gain_iterations": loud.iterations}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--chapters", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="chapters finished at once (--finish-workers)")
    ap.add_argument("--profile", default="acx")
    ap.add_argument("--tempo-engine", default="auto", help="delivery.tempo_engine (auto: atempo)")
    ap.add_argument("--label", default="current")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()

    from dia_core.settings import DeliverySettings
    settings = replace(DeliverySettings(), profile=a.profile, formats=("mp3", "flac"), captions=("vtt", "srt"))
    if a.tempo_engine != "auto":   # (a tree before delivery.tempo_engine has only its default engine)
        settings = replace(settings, tempo_engine=a.tempo_engine)
    t0 = time.perf_counter()
    book = [synth_pieces(a.minutes / a.chapters, seed=i) for i in range(a.chapters)]
    synth_s = time.perf_counter() - t0
    steps, lock = {}, threading.Lock()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-finish-book-") as tmp:
        c0, t0 = _cpu_s(), time.perf_counter()
        with ThreadPoolExecutor(max_workers=a.workers) as ex:
            chapters = list(ex.map(lambda i: finish_one(book[i], settings, Path(tmp), f"ch{i + 1:02d}", steps, lock),
                                   range(a.chapters)))
        wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    audio_s = sum(c["seconds"] for c in chapters)
    run = {"label": a.label, "date": dt.date.today().isoformat(), "minutes": a.minutes, "chapters": a.chapters,
           "workers": a.workers, "profile": a.profile, "audio_s": round(audio_s, 1), "wall_s": round(wall, 1),
           "cpu_s": round(cpu, 1), "x_real_time": round(audio_s / wall, 1),
           "x_real_time_per_cpu_s": round(audio_s / cpu, 1), "synth_s": round(synth_s, 1),
           "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "all_passed":
           all(c["passed"] for c in chapters), "steps_thread_s": {k: round(v, 1) for k, v in steps.items()},
           "chapters_detail": chapters,
           "command": "bench/bench_finish_book.py " + " ".join(sys.argv[1:])}
    print(json.dumps({k: v for k, v in run.items() if k != "chapters_detail"}, indent=1))
    if a.no_save:
        return 0
    stem = Path(a.out) / f"finish-book-{run['date']}"
    data = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {"runs": []}
    data["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2 ** 30:.0f} GiB RAM, "
                       f"Python {platform.python_version()}, numpy {np.__version__}")
    data["runs"] = [r for r in data["runs"] if r["label"] != a.label] + [run]
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    lines = ["# Finishing a whole book (bench/bench_finish_book.py)", "", f"Machine: {data['machine']}.", "",
             "| label | audio min | chapters | workers | wall s | cpu s | x real time | x per CPU s | "
             "load before/after (1 min) | all pass | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for r in data["runs"]:
        lines.append(f"| {r['label']} | {r['audio_s'] / 60:.1f} | {r['chapters']} | {r['workers']} | {r['wall_s']} | "
                     f"{r['cpu_s']} | {r['x_real_time']} | {r['x_real_time_per_cpu_s']} | "
                     f"{r['load_before'][0]} / {r['load_after'][0]} | {r['all_passed']} | {r['peak_rss_mib']} |")
    lines += [""] + [f"- {r['label']}: `{r['command']}`; seconds per step summed over chapter threads: "
                     + ", ".join(f"{k} {v}" for k, v in r["steps_thread_s"].items()) for r in data["runs"]]
    if data.get("notes"):
        lines += ["", "## Notes", "", data["notes"]]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
