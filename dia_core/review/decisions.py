"""review.yaml: a producer's decisions about takes, one small diffable file in the project folder.

    # segment id (from the chapter manifests, `dia-studio takes`)
    segments:
      3f2a9c0d1e4b5a6c:
        chapter: chapter-02
        pin: {take: <64 hex store key>, text: "[S1] the text the take speaks"}
        retake: {count: 2, note: "rushed; Caerwyn mispronounced"}
        alternatives: 3                 # generate 3 more takes at the next render, then choose
        text: "[S1] The fixed text."    # this segment only; speaker tags as before
    lexicon:                             # merged over project.yaml's lexicon at render
      Caerwyn: Kair-win

Parsed with the project's line-keeping loader (script.yamltree): a bad file is one
``review.yaml:LINE: FIELD: problem`` InputError. Every change is a read-modify-write under a file
lock (``.dia-studio/review.lock``), published by atomic rename, so the review page, the CLI and a
render reading it concurrently never see a torn or half-merged file.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import yaml
from filelock import FileLock

from .. import atomic
from ..errors import InputError
from ..files import read_bounded
from ..script.project import parse_lexicon
from ..script.yamltree import CONTROL_RE, Located, Validator, parse_yaml

FILE_NAME = "review.yaml"
MAX_BYTES = 4 << 20
MAX_ALTERNATIVES = 8
MAX_RETAKES = 1000
SEGMENT_ID_RE = re.compile(r"^[0-9a-f]{16}$")
TAKE_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
TAG_RE = re.compile(r"\[S[12]\]")
HEADER = ("# dia-studio review decisions: pinned takes, retakes, text fixes, lexicon additions.\n"
          "# Written by `dia-studio review` and `dia-studio takes/retake/pin/unpin`; safe to edit by hand.\n")


@dataclass(frozen=True)
class Pin:
    take: str   # store key of the approved take
    text: str   # the text it speaks: a render drops the pin when the segment's text is no longer this


@dataclass(frozen=True)
class Retake:
    count: int  # each request increments it; the segment's seed is derived from it
    note: str = ""


@dataclass(frozen=True)
class SegmentDecision:
    chapter: str | None = None
    pin: Pin | None = None
    retake: Retake | None = None
    alternatives: int = 0
    text: str | None = None

    @property
    def empty(self) -> bool:
        return self.pin is None and self.retake is None and not self.alternatives and self.text is None


@dataclass(frozen=True)
class Decisions:
    segments: dict[str, SegmentDecision] = field(default_factory=dict)
    lexicon: dict[str, str] = field(default_factory=dict)

    def get(self, segment_id: str) -> SegmentDecision:
        return self.segments.get(segment_id, SegmentDecision())

    def to_yaml(self) -> str:
        doc: dict = {}
        if self.segments:
            doc["segments"] = {sid: _segment_plain(d) for sid, d in sorted(self.segments.items()) if not d.empty}
        if self.lexicon:
            doc["lexicon"] = dict(sorted(self.lexicon.items()))
        body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100) if doc else "{}\n"
        return HEADER + body


def _segment_plain(d: SegmentDecision) -> dict:
    out: dict = {}
    if d.chapter:
        out["chapter"] = d.chapter
    if d.pin:
        out["pin"] = {"take": d.pin.take, "text": d.pin.text}
    if d.retake:
        out["retake"] = {"count": d.retake.count, "note": d.retake.note}
    if d.alternatives:
        out["alternatives"] = d.alternatives
    if d.text is not None:
        out["text"] = d.text
    return out


def review_path(project_root: Path) -> Path:
    return Path(project_root) / FILE_NAME


def _lock(project_root: Path) -> FileLock:
    work = Path(project_root) / ".dia-studio"
    work.mkdir(parents=True, exist_ok=True)
    return FileLock(str(work / "review.lock"), timeout=30)


# ---- reading ---------------------------------------------------------------------------------------

def load(project_root: Path) -> Decisions:
    """The project's decisions (empty when there is no review.yaml). InputError on a bad file."""
    path = review_path(project_root)
    if not path.exists():
        return Decisions()
    label = str(path)
    raw = read_bounded(path, MAX_BYTES, label=label, what="review file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte 0x{raw[e.start]:02x})", file=label,
                         line=raw[:e.start].count(b"\n") + 1) from None
    return parse(text, label, Path(project_root))


