"""The M4B is rebuilt only when what it is made of changed.

A book's inputs are its chapters (ids, titles and inputs hashes: each names everything that made
the chapter's master), the tags and cover, the delivery settings and the software version. After a
build the hash of those inputs is recorded beside the project's work files with the book file's size
and sha256 and the build's result (chapter marks, check); a later render with the same inputs whose
M4B is still there unchanged reuses that result instead of encoding and checking the book again.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .. import __version__
from ..audio import FINISHING_REVISION
from ..atomic import write_json
from ..files import canonical_hash, file_sha256
from .manifests import jsonable

RECORD_NAME = "book.json"


def book_inputs_hash(job, chapters: list[dict]) -> str | None:
    """None when a chapter does not say what it was made from (then the book is always built)."""
    if any(not c.get("inputs_hash") for c in chapters):
        return None
    p = job.project
    return canonical_hash({
        "chapters": [[c["id"], c["title"], c["inputs_hash"]] for c in chapters],
        "tags": {"title": p.title, "author": p.author, "narrator": p.narrator, "genre": p.genre,
                 "description": p.description},
        "cover": file_sha256(p.cover) if p.cover else None,
        "delivery": jsonable(asdict(p.delivery)), "software": __version__,
        "finishing": FINISHING_REVISION})


def _record_path(job) -> Path:
    return job.project.work_dir / RECORD_NAME


def current_book(job, path: Path, inputs_hash: str) -> dict | None:
    """The recorded build result if it was made from ``inputs_hash`` into ``path`` and the file there
    is still the one it wrote; None otherwise."""
    if inputs_hash is None:
        return None
    try:
        record = json.loads(_record_path(job).read_text())
        if record.get("inputs_hash") != inputs_hash or record.get("path") != str(path):
            return None
        if path.stat().st_size != record["bytes"] or file_sha256(path) != record["sha256"]:
            return None
        return record["result"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_book(job, path: Path, inputs_hash: str | None, result: dict) -> None:
    if inputs_hash is None:
        return
    write_json(_record_path(job), {"inputs_hash": inputs_hash, "path": str(path), "bytes": path.stat().st_size,
                                   "sha256": file_sha256(path), "result": result})
