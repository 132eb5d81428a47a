"""The production recipe as plain functions over paths: plan, voices, takes, chapters, book, manifest.

The Prefect flows in flows/ call these in order and add orchestration (tasks, artifacts, limits);
everything here runs without Prefect, so the same recipe is testable and usable on its own.
Finished work lives in the content-addressed SegmentStore, so a killed run started again only
generates what is missing, and editing one paragraph only regenerates its segments.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from filelock import FileLock, Timeout

from . import __version__, atomic, faults
from .engines import DiaEngine, DraftEngine, Engine, OutOfMemory, TakeRequest, VoicePrompt
from .params import SAMPLE_RATE
from .audio.manifest import utc_now
from .store import SegmentStore, canonical_hash, file_sha256

ProgressFn = Callable[[int, int], None]


class BusyError(Exception):
    """Another render holds this project's lock."""


class DeliveryFailed(Exception):
    """A strict delivery profile was not met (the files and manifests are written and say why)."""


@dataclass(frozen=True)
class RenderOptions:
    """Everything besides the project that decides how a render runs (JSON-able: flow parameters)."""
    out_dir: str | None = None        # parent folder; outputs land in out_dir/<project folder name>/
    draft: bool = False               # espeak-ng draft engine instead of Dia
    model: str | None = None          # HF repo id or local path; overrides the project's `model`
    codec: str | None = None          # local DAC weights; default: descript-audio-codec's download
    store: str | None = None          # segment store; share it between hosts for scale-out
    chapters: tuple[int, ...] | None = None
    device: str | None = None         # "cuda", "cuda:1", "cpu"; default cuda when available
    batch_size: int | None = None
    fast_path: str | None = None      # "off" | "static" | "inductor"; default $DIA_STUDIO_FAST_PATH, else off


# ---------------------------------------------------------------------------------------------
# Job: a project, its plan and the options, opened once per process per (project, options).

@dataclass
class Job:
    project: object   # dia_core.project.Project
    plan: object      # dia_core.planner.Plan
    options: RenderOptions
    out_dir: Path
    store: SegmentStore
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = load_engine(self.project, self.options)
        return self._engine

    @property
    def engine_device(self) -> str | None:
        """The accelerator this job's engine occupies (None for the draft engine)."""
        if self.options.draft:
            return None
        return str(self.engine.model.device)

    def chapter(self, chapter_id: str):
        for ch in self.plan.chapters:
            if ch.id == chapter_id:
                return ch
        raise KeyError(chapter_id)


def open_job(project_path: str | Path, options: RenderOptions) -> Job:
    """Load and plan a project (raises InputError on bad input; writes nothing)."""
    from .planner import plan_project
    from .project import load_project

    project = load_project(project_path)
    faults.hit("plan")
    plan = plan_project(project, chapters=options.chapters)
    out_parent = Path(options.out_dir) if options.out_dir else project.output_dir.parent
    out_dir = out_parent / project.root.name if options.out_dir else project.output_dir
    store = SegmentStore(Path(options.store) if options.store else project.work_dir / "store")
    return Job(project, plan, options, out_dir, store)


_ENGINES: dict[tuple, Engine] = {}


def load_engine(project, options: RenderOptions) -> Engine:
    """The engine for this job, loaded once per process (the Dia weights are 3 GB)."""
    if options.draft:
        cast = {name: v.draft_voice for name, v in project.voices.items()}
        key = ("draft", tuple(sorted(cast.items(), key=str)))
        if key not in _ENGINES:
            _ENGINES[key] = DraftEngine(cast)
        return _ENGINES[key]
    import torch

    from .codec import DiaCodec
    from .model import DiaModel

    source = options.model or _project_model(project) or "nari-labs/Dia-1.6B-0626"
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    fast_path = fast_path_mode(options)
    key = ("dia", source, device, str(dtype), options.codec, fast_path)
    if key not in _ENGINES:
        model = DiaModel.from_pretrained(source, device=device, dtype=dtype)
        model.codec = DiaCodec.load(options.codec, device=device)
        _ENGINES[key] = DiaEngine(model, default_batch_size=16 if device.startswith("cuda") else 2,
                                  fast_path=fast_path)
    return _ENGINES[key]


