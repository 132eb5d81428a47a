"""Sharded generation: one book on many GPU workers.

`produce` with a shard deployment (`--shard-deployment generate-shard/gpu`) splits the takes the
store lacks into shards of about N minutes of audio (dia_core.production.shards) and submits each
as a run of that deployment (`generate_shard` below, in prefect.yaml), so every free worker of its
pool takes one. All shards write into the shared content-addressed store. The produce run waits
for them and hands each chapter to finishing as soon as all of its takes are in the store.

A shard run that fails is retried by Prefect (the flow's `retries`). A shard whose worker dies
(kill -9, a host lost) cannot report anything: its run stays Running. Each shard touches a
heartbeat file in the store (the one storage every worker and the producer share) every second;
when it stops changing for DIA_STUDIO_SHARD_STALE_S seconds (default 60) by the producer's own
clock, the producer puts the run back to Scheduled (AwaitingRetry) and a free worker runs it
again. The retry only generates what the store still lacks, so no stored take is generated twice.
"""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import AwaitingRetry

from dia_core import atomic
from dia_core.errors import InputError
from dia_core.production import delivery, jobs, shards, takes
from dia_core.production.options import ProgressFn, RenderOptions
from dia_core.review import apply as review
from flows.gpu import gpu_slot

SHARD_FLOW = "generate-shard"
HEARTBEAT_S = 1.0
MAX_RESTARTS = 3   # per shard, for runs whose worker died; failures are retried by the flow itself


def stale_after_s() -> float:
    return float(os.environ.get("DIA_STUDIO_SHARD_STALE_S", "60"))


def heartbeat_path(store_root: Path, flow_run_id) -> Path:
    return Path(store_root) / ".shards" / f"{flow_run_id}.beat"


@contextlib.contextmanager
def heartbeat(path: Path):
    """Rewrite ``path`` every HEARTBEAT_S seconds (pid and a counter) while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        n = 0
        while not stop.is_set():
            with contextlib.suppress(OSError):
                atomic.write_text(path, f"{os.getpid()} {n}\n")
            n += 1
            stop.wait(HEARTBEAT_S)

    thread = threading.Thread(target=beat, name="shard-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        with contextlib.suppress(OSError):
            path.unlink()


def worker_name() -> str:
    """The Prefect worker running this process (a process worker sets PREFECT__WORKER_NAME), else the host."""
    return os.environ.get("PREFECT__WORKER_NAME") or socket.gethostname()


def _shard_run_name() -> str:
    shard = flow_run.parameters["shard"]
    return (f"{Path(flow_run.parameters['project']).resolve().parent.name} shard {shard['index'] + 1} "
            f"on {worker_name()}")


@flow(name=SHARD_FLOW, flow_run_name=_shard_run_name, retries=2, retry_delay_seconds=2, log_prints=True)
def generate_shard(project: str, options: dict, shard: dict) -> dict:
    """Generate one shard's takes into the store (the take loop: QC and regenerations included)."""
    logger = get_run_logger()
    job = jobs.open_job(project, RenderOptions.from_dict(options))
    review.apply_decisions(job)  # retake seeds and text fixes, as the producer applied them
    piece = shards.Shard.from_dict(shard)
    with heartbeat(heartbeat_path(job.store.root, flow_run.id)):
        prompts = takes.prepare_voices(job, log=logger.info)
        outcomes = takes.generate_takes(job, prompts, log=logger.info, only=set(piece.segment_ids),
                                        hold_device=lambda: gpu_slot(job.engine_device))
    generated = sum(a.generated for o in outcomes.values() for a in o.attempts)
    logger.info(f"shard {piece.index + 1}: {generated} takes generated on {worker_name()}, "
                f"{len(outcomes)} segments settled")
    return {"shard": piece.index, "worker": worker_name(), "generated": generated}


# ---- the producer's side -------------------------------------------------------------------------

def check_shard_target(deployment: str, field: str = "--shard-deployment") -> None:
    """Bad input unless ``deployment`` exists, runs the generate-shard flow and its work pool exists."""
    check_deployment(deployment, SHARD_FLOW, field)


def check_deployment(deployment: str, flow: str, field: str) -> None:
    """Bad input unless ``deployment`` exists, runs the flow named ``flow`` and its work pool exists."""
    with get_client(sync_client=True) as client:
        try:
            dep = client.read_deployment_by_name(deployment)
        except (ObjectNotFound, ValueError):
            raise InputError(f"deployment {deployment!r} not found on the Prefect server; register "
                             f"prefect.yaml's deployments with `prefect deploy --all`", field=field) from None
        flow_name = client.read_flow(dep.flow_id).name
        if flow_name != flow:
            raise InputError(f"deployment {deployment!r} runs the flow {flow_name!r}, not {flow!r}",
                             field=field)
        if not dep.work_pool_name:
            raise InputError(f"deployment {deployment!r} has no work pool", field=field)
        try:
            client.read_work_pool(dep.work_pool_name)
        except ObjectNotFound:
            raise InputError(f"work pool {dep.work_pool_name!r} of deployment {deployment!r} does not exist; "
                             f"create it with `prefect work-pool create {dep.work_pool_name} --type process`",
                             field=field) from None


