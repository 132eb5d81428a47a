"""`dia-studio`: the one command line. validate and plan run the library directly; render and catalog
run the Prefect flows.

    dia-studio validate PROJECT.yaml
    dia-studio plan PROJECT.yaml [--json] [--chapters 1,3-4]
    dia-studio render PROJECT.yaml [--draft] [--out DIR] [--chapters ...] [engine flags]
    dia-studio catalog FOLDER [--deployment produce/gpu] [engine flags]
    dia-studio import BOOK --out DIR [--footnotes drop|read] [--include WHAT] [--cast]

The render/catalog flags are generated from one table (RENDER_FLAGS) over the fields of
dia_core.production.options.RenderOptions, and become one RenderOptions passed to the flows.

Exit codes: 0 done, 1 a run failed (or a strict delivery profile was missed), 2 bad input (one
line naming file, line and field; nothing written), 3 another render of the same project is running.
Output goes to stdout, warnings to stderr. Any failure ends as one line on stderr; an unexpected
one also writes its details to a log file that the line names (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dia_core.errors import InputError
from dia_core.params import FAST_PATH_MODES
from dia_core.production.jobs import BusyError, acquire_project_lock, open_job
from dia_core.production.options import RenderOptions
from dia_core.script.planner import plan_project, read_manuscripts
from dia_core.script.project import load_project, parse_chapter_selection
from flows.server import ServerUnavailable, prefect_api   # imports no Prefect (PREFECT_HOME is set later)
from flows import review_cli   # takes, retake, pin, unpin, review (issue 17)

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_BUSY = 0, 1, 2, 3


def parse_chapters(value: str) -> tuple[int, ...] | str:
    """argparse type for ``--chapters``: ``"1,3-4"`` -> (1, 3, 4); ``all`` -> "all" (every chapter,
    whatever the project's own `chapters:` selects)."""
    try:
        sel = parse_chapter_selection(value, field="--chapters")
    except InputError as e:
        raise argparse.ArgumentTypeError(e.message) from None
    return "all" if sel is None else sel


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
    "shard_minutes": ("--shard-minutes", dict(type=float, help="minutes of audio per generation shard "
                                                                "(default 20)")),
    "shard_deployment": ("--shard-deployment", dict(help="run the generation shards as runs of this deployment "
                                                         "(e.g. generate-shard/gpu), one per free worker of its "
                                                         "pool; default: in this process")),
    "finish_workers": ("--finish-workers", dict(type=int, help="chapters finished at once (CPU work; each "
                                                               "holds about 4 copies of its chapter in memory; "
                                                               "default 2, at most the CPUs)")),
}
CHAPTERS_FLAG = ("--chapters", dict(type=parse_chapters, help="chapter selection, e.g. 1,3-4 (1-based)"))


def options_from_args(args) -> RenderOptions:
    """The one RenderOptions of a render/catalog command line (InputError on a bad value)."""
    values = {name: getattr(args, name) for name in RENDER_FLAGS}
    if getattr(args, "chapters", None):
        values["chapters"] = args.chapters
    try:
        return RenderOptions(**values)   # checks the values (one place); errors name the flag
    except InputError as e:
        flag = RENDER_FLAGS[e.field][0] if e.field in RENDER_FLAGS else e.field
        raise InputError(e.message, field=flag) from None


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

    i = sub.add_parser("import", parents=[common],
                       help="make a project folder from an EPUB, DOCX, Markdown or text book")
    i.add_argument("book", help="the book: .epub, .docx, .md or .txt")
    i.add_argument("--out", required=True,
                   help="the project folder to write (new, empty, or an earlier import of this book)")
    i.add_argument("--footnotes", choices=("drop", "read"), default="drop", help="footnotes/endnotes: dropped, or read "
                   "at the end of their chapter (default drop)")
    i.add_argument("--include", action="append", default=[], metavar="WHAT",
                   help="read something the import left out (as import.md names it); repeatable")
    i.add_argument("--cast", action="store_true", help="attribute quoted dialogue to characters (NAME: lines)")

    c = sub.add_parser("catalog", parents=[common], help="render every project under a folder whose inputs changed")
    c.add_argument("catalog", help="folder searched for project.yaml files")
    c.add_argument("--deployment", help="fan projects out as runs of this deployment (e.g. produce/gpu)")
    _add_render_flags(c)
    review_cli.add_commands(sub, common)
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
    chapters, warnings = read_manuscripts(project)
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


def check_output_dir(path: Path, field: str = "--out") -> None:
    """Bad input if ``path`` cannot be created and written, found before any work starts. Leaves
    nothing behind: folders it had to create for the probe are removed again."""
    created = []
    try:
        for parent in reversed([path, *path.parents]):
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(f"{parent} is not a folder", file=path, field=field)
                continue
            parent.mkdir()
            created.append(parent)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".dia-studio-probe-"):
            pass
    except OSError as e:
        raise InputError(f"cannot write here: {e.strerror or e}", file=path, field=field) from None
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()


