"""The delivery folder: which project owns it, and which of its files the pipeline made.

Ownership: the first render into a folder writes ``.dia-studio-owner.json`` there (the project's
resolved manifest path and its project id, created atomically: of two renders racing for a new
folder exactly one wins). A render of any other project into that folder is refused before any
work (``InputError``: the CLI exits 2 with one line naming both projects). A project that was moved
(same project id in its ``.dia-studio/project-id``, its old manifest path gone) takes its folder
along. A folder from before ownership records (a manifest.json but no record) is adopted only by
a project with the title that manifest names.

Superseding: after a render the folder holds exactly what manifest.json lists, plus the ownership
record. Files the pipeline made that the new manifest no longer lists (a deleted chapter, a dropped
format, the M4B of an incomplete delivery) are moved, each with one rename, into
``.superseded/<UTC time of the run>/`` under the same relative path: nothing a producer may still
need is deleted. Only names the pipeline itself writes are ever moved (``chapter-NN.<format>``,
``manifests/chapter-NN.json``, ``<project folder>.m4b``, ``manifest.json`` and whatever the previous
manifest listed); any other file in the folder is left alone.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import uuid
from pathlib import Path, PurePosixPath

from ..atomic import write_json
from ..errors import InputError

OWNER_FILE = ".dia-studio-owner.json"
SUPERSEDED = ".superseded"
PROJECT_ID_FILE = "project-id"          # in the project's work folder (.dia-studio/)
MANIFEST = "manifest.json"
CHAPTER_FILE_RE = re.compile(r"^chapter-\d+\.(mp3|flac|wav|vtt|srt)$")
CHAPTER_MANIFEST_RE = re.compile(r"^chapter-\d+\.json$")


# ---------------------------------------------------------------------------------------------
# Ownership

def project_id(project, *, create: bool = False) -> str | None:
    """The project's id (``.dia-studio/project-id``), made on first use when ``create``."""
    path = Path(project.work_dir) / PROJECT_ID_FILE
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if text:
            return text
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    _create_exclusive(path, uuid.uuid4().hex + "\n")
    return path.read_text().strip()


def read_owner(out_dir: Path) -> dict | None:
    """The folder's ownership record, or None when it has none."""
    path = Path(out_dir) / OWNER_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):   # no folder there (yet): a bad --out is reported apart
        return None
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable ownership record ({e}); if this folder is yours, remove the file",
                         file=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("project"), str):
        raise InputError("ownership record names no project; if this folder is yours, remove the file",
                         file=path)
    return data


def check_owner(project, out_dir: str | Path) -> None:
    """Raise InputError unless ``out_dir`` is new, or belongs to ``project`` (writes nothing)."""
    out_dir = Path(out_dir)
    record = read_owner(out_dir)
    if record is None:
        _check_legacy(project, out_dir)
    elif not _owns(project, record):
        raise InputError(f"output folder {out_dir} belongs to another project, {record['project']}; "
                         f"render this one into another --out folder", file=project.manifest_label)


def claim(project, out_dir: str | Path, created_at: str) -> None:
    """Make ``project`` the owner of ``out_dir`` (call under the project's render lock, before any
    output is written). Raises InputError if another project owns it or wins a race for it."""
    out_dir = Path(out_dir)
    check_owner(project, out_dir)
    record = {"project": str(project.manifest_path), "project_id": project_id(project, create=True),
              "title": project.title, "created_at": created_at}
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = read_owner(out_dir)
    if existing is None:
        if not _create_exclusive(out_dir / OWNER_FILE, json.dumps(record, indent=2) + "\n"):
            check_owner(project, out_dir)   # another render created it meanwhile: is it ours?
    elif existing.get("project") != record["project"]:   # this project was moved here
        write_json(out_dir / OWNER_FILE, {**record, "moved_from": existing["project"]})


def _owns(project, record: dict) -> bool:
    if record["project"] == str(project.manifest_path):
        return True
    pid = project_id(project)
    return bool(pid) and record.get("project_id") == pid and not Path(record["project"]).exists()


