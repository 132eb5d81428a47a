"""Reliability suite fixtures: the tiny fixture project, a CLI runner and the render environment.

Renders run the real `dia-studio` CLI in subprocesses (real exit codes, real SIGKILL) against the
suite's one Prefect server (``prefect_api`` in tests/conftest.py), so no render pays for starting
an ephemeral API server. The host-local GPU lock goes to a private folder, so renders of other
people's tests on this machine never wait on ours (or ours on theirs).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .fixture import build_project

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
def render_env(prefect_api, tmp_path_factory) -> dict:
    """Environment for render subprocesses: the session's Prefect server, a private lock dir."""
    tmp = tmp_path_factory.mktemp("reliability-env")
    env = base_env(tmp)
    env["PREFECT_API_URL"] = prefect_api
    return env


@pytest.fixture
def project_factory(tmp_path):
    """build(name=..., yaml_text=..., manuscript=...) -> project.yaml of a fresh fixture project."""
    def build(**kw) -> Path:
        return build_project(tmp_path, **kw)
    return build
