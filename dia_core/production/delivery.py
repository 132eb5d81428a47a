"""Delivery: finish each chapter (tempo, stitch, loudness, export, captions, profile check, chapter
manifest), collect the whole book's chapters (a partial render reuses the other chapters' up-to-date
outputs), build the M4B, move files the new delivery no longer lists aside, write the project
manifest last, and apply a strict profile.

Each chapter manifest records the chapter's ``inputs_hash`` (its plan, first-attempt take keys,
voices' prompts, QC and delivery settings, engine, software) and the sha256 of its float master's
samples, so a later partial render can tell whether a chapter it does not render is still current.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import soundfile as sf

from .. import __version__, faults
from ..audio import FINISHING_REVISION
from ..audio import captions as cap
from ..audio import chain, m4b, profiles, tempo
from ..atomic import write_json
from ..audiofile import as_float_mono, write_wav_float
from ..files import canonical_hash, file_sha256
from ..publish import metadata as publish_meta
from ..params import SAMPLE_RATE
from . import book_reuse, cue_times, folder
from . import manifests as manifest
from .manifests import jsonable
from .jobs import Job, engine_identity
from .options import RenderOptions
from .takes import Outcome, take_key


class DeliveryFailed(Exception):
    """A strict delivery profile was not met (the files and manifests are written and say why)."""


def finish_chapter(job: Job, chapter_id: str, outcomes: dict[str, Outcome],
                   annotations: tuple[dict, dict] = ({}, {})) -> dict:
    """``annotations``: (segment id -> extra manifest fields, extra chapter fields), e.g. the review
    decisions (pinned, retaken) a render applied (dia_core.review.apply.manifest_annotations).
    A chapter whose delivered files and manifest already record these inputs (reuse_chapter) is not
    finished again."""
    chapter = job.chapter(chapter_id)
    current = reuse_chapter(job, chapter, chapter_inputs_hash(
        job, chapter, [outcomes[s.id].attempts[0].key for s in chapter.segments]))
    if current is not None:
        return current
    settings = job.project.delivery
    takes = []
    for s in chapter.segments:
        audio = job.store.get(outcomes[s.id].chosen.key)
        if audio is None:
            raise RuntimeError(f"chosen take for segment {s.id} is missing or corrupt in {job.store.root}")
        takes.append(audio.load_audio())
    done = chain.finish_chapter_audio(takes, [s.sampling.speed_factor for s in chapter.segments],
                                      [s.boundary for s in chapter.segments], [s.id for s in chapter.segments],
                                      settings, seed=job.project.seed, out_stem=job.out_dir / chapter.id)
    audio, loud, files = done.audio, done.loudness, done.files
    spans, head_s, tail_s, trims = done.spans, done.head_s, done.tail_s, done.trims
    del done
    publish_meta.tag_chapter_files(files, job.project, chapter.title, chapter.index,
                                   max(c.index for c in job.book.chapters))
    # A float master of the finished chapter feeds the M4B without a second lossy generation.
    master = job.project.work_dir / "masters" / f"{chapter.id}.wav"
    write_wav_float(audio, master)

    cues, segments = [], []
    for s, (start_ms, end_ms), span, (trim_start, _e) in zip(chapter.segments, manifest.segment_times_ms(spans),
                                                             spans, trims):
        o = outcomes[s.id]
        # cues follow the chosen take's alignment where it has one, else a share by characters
        times = cue_times.chapter_times(cue_times.take_word_times(job.store, o.chosen),
                                        speed_factor=s.sampling.speed_factor, trim_start=trim_start,
                                        span_start_s=span[0])
        cues += cue_times.segment_cues(s, start_ms / 1000, end_ms / 1000, times, job.project.lexicon)
        segments.append({
            "id": s.id, "text": s.text, "display_text": s.display_text or s.text,
            "voices": dict(s.slots), "speakers": [t.character for t in s.turns],
            "boundary": s.boundary, "seed": o.chosen.seed, "attempt": o.chosen.attempt,
            "attempts": [{"attempt": a.attempt, "seed": a.seed, "key": a.key, "qc": a.qc} for a in o.attempts],
            "sampling": s.sampling.to_dict(), "start_ms": start_ms, "end_ms": end_ms,
            "qc": {k: o.chosen.qc[k] for k in ("passed", "metrics", "failures")},
            "source": {"file": s.source.file, "line": s.source.line}, **annotations[0].get(s.id, {})})
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
    check = {"measurements": jsonable(report.measurements.to_dict()), "limits": jsonable(report.limits),
             "passed": bool(report.passed), "failures": list(report.failures)}
    qc_failed = [s.id for s in chapter.segments if not outcomes[s.id].chosen.qc["passed"]]
    chapter_manifest = job.out_dir / "manifests" / f"{chapter.id}.json"
    doc = {
        "schema_version": manifest.SCHEMA_VERSION, "chapter_id": chapter.id, "index": chapter.index,
        "title": chapter.title, "sample_rate": SAMPLE_RATE, "duration_ms": round(duration_s * 1000),
        "duration_s": round(duration_s, 3), "head_ms": round(head_s * 1000), "tail_ms": round(tail_s * 1000),
        "profile": settings.profile, "files": entries, "loudness": jsonable(loud.to_dict()),
        "check": check, "qc_failed": len(qc_failed), "qc_failed_segments": qc_failed,
        "inputs_hash": chapter_inputs_hash(job, chapter, [outcomes[s.id].attempts[0].key
                                                          for s in chapter.segments]),
        "master_samples_sha256": samples_sha256(audio),
        "created_at": manifest.utc_now(), "segments": segments, **annotations[1],
    }
    manifest.write_chapter_manifest(doc, chapter_manifest)
    return _chapter_result(job, doc, rendered=True)


def _chapter_result(job: Job, doc: dict, *, rendered: bool) -> dict:
    """What the book, the project manifest and the summary need of a finished chapter (plain JSON)."""
    return {
        "id": doc["chapter_id"], "title": doc["title"], "manifest": f"manifests/{doc['chapter_id']}.json",
        "master": str(_master_path(job, doc["chapter_id"])), "files": doc["files"],
        "duration_s": doc["duration_s"], **doc["check"],
        "segments": len(doc["segments"]), "attempts": sum(len(s.get("attempts") or [1]) for s in doc["segments"]),
        "qc_failed": doc["qc_failed"], "qc_failed_segments": doc["qc_failed_segments"],
        "inputs_hash": doc["inputs_hash"], "rendered": rendered,
    }


def samples_sha256(audio) -> str:
    """sha256 of float32 mono samples (the master's WAV bytes hold a libsndfile PEAK chunk with a
    time stamp, so its file hash differs between identical renders)."""
    a = as_float_mono(audio)
    return _blocks_sha256(a[i:i + _HASH_BLOCK] for i in range(0, len(a), _HASH_BLOCK))


def master_samples_sha256(path: Path) -> str:
    """samples_sha256 of a master WAV, read a block at a time."""
    return _blocks_sha256(sf.blocks(str(path), blocksize=_HASH_BLOCK, dtype="float32", always_2d=False))


_HASH_BLOCK = 1 << 20


def _blocks_sha256(blocks) -> str:
    h = hashlib.sha256()
    for block in blocks:
        h.update(as_float_mono(block).astype("<f4", copy=False).tobytes())
    return h.hexdigest()


def _master_path(job: Job, chapter_id: str) -> Path:
    return job.project.work_dir / "masters" / f"{chapter_id}.wav"


# ---------------------------------------------------------------------------------------------
# The whole book: chapters rendered now, and up-to-date chapters from earlier renders

def chapter_inputs_hash(job: Job, chapter, first_keys: list[str]) -> str:
    """Everything that determines a chapter's delivered files: its plan (text, voices, seeds,
    sampling, boundaries, estimates), the store keys of its first attempts (voices' prompts, engine
    and model checksum), QC and delivery settings, the stitch seed, the software version, the
    finishing chain's revision and the time-stretch engine this host runs."""
    return canonical_hash({
        "chapter": chapter.to_json(), "takes": list(first_keys),
        "qc": jsonable(asdict(job.project.qc)), "delivery": jsonable(asdict(job.project.delivery)),
        "seed": job.project.seed, "software": __version__, "finishing": FINISHING_REVISION,
        "tempo": tempo.resolve_engine(job.project.delivery.tempo_engine)})   # what "auto" is on this host


