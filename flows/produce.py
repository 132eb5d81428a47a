"""`produce`: render one project. The recipe reads top to bottom; the work is in dia_core.production.

Tasks pass paths and small JSON, never audio or tensors (Prefect would hash them as inputs).
"""
from __future__ import annotations

import collections
import hashlib
import json
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact,
                               create_table_artifact, update_progress_artifact)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from dia_core.production import delivery, drift, folder, jobs, manifests, publishing, takes
from dia_core.production.options import ProgressFn, RenderOptions, finish_workers
from dia_core.review import apply as review
from flows import sharded
from flows.gpu import gpu_slot  # noqa: F401  (flows.produce.gpu_slot: where tests and users found it)


def _job(project: str, options: dict, *, fresh: bool = False) -> jobs.Job:
    """Open the job once per flow run (the flow opens it ``fresh``: a process that renders again
    after an edit must not reuse the old plan); its tasks reuse it. The engine is cached apart
    (jobs.load_engine) and loads only once per process. Tasks get the options as a dict (JSON, as
    Prefect records task parameters)."""
    opts = RenderOptions.from_dict(options)
    key = (project, opts)
    if fresh or key not in _JOBS:
        _JOBS[key] = jobs.open_job(project, opts)
    return _JOBS[key]


_JOBS: dict = {}


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(project: str, options: dict) -> list[dict]:
    job = _job(project, options)
    for w in job.plan.warnings:
        get_run_logger().warning(w)
    return [{"id": c.id, "title": c.title, "segments": len(c.segments)} for c in job.plan.chapters]


PROGRESS_INTERVAL_S = 1.0   # the Prefect UI's progress artifact: updates at most this often


@task(name="generate-takes", cache_policy=NO_CACHE)
def generate_task(project: str, options: dict, on_progress: ProgressFn | None = None) -> str:
    job = _job(project, options)
    logger = get_run_logger()
    progress_id = create_progress_artifact(0.0, key=_artifact_key(job, "progress"),
                                           description=f"{job.project.title}: segments finished")

    last = [0.0]

    def progress(done: int, total: int) -> None:
        # one server call per update: at most one a second (and the last), not one per segment
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_INTERVAL_S:
            update_progress_artifact(progress_id, 100.0 * done / max(total, 1))
            last[0] = now
        if on_progress is not None:
            on_progress(done, total)

    prompts = takes.prepare_voices(job, log=logger.info)
    applied = review.Applied.load(job.project.work_dir)   # review.yaml as this render applied it
    # the GPU slot is taken only if something is generated: a cached re-render never waits for it
    outcomes = review.generate_takes(job, prompts, applied, progress, log=logger.info,
                                     hold_device=lambda: gpu_slot(job.engine_device))
    generated = sum(a.generated for o in outcomes.values() for a in o.attempts)
    logger.info(f"drift report: {drift.write_drift_report(job, outcomes)}")
    logger.info(f"{generated} takes generated in this run, {len(outcomes)} segments settled")
    failed = [sid for sid, o in outcomes.items() if not o.chosen.qc["passed"] and "~" not in sid]
    if failed:
        logger.warning(f"{len(failed)} segment(s) failed QC on every attempt and are delivered anyway "
                       f"(see the manifest's qc_failed): {', '.join(failed)}")
    # what the chapters this run leaves alone must match (a pinned segment's first key is its pin)
    delivery.save_book_hashes(job, prompts, {sid: p["take"] for sid, p in applied.pins.items()})
    return str(takes.save_outcomes(job, outcomes))


