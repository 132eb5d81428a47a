"""Scale-out as documented: the shipped prefect.yaml deployed to a process work pool, two workers
(standing in for two GPU hosts) sharing one segment store, and the catalog fanning projects out."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dia_core.production.options import RenderOptions

REPO = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def make_project(root: Path, title: str, lines: list[str]) -> Path:
    root.mkdir(parents=True)
    (root / "book.md").write_text(f"# {title}\n\n" + "\n\n".join(lines) + "\n")
    (root / "project.yaml").write_text(
        f"title: {title}\nauthor: Test Author\nmanuscript: book.md\nseed: 3\n"
        "voices:\n  reader:\n    seed: 5\nnarrator_voice: reader\n"
        "delivery:\n  profile: podcast\n  formats: [mp3]\n  captions: [vtt]\n"
        "qc:\n  asr: off\n  voice_check: false\n")
    return root / "project.yaml"


def test_two_workers_render_a_catalog_each_project_once(tmp_path, subprocess_env):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from flows.catalog import narrate_catalog

    catalog, out, store = tmp_path / "catalog", tmp_path / "out", tmp_path / "shared-store"
    make_project(catalog / "book-a", "Book A", ["The first book has a short line.", "And a second one."])
    make_project(catalog / "book-b", "Book B", ["The second book is brief as well.", "It ends here."])

    env = dict(subprocess_env, DIA_STUDIO_HOME=str(REPO), DIA_STUDIO_STORE=str(store),
               PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1")
    run = lambda *args: subprocess.run([*PREFECT, *args], cwd=REPO, env=env, check=True,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    run("work-pool", "create", "dia-gpu", "--type", "process", "--overwrite")
    run("--no-prompt", "deploy", "--all")

    workers, logs = [], []
    for i in range(2):
        log = open(tmp_path / f"worker-{i}.log", "w")
        # Each worker stands for one GPU host: its own host-local GPU lock directory.
        lock_dir = tmp_path / f"host-{i}"
        lock_dir.mkdir()
        workers.append(subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", "dia-gpu", "--limit", "1", "--name", f"gpu-host-{i}"],
            cwd=REPO, env=dict(env, DIA_STUDIO_LOCK_DIR=str(lock_dir)), stdout=log, stderr=subprocess.STDOUT))
        logs.append(log)
    try:
        options = RenderOptions(draft=True, out_dir=str(out), store=str(store), batch_size=1)
        states = narrate_catalog(catalog=str(catalog), options=options, deployment="produce/gpu")
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
        for log in logs:
            log.close()
    assert set(states.values()) == {"COMPLETED"} and len(states) == 2

    with get_client(sync_client=True) as client:
        [deployment] = client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["gpu"])))
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=["gpu"])))
    projects = sorted(Path(r.parameters["project"]).parent.name for r in runs)
    assert projects == ["book-a", "book-b"]  # each project exactly once
    assert all(r.state.is_completed() for r in runs)
    assert all(r.parameters["options"]["batch_size"] == 1 for r in runs)  # engine settings reach every run
    assert all(r.parameters["options"]["out_dir"] == str(out) for r in runs)  # OUT/<folder in the catalog>/

    records = [json.loads(p.read_text()) for p in store.rglob("take.json")]
    by_run: dict[str, set] = {}
    for r in records:
        if r["kind"] == "segment":
            by_run.setdefault(r["run"], set()).add(r["segment_id"])
    assert len(by_run) == 2  # two worker processes generated, and no segment was generated twice
    assert sum(len(v) for v in by_run.values()) == len({r["segment_id"] for r in records if r["kind"] == "segment"})
    for name in ("book-a", "book-b"):
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert manifest["complete"] and (out / name / "chapter-01.mp3").exists()
    # The catalog skips projects whose inputs did not change since their last manifest.
    again = narrate_catalog(catalog=str(catalog), options=RenderOptions(draft=True, out_dir=str(out),
                                                                        store=str(store)),
                            deployment="produce/gpu")
    assert again == {}
