"""`dia-studio`: plan/validate (from dia_core.cli) plus render and catalog, which run the Prefect flows.

Bad input is found before any flow starts: one line on stderr, exit 2, nothing written.
Exit codes: 0 done, 1 a run failed (or a strict delivery profile was missed), 2 bad input,
3 another render of the same project is running.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dia_core import cli as core_cli
from dia_core.errors import InputError
from dia_core.params import FAST_PATH_MODES

EXIT_FAILED, EXIT_INPUT, EXIT_BUSY = 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = core_cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    r = sub.add_parser("render", help="render a project into chapters, a book, captions and manifests")
    r.add_argument("project", help="path to project.yaml")
    r.add_argument("--chapters", type=core_cli.parse_chapters,
                   help="chapter selection, e.g. 1,3-4 (1-based)")
    _add_engine_args(r)

    c = sub.add_parser("catalog", help="render every project under a folder whose inputs changed")
    c.add_argument("catalog", help="folder searched for project.yaml files")
    c.add_argument("--deployment", help="fan projects out as runs of this deployment (e.g. produce/gpu)")
    _add_engine_args(c)
    return parser


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draft", action="store_true", help="espeak-ng draft engine (no GPU, no weights)")
    p.add_argument("--out", help="output folder; each project renders into OUT/<project folder>/")
    p.add_argument("--model", help="Dia weights: Hugging Face repo id or local directory "
                                   "(default: the project's `model`, else nari-labs/Dia-1.6B-0626)")
    p.add_argument("--codec", help="local descript-audio-codec 44khz weights (default: its download)")
    p.add_argument("--store", help="segment store folder (share it between hosts when scaling out)")
    p.add_argument("--device", help="torch device, e.g. cuda:1 (default: cuda if available)")
    p.add_argument("--batch-size", type=int, help="segments generated per batch (halved on OOM)")
    p.add_argument("--fast-path", choices=FAST_PATH_MODES,
                   help="Dia decode: off (eager), static (bucketed step, CUDA graphs on a GPU), inductor "
                        "(also torch.compile); default $DIA_STUDIO_FAST_PATH, else off")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("render", "catalog"):
        return core_cli.main(argv)
    try:
        return _render(args) if args.command == "render" else _catalog(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT


def _check_engine_args(args) -> None:
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"must be at least 1, got {args.batch_size}", field="--batch-size")


def _render(args) -> int:
    from dia_core import render

    _check_engine_args(args)

    options = render.RenderOptions(out_dir=args.out, draft=args.draft, model=args.model, codec=args.codec,
                                   store=args.store, chapters=args.chapters, device=args.device,
                                   batch_size=args.batch_size, fast_path=args.fast_path)
    job = render.open_job(args.project, options)  # validates everything; writes nothing
    job.engine  # load the model (or find espeak-ng) before the flow, so a bad --model is exit 2
    _prefect_home(job.project.work_dir / "prefect")

    from dia_core.render import BusyError, acquire_project_lock

    try:  # taken here, before any flow starts, so a busy render says one line and nothing else
        lock = acquire_project_lock(job)
    except BusyError as e:
        print(f"busy: {e}", file=sys.stderr)
        return EXIT_BUSY
    try:
        return _run_produce(args, job, options)
    finally:
        lock.release()


def _run_produce(args, job, options) -> int:
    from flows import produce as produce_module

    with _progress(args, f"{job.project.title}") as listener:
        if listener:
            produce_module.PROGRESS_LISTENERS.append(listener)
        try:
            state = produce_module.produce(
                project=str(Path(args.project)), draft=args.draft, out=args.out,
                chapters=list(options.chapters) if options.chapters else None, model=args.model,
                codec=args.codec, store=args.store, device=args.device, batch_size=args.batch_size,
                fast_path=args.fast_path, return_state=True)
        finally:
            if listener:
                produce_module.PROGRESS_LISTENERS.remove(listener)
    return _report(state, job.out_dir)


def _catalog(args) -> int:
    catalog = Path(args.catalog)
    if not catalog.is_dir():
        raise InputError("catalog folder not found", file=catalog)
    _prefect_home(catalog / ".dia-studio" / "prefect")
    from flows.catalog import narrate_catalog

    _check_engine_args(args)
    state = narrate_catalog(catalog=str(catalog), draft=args.draft, out=args.out, store=args.store,
                            model=args.model, deployment=args.deployment, codec=args.codec, device=args.device,
                            batch_size=args.batch_size, fast_path=args.fast_path, return_state=True)
    return _report(state, Path(args.out) if args.out else catalog)


def _prefect_home(default: Path) -> None:
    """No server configured: the embedded API keeps its database inside the project's work dir."""
    if "PREFECT_HOME" not in os.environ:
        default.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(default.resolve())
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _report(state, out_dir: Path) -> int:
    from dia_core.render import BusyError

    if state.is_completed():
        print(f"done: {out_dir}", file=sys.stderr)
        return 0
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
    """A rich progress bar with ETA over segments settled (generated or found, and QC'd)."""

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


if __name__ == "__main__":
    raise SystemExit(main())