def parse(text: str, label: str, root: Path) -> Decisions:
    tree = parse_yaml(text, label)
    if tree is None:
        return Decisions()
    v = Validator(label, root)
    top = v.mapping(tree, "", ("segments", "lexicon"))
    segments: dict[str, SegmentDecision] = {}
    sy = top.get("segments")
    if sy is not None and sy.value is not None:
        smap = v.mapping(sy, "segments", tuple(sy.value) if isinstance(sy.value, dict) else ())
        for sid, item in smap.items():
            path = f"segments.{sid}"
            if not SEGMENT_ID_RE.match(sid):
                raise v.error("segment ids are 16 hex digits (see `dia-studio takes`)", path=path,
                              line=sy.key_lines[sid])
            segments[sid] = _segment(v, item, path)
    lexicon = parse_lexicon(v, top.get("lexicon"))
    return Decisions(segments, lexicon)


def _segment(v: Validator, y: Located, path: str) -> SegmentDecision:
    m = v.mapping(y, path, ("chapter", "pin", "retake", "alternatives", "text"))
    chapter = v.string(m["chapter"], f"{path}.chapter", max_len=100) if "chapter" in m else None
    pin = None
    if "pin" in m and m["pin"].value is not None:
        pm = v.mapping(m["pin"], f"{path}.pin", ("take", "text"))
        for k in ("take", "text"):
            if k not in pm:
                raise v.error("required key missing", m["pin"], f"{path}.pin.{k}")
        take = v.string(pm["take"], f"{path}.pin.take", max_len=64)
        if not TAKE_KEY_RE.match(take):
            raise v.error("a take key is 64 hex digits (see `dia-studio takes`)", pm["take"], f"{path}.pin.take")
        pin = Pin(take, segment_text(v, pm["text"], f"{path}.pin.text"))
    retake = None
    if "retake" in m and m["retake"].value is not None:
        rm = v.mapping(m["retake"], f"{path}.retake", ("count", "note"))
        if "count" not in rm:
            raise v.error("required key missing", m["retake"], f"{path}.retake.count")
        count = v.integer(rm["count"], f"{path}.retake.count", 1, MAX_RETAKES)
        note = v.string(rm["note"], f"{path}.retake.note", allow_empty=True, max_len=2000) \
            if "note" in rm and rm["note"].value is not None else ""
        retake = Retake(count, note)
    alternatives = v.integer(m["alternatives"], f"{path}.alternatives", 0, MAX_ALTERNATIVES) \
        if "alternatives" in m and m["alternatives"].value is not None else 0
    text = segment_text(v, m["text"], f"{path}.text") if "text" in m and m["text"].value is not None else None
    return SegmentDecision(chapter, pin, retake, alternatives, text)


def segment_text(v: Validator, y: Located, path: str) -> str:
    s = v.string(y, path, max_len=4000)
    if "\n" in s or not s.startswith("[S1]"):
        raise v.error("segment text is one line starting with [S1] (speaker tags as in the manifest)", y, path)
    return s


# ---- writing ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def editing(project_root: Path) -> Iterator[list[Decisions]]:
    """Read-modify-write under the review lock: ``with editing(root) as box: box[0] = new``; the
    new decisions are published atomically when the block ends without an exception."""
    with _lock(project_root):
        box = [load(project_root)]
        before = box[0]
        yield box
        if box[0] != before:
            atomic.write_text(review_path(project_root), box[0].to_yaml())


def read_locked(project_root: Path) -> Decisions:
    """The decisions as one consistent snapshot (under the lock: never between two writers)."""
    with _lock(project_root):
        return load(project_root)


