"""Atomic file publication: write to a temp file beside the target, fsync, then rename.

An interrupted write (crash, kill -9, full disk) never leaves a file that looks finished: the
target either does not exist or holds the previous complete version.
"""
from __future__ import annotations

import contextlib
import filecmp
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

TMP_PREFIX = ".tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path in the target's directory; on success it is renamed onto ``target``.

    The temp name keeps the target's suffix so tools that sniff extensions (ffmpeg) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + target.stem + "-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files get normal modes
    try:
        yield tmp_path
        if _same_file_content(tmp_path, target):
            return   # the same bytes are already published: keep them (and their mtime) untouched
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _same_file_content(new: Path, published: Path) -> bool:
    """A re-render that makes the same bytes leaves the published file alone (a no-op render
    rewrites nothing); only a regular file counts, never a symlink."""
    try:
        if published.is_symlink() or not published.is_file() or published.stat().st_size != new.stat().st_size:
            return False
        return filecmp.cmp(new, published, shallow=False)
    except OSError:
        return False


def write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | Path, obj) -> Path:
    return write_text(target, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def clean_temps(directory: str | Path, *, recursive: bool = True, min_age_s: float = 0.0) -> list[Path]:
    """Remove leftover ``.tmp-*`` files of interrupted atomic writes under ``directory``.

    Call it when a run starts (no other writer is active on that directory); ``min_age_s`` skips
    temps younger than that, for directories another live process may be writing to."""
    directory = Path(directory)
    if not directory.exists():
        return []
    pattern = "**/" + TMP_PREFIX + "*" if recursive else TMP_PREFIX + "*"
    now = time.time()
    removed = []
    for p in directory.glob(pattern):
        if p.is_file() and now - p.stat().st_mtime >= min_age_s:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed
