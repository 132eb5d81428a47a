"""The GPU slot: one GPU job at a time per device, and a slot that always comes back.

Two locks guard a device. The host-local file lock (jobs.gpu_lock) is the authority: the kernel
releases it the moment its holder dies, kill -9 included. The Prefect global concurrency limit
`dia-gpu-<host>-<device>` (1 slot) makes the device's use visible in the UI; its lease lives in
the Prefect server, by default in the server's memory, so a server restart forgets the lease and
leaves the slot counted as taken forever (and a render killed with -9 holds it until the lease
runs out). So the file lock is taken first, and a render that holds it frees ("reclaims") any slot
the limit still counts: no live process on this host can hold it. See docs/reliability.md.
"""
from __future__ import annotations

import contextlib
import logging
import socket

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import MissingContextError, ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from dia_core.production import jobs

LEASE_S = 60  # the server's shortest lease; the client renews it every 45 s while the render lives

log = logging.getLogger("dia_studio.gpu")


def limit_name(device: str) -> str:
    return f"dia-gpu-{socket.gethostname()}-{jobs.device_identity(device)}"


@contextlib.contextmanager
def gpu_slot(device: str | None):
    """Hold ``device``: the host-local lock, then (with a Prefect server) the device's limit. The
    draft engine (device None) uses no accelerator and takes neither."""
    if device is None:
        yield
        return
    with jobs.gpu_lock(device):
        if not PREFECT_API_URL.value():
            yield
            return
        name = limit_name(device)
        _ensure_limit(name)
        reclaim_stranded(name)
        # A failed lease renewal (the server restarting) must not stop a render hours into a book:
        # the host lock, not the lease, keeps the device exclusive.
        with concurrency(name, occupy=1, strict=True, lease_duration=LEASE_S, raise_on_lease_renewal_failure=False):
            yield


def reclaim_stranded(name: str) -> int:
    """Called with the host's lock held: slots the limit still counts belong to no live process
    (a render killed with -9, or a lease the server lost in a restart). Frees them; returns how many."""
    with get_client(sync_client=True) as client:
        held = client.read_global_concurrency_limit_by_name(name).active_slots
        if held:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
            _warn(f"GPU slot {name}: {held} slot(s) counted as taken but no process on this host holds "
                        f"the device (a killed render, or a lease the Prefect server lost in a restart); reclaimed")
    return held


def _warn(message: str) -> None:
    try:
        get_run_logger().warning(message)
    except MissingContextError:  # outside a flow run
        log.warning(message)


def _ensure_limit(name: str) -> None:
    """Create the limit (1 slot) on first use; an operator may resize or deactivate it in the UI."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
