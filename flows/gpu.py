"""The GPU slot: one GPU job at a time per device."""
from __future__ import annotations

import contextlib
import socket

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from dia_core.production import jobs


@contextlib.contextmanager
def gpu_slot(device: str | None):
    """One GPU job at a time per device: a Prefect global concurrency limit when a server is
    configured (it shows in the UI), and always the host-local process lock. The draft engine
    (device None) uses no accelerator and takes neither."""
    if device is None:
        yield
        return
    limit = contextlib.nullcontext()
    if PREFECT_API_URL.value():
        name = f"dia-gpu-{socket.gethostname()}-{device}".replace(":", "-")
        _ensure_limit(name)
        # 60 s is the server's shortest lease; a render killed with -9 loses the slot 15-75 s later
        # (the server's lease repossessor; tests/flows/test_gpu_slot_lease.py).
        limit = concurrency(name, occupy=1, strict=True, lease_duration=60)
    with limit, jobs.gpu_lock(device):
        yield


def _ensure_limit(name: str) -> None:
    """Create the limit (1 slot) on first use; an operator may resize or deactivate it in the UI."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


