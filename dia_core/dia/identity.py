"""A checkpoint's identity (the model checksum in segment store keys) without loading or reading it.

The identity is checkpoint.weights_checksum's digest, built from each weight file's sha256:
- a Hugging Face repo id: the hub knows every LFS file's sha256. Online, one metadata request
  (``HfApi.model_info(files_metadata=True)``) gives them for the revision a download would fetch;
  offline, the cache names each LFS blob by its sha256 (``blobs/<sha256>``, the snapshot's files
  link to them), so nothing is downloaded and no weight byte is read.
- a local directory (or a cache without blob links): each file is hashed once, and the digest is
  remembered in a small JSON memo (in the segment store) under the file's resolved path, size and
  modification time; a later process only stats the files.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .checkpoint import (WEIGHT_PATTERNS, _pick_weight_names, combine_file_hashes, find_weight_files,
                         hf_cache_dir, hf_offline, resolve)
from ..atomic import write_json
from ..errors import InputError
from ..files import file_sha256

MEMO_NAME = "checkpoint-hashes.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def checkpoint_identity(source: str | Path, memo_dir: str | Path | None = None,
                        revision: str | None = None) -> str:
    """The checksum a model loaded from ``source`` reports (DiaModel.checksum), found without
    loading it. ``memo_dir`` holds the memo of local file hashes (none: hash every time)."""
    path = Path(source).expanduser()
    if not path.is_dir() and not path.exists() and _REPO_ID.fullmatch(str(source)):
        found = _hub_identity(str(source), revision)
        if found is not None:
            return found
    files = find_weight_files(resolve(source))  # a repo id not on the hub's metadata: the cache
    return combine_file_hashes([(f.name, file_hash(f, memo_dir)) for f in files])


def file_hash(path: Path, memo_dir: str | Path | None = None) -> str:
    """sha256 of a weight file: the cache's LFS blob name when the file links to one, else the memo
    (resolved path, size, mtime), else read once and remembered."""
    target = Path(os.path.realpath(path))
    if target.parent.name == "blobs" and _SHA256.fullmatch(target.name):
        return target.name
    st = target.stat()
    key = f"{target}|{st.st_size}|{st.st_mtime_ns}"
    memo_path = Path(memo_dir) / MEMO_NAME if memo_dir is not None else None
    memo = _read_memo(memo_path)
    if key in memo:
        return memo[key]
    digest = file_sha256(target)
    if memo_path is not None:
        # Re-read before writing: another process may have added entries meanwhile. A lost race
        # only loses a memo entry (hashed again next time), never a wrong one.
        write_json(memo_path, {**_read_memo(memo_path), key: digest})
    return digest


def _read_memo(memo_path: Path | None) -> dict[str, str]:
    if memo_path is None:
        return {}
    try:
        data = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str) and _SHA256.fullmatch(v)} \
        if isinstance(data, dict) else {}


def _hub_identity(repo: str, revision: str | None) -> str | None:
    """From the hub's file metadata (online) or the cache's blob names (offline); None when neither
    knows every weight file's sha256 (the caller then hashes the resolved files)."""
    from huggingface_hub import HfApi  # only repo ids need the hub client

    if not hf_offline():
        try:
            info = HfApi().model_info(repo, revision=revision, files_metadata=True)
            lfs = {s.rfilename: (s.lfs.sha256 if s.lfs else None) for s in info.siblings or []}
        except Exception:  # unreachable hub, auth, ...: the cache, as resolve() does
            lfs = None
        if lfs is not None:
            wanted = _pick_weight_names(list(lfs))
            if not wanted:
                raise InputError(f"repo has no Dia weights ({', '.join(WEIGHT_PATTERNS)})", file=repo)
            weights = [n for n in wanted if not n.endswith(".json")]
            if all(lfs.get(n) for n in weights):
                # load order: find_weight_files sorts shards by name, picks a single file as is
                return combine_file_hashes([(Path(n).name, lfs[n]) for n in sorted(weights)])
            return None
    return _cached_identity(repo, revision)


def _cached_identity(repo: str, revision: str | None) -> str | None:
    """The identity from a cached snapshot whose weight files link to sha256-named blobs."""
    storage = Path(hf_cache_dir()) / ("models--" + repo.replace("/", "--"))
    ref = revision or "main"
    commit = ref
    with_ref = storage / "refs" / ref
    if with_ref.is_file():
        commit = with_ref.read_text().strip()
    snapshot = storage / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    try:
        files = find_weight_files(snapshot)
    except InputError:
        return None
    blobs = [Path(os.path.realpath(f)) for f in files]
    if not all(b.parent.name == "blobs" and _SHA256.fullmatch(b.name) for b in blobs):
        return None
    return combine_file_hashes([(f.name, b.name) for f, b in zip(files, blobs)])