def fast_path_mode(options: RenderOptions) -> str:
    """The Dia decode mode: the option, else $DIA_STUDIO_FAST_PATH (a GPU host's own setting), else off."""
    from .engines import check_fast_path

    mode = options.fast_path or os.environ.get("DIA_STUDIO_FAST_PATH") or "off"
    return check_fast_path(mode, field="--fast-path" if options.fast_path else "DIA_STUDIO_FAST_PATH")


def _project_model(project) -> str | None:
    model = getattr(project, "model", None)
    if model and (project.root / model).exists():
        return str(project.root / model)
    return model


def engine_identity(project, options: RenderOptions) -> dict:
    """What identifies the engine without loading it (for the catalog's change detection)."""
    if options.draft:
        return {"engine": DraftEngine.name}
    return {"engine": DiaEngine.name, "model": options.model or _project_model(project) or "nari-labs/Dia-1.6B-0626"}


# ---------------------------------------------------------------------------------------------
# Locks

_PROJECT_LOCKS: dict[str, FileLock] = {}


def project_lock(job: Job) -> FileLock:
    """Held for a whole render. Reentrant within a process (the CLI takes it before starting the
    flow, the flow takes it again), exclusive between processes."""
    job.project.work_dir.mkdir(parents=True, exist_ok=True)
    path = str(job.project.work_dir / "render.lock")
    if path not in _PROJECT_LOCKS:
        _PROJECT_LOCKS[path] = FileLock(path, thread_local=False)
    return _PROJECT_LOCKS[path]


def acquire_project_lock(job: Job, wait_s: float = 0) -> FileLock:
    lock = project_lock(job)
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise BusyError(f"{job.project.manifest_path}: another render of this project is running "
                        f"(lock {lock.lock_file}); wait for it to finish") from None
    return lock


def clean_temps(job: Job) -> None:
    """Remove `.tmp-*` files a killed run left in the outputs and the store (under our lock)."""
    from .audio.export import clean_temps as clean

    clean(job.out_dir)
    # The store may be shared with other hosts that are writing right now: only stale temps.
    for folder in (job.store.root, job.project.work_dir):
        clean(folder, min_age_s=3600)


def gpu_lock(device: str) -> FileLock:
    """One GPU job at a time per device on this host (the process-level fallback to Prefect's limit)."""
    lock_dir = Path(os.environ.get("DIA_STUDIO_LOCK_DIR", "/tmp"))
    return FileLock(str(lock_dir / f"dia-studio-{device.replace(':', '-')}.lock"))


# ---------------------------------------------------------------------------------------------
# Voices

GEN_KEYS = ("temperature", "top_p", "cfg_scale", "cfg_filter_top_k", "max_new_tokens")


def _gen_params(sampling) -> dict:
    return {k: getattr(sampling, k) for k in GEN_KEYS}


def _engine_key(engine: Engine) -> dict:
    return {"engine": engine.name, "engine_version": engine.version, "model": engine.checksum}


def prepare_voices(job: Job, log: Callable[[str], None] = lambda _m: None) -> dict[str, VoicePrompt]:
    """Each voice's prompt. Seed-only voices are calibrated once: a short line generated with the
    voice's seed is stored in the project and then used as its reference for the whole book."""
    prompts = {}
    for name, voice in job.project.voices.items():
        if voice.reference is not None:
            sha = canonical_hash({"audio": file_sha256(voice.reference), "transcript": voice.transcript})
            prompts[name] = VoicePrompt(name, voice.reference, voice.transcript, sha)
        else:
            prompts[name] = _calibrate(job, name, voice, log)
    return prompts


