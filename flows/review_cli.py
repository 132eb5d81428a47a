"""The review subcommands of `dia-studio` (thin: the work is in dia_core.review).

    dia-studio takes PROJECT.yaml [CHAPTER] [--out DIR] [--store DIR] [--json]
    dia-studio retake PROJECT.yaml SEGMENT [--note TEXT]
    dia-studio pin PROJECT.yaml SEGMENT [TAKE]
    dia-studio unpin PROJECT.yaml SEGMENT
    dia-studio review PROJECT.yaml [--out DIR] [--store DIR] [--port N]
"""
from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from dia_core.review import actions
from dia_core.review import decisions as dec
from dia_core.review.listing import chapter_ids, chapter_view, open_review


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    def where(p: argparse.ArgumentParser) -> None:
        p.add_argument("project", help="path to project.yaml")
        p.add_argument("--out", help="the --out the project was rendered with (default: its output_dir)")
        p.add_argument("--store", help="the --store it was rendered with (default: <project>/.dia-studio/store)")

    t = sub.add_parser("takes", parents=[common], help="list a rendered chapter's segments, takes and review decisions")
    where(t)
    t.add_argument("chapter", nargs="?", help="chapter id, e.g. chapter-02 (default: every rendered chapter)")
    t.add_argument("--json", action="store_true", help="print JSON")
    r = sub.add_parser("retake", parents=[common], help="ask for a new take of a segment at the next render")
    where(r)
    r.add_argument("segment", help="segment id (or a unique prefix), as `takes` shows it")
    r.add_argument("--note", default="", help="why (kept in review.yaml and the chapter manifest)")
    p = sub.add_parser("pin", parents=[common], help="approve a take: renders keep it whatever else changes")
    where(p)
    p.add_argument("segment", help="segment id (or a unique prefix)")
    p.add_argument("take", nargs="?", help="take key prefix (default: the take in the chapter now)")
    u = sub.add_parser("unpin", parents=[common], help="release a pinned take")
    where(u)
    u.add_argument("segment", help="segment id (or a unique prefix)")
    v = sub.add_parser("review", parents=[common], help="the review page: listen, approve, retake, fix (127.0.0.1)")
    where(v)
    v.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")


def check_review_file(project_root) -> None:
    """InputError (file:line) when the project's review.yaml is bad."""
    dec.load(project_root)


def cmd_takes(args) -> int:
    review = open_review(args.project, args.out, args.store)
    ids = [args.chapter] if args.chapter else chapter_ids(review)
    if not ids:
        print(f"no rendered chapters in {review.out_dir}: render the project first", file=sys.stderr)
        return 0
    views = [chapter_view(review, c) for c in ids]
    if args.json:
        sys.stdout.write(json.dumps(views, indent=2, ensure_ascii=False) + "\n")
        return 0
    console = Console(file=sys.stdout, soft_wrap=False, width=160)
    for view in views:
        table = Table(title=f"{view['id']} \"{view['title']}\"")
        for name in ("segment", "speakers", "text", "qc", "takes (* in the chapter)", "decision"):
            table.add_column(name, overflow="fold")
        for s in view["segments"]:
            takes = " ".join(f"{t['key'][:8]}{'*' if t['chosen'] else ''}({t['label'].split()[0][:3]} "
                             f"{'pass' if t['qc']['passed'] else 'fail'})" for t in s["takes"])
            d = s["decision"]
            decision = "; ".join(x for x in (
                f"pinned {d['pin'][:8]}" if d["pin"] else "",
                f"retake #{d['retake']['count']}: {d['retake']['note']}" if d["retake"] else "",
                f"{d['alternatives']} alternatives requested" if d["alternatives"] else "",
                "text fixed" if d["text"] else "") if x)
            table.add_row(s["id"], ", ".join(s["speakers"]), s["display_text"][:70],
                          "pass" if s["qc"]["passed"] else "FAIL", takes, decision)
        console.print(table)
    return 0


def _done(result: dict) -> int:
    print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_retake(args) -> int:
    return _done(actions.retake(open_review(args.project, args.out, args.store), args.segment, args.note))


def cmd_pin(args) -> int:
    return _done(actions.pin(open_review(args.project, args.out, args.store), args.segment, args.take))


def cmd_unpin(args) -> int:
    return _done(actions.unpin(open_review(args.project, args.out, args.store), args.segment))


def cmd_review(args) -> int:
    from dia_core.review.server import serve   # Starlette/uvicorn only for this command

    return serve(open_review(args.project, args.out, args.store), port=args.port,
                 say=lambda line: print(line, flush=True))


COMMANDS = {"takes": cmd_takes, "retake": cmd_retake, "pin": cmd_pin, "unpin": cmd_unpin, "review": cmd_review}
