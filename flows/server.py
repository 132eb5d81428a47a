"""The Prefect API a CLI render talks to: the configured server, or a local one that dia-studio owns.

Prefect's own "ephemeral" mode starts a server on first use and gives it 20 s; on a fresh
database (created and migrated at startup) on a busy 2-core machine that is not enough, and the
first render of a new project failed with "Timed out while attempting to connect to ephemeral
Prefect API server" (docs/reliability.md, "The local Prefect server"). So when no
PREFECT_API_URL is configured, dia-studio starts the same server itself:

* with a startup timeout of its own (DIA_STUDIO_SERVER_TIMEOUT, default 300 s) and a progress
  line while it waits ("first run: preparing its database" when the database is new);
* in its own session, so a Ctrl-C in the terminal reaches the render but not the server, which
  must stay up long enough to record the interrupted run (it is stopped right after);
* with a parent-death signal (Linux prctl PR_SET_PDEATHSIG): if the render is killed, even with
  SIGKILL, the kernel sends the server SIGTERM, so it never outlives its render;
* bound to 127.0.0.1 on a free port, and stopped (SIGTERM, then SIGKILL) when the render ends.

With PREFECT_API_URL set, the server is checked once (GET /health) before any work, so an
unreachable server is one line at the start, not retries and tracebacks later.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx

# Prefect is imported inside the functions below, never at the top: the CLI imports this module
# before it has set PREFECT_HOME, which Prefect reads once, at import.
DEFAULT_TIMEOUT_S = 300.0
_PR_SET_PDEATHSIG = 1


class ServerUnavailable(RuntimeError):
    """The Prefect API could not be reached or started."""


def configured_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def check_reachable(api_url: str, timeout_s: float = 10.0) -> None:
    try:
        r = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout_s)
    except httpx.HTTPError as e:
        raise ServerUnavailable(f"the Prefect API at {api_url} (PREFECT_API_URL) is unreachable: "
                                f"{type(e).__name__}: {e}") from None
    if r.status_code != 200:
        raise ServerUnavailable(f"the Prefect API at {api_url} (PREFECT_API_URL) answered HTTP {r.status_code}")


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _database_file() -> Path | None:
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_HOME

    url = PREFECT_API_DATABASE_CONNECTION_URL.value()
    if url and not url.startswith("sqlite"):
        return None
    if url and ":///" in url:
        return Path(url.split(":///", 1)[1])
    return Path(PREFECT_HOME.value()) / "prefect.db"


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=timeout_s)


class LocalServer:
    """A Prefect API server process owned by this render (see the module docstring)."""

    def __init__(self, log_path: Path | None = None):
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float, say: Callable[[str], None]) -> None:
        from prefect.settings import get_current_settings

        db = _database_file()
        first = db is not None and not db.exists()
        say("starting the local Prefect server" + (" (first run: preparing its database)" if first else "")
            + "...")
        env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True),
               "PREFECT_UI_ENABLED": "0", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        started = time.monotonic()
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise ServerUnavailable(f"the local Prefect server exited with code {self.process.returncode} "
                                            f"while starting" + (f" (its log: {self.log_path})" if self.log_path else ""))
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        break
                if time.monotonic() - started > timeout_s:
                    self.stop()
                    raise ServerUnavailable(f"the local Prefect server did not answer within {timeout_s:g} s "
                                            "(raise DIA_STUDIO_SERVER_TIMEOUT on a slow machine)")
                time.sleep(0.2)
        self.startup_s = time.monotonic() - started

    def stop(self) -> None:
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)   # the server and anything it started
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@contextlib.contextmanager
def prefect_api(log_dir: Path, say: Callable[[str], None]) -> Iterator[str]:
    """The API URL to run flows against for the duration of the block: the configured server after
    a health check, else a local server started (and stopped) here."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = configured_api_url()
    if url:
        check_reachable(url)
        yield url
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    server = LocalServer(log_dir / "prefect-server.log")
    timeout_s = float(os.environ.get("DIA_STUDIO_SERVER_TIMEOUT") or DEFAULT_TIMEOUT_S)
    before = os.environ.get("PREFECT_API_URL")
    try:
        server.start(timeout_s, say)
        # Both: the settings context for this thread, the environment for Prefect's worker threads.
        os.environ["PREFECT_API_URL"] = server.api_url
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        _drain_prefect_workers()   # send the last logs and events while the server still listens
        server.stop()
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
