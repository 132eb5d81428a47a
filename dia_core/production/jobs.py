"""A job: one project, its plan and the render options, opened once per process; its engine and locks.

Opening a job validates and plans everything, checks that the output folder is new or this
project's own (dia_core.production.folder), and writes nothing. The engine (Dia weights are
3 GB) is loaded on first use and cached per process.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .. import faults
from . import folder
from ..atomic import clean_temps as _clean_temps
from ..params import DEFAULT_REPO
from ..publish.acx import check_retail_sample
from ..script.planner import Plan, plan_project
from ..script.project import Project, load_project
from .engines import DiaEngine, DraftEngine, Engine
from .options import RenderOptions, fast_path_mode
from .store import SegmentStore


class BusyError(Exception):
    """Another render holds this project's lock."""


@dataclass
class Job:
    project: Project
    plan: Plan                # the chapters this run renders (options.chapters, else the project's)
    options: RenderOptions
    out_dir: Path
    store: SegmentStore
    book: Plan | None = None  # every chapter of the delivery (a partial render rebuilds the whole book)
    _engine: Engine | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.book is None:
            self.book = self.plan

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = load_engine(self.project, self.options, memo_dir=self.store.root)
        return self._engine

    @property
    def engine_device(self) -> str | None:
        """The accelerator this job's engine occupies (None for the draft engine); known without
        loading the model."""
        if self.options.draft:
            return None
        return self.engine.device

    def chapter(self, chapter_id: str):
        for ch in self.plan.chapters:
            if ch.id == chapter_id:
                return ch
        raise KeyError(chapter_id)


def open_job(project_path: str | Path, options: RenderOptions) -> Job:
    """Load and plan a project (raises InputError on bad input, and when the output folder belongs
    to another project; writes nothing)."""
    project = load_project(project_path)
    faults.hit("plan")
    plan = plan_project(project, chapters=options.chapters)
    book = plan
    if options.chapters not in (None, "all"):   # "all": this run renders the whole book
        # The delivery is the project's chapters (its `chapters:` selection, else all) plus the
        # selected ones: a partial render finishes the selection and rebuilds the book from all.
        whole = None if project.chapters is None else tuple(sorted({*project.chapters, *options.chapters}))
        if whole is None or set(whole) != {c.index for c in plan.chapters}:
            book = plan_project(project, chapters=whole)
    check_retail_sample(project, book)   # before anything is written
    out_dir = output_dir(project, options)
    folder.check_owner(project, out_dir)
    store = SegmentStore(Path(options.store) if options.store else project.work_dir / "store")
    return Job(project, plan, options, out_dir, store, book)


def output_dir(project: Project, options: RenderOptions) -> Path:
    """OUT/<project folder name>/ with an --out, else the project's own output_dir."""
    return Path(options.out_dir) / project.root.name if options.out_dir else project.output_dir


_ENGINES: dict[tuple, Engine] = {}


def load_engine(project, options: RenderOptions, memo_dir: Path | None = None) -> Engine:
    """The engine for this job, once per process. A Dia engine knows its model's checksum from the
    checkpoint's content hashes (dia_core.dia.identity: hub metadata, or local files hashed once and
    remembered in ``memo_dir``) and loads the 3 GB of weights only when it first generates."""
    if options.draft:
        cast = {name: v.draft_voice for name, v in project.voices.items()}
        key = ("draft", tuple(sorted(cast.items(), key=str)))
        if key not in _ENGINES:
            _ENGINES[key] = DraftEngine(cast)
        return _ENGINES[key]
    # The model's code imports torch (seconds): only a Dia render pays for it, not plan/validate/--draft.
    import torch

    from ..dia.identity import checkpoint_identity

    source = options.model or _project_model(project) or DEFAULT_REPO
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":  # what the loaded model reports (the GPU slot is named after it)
        device = f"cuda:{torch.cuda.current_device()}"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    fast_path = fast_path_mode(options)
    key = ("dia", source, device, str(dtype), options.codec, fast_path)
    if key not in _ENGINES:
        def build_model():
            from ..dia.codec import DiaCodec
            from ..dia.model import DiaModel

            model = DiaModel.from_pretrained(source, device=device, dtype=dtype)
            model.codec = DiaCodec.load(options.codec, device=device)
            return model

        _ENGINES[key] = DiaEngine(loader=build_model, model_id=str(source), device=device,
                                  checksum=checkpoint_identity(source, memo_dir),
                                  default_batch_size=16 if device.startswith("cuda") else 2,
                                  fast_path=fast_path)
    return _ENGINES[key]


def _project_model(project) -> str | None:
    model = getattr(project, "model", None)
    if model and (project.root / model).exists():
        return str(project.root / model)
    return model


def engine_identity(project, options: RenderOptions) -> dict:
    """What identifies the engine without loading it (for the catalog's change detection)."""
    if options.draft:
        return {"engine": DraftEngine.name}
    return {"engine": DiaEngine.name, "model": options.model or _project_model(project) or DEFAULT_REPO}


# ---------------------------------------------------------------------------------------------
# Locks

_PROJECT_LOCKS: dict[str, FileLock] = {}


def project_lock(job: Job) -> FileLock:
    """Held for a whole render. Reentrant within a process (the CLI takes it before starting the
    flow, the flow takes it again), exclusive between processes."""
    job.project.work_dir.mkdir(parents=True, exist_ok=True)
    path = str(job.project.work_dir / "render.lock")
    if path not in _PROJECT_LOCKS:
        _PROJECT_LOCKS[path] = FileLock(path, thread_local=False)
    return _PROJECT_LOCKS[path]


def acquire_project_lock(job: Job, wait_s: float = 0) -> FileLock:
    lock = project_lock(job)
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise BusyError(f"{job.project.manifest_path}: another render of this project is running "
                        f"(lock {lock.lock_file}); wait for it to finish") from None
    return lock


def clean_temps(job: Job) -> None:
    """Remove `.tmp-*` files a killed run left in the outputs and the store (under our lock)."""
    _clean_temps(job.out_dir)
    # The store may be shared with other hosts that are writing right now: only stale temps.
    for shared in (job.store.root, job.project.work_dir):
        _clean_temps(shared, min_age_s=3600)


def gpu_lock(device: str) -> FileLock:
    """One GPU job at a time per device on this host (the process-level fallback to Prefect's limit)."""
    lock_dir = Path(os.environ.get("DIA_STUDIO_LOCK_DIR", "/tmp"))
    return FileLock(str(lock_dir / f"dia-studio-{device_identity(device)}.lock"))


def device_identity(device: str) -> str:
    """The physical device a torch device name means in this process, as a file-name-safe word.
    Under CUDA_VISIBLE_DEVICES, cuda:N is the Nth entry of that list: two workers pinned to
    different GPUs both say cuda:0 but hold different devices (and must not wait for each other)."""
    name = device
    if device.startswith("cuda"):
        index = device.partition(":")[2] or "0"
        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        if index.isdigit() and int(index) < len(visible):
            name = f"cuda:{visible[int(index)]}"
        elif device == "cuda":
            name = "cuda:0"
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)
