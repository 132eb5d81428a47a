"""Scale-out as documented: the shipped prefect.yaml deployed to a process work pool, two workers
(standing in for two GPU hosts) sharing one segment store.

One book is rendered by `dia-studio render --shard-deployment generate-shard/gpu`: its takes are
split into four shards, both workers take shards, one worker (and the shard it runs) is killed
with SIGKILL mid-shard, and the render still completes: every take is generated exactly once
(store puts counted across processes) and the delivery equals a single-process render byte for byte.
The single-worker render it is compared with is the catalog's fan-out of the same book to
produce/gpu. The same path runs once more on the Dia engine, with a tiny random checkpoint and DAC
written by the test (two shards, one per worker, compared with a single-process render). A last,
cheap test checks the bad inputs (a deployment or pool that does not exist, a store that cannot be
written)."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dia_core.errors import InputError
from dia_core.production import jobs, shards
from dia_core.production.options import RenderOptions

REPO = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
CLI = [sys.executable, "-m", "flows.cli"]
LINES = [
    "The lighthouse keeper counted the ships that passed in the night.",
    "Rain fell on the harbour.",
    "She wrote every name in a blue ledger that smelled of salt and tar.",
    "Nobody answered the bell.",
    "In the morning the fog lifted and the cliffs stood white above the water.",
    "Gulls argued on the roof.",
    "A letter arrived from the mainland, sealed with green wax and tied with string.",
    "He read it twice.",
    "The boat would come on Thursday, if the weather held and the engine did not fail.",
    "It did not come.",
    "So they waited by the stove and told old stories until the lamps burned low.",
    "Then the wind changed.",
]
# Two chapters of eight paragraphs (about one Dia segment each): sixteen segments, four shards.
PARAGRAPHS = [f"Day {i + 1}. {LINES[i % 12]} {LINES[(i + 5) % 12]}" for i in range(16)]
CHAPTERS = [PARAGRAPHS[:8], PARAGRAPHS[8:]]


def make_project(root: Path, title: str, chapters: list[list[str]], dia: bool = False) -> Path:
    """The test book; ``dia``: settings for the tiny random Dia checkpoint: the shortest generations,
    a reference clip as the voice (espeak-ng's; no calibration to generate), one attempt (QC of
    noise would only regenerate noise)."""
    root.mkdir(parents=True)
    text = "".join(f"# {title} {i + 1}\n\n" + "\n\n".join(lines) + "\n\n" for i, lines in enumerate(chapters))
    (root / "book.md").write_text(text)
    sampling, voice, qc = "", "", ""
    if dia:
        subprocess.run(["espeak-ng", "-w", str(root / "reader.wav"), "Hello there."], check=True, timeout=60)
        sampling, voice, qc = ("sampling:\n  max_new_tokens: 500\n",
                               "    reference: reader.wav\n    transcript: Hello there.\n", "  max_attempts: 1\n")
    (root / "project.yaml").write_text(
        f"title: {title}\nauthor: Test Author\nmanuscript: book.md\nseed: 3\n{sampling}"
        f"voices:\n  reader:\n    seed: 5\n{voice}narrator_voice: reader\n"
        "delivery:\n  profile: podcast\n  formats: [mp3]\n  captions: [vtt]\n"
        f"qc:\n{qc}  asr: off\n  voice_check: false\n")
    return root / "project.yaml"


def shard_minutes_for(project: Path, count: int = 4, options: RenderOptions = RenderOptions(draft=True)) -> float:
    """A --shard-minutes that splits this project's segments into exactly ``count`` shards."""
    segments = jobs.open_job(project, options).plan.segments
    total = sum(s.est_seconds for s in segments) / 60
    for k in range(100, 400):
        minutes = total * k / 1000
        if len(shards.plan_shards(segments, minutes)) == count:
            return minutes
    raise AssertionError(f"no shard size gives {count} shards")


