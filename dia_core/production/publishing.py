"""Publishing a finished delivery: the credits files, the podcast episode (``podcast:``) and the
ACX package (profile ``acx``). Runs after the project manifest; the files go to subfolders the
superseding of dia_core.production.folder never touches (``credits/``, ``podcast/``, ``acx/``).

Credits (``acx.credits``, on by default with the acx profile) are two extra chapters planned from
the metadata, "This is <title>, written by <author>, narrated by <narrator>." and "The end of
<title>.", read by the narration voice, rendered with the project's engine and takes store like any
chapter (so a re-render reuses them) and finished into ``credits/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..publish import acx, episode
from ..script.manuscript import Block, Chapter, SourceRef
from ..script.planner import plan_chapters
from . import delivery, manifests, takes
from .jobs import Job

__all__ = ["credit_texts", "plan_credits", "wants_credits", "render_credits", "publish", "check_strict",
           "CREDITS_DIR", "published_files"]

CREDITS_DIR = "credits"
CREDIT_IDS = ("opening-credits", "closing-credits")


def credit_texts(project) -> tuple[str, str]:
    narrated = f", narrated by {project.narrator}" if project.narrator else ""
    return (f"This is {project.title}, written by {project.author}{narrated}.", f"The end of {project.title}.")


def wants_credits(project) -> bool:
    """The delivery profile asks for credits files (ACX does) and the project did not turn them off."""
    return project.delivery.profile == "acx" and project.acx.credits


def plan_credits(project):
    """The opening and closing credits planned as two chapters (ids opening-/closing-credits)."""
    source = SourceRef(project.relpath(project.manifest_path), 1)
    chapters = [Chapter(0, title, source, [Block("narration", project.narration_voice, "Narrator", text, source,
                                                 "chapter_start", 0)], has_heading=False)
                for title, text in zip(("Opening credits", "Closing credits"), credit_texts(project))]
    plan = plan_chapters(project, chapters, total_chapters=1)
    plan.warnings = []   # the project's own warnings are the book plan's
    for cp, cid in zip(plan.chapters, CREDIT_IDS):
        cp.id = cid
    return plan


def render_credits(job: Job, log: Callable[[str], None] = lambda _m: None) -> list[dict]:
    """Generate (or reuse from the store) and finish the credits into ``<delivery>/credits/``;
    returns their chapter results (as delivery.finish_chapter)."""
    plan = plan_credits(job.project)
    sub = Job(job.project, plan, job.options, job.out_dir / CREDITS_DIR, job.store, plan, job._engine)
    prompts = takes.prepare_voices(sub, log)
    outcomes = takes.generate_takes(sub, prompts, log=log)
    results = [delivery.finish_chapter(sub, c.id, outcomes) for c in plan.chapters]
    for r in results:   # paths relative to the delivery folder, like the book's chapters
        r["manifest"] = f"{CREDITS_DIR}/{r['manifest']}"
        r["files"] = [{**f, "path": f"{CREDITS_DIR}/{f['path']}"} for f in r["files"]]
    return results


def publish(job: Job, chapters: list[dict], credits: list[dict] | None = None) -> dict:
    """The podcast episode and/or the ACX package of a complete delivery; returns what was made:
    {"episode": record | None, "acx": report | None}."""
    project = job.project
    settings = project.delivery
    out = {"episode": None, "acx": None}
    if project.podcast is not None:
        out["episode"] = episode.build_episode(project, job.out_dir, chapters, settings)
    if settings.profile == "acx":
        out["acx"] = acx.build_package(project, job.out_dir, chapters, credits or [], settings, seed=project.seed)
    return out


def published_files(job: Job) -> list[dict]:
    """File entries (path, sha256, bytes) of everything the publish step and the credits wrote: the
    project manifest lists them, so the folder still holds exactly what manifest.json lists."""
    out_dir = Path(job.out_dir)
    entries = []
    for sub in (CREDITS_DIR, episode.EPISODE_DIR, acx.ACX_DIR):
        folder = out_dir / sub
        if folder.is_dir():
            entries += [manifests.file_entry(p, relative_to=out_dir)
                        for p in sorted(folder.rglob("*"))
                        if p.is_file() and not p.is_symlink() and not p.name.startswith(".tmp")]
    return entries


def check_strict(job: Job, published: dict) -> None:
    """A strict acx profile fails the run on a failed row of the ACX report (files written)."""
    report = (published or {}).get("acx")
    if not report or report["passed"] or not job.project.delivery.strict:
        return
    failed = [f"{r['file']}: {', '.join(r['reasons'])}" for r in report["files"] if not r["passed"]]
    if not report["cover"]["passed"]:
        failed.append(f"cover: {', '.join(report['cover']['reasons'])}")
    raise delivery.DeliveryFailed(f"{job.project.manifest_path}: ACX package not conformant (strict), see "
                                  f"{Path(job.out_dir) / acx.ACX_DIR / 'acx-report.md'}: {'; '.join(failed)}")