def _calibrate(job: Job, name: str, voice, log) -> VoicePrompt:
    """Generate the calibration line; it must fit the prompt frames the planner reserved for it,
    so a take that runs long is regenerated with a derived seed, and the last resort is trimmed."""
    from .audio.stitch import trim_bounds
    from .project import prompt_frames_for

    cap = prompt_frames_for(voice) * 512  # samples (hop 512)
    trim = job.project.delivery.trim
    takes = []
    for attempt in range(1, job.project.qc.max_attempts + 1):
        seed = attempt_seed(voice.seed, f"calibration:{name}", attempt)
        request = TakeRequest(text=f"[S1] {voice.calibration_text}", prompt_text="",
                              slots={"S1": name, "S2": None}, seed=seed, sampling=voice.sampling)
        key = canonical_hash({"calibration": request.text, "seed": seed,
                              "sampling": _gen_params(voice.sampling), **_engine_key(job.engine)})
        take = job.store.get(key)
        if take is None:
            faults.hit("calibrate")
            [generated] = job.engine.generate([request], {})
            take = job.store.put(key, generated.audio, {"kind": "calibration", "voice": name, "seed": seed,
                                                        "attempt": attempt, "hit_limit": generated.hit_limit,
                                                        "run": _RUN_ID})
        audio = take.load_audio()
        start, end = trim_bounds(audio, trim.threshold_db, trim.padding_ms)
        takes.append((key, audio[start:end]))
        if 0 < end - start <= cap and not take.record.get("hit_limit"):
            break
        log(f"voice {name}: calibration take {attempt} is {(end - start) / 44100:.1f} s, "
            f"over the {cap / 44100:.1f} s reserved for its prompt")
    key, audio = min(takes, key=lambda t: len(t[1]))
    if len(audio) > cap:
        fade = min(cap, 2205)  # 50 ms fade-out at the cut
        audio = audio[:cap].copy()
        audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        log(f"voice {name}: calibration trimmed to {cap / 44100:.1f} s")
    path = job.project.work_dir / "voices" / f"{name}-{key[:12]}.wav"
    if not path.exists():
        _write_float_wav(audio, path)
    return VoicePrompt(name, path, voice.calibration_text, canonical_hash({"calibration": key, "samples": len(audio)}))


# ---------------------------------------------------------------------------------------------
# Takes: generate what the store lacks, QC, regenerate failures with derived seeds.

@dataclass
class Attempt:
    attempt: int
    seed: int
    key: str
    qc: dict          # {"passed", "score", "metrics", "failures"}
    generated: bool   # generated in this run (False: found in the store)


@dataclass
class Outcome:
    segment_id: str
    attempts: list[Attempt]

    @property
    def chosen(self) -> Attempt:
        """The first take that passed QC, else the best-scoring one."""
        passed = [a for a in self.attempts if a.qc["passed"]]
        return passed[0] if passed else max(self.attempts, key=lambda a: a.qc["score"])