def cmd_render(args) -> int:
    options = options_from_args(args)
    job = open_job(args.project, options)  # validates everything; writes nothing
    review_cli.check_review_file(job.project.root)   # a bad review.yaml is exit 2 before any work
    check_output_dir(job.out_dir, "--out" if options.out_dir else "output_dir")
    job.engine  # load the model (or find espeak-ng) before the flow, so a bad --model is exit 2
    _prefect_home(job.project.work_dir / "prefect")
    try:  # taken here, before any flow starts, so a busy render says one line and nothing else
        lock = acquire_project_lock(job)
    except BusyError as e:
        print(f"busy: {e}", file=sys.stderr)
        return EXIT_BUSY
    try:
        # Prefect is imported only now: PREFECT_HOME must be set first (it is read at import).
        from flows.produce import produce

        _log_to_file(args, job.project.work_dir / "logs")
        with prefect_api(job.project.work_dir / "logs", _say), _progress(args, job.project.title) as on_progress:
            if options.shard_deployment:  # bad input before any work (the flow checks again, for other callers)
                from flows.sharded import check_shard_target, check_store_writable
                check_shard_target(options.shard_deployment)
                check_store_writable(job.store.root)
            state = produce(project=str(Path(args.project)), options=options, on_progress=on_progress,
                            return_state=True)
        return _report(args, state, job.out_dir)
    finally:
        lock.release()


def cmd_catalog(args) -> int:
    catalog = Path(args.catalog)
    if not catalog.is_dir():
        raise InputError("catalog folder not found", file=catalog)
    options = options_from_args(args)
    if options.out_dir:
        check_output_dir(Path(options.out_dir))
    _prefect_home(catalog / ".dia-studio" / "prefect")
    from flows.catalog import narrate_catalog  # imports Prefect: only after PREFECT_HOME is set

    _log_to_file(args, catalog / ".dia-studio" / "logs")
    with prefect_api(catalog / ".dia-studio" / "logs", _say):
        if args.deployment:  # bad input before any project is looked at
            from flows.sharded import check_deployment
            check_deployment(args.deployment, "produce", "--deployment")
        state = narrate_catalog(catalog=str(catalog), options=options, deployment=args.deployment,
                                return_state=True)
    return _report(args, state, Path(options.out_dir) if options.out_dir else catalog)


def cmd_import(args) -> int:
    from dia_core.importer import import_book  # noqa: PLC0415 - ebooklib/python-docx only for this command

    result = import_book(args.book, args.out, footnotes=args.footnotes, include=args.include, cast=args.cast)
    n = len(result.book.chapters)
    print(f"imported: {args.book} -> {Path(args.out) / 'project.yaml'}: {n} chapter{'s' if n != 1 else ''}, "
          f"{len(result.book.left_out)} left out, {result.attributed} attributed line(s); see "
          f"{Path(args.out) / 'import.md'}", file=sys.stderr)
    return EXIT_OK


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate, "plan": cmd_plan, "render": cmd_render, "catalog": cmd_catalog,
    "import": cmd_import, **review_cli.COMMANDS}


def _prefect_home(default: Path) -> None:
    """No server configured: the embedded API keeps its database inside the project's work dir."""
    if "PREFECT_HOME" not in os.environ:
        default.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(default.resolve())
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _report(args, state, out_dir: Path) -> int:
    if state.is_completed():
        print(f"done: {out_dir}{_incomplete(out_dir)}", file=sys.stderr)
        summary = _takes_summary(out_dir)
        if summary:
            print(summary, file=sys.stderr)
        return EXIT_OK
    try:
        state.result()
    except BusyError as e:
        print(f"busy: {e}", file=sys.stderr)
        return EXIT_BUSY
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as e:  # the run's log (named on the line) and the Prefect UI have the details
        if args.debug:
            raise
        print(f"error: {_one_line(e)}{_where(_log_failure(args))}", file=sys.stderr)
        return EXIT_FAILED
    print(f"error: the run ended {state.type.value.lower()}: {state.message}{_where(_log_failure(args))}",
          file=sys.stderr)
    return EXIT_FAILED


def _takes_summary(out_dir: Path) -> str:
    """One line on what the take checks did, from the chapter manifests this delivery lists:
    'takes: 42 segments, listened by pocketsphinx:...; 3 regenerated (words 2, voice 1); 0 failed'.
    Each attempt's measurements are in the chapter manifests."""
    segments, regenerated, reasons, listeners = 0, 0, Counter(), set()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        manifest = json.loads((out_dir / "manifest.json").read_text())
        for chapter in manifest["chapters"]:
            for s in json.loads((out_dir / chapter["manifest"]).read_text())["segments"]:
                segments += 1
                attempts = s.get("attempts") or []
                regenerated += len(attempts) > 1
                for a in attempts[:-1] if len(attempts) > 1 else []:
                    reasons.update({f.split(":", 1)[0] for f in a["qc"].get("failures") or []})
                for a in attempts:
                    listeners.add((a["qc"].get("listen") or {}).get("listener", "off"))
        failed = manifest.get("qc_failed", 0)
        why = f" ({', '.join(f'{k} {n}' for k, n in reasons.most_common())})" if reasons else ""
        return (f"takes: {segments} segments, listened by {', '.join(sorted(listeners)) or 'off'}; "
                f"{regenerated} regenerated{why}; {failed} failed every attempt (delivered, listed in the "
                f"manifest)")
    return ""