@pytest.fixture(scope="module")
def pool(tmp_path_factory, prefect_api):
    """The shipped prefect.yaml deployed to a process pool `dia-gpu`, and two workers."""
    tmp = tmp_path_factory.mktemp("scale-out")
    store = tmp / "shared-store"
    env = {k: v for k, v in os.environ.items() if k != "DIA_STUDIO_FAULT"}
    env.update(PREFECT_API_URL=prefect_api, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_HOME=str(tmp / "prefect-home"), PYTHONPATH=str(REPO),
               DIA_STUDIO_HOME=str(REPO), DIA_STUDIO_STORE=str(store),
               PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1",
               # every completed store put, in every process, is one line here (dia_core/faults.py)
               DIA_STUDIO_FAULT="log@stored,slow@generate:0.8", DIA_STUDIO_FAULT_LOG=str(tmp / "puts.log"),
               DIA_STUDIO_SHARD_STALE_S="6",
               OMP_NUM_THREADS="1")   # tiny Dia models run slower with intra-op threads (tests/tiny_models.py)
    run = lambda *args: subprocess.run([*PREFECT, *args], cwd=REPO, env=env, check=True,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:   # `prefect work-pool create dia-gpu --type process`
        client.create_work_pool(WorkPoolCreate(name="dia-gpu", type="process"), overwrite=True)
    run("--no-prompt", "deploy", "--all")
    workers, logs, starts = [None, None], [], [0, 0]

    def start_worker(i: int) -> None:
        starts[i] += 1
        log = open(tmp / f"worker-{i}.log", "a")
        lock_dir = tmp / f"host-{i}"   # each worker stands for one GPU host: its own host-local lock dir
        lock_dir.mkdir(exist_ok=True)
        workers[i] = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", "dia-gpu", "--limit", "1", "--name", f"gpu-host-{i}"],
            cwd=REPO, env=dict(env, DIA_STUDIO_LOCK_DIR=str(lock_dir)), stdout=log, stderr=subprocess.STDOUT)
        logs.append(log)

    def revive() -> None:
        """Start again the workers a test killed (a host back after a crash)."""
        for i, w in enumerate(workers):
            if w.poll() is not None:
                start_worker(i)

    def wait_ready(timeout_s: float = 120) -> None:
        """Until every worker (re)started has said so in its log: both are polling the pool."""
        deadline = time.monotonic() + timeout_s
        while any((tmp / f"worker-{i}.log").read_text().count(f"Worker 'gpu-host-{i}' started!") < starts[i]
                  for i in range(2)):
            assert all(w.poll() is None for w in workers) and time.monotonic() < deadline, "a worker did not start"
            time.sleep(0.2)

    for i in range(2):
        start_worker(i)
    try:
        yield {"tmp": tmp, "env": env, "store": store, "workers": workers, "puts": tmp / "puts.log",
               "revive": revive, "wait_ready": wait_ready}
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
        for log in logs:
            log.close()


def _puts(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(key, int(pid)) for point, key, pid in (line.split() for line in path.read_text().splitlines())
            if point == "stored"]   # logged once the entry is complete: a kill before it regenerates