def save_book_hashes(job: Job, prompts: dict, pinned: dict[str, str] | None = None) -> Path:
    """The inputs hash of every chapter of the book (rendered now or not), for collect_chapters.
    ``pinned``: segment id -> the take key a review pinned (its first attempt's key)."""
    pinned = pinned or {}
    hashes = {c.id: chapter_inputs_hash(job, c, [pinned.get(s.id) or take_key(job, s, s.seed, prompts)
                                                 for s in c.segments])
              for c in job.book.chapters}
    return write_json(_hashes_path(job), hashes)


def _hashes_path(job: Job) -> Path:
    return job.project.work_dir / "chapter-hashes.json"


def reuse_chapter(job: Job, chapter, inputs_hash: str | None) -> dict | None:
    """An earlier render's chapter, if it is current: its manifest names ``inputs_hash``, every
    file it lists is in the output folder unchanged, and the float master the M4B is built from is
    the one it was finished with. None otherwise."""
    path = job.out_dir / "manifests" / f"{chapter.id}.json"
    try:
        doc = json.loads(path.read_text())
        manifest.validate_chapter_manifest(doc)
    except (OSError, ValueError):
        return None
    if inputs_hash is None or doc.get("inputs_hash") != inputs_hash or doc.get("chapter_id") != chapter.id:
        return None
    if not all(k in doc for k in ("check", "qc_failed", "qc_failed_segments", "master_samples_sha256",
                                  "duration_s")):
        return None
    try:
        for f in doc["files"]:
            p = job.out_dir / f["path"]
            if p.parent != job.out_dir or p.stat().st_size != f["bytes"] or file_sha256(p) != f["sha256"]:
                return None
        if master_samples_sha256(_master_path(job, chapter.id)) != doc["master_samples_sha256"]:
            return None
    except (OSError, RuntimeError):   # soundfile raises RuntimeError (LibsndfileError) on a bad file
        return None
    return _chapter_result(job, doc, rendered=False)


