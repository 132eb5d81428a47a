"""What a review reads: a project's rendered chapters (their manifests) and the takes in the store,
joined with review.yaml. Read-only: a running render is never blocked or disturbed (manifests and
store entries are published by atomic rename)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..production import manifests
from ..production.jobs import output_dir
from ..production.options import RenderOptions
from ..production.store import SegmentStore
from ..script.project import Project, load_project
from . import decisions as dec

CHAPTER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Review:
    project: Project
    out_dir: Path      # the delivery folder (OUT/<project folder>/ with --out)
    store: SegmentStore

    @property
    def root(self) -> Path:
        return self.project.root


def open_review(project_path: str | Path, out: str | Path | None = None, store: str | Path | None = None) -> Review:
    """The project (validated; InputError on bad input), its delivery folder and its store."""
    project = load_project(project_path)
    dec.load(project.root)   # a bad review.yaml is reported now, with its line
    out_dir = output_dir(project, RenderOptions(out_dir=str(out) if out else None))
    return Review(project, out_dir, SegmentStore(Path(store) if store else project.work_dir / "store"))


def chapter_ids(review: Review) -> list[str]:
    folder = review.out_dir / "manifests"
    return sorted(p.stem for p in folder.glob("*.json") if CHAPTER_ID_RE.match(p.stem)) if folder.is_dir() else []


def load_chapter(review: Review, chapter_id: str) -> dict:
    """A chapter's manifest (InputError when the chapter is unknown or its manifest unreadable)."""
    if not CHAPTER_ID_RE.match(chapter_id) or chapter_id not in chapter_ids(review):
        known = ", ".join(chapter_ids(review)) or "none: render the project first"
        raise InputError(f"no rendered chapter {chapter_id!r} (rendered: {known})", file=review.out_dir,
                         field="chapter")
    path = review.out_dir / "manifests" / f"{chapter_id}.json"
    try:
        doc = json.loads(path.read_text())
        manifests.validate_chapter_manifest(doc)
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable chapter manifest: {e}", file=path) from None
    return doc


def segment_takes(segment: dict) -> list[dict]:
    """Every take of a segment the manifest knows: its attempts, the alternatives, the pinned one.
    Each: {key, label, seed, qc, chosen}."""
    chosen = segment.get("review", {}).get("pinned", {}).get("take")
    out, seen = [], set()
    for a in segment.get("attempts", []):
        if a.get("key") and a["key"] not in seen:
            seen.add(a["key"])
            out.append({"key": a["key"], "label": f"attempt {a['attempt']}", "seed": a["seed"], "qc": a["qc"],
                        "chosen": a["attempt"] == segment["attempt"] if chosen is None else a["key"] == chosen})
    for alt in segment.get("review", {}).get("alternatives", []):
        if alt["key"] not in seen:
            seen.add(alt["key"])
            out.append({"key": alt["key"], "label": f"alternative {alt['index']}", "seed": alt["seed"],
                        "qc": alt["qc"], "chosen": alt["key"] == chosen})
    return out


def chapter_view(review: Review, chapter_id: str, decisions: dec.Decisions | None = None) -> dict:
    """A chapter for people: its segments with speakers, text, QC, every take and the decisions."""
    doc = load_chapter(review, chapter_id)
    decisions = decisions if decisions is not None else dec.load(review.root)
    segments = []
    for s in doc["segments"]:
        d = decisions.get(s["id"])
        segments.append({
            "id": s["id"], "speakers": list(dict.fromkeys(s["speakers"])), "text": s["text"],
            "display_text": s.get("display_text", s["text"]), "start_ms": s["start_ms"], "end_ms": s["end_ms"],
            "qc": s["qc"], "takes": segment_takes(s), "rendered": s.get("review", {}),
            "decision": {"pin": d.pin.take if d.pin else None,
                         "retake": {"count": d.retake.count, "note": d.retake.note} if d.retake else None,
                         "alternatives": d.alternatives, "text": d.text}})
    audio = next((f["path"] for f in doc["files"] if f["format"] in ("mp3", "flac", "wav")), None)
    return {"id": doc["chapter_id"], "title": doc["title"], "duration_ms": doc["duration_ms"],
            "audio": audio, "segments": segments, "review": doc.get("review", {})}


def find_segment(review: Review, segment_id: str) -> tuple[str, dict]:
    """(chapter id, manifest segment) of a segment id or a unique prefix of one (InputError if none)."""
    if not re.fullmatch(r"[0-9a-f]{4,16}", segment_id or ""):
        raise InputError(f"not a segment id: {segment_id!r} (hex, as `dia-studio takes` shows)", field="segment")
    found = [(c, s) for c in chapter_ids(review) for s in load_chapter(review, c)["segments"]
             if s["id"].startswith(segment_id)]
    if len(found) != 1:
        raise InputError(f"segment {segment_id!r} is {'ambiguous' if found else 'not in any rendered chapter'}",
                         file=review.out_dir, field="segment")
    return found[0]


def find_take(segment: dict, take: str | None) -> str:
    """A take key of ``segment``: the chosen one (None), or a unique prefix of one of its takes."""
    takes = segment_takes(segment)
    if take is None:
        chosen = [t["key"] for t in takes if t["chosen"]]
        if chosen:
            return chosen[0]
        raise InputError(f"segment {segment['id']}: no take recorded; render first", field="take")
    matches = [t["key"] for t in takes if t["key"].startswith(take.lower())] if len(take) >= 6 else []
    if len(matches) != 1:
        known = ", ".join(f"{t['key'][:12]} ({t['label']})" for t in takes)
        raise InputError(f"segment {segment['id']}: take {take!r} is not one of its takes ({known})", field="take")
    return matches[0]
