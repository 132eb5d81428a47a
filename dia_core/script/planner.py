"""Segment planner: chapters of speaker blocks -> Dia-sized, two-slot segments within every budget.

For each chapter:

1. Blocks (narration paragraphs, dialogue lines, raw Dia turns) get the lexicon applied, then are
   split into sentences. A sentence that alone is longer than ``segmenting.max_seconds`` or does
   not fit a hard budget is split at clauses (``, ; : —``), then at words, with a warning.
2. The chapter is cut into independent *sections* at anchors: chapter start, scene breaks, the
   boundary between two paragraphs that are each at least ``min_seconds`` long, and (for runs of
   short paragraphs such as dialogue) a content-defined anchor once a section holds
   ``max_seconds`` of text. Sections are planned independently, so editing a paragraph changes
   only the segments of its section.
3. Inside a section, a dynamic program picks segment boundaries minimising a cost that prefers
   paragraph and speaker-turn boundaries over sentence (then clause, word) boundaries and durations
   inside [min_seconds, max_seconds]; it never exceeds the hard budgets:

   * at most two voices per segment (slots [S1] and [S2]; the first voice is [S1]);
   * UTF-8 bytes of ``dia_text(prompt_text, text)`` <= MAX_TEXT_BYTES (1024);
   * 1 (BOS) + prompt frames + ceil(est_seconds * FRAME_RATE) + MAX_DELAY (15)
     <= min(max_new_tokens of the [S1] voice, MAX_DECODER_POSITIONS).

What Dia sees for a segment is ``dia_text(prompt_text, text)``: the prompt transcript, one space,
then ``text``. The audio prompt is the [S1] voice's prompt audio followed by the [S2] voice's
(seed-only voices use their generated calibration line). Nothing is appended to work around
Dia's truncated endings; ``text`` holds exactly the manuscript words (lexicon applied).

Captions show the manuscript's own spelling: every piece also carries ``display`` text, the slice of
the block's original (pre-lexicon) text that its respelled words came from (see ``_display_pieces``),
which becomes ``Turn.display_text`` and ``PlannedSegment.display_text``. Neither affects segment ids.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

from ..errors import InputError
from .manuscript import Block, Chapter, SourceRef, parse_project_manuscripts, source_locator
from .normalize import SpeechText
from ..params import FRAME_RATE, MAX_DECODER_POSITIONS, MAX_DELAY, MAX_TEXT_BYTES, SamplingParams
from .project import Project, Voice, parse_chapter_selection, prompt_frames_for
from ..settings import ACX_MAX_MINUTES

PROMPT_SEPARATOR = " "
BREAK_COST = {"chapter_start": 0.0, "scene": 0.0, "paragraph": 0.0, "turn": 0.3, "sentence": 1.5,
              "clause": 4.0, "word": 8.0}
SEGMENT_COST = 0.5
BOUNDARY_KIND = {"clause": "sentence", "word": "sentence"}   # what later stages see
TAG = {"S1": "[S1] ", "S2": "[S2] "}

_ABBREV = frozenset("mr mrs ms dr st prof sr jr vs etc mt fig no vol ch jan feb mar apr jun jul aug sep sept "
                    "oct nov dec gen col lt sgt capt rev hon".split())
_SENT_END_RE = re.compile(r"[.!?…]+[\"”’')\]]*\s+")
_CLAUSE_RE = re.compile(r"(?<=[,;:])\s+|\s+(?=[—–]\s)")
_TERMINAL = ".!?…"


def dia_text(prompt_text: str, text: str) -> str:
    """The full encoder input for a segment: prompt transcript + one space + segment text."""
    return f"{prompt_text}{PROMPT_SEPARATOR}{text}" if prompt_text else text


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Turn:
    slot: str         # "S1" | "S2"
    voice: str
    character: str    # display name: the character, "Narrator", or the voice for raw lines
    text: str         # what Dia reads (lexicon applied)
    display_text: str | None = None   # the manuscript's words (lexicon not applied), for captions

    @property
    def caption_text(self) -> str:
        return self.text if self.display_text is None else self.display_text

    def to_json(self) -> dict:
        out = {"slot": self.slot, "voice": self.voice, "character": self.character, "text": self.text}
        if self.display_text is not None:
            out["display_text"] = self.display_text
        return out


@dataclass
class PlannedSegment:
    id: str
    text: str
    prompt_text: str
    slots: dict
    turns: list[Turn]
    est_seconds: float
    seed: int
    sampling: SamplingParams
    boundary: str
    source: SourceRef
    warnings: list[str] = field(default_factory=list)
    text_bytes: int = 0          # UTF-8 bytes of dia_text(prompt_text, text)
    prompt_frames: int = 0       # frames of the two-voice audio prompt
    decoder_positions: int = 0   # BOS + prompt frames + estimated frames + MAX_DELAY
    display_text: str = ""       # ``text`` with the manuscript's spelling (lexicon not applied)

    @property
    def max_new_tokens(self) -> int:
        return min(self.sampling.max_new_tokens, MAX_DECODER_POSITIONS)

    def to_json(self) -> dict:
        return {
            "id": self.id, "text": self.text, "display_text": self.display_text, "prompt_text": self.prompt_text,
            "slots": dict(self.slots),
            "est_seconds": self.est_seconds, "source": self.source.to_json(), "boundary": self.boundary,
            "turns": [t.to_json() for t in self.turns], "seed": self.seed, "sampling": self.sampling.to_dict(),
            "text_bytes": self.text_bytes, "prompt_frames": self.prompt_frames,
            "decoder_positions": self.decoder_positions, "warnings": list(self.warnings),
        }


@dataclass
class ChapterPlan:
    id: str
    index: int
    title: str
    segments: list[PlannedSegment]
    source: SourceRef
    normalized: list[dict] = field(default_factory=list)   # {"source", "written", "spoken"} per change

    @property
    def est_seconds(self) -> float:
        return sum(s.est_seconds for s in self.segments)

    @property
    def warnings(self) -> list[str]:
        return [w for s in self.segments for w in s.warnings]

    def to_json(self) -> dict:
        out = {"id": self.id, "index": self.index, "title": self.title, "source": self.source.to_json(),
               "est_seconds": round(self.est_seconds, 3), "segments": [s.to_json() for s in self.segments]}
        if self.normalized:   # only when there are changes, so other chapters' input hashes stay as they were
            out["normalized"] = list(self.normalized)
        return out


@dataclass
class Plan:
    project_title: str
    chapters: list[ChapterPlan]
    warnings: list[str]

    @property
    def segments(self) -> list[PlannedSegment]:
        return [s for c in self.chapters for s in c.segments]

    def to_json(self) -> dict:
        return {"project_title": self.project_title, "chapters": [c.to_json() for c in self.chapters],
                "warnings": list(self.warnings)}


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------

def compile_lexicon(lexicon: dict[str, str]):
    """Return a function applying whole-word, case-sensitive replacements (longest match first)."""
    if not lexicon:
        return lambda s: s
    keys = sorted(lexicon, key=len, reverse=True)
    rx = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(k) for k in keys) + r")(?!\w)")

    def apply(s: str) -> str:
        out = rx.sub(lambda m: lexicon[m.group()], s)
        return " ".join(out.split()) if out is not s else s
    return apply


def compile_lexicon_spans(lexicon: dict[str, str]):
    """Return a function mapping ``s`` to where each non-space character of ``compile_lexicon(lexicon)(s)``
    came from in ``s``: one ``(start, end, first)`` per non-space character, in order. Characters left
    alone map to themselves; every character of a replacement maps to the whole matched span, with
    ``first`` true only for the replacement's first non-space character. (The whitespace that the
    lexicon normalizes away never starts or ends a planner piece, so only non-space characters count.)
    """
    keys = sorted(lexicon, key=len, reverse=True)
    rx = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(k) for k in keys) + r")(?!\w)") if lexicon else None

    def spans(s: str) -> list[tuple[int, int, bool]]:
        out: list[tuple[int, int, bool]] = []
        pos = 0
        for m in (rx.finditer(s) if rx else ()):
            out.extend((i, i + 1, True) for i in range(pos, m.start()) if not s[i].isspace())
            rep = [c for c in lexicon[m.group()] if not c.isspace()]
            out.extend((m.start(), m.end(), i == 0) for i in range(len(rep)))
            pos = m.end()
        out.extend((i, i + 1, True) for i in range(pos, len(s)) if not s[i].isspace())
        return out
    return spans


def _nonspace(s: str) -> int:
    return sum(not c.isspace() for c in s)


def _display_pieces(original: str, spans: list[tuple[int, int, bool]], texts: list[str]) -> list[str]:
    """The original (pre-lexicon) wording of each piece of a block.

    ``texts`` are the pieces the planner cut from the block's respelled text, in order; together they
    hold every non-space character of it (cuts only drop whitespace), so the k-th non-space character
    of the pieces is the k-th entry of ``spans``. A piece's original text runs from where its first
    character came from to where the next piece's does, so the pieces' originals cover the block's
    original text without gaps or overlaps. A cut inside a replacement (one with a space or a comma
    in it) gives the whole original word to the piece holding the replacement's start.
    """
    counts = [_nonspace(t) for t in texts]
    if sum(counts) != len(spans):  # pragma: no cover - cannot happen; never let captions break a plan
        return list(texts)
    starts = []
    k = 0
    for n in counts:
        if k < len(spans):
            lo, hi, first = spans[k]
            starts.append(lo if first else hi)
        else:
            starts.append(len(original))
        k += n
    starts[0] = 0
    ends = starts[1:] + [len(original)]
    return [original[a:b].strip() for a, b in zip(starts, ends)]


def split_sentences(text: str) -> list[str]:
    """Split normalized text at sentence ends (., !, ?, … then a capital, digit or quote)."""
    out = []
    start = 0
    for m in _SENT_END_RE.finditer(text):
        end = m.end()
        if end >= len(text):
            break
        nxt = text[end:end + 2].lstrip("\"“‘'([")[:1]
        if not nxt or not (nxt.isupper() or nxt.isdigit()):
            continue
        before = text[start:m.start()].rsplit(" ", 1)[-1]
        if text[m.start()] == "." and m.group().startswith(".") and len(m.group().strip()) == 1:
            word = before.lstrip("\"“‘'([").lower()
            if word in _ABBREV or (len(word) == 1 and word.isalpha()):
                continue
        out.append(text[start:m.end()].rstrip())
        start = end
    out.append(text[start:])
    return [s for s in out if s]


def split_clauses(sentence: str) -> list[str]:
    parts = [p for p in _CLAUSE_RE.split(sentence) if p]
    return parts


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------

class _Piece:
    __slots__ = ("voice", "character", "text", "nbytes", "seconds", "brk", "source", "paragraph", "warning",
                 "display")

    def __init__(self, voice, character, text, seconds, brk, source, paragraph, warning=None):
        self.voice = voice
        self.character = character
        self.text = text
        self.nbytes = len(text.encode("utf-8"))
        self.seconds = seconds
        self.brk = brk
        self.source = source
        self.paragraph = paragraph
        self.warning = warning
        self.display = text   # the manuscript's wording of this piece (set by plan_chapter)


class _VoiceInfo:
    __slots__ = ("name", "transcript_bytes", "prompt_frames", "max_tokens", "cps", "seed", "sampling",
                 "transcript")

    def __init__(self, v: Voice):
        self.name = v.name
        self.transcript = v.prompt_transcript
        self.transcript_bytes = len(self.transcript.encode("utf-8"))
        self.prompt_frames = prompt_frames_for(v)
        self.max_tokens = min(v.sampling.max_new_tokens, MAX_DECODER_POSITIONS)
        self.cps = v.chars_per_second
        self.seed = v.seed
        self.sampling = v.sampling


def _frames(seconds: float) -> int:
    return math.ceil(round(seconds, 3) * FRAME_RATE)


class _ChapterPlanner:
    def __init__(self, project: Project):
        self.project = project
        self.seg = project.segmenting
        self.voices = {n: _VoiceInfo(v) for n, v in project.voices.items()}
        self.speech = SpeechText.for_project(project)   # the lexicon, then normalization for speech
        lo, hi = self.seg.min_seconds, self.seg.max_seconds
        self.target = lo + 0.6 * (hi - lo)

    # ---- limits for one piece alone in a segment (its voice in [S1], nobody in [S2]) ----
    def fits_alone(self, voice: str, text: str, seconds: float) -> bool:
        vi = self.voices[voice]
        nbytes = 5 + vi.transcript_bytes + len(PROMPT_SEPARATOR) + 5 + len(text.encode("utf-8"))
        positions = 1 + vi.prompt_frames + _frames(seconds) + MAX_DELAY
        return nbytes <= MAX_TEXT_BYTES and positions <= vi.max_tokens

    def pieces_for_block(self, b: Block, text: str, boundary: str, warnings: list[str]) -> list[_Piece]:
        vi = self.voices[b.voice]
        out: list[_Piece] = []
        maxs = self.seg.max_seconds

        def secs(t):
            return len(t) / vi.cps

        first = True
        for sent in split_sentences(text):
            s = secs(sent)
            if s <= maxs and self.fits_alone(b.voice, sent, s):
                out.append(_Piece(b.voice, b.character, sent, s, boundary if first else "sentence", b.source,
                                  b.paragraph))
                first = False
                continue
            # an over-long sentence: clauses, then words
            warn = (f"{b.source}: a sentence of {len(sent)} characters (~{s:.0f} s) is longer than one "
                    f"segment; split inside the sentence")
            used_words = False
            sub: list[tuple[str, str]] = []
            for ci, clause in enumerate(split_clauses(sent)):
                cs = secs(clause)
                kind = "sentence" if ci == 0 else "clause"
                if cs <= maxs and self.fits_alone(b.voice, clause, cs):
                    sub.append((clause, kind))
                    continue
                used_words = True
                for wi, word in enumerate(clause.split(" ")):
                    ws = secs(word)
                    if not self.fits_alone(b.voice, word, ws):
                        left_s = max(0.0, (vi.max_tokens - 1 - MAX_DELAY - vi.prompt_frames) / FRAME_RATE)
                        left_b = MAX_TEXT_BYTES - (5 + vi.transcript_bytes + len(PROMPT_SEPARATOR) + 5)
                        raise InputError(f"a word of {len(word)} characters cannot fit in one Dia generation "
                                         f"(~{ws:.1f} s; voice {b.voice!r} leaves {left_s:.1f} s and {left_b} "
                                         "text bytes after its prompt)", file=b.source.file, line=b.source.line)
                    sub.append((word, kind if wi == 0 else "word"))
            if used_words:
                warn += " at words (no clause boundary fits)"
            warnings.append(warn)
            for i, (t, kind) in enumerate(sub):
                brk = (boundary if first else "sentence") if i == 0 else kind
                out.append(_Piece(b.voice, b.character, t, secs(t), brk, b.source, b.paragraph,
                                  warn if i == 0 else None))
                first = False
        return out

    # ---- chapter ----
    def plan_chapter(self, ch: Chapter, warnings: list[str]) -> ChapterPlan:
        blocks = list(ch.blocks)
        if self.seg.read_headings and ch.has_heading and ch.title:
            title = ch.title if ch.title[-1] in _TERMINAL else ch.title + "."
            heading = Block("narration", self.project.narration_voice, "Narrator", title, ch.source,
                            "chapter_start", -1)
            if blocks and blocks[0].boundary == "chapter_start":
                b0 = blocks[0]
                blocks[0] = Block(b0.kind, b0.voice, b0.character, b0.text, b0.source, "paragraph", b0.paragraph)
            blocks.insert(0, heading)
        pieces: list[_Piece] = []
        normalized: list[dict] = []
        for b in blocks:
            heading = b.paragraph == -1
            text = self.speech.apply(b.text, heading)
            if not text:
                raise InputError("text is empty after applying the lexicon", file=b.source.file, line=b.source.line)
            normalized.extend({"source": b.source.to_json(), "written": c.written, "spoken": c.spoken}
                              for c in self.speech.changes(b.text, heading))
            block_pieces = self.pieces_for_block(b, text, b.boundary, warnings)
            if self.speech.active and text != b.text:
                displays = _display_pieces(b.text, self.speech.spans(b.text, heading), [p.text for p in block_pieces])
                for p, d in zip(block_pieces, displays):
                    p.display = d
            pieces.extend(block_pieces)
        segments: list[PlannedSegment] = []
        seen: dict[tuple, int] = {}
        for section in self.sections(pieces):
            for i, j in self.segment_section(section):
                segments.append(self.build(section[i:j], section[i].brk, seen))
        width = max(2, len(str(self.project_chapter_count)))
        return ChapterPlan(f"chapter-{ch.index:0{width}d}", ch.index, ch.title, segments, ch.source, normalized)

    project_chapter_count = 99

    def sections(self, pieces: list[_Piece]) -> list[list[_Piece]]:
        lo, hi = self.seg.min_seconds, self.seg.max_seconds
        par_secs: dict[int, float] = {}
        par_text: dict[int, list[str]] = {}
        for p in pieces:
            par_secs[p.paragraph] = par_secs.get(p.paragraph, 0.0) + p.seconds
            par_text.setdefault(p.paragraph, []).append(p.text)
        out: list[list[_Piece]] = []
        cur: list[_Piece] = []
        cur_secs = 0.0
        prev_par = None
        for p in pieces:
            anchor = False
            if cur and p.brk in ("chapter_start", "scene"):
                anchor = True
            elif cur and p.paragraph != prev_par:
                if par_secs[prev_par] >= lo and par_secs[p.paragraph] >= lo:
                    anchor = True
                elif cur_secs >= hi:
                    h = hashlib.blake2b(" ".join(par_text[p.paragraph]).encode("utf-8"), digest_size=2).digest()
                    anchor = h[0] % 4 == 0
            if anchor:
                out.append(cur)
                cur, cur_secs = [], 0.0
            cur.append(p)
            cur_secs += p.seconds
            prev_par = p.paragraph
        if cur:
            out.append(cur)
        return out

    def dur_cost(self, d: float) -> float:
        lo, hi = self.seg.min_seconds, self.seg.max_seconds
        if d < lo:
            return 4.0 + 8.0 * (lo - d) / lo
        if d > hi:
            return 50.0 + (d - hi)
        x = (d - self.target) / (hi - lo)
        return 2.0 * x * x

    def _caps(self, v1: _VoiceInfo, v2: _VoiceInfo | None) -> tuple[int, float]:
        """(max text bytes, max seconds) for a segment with these slot voices."""
        prompt_bytes = 5 + v1.transcript_bytes + (6 + v2.transcript_bytes if v2 else 0)
        byte_cap = MAX_TEXT_BYTES - prompt_bytes - len(PROMPT_SEPARATOR)
        frames_left = v1.max_tokens - 1 - MAX_DELAY - v1.prompt_frames - (v2.prompt_frames if v2 else 0)
        # ceil(round(s, 3) * FRAME_RATE) <= frames_left holds whenever s <= frames_left / FRAME_RATE - 0.0005
        sec_cap = min(self.seg.max_seconds, frames_left / FRAME_RATE - 0.0005)
        return byte_cap, sec_cap

    def segment_section(self, ps: list[_Piece]) -> list[tuple[int, int]]:
        """Dynamic program over cut points: minimal total cost, every segment within the budgets."""
        n = len(ps)
        inf = float("inf")
        best = [inf] * (n + 1)
        back = [0] * (n + 1)
        best[0] = 0.0
        voices = self.voices
        pv = [p.voice for p in ps]
        pb = [p.nbytes for p in ps]
        psec = [p.seconds for p in ps]
        dur_cost = self.dur_cost
        caps: dict[tuple, tuple[int, float]] = {}
        for i in range(n):
            if best[i] == inf:
                continue
            base = best[i] + SEGMENT_COST + (BREAK_COST[ps[i].brk] if i else 0.0)
            v1 = pv[i]
            v2 = None
            key = (v1, None)
            if key not in caps:
                caps[key] = self._caps(voices[v1], None)
            byte_cap, sec_cap = caps[key]
            prev_voice = v1
            nbytes = 5 + pb[i]
            secs = psec[i]
            j = i + 1
            while True:
                c = base + dur_cost(secs)
                if c < best[j]:
                    best[j] = c
                    back[j] = i
                if j == n:
                    break
                v = pv[j]
                if v != v1 and v != v2:
                    if v2 is not None:
                        break
                    v2 = v
                    key = (v1, v2)
                    if key not in caps:
                        caps[key] = self._caps(voices[v1], voices[v2])
                    byte_cap, sec_cap = caps[key]
                nbytes += (1 if v == prev_voice else 6) + pb[j]
                prev_voice = v
                secs += psec[j]
                if secs > sec_cap or nbytes > byte_cap:
                    break
                j += 1
        cuts = []
        j = n
        while j > 0:
            cuts.append((back[j], j))
            j = back[j]
        cuts.reverse()
        return cuts

    def build(self, ps: list[_Piece], brk: str, seen: dict) -> PlannedSegment:
        slot_of: dict[str, str] = {}
        for p in ps:
            if p.voice not in slot_of:
                slot_of[p.voice] = "S1" if not slot_of else "S2"
        assert len(slot_of) <= 2
        names = list(slot_of)
        s1 = self.voices[names[0]]
        s2 = self.voices[names[1]] if len(names) > 1 else None
        # turns: consecutive pieces of the same voice and character
        turns: list[list] = []
        for p in ps:
            if turns and turns[-1][0] == p.voice and turns[-1][1] == p.character:
                turns[-1][2].append(p.text)
                turns[-1][3].append(p.display)
            else:
                turns.append([p.voice, p.character, [p.text], [p.display]])
        parts, display_parts = [], []
        prev_voice = None
        for voice, _, texts, displays in turns:
            chunk = " ".join(texts)
            display = " ".join(d for d in displays if d)
            tag = TAG[slot_of[voice]] if voice != prev_voice else ""
            parts.append(tag + chunk)
            display_parts.append((tag + display).strip())
            prev_voice = voice
        text = " ".join(parts)
        display_text = " ".join(d for d in display_parts if d)
        prompt_text = TAG["S1"] + s1.transcript + (" " + TAG["S2"] + s2.transcript if s2 else "")
        est = round(sum(p.seconds for p in ps), 3)
        prompt_frames = s1.prompt_frames + (s2.prompt_frames if s2 else 0)
        positions = 1 + prompt_frames + _frames(est) + MAX_DELAY
        nbytes = len(dia_text(prompt_text, text).encode("utf-8"))
        if nbytes > MAX_TEXT_BYTES or positions > s1.max_tokens:  # pragma: no cover - planner bug guard
            raise AssertionError(f"planner produced a segment over budget ({nbytes} bytes, {positions} positions)")
        slots = {"S1": s1.name, "S2": s2.name if s2 else None}
        key = (slots["S1"], slots["S2"] or "", prompt_text, text)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        digest = hashlib.sha256("\x1f".join((*key, str(occurrence))).encode("utf-8")).hexdigest()[:16]
        return PlannedSegment(
            id=digest, text=text, prompt_text=prompt_text, slots=slots,
            turns=[Turn(slot_of[v], v, c, " ".join(t), " ".join(d for d in ds if d)) for v, c, t, ds in turns],
            est_seconds=est, seed=s1.seed, sampling=s1.sampling, boundary=BOUNDARY_KIND.get(brk, brk),
            source=ps[0].source, warnings=[p.warning for p in ps if p.warning],
            text_bytes=nbytes, prompt_frames=prompt_frames, decoder_positions=positions,
            display_text=display_text,
        )


def estimate_chapter_seconds(project: Project, chapter: Chapter, speech: SpeechText | None = None) -> float:
    """A chapter's speech in seconds as the planner estimates it, without planning: every sentence of
    every block (lexicon applied) at its voice's chars_per_second, plus the heading when it is read
    aloud. Equal to the plan's ``ChapterPlan.est_seconds`` but for the spaces dropped where an
    over-long sentence is cut at clauses or words. ``speech``: ``SpeechText.for_project(project)``."""
    speech = speech or SpeechText.for_project(project)
    cps = {n: v.chars_per_second for n, v in project.voices.items()}
    spoken = [(b.voice, b.text, False) for b in chapter.blocks]
    if project.segmenting.read_headings and chapter.has_heading and chapter.title:
        title = chapter.title if chapter.title[-1] in _TERMINAL else chapter.title + "."
        spoken.insert(0, (project.narration_voice, title, True))
    return sum(sum(len(sent) for sent in split_sentences(speech.apply(text, heading))) / cps[voice]
               for voice, text, heading in spoken)


def read_manuscripts(project: Project) -> tuple[list[Chapter], list[str]]:
    """The project's chapters and every manuscript warning, the chapter-length estimate included
    (what `validate` reports and `plan` starts from)."""
    chapters, warnings = parse_project_manuscripts(project)
    return chapters, warnings + chapter_length_warnings(project, chapters, source_locator(project))


def chapter_length_warnings(project: Project, chapters: list[Chapter], where=str) -> list[str]:
    """With the acx profile, a warning for each chapter estimated over ACX_MAX_MINUTES (ACX rejects
    longer files; the delivery check would fail it after the whole render). ``where(source)``: how
    the chapter's SourceRef is shown."""
    if project.delivery.profile != "acx":
        return []
    speech = SpeechText.for_project(project)
    out = []
    for ch in chapters:
        est = estimate_chapter_seconds(project, ch, speech)
        if est > ACX_MAX_MINUTES * 60:
            out.append(f"{where(ch.source)}: chapter {ch.index} ({ch.title!r}) is about {est / 60:.1f} minutes of speech "
                       f"(estimated at the voices' chars_per_second); ACX limits files to {ACX_MAX_MINUTES} "
                       "minutes: split it with more headings")
    return out


