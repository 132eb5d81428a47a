"""Delivery: finish each chapter (tempo, stitch, loudness, export, captions, profile check, chapter
manifest), build the M4B, write the project manifest last, and apply a strict profile.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__, faults
from ..audio import captions as cap
from ..audio import dynamics, encode, m4b, profiles, stitch, tempo
from ..audiofile import write_wav_float
from ..files import canonical_hash, file_sha256
from ..params import SAMPLE_RATE
from . import manifests as manifest
from .manifests import jsonable
from .jobs import Job, engine_identity
from .options import RenderOptions
from .takes import Outcome


class DeliveryFailed(Exception):
    """A strict delivery profile was not met (the files and manifests are written and say why)."""


def finish_chapter(job: Job, chapter_id: str, outcomes: dict[str, Outcome]) -> dict:
    chapter = job.chapter(chapter_id)
    settings = job.project.delivery
    pieces = []
    for s in chapter.segments:
        audio = job.store.get(outcomes[s.id].chosen.key)
        if audio is None:
            raise RuntimeError(f"chosen take for segment {s.id} is missing or corrupt in {job.store.root}")
        pieces.append(stitch.StitchPiece(tempo.change_tempo(audio.load_audio(), s.sampling.speed_factor),
                                         s.boundary, s.id))
    faults.hit("stitch")
    stitched = stitch.stitch_chapter(pieces, settings, seed=job.project.seed)
    del pieces  # a long chapter is GBs: keep one copy of it alive at a time (bench/bench_finish.py)
    spans, head_s, tail_s = stitched.spans, stitched.head_s, stitched.tail_s
    # With spans, only speech is gained: the room tone stays under the noise floor.
    audio, loud = dynamics.finish(stitched.audio, settings, spans=spans)
    del stitched
    faults.hit("export")
    job.out_dir.mkdir(parents=True, exist_ok=True)
    files = encode.export_chapter(audio, job.out_dir / chapter.id, settings)
    # A float master of the finished chapter feeds the M4B without a second lossy generation.
    master = job.project.work_dir / "masters" / f"{chapter.id}.wav"
    write_wav_float(audio, master)

    cues, segments = [], []
    for s, (start_ms, end_ms) in zip(chapter.segments, manifest.segment_times_ms(spans)):
        cues += _turn_cues(s, start_ms / 1000, end_ms / 1000, cap.Cue)
        o = outcomes[s.id]
        segments.append({
            "id": s.id, "text": s.text, "display_text": s.display_text or s.text,
            "voices": dict(s.slots), "speakers": [t.character for t in s.turns],
            "boundary": s.boundary, "seed": o.chosen.seed, "attempt": o.chosen.attempt,
            "attempts": [{"attempt": a.attempt, "seed": a.seed, "qc": a.qc} for a in o.attempts],
            "sampling": s.sampling.to_dict(), "start_ms": start_ms, "end_ms": end_ms,
            "qc": {k: o.chosen.qc[k] for k in ("passed", "metrics", "failures")},
            "source": {"file": s.source.file, "line": s.source.line}})
    if "vtt" in settings.captions:
        files["vtt"] = cap.write_vtt(cues, job.out_dir / f"{chapter.id}.vtt")
    if "srt" in settings.captions:
        files["srt"] = cap.write_srt(cues, job.out_dir / f"{chapter.id}.srt")
    primary = next((files[f] for f in ("mp3", "flac", "wav") if f in files), None)
    report = profiles.check_file(primary, settings) if primary else profiles.check_audio(audio, settings)
    faults.hit("manifest")
    duration_s = len(audio) / SAMPLE_RATE
    entries = [manifest.file_entry(f, relative_to=job.out_dir,
                                   duration_s=duration_s if fmt in ("mp3", "flac", "wav") else None)
               for fmt, f in files.items()]
    chapter_manifest = job.out_dir / "manifests" / f"{chapter.id}.json"
    manifest.write_chapter_manifest({
        "schema_version": manifest.SCHEMA_VERSION, "chapter_id": chapter.id, "index": chapter.index,
        "title": chapter.title, "sample_rate": SAMPLE_RATE, "duration_ms": round(duration_s * 1000),
        "head_ms": round(head_s * 1000), "tail_ms": round(tail_s * 1000),
        "profile": settings.profile, "files": entries, "loudness": jsonable(loud.to_dict()),
        "created_at": manifest.utc_now(), "segments": segments,
    }, chapter_manifest)
    return {
        "id": chapter.id, "title": chapter.title,
        "manifest": str(chapter_manifest.relative_to(job.out_dir)), "master": str(master),
        "files": entries, "duration_s": round(duration_s, 3),
        "measurements": jsonable(report.measurements.to_dict()), "limits": jsonable(report.limits),
        "passed": bool(report.passed), "failures": list(report.failures),
        "segments": len(chapter.segments),
        "attempts": sum(len(outcomes[s.id].attempts) for s in chapter.segments),
        "qc_failed": sum(not outcomes[s.id].chosen.qc["passed"] for s in chapter.segments),
    }


def _turn_cues(segment, start: float, end: float, Cue) -> list:
    """Split a segment's span among its turns by text length: one caption cue per speaker turn.
    Times follow the spoken (lexicon-applied) text; cues show the manuscript's spelling."""
    turns = [t for t in segment.turns if t.text.strip()]
    if not turns:
        return []
    weights = np.array([max(1, len(t.text)) for t in turns], dtype=float)
    edges = start + np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]) * (end - start)
    return [Cue(float(edges[i]), float(edges[i + 1]), t.character, t.caption_text)
            for i, t in enumerate(turns) if t.caption_text.strip()]