def collect_chapters(job: Job, finished: list[dict]) -> tuple[list[dict], list[str]]:
    """Every chapter of the book in order: those finished in this run, else the earlier render's if
    current (reuse_chapter). Returns (chapters, ids of the chapters that are missing or out of date)."""
    done = {c["id"]: c for c in finished}
    try:
        hashes = json.loads(_hashes_path(job).read_text()) if len(done) < len(job.book.chapters) else {}
    except (OSError, ValueError):
        hashes = {}
    chapters, missing = [], []
    for ch in job.book.chapters:
        found = done.get(ch.id) or reuse_chapter(job, ch, hashes.get(ch.id))
        if found is None:
            missing.append(ch.id)
        else:
            chapters.append(found)
    return chapters, missing


# ---------------------------------------------------------------------------------------------
# Book and project manifest

def export_book(job: Job, chapters: list[dict], missing: list[str] | tuple = ()) -> dict | None:
    """The M4B from the chapters' float masters (none while chapters are ``missing``: a book under the
    book's name always holds every chapter), checked after writing (export.export_m4b_checked):
    container (AAC, 44.1 kHz mono, markers, duration, tags, cover) and each chapter slice and the
    whole book against the delivery profile, a peak over the limit corrected by one re-encode.
    The verdict is ``book["check"]`` (passed, failures, measurements, chapters, ...)."""
    settings = job.project.delivery
    if "m4b" not in settings.formats or not chapters or missing:
        return None
    p = job.project
    target, inputs = job.out_dir / book_name(job), book_reuse.book_inputs_hash(job, chapters)
    kept = book_reuse.current_book(job, target, inputs)   # no chapter changed: the M4B is current
    if kept is not None:
        return kept
    faults.hit("book")
    path, marks, report = m4b.export_m4b_checked(
        [Path(c["master"]) for c in chapters], [c["title"] for c in chapters],
        target, settings,
        {"title": p.title, "author": p.author, "narrator": p.narrator, "genre": p.genre,
         "description": p.description}, p.cover, bitrate_kbps=settings.aac_bitrate_kbps)
    publish_meta.tag_book(path, p)   # tags and cover the M4B lacks; its chapters kept
    check = {k: v for k, v in report.to_dict().items() if k != "path"}   # the book entry has the path
    result = {"path": str(path), "chapters": [{"title": c["title"], "start_ms": s, "end_ms": e}
                                              for c, (s, e) in zip(chapters, marks)],
              "check": jsonable(check)}
    book_reuse.remember_book(job, Path(path), inputs, result)
    return result


def book_name(job: Job) -> str:
    return f"{job.project.root.name}.m4b"


