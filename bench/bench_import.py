"""Benchmark: import a generated N-word EPUB 3 (default 100k words) and plan the project it makes.

    .venv/bin/python bench/bench_import.py [--words 100000] [--cast]

The book: 40 chapters (one XHTML document each, a nav TOC, a cover, a title page and a copyright
page to leave out), narration paragraphs with numbers, dates and abbreviations for the normalizer,
quoted dialogue between three characters with speech tags, footnotes and scene breaks. The import
and the plan run in a fresh child process so that its peak resident memory (ru_maxrss) is theirs
alone; the plan is timed with text normalization on and off. Record results in
bench/results/import-<date>.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ("the a of and to in was that it he she with for on as his her at by had from they lantern harbour island "
         "letter storm window keeper ferry morning evening water stone quietly remember because another nothing "
         "always somewhere anyone village together whisper").split()
NAMES = ("Anna", "Ben", "Cleo")
EXTRAS = ("In 1984, at 3:15 p.m., Dr. Vance paid $4.50 for the lamp.", "It was 12% dearer on March 3, 2024.",
          "They met at 42 Baker St. in the 1920s.", "Chapter XIV of the log was missing.")


def _xhtml(body: str, attrs: str = "") -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
            f'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>t</title></head><body{attrs}>{body}</body></html>')


def _sentence(rng: random.Random) -> tuple[str, int]:
    n = rng.randint(4, 24)
    words = [rng.choice(WORDS) for _ in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice("....?!"), n


def make_epub(path: Path, total_words: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    per_chapter = total_words // 40
    docs, count = [], 0
    for c in range(1, 41):
        parts, cw = [f"<h1>Chapter {c}</h1>"], 0
        while cw < per_chapter:
            r = rng.random()
            if r < 0.55:
                sents = [_sentence(rng) for _ in range(rng.randint(2, 7))]
                if rng.random() < 0.1:
                    sents.append((rng.choice(EXTRAS), 10))
                parts.append("<p>" + " ".join(s for s, _ in sents) + "</p>")
                cw += sum(n for _, n in sents)
            elif r < 0.95:
                s, n = _sentence(rng)
                tag = rng.choice(["said {}", "{} asked", "replied {}"]).format(rng.choice(NAMES))
                parts.append(f"<p>“{s[:-1]},” {tag}.</p>")
                cw += n + 2
            elif r < 0.98:
                parts.append("<hr/>")
            else:
                parts.append('<p>A note.<a epub:type="noteref" href="#n">1</a></p>'
                             '<aside epub:type="footnote" id="n"><p>Footnote text.</p></aside>')
                cw += 2
        count += cw
        docs.append((f"ch{c:02d}.xhtml", _xhtml("\n".join(parts))))
    nav = _xhtml('<nav epub:type="toc"><ol>' + "".join(f'<li><a href="{n}">Chapter {i}</a></li>'
                                                         for i, (n, _) in enumerate(docs, 1)) + "</ol></nav>")
    extra = [("nav.xhtml", nav, ' properties="nav"'), ("title.xhtml", _xhtml("<h1>Bench</h1>", ' epub:type="titlepage"'), ""),
             ("copyright.xhtml", _xhtml("<p>Copyright 2026. All rights reserved.</p>"), "")]
    items = extra + [(n, d, "") for n, d in docs]
    manifest = "".join(f'<item id="i{k}" href="{n}" media-type="application/xhtml+xml"{p}/>' for k, (n, _, p) in enumerate(items))
    spine = "".join(f'<itemref idref="i{k}"/>' for k in range(1, len(items))) + '<itemref idref="i0"/>'
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="u">'
           '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="u">bench</dc:identifier>'
           '<dc:title>Bench Book</dc:title><dc:creator>Bench Writer</dc:creator><dc:language>en</dc:language></metadata>'
           f'<manifest>{manifest}</manifest><spine>{spine}</spine></package>')
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:'
                   'tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" '
                   'media-type="application/oebps-package+xml"/></rootfiles></container>')
        z.writestr("OEBPS/content.opf", opf, compress_type=zipfile.ZIP_DEFLATED)
        for n, d, _ in items:
            z.writestr(f"OEBPS/{n}", d, compress_type=zipfile.ZIP_DEFLATED)
    return count


def child(epub: str, out: str, cast: bool) -> None:
    from dia_core.importer import import_book
    from dia_core.script.planner import plan_project
    from dia_core.script.project import load_project
    t0 = time.perf_counter()
    result = import_book(epub, out, cast=cast)
    t1 = time.perf_counter()
    project = load_project(Path(out) / "project.yaml")
    plan = plan_project(project)
    t2 = time.perf_counter()
    plain = plan_project(dataclasses.replace(project, normalize=False))
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "plan_s": t2 - t1, "plan_no_normalize_s": t3 - t2,
                      "chapters": len(plan.chapters), "segments": len(plan.segments),
                      "normalized": sum(len(c.normalized) for c in plan.chapters), "attributed": result.attributed,
                      "left_out": len(result.book.left_out), "est_hours": sum(s.est_seconds for s in plan.segments) / 3600,
                      "unnormalized_segments": len(plain.segments),
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=100_000)
    ap.add_argument("--cast", action="store_true", help="also attribute dialogue (import --cast)")
    ap.add_argument("--child", nargs=2, metavar=("EPUB", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child, args.cast)
    with tempfile.TemporaryDirectory() as d:
        epub = Path(d) / "bench.epub"
        words = make_epub(epub, args.words)
        cmd = [sys.executable, __file__, "--child", str(epub), str(Path(d) / "project")] + (["--cast"] if args.cast else [])
        t0 = time.perf_counter()
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        wall = time.perf_counter() - t0
        size = epub.stat().st_size
    print(f"python {platform.python_version()} on {platform.machine()}; EPUB {size / 1e6:.2f} MB, {words} words, "
          f"cast {'on' if args.cast else 'off'}")
    print(f"import {r['import_s']:.2f} s -> {r['chapters']} chapters ({r['left_out']} documents left out, "
          f"{r['attributed']} lines attributed)")
    print(f"plan {r['plan_s']:.2f} s with normalization ({r['normalized']} changes, {r['segments']} segments, "
          f"est. {r['est_hours']:.1f} h); {r['plan_no_normalize_s']:.2f} s without ({r['unnormalized_segments']} segments)")
    print(f"peak memory (child, ru_maxrss) {r['maxrss_mb']:.0f} MB; child wall time {wall:.2f} s incl. Python start")


if __name__ == "__main__":
    main()
