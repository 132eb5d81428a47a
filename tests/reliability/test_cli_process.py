"""The CLI as a process: the first render of a new project on a busy machine, an unreachable
Prefect API, a bad --out, Ctrl-C, SIGTERM and SIGKILL. Every failure is one line on stderr (no
traceback) and the local Prefect server never outlives its render (flows/server.py)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.listening_off import without_listening

from .conftest import REPO, base_env, run_cli

BOOK = REPO / "projects" / "short-audiobook"


def _copy_book(root: Path) -> Path:
    shutil.copytree(BOOK, root / "book", ignore=shutil.ignore_patterns(".dia-studio", "out"))
    return without_listening(root / "book" / "project.yaml")


def _local_env(tmp: Path, prefect_home: Path | None = None) -> dict:
    """No PREFECT_API_URL: the CLI starts (and must stop) its own local server."""
    env = base_env(tmp)
    env.pop("PREFECT_API_URL")
    env.pop("PREFECT_HOME")
    if prefect_home is not None:
        env["PREFECT_HOME"] = str(prefect_home)
    return env


def servers_of(prefect_home: Path) -> list[int]:
    """PIDs of Prefect API server processes running with this PREFECT_HOME."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            env = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"prefect.server.api.server:create_app" in cmd and \
                f"PREFECT_HOME={prefect_home}".encode() in env.split(b"\0"):
            pids.append(int(proc.name))
    return pids


def _wait_gone(prefect_home: Path, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = servers_of(prefect_home)
        if not left:
            return []
        time.sleep(0.5)
    return servers_of(prefect_home)


def _wait_for(pred, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def first_render(tmp_path_factory):
    """A copy of the example book in a new folder, rendered once with no server configured (a fresh
    Prefect database in its work folder) while two busy loops load both cores of the machine."""
    root = tmp_path_factory.mktemp("first-render")
    project = _copy_book(root)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        t0 = time.monotonic()
        result = run_cli(["render", project, "--draft", "--out", root / "out"], _local_env(root), timeout=600)
        seconds = time.monotonic() - t0
    finally:
        for p in busy:
            p.kill()
    home = project.parent / ".dia-studio" / "prefect"
    return {"result": result, "seconds": seconds, "project": project, "out": root / "out" / "book",
            "home": home.resolve()}


def test_first_render_of_a_new_project_on_a_busy_machine(first_render):
    r = first_render["result"]
    assert r.rc == 0, r
    assert "starting the local Prefect server (first run: preparing its database)..." in r.stderr
    assert "Traceback" not in r.stderr and "Timed out" not in r.stderr
    assert (first_render["out"] / "manifest.json").is_file()
    assert (first_render["home"] / "prefect.db").is_file()
    assert _wait_gone(first_render["home"], 15) == [], "the local Prefect server outlived its render"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # closed again when the socket is


def test_unreachable_prefect_api_is_one_line_and_writes_nothing(tmp_path):
    project = _copy_book(tmp_path)
    env = base_env(tmp_path)
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{_closed_port()}/api"
    t0 = time.monotonic()
    r = run_cli(["render", project, "--draft", "--out", tmp_path / "out"], env, timeout=120)
    assert r.rc == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the Prefect API at ") and "unreachable" in lines[0], r
    assert time.monotonic() - t0 < 60
    log = Path(lines[0].rsplit("(details: ", 1)[1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(project.parent / ".dia-studio" / "logs")
    assert "Traceback" in log.read_text() and "ServerUnavailable" in log.read_text()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["file", "proc"])
def test_bad_out_is_refused_before_any_work(tmp_path, kind):
    project = _copy_book(tmp_path)
    if kind == "file":
        out = tmp_path / "taken"
        out.write_text("not a folder")
        says = "is not a folder"
    else:
        out = Path("/proc/self/no-such-dir/out")
        says = "cannot write here"
    t0 = time.monotonic()
    r = run_cli(["render", project, "--draft", "--out", out], base_env(tmp_path), timeout=120)
    assert r.rc == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0] and "--out" in lines[0], r
    assert time.monotonic() - t0 < 30
    assert not (project.parent / ".dia-studio" / "store").exists(), "work started before --out was checked"
    if kind == "proc":
        assert not Path("/proc/self/no-such-dir").exists()


def _as_foreground_job() -> None:
    """In the child before exec: SIGINT as a terminal's foreground job has it. A test run started in
    the background of a non-interactive shell (CI) inherits SIGINT ignored, and an ignored SIGINT
    stays ignored across exec: Ctrl-C could not be tested."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(project: Path, out: Path, env: dict) -> subprocess.Popen:
    # Its own session, like a shell job: a Ctrl-C goes to the whole foreground process group.
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "render", str(project), "--draft", "--out", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_as_foreground_job)


def _fresh_project(tmp_path: Path) -> Path:
    return _copy_book(tmp_path)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_killed_render_leaves_no_server(first_render, tmp_path, how):
    project = _fresh_project(tmp_path)
    home = first_render["home"]   # an existing database: the server starts in seconds
    proc = _start(project, tmp_path / "out", _local_env(tmp_path, home))
    try:
        _wait_for(lambda: servers_of(home), 120, "the local server")
        _wait_for(lambda: (project.parent / ".dia-studio" / "store").exists(), 120, "generation to start")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "starting the local Prefect server..." in err and "first run" not in err   # the database is reused
    if how == "sigterm":
        assert proc.returncode == 143, err
        assert took < 15, f"SIGTERM took {took:.1f} s"
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("terminated: "), err
    else:
        assert proc.returncode == -9
    assert _wait_gone(home, 20) == [], f"the local Prefect server outlived a {how}ed render"


def test_ctrl_c_is_one_line_quick_and_resumable(first_render, tmp_path):
    project = _fresh_project(tmp_path)
    home = first_render["home"]
    out = tmp_path / "out"
    proc = _start(project, out, _local_env(tmp_path, home))
    try:
        # interrupt while chapters are being finished (the first chapter file exists)
        _wait_for(lambda: (out / "book" / "chapter-01.mp3").exists() or proc.poll() is not None, 300,
                  "the first chapter")
        assert proc.poll() is None, "the render finished before it could be interrupted"
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)   # what the terminal does on Ctrl-C
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert took < 15, f"Ctrl-C took {took:.1f} s to end the render"
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted: "), err
    assert not (out / "book" / "manifest.json").exists()
    assert _wait_gone(home, 20) == []
    again = run_cli(["render", project, "--draft", "--out", out], _local_env(tmp_path, home), timeout=300)
    assert again.rc == 0, again
    assert (out / "book" / "manifest.json").is_file()
