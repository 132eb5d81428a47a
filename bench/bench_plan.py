"""Benchmark: plan a synthetic N-word manuscript (default 100k words) and print words/s.

    .venv/bin/python bench/bench_plan.py [--words 100000] [--repeat 3] [--worst]

--worst: the same number of words as ONE paragraph without any punctuation (12 words a line), so
every segment is cut at words inside one enormous "sentence" (the slowest path of the planner).

The manuscript mixes narration paragraphs (2-8 sentences), dialogue runs between three
characters and scene breaks, over 40 chapters; voices are seed-only so no audio is needed.
Record results in bench/results/plan-<date>.md.
"""
from __future__ import annotations

import argparse
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dia_core.script.manuscript import parse_project_manuscripts  # noqa: E402
from dia_core.script.planner import plan_chapters  # noqa: E402
from dia_core.script.project import load_project  # noqa: E402

WORDS = ("the a of and to in was that it he she said with for on as his her at by had from they "
         "lantern harbour island letter storm window keeper ferry morning evening water stone quietly "
         "remember because another nothing always somewhere anyone village together whisper").split()

MANIFEST = """title: Bench
author: Bench
manuscript: book.md
voices:
  narrator: {seed: 1}
  anna: {seed: 2}
  ben: {seed: 3}
  cleo: {seed: 4}
characters: {ANNA: anna, BEN: ben, CLEO: cleo}
narrator_voice: narrator
lexicon: {Caerwyn: Kair-win, Dr.: Doctor}
"""


def sentence(rng: random.Random) -> tuple[str, int]:
    n = rng.randint(4, 28)
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.3:
        words.insert(rng.randint(1, n - 1), words.pop() + ",")
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".....?!"), n


def manuscript(total_words: int, seed: int = 0) -> tuple[str, int]:
    rng = random.Random(seed)
    out, count, chapter = [], 0, 0
    per_chapter = max(1, total_words // 40)
    while count < total_words:
        chapter += 1
        out.append(f"# Chapter {chapter}\n")
        cw = 0
        while cw < per_chapter and count + cw < total_words:
            r = rng.random()
            if r < 0.6:
                para = []
                for _ in range(rng.randint(2, 8)):
                    s, n = sentence(rng)
                    para.append(s)
                    cw += n
                out.append(" ".join(para) + "\n")
            elif r < 0.95:
                for _ in range(rng.randint(2, 6)):
                    s, n = sentence(rng)
                    out.append(f"{rng.choice(['ANNA', 'BEN', 'CLEO'])}: {s}\n")
                    cw += n
            else:
                out.append("* * *\n")
        count += cw
    return "\n".join(out), count


def worst_manuscript(total_words: int, seed: int = 0) -> tuple[str, int]:
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(total_words)]
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return "# One\n\n" + "\n".join(lines) + "\n", total_words


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worst", action="store_true", help="one paragraph, no punctuation")
    args = ap.parse_args()
    text, words = (worst_manuscript if args.worst else manuscript)(args.words)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "project.yaml").write_text(MANIFEST)
        (root / "book.md").write_text(text)
        best = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            project = load_project(root / "project.yaml")
            t1 = time.perf_counter()
            chapters, warnings = parse_project_manuscripts(project)
            t2 = time.perf_counter()
            plan = plan_chapters(project, chapters, warnings, total_chapters=len(chapters))
            t3 = time.perf_counter()
            times = (t1 - t0, t2 - t1, t3 - t2, t3 - t0)
            best = times if best is None or times[3] < best[3] else best
        n_seg = len(plan.segments)
        secs = sum(s.est_seconds for s in plan.segments)
    load, parse, seg, total = best
    print(f"python {platform.python_version()} on {platform.machine()}, {len(text.encode()) / 1e6:.2f} MB manuscript")
    print(f"words: {words}, chapters: {len(plan.chapters)}, segments: {n_seg}, "
          f"est. audio: {secs / 3600:.1f} h, mean segment {secs / n_seg:.1f} s")
    print(f"load {load * 1000:.0f} ms, parse {parse * 1000:.0f} ms, plan {seg * 1000:.0f} ms, "
          f"total {total:.3f} s (best of {args.repeat})")
    print(f"{words / total:,.0f} words/s; {total / words * 10_000 * 1000:.0f} ms per 10k words")


if __name__ == "__main__":
    main()
