"""Benchmark: listening cost, CPU seconds per minute of audio, per instrument.

    .venv/bin/python bench/bench_listen.py [--projects projects/podcast-episode/project.yaml ...] [--out bench/results]

Every segment of the given projects is spoken by the draft engine (espeak-ng), then each instrument
measures every take: PocketSphinx with the segment's own language model (what `qc.asr: pocketsphinx`
runs), PocketSphinx free recognition with its general English model (for comparison, first 5 takes
only: it is slow), Resemblyzer's embedding (whole take), DNSMOS (speechmos). CPU seconds are
``time.process_time`` (all threads of this process); torch is limited to one thread so that the
number is the instrument's work, not idle spinning. Whisper is not measured: this machine has no
GPU and no Whisper weights. Results: ``<out>/listen-<date>.md``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dia_core.production.engines import TakeRequest  # noqa: E402
from dia_core.production.jobs import open_job  # noqa: E402
from dia_core.production.options import RenderOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def takes_of(project: str) -> list[tuple[str, np.ndarray]]:
    job = open_job(project, RenderOptions(draft=True, store="/tmp/bench-listen-store"))
    segs = job.plan.segments
    made = job.engine.generate([TakeRequest(s.text, s.prompt_text, dict(s.slots), s.seed, s.sampling) for s in segs], {})
    return [(s.text, t.audio) for s, t in zip(segs, made)]


def timed(fn, items) -> tuple[float, float, float]:
    """(CPU s, wall s, audio s)."""
    cpu, wall, audio = time.process_time(), time.perf_counter(), 0.0
    for text, a in items:
        fn(text, a)
        audio += len(a) / 44100
    return time.process_time() - cpu, time.perf_counter() - wall, audio


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", nargs="+", default=[str(ROOT / "projects/short-audiobook/project.yaml"),
                                                      str(ROOT / "projects/podcast-episode/project.yaml")])
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from dia_core.listen.quality import MosEstimator
    from dia_core.listen.voice import SpeakerEncoder
    from dia_core.listen.words import PocketSphinxRecognizer

    items = [t for p in args.projects for t in takes_of(p)]
    ps, enc, mos = PocketSphinxRecognizer(), SpeakerEncoder(), MosEstimator()
    from pocketsphinx import Decoder
    free = Decoder(samprate=16000, loglevel="FATAL")

    def free_decode(_text, a):
        from dia_core.listen.words import _pcm16k
        free.start_utt()
        free.process_raw((_pcm16k(a) * 32767).astype(np.int16).tobytes(), full_utt=True)
        free.end_utt()

    rows = [("pocketsphinx, text language model (qc.asr)", timed(lambda t, a: ps.transcribe(a, t), items)),
            ("pocketsphinx, free recognition (general LM), 5 takes", timed(free_decode, items[:5])),
            ("resemblyzer embedding (qc.voice_check)", timed(lambda t, a: enc.embed(a), items)),
            ("dnsmos (qc.mos)", timed(lambda t, a: mos.score(a), items))]
    lines = [f"# Listening cost ({dt.date.today().isoformat()})", "",
             f"Command: `{' '.join(['.venv/bin/python', 'bench/bench_listen.py', *sys.argv[1:]])}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared: other jobs were running, so wall "
             f"times are inflated; CPU seconds are this process's own), no GPU; Python {platform.python_version()}, "
             f"torch threads 1. Audio: {len(items)} draft (espeak-ng) takes of {', '.join(Path(p).parent.name for p in args.projects)}.",
             "", "| instrument | takes | audio s | CPU s | CPU s per minute of audio | wall s |", "|---|---|---|---|---|---|"]
    for name, (cpu, wall, audio) in rows:
        n = 5 if "5 takes" in name else len(items)
        lines.append(f"| {name} | {n} | {audio:.1f} | {cpu:.1f} | {cpu / audio * 60:.1f} | {wall:.1f} |")
    lines += ["", "Whisper (`qc.asr: whisper`, production) is not measured here: no GPU and no Whisper weights on this machine."]
    out = Path(args.out) / f"listen-{dt.date.today().isoformat()}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
