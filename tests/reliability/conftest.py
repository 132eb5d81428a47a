"""Reliability suite fixtures: the tiny fixture project, a CLI runner and the render environment.

Renders run the real `dia-studio` CLI in subprocesses (real exit codes, real SIGKILL) against the
suite-wide Prefect test server (``reliability_api``), so no render pays for starting an
ephemeral API server. The host-local GPU lock goes to a private folder, so renders of other
people's tests on this machine never wait on ours (or ours on theirs).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .fixture import build_project
from .outputs import NAME, Reference, normalized_json, published, render_args

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    args: list[str]
    rc: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # shown by failed assertions
        return (f"dia-studio {' '.join(self.args)} -> rc {self.rc}\n--- stderr (tail) ---\n"
                f"{self.stderr[-3000:]}")


def run_cli(args: list[str], env: dict | None = None, *, cwd: Path | None = None,
            timeout: float = 180) -> Result:
    """Run `python -m flows.cli ARGS` to completion (a SIGKILLed run gives rc -9)."""
    proc = subprocess.run([sys.executable, "-m", "flows.cli", *map(str, args)], cwd=cwd or REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)
    return Result(list(map(str, args)), proc.returncode, proc.stdout, proc.stderr)


def popen_cli(args: list[str], env: dict, *, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *map(str, args)], cwd=cwd or REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def base_env(tmp: Path) -> dict:
    """Environment for bad-input runs. They must stop before any flow starts: the API URL points at
    a closed port, so a case that wrongly gets through fails at once instead of starting a server."""
    env = dict(os.environ)
    env.pop("DIA_STUDIO_FAULT", None)
    env.update(PREFECT_API_URL="http://127.0.0.1:9/api", PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               DIA_STUDIO_LOCK_DIR=str(tmp), PYTHONPATH=str(REPO))
    return env


@pytest.fixture(scope="session")
def reliability_api(prefect_api):
    """Renders talk to the suite-wide Prefect test server (tests/conftest.py), so no render pays
    for starting an ephemeral API server. The draft engine takes no GPU slot, so a SIGKILLed
    scenario leaves nothing on the server that could stall the next one."""
    return prefect_api


@pytest.fixture(scope="session")
def render_env(reliability_api, tmp_path_factory) -> dict:
    """Environment for render subprocesses: this suite's Prefect server, a private lock dir."""
    tmp = tmp_path_factory.mktemp("reliability-env")
    env = base_env(tmp)
    env["PREFECT_API_URL"] = reliability_api
    return env


@pytest.fixture
def project_factory(tmp_path):
    """build(name=..., yaml_text=..., manuscript=...) -> project.yaml of a fresh fixture project."""
    def build(**kw) -> Path:
        return build_project(tmp_path, **kw)
    return build


@pytest.fixture(scope="session")
def reference(render_env, tmp_path_factory) -> Reference:
    """One clean render of the fixture project: what every faulted or concurrent run must reproduce."""
    base = tmp_path_factory.mktemp("fault-reference")
    yaml = build_project(base)
    t0 = time.monotonic()
    r = run_cli(render_args(yaml, base / "out"), render_env)
    seconds = time.monotonic() - t0
    assert r.rc == 0, r
    files, manifests = {}, {}
    for rel, p in published(base / "out").items():
        if rel.endswith(".json"):
            manifests[rel] = normalized_json(p)
        else:
            files[rel] = p.read_bytes()
    assert {"chapter-01.mp3", "chapter-02.mp3", "chapter-01.vtt", "chapter-02.vtt", f"{NAME}.m4b"} <= set(files)
    assert {"manifest.json", "manifests/chapter-01.json", "manifests/chapter-02.json"} <= set(manifests)
    assert manifests["manifest.json"]["complete"] is True
    return Reference(files, manifests, seconds, yaml.parent / ".dia-studio" / "store")
