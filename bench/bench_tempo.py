"""Benchmark: the time-stretch engines (delivery.tempo_engine) on draft speech: CPU and DNSMOS.

    .venv/bin/python bench/bench_tempo.py [--speed 0.94] [--minutes 4]

Speech: espeak-ng (the draft engine's voices en-us, en-gb+m1, en-us+f3) reading four sentences of
prose each, seeds 0-3: twelve takes. Quality: DNSMOS (speechmos, the `qc.mos` instrument) of every
take stretched by each engine and unstretched, averaged. Cost: ``--minutes`` of those takes
(repeated) stretched by ``change_tempo_all`` with one worker; CPU seconds of this process and its
ffmpeg children per minute of input. Results: ``<out>/tempo-<date>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTS = ["The lighthouse keeper climbed the stairs every evening, counting each step as the wind rose over the bay.",
         "She had never seen the harbour so quiet; even the gulls seemed to wait for something to happen.",
         "In the morning, the boats returned with empty nets, and nobody spoke of what they had seen.",
         "He opened the old letter carefully, afraid that the paper would crumble in his hands."]
VOICES = ["en-us", "en-gb+m1", "en-us+f3"]


def _cpu_s() -> float:
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=0.94)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()

    from dia_core.audio import tempo
    from dia_core.listen.quality import MosEstimator
    from dia_core.params import SAMPLE_RATE
    from dia_core.production.engines import DraftEngine

    draft = DraftEngine({"narrator": None})
    takes = [draft._speak(t, v, i) for v in VOICES for i, t in enumerate(TEXTS)]
    mos = MosEstimator()
    engines = [e for e in tempo.ENGINES if e in tempo.available_engines()]
    rows = []
    for name in ["unstretched"] + engines:
        stretched = takes if name == "unstretched" else tempo.change_tempo_all(takes, [a.speed] * len(takes),
                                                                               engine=name, workers=1)
        scores = [mos.score(x, SAMPLE_RATE) for x in stretched]
        row = {"engine": name, **{k: round(float(np.mean([s[k] for s in scores])), 3) for k in scores[0]}}
        if name != "unstretched":
            per = int(a.minutes * 60 * SAMPLE_RATE)
            load, n = [], 0
            while n < per:
                load.append(takes[len(load) % len(takes)])
                n += len(load[-1])
            c0, t0 = _cpu_s(), time.perf_counter()
            tempo.change_tempo_all(load, [a.speed] * len(load), engine=name, workers=1)
            cpu, wall = _cpu_s() - c0, time.perf_counter() - t0
            minutes = n / SAMPLE_RATE / 60
            row.update(cpu_s_per_min=round(cpu / minutes, 3), x_real_time_per_cpu_s=round(minutes * 60 / cpu, 1),
                       wall_s=round(wall, 2), minutes=round(minutes, 2))
        rows.append(row)
        print(json.dumps(row))
    run = {"date": dt.date.today().isoformat(), "speed": a.speed, "takes": len(takes), "rows": rows,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
           "load_after": round(os.getloadavg()[0], 2), "command": "bench/bench_tempo.py " + " ".join(sys.argv[1:])}
    if a.no_save:
        return 0
    stem = Path(a.out) / f"tempo-{run['date']}"
    stem.with_suffix(".json").write_text(json.dumps(run, indent=1) + "\n")
    lines = ["# Time-stretch engines (bench/bench_tempo.py)", "", f"Machine: {run['machine']}; command: "
             f"`{run['command']}`; speed_factor {a.speed}; {len(takes)} espeak-ng takes; 1-min load after "
             f"{run['load_after']}.", "", "| engine | DNSMOS ovrl | sig | bak | p808 | CPU s per min of audio | "
             "x real time per CPU s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r.get('ovrl_mos')} | {r.get('sig_mos')} | {r.get('bak_mos')} | "
                     f"{r.get('p808_mos')} | {r.get('cpu_s_per_min', '')} | {r.get('x_real_time_per_cpu_s', '')} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
