"""Reading and hashing files: one sha256 of a file, one canonical hash of JSON data, one bounded read.

Store keys, manifests, the codec's prompt cache and the model checksum all hash with these, so a
file hashes the same everywhere (and existing store keys stay valid).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import InputError

_BLOCK = 1 << 20


def file_sha256(path: str | Path) -> str:
    return files_sha256([path])


def files_sha256(paths) -> str:
    """sha256 over the bytes of ``paths`` in order (one file: that file's sha256)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_BLOCK), b""):
                h.update(block)
    return h.hexdigest()


def canonical_hash(obj) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace)."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def read_bounded(path: Path, limit: int, *, label: str, what: str) -> bytes:
    """The bytes of a user's file, refusing files over ``limit`` bytes before reading them.
    ``what`` names the file in errors ("manuscript", "manifest")."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(f"{what} is {size} bytes (limit {limit})", file=label)
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror or e}", file=label) from None
