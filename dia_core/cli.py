"""`dia-studio` core commands: ``plan`` and ``validate`` (``render`` is added by flows/cli.py).

    dia-studio validate PROJECT.yaml            check the manifest and manuscripts, no planning
    dia-studio plan PROJECT.yaml [--json] [--chapters 1,3-4]

Output goes to stdout, warnings to stderr. Invalid input: one line on stderr, exit code 2, no
traceback. To add a subcommand: add its parser in :func:`build_parser` (or to the parser it
returns) and its handler ``(args) -> int`` to :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from .errors import InputError

EXIT_OK, EXIT_INPUT = 0, 2


def parse_chapters(value: str) -> tuple[int, ...]:
    """argparse type for ``--chapters``: ``"1,3-4"`` -> (1, 3, 4)."""
    from .project import parse_chapter_selection
    try:
        sel = parse_chapter_selection(value, field="--chapters")
    except InputError as e:
        raise argparse.ArgumentTypeError(e.message) from None
    if sel is None:
        raise argparse.ArgumentTypeError("give chapter numbers like 1,3-4")
    return sel


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dia-studio", description="Batch audiobook and podcast production on Dia.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check a project manifest and its manuscripts without planning")
    v.add_argument("project", help="path to project.yaml")

    p = sub.add_parser("plan", help="split the manuscript into Dia segments and show the plan")
    p.add_argument("project", help="path to project.yaml")
    p.add_argument("--json", action="store_true", help="print the full plan as JSON")
    p.add_argument("--chapters", type=parse_chapters, help="chapter selection, e.g. 1,3-4 (1-based)")
    return parser


def _warn(warnings) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def cmd_validate(args) -> int:
    from .manuscript import parse_project_manuscripts
    from .project import load_project
    project = load_project(args.project)
    chapters, warnings = parse_project_manuscripts(project)
    _warn(list(project.warnings) + warnings)
    print(f"ok: {args.project}: {project.title!r}, {len(chapters)} chapter{'s' if len(chapters) != 1 else ''}, "
          f"{len(project.voices)} voice{'s' if len(project.voices) != 1 else ''}")
    return EXIT_OK


def cmd_plan(args) -> int:
    from .planner import plan_project
    from .project import load_project
    project = load_project(args.project)
    plan = plan_project(project, chapters=args.chapters)
    _warn(plan.warnings)
    if args.json:
        sys.stdout.write(json.dumps(plan.to_json(), indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    _print_table(plan)
    return EXIT_OK


def _print_table(plan) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=plan.project_title)
    table.add_column("chapter")
    table.add_column("title")
    table.add_column("segments", justify="right")
    table.add_column("est. min", justify="right")
    table.add_column("warnings", justify="right")
    total_s = total_n = total_w = 0
    for c in plan.chapters:
        n, secs, w = len(c.segments), c.est_seconds, len(c.warnings)
        total_s += secs
        total_n += n
        total_w += w
        table.add_row(c.id, c.title, str(n), f"{secs / 60:.1f}", str(w) if w else "")
    table.add_section()
    table.add_row("total", f"{len(plan.chapters)} chapters", str(total_n), f"{total_s / 60:.1f}",
                  str(len(plan.warnings)) if plan.warnings else "")
    Console(file=sys.stdout, soft_wrap=False).print(table)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "plan": cmd_plan,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:  # `dia-studio plan ... | head`
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
