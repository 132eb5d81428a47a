"""`narrate_catalog`: produce every project under a catalog folder whose inputs changed.

Run nightly from a deployment (see prefect.yaml / flows/serve.py). With `deployment` set, each
project becomes its own flow run of that deployment, picked up by whichever GPU worker of the
pool is free (scale-out); otherwise the projects run here, one after another, as subflows.

With an output folder OUT, each project renders into OUT/<its folder, relative to the catalog>/
(catalog/x/book -> OUT/x/book, projects/short-audiobook -> OUT/short-audiobook): two projects with
the same folder name never share a delivery. A project that fails to load counts as a failure.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from dia_core.errors import InputError
from dia_core.production import delivery, jobs
from dia_core.production.options import RenderOptions
from dia_core.publish.feed import write_feed
from dia_core.script.project import load_project
from flows.produce import produce


def find_projects(catalog: str | Path) -> list[Path]:
    return sorted(p for p in Path(catalog).rglob("project.yaml") if ".dia-studio" not in p.parts)


def project_options(catalog: str | Path, project_path: str | Path, options: RenderOptions) -> RenderOptions:
    """The options one project of the catalog renders with: with an output folder OUT, out_dir is
    chosen so that the project's delivery is OUT/<project folder relative to the catalog>/."""
    if not options.out_dir:
        return options
    rel = Path(project_path).parent.relative_to(Path(catalog))
    return options.replace(out_dir=str(Path(options.out_dir) / rel.parent))


@task(name="changed-projects", cache_policy=NO_CACHE)
def changed_projects(catalog: str, options: dict) -> dict:
    """{"todo": projects whose inputs hash differs from the one recorded in their last complete
    project manifest, "invalid": {project: error} for projects that do not load}."""
    logger = get_run_logger()
    todo, invalid = [], {}
    for path in find_projects(catalog):
        opts = project_options(catalog, path, RenderOptions.from_dict(options))
        try:
            project = load_project(path)
            current = delivery.inputs_hash(project, opts)
        except (InputError, OSError) as e:   # counted as a failed project, not skipped
            logger.error(f"invalid project: {path}: {e}")
            invalid[str(path)] = str(e)
            continue
        manifest = jobs.output_dir(project, opts) / "manifest.json"
        try:
            recorded = json.loads(manifest.read_text())
            recorded = recorded.get("inputs_hash") if recorded.get("complete") else None
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded != current:
            todo.append(str(path))
        else:
            logger.info(f"{path}: unchanged since its last delivery, skipped")
    return {"todo": todo, "invalid": invalid}


@flow(name="narrate_catalog", log_prints=True)
def narrate_catalog(catalog: str, options: RenderOptions | None = None,
                    deployment: str | None = None) -> dict[str, str]:
    """Produce the changed projects of a catalog; returns {project: final state}. The options (engine
    settings included) are passed on to every project's run."""
    options = options or RenderOptions()
    found = changed_projects(catalog, options.to_dict())
    todo = found["todo"]
    states = {p: "INVALID" for p in found["invalid"]}
    if deployment:
        # Submit every project first so all workers of the pool get work, then wait for them.
        # the workers run elsewhere: every path they receive is absolute
        runs = {p: run_deployment(deployment, timeout=0, as_subflow=True, parameters={
                    "project": str(Path(p).resolve()),
                    "options": project_options(catalog, p, options).for_other_hosts().to_dict()}) for p in todo}
        states |= {p: _wait(run.id) for p, run in runs.items()}
    else:
        for p in todo:
            state = produce(project=p, options=project_options(catalog, p, options), return_state=True)
            states[p] = state.type.value
    feed = write_catalog_feed(catalog, options)
    if feed is not None:
        get_run_logger().info(f"podcast feed: {feed}")
    failed = [p for p, s in states.items() if s != "COMPLETED"]
    if failed:
        why = [f"{p} ({found['invalid'][p]})" if p in found["invalid"] else p for p in failed]
        raise RuntimeError(f"{len(failed)} of {len(states)} projects failed: {', '.join(why)}")
    return states


def write_catalog_feed(catalog: str | Path, options: RenderOptions) -> Path | None:
    """One feed.xml for the catalog's podcast episodes (those with a `podcast:` section that have
    been delivered): OUT/feed.xml with an output folder, else <catalog>/feed.xml."""
    root = Path(options.out_dir) if options.out_dir else Path(catalog)
    return write_feed(root, root / "feed.xml")


def _wait(flow_run_id, poll_s: float = 2.0) -> str:
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                return run.state.type.value
            time.sleep(poll_s)