def attempt_seed(seed: int, segment_id: str, attempt: int) -> int:
    """Attempt 1 uses the planned seed; regenerations derive a new, reproducible one."""
    if attempt == 1:
        return seed
    digest = hashlib.sha256(f"{seed}:{segment_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def take_key(job: Job, segment, seed: int, prompts: dict[str, VoicePrompt]) -> str:
    return canonical_hash({
        "text": segment.text, "prompt_text": segment.prompt_text,
        "prompts": {slot: prompts[v].sha256 for slot, v in segment.slots.items() if v},
        "seed": seed, "sampling": _gen_params(segment.sampling), **_engine_key(job.engine)})


def generate_takes(job: Job, prompts: dict[str, VoicePrompt], on_progress: ProgressFn | None = None,
                   log: Callable[[str], None] = lambda _m: None) -> dict[str, Outcome]:
    from .audio.qc import check_segment

    qc_settings = job.project.qc
    outcomes = {s.id: Outcome(s.id, []) for s in job.plan.segments}
    pending = list({s.id: s for s in job.plan.segments}.values())  # identical segments share takes
    total, settled = len(pending), 0
    if on_progress:
        on_progress(0, total)
    for attempt in range(1, qc_settings.max_attempts + 1):
        work = [(s, attempt_seed(s.seed, s.id, attempt)) for s in pending]
        keys = {s.id: take_key(job, s, seed, prompts) for s, seed in work}
        missing = [(s, seed) for s, seed in work if job.store.get(keys[s.id]) is None]
        if missing:
            log(f"attempt {attempt}: generating {len(missing)} of {len(work)} takes "
                f"({len(work) - len(missing)} already in the store)")
        _generate_missing(job, missing, keys, prompts, attempt, log)
        pending = []
        for s, seed in work:
            take = job.store.get(keys[s.id])
            if take is None:
                raise RuntimeError(f"take {keys[s.id]} vanished from the store {job.store.root}")
            result = check_segment(take.load_audio(), expected_seconds=s.est_seconds,
                                   hit_limit=bool(take.record.get("hit_limit")), settings=qc_settings)
            qc = {"passed": bool(result.passed), "score": float(result.score),
                  "metrics": _jsonable(result.metrics), "failures": list(result.failures)}
            outcomes[s.id].attempts.append(Attempt(attempt, seed, keys[s.id], qc,
                                                   generated=take.record.get("run") == _RUN_ID))
            if qc["passed"] or attempt == qc_settings.max_attempts:
                settled += 1
                if on_progress:
                    on_progress(settled, total)
            else:
                log(f"segment {s.id} attempt {attempt} failed QC: {'; '.join(qc['failures'])}")
                pending.append(s)
        if not pending:
            break
    return outcomes


_RUN_ID = hashlib.sha256(f"{os.getpid()}:{dt.datetime.now().isoformat()}".encode()).hexdigest()[:16]


def _generate_missing(job: Job, missing: list, keys: dict, prompts: dict, attempt: int,
                      log: Callable[[str], None]) -> None:
    """Generate in length-sorted batches (similar lengths pad less); halve the batch on OOM.
    Pipelined: batch k's takes are finished (audio decoded) and stored after batch k + 1 has been
    generated, so the engine can decode one batch while it generates the next."""
    engine = job.engine
    batch = job.options.batch_size or engine.default_batch_size
    missing = sorted(missing, key=lambda w: len((w[0].prompt_text + w[0].text).encode()))
    in_flight = None  # (chunk, PendingTakes) generated but not yet stored

    mode = {"fast_path": engine.fast_path} if hasattr(engine, "fast_path") else {}

    def store(chunk, pending) -> None:
        for (s, seed), take in zip(chunk, pending.result()):
            job.store.put(keys[s.id], take.audio, {
                "kind": "segment", "segment_id": s.id, "attempt": attempt, "seed": seed,
                "hit_limit": bool(take.hit_limit), "run": _RUN_ID, **mode, "created_at": utc_now()})
        faults.hit("batch")  # after a batch is safely stored

    i = 0
    while i < len(missing):
        chunk = missing[i:i + batch]
        requests = [TakeRequest(s.text, s.prompt_text, dict(s.slots), seed, s.sampling) for s, seed in chunk]
        try:
            pending = engine.start(requests, prompts)
        except OutOfMemory:
            if batch == 1:
                raise
            batch = max(1, batch // 2)
            log(f"out of memory: batch halved to {batch}, retrying")
            continue
        if in_flight is not None:
            store(*in_flight)
        in_flight = (chunk, pending)
        i += len(chunk)
    if in_flight is not None:
        store(*in_flight)


def save_outcomes(job: Job, outcomes: dict[str, Outcome]) -> Path:
    path = job.project.work_dir / "outcomes.json"
    atomic.write_json(path, {sid: [asdict(a) for a in o.attempts] for sid, o in outcomes.items()})
    return path


def load_outcomes(path: str | Path) -> dict[str, Outcome]:
    import json
    data = json.loads(Path(path).read_text())
    return {sid: Outcome(sid, [Attempt(**a) for a in attempts]) for sid, attempts in data.items()}


# ---------------------------------------------------------------------------------------------
# Chapters: tempo, stitch, loudness, export, captions, profile check, chapter manifest.

def finish_chapter(job: Job, chapter_id: str, outcomes: dict[str, Outcome]) -> dict:
    from .audio import captions as cap
    from .audio import export, loudness, manifest, stitch, tempo

    chapter = job.chapter(chapter_id)
    settings = job.project.delivery
    pieces = []
    for s in chapter.segments:
        audio = job.store.get(outcomes[s.id].chosen.key)
        if audio is None:
            raise RuntimeError(f"chosen take for segment {s.id} is missing or corrupt in {job.store.root}")
        speed = job.project.voices[s.slots["S1"]].sampling.speed_factor
        pieces.append(stitch.StitchPiece(tempo.change_tempo(audio.load_audio(), speed), s.boundary, s.id))
    faults.hit("stitch")
    stitched = stitch.stitch_chapter(pieces, settings, seed=job.project.seed)
    del pieces  # a long chapter is GBs: keep one copy of it alive at a time (bench/bench_finish.py)
    spans, head_s, tail_s = stitched.spans, stitched.head_s, stitched.tail_s
    # With spans, only speech is gained: the room tone stays under the noise floor.
    audio, loud = loudness.finish(stitched.audio, settings, spans=spans)
    del stitched
    faults.hit("export")
    job.out_dir.mkdir(parents=True, exist_ok=True)
    files = export.export_chapter(audio, job.out_dir / chapter.id, settings)
    # A float master of the finished chapter feeds the M4B without a second lossy generation.
    master = job.project.work_dir / "masters" / f"{chapter.id}.wav"
    _write_float_wav(audio, master)

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
    report = loudness.check_file(primary, settings) if primary else loudness.check_audio(audio, settings)
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
        "profile": settings.profile, "files": entries, "loudness": _jsonable(loud.to_dict()),
        "created_at": manifest.utc_now(), "segments": segments,
    }, chapter_manifest)
    return {
        "id": chapter.id, "title": chapter.title,
        "manifest": str(chapter_manifest.relative_to(job.out_dir)), "master": str(master),
        "files": entries, "duration_s": round(duration_s, 3),
        "measurements": _jsonable(report.measurements.to_dict()), "limits": _jsonable(report.limits),
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


def _write_float_wav(audio: np.ndarray, path: Path) -> None:
    import soundfile as sf
    with atomic.atomic_path(path) as tmp:
        sf.write(tmp, audio.astype(np.float32, copy=False), 44100, subtype="FLOAT", format="WAV")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ---------------------------------------------------------------------------------------------
# Book and project manifest

def export_book(job: Job, chapters: list[dict]) -> dict | None:
    """The M4B from the chapters' float masters, checked after writing (export.export_m4b_checked):
    container (AAC, 44.1 kHz mono, markers, duration, tags, cover) and each chapter slice and the
    whole book against the delivery profile, a peak over the limit corrected by one re-encode.
    The verdict is ``book["check"]`` (passed, failures, measurements, chapters, ...)."""
    from .audio import export

    settings = job.project.delivery
    if "m4b" not in settings.formats or not chapters:
        return None
    p = job.project
    faults.hit("book")
    path, marks, report = export.export_m4b_checked(
        [Path(c["master"]) for c in chapters], [c["title"] for c in chapters],
        job.out_dir / f"{job.project.root.name}.m4b", settings,
        {"title": p.title, "author": p.author, "narrator": p.narrator, "genre": p.genre,
         "description": p.description}, p.cover, bitrate_kbps=settings.aac_bitrate_kbps)
    check = {k: v for k, v in report.to_dict().items() if k != "path"}   # the book entry has the path
    return {"path": str(path), "chapters": [{"title": c["title"], "start_ms": s, "end_ms": e}
                                            for c, (s, e) in zip(chapters, marks)],
            "check": _jsonable(check)}


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
    from .audio import manifest

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