@task(name="chapter", cache_policy=NO_CACHE)
def chapter_task(project: str, options: dict, chapter_id: str, outcomes_path: str) -> dict:
    job = _job(project, options)
    outcomes = takes.load_outcomes(outcomes_path)
    annotations = review.manifest_annotations(review.Applied.load(job.project.work_dir), outcomes,
                                              job.chapter(chapter_id))
    result = delivery.finish_chapter(job, chapter_id, outcomes, annotations)
    create_table_artifact(
        key=_artifact_key(job, chapter_id),
        table=_segment_rows(job.out_dir / result["manifest"]),
        description=f'{chapter_id} "{result["title"]}": {result["segments"]} segments, '
                    f'{result["attempts"]} takes, {result["duration_s"]:.1f} s, '
                    f'profile {"passed" if result["passed"] else "FAILED"}')
    return result


@task(name="collect-chapters", cache_policy=NO_CACHE)
def collect_task(project: str, options: dict, finished: list[dict]) -> dict:
    """The whole book: this run's chapters and the earlier renders' current ones (partial renders)."""
    job = _job(project, options)
    chapters, missing = delivery.collect_chapters(job, finished)
    reused = [c["id"] for c in chapters if not c["rendered"]]
    if reused:
        get_run_logger().info(f"unchanged since their last render, reused: {', '.join(reused)}")
    if missing:
        get_run_logger().warning(
            f"delivery incomplete: {', '.join(missing)} not rendered yet or out of date; the manifest says "
            f"complete: false and there is no {delivery.book_name(job)} until the whole book is rendered")
    return {"chapters": chapters, "missing": missing}


@task(name="export-book", cache_policy=NO_CACHE)
def book_task(project: str, options: dict, chapters: list[dict], missing: list[str] | None = None) -> dict | None:
    return delivery.export_book(_job(project, options), chapters, missing or ())


@task(name="project-manifest", cache_policy=NO_CACHE)
def manifest_task(project: str, options: dict, chapters: list[dict], book: dict | None,
                  started_at: str, missing: list[str] | None = None) -> str:
    job = _job(project, options)
    path = delivery.write_project_manifest(job, chapters, book, started_at, missing or (),
                                           publishing.published_files(job) if not missing else ())
    create_markdown_artifact(key=_artifact_key(job, "summary"),
                             markdown=_summary(job, chapters, book, missing or ()),
                             description=f"{job.project.title}: delivery summary")
    return str(path)


@task(name="credits", cache_policy=NO_CACHE)
def credits_task(project: str, options: dict) -> list[dict]:
    """Opening and closing credits in the narration voice (profiles that ask for them: acx)."""
    job = _job(project, options)
    with gpu_slot(job.engine_device):
        return publishing.render_credits(job, log=get_run_logger().info)


@task(name="publish", cache_policy=NO_CACHE)
def publish_task(project: str, options: dict, chapters: list[dict], credits: list[dict] | None) -> dict:
    """The podcast episode (feed record, chapters, transcripts) and the ACX package with its report."""
    job = _job(project, options)
    published = publishing.publish(job, chapters, credits)
    report = published.get("acx")
    if report is not None and not report["passed"]:
        get_run_logger().warning(f"ACX package: {sum(not r['passed'] for r in report['files'])} file(s) fail; "
                                 f"see {job.out_dir / 'acx' / 'acx-report.md'}")
    return published


def _run_name() -> str:
    # resolved: a render started inside the project folder passes "project.yaml" (parent "")
    return f"produce {Path(flow_run.parameters['project']).resolve().parent.name}"