def _incomplete(out_dir: Path) -> str:
    """' (incomplete: ...)' when the delivery's manifest says chapters are missing (a partial render
    of a book whose other chapters were never rendered or have changed since)."""
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((out_dir / "manifest.json").read_text())
        if manifest.get("complete") is False:
            missing = manifest.get("missing_chapters") or []
            return f" (incomplete: {len(missing)} chapter{'s' if len(missing) != 1 else ''} not rendered or " \
                   f"out of date: {', '.join(map(str, missing))}; no M4B until all are)"
    return ""


# ---- logs ------------------------------------------------------------------------------------------
# A render's details (Prefect's run logs with tracebacks) go to a log file in the project's work
# folder; the terminal gets the same lines without tracebacks, and a failure ends as one line that
# names the file.

_RUN_LOG: dict[str, Path] = {}


class _NoTraceback(logging.Formatter):
    """Formats like ``inner`` without the traceback (it is in the log file)."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class _NoTransportChatter(logging.Filter):
    """Prefect's log and event senders report their own queue ("Still processing items...") while they
    drain, which can be after the command's last line; the file keeps it, the console does not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.pathname.replace("\\", "/").endswith("prefect/_internal/concurrency/services.py")


def _log_to_file(args, folder: Path) -> Path:
    path = _log_path(args, folder)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    logging.getLogger().addHandler(handler)
    if not args.debug:
        loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
        for logger in loggers:
            for h in getattr(logger, "handlers", []):
                if h is not handler and isinstance(h, logging.StreamHandler) \
                        and getattr(h, "stream", None) in (sys.stderr, sys.stdout) \
                        or type(h).__name__ == "PrefectConsoleHandler":
                    h.setFormatter(_NoTraceback(h.formatter))
                    if not any(isinstance(f, _NoTransportChatter) for f in h.filters):
                        h.addFilter(_NoTransportChatter())
    return path


def _log_path(args, folder: Path | None = None) -> Path:
    if "path" in _RUN_LOG:
        return _RUN_LOG["path"]
    if folder is None:
        target = getattr(args, "project", None) or getattr(args, "catalog", None)
        base = Path(target) if target else Path.cwd()
        folder = (base.parent if base.suffix in (".yaml", ".yml") else base) / ".dia-studio" / "logs"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{getattr(args, 'command', 'cli')}-{os.getpid()}.log"
    for where in (folder, Path.home() / ".dia-studio" / "logs"):
        try:
            where.mkdir(parents=True, exist_ok=True)
            path = where / name
            path.touch()
            _RUN_LOG["path"] = path
            return path
        except OSError:
            continue
    raise OSError("no writable folder for the log")


def _log_failure(args) -> Path | None:
    """Append the current exception's traceback to the run's log file; its path, or None."""
    try:
        path = _log_path(args)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"\ndia-studio {' '.join(sys.argv[1:])} failed:\n{traceback.format_exc()}")
        return path
    except OSError:
        return None


def _where(log: Path | None) -> str:
    return f" (details: {log})" if log else ""


class _progress:
    """A rich progress bar with ETA over segments settled (generated or found, and QC'd); yields the
    on_progress callback for the flow, or None when there is no terminal to draw on."""

    def __init__(self, args, title: str):
        self.enabled = not getattr(args, "no_progress", False) and sys.stderr.isatty()
        self.title = title

    def __enter__(self):
        if not self.enabled:
            return None
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        self.bar.start()
        self.task = self.bar.add_task(self.title, total=None)
        return lambda done, total: self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that locks are released and the local server stops."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(ValueError):  # not the main thread (a test calling main): keep the default
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return COMMANDS[args.command](args)
    except InputError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:  # `dia-studio plan ... | head`
        return EXIT_OK
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print(f"{'terminated' if terminated else 'interrupted'}: finished work is kept; run the same command "
              "again to resume", file=sys.stderr)
        return 143 if terminated else 130
    except Exception as e:
        if args.debug:
            raise
        print(f"error: {_one_line(e)}{_where(_log_failure(args))}", file=sys.stderr)
        return EXIT_FAILED


def _one_line(e: BaseException) -> str:
    """The failure in one line: its own words for failures we raise on purpose, else its type too."""

    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, ServerUnavailable):
        return first
    if isinstance(e, OSError) and e.errno is not None:
        return f"{e.strerror or first}" + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


if __name__ == "__main__":
    raise SystemExit(main())
