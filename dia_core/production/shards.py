"""Shards: the takes a render still has to generate, split into pieces of about N minutes of audio,
so that every free GPU worker can generate one (flows/sharded.py runs them, one flow run each).

A shard is a list of segment ids. Segments are ordered by the length of their Dia text, as the
take loop batches them (similar lengths pad less), and cut into consecutive runs: each shard is
one length bucket. A shard runs the whole take loop for its segments (QC and regenerations with
derived seeds included), so what a shard stores does not depend on which worker ran it or on what
the other shards do; every take lands in the shared content-addressed store under its own key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from . import listening
from .jobs import Job
from .takes import Attempt, Outcome, attempt_seed, qc_take, take_key

DEFAULT_SHARD_MINUTES = 20.0


@dataclass(frozen=True)
class Shard:
    index: int                      # 0-based, in length order
    segment_ids: tuple[str, ...]
    est_seconds: float              # the planner's estimate of the audio these takes make

    def to_dict(self) -> dict:
        return {"index": self.index, "segment_ids": list(self.segment_ids), "est_seconds": self.est_seconds}

    @classmethod
    def from_dict(cls, d: dict) -> "Shard":
        return cls(int(d["index"]), tuple(d["segment_ids"]), float(d["est_seconds"]))


def dia_length(segment) -> int:
    """What a segment's batch position depends on: the UTF-8 length of its prompt text and text."""
    return len((segment.prompt_text + segment.text).encode())


def plan_shards(segments: Iterable, minutes: float = DEFAULT_SHARD_MINUTES) -> list[Shard]:
    """Split ``segments`` (planned segments: id, text, prompt_text, est_seconds) into shards of at
    most ``minutes`` of estimated audio each (a single longer segment is a shard of its own).
    Segments with the same id share one take and appear once. Deterministic: the same segments and
    minutes give the same shards."""
    if not minutes > 0:  # RenderOptions checks the user's value; this is a caller's bug
        raise ValueError(f"shard minutes must be positive, got {minutes!r}")
    budget = minutes * 60.0
    unique = list({s.id: s for s in segments}.values())
    ordered = sorted(unique, key=lambda s: (dia_length(s), s.id))
    shards: list[Shard] = []
    ids: list[str] = []
    seconds = 0.0
    for s in ordered:
        if ids and seconds + s.est_seconds > budget:
            shards.append(Shard(len(shards), tuple(ids), round(seconds, 3)))
            ids, seconds = [], 0.0
        ids.append(s.id)
        seconds += s.est_seconds
    if ids:
        shards.append(Shard(len(shards), tuple(ids), round(seconds, 3)))
    return shards


def read_store(job: Job, prompts: dict, segments: Sequence) -> tuple[dict[str, Outcome], list]:
    """What the take loop would find in the store, without generating: the outcomes of the
    segments it would settle from stored takes alone (a take passed QC, or the last attempt is
    stored), and the segments for which it would still generate something. Attempt by attempt,
    like the loop, so listening judges the same rows together (its rate check is relative)."""
    qc_settings = job.project.qc
    settled: dict[str, Outcome] = {}
    todo = []
    # the take loop's verdict includes listening (cached with the take: a shard's notes are reused)
    listener = listening.open_listener(job)
    refs = listening.voice_references(job, listener, prompts)
    pending = list({s.id: s for s in segments}.values())
    attempts: dict[str, list[Attempt]] = {s.id: [] for s in pending}
    for attempt in range(1, qc_settings.max_attempts + 1):
        rows = []
        for s in pending:
            seed = attempt_seed(s.seed, s.id, attempt)
            key = take_key(job, s, seed, prompts)
            take = job.store.get(key)
            if take is None:
                todo.append(s)
            else:
                rows.append((s, seed, key, take, qc_take(take, s, qc_settings, job.store)))
        if rows:
            listening.apply_listening(job, listener, refs, [(s, take, qc) for s, _seed, _key, take, qc in rows])
        pending = []
        for s, seed, key, _take, qc in rows:
            attempts[s.id].append(Attempt(attempt, seed, key, qc, generated=False))
            if qc["passed"] or attempt == qc_settings.max_attempts:
                settled[s.id] = Outcome(s.id, attempts[s.id])
            else:
                pending.append(s)
        if not pending:
            break
    return settled, todo


def ready_chapters(job: Job, settled: Iterable[str], done: Iterable[str] = ()) -> list[str]:
    """Chapters (ids, in book order) all of whose segments are settled, less those in ``done``."""
    settled, done = set(settled), set(done)
    return [c.id for c in job.plan.chapters
            if c.id not in done and all(s.id in settled for s in c.segments)]