def _runs(client, flow_name: str):
    """Runs of a flow that a deployment started (the test process runs produce in-process too)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [r for r in runs if r.deployment_id is not None]


def test_one_book_on_two_workers_with_one_killed_mid_shard(pool, tmp_path):
    from prefect.client.orchestration import get_client

    project = make_project(tmp_path / "sharded" / "book", "Harbour", CHAPTERS)
    minutes = shard_minutes_for(project)
    out = tmp_path / "out"
    render = subprocess.Popen(
        [*CLI, "render", str(project), "--draft", "--out", str(out), "--store", str(pool["store"]),
         "--batch-size", "1", "--shard-minutes", f"{minutes:.6f}", "--shard-deployment", "generate-shard/gpu",
         "--no-progress"], cwd=REPO, env=pool["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # Once two shards have completed, kill the worker of the next shard that stores a take, and its
    # shard process (a host lost: neither can report anything).
    killed = None
    deadline = time.monotonic() + 300
    with get_client(sync_client=True) as client:
        while killed is None:
            assert render.poll() is None, render.stdout.read()
            assert time.monotonic() < deadline, "no shard to kill"
            runs = _runs(client, "generate-shard")
            if sum(r.state.is_completed() for r in runs) >= 2:
                busy = {int(r.infrastructure_pid.rsplit(":", 1)[-1]): r for r in runs
                        if r.state.is_running() and r.infrastructure_pid}
                # a shard that has stored a take and still has at least two to make: killed mid-shard,
                # not as it reports completion
                stored = collections.Counter(pid for _, pid in _puts(pool["puts"]))
                victim = next((r for pid, r in busy.items()
                               if 0 < stored[pid] <= len(r.parameters["shard"]["segment_ids"]) - 2), None)
                if victim is not None:
                    host = int(victim.name.rsplit("gpu-host-", 1)[1])
                    pool["workers"][host].send_signal(signal.SIGKILL)
                    os.kill(int(victim.infrastructure_pid.rsplit(":", 1)[-1]), signal.SIGKILL)
                    killed = victim
            time.sleep(0.05)
        output, _ = render.communicate(timeout=300)
        assert render.returncode == 0, output
        runs = _runs(client, "generate-shard")

    # Four shards, all completed, on both workers; the killed one was run again (and completed).
    assert len(runs) == 4 and all(r.state.is_completed() for r in runs), [(r.name, r.state) for r in runs]
    hosts = collections.Counter(r.name.rsplit(" on ", 1)[1] for r in runs)
    assert set(hosts) == {"gpu-host-0", "gpu-host-1"}, hosts
    retried = next(r for r in runs if r.id == killed.id)
    assert retried.run_count >= 2 and "rescheduled for another worker" in output

    # Every take was stored exactly once, by the shards; nothing is missing.
    puts = _puts(pool["puts"])
    counts = collections.Counter(key for key, _ in puts)
    assert counts and max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    delivered = out / "book"
    manifest = json.loads((delivered / "manifest.json").read_text())
    assert manifest["complete"]
    chosen = {s["id"]: s for c in (1, 2)
              for s in json.loads((delivered / "manifests" / f"chapter-{c:02d}.json").read_text())["segments"]}
    assert len(chosen) == len(jobs.open_job(project, RenderOptions(draft=True)).plan.segments) >= 16
    segment_puts = {key for key, pid in puts if pid not in (render.pid,)}
    assert len(segment_puts) == sum(len(s["attempts"]) for s in chosen.values())  # one put per attempt

    # Byte for byte what one worker renders on its own: the catalog fans the same book out as one
    # produce/gpu run (no shards) on the surviving worker, with a store of its own.
    from flows.catalog import narrate_catalog

    reference = make_project(tmp_path / "single" / "book", "Harbour", CHAPTERS)
    ref_out = tmp_path / "ref-out"
    options = RenderOptions(draft=True, out_dir=str(ref_out), store=str(tmp_path / "ref-store"), batch_size=1)
    states = narrate_catalog(catalog=str(reference.parent.parent), options=options, deployment="produce/gpu")
    assert states == {str(reference): "COMPLETED"}
    with get_client(sync_client=True) as client:
        [single] = _runs(client, "produce")
    assert single.parameters["options"]["batch_size"] == 1   # engine settings reach the run
    assert narrate_catalog(catalog=str(reference.parent.parent), options=options, deployment="produce/gpu") == {}
    files = sorted(p.name for p in delivered.iterdir() if p.suffix in (".mp3", ".vtt"))
    assert files == [f"chapter-0{c}.{ext}" for c in (1, 2) for ext in ("mp3", "vtt")]
    for name in files:
        assert (delivered / name).read_bytes() == (ref_out / "book" / name).read_bytes(), name
    ref_chosen = {s["id"]: s for c in (1, 2) for s in json.loads(
        (ref_out / "book" / "manifests" / f"chapter-{c:02d}.json").read_text())["segments"]}
    assert {k: (v["seed"], v["attempt"]) for k, v in chosen.items()} == \
           {k: (v["seed"], v["attempt"]) for k, v in ref_chosen.items()}


def test_one_book_on_two_workers_with_the_tiny_dia_checkpoint(pool, tmp_path):
    """The same sharded path on the Dia engine: a tiny random checkpoint (reference layout) and a tiny
    DAC on CPU, named on the command line relative to where the render runs (the workers run from
    $DIA_STUDIO_HOME, elsewhere). Both workers take shards, every take is generated once, and the
    delivery equals a single-process render of the same project byte for byte. (Listening stays
    off: random weights speak no words. No kill here: the draft test covers it.)"""
    from prefect.client.orchestration import get_client

    from dia_core.dia.config import DiaConfig
    from flows.produce import produce
    from tests.tiny_models import single_thread, write_tiny_dac, write_tiny_dia_checkpoint

    pool["revive"]()   # the draft test killed a worker
    ckpt = write_tiny_dia_checkpoint(tmp_path / "models" / "ckpt", layout="reference",
                                     config=DiaConfig.tiny(dec_max_positions=3072))
    dac_path = write_tiny_dac(tmp_path / "models" / "dac.pth")
    # two short paragraphs to a segment at this max_new_tokens: one chapter of two segments, two shards
    # (each worker runs one, --limit 1); each generation runs all 500 steps (random weights). The
    # single-process render generates both in one batch of two.
    chapters = [[LINES[1], LINES[3], LINES[5], LINES[7]]]
    make_project(tmp_path / "sharded" / "book", "Harbour", chapters, dia=True)   # rendered by relative path
    reference = make_project(tmp_path / "single" / "book", "Harbour", chapters, dia=True)
    engine = dict(model=str(ckpt), codec=str(dac_path), device="cpu", batch_size=2)
    ref_options = RenderOptions(out_dir=str(tmp_path / "ref-out"), store=str(tmp_path / "ref-store"), **engine)
    minutes = shard_minutes_for(reference, 2, ref_options)
    with get_client(sync_client=True) as client:
        earlier = {r.id for r in _runs(client, "generate-shard")}
    puts_before = len(_puts(pool["puts"]))

    pool["wait_ready"]()   # both workers polling, so each takes one of the two shards
    render = subprocess.Popen(
        [*CLI, "render", "sharded/book/project.yaml", "--model", "models/ckpt", "--codec", "models/dac.pth",
         "--device", "cpu", "--batch-size", "2", "--out", "out", "--store", str(pool["store"]),
         "--shard-minutes", f"{minutes:.6f}", "--shard-deployment", "generate-shard/gpu", "--no-progress"],
        cwd=tmp_path, env=pool["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The single-process render of the same project, with a store of its own, while the workers
    # work (this process would only wait; its puts are not logged: no DIA_STUDIO_FAULT here).
    with single_thread():   # as the workers (OMP_NUM_THREADS=1)
        state = produce(project=str(reference), options=ref_options, return_state=True)
    assert state.is_completed(), state
    output, _ = render.communicate(timeout=300)
    assert render.returncode == 0, output
    with get_client(sync_client=True) as client:
        runs = [r for r in _runs(client, "generate-shard") if r.id not in earlier]
    assert len(runs) == 2 and all(r.state.is_completed() for r in runs), [(r.name, r.state) for r in runs]
    hosts = collections.Counter(r.name.rsplit(" on ", 1)[1] for r in runs)
    assert set(hosts) == {"gpu-host-0", "gpu-host-1"}, hosts
    assert all(Path(r.parameters["options"][k]).is_absolute() for r in runs for k in ("model", "codec"))

    # Every take stored exactly once, by the shards.
    puts = _puts(pool["puts"])[puts_before:]
    counts = collections.Counter(key for key, _ in puts)
    assert counts and max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    delivered = tmp_path / "out" / "book"
    chosen = {s["id"]: s for s in json.loads((delivered / "manifests" / "chapter-01.json").read_text())["segments"]}
    assert len(chosen) == len(jobs.open_job(reference, ref_options).plan.segments) == 2
    # the keys the producer recorded are the keys the shards stored under: one take per shard process
    assert {key for key, _ in puts} == {a["key"] for s in chosen.values() for a in s["attempts"]}
    assert len({pid for _, pid in puts}) == 2 and render.pid not in {pid for _, pid in puts}

    # Byte for byte what one process rendered alone.
    ref_book = tmp_path / "ref-out" / "book"
    files = sorted(p.name for p in delivered.iterdir() if p.suffix in (".mp3", ".vtt"))
    assert files == ["chapter-01.mp3", "chapter-01.vtt"]
    for name in files:
        assert (delivered / name).read_bytes() == (ref_book / name).read_bytes(), name
    ref_chosen = {s["id"]: s for s in json.loads((ref_book / "manifests" / "chapter-01.json").read_text())["segments"]}
    assert {k: v["attempts"] for k, v in chosen.items()} == {k: v["attempts"] for k, v in ref_chosen.items()}
    manifests = [json.loads((book / "manifest.json").read_text()) for book in (delivered, ref_book)]
    assert manifests[0]["complete"] and manifests[0]["model"]["engine"] == manifests[1]["model"]["engine"] == "dia"
    assert manifests[0]["model"]["checksum"] == manifests[1]["model"]["checksum"]


def test_bad_pool_deployment_or_store_fail_before_any_generation(pool, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from flows.sharded import check_deployment, check_shard_target, check_store_writable

    project = make_project(tmp_path / "bad" / "book", "Bad", [LINES[:2]])
    before = len(_puts(pool["puts"]))
    r = subprocess.run([*CLI, "render", str(project), "--draft", "--out", str(tmp_path / "out"),
                        "--shard-deployment", "generate-shard/nowhere"],
                       cwd=REPO, env=pool["env"], capture_output=True, text=True, timeout=120)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert err[0].startswith("error: --shard-deployment: deployment 'generate-shard/nowhere' not found"), err
    assert len(_puts(pool["puts"])) == before   # nothing generated, not even a calibration
    assert not (tmp_path / "out").exists()

    # The same checks, as the produce flow makes them before any generation.
    with pytest.raises(InputError, match="runs the flow 'produce', not 'generate-shard'"):
        check_shard_target("produce/gpu")
    # the catalog's --deployment is checked the same way (cli.cmd_catalog, before any project)
    with pytest.raises(InputError, match="runs the flow 'generate-shard', not 'produce'"):
        check_deployment("generate-shard/gpu", "produce", "--deployment")
    with pytest.raises(InputError, match="'produce/nowhere' not found"):
        check_deployment("produce/nowhere", "produce", "--deployment")
    with get_client(sync_client=True) as client:   # a deployment whose work pool was deleted since
        client.create_work_pool(WorkPoolCreate(name="dia-gone", type="process"))
        flow_id = client.create_flow_from_name("generate-shard")
        client.create_deployment(flow_id=flow_id, name="orphan", work_pool_name="dia-gone")
        client.delete_work_pool("dia-gone")
    with pytest.raises(InputError, match="generate-shard/orphan"):
        check_shard_target("generate-shard/orphan")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be")
    with pytest.raises(InputError, match="the segment store cannot be written"):
        check_store_writable(blocked / "store")