# ---------------------------------------------------------------------------------------------
# Book and project manifest

def export_book(job: Job, chapters: list[dict]) -> dict | None:
    """The M4B from the chapters' float masters, checked after writing (export.export_m4b_checked):
    container (AAC, 44.1 kHz mono, markers, duration, tags, cover) and each chapter slice and the
    whole book against the delivery profile, a peak over the limit corrected by one re-encode.
    The verdict is ``book["check"]`` (passed, failures, measurements, chapters, ...)."""
    settings = job.project.delivery
    if "m4b" not in settings.formats or not chapters:
        return None
    p = job.project
    faults.hit("book")
    path, marks, report = m4b.export_m4b_checked(
        [Path(c["master"]) for c in chapters], [c["title"] for c in chapters],
        job.out_dir / f"{job.project.root.name}.m4b", settings,
        {"title": p.title, "author": p.author, "narrator": p.narrator, "genre": p.genre,
         "description": p.description}, p.cover, bitrate_kbps=settings.aac_bitrate_kbps)
    check = {k: v for k, v in report.to_dict().items() if k != "path"}   # the book entry has the path
    return {"path": str(path), "chapters": [{"title": c["title"], "start_ms": s, "end_ms": e}
                                            for c, (s, e) in zip(chapters, marks)],
            "check": jsonable(check)}


def inputs_hash(project, options: RenderOptions) -> str:
    """Hash of everything that determines the outputs: manifest, manuscripts, references, cover,
    chapter selection, engine and software version. The catalog re-renders when it changes."""
    files = [project.manifest_path, *project.manuscripts, project.cover,
             *[v.reference for v in project.voices.values()]]
    return canonical_hash({
        "files": {str(Path(f).relative_to(project.root)): file_sha256(f) for f in files if f},
        "chapters": list(options.chapters) if options.chapters else None,
        "engine": engine_identity(project, options), "software": __version__})


def write_project_manifest(job: Job, chapters: list[dict], book: dict | None,
                           started_at: str) -> Path:
    p = job.project
    marks = {m["title"]: m for m in (book or {}).get("chapters", [])}
    chapter_entries = []
    for c in chapters:
        entry = {k: c[k] for k in ("id", "title", "manifest", "files", "duration_s", "measurements",
                                   "limits", "passed", "failures")}
        if c["title"] in marks:
            entry |= {"start_ms": marks[c["title"]]["start_ms"], "end_ms": marks[c["title"]]["end_ms"]}
        chapter_entries.append(entry)
    data = {
        "schema_version": manifest.SCHEMA_VERSION, "title": p.title, "author": p.author,
        "narrator": p.narrator, "profile": p.delivery.profile, "strict": p.delivery.strict,
        "chapters": chapter_entries,
        "book_files": [manifest.file_entry(book["path"], relative_to=job.out_dir)] if book else [],
        "book": {"path": Path(book["path"]).relative_to(job.out_dir).as_posix(), "check": book["check"]}
        if book and "check" in book else None,
        "model": {"engine": job.engine.name, "id": job.engine.model_id, "checksum": job.engine.checksum},
        "software": {"name": "dia-studio", "version": __version__},
        "started_at": started_at, "finished_at": manifest.utc_now(),
        "inputs_hash": inputs_hash(p, job.options),
        "passed": all(c["passed"] for c in chapters) and (book or {}).get("check", {}).get("passed", True),
        "complete": True,
    }
    faults.hit("project-manifest")
    path = job.out_dir / "manifest.json"
    manifest.write_project_manifest(data, path)  # last: its presence marks a complete delivery
    return path


def check_strict(job: Job, chapters: list[dict], book: dict | None = None) -> None:
    """A strict profile fails the run when a chapter or the M4B misses it (after everything is written)."""
    failed = [f"{c['id']}: {', '.join(c['failures'])}" for c in chapters if not c["passed"]]
    check = (book or {}).get("check")
    if check is not None and not check["passed"]:
        failed.append(f"{Path(book['path']).name}: {', '.join(check['failures'])}")
    if failed and job.project.delivery.strict:
        raise DeliveryFailed(f"{job.project.manifest_path}: delivery profile "
                             f"{job.project.delivery.profile!r} not met (strict): {'; '.join(failed)}")
