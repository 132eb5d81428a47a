"""Chapter and project manifests: build helpers, JSON Schema validation, atomic writes.

Schemas: dia_core/schemas/chapter-manifest.schema.json and project-manifest.schema.json (JSON
Schema draft 2020-12; shipped as package data). Beyond the schema, ``validate_*`` checks what a
schema cannot: segment times are ordered (end >= start, segments do not go backwards) and lie
inside the chapter; chapter files' sha256 are lowercase hex; a project manifest is complete
exactly when no chapter is missing, an incomplete one has no book, and its QC counts add up. Non-finite floats are refused (JSON
has no infinities; measurements use -200 dB for "silent").
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np

from ..atomic import write_json
from ..files import file_sha256  # one sha256-of-a-file for store entries and manifests

__all__ = ["SCHEMA_VERSION", "load_schema", "validate_chapter_manifest", "validate_project_manifest",
           "write_chapter_manifest", "write_project_manifest", "file_sha256", "file_entry", "utc_now",
           "segment_times_ms"]

SCHEMA_VERSION = "1"
CHAPTER_SCHEMA = "chapter-manifest.schema.json"
PROJECT_SCHEMA = "project-manifest.schema.json"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    text = resources.files("dia_core").joinpath("schemas", name).read_text(encoding="utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name), format_checker=jsonschema.FormatChecker())


def _check_finite(obj, path="$"):
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{path}: non-finite number {obj!r} (JSON has no infinities)")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_finite(v, f"{path}[{i}]")


def _schema_errors(name: str, data: dict) -> None:
    errors = sorted(_validator(name).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        msgs = [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors[:10]]
        raise ValueError(f"invalid {name.split('.')[0]}: " + "; ".join(msgs))


def validate_chapter_manifest(data: dict) -> None:
    """Raise ValueError unless ``data`` is a valid chapter manifest."""
    _check_finite(data)
    _schema_errors(CHAPTER_SCHEMA, data)
    prev_start = 0
    ids = set()
    for i, seg in enumerate(data["segments"]):
        if seg["id"] in ids:
            raise ValueError(f"segments/{i}: duplicate segment id {seg['id']!r}")
        ids.add(seg["id"])
        if seg["end_ms"] < seg["start_ms"]:
            raise ValueError(f"segments/{i}: end_ms {seg['end_ms']} before start_ms {seg['start_ms']}")
        if seg["start_ms"] < prev_start:
            raise ValueError(f"segments/{i}: start_ms {seg['start_ms']} goes back in time")
        if seg["end_ms"] > data["duration_ms"]:
            raise ValueError(f"segments/{i}: end_ms {seg['end_ms']} after the chapter end {data['duration_ms']}")
        prev_start = seg["start_ms"]


def validate_project_manifest(data: dict) -> None:
    """Raise ValueError unless ``data`` is a valid project manifest."""
    _check_finite(data)
    _schema_errors(PROJECT_SCHEMA, data)
    ids = [c["id"] for c in data["chapters"]]
    if len(set(ids)) != len(ids):
        raise ValueError("chapters: duplicate chapter ids")
    missing = data["missing_chapters"]
    if data["complete"] != (not missing):
        raise ValueError("complete must be true exactly when no chapter is missing")
    if set(missing) & set(ids) or len(set(missing)) != len(missing):
        raise ValueError("missing_chapters: a chapter is listed twice, or both present and missing")
    if missing and (data["book_files"] or data.get("book")):
        raise ValueError("an incomplete delivery has no book")
    for i, c in enumerate(data["chapters"]):
        if c["qc_failed"] != len(c["qc_failed_segments"]):
            raise ValueError(f"chapters/{i}: qc_failed {c['qc_failed']} but {len(c['qc_failed_segments'])} segment ids")
    if data["qc_failed"] != sum(c["qc_failed"] for c in data["chapters"]):
        raise ValueError("qc_failed is not the sum of the chapters' qc_failed")
    if _when(data["finished_at"]) < _when(data["started_at"]):
        raise ValueError("finished_at is before started_at")


def _when(stamp: str) -> datetime:
    try:
        t = datetime.fromisoformat(stamp)
    except ValueError as e:
        raise ValueError(f"bad timestamp {stamp!r}: {e}") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def write_chapter_manifest(data: dict, path: str | Path) -> Path:
    validate_chapter_manifest(data)
    return write_json(path, data)


def write_project_manifest(data: dict, path: str | Path) -> Path:
    validate_project_manifest(data)
    return write_json(path, data)


def file_entry(path: str | Path, *, relative_to: str | Path | None = None,
               duration_s: float | None = None) -> dict:
    """{path, format, sha256, bytes[, duration_s]} for a written file (format from its suffix)."""
    p = Path(path)
    shown = p.relative_to(relative_to) if relative_to is not None else p
    entry = {"path": shown.as_posix(), "format": p.suffix.lstrip(".").lower(), "sha256": file_sha256(p),
             "bytes": p.stat().st_size}
    if duration_s is not None:
        entry["duration_s"] = round(float(duration_s), 3)
    return entry


def segment_times_ms(spans) -> list[tuple[int, int]]:
    """Stitch spans (seconds) to integer milliseconds for the manifest and captions."""
    return [(int(round(a * 1000)), int(round(b * 1000))) for a, b in spans]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj
