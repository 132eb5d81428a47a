"""A Dia render killed with -9 while it holds the GPU slot (`flows.produce.gpu_slot`) cannot release
its Prefect concurrency lease. The suite's `prefect_test_harness` runs no lease reaper, so other
tests free the slot by hand; this one checks that a real `prefect server start` frees it when the
lease (60 s, the server's minimum) runs out, and that a render already waiting then gets the slot.

The server is started by this module, on its own port and PREFECT_HOME; the holder and the waiter
are child processes with their own environment, so the test process's Prefect settings (and the
session's test harness) are untouched. Two server settings make it faster without changing what is
tested: the repossessor (the service that revokes expired leases) scans every 1 s instead of 15 s,
and a waiting client retries at most every ~1 s instead of ~30 s. The lease itself is not shortened:
the test waits the full 60 s; with the server's start-up it takes 75-90 s in all."""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
LEASE_S = 60  # what gpu_slot asks for
REPOSSESSOR_LOOP_S = 1
DEVICE = "cuda:0"
LIMIT = f"dia-gpu-{socket.gethostname()}-{DEVICE}".replace(":", "-")

# Import first (slow), say READY, wait for a line on stdin, then enter the real gpu_slot, say when
# (wall clock), and hold it for argv[1] seconds.
CHILD = """\
import sys, time
from flows.produce import gpu_slot
print("READY", time.time(), flush=True)
sys.stdin.readline()
print("ENTERING", time.time(), flush=True)
with gpu_slot(%r):
    print("HOLDING", time.time(), flush=True)
    time.sleep(float(sys.argv[1]))
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
    """A `prefect server start` with all its services (the repossessor among them) that may still be
    starting: `ready()` waits for it, so the test can start its children meanwhile."""

    def __init__(self, root: Path):
        self.root = root
        port = _free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        env = _clean_env(root / "server-home", PREFECT_API_BLOCKS_REGISTER_ON_START="false",
                         PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS=str(REPOSSESSOR_LOOP_S),
                         PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS="1")
        self.log_path = root / "server.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                      "--port", str(port), "--no-ui", "--no-scheduler", "--no-late-runs"],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=root)
        self._up = False
        self._started = time.monotonic()
        self.startup_s: float | None = None

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
        if self.startup_s is None:
            self.startup_s = time.monotonic() - self._started

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("real-prefect"))
    try:
        yield server
    finally:
        server.stop()


class Child:
    """A `gpu_slot` holder in its own process; its marker lines are read on a thread."""

    def __init__(self, server: Server, name: str, hold_s: float):
        # Each child has its own host-lock dir, so only the Prefect limit can make one wait.
        root = server.root
        env = _clean_env(root / f"{name}-home", PREFECT_API_URL=server.api, DIA_STUDIO_LOCK_DIR=str(root / name))
        (root / name).mkdir()
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(hold_s)], env=env, cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
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

    def go(self) -> None:
        """Once READY (imported): enter gpu_slot."""
        assert self.marker("READY", timeout=120) is not None, "".join(self.output)
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _active_slots(api: str) -> int:
    r = httpx.get(f"{api}/v2/concurrency_limits/{LIMIT}", timeout=5)
    r.raise_for_status()
    return r.json()["active_slots"]


def test_real_server_frees_the_slot_of_a_render_killed_while_holding_it(real_server):
    server = real_server
    api = server.api
    # Both renders import while the server starts; the holder takes the slot, then the waiter asks.
    holder = Child(server, "holder", hold_s=3600)
    waiter = Child(server, "waiter", hold_s=0)
    try:
        server.ready()
        holder.go()
        acquired = holder.marker("HOLDING", timeout=60)
        assert acquired is not None, "".join(holder.output)
        assert _active_slots(api) == 1

        # The second render asks for the device while the first holds it: it must wait.
        waiter.go()
        assert waiter.marker("ENTERING", timeout=30) is not None, "".join(waiter.output)
        assert waiter.marker("HOLDING", timeout=2) is None, "the limit let a second render in"

        holder.proc.send_signal(signal.SIGKILL)
        assert holder.proc.wait(10) == -signal.SIGKILL
        killed = time.time()
        assert _active_slots(api) == 1  # nobody released it: the dead render's lease holds it

        # The slot frees when the repossessor revokes the expired lease; the waiter may take it at
        # once, so "freed" is the first of: no active slot seen, or the waiter holding it.
        freed = got = None
        deadline = time.monotonic() + LEASE_S + REPOSSESSOR_LOOP_S + 30
        while freed is None and time.monotonic() < deadline:
            got = waiter.marker("HOLDING", timeout=0.25)
            if got is not None:
                freed = got
            elif _active_slots(api) == 0:
                freed = time.time()
        assert freed is not None, f"slot still held {time.time() - killed:.0f} s after the kill"
        if got is None:
            got = waiter.marker("HOLDING", timeout=15)
        assert got is not None, "slot freed but the waiting render did not get it: " + "".join(waiter.output)

        print(f"\nlease of a killed render: freed {freed - acquired:.1f} s after it was acquired, "
              f"{freed - killed:.1f} s after kill -9; the waiting render got the slot "
              f"{got - killed:.1f} s after the kill (server start-up took {server.startup_s:.0f} s)")
        # Not before the lease ran out (a little slack: the child stamps `acquired` after the
        # server granted it), and promptly after it did.
        assert LEASE_S - 2 <= freed - acquired <= LEASE_S + REPOSSESSOR_LOOP_S + 10
        assert got - freed <= 10

        assert waiter.marker("RELEASED", timeout=30) is not None, "".join(waiter.output)
        assert _active_slots(api) == 0  # a render that leaves gpu_slot normally releases at once
    finally:
        holder.stop()
        waiter.stop()