def _check_legacy(project, out_dir: Path) -> None:
    """A delivery written before ownership records: adopted only if its manifest names our title."""
    path = out_dir / MANIFEST
    if not path.exists():
        return
    try:
        title = json.loads(path.read_text()).get("title")
    except (OSError, ValueError, AttributeError):
        title = None
    if title != project.title:
        raise InputError(f"output folder {out_dir} holds a delivery of another project ({title!r}) that names "
                         f"no owner; render this one into another --out folder (or move that delivery away)",
                         file=project.manifest_label)


def _create_exclusive(target: Path, text: str) -> bool:
    """Publish ``target`` with ``text`` unless it exists (atomic: a complete file or none).
    Returns False when it already existed."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-owner-", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError:   # no hard links on this file system: exclusive create
            try:
                with open(target, "x") as f:
                    f.write(text)
            except FileExistsError:
                return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# ---------------------------------------------------------------------------------------------
# Superseding

def stamp(started_at: str) -> str:
    """A folder name from a run's start time: 2026-01-02T03:04:05Z -> 20260102T030405Z."""
    return re.sub(r"[^0-9A-Za-z]", "", started_at) or "run"


def retire_manifest(out_dir: str | Path, run_stamp: str) -> Path | None:
    """Move the previous manifest.json aside before a render rewrites the delivery, so a folder
    never shows a manifest that does not describe it (a killed render leaves none)."""
    src = Path(out_dir) / MANIFEST
    if not src.is_file():
        return None
    return _move(Path(out_dir), MANIFEST, run_stamp)


def supersede(out_dir: str | Path, keep: set[str], run_stamp: str, book_name: str) -> list[Path]:
    """Move every file the pipeline made that is not in ``keep`` (paths relative to ``out_dir``)
    into ``.superseded/<run_stamp>/``; returns where they went."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    keep = {PurePosixPath(k).as_posix() for k in keep} | {MANIFEST, OWNER_FILE}
    moved = []
    for rel in sorted(_pipeline_files(out_dir, book_name, run_stamp) - keep):
        p = out_dir / rel
        if p.is_symlink() or p.is_file():
            moved.append(_move(out_dir, rel, run_stamp))
    return moved


def listed_files(doc: dict) -> set[str]:
    """Paths (relative to the project manifest) of every file a project manifest lists."""
    out = set()
    for c in doc.get("chapters") or []:
        out |= {f.get("path") for f in c.get("files") or []}
        out.add(c.get("manifest"))
    out |= {f.get("path") for f in doc.get("book_files") or []}
    out |= {f.get("path") for f in doc.get("published_files") or []}
    return {p for p in out if isinstance(p, str) and _safe(p)}


def _pipeline_files(out_dir: Path, book_name: str, run_stamp: str) -> set[str]:
    names = {p.name for p in out_dir.iterdir()
             if (p.is_file() or p.is_symlink()) and (CHAPTER_FILE_RE.match(p.name) or p.name == book_name)}
    manifests = out_dir / "manifests"
    if manifests.is_dir():
        names |= {f"manifests/{p.name}" for p in manifests.iterdir()
                  if (p.is_file() or p.is_symlink()) and CHAPTER_MANIFEST_RE.match(p.name)}
    # whatever the previous manifest listed (retired at the start of this run, or still in place)
    for prev in (out_dir / MANIFEST, out_dir / SUPERSEDED / run_stamp / MANIFEST):
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            names |= listed_files(json.loads(prev.read_text()))
    return names


def _safe(rel: str) -> bool:
    p = PurePosixPath(rel)
    return (bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel
            and not any(part.startswith(".") for part in p.parts) and p.as_posix() not in (MANIFEST, OWNER_FILE))


def _move(out_dir: Path, rel: str, run_stamp: str) -> Path:
    src = out_dir / rel
    dest = out_dir / SUPERSEDED / run_stamp / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while dest.exists() or dest.is_symlink():
        n += 1
        dest = dest.with_name(f"{Path(rel).stem}.{n}{Path(rel).suffix}")
    os.replace(src, dest)   # one rename: the file is either in the delivery or aside, never lost
    return dest
