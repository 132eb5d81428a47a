"""Takes: each voice's prompt (seed-only voices calibrated once), the store keys, and the take loop
that generates what the store lacks, checks every take (QC) and regenerates failures with derived seeds.

Finished work lives in the content-addressed SegmentStore, so a killed run started again only
generates what is missing, and editing one paragraph only regenerates its segments.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Collection, ContextManager

import numpy as np

from .. import __version__, atomic, faults
from ..audio.qc import check_segment
from ..audio.stitch import trim_bounds
from ..audiofile import write_wav_float
from ..errors import OutOfMemory
from ..files import canonical_hash, file_sha256
from ..params import HOP_LENGTH, SAMPLE_RATE
from ..script.project import prompt_frames_for
from .engines import Engine, TakeRequest, VoicePrompt
from . import listening
from .jobs import Job
from .manifests import jsonable, utc_now
from .options import ProgressFn

GEN_KEYS = ("temperature", "top_p", "cfg_scale", "cfg_filter_top_k", "max_new_tokens")


def _gen_params(sampling) -> dict:
    return {k: getattr(sampling, k) for k in GEN_KEYS}


def _engine_key(engine: Engine) -> dict:
    return {"engine": engine.name, "engine_version": engine.version, "model": engine.checksum}


def prepare_voices(job: Job, log: Callable[[str], None] = lambda _m: None) -> dict[str, VoicePrompt]:
    """Each voice's prompt. Seed-only voices are calibrated once: a short line generated with the
    voice's seed is stored in the project and then used as its reference for the whole book."""
    listening.open_listener(job)  # an instrument that cannot load stops the render before it generates
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
    cap = prompt_frames_for(voice) * HOP_LENGTH  # samples
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
        log(f"voice {name}: calibration take {attempt} is {(end - start) / SAMPLE_RATE:.1f} s, "
            f"over the {cap / SAMPLE_RATE:.1f} s reserved for its prompt")
    key, audio = min(takes, key=lambda t: len(t[1]))
    if len(audio) > cap:
        fade = min(cap, 2205)  # 50 ms fade-out at the cut
        audio = audio[:cap].copy()
        audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        log(f"voice {name}: calibration trimmed to {cap / SAMPLE_RATE:.1f} s")
    path = job.project.work_dir / "voices" / f"{name}-{key[:12]}.wav"
    if not path.exists():
        write_wav_float(audio, path)
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


def qc_take(take, segment, qc_settings, store=None) -> dict:
    """The QC verdict on a stored take: {"passed", "score", "metrics", "failures"}. With ``store``
    (the take's), the verdict is kept beside the take as a note keyed by everything it depends on
    (QC settings, the segment's expected length, the hit-limit flag, the software), so a re-render
    reads it instead of loading and measuring the audio again."""
    note = "qc-" + canonical_hash({"qc": jsonable(asdict(qc_settings)), "expected_s": segment.est_seconds,
                                   "hit_limit": bool(take.record.get("hit_limit")),
                                   "software": __version__})[:16]
    found = store.read_note(take.key, note) if store is not None else None
    if isinstance(found, dict) and {"passed", "score", "metrics", "failures"} <= set(found):
        return found
    result = check_segment(take.load_audio(), expected_seconds=segment.est_seconds,
                           hit_limit=bool(take.record.get("hit_limit")), settings=qc_settings)
    verdict = {"passed": bool(result.passed), "score": float(result.score),
               "metrics": jsonable(result.metrics), "failures": list(result.failures)}
    if store is not None:
        store.write_note(take.key, note, verdict)
    return json.loads(json.dumps(verdict))   # the same types a note gives back


def generate_takes(job: Job, prompts: dict[str, VoicePrompt], on_progress: ProgressFn | None = None,
                   log: Callable[[str], None] = lambda _m: None,
                   only: Collection[str] | None = None,
                   hold_device: Callable[[], ContextManager] | None = None) -> dict[str, Outcome]:
    """Settle every segment of the plan (or the ids in ``only``: one shard) from the store,
    generating what it lacks. ``hold_device()`` (e.g. the GPU slot) is entered before the first
    take is generated and held to the end: a render whose takes are all stored never waits for it."""
    with contextlib.ExitStack() as held:
        holding = False

        def generating() -> None:
            nonlocal holding
            if hold_device is not None and not holding:
                held.enter_context(hold_device())
                holding = True
        return _settle_takes(job, prompts, on_progress, log, only, generating)


def _settle_takes(job: Job, prompts: dict[str, VoicePrompt], on_progress: ProgressFn | None,
                  log: Callable[[str], None], only: Collection[str] | None,
                  generating: Callable[[], None]) -> dict[str, Outcome]:
    qc_settings = job.project.qc
    segments = [s for s in job.plan.segments if only is None or s.id in only]
    outcomes = {s.id: Outcome(s.id, []) for s in segments}
    pending = list({s.id: s for s in segments}.values())  # identical segments share takes
    total, settled = len(pending), 0
    if on_progress:
        on_progress(0, total)
    listener = listening.open_listener(job)
    refs = listening.voice_references(job, listener, prompts)
    log(f"listening: {listener.identity}")
    for attempt in range(1, qc_settings.max_attempts + 1):
        work = [(s, attempt_seed(s.seed, s.id, attempt)) for s in pending]
        keys = {s.id: take_key(job, s, seed, prompts) for s, seed in work}
        missing = [(s, seed) for s, seed in work if job.store.get(keys[s.id]) is None]
        if missing:
            generating()
            log(f"attempt {attempt}: generating {len(missing)} of {len(work)} takes "
                f"({len(work) - len(missing)} already in the store)")
        prefetch = listening.Prefetch(job, listener, refs)
        try:
            _generate_missing(job, missing, keys, prompts, attempt, log, on_stored=prefetch.submit)
        finally:
            prefetch.close()
        pending, checked = [], []
        for s, seed in work:
            take = job.store.get(keys[s.id])
            if take is None:
                raise RuntimeError(f"take {keys[s.id]} vanished from the store {job.store.root}")
            checked.append((s, take, qc_take(take, s, qc_settings, job.store)))
        listening.apply_listening(job, listener, refs, checked)  # words, voice, quality: folded into qc
        for (s, seed), (_s, take, qc) in zip(work, checked):
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
                      log: Callable[[str], None], on_stored: Callable[[list], None] | None = None) -> None:
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
        if on_stored is not None:   # e.g. listen to this batch while the next one generates
            on_stored([(s, keys[s.id]) for s, _seed in chunk])

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
    data = json.loads(Path(path).read_text())
    return {sid: Outcome(sid, [Attempt(**a) for a in attempts]) for sid, attempts in data.items()}
