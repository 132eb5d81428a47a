"""`dia-studio`: the one command line. validate and plan run the library directly; render and catalog
run the Prefect flows.

    dia-studio validate PROJECT.yaml
    dia-studio plan PROJECT.yaml [--json] [--chapters 1,3-4]
    dia-studio render PROJECT.yaml [--draft] [--out DIR] [--chapters ...] [engine flags]
    dia-studio catalog FOLDER [--deployment produce/gpu] [engine flags]

The render/catalog flags are generated from one table (RENDER_FLAGS) over the fields of
dia_core.production.options.RenderOptions, and become one RenderOptions passed to the flows.

Exit codes: 0 done, 1 a run failed (or a strict delivery profile was missed), 2 bad input (one
line naming file, line and field; nothing written), 3 another render of the same project is running.
Output goes to stdout, warnings to stderr. Any failure ends as one line on stderr; an unexpected
one also writes its details to a log file that the line names (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

from dia_core.errors import InputError
from dia_core.params import FAST_PATH_MODES
from dia_core.production.jobs import BusyError, acquire_project_lock, open_job
from dia_core.production.options import RenderOptions
from dia_core.script.manuscript import parse_project_manuscripts
from dia_core.script.planner import plan_project
from dia_core.script.project import load_project, parse_chapter_selection

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_BUSY = 0, 1, 2, 3


def parse_chapters(value: str) -> tuple[int, ...]:
    """argparse type for ``--chapters``: ``"1,3-4"`` -> (1, 3, 4)."""
    try:
        sel = parse_chapter_selection(value, field="--chapters")
    except InputError as e:
        raise argparse.ArgumentTypeError(e.message) from None
    if sel is None:
        raise argparse.ArgumentTypeError("give chapter numbers like 1,3-4")
    return sel


# RenderOptions field -> (flag, argparse keywords). The one place a render flag is defined.
RENDER_FLAGS: dict[str, tuple[str, dict]] = {
    "draft": ("--draft", dict(action="store_true", help="espeak-ng draft engine (no GPU, no weights)")),
    "out_dir": ("--out", dict(help="output folder; each project renders into OUT/<project folder>/")),
    "model": ("--model", dict(help="Dia weights: Hugging Face repo id or local directory "
                                   "(default: the project's `model`, else nari-labs/Dia-1.6B-0626)")),
    "codec": ("--codec", dict(help="local descript-audio-codec 44khz weights (default: its download)")),
    "store": ("--store", dict(help="segment store folder (share it between hosts when scaling out)")),
    "device": ("--device", dict(help="torch device, e.g. cuda:1 (default: cuda if available)")),
    "batch_size": ("--batch-size", dict(type=int, help="segments generated per batch (halved on OOM)")),
    "fast_path": ("--fast-path", dict(choices=FAST_PATH_MODES,
                                      help="Dia decode: off (eager), static (bucketed step, CUDA graphs on a "
                                           "GPU), inductor (also torch.compile); default $DIA_STUDIO_FAST_PATH, "
                                           "else off")),
}
CHAPTERS_FLAG = ("--chapters", dict(type=parse_chapters, help="chapter selection, e.g. 1,3-4 (1-based)"))


def options_from_args(args) -> RenderOptions:
    """The one RenderOptions of a render/catalog command line (InputError on a bad value)."""
    values = {name: getattr(args, name) for name in RENDER_FLAGS}
    if getattr(args, "chapters", None):
        values["chapters"] = args.chapters
    if values["batch_size"] is not None and values["batch_size"] < 1:
        raise InputError(f"must be at least 1, got {values['batch_size']}", field="--batch-size")
    return RenderOptions(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dia-studio", description="Batch audiobook and podcast production on Dia.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")

    v = sub.add_parser("validate", parents=[common], help="check a project manifest and its manuscripts without planning")
    v.add_argument("project", help="path to project.yaml")

    p = sub.add_parser("plan", parents=[common], help="split the manuscript into Dia segments and show the plan")
    p.add_argument("project", help="path to project.yaml")
    p.add_argument("--json", action="store_true", help="print the full plan as JSON")
    p.add_argument(CHAPTERS_FLAG[0], **CHAPTERS_FLAG[1])

    r = sub.add_parser("render", parents=[common], help="render a project into chapters, a book, captions and manifests")
    r.add_argument("project", help="path to project.yaml")
    r.add_argument(CHAPTERS_FLAG[0], **CHAPTERS_FLAG[1])
    _add_render_flags(r)

    c = sub.add_parser("catalog", parents=[common], help="render every project under a folder whose inputs changed")
    c.add_argument("catalog", help="folder searched for project.yaml files")
    c.add_argument("--deployment", help="fan projects out as runs of this deployment (e.g. produce/gpu)")
    _add_render_flags(c)
    return parser


def _add_render_flags(p: argparse.ArgumentParser) -> None:
    for name, (flag, kwargs) in RENDER_FLAGS.items():
        p.add_argument(flag, dest=name, **kwargs)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# ---- commands ------------------------------------------------------------------------------------

def _warn(warnings) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def cmd_validate(args) -> int:
    project = load_project(args.project)
    chapters, warnings = parse_project_manuscripts(project)
    _warn(list(project.warnings) + warnings)
    print(f"ok: {args.project}: {project.title!r}, {len(chapters)} chapter{'s' if len(chapters) != 1 else ''}, "
          f"{len(project.voices)} voice{'s' if len(project.voices) != 1 else ''}")
    return EXIT_OK


def cmd_plan(args) -> int:
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
    for name, justify in (("chapter", "left"), ("title", "left"), ("segments", "right"), ("est. min", "right"),
                          ("warnings", "right")):
        table.add_column(name, justify=justify)
    total_s = total_n = 0
    for c in plan.chapters:
        total_s += c.est_seconds
        total_n += len(c.segments)
        table.add_row(c.id, c.title, str(len(c.segments)), f"{c.est_seconds / 60:.1f}",
                      str(len(c.warnings)) if c.warnings else "")
    table.add_section()
    table.add_row("total", f"{len(plan.chapters)} chapters", str(total_n), f"{total_s / 60:.1f}",
                  str(len(plan.warnings)) if plan.warnings else "")
    Console(file=sys.stdout, soft_wrap=False).print(table)


def cmd_render(args) -> int:
    options = options_from_args(args)
    job = open_job(args.project, options)  # validates everything; writes nothing
    job.engine  # load the model (or find espeak-ng) before the flow, so a bad --model is exit 2
    _prefect_home(job.project.work_dir / "prefect")
    try:  # taken here, before any flow starts, so a busy render says one line and nothing else
        lock = acquire_project_lock(job)
    except BusyError as e:
        print(f"busy: {e}", file=sys.stderr)
        return EXIT_BUSY
    try:
        from flows.produce import produce

        with _progress(args, job.project.title) as on_progress:
            state = produce(project=str(Path(args.project)), options=options, on_progress=on_progress,
                            return_state=True)
        return _report(state, job.out_dir)
    finally:
        lock.release()


def cmd_catalog(args) -> int:
    catalog = Path(args.catalog)
    if not catalog.is_dir():
        raise InputError("catalog folder not found", file=catalog)
    options = options_from_args(args)
    _prefect_home(catalog / ".dia-studio" / "prefect")
    from flows.catalog import narrate_catalog

    state = narrate_catalog(catalog=str(catalog), options=options, deployment=args.deployment, return_state=True)
    return _report(state, Path(options.out_dir) if options.out_dir else catalog)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate, "plan": cmd_plan, "render": cmd_render, "catalog": cmd_catalog}


def _prefect_home(default: Path) -> None:
    """No server configured: the embedded API keeps its database inside the project's work dir."""
    if "PREFECT_HOME" not in os.environ:
        default.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(default.resolve())
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _report(state, out_dir: Path) -> int:
    if state.is_completed():
        print(f"done: {out_dir}", file=sys.stderr)
        return EXIT_OK
    try:
        state.result()
    except BusyError as e:
        print(f"busy: {e}", file=sys.stderr)
        return EXIT_BUSY
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as e:  # the run's log and the Prefect UI have the details
        print(f"failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED


class _progress:
    """A rich progress bar with ETA over segments settled (generated or found, and QC'd); yields the
    on_progress callback for the flow, or None when there is no terminal to draw on."""

    def __init__(self, args, title: str):
        self.enabled = not getattr(args, "no_progress", False) and sys.stderr.isatty()
        self.title = title

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        self.bar.start()
        self.task = self.bar.add_task(self.title, total=None)
        return lambda done, total: self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


def _log_failure(args) -> Path | None:
    """Write the current exception's traceback to a log under the project's (or catalog's) work folder."""
    target = getattr(args, "project", None) or getattr(args, "catalog", None)
    base = Path(target) if target else Path.cwd()
    folder = (base.parent if base.suffix in (".yaml", ".yml") else base) / ".dia-studio" / "logs"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for where in (folder, Path.home() / ".dia-studio" / "logs"):
        try:
            where.mkdir(parents=True, exist_ok=True)
            path = where / f"{stamp}-{getattr(args, 'command', 'cli')}-{os.getpid()}.log"
            path.write_text(f"dia-studio {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}")
            return path
        except OSError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:  # `dia-studio plan ... | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        log = _log_failure(args)
        where = f" (details: {log})" if log else ""
        print(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{where}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
