"""Fault injection for the reliability tests: DIA_STUDIO_FAULT=point[:n] acts at the n-th hit.

Points: plan, generate, stitch, export, manifest, ... Action by prefix: "kill@point" sends
SIGKILL to this process (a crash with no cleanup), "oom@point" raises OutOfMemory once,
"enospc@point" raises a full-disk OSError, "slow@point:seconds" sleeps at every hit, "log@point" appends "point detail pid" to the file named
by $DIA_STUDIO_FAULT_LOG at every hit (the scale-out test counts completed store puts, point
"stored", across processes).
Unset in production: hit() is then a dict lookup.
"""
from __future__ import annotations

import errno
import os
import signal
import time

from .errors import OutOfMemory

_counts: dict[str, int] = {}


def hit(point: str, detail: str = "") -> None:
    spec = os.environ.get("DIA_STUDIO_FAULT")
    if not spec:
        return
    for item in spec.split(","):
        action, _, rest = item.partition("@")
        name, _, nth = rest.partition(":")
        if name != point:
            continue
        if action == "slow":  # sleep at every hit (the seconds after the colon): widens a test's window
            time.sleep(float(nth or 1))
            continue
        if action == "log":  # one short O_APPEND write: lines from many processes do not interleave
            fd = os.open(os.environ["DIA_STUDIO_FAULT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{point} {detail} {os.getpid()}\n".encode())
            finally:
                os.close(fd)
            continue
        _counts[item] = _counts.get(item, 0) + 1
        if _counts[item] != int(nth or 1):
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "oom":
            raise OutOfMemory(f"simulated out-of-memory at {point}")
        elif action == "enospc":
            raise OSError(errno.ENOSPC, f"No space left on device (simulated at {point})")