@flow(name="produce", flow_run_name=_run_name, log_prints=True)
def produce(project: str, options: RenderOptions | None = None, on_progress: ProgressFn | None = None) -> str:
    """Render one project: plan -> voices -> takes (QC, regenerate) -> chapters -> book -> manifest.
    ``on_progress(settled, total)`` observes segment progress in this process (the CLI's bar); the
    Prefect UI shows the same as a progress artifact."""
    options = (options or RenderOptions()).to_dict()
    started_at = manifests.utc_now()
    job = _job(project, options, fresh=True)
    lock = jobs.acquire_project_lock(job)
    try:
        # review.yaml (pins, retakes, text fixes): applied to the plan once, recorded for the tasks
        review.apply_decisions(job, log=get_run_logger().warning).save(job.project.work_dir)
        # The output folder is this project's (InputError if another project's, before any work).
        folder.claim(job.project, job.out_dir, started_at)
        jobs.clean_temps(job)  # temp files a killed run left behind; never published files
        planned = plan_task(project, options)
        if job.options.shard_deployment:
            finished = _generate_sharded(job, project, options, planned, started_at, on_progress)
        else:  # in this process: all the missing takes as one shard, then every chapter
            outcomes = generate_task(project, options, on_progress)
            delivery.open_delivery(job, started_at)  # the old manifest.json goes aside before any file changes
            finished = _finish_chapters(planned, options, lambda c: chapter_task.with_options(
                task_run_name=_chapter_run_name(c)).submit(project, options, c["id"], outcomes))
        book_chapters = collect_task(project, options, finished)  # + current chapters not rendered now
        chapters, missing = book_chapters["chapters"], book_chapters["missing"]
        book = book_task(project, options, chapters, missing)
        published = {}
        if not missing:   # a partial delivery is not published
            credits = credits_task(project, options) if publishing.wants_credits(job.project) else None
            published = publish_task(project, options, chapters, credits)
        # last, listing the published files too (the folder holds exactly what it lists)
        manifest = manifest_task(project, options, chapters, book, started_at, missing)
        delivery.check_strict(job, chapters, book)
        publishing.check_strict(job, published)
        return manifest
    finally:
        lock.release()


def _generate_sharded(job: jobs.Job, project: str, options: dict, planned: list[dict], started_at: str,
                      on_progress: ProgressFn | None) -> list[dict]:
    """Shards on the pool (flows/sharded.py); each chapter is finished (a task of its own, here)
    as soon as all of its takes are in the store, while the other shards still generate."""
    futures: dict = {}
    limit = finish_workers(job.options)

    def finish(chapter_ids: list[str], outcomes_path: str) -> None:
        if not futures:
            delivery.open_delivery(job, started_at)  # before the first chapter file changes
        for c in planned:
            if c["id"] in chapter_ids:
                running = [f for f in futures.values() if not f.state.is_final()]
                while len(running) >= limit:   # at most finish_workers chapters at a time
                    running.pop(0).wait()
                futures[c["id"]] = chapter_task.with_options(task_run_name=_chapter_run_name(c)).submit(
                    project, options, c["id"], outcomes_path)

    sharded.generate_on_pool(job, project, options, finish, on_progress)
    return [futures[c["id"]].result() for c in planned]


def _finish_chapters(planned: list[dict], options: dict, submit) -> list[dict]:
    """Every planned chapter finished by ``submit(chapter) -> future``, at most finish_workers at
    a time (finishing is CPU work; a chapter holds a few copies of its audio), results in order."""
    limit = finish_workers(RenderOptions.from_dict(options))
    futures, running = {}, collections.deque()
    for c in planned:
        if len(running) >= limit:
            running.popleft().wait()
        futures[c["id"]] = submit(c)
        running.append(futures[c["id"]])
    return [futures[c["id"]].result() for c in planned]


def _chapter_run_name(c: dict) -> str:
    return f'{c["id"]} "{c["title"]}"'


def _artifact_key(job: jobs.Job, what: str) -> str:
    """<folder name>-<8 hex of the project's path>-<what>: two projects with the same folder name
    (x/book, y/book) keep apart in the UI. Keys allow lowercase letters, digits and dashes only."""
    name = "".join(ch if ch.isalnum() else "-" for ch in job.project.root.name.lower()).strip("-")[:60]
    tag = hashlib.sha256(str(job.project.manifest_path.resolve()).encode()).hexdigest()[:8]
    what = "".join(ch if ch.isalnum() else "-" for ch in what.lower())
    return f"{name}-{tag}-{what}"[:100]


