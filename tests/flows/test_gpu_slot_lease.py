"""The GPU slot comes back (`flows.gpu.gpu_slot`): after a Prefect server restart during a render,
and after a render killed with -9 while holding it.

The slot's Prefect lease lives in the server's memory (the default lease storage): a restart
forgets it, the holder's release then frees nothing, and the limit counts the slot as taken
forever. gpu_slot takes the host-local file lock first (the kernel frees it when its holder dies)
and, holding it, reclaims whatever the limit still counts. The test starts a real `prefect server
start` of its own (own port and PREFECT_HOME), restarts it while one render holds the slot and a
second one waits on the same host, and measures how soon the waiting render gets the slot.
The server starts on a copy of the session harness's (migrated) database. The renders are child processes with their own environment, so the test process's Prefect
settings (and the session's test harness) are untouched."""
from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ACQUIRE_WITHIN_S = 10  # the stated time: the waiting render holds the slot this soon after it is freed
DEVICE = "cuda:0"
LIMIT = f"dia-gpu-{socket.gethostname()}-{DEVICE}".replace(":", "-")

# Import first (slow), say READY; then for every "go" line on stdin enter the real gpu_slot, say
# when (wall clock), and hold it until a "release" line.
CHILD = """\
import sys, time
from flows.gpu import gpu_slot
print("READY", time.time(), flush=True)
for line in sys.stdin:
    if line.strip() != "go":
        continue
    print("ENTERING", time.time(), flush=True)
    with gpu_slot(%r):
        print("HOLDING", time.time(), flush=True)
        sys.stdin.readline()
    print("RELEASED", time.time(), flush=True)
""" % DEVICE


@pytest.fixture(autouse=True)
def _prefect():
    """Override tests/flows/conftest.py: this module needs its own real server, not the harness."""
    yield


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `prefect server start` (default settings: leases in memory) that may still be starting:
    `ready()` waits for it, so the test can start its children meanwhile. `restart()` stops it and
    starts it again on the same port with the same database."""

    def __init__(self, root: Path, database: Path):
        self.root = root
        self.database = database
        self.port = _free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.log_path = root / "server.log"
        self._log = open(self.log_path, "a")
        self.startup_s: list[float] = []
        self._start()

    def _start(self) -> None:
        env = _clean_env(self.root / "server-home", PREFECT_API_BLOCKS_REGISTER_ON_START="false",
                         PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS="1",
                         PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{self.database}",
                         PREFECT_SERVER_DATABASE_MIGRATE_ON_START="false")
        self.proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--no-ui", "--no-scheduler", "--no-late-runs"],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root)
        self._up = False
        self._started = time.monotonic()

    def ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self._up:
            assert self.proc.poll() is None, "server exited: " + self.log_path.read_text()[-3000:]
            try:
                self._up = httpx.get(f"{self.api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not come up: " + self.log_path.read_text()[-3000:]
            if not self._up:
                time.sleep(0.2)
        self.startup_s.append(time.monotonic() - self._started)

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self._stop()
        self._start()
        self.ready()

    def close(self) -> None:
        self._stop()
        self._log.close()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory, prefect_api):
    """A server of its own on a copy of the session harness's database: already migrated, so the
    server starts in seconds rather than the minute a fresh database's migrations take here."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    root = tmp_path_factory.mktemp("real-prefect")
    harness_db = PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1]
    database = root / "prefect.db"
    with contextlib.closing(sqlite3.connect(harness_db)) as src, contextlib.closing(sqlite3.connect(database)) as dst:
        src.backup(dst)   # a consistent copy while the harness keeps running
    server = Server(root, database)
    try:
        yield server
    finally:
        server.close()


class Child:
    """A render that holds `gpu_slot` on command, in its own process; its lines are read on a thread.
    All children share one host-lock dir: they are renders on one host."""

    def __init__(self, server: Server, name: str):
        root = server.root
        env = _clean_env(root / f"{name}-home", PREFECT_API_URL=server.api, DIA_STUDIO_LOCK_DIR=str(root / "host"))
        (root / "host").mkdir(exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._ready = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def marker(self, word: str, timeout: float) -> float | None:
        """Wall-clock time the child printed `word`, or None if it did not within `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line.startswith(word + " "):
                return float(line.split()[1])
        return None

    def say(self, line: str) -> None:
        if not self._ready:
            assert self.marker("READY", timeout=120) is not None, "".join(self.output)
            self._ready = True
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _active_slots(api: str) -> int:
    r = httpx.get(f"{api}/v2/concurrency_limits/{LIMIT}", timeout=5)
    r.raise_for_status()
    return r.json()["active_slots"]


def test_the_slot_comes_back_after_a_server_restart_and_after_kill_9(real_server):
    server, api = real_server, real_server.api
    holder, waiter = Child(server, "holder"), Child(server, "waiter")  # both import while the server starts
    try:
        server.ready()
        holder.say("go")
        assert holder.marker("HOLDING", timeout=60) is not None, "".join(holder.output)
        assert _active_slots(api) == 1
        waiter.say("go")  # a second render on the same host asks for the device: it must wait
        assert waiter.marker("ENTERING", timeout=30) is not None, "".join(waiter.output)
        assert waiter.marker("HOLDING", timeout=2) is None, "a second render got the device"

        server.restart()   # while the holder holds the slot: the server forgets its lease
        assert _active_slots(api) == 1  # the database still counts the slot
        holder.say("release")
        released = holder.marker("RELEASED", timeout=30)
        assert released is not None, "".join(holder.output)
        got = waiter.marker("HOLDING", timeout=30)
        assert got is not None, "the waiting render never got the slot: " + "".join(waiter.output)
        # The holder's release freed nothing on the restarted server; the waiter reclaimed the slot.
        assert "1 slot(s) counted as taken but no process on this host holds the device" in "".join(waiter.output)
        assert _active_slots(api) == 1  # and holds it, counted

        waiter.proc.send_signal(signal.SIGKILL)   # a render killed while holding it
        assert waiter.proc.wait(10) == -signal.SIGKILL
        killed = time.time()
        holder.say("go")
        got_again = holder.marker("HOLDING", timeout=30)
        assert got_again is not None, "".join(holder.output)
        print(f"\nafter a server restart the waiting render got the slot {got - released:.1f} s after the "
              f"holder released it; after kill -9 the next render got it {got_again - killed:.1f} s after "
              f"the kill (server start-ups: {', '.join(f'{s:.0f} s' for s in server.startup_s)})")
        assert got - released <= ACQUIRE_WITHIN_S and got_again - killed <= ACQUIRE_WITHIN_S
        holder.say("release")
        assert holder.marker("RELEASED", timeout=30) is not None, "".join(holder.output)
        assert _active_slots(api) == 0  # a render that leaves gpu_slot normally releases at once
    finally:
        holder.stop()
        waiter.stop()
