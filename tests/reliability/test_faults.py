"""Fault injection on real draft renders of the fixture project (the CLI in a subprocess).

One clean render is the reference. Each scenario then renders a fresh copy of the project (own
store, own --out) with DIA_STUDIO_FAULT set (SIGKILL, simulated full disk, simulated OOM), or with
a corrupted segment store, and checks:

* right after the fault: the process died / failed as expected, and every file with a final
  name in the output folder is complete (byte-identical to the reference; manifests equal but
  for timestamps); manifest.json exists only if the fault came after it;
* a re-run without the fault exits 0 and its outputs are byte-identical to the reference's
  (mp3, m4b, vtt), the manifests match, and no temp file is left in the output folder.

Scenarios run three at a time in a module fixture; each parametrized test checks its own.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import Result, popen_cli, run_cli
from .fixture import build_project
from .outputs import NAME, Reference, owner, published, render_args, same_as_reference, temps

# --------------------------------------------------------------------------------------------------
# Scenarios

@dataclass
class Scenario:
    id: str
    fault: str | None = None            # DIA_STUDIO_FAULT of the faulted run
    kind: str = "kill"                  # kill | enospc | oom | corrupt | random-kill
    extra: tuple = ()                   # extra render args of the faulted run
    present: tuple = ()                 # files that must exist (complete) right after the fault
    corrupt: str | None = None          # how to damage the copied store: truncate | flip | record | calibration
    log: tuple = ()                     # text the faulted run's stderr must contain


ONE_AT_A_TIME = ("--finish-workers", "1")
KILLS = [
    Scenario("kill-plan-in-flow", "kill@plan:2"),
    Scenario("kill-calibrate", "kill@calibrate"),
    Scenario("kill-generate", "kill@generate:2"),
    Scenario("kill-store-put", "kill@store-put:3"),
    Scenario("kill-after-first-batch", "kill@batch", extra=("--batch-size", "2")),
    Scenario("kill-stitch", "kill@stitch"),
    # chapters one at a time (a render finishes two at once): the fault hits chapter 2 after chapter 1
    # was published, and what was finished must survive it
    Scenario("kill-export-chapter-2", "kill@export:2", extra=ONE_AT_A_TIME,
             present=("chapter-01.mp3", "chapter-01.vtt", "manifests/chapter-01.json")),
    Scenario("kill-encode-temp-written", "kill@encode"),
    Scenario("kill-chapter-manifest-2", "kill@manifest:2", extra=ONE_AT_A_TIME,
             present=("chapter-02.mp3", "manifests/chapter-01.json")),
    Scenario("kill-book", "kill@book", present=("chapter-01.mp3", "chapter-02.mp3", "manifests/chapter-02.json")),
    Scenario("kill-project-manifest", "kill@project-manifest", present=(f"{NAME}.m4b", "chapter-02.vtt")),
    Scenario("kill-random-time", kind="random-kill"),
]
DISK = [
    Scenario("enospc-export", "enospc@export", kind="enospc"),
    Scenario("enospc-encode-chapter-2", "enospc@encode:2", kind="enospc", extra=ONE_AT_A_TIME,
             present=("chapter-01.mp3",)),
    Scenario("enospc-book", "enospc@book", kind="enospc", present=("chapter-02.mp3",)),
]
OOM = [
    # batch 4 -> OOM -> 2 -> OOM -> 1: the run completes with the same takes
    Scenario("oom-generate-halved-twice", "oom@generate:2,oom@generate:3", kind="oom",
             extra=("--batch-size", "4"), log=("batch halved to 2", "batch halved to 1")),
]
CORRUPT = [
    # one store copy, four damaged entries: truncated take, flipped byte, garbage record, and a
    # truncated calibration take; one re-render must detect and regenerate all of them
    Scenario("store-corrupt-entries", kind="corrupt", corrupt="truncate,flip,record,calibration"),
]
SCENARIOS = KILLS + DISK + OOM + CORRUPT
RANDOM_SEED = int(os.environ.get("DIA_STUDIO_FAULT_SEED", "20261122"))


def _entries(store: Path, kind: str) -> list[Path]:
    found = []
    for rec in sorted(store.rglob("take.json")):
        if json.loads(rec.read_text()).get("kind") == kind:
            found.append(rec.parent)
    return found


def _damage(store: Path, hows: str) -> list[Path]:
    """Damage one store entry per kind of damage (each a different entry); returns their folders."""
    segments = _entries(store, "segment")
    calibration = _entries(store, "calibration")
    damaged = []
    for i, how in enumerate(hows.split(",")):
        entry = calibration[0] if how == "calibration" else segments[i]
        wav = entry / "take.wav"
        data = wav.read_bytes()
        if how in ("truncate", "calibration"):
            wav.write_bytes(data[: len(data) // 2])
        elif how == "flip":
            j = len(data) * 2 // 3
            wav.write_bytes(data[:j] + bytes([data[j] ^ 0x40]) + data[j + 1:])
        elif how == "record":
            (entry / "take.json").write_text('{"audio_sha256": ')
        else:  # pragma: no cover
            raise ValueError(how)
        damaged.append(entry)
    return damaged


@dataclass
class Run:
    faulted: Result | None = None
    rerun: Result | None = None
    notes: list = field(default_factory=list)


def _scenario(s: Scenario, ref: Reference, env: dict, base: Path, rng_delay: float | None) -> Run:
    yaml = build_project(base)
    out = base / "out"
    run = Run()
    damaged = None
    if s.kind == "corrupt":
        store = yaml.parent / ".dia-studio" / "store"
        shutil.copytree(ref.store, store)
        damaged = _damage(store, s.corrupt)
        before = {d: (d / "take.json").read_text() for d in damaged}
        run.notes.append(f"damaged {len(damaged)} store entries")
    else:
        fenv = dict(env, DIA_STUDIO_FAULT=s.fault) if s.fault else env
        if s.kind == "random-kill":
            proc = popen_cli(render_args(yaml, out, *s.extra), env)
            try:
                proc.wait(timeout=rng_delay)
            except Exception:
                proc.send_signal(signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=120)
            run.faulted = Result(["render", "(killed at %.1f s)" % rng_delay], proc.returncode, stdout, stderr)
            run.notes.append(f"SIGKILL after {rng_delay:.1f} s -> rc {proc.returncode}")
            assert proc.returncode in (-signal.SIGKILL, 0), run.faulted
        else:
            run.faulted = r = run_cli(render_args(yaml, out, *s.extra), fenv)
            if s.kind == "kill":
                assert r.rc == -signal.SIGKILL, f"expected the process to die by SIGKILL: {r}"
            elif s.kind == "enospc":
                assert r.rc == 1, r
                last = r.stderr.strip().splitlines()[-1]
                assert last.startswith("error: ") and "No space left on device" in last, r
                assert "Traceback" not in r.stderr, r   # the traceback is in the log the line names
                log = Path(last.rsplit("(details: ", 1)[1].rstrip(")"))
                assert "Traceback" in log.read_text()
            elif s.kind == "oom":
                assert r.rc == 0, r
                for text in s.log:
                    assert text in r.stderr, f"log does not say {text!r}: {r}"
        # Right after the fault: only complete files carry final names.
        files = published(out)
        if "manifest.json" in files:   # the single record of a complete delivery: all of it is there
            assert run.faulted.rc == 0 or s.kind == "random-kill", "manifest.json published by a failed run"
            assert set(files) == set(ref.files) | set(ref.manifests), "manifest.json published early"
        for rel, p in files.items():
            same_as_reference(rel, p, ref)
        for rel in s.present:
            assert rel in files, f"{rel} should have been published before the fault"
        if s.kind == "enospc":
            assert not temps(out), f"a failed write left temp files: {temps(out)}"
        run.notes.append(f"after fault: {len(files)} complete files, {len(temps(out))} temp files")

    # The re-run (no fault) completes with outputs identical to the clean run's.
    run.rerun = r = run_cli(render_args(yaml, out), env)
    assert r.rc == 0, r
    files = published(out)
    assert set(files) == set(ref.files) | set(ref.manifests), \
        f"files differ from the clean render's: {sorted(set(files) ^ (set(ref.files) | set(ref.manifests)))}"
    for rel, p in files.items():
        same_as_reference(rel, p, ref)
    assert not temps(out), f"temp files left in the output folder: {temps(out)}"
    assert owner(out) == str(yaml.resolve()), "the output folder's ownership record names another project"
    for d in damaged or ():
        rec = json.loads((d / "take.json").read_text())
        assert rec["audio_sha256"] == hashlib.sha256((d / "take.wav").read_bytes()).hexdigest(), \
            f"damaged store entry {d.name} was not regenerated"
        assert (d / "take.json").read_text() != before[d], f"damaged entry {d.name} was not rewritten"
    return run


@pytest.fixture(scope="module")
def fault_runs(reference, render_env, tmp_path_factory) -> dict[str, Run | BaseException]:
    base = tmp_path_factory.mktemp("faults")
    rng = random.Random(RANDOM_SEED)
    delays = {s.id: rng.uniform(1.0, reference.seconds) for s in SCENARIOS if s.kind == "random-kill"}

    def one(s):
        try:
            return _scenario(s, reference, render_env, base / s.id, delays.get(s.id))
        except BaseException as e:
            return e

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {s.id: pool.submit(one, s) for s in SCENARIOS}
        return {k: f.result() for k, f in futures.items()}


def test_enough_kill_points():
    points = {s.fault.split("@")[1].split(":")[0] for s in KILLS if s.fault}
    assert len(points) >= 10, points


@pytest.mark.parametrize("s", [pytest.param(s, id=s.id) for s in SCENARIOS])
def test_fault(s: Scenario, fault_runs):
    run = fault_runs[s.id]
    if isinstance(run, BaseException):
        raise run
    assert run.rerun is not None and run.rerun.rc == 0