def _update(project_root: Path, segment_id: str, chapter: str | None, change=None, **changes) -> SegmentDecision:
    """Change one segment's decision under the lock (``change(current) -> fields`` for changes that
    depend on the current decision, so two writers never lose an increment)."""
    if not SEGMENT_ID_RE.match(segment_id):
        raise InputError(f"not a segment id: {segment_id!r} (16 hex digits)", field="segment")
    with editing(project_root) as box:
        d = box[0]
        current = d.get(segment_id)
        new = replace(current, **changes, **(change(current) if change else {}))
        if chapter and not new.chapter:
            new = replace(new, chapter=chapter)
        segments = dict(d.segments)
        if new.empty:
            segments.pop(segment_id, None)
        else:
            segments[segment_id] = new
        box[0] = replace(d, segments=segments)
        return new


def pin(project_root: Path, segment_id: str, take: str, text: str, chapter: str | None = None) -> SegmentDecision:
    """Approve ``take`` for the segment: renders keep it whatever else changes, while the segment's
    text stays ``text``. A pending alternatives request is settled by choosing."""
    if not TAKE_KEY_RE.match(take):
        raise InputError(f"not a take key: {take!r} (64 hex digits)", field="take")
    return _update(project_root, segment_id, chapter, pin=Pin(take, text), alternatives=0)


def unpin(project_root: Path, segment_id: str) -> SegmentDecision:
    return _update(project_root, segment_id, None, pin=None)


def retake(project_root: Path, segment_id: str, note: str = "", chapter: str | None = None) -> SegmentDecision:
    """Ask for a new take: the retake counter goes up (a new derived seed) and any pin is dropped."""
    _check_note(note)

    def bump(current: SegmentDecision) -> dict:
        count = current.retake.count if current.retake else 0
        return {"retake": Retake(min(count + 1, MAX_RETAKES), note.strip())}
    return _update(project_root, segment_id, chapter, bump, pin=None)


def request_alternatives(project_root: Path, segment_id: str, count: int,
                         chapter: str | None = None) -> SegmentDecision:
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_ALTERNATIVES:
        raise InputError(f"alternatives must be an integer between 0 and {MAX_ALTERNATIVES}", field="count")
    return _update(project_root, segment_id, chapter, alternatives=count)


def fix_text(project_root: Path, segment_id: str, text: str | None, original: str,
             chapter: str | None = None) -> SegmentDecision:
    """Replace this segment's text (None: back to the manuscript's). The speaker tags must stay as
    they are, so the segment keeps its voices; a pin on the old text is dropped."""
    if text is not None:
        text = " ".join(text.split())
        check_fixed_text(text, original)
        if text == original:
            text = None
    return _update(project_root, segment_id, chapter, text=text, pin=None)


def add_lexicon(project_root: Path, word: str, replacement: str) -> Decisions:
    """Add (or change) a pronunciation: review.yaml's lexicon is merged over project.yaml's at render."""
    if not isinstance(word, str) or not isinstance(replacement, str):
        raise InputError("word and replacement are text", field="lexicon")
    # the same checks as a hand-written entry: round-trip through the parser
    checked = parse(yaml.safe_dump({"lexicon": {word: replacement}}, allow_unicode=True), FILE_NAME,
                    Path(project_root)).lexicon
    with editing(project_root) as box:
        box[0] = replace(box[0], lexicon={**box[0].lexicon, **checked})
        return box[0]


def _check_note(note: str) -> None:
    if not isinstance(note, str) or len(note) > 2000 or CONTROL_RE.search(note):
        raise InputError("a note is text up to 2000 characters without control characters", field="note")


def check_fixed_text(text: str, original: str) -> None:
    """InputError unless ``text`` is one line with the same speaker tags, in order, as ``original``."""
    if not isinstance(text, str) or not text.strip() or CONTROL_RE.search(text) or len(text) > 4000:
        raise InputError("the text must be one line of up to 4000 characters", field="text")
    if TAG_RE.findall(text) != TAG_RE.findall(original) or not text.startswith("[S1]"):
        raise InputError(f"keep the speaker tags as they are ({' '.join(TAG_RE.findall(original))}): "
                         "a text fix changes words, not who speaks them", field="text")
