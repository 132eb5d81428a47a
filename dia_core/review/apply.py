"""How a render honours review.yaml.

Before any take is generated, ``apply_decisions`` reads one snapshot of the decisions and changes
the job's plan in place: review lexicon entries are merged over the project's (re-planning), text
fixes replace their segment's text, and a retake replaces the segment's seed with one derived from
its retake counter. Pins are checked: a pin is kept while its segment still speaks the pinned text
and the take is in the store; otherwise it is dropped with a warning naming the segment.

``generate_takes`` then runs the production take loop on every segment that is not pinned, plus the
requested alternatives (extra takes with their own derived seeds), and gives pinned segments their
pinned take, read from the store by key: so a pinned take survives changes of sampling parameters,
engine version or voice prompts, which change every other key.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from .. import atomic
from ..audio.qc import check_segment
from ..errors import InputError
from ..params import FRAME_RATE, MAX_DECODER_POSITIONS, MAX_DELAY, MAX_TEXT_BYTES
from ..production import takes
from ..production.jobs import Job
from ..production.manifests import jsonable
from ..script.planner import ChapterPlan, Plan, dia_text, plan_project
from . import decisions as dec

APPLIED_FILE = "review-applied.json"


@dataclass
class Applied:
    """What a render did with review.yaml (recorded in the chapter manifests)."""
    pins: dict[str, dict] = field(default_factory=dict)          # id -> {"take", "text"} in force
    retakes: dict[str, dict] = field(default_factory=dict)       # id -> {"count", "note", "seed"}
    text_fixes: dict[str, str] = field(default_factory=dict)     # id -> the manuscript's text it replaced
    alternatives: dict[str, int] = field(default_factory=dict)   # id -> how many
    dropped: list[dict] = field(default_factory=list)            # {"segment", "chapter", "what", "reason"}
    lexicon: dict[str, str] = field(default_factory=dict)

    def segment_annotation(self, segment_id: str) -> dict:
        out: dict = {}
        if segment_id in self.pins:
            out["pinned"] = {"take": self.pins[segment_id]["take"], "reason": "approved in review.yaml"}
        if segment_id in self.retakes:
            r = self.retakes[segment_id]
            out["retaken"] = {"count": r["count"], "note": r["note"], "seed": r["seed"]}
        if segment_id in self.text_fixes:
            out["text_fixed"] = {"manuscript_text": self.text_fixes[segment_id]}
        return out

    def save(self, work_dir: Path) -> Path:
        return atomic.write_json(Path(work_dir) / APPLIED_FILE, asdict(self))

    @classmethod
    def load(cls, work_dir: Path) -> "Applied":
        path = Path(work_dir) / APPLIED_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else cls()


def retake_seed(seed: int, segment_id: str, count: int) -> int:
    """The seed of a segment's ``count``-th retake: reproducible, different for every count."""
    digest = hashlib.sha256(f"{seed}:{segment_id}:retake:{count}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def alternative_seed(seed: int, segment_id: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{segment_id}:alternative:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def alternative_id(segment_id: str, index: int) -> str:
    return f"{segment_id}~alt{index}"


def apply_decisions(job: Job, log: Callable[[str], None] = lambda _m: None) -> Applied:
    """Change ``job``'s plan as review.yaml says (InputError on a bad review.yaml); returns what was
    applied. Called once per render, before planning tasks read the job."""
    root = job.project.root
    decisions = dec.read_locked(root)
    applied = Applied(lexicon=dict(decisions.lexicon))
    if not decisions.segments and not decisions.lexicon:
        return applied
    label = str(dec.review_path(root))
    if decisions.lexicon and any(job.project.lexicon.get(w) != r for w, r in decisions.lexicon.items()):
        _replan(job, {**job.project.lexicon, **decisions.lexicon})
    segments = {}
    for s in [*job.plan.segments, *job.book.segments]:   # the book's may be other objects than the plan's
        segments.setdefault(s.id, []).append(s)
    chapter_of = {s.id: c.id for c in job.book.chapters for s in c.segments}
    planned_chapters = {c.id for c in job.book.chapters}

    for sid, d in decisions.segments.items():
        if sid not in segments:
            if d.chapter is None or d.chapter in planned_chapters:
                for what in ("pin", "retake", "text", "alternatives"):
                    if getattr(d, what) not in (None, 0):
                        _drop(applied, log, label, sid, d.chapter, what,
                              "the segment is no longer in the manuscript (its text or speakers changed)")
            continue
        if d.text is not None:
            original = segments[sid][0].text
            try:
                dec.check_fixed_text(d.text, original)
            except InputError as e:
                raise InputError(e.message, file=label, field=f"segments.{sid}.text") from None
            for s in segments[sid]:
                _fix_text(s, d.text, label, sid)
            applied.text_fixes[sid] = original
        if d.retake is not None:
            seed = retake_seed(segments[sid][0].seed, sid, d.retake.count)
            for s in segments[sid]:
                s.seed = seed
            applied.retakes[sid] = {"count": d.retake.count, "note": d.retake.note, "seed": seed}
        if d.alternatives:
            applied.alternatives[sid] = d.alternatives
        if d.pin is not None:
            text = segments[sid][0].text
            if text != d.pin.text:
                _drop(applied, log, label, sid, chapter_of.get(sid), "pin",
                      "its text changed since the take was approved")
            elif job.store.get(d.pin.take) is None:
                _drop(applied, log, label, sid, chapter_of.get(sid), "pin",
                      f"the pinned take {d.pin.take[:12]} is not in the store {job.store.root}")
            else:
                applied.pins[sid] = {"take": d.pin.take, "text": d.pin.text}
    return applied


def _drop(applied: Applied, log, label: str, sid: str, chapter: str | None, what: str, reason: str) -> None:
    applied.dropped.append({"segment": sid, "chapter": chapter, "what": what, "reason": reason})
    where = f" ({chapter})" if chapter else ""
    log(f"{label}: segments.{sid}.{what}: segment {sid}{where}: {what} dropped: {reason}")


def _replan(job: Job, lexicon: dict[str, str]) -> None:
    """Plan again with review.yaml's lexicon merged in: the same chapter selection as open_job."""
    project = replace(job.project, lexicon=lexicon)
    plan = plan_project(project, chapters=job.options.chapters)
    same = job.book is job.plan
    book = plan if same else plan_project(project, chapters=tuple(c.index for c in job.book.chapters))
    job.project, job.plan, job.book = project, plan, book


def _fix_text(s, text: str, label: str, sid: str) -> None:
    """Put the fixed text in the segment: its turns (for captions), its length estimate and budget."""
    old = s.text
    pieces = [p.strip() for p in dec.TAG_RE.split(text)[1:]]
    groups: list[list[int]] = []          # turns that share one speaker tag (same voice in a row)
    for i, t in enumerate(s.turns):
        if i == 0 or t.voice != s.turns[i - 1].voice:
            groups.append([])
        groups[-1].append(i)
    turns = list(s.turns)
    if len(groups) == len(pieces):
        for group, piece in zip(groups, pieces):
            for j, i in enumerate(group):
                turns[i] = replace(turns[i], text=piece if j == 0 else "", display_text=piece if j == 0 else "")
    est = round(s.est_seconds * max(len(text), 1) / max(len(old), 1), 3)
    nbytes = len(dia_text(s.prompt_text, text).encode("utf-8"))
    positions = 1 + s.prompt_frames + int(est * FRAME_RATE + 0.999) + MAX_DELAY
    if nbytes > MAX_TEXT_BYTES or positions > min(s.sampling.max_new_tokens, MAX_DECODER_POSITIONS):
        raise InputError(f"segment {sid}: the fixed text is too long for one Dia segment "
                         f"({nbytes} bytes, ~{est:.1f} s); shorten it or edit the manuscript instead",
                         file=label, field=f"segments.{sid}.text")
    s.text, s.display_text, s.turns, s.est_seconds, s.text_bytes, s.decoder_positions = \
        text, text, turns, est, nbytes, positions


# ---- takes -----------------------------------------------------------------------------------------

def generate_takes(job: Job, prompts: dict, applied: Applied, on_progress=None,
                   log: Callable[[str], None] = lambda _m: None,
                   hold_device=None) -> dict[str, takes.Outcome]:
    """The production take loop for every segment that is not pinned (and the requested
    alternatives); pinned segments get their pinned take, QC'd like any other."""
    todo, alternatives = [], []
    for s in job.plan.segments:
        if s.id not in applied.pins:
            todo.append(s)
        for i in range(1, applied.alternatives.get(s.id, 0) + 1):
            alternatives.append(replace(s, id=alternative_id(s.id, i),
                                        seed=alternative_seed(s.seed, s.id, i)))
    loop_job = job
    if len(todo) != len(job.plan.segments) or alternatives:
        # the take loop works on a plan: give it one holding exactly the segments to take
        loop_plan = Plan(job.plan.project_title, [ChapterPlan("review", 0, "", todo + alternatives,
                                                               job.plan.chapters[0].source)], [])
        loop_job = replace(job, plan=loop_plan)
    outcomes = (takes.generate_takes(loop_job, prompts, on_progress, log=log, hold_device=hold_device)
                if loop_job.plan.segments else {})
    if loop_job is not job and job._engine is None:
        job._engine = loop_job._engine
    for s in job.plan.segments:
        if s.id in applied.pins:
            outcomes[s.id] = pinned_outcome(job, s, applied.pins[s.id]["take"])
    return outcomes


def pinned_outcome(job: Job, segment, key: str) -> takes.Outcome:
    take = job.store.get(key)
    if take is None:
        raise RuntimeError(f"pinned take {key} of segment {segment.id} vanished from the store {job.store.root}")
    result = check_segment(take.load_audio(), expected_seconds=segment.est_seconds,
                           hit_limit=bool(take.record.get("hit_limit")), settings=job.project.qc)
    qc = {"passed": bool(result.passed), "score": float(result.score), "metrics": jsonable(result.metrics),
          "failures": list(result.failures)}
    return takes.Outcome(segment.id, [takes.Attempt(int(take.record.get("attempt", 1)),
                                                    int(take.record.get("seed", segment.seed)), key, qc,
                                                    generated=False)])


def alternatives_of(outcomes: dict[str, takes.Outcome], segment_id: str, count: int) -> list[dict]:
    """The manifest entries of a segment's alternative takes (each one's chosen attempt)."""
    found = []
    for i in range(1, count + 1):
        o = outcomes.get(alternative_id(segment_id, i))
        if o is not None:
            a = o.chosen
            found.append({"index": i, "key": a.key, "seed": a.seed, "qc": a.qc})
    return found


def manifest_annotations(applied: Applied, outcomes: dict[str, takes.Outcome], chapter) -> tuple[dict, dict]:
    """(per-segment extras, chapter-level extras) for a chapter manifest: which takes were pinned,
    retaken (with the note) or spoke fixed text, the alternatives generated, and dropped decisions."""
    per_segment = {}
    for s in chapter.segments:
        review = applied.segment_annotation(s.id)
        alts = alternatives_of(outcomes, s.id, applied.alternatives.get(s.id, 0))
        if alts:
            review["alternatives"] = alts
        if review:
            per_segment[s.id] = {"review": review}
    ids = {s.id for s in chapter.segments}
    summary = {
        "pinned": [s.id for s in chapter.segments if s.id in applied.pins],
        "retaken": [s.id for s in chapter.segments if s.id in applied.retakes],
        "text_fixed": [s.id for s in chapter.segments if s.id in applied.text_fixes],
        "dropped": [d for d in applied.dropped if d["segment"] in ids or d["chapter"] == chapter.id],
    }
    return per_segment, ({"review": summary} if any(summary.values()) else {})