def select_chapters(all_chapters: list[Chapter], selection, project: Project, *, from_manifest: bool = False
                    ) -> list[Chapter]:
    if selection is None:
        return all_chapters
    n = len(all_chapters)
    missing = [i for i in selection if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= n]
    if missing:
        raise InputError(f"chapter {missing[0]} does not exist (the manuscript has {n} chapter"
                         f"{'s' if n != 1 else ''})", file=project.manifest_label if from_manifest else None,
                         field="chapters")
    wanted = set(selection)
    return [c for c in all_chapters if c.index in wanted]


def plan_chapters(project: Project, chapters: list[Chapter], manuscript_warnings: list[str] = (),
                  total_chapters: int | None = None) -> Plan:
    planner = _ChapterPlanner(project)
    planner.project_chapter_count = total_chapters or (max((c.index for c in chapters), default=1))
    warnings = list(project.warnings) + list(manuscript_warnings)
    if project.normalize and planner.speech.normalizer is None:
        warnings.append(f"{project.manifest_label}: language: text normalization for speech is English only; "
                        f"{project.language!r} text is planned as written (set normalize: false to silence this)")
    plans = [planner.plan_chapter(ch, warnings) for ch in chapters]
    return Plan(project.title, plans, warnings)


def plan_project(project: Project, chapters=None) -> Plan:
    """Plan the project's chapters (``chapters``: 1-based selection overriding the manifest's;
    ``"all"`` (project.ALL_CHAPTERS): every chapter, whatever the manifest selects; None: the
    manifest's selection)."""
    all_chapters, mwarn = read_manuscripts(project)
    if isinstance(chapters, str):
        selection = parse_chapter_selection(chapters, field="chapters")
    else:
        selection = chapters if chapters is not None else project.chapters
    if selection is not None:
        selection = tuple(selection)
    chosen = select_chapters(all_chapters, selection, project, from_manifest=chapters is None)
    return plan_chapters(project, chosen, mwarn, total_chapters=len(all_chapters))


__all__ = ["Plan", "ChapterPlan", "PlannedSegment", "Turn", "plan_project", "plan_chapters", "dia_text",
           "compile_lexicon", "compile_lexicon_spans", "split_sentences", "split_clauses", "PROMPT_SEPARATOR",
           "estimate_chapter_seconds", "chapter_length_warnings", "read_manuscripts"]
