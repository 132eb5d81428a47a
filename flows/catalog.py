"""`narrate_catalog`: produce every project under a catalog folder whose inputs changed.

Run nightly from a deployment (see prefect.yaml / flows/serve.py). With `deployment` set, each
project becomes its own flow run of that deployment, picked up by whichever GPU worker of the
pool is free (scale-out); otherwise the projects run here, one after another, as subflows.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from dia_core.errors import InputError
from dia_core.production import delivery
from dia_core.production.options import RenderOptions
from dia_core.script.project import load_project
from flows.produce import produce


def find_projects(catalog: str | Path) -> list[Path]:
    return sorted(p for p in Path(catalog).rglob("project.yaml") if ".dia-studio" not in p.parts)


@task(name="changed-projects", cache_policy=NO_CACHE)
def changed_projects(catalog: str, options: dict) -> list[str]:
    """Projects whose inputs hash differs from the one recorded in their last project manifest."""
    logger = get_run_logger()
    opts = RenderOptions.from_dict(options)
    todo = []
    for path in find_projects(catalog):
        try:
            project = load_project(path)
        except InputError as e:
            logger.error(f"skipping invalid project: {e}")
            continue
        out_dir = Path(opts.out_dir) / project.root.name if opts.out_dir else project.output_dir
        manifest = out_dir / "manifest.json"
        recorded = json.loads(manifest.read_text()).get("inputs_hash") if manifest.exists() else None
        if recorded != delivery.inputs_hash(project, opts):
            todo.append(str(path))
        else:
            logger.info(f"{path}: unchanged since its last delivery, skipped")
    return todo


@flow(name="narrate_catalog", log_prints=True)
def narrate_catalog(catalog: str, options: RenderOptions | None = None,
                    deployment: str | None = None) -> dict[str, str]:
    """Produce the changed projects of a catalog; returns {project: final state}. The options (engine
    settings included) are passed on to every project's run."""
    options = options or RenderOptions()
    todo = changed_projects(catalog, options.to_dict())
    params = {"options": options.to_dict()}
    states = {}
    if deployment:
        from prefect.deployments import run_deployment

        # Submit every project first so all workers of the pool get work, then wait for them.
        runs = {p: run_deployment(deployment, parameters={"project": p, **params}, timeout=0,
                                  as_subflow=True) for p in todo}
        states = {p: _wait(run.id) for p, run in runs.items()}
    else:
        for p in todo:
            state = produce(project=p, options=options, return_state=True)
            states[p] = state.type.value
    failed = [p for p, s in states.items() if s != "COMPLETED"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(states)} projects failed: {', '.join(failed)}")
    return states


def _wait(flow_run_id, poll_s: float = 2.0) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                return run.state.type.value
            time.sleep(poll_s)