def _segment_rows(chapter_manifest) -> list[dict]:
    data = json.loads(open(chapter_manifest).read())
    return [{"segment": s["id"], "speakers": ", ".join(dict.fromkeys(s["speakers"])),
             "attempts": len(s["attempts"]), "qc": "pass" if s["qc"]["passed"] else "FAIL: " + "; ".join(s["qc"]["failures"]),
             **_listen_columns(s["qc"].get("listen") or {}),
             "start": s["start_ms"] / 1000, "seconds": (s["end_ms"] - s["start_ms"]) / 1000,
             "text": s["text"][:80]} for s in data["segments"]]


def _listen_columns(listen: dict) -> dict:
    """What the listener heard (dia_core.listen): words heard in order (or WER) and the lowest turn similarity."""
    words, sims = listen.get("words") or {}, [t["similarity"] for t in listen.get("turns") or [] if t.get("similarity") is not None]
    heard = (f'{words["hit_ratio"]:.0%} heard' if words.get("backend") == "pocketsphinx" else f'WER {words["wer"]:.2f}') \
        if words else listen.get("error", "off" if listen.get("listener") == "off" else "")
    return {"words": heard, "voice": round(min(sims), 3) if sims else None}


def _summary(job: jobs.Job, chapters: list[dict], book: dict | None, missing: list[str] | tuple = ()) -> str:
    lines = [f"# {job.project.title}", "",
             f"Profile **{job.project.delivery.profile}**{' (strict)' if job.project.delivery.strict else ''}; "
             f"engine {job.engine.name} `{job.engine.model_id}`", ""]
    qc_failed = sum(c["qc_failed"] for c in chapters)
    if qc_failed:
        lines += [f"**QC: {qc_failed} segment{'s' if qc_failed != 1 else ''} failed QC on every attempt and "
                  f"{'were' if qc_failed != 1 else 'was'} delivered anyway** (listed per chapter below and in "
                  f"the manifest's `qc_failed`).", ""]
    if missing:
        lines += [f"**Incomplete: {', '.join(missing)} not rendered yet or out of date**; no M4B until the whole "
                  f"book is rendered (the manifest says `complete: false`).", ""]
    lines += ["| chapter | duration | loudness | RMS | true peak | noise floor | profile | QC |",
              "|---|---|---|---|---|---|---|---|"]
    for c in chapters:
        m = c["measurements"] or {}
        f = lambda k, unit: f"{m[k]:.1f} {unit}" if m.get(k) is not None else "-"  # noqa: E731
        verdict = "pass" if c["passed"] else "FAIL: " + "; ".join(c["failures"])
        qc = (f"FAIL: {c['qc_failed']} delivered anyway ({', '.join(c['qc_failed_segments'])})"
              if c["qc_failed"] else "pass")
        reused = "" if c.get("rendered", True) else " (reused)"
        lines.append(f'| {c["id"]} {c["title"]}{reused} | {c["duration_s"]:.1f} s | {f("integrated_lufs", "LUFS")} | '
                     f'{f("rms_db", "dB")} | {f("true_peak_dbtp", "dBTP")} | {f("noise_floor_db", "dB")} | {verdict} | '
                     f'{qc} |')
    if book:
        check = book.get("check")
        if check is None:
            verdict = "not checked"
        else:
            bm = check["measurements"]
            verdict = (("pass" if check["passed"] else "FAIL: " + "; ".join(check["failures"]))
                       + f" (RMS {bm['rms_db']:.1f} dB, true peak {bm['true_peak_dbtp']:.1f} dBTP, "
                         f"sample peak {bm['sample_peak_dbfs']:.1f} dBFS"
                       + (", peak-corrected re-encode" if check.get("corrected") else "") + ")")
        lines += ["", f"Book: `{book['path']}` with {len(book['chapters'])} chapter markers; M4B check: {verdict}."]
    return "\n".join(lines)