def inputs_hash(project, options: RenderOptions) -> str:
    """Hash of everything that determines the outputs: manifest, manuscripts, references, cover,
    chapter selection, engine and software version. The catalog re-renders when it changes."""
    files = [project.manifest_path, *project.manuscripts, project.cover,
             *[v.reference for v in project.voices.values()],
             *[f for f in [project.root / "review.yaml"] if f.is_file()]]   # review decisions (dia_core.review)
    return canonical_hash({
        "files": {str(Path(f).relative_to(project.root)): file_sha256(f) for f in files if f},
        "chapters": list(options.chapters) if options.chapters else None,
        "engine": engine_identity(project, options), "software": __version__})


def open_delivery(job: Job, started_at: str) -> None:
    """Before the first chapter is written: move the previous manifest.json aside (a folder never
    shows a manifest that does not describe it; a killed render leaves none)."""
    folder.retire_manifest(job.out_dir, folder.stamp(started_at))


def write_project_manifest(job: Job, chapters: list[dict], book: dict | None,
                           started_at: str, missing: list[str] | tuple = (),
                           published: list[dict] | tuple = ()) -> Path:
    """manifest.json, last: every chapter of the book (``chapters``, in order), the M4B, the
    published files (credits, podcast episode, ACX package: ``published``), QC failures delivered
    anyway, ``complete`` (false while chapters are ``missing``). Files the pipeline made that it
    does not list are moved to .superseded/<run>/ first."""
    p = job.project
    marks = (book or {}).get("chapters", [])
    chapter_entries = []
    for i, c in enumerate(chapters):
        entry = {k: c[k] for k in ("id", "title", "manifest", "files", "duration_s", "measurements",
                                   "limits", "passed", "failures", "qc_failed", "qc_failed_segments")}
        if i < len(marks):   # the M4B's markers are in chapter order (titles may repeat)
            entry |= {"start_ms": marks[i]["start_ms"], "end_ms": marks[i]["end_ms"]}
        chapter_entries.append(entry)
    qc_failed = sum(c["qc_failed"] for c in chapters)
    data = {
        "schema_version": manifest.SCHEMA_VERSION, "title": p.title, "author": p.author,
        "narrator": p.narrator, "profile": p.delivery.profile, "strict": p.delivery.strict,
        "chapters": chapter_entries,
        "book_files": [manifest.file_entry(book["path"], relative_to=job.out_dir)] if book else [],
        "book": {"path": Path(book["path"]).relative_to(job.out_dir).as_posix(), "check": book["check"]}
        if book and "check" in book else None,
        "published_files": list(published),
        "model": {"engine": job.engine.name, "id": job.engine.model_id, "checksum": job.engine.checksum},
        "software": {"name": "dia-studio", "version": __version__},
        "started_at": started_at, "finished_at": manifest.utc_now(),
        "inputs_hash": inputs_hash(p, job.options),
        "qc_failed": qc_failed,
        "passed": (all(c["passed"] for c in chapters) and (book or {}).get("check", {}).get("passed", True)
                   and qc_failed == 0),
        "complete": not missing,
        "missing_chapters": list(missing),
    }
    manifest.validate_project_manifest(data)
    faults.hit("project-manifest")
    folder.supersede(job.out_dir, folder.listed_files(data), folder.stamp(started_at), book_name(job))
    path = job.out_dir / "manifest.json"
    manifest.write_project_manifest(data, path)  # last: its presence marks a finished delivery
    return path


def check_strict(job: Job, chapters: list[dict], book: dict | None = None) -> None:
    """A strict profile fails the run when a chapter or the M4B misses it, or when a segment that
    failed QC on every attempt was delivered (after everything is written)."""
    failed = [f"{c['id']}: {', '.join(c['failures'])}" for c in chapters if not c["passed"]]
    failed += [f"{c['id']}: {len(c['qc_failed_segments'])} segment(s) failed QC on every attempt "
               f"({', '.join(c['qc_failed_segments'])})" for c in chapters if c.get("qc_failed_segments")]
    check = (book or {}).get("check")
    if check is not None and not check["passed"]:
        failed.append(f"{Path(book['path']).name}: {', '.join(check['failures'])}")
    if failed and job.project.delivery.strict:
        raise DeliveryFailed(f"{job.project.manifest_path}: delivery profile "
                             f"{job.project.delivery.profile!r} not met (strict): {'; '.join(failed)}")