def check_store_writable(root: Path) -> None:
    """Bad input unless the segment store can be created and written here (the shards write it)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".tmp-probe-"):
            pass
    except OSError as e:
        raise InputError(f"the segment store cannot be written: {e.strerror or e}", file=root,
                         field="--store") from None


def generate_on_pool(job: jobs.Job, project: str, options: dict,
                     on_ready: Callable[[list[str], str], None],
                     on_progress: ProgressFn | None = None, poll_s: float = 1.0) -> None:
    """Generate the project's missing takes as shard runs of ``job.options.shard_deployment``;
    ``on_ready(chapter_ids, outcomes_path)`` as soon as chapters have all their takes."""
    logger = get_run_logger()
    opts = job.options
    check_shard_target(opts.shard_deployment)
    check_store_writable(job.store.root)
    prompts = takes.prepare_voices(job, log=logger.info)  # calibration first: every shard uses the prompts
    # review.yaml: pinned segments keep their take (no shard); the producer's job has the decisions applied
    applied = review.Applied.load(job.project.work_dir)
    pins = {sid: p["take"] for sid, p in applied.pins.items()}
    settled, todo = shards.read_store(job, prompts, [s for s in job.plan.segments if s.id not in pins])
    settled.update({s.id: review.pinned_outcome(job, s, pins[s.id]) for s in job.plan.segments if s.id in pins})
    if applied.alternatives:
        logger.warning("review.yaml asks for alternatives: a sharded render does not generate them; "
                       "render without --shard-deployment to get them")
    total = len(settled) + len(todo)
    minutes = opts.shard_minutes or shards.DEFAULT_SHARD_MINUTES
    plan = shards.plan_shards(todo, minutes)
    logger.info(f"{len(todo)} of {total} segments to generate: {len(plan)} shard(s) of at most {minutes:g} min "
                f"of audio on {opts.shard_deployment}")
    finishing: set[str] = set()

    def settle(new: dict) -> None:
        settled.update(new)
        if on_progress is not None:
            on_progress(len(settled), total)
        ready = shards.ready_chapters(job, settled, finishing)
        if ready:
            finishing.update(ready)
            on_ready(ready, str(takes.save_outcomes(job, settled)))

    settle({})  # chapters whose takes were all in the store already
    # The shard runs see the same project, options, store and local weights, by absolute paths
    # (workers run elsewhere: from $DIA_STUDIO_HOME).
    params = {"project": str(Path(project).resolve()),
              "options": {**opts.for_other_hosts().to_dict(), "store": str(job.store.root.resolve())}}
    pending = {run_deployment(opts.shard_deployment, timeout=0, as_subflow=True,
                              parameters={**params, "shard": s.to_dict()}).id: s for s in plan}
    _wait_for_shards(job, pending, lambda s: settle(_settled(job, prompts, s)), poll_s)
    delivery.save_book_hashes(job, prompts, pins)


def _settled(job: jobs.Job, prompts: dict, shard: shards.Shard) -> dict:
    ids = set(shard.segment_ids)
    new, missing = shards.read_store(job, prompts, [s for s in job.plan.segments if s.id in ids])
    if missing:
        raise RuntimeError(f"shard {shard.index + 1} completed but {len(missing)} of its segments have no "
                           f"settled take in {job.store.root} (first: {missing[0].id})")
    return new


def _wait_for_shards(job: jobs.Job, pending: dict[UUID, shards.Shard],
                     on_done: Callable[[shards.Shard], None], poll_s: float) -> None:
    """Wait for every shard run; put runs whose worker died (heartbeat stale) back to Scheduled."""
    logger = get_run_logger()
    stale_s = stale_after_s()
    seen: dict[UUID, tuple] = {}      # run -> ((state, heartbeat), when it last changed, producer's clock)
    restarts: dict[UUID, int] = {}
    with get_client(sync_client=True) as client:
        while pending:
            for run_id, shard in list(pending.items()):
                run = client.read_flow_run(run_id)
                state = run.state
                if state.is_completed():
                    del pending[run_id]
                    on_done(shard)
                    continue
                if state.is_final() and not (state.is_crashed() and restarts.get(run_id, 0) < MAX_RESTARTS):
                    raise RuntimeError(f"shard {shard.index + 1} ({run.name}) ended {state.type.value}: "
                                       f"{state.message or 'see its flow run log'}")
                beat = _read(heartbeat_path(job.store.root, run_id))
                mark = (state.type, state.name, beat)
                now = time.monotonic()
                if seen.get(run_id, (None,))[0] != mark:
                    seen[run_id] = (mark, now)
                # Running: its heartbeat stopped. Pending (claimed by a worker, not started): 10x longer.
                limit = stale_s if state.is_running() else 10 * stale_s
                dead = state.is_crashed() or ((state.is_running() or state.is_pending())
                                              and now - seen[run_id][1] > limit)
                if dead:
                    if restarts.get(run_id, 0) >= MAX_RESTARTS:
                        raise RuntimeError(f"shard {shard.index + 1} ({run.name}) lost its worker "
                                           f"{MAX_RESTARTS + 1} times")
                    restarts[run_id] = restarts.get(run_id, 0) + 1
                    logger.warning(f"shard {shard.index + 1} ({run.name}): {state.type.value.lower()} with no "
                                   f"heartbeat for {now - seen[run_id][1]:.0f} s; its worker is gone, "
                                   f"rescheduled for another worker")
                    client.set_flow_run_state(run_id, AwaitingRetry(), force=True)
                    seen.pop(run_id, None)
            if pending:
                time.sleep(poll_s)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
