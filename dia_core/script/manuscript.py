"""Manuscript parsing: plain UTF-8 Markdown-ish text -> chapters of speaker blocks with sources.

Format (see docs/project-yaml.md, "Manuscript format"):

* ``# Title`` / ``## Title`` start a chapter. A file without headings is one chapter titled by
  the project title; text before the first heading of a file is a chapter of its own (same title).
  Deeper headings (``### x``) are read as narration. A chapter with no text is an error.
* ``<!-- chapter: Title -->`` on a line of its own also starts a chapter (a podcast episode's
  section) whose title is not read aloud: it is a chapter marker in the delivered files only.
* Paragraphs are separated by blank lines; consecutive lines of a paragraph are joined.
* ``NAME: text`` starts a dialogue block when NAME is in the project's ``characters`` map
  (case-insensitive). An ALL-CAPS ``NAME:`` that is not in the map is an error ("unknown
  speaker"); a mixed-case one is read as narration with a warning.
* A line starting with ``[S1]`` / ``[S2]`` is a raw Dia line: its tags are the author's and map to
  voices through ``raw_slots`` (default S1 = narrator_voice, S2 = the first other voice).
  Tags anywhere else are errors (they are Dia's speaker tokens).
* Scene breaks are lines of ``***``, ``* * *``, ``---`` or ``#`` alone.
* Everything else in a paragraph is narration, read by ``narrator_voice``.
* Nonverbal cues in parentheses are kept; short lowercase cues that Dia does not know produce a
  warning ``file:line: ...``.
* Emphasis markers (``*word*``, ``**word**``) are removed; nothing else is rewritten.
* Characters Dia's English model cannot read (invisible ones: zero-width spaces and joiners, soft
  hyphens, direction marks; CJK and Hangul; right-to-left scripts; emoji and pictographs) produce a
  warning ``file:line: ...`` naming each one's code point; they are left in the text.
* Two chapters with the same title produce a warning (the book's chapter list shows both alike);
  so does a chapter estimated over ACX's 120 minutes when the profile is acx.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..files import read_bounded
from .project import Project, display_path

MAX_MANUSCRIPT_BYTES = 64 * 1024 * 1024
MAX_LINE_CHARS = 100_000

KNOWN_CUES = frozenset((
    "laughs", "clears throat", "sighs", "gasps", "coughs", "singing", "sings", "mumbles", "beep",
    "groans", "sniffs", "claps", "screams", "inhales", "exhales", "applause", "burps", "humming",
    "sneezes", "chuckle", "whistles",
))

HEADING_RE = re.compile(r"^(#{1,2})[ \t]+(.*?)[ \t]*#*[ \t]*$")
CHAPTER_MARKER_RE = re.compile(r"^<!--[ \t]*chapter:[ \t]*(\S.*?)[ \t]*-->$", re.IGNORECASE)
DEEP_HEADING_RE = re.compile(r"^#{3,6}[ \t]+(?=\S)")
SCENE_RE = re.compile(r"^(?:\*[ \t]*\*[ \t]*\*[ \t*]*|-{3,}|#+)$")
DIALOGUE_RE = re.compile(r"^(?P<name>[^\W\d_][\w'’.\- ]{0,39}?)[ \t]*:(?:[ \t]+(?P<text>.*))?$")
RAW_START_RE = re.compile(r"^\[S[12]\]")
TAG_RE = re.compile(r"\[(S[12])\]")
CUE_RE = re.compile(r"\(([^()]{1,60})\)")
CUE_WORDS_RE = re.compile(r"^[a-z]+(?: [a-z]+)?$")
EMPHASIS_RE = re.compile(r"(?<![\w*])(\*{1,3})(?=\S)(.+?)(?<=\S)\1(?![\w*])")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Characters an English text-to-speech model has no reading for, by kind (checked per line).
UNREADABLE_KINDS = (
    ("invisible formatting",
     "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
     "\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff"),
    ("right-to-left script",
     "\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefe\U00010800-\U00010fff\U0001e800-\U0001efff"),
    ("CJK/Hangul",
     "\u1100-\u11ff\u2e80-\u2fdf\u2ff0-\u303f\u3041-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
     "\ufe30-\ufe4f\uff00-\uff9f\uffa1-\uffef\U00020000-\U0003ffff"),
    ("emoji/pictograph",
     "\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff"),
)
UNREADABLE_RE = re.compile("[" + "".join(r for _, r in UNREADABLE_KINDS) + "]")
_UNREADABLE_KIND_RES = [(k, re.compile(f"[{r}]")) for k, r in UNREADABLE_KINDS]
MAX_UNREADABLE_WARNINGS = 20   # lines reported per file; the rest are counted


def unreadable_kind(ch: str) -> str | None:
    """What kind of character Dia's English model cannot read ``ch`` is, or None."""
    return next((k for k, rx in _UNREADABLE_KIND_RES if rx.match(ch)), None)


def describe_char(ch: str) -> str:
    """``U+200B ZERO WIDTH SPACE``."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


@dataclass(frozen=True)
class SourceRef:
    file: str   # relative to the project root (or as given)
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line}


@dataclass
class Block:
    """One speaker's stretch of text: a narration paragraph, a dialogue line, a raw Dia turn."""
    kind: str            # "narration" | "dialogue" | "raw"
    voice: str
    character: str       # display name: the character as written in the YAML map, "Narrator", or the voice
    text: str            # whitespace-normalized, lexicon not applied yet
    source: SourceRef
    boundary: str        # break before: "chapter_start" | "scene" | "paragraph" | "turn"
    paragraph: int       # paragraph number inside the chapter (0-based)


@dataclass
class Chapter:
    index: int           # 1-based, across all manuscript files in order
    title: str
    source: SourceRef    # the heading (or first text line for heading-less chapters)
    blocks: list[Block] = field(default_factory=list)
    has_heading: bool = True


@dataclass(frozen=True)
class Casting:
    """What the parser needs from a project: who reads narration, dialogue and raw lines."""
    narration_voice: str
    characters: dict[str, str]                 # casefolded name -> voice
    character_names: dict[str, str]            # casefolded name -> display name
    raw_slots: dict[str, str | None]           # {"S1": voice, "S2": voice|None}
    default_title: str

    @classmethod
    def from_project(cls, project: "Project") -> "Casting":
        return cls(project.narration_voice, {k.casefold(): v for k, v in project.characters.items()},
                   dict(project.character_names), dict(project.raw_slots), project.title)


def read_text_file(path: Path, label: str) -> str:
    """Read a manuscript as plain UTF-8 text, rejecting binary files and other encodings."""
    raw = read_bounded(path, MAX_MANUSCRIPT_BYTES, label=label, what="manuscript")
    return decode_text(raw, label)


def decode_text(raw: bytes, label: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("UTF-16 text: save the manuscript as plain UTF-8", file=label)
    if raw.startswith(b"%PDF"):
        raise InputError("a PDF file: export the manuscript as plain UTF-8 text", file=label)
    if raw.startswith(b"PK\x03\x04"):
        raise InputError("a ZIP-based file (DOCX/EPUB/ODT?): export the manuscript as plain UTF-8 text",
                         file=label)
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InputError("binary file (NUL bytes): the manuscript must be plain UTF-8 text", file=label,
                         line=raw[:nul].count(b"\n") + 1)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte 0x{raw[e.start]:02x}); save the manuscript as UTF-8",
                         file=label, line=raw[:e.start].count(b"\n") + 1) from None
    m = CONTROL_RE.search(text)
    if m:
        raise InputError(f"control character U+{ord(m.group()):04X} in text", file=label,
                         line=text.count("\n", 0, m.start()) + 1)
    if "\ufeff" in text:
        text = text.replace("\ufeff", "")
    if not text.strip():
        raise InputError("manuscript has no text", file=label)
    return text


def _clean(line: str) -> str:
    if "*" in line:
        line = EMPHASIS_RE.sub(r"\2", line)
    return line


class _Parser:
    def __init__(self, casting: Casting, label: str, first_index: int, source_file: str | None = None):
        self.c = casting
        self.file = label                      # in messages
        self.source_file = source_file or label  # in SourceRef (relative to the project root)
        self.next_index = first_index
        self.chapters: list[Chapter] = []
        self.cur: Chapter | None = None
        self.paragraph = 0
        self.pending = "chapter_start"
        self.warnings: list[str] = []
        self.unreadable_lines = 0

    # -- helpers --
    def err(self, msg: str, line: int) -> InputError:
        return InputError(msg, file=self.file, line=line)

    def warn(self, msg: str, line: int) -> None:
        self.warnings.append(f"{self.file}:{line}: {msg}")

    def start_chapter(self, title: str, line: int, has_heading: bool) -> None:
        self.finish_chapter()
        self.cur = Chapter(self.next_index, title, SourceRef(self.source_file, line), has_heading=has_heading)
        self.next_index += 1
        self.paragraph = 0
        self.pending = "chapter_start"

    def finish_chapter(self) -> None:
        if self.cur is None:
            return
        if not self.cur.blocks:
            raise self.err(f"empty chapter {self.cur.title!r}: a heading needs text before the next heading "
                           "or the end of the file", self.cur.source.line)
        self.chapters.append(self.cur)
        self.cur = None

    def check_unreadable(self, line_text: str, lineno: int) -> None:
        """Warn (file:line) for characters Dia's English model cannot read, naming their code points."""
        if line_text.isascii() or not UNREADABLE_RE.search(line_text):
            return
        self.unreadable_lines += 1
        if self.unreadable_lines > MAX_UNREADABLE_WARNINGS:
            return
        seen: dict[str, str] = {}
        for ch in UNREADABLE_RE.findall(line_text):
            if ch not in seen:
                seen[ch] = unreadable_kind(ch) or "unreadable"
        shown = list(seen.items())[:4]
        more = f" and {len(seen) - len(shown)} more" if len(seen) > len(shown) else ""
        what = "; ".join(f"{describe_char(ch)} ({kind})" for ch, kind in shown)
        self.warn(f"Dia's English model cannot read {what}{more}: it may be skipped, mispronounced or garble "
                  "the segment; remove or replace it", lineno)

    def finish_unreadable(self) -> None:
        extra = self.unreadable_lines - MAX_UNREADABLE_WARNINGS
        if extra > 0:
            self.warnings.append(f"{self.file}: {extra} more line{'s' if extra != 1 else ''} with characters "
                                 "Dia's English model cannot read (not listed)")

    def check_cues(self, text: str, line: int) -> None:
        for m in CUE_RE.finditer(text):
            cue = m.group(1).strip()
            if CUE_WORDS_RE.match(cue) and cue not in KNOWN_CUES:
                self.warn(f"nonverbal cue ({cue}) is not one Dia knows; it may be read aloud or ignored "
                          f"(known: {', '.join(sorted(KNOWN_CUES))})", line)

    # -- paragraphs --
    def paragraph_lines(self, lines: list[tuple[int, str]]) -> None:
        if not lines:
            return
        if self.cur is None:
            self.start_chapter(self.c.default_title, lines[0][0], has_heading=False)
        # groups: [kind, voice, character, first_line, [texts]]
        groups: list[list] = []
        for lineno, raw_line in lines:
            line = _clean(raw_line)
            if RAW_START_RE.match(line):
                groups.append(["raw", None, None, lineno, [(lineno, line)]])
                continue
            if TAG_RE.search(line) and not (groups and groups[-1][0] == "raw"):
                raise self.err("[S1]/[S2] speaker tags belong only at the start of a raw Dia line", lineno)
            m = DIALOGUE_RE.match(line)
            if m and not line.startswith("[") and self._is_dialogue(m.group("name").strip(), lineno):
                name = m.group("name").strip()
                key = name.casefold()
                groups.append(["dialogue", self.c.characters[key], self.c.character_names.get(key, name), lineno,
                               [(lineno, m.group("text") or "")]])
                continue
            if m and not line.startswith("["):
                name = m.group("name").strip()
                words = name.split()
                if len(words) <= 2 and all(w[:1].isupper() for w in words):
                    self.warn(f"{name!r} looks like a speaker but is not in characters; read as narration", lineno)
            if groups:
                groups[-1][4].append((lineno, line))
            else:
                groups.append(["narration", self.c.narration_voice, "Narrator", lineno, [(lineno, line)]])
        first_in_par = True
        for kind, voice, character, lineno, parts in groups:
            for ln, t in parts:
                self.check_cues(t, ln)
            if kind == "raw":
                for slot, text, ln in self._raw_turns(parts):
                    v = self.c.raw_slots.get(slot)
                    if v is None:
                        raise self.err(f"raw [{slot}] line but raw_slots.{slot} names no voice "
                                       "(define a second voice or set raw_slots)", ln)
                    self._add("raw", v, v, text, ln, first_in_par)
                    first_in_par = False
                continue
            text = " ".join(" ".join(t for _, t in parts).split())
            if not text:
                raise self.err("dialogue line without text", lineno)
            self._add(kind, voice, character, text, lineno, first_in_par)
            first_in_par = False
        self.paragraph += 1

    def _is_dialogue(self, name: str, lineno: int) -> bool:
        if name.casefold() in self.c.characters:
            return True
        if any(ch.isalpha() for ch in name) and name.upper() == name:
            known = ", ".join(sorted(self.c.character_names.values())) or "none defined"
            raise self.err(f"unknown speaker {name!r}: add it to characters in project.yaml (known: {known})",
                           lineno)
        return False

    def _raw_turns(self, parts: list[tuple[int, str]]):
        """Split a raw Dia line group into (slot, text, line) turns."""
        turns: list[list] = []
        for ln, t in parts:
            pos = 0
            for m in TAG_RE.finditer(t):
                if turns:
                    turns[-1][1].append(t[pos:m.start()])
                turns.append([m.group(1), [], ln])
                pos = m.end()
            turns[-1][1].append(t[pos:])
        out = []
        for slot, texts, ln in turns:
            text = " ".join(" ".join(texts).split())
            if not text:
                raise self.err(f"empty [{slot}] turn in a raw Dia line", ln)
            out.append((slot, text, ln))
        return out

    def _add(self, kind, voice, character, text, line, first_in_par) -> None:
        assert self.cur is not None
        blocks = self.cur.blocks
        if not blocks:
            boundary = "chapter_start"
        elif self.pending == "scene":
            boundary = "scene"
        elif first_in_par:
            prev = blocks[-1]
            boundary = ("turn" if prev.kind != "narration" and kind != "narration" and prev.voice != voice
                        else "paragraph")
        else:
            boundary = "turn"
        self.pending = ""
        blocks.append(Block(kind, voice, character, text, SourceRef(self.source_file, line), boundary, self.paragraph))

    # -- driver --
    def parse(self, text: str) -> list[Chapter]:
        para: list[tuple[int, str]] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if len(line) > MAX_LINE_CHARS:
                raise self.err(f"line is {len(line)} characters long (limit {MAX_LINE_CHARS}); "
                               "separate paragraphs with blank lines", lineno)
            self.check_unreadable(line, lineno)
            s = line.strip()
            if not s:
                self.paragraph_lines(para)
                para = []
                continue
            if SCENE_RE.match(s):
                self.paragraph_lines(para)
                para = []
                if self.cur is not None and self.cur.blocks:
                    self.pending = "scene"
                continue
            h = HEADING_RE.match(s)
            if h:
                self.paragraph_lines(para)
                para = []
                title = " ".join(_clean(h.group(2)).split())
                if TAG_RE.search(title):
                    raise self.err("[S1]/[S2] speaker tags are not allowed in headings", lineno)
                self.start_chapter(title, lineno, has_heading=True)
                continue
            marker = CHAPTER_MARKER_RE.match(s)
            if marker:   # a chapter (podcast section) whose title is not read aloud
                self.paragraph_lines(para)
                para = []
                self.start_chapter(" ".join(_clean(marker.group(1)).split()), lineno, has_heading=False)
                continue
            dh = DEEP_HEADING_RE.match(s)
            if dh:
                s = s[dh.end():]
            para.append((lineno, s))
        self.paragraph_lines(para)
        self.finish_chapter()
        self.finish_unreadable()
        return self.chapters


def parse_text(text: str, casting: Casting, *, file: str = "<text>", first_index: int = 1,
               source_file: str | None = None) -> tuple[list[Chapter], list[str]]:
    """Parse manuscript text. Returns (chapters, warnings); raises InputError on bad input.

    ``file`` names the file in errors and warnings; ``source_file`` (default: ``file``) goes into
    each block's SourceRef.
    """
    p = _Parser(casting, file, first_index, source_file)
    chapters = p.parse(text)
    return chapters, p.warnings


def parse_file(path: Path, casting: Casting, *, label: str | None = None, first_index: int = 1,
               source_file: str | None = None) -> tuple[list[Chapter], list[str]]:
    label = label or str(path)
    return parse_text(read_text_file(path, label), casting, file=label, first_index=first_index,
                      source_file=source_file)


def parse_project_manuscripts(project: "Project") -> tuple[list[Chapter], list[str]]:
    """Parse every manuscript file of the project, numbering chapters across files."""
    casting = Casting.from_project(project)
    chapters: list[Chapter] = []
    warnings: list[str] = []
    for path in project.manuscripts:
        ch, w = parse_file(path, casting, label=display_path(path), first_index=len(chapters) + 1,
                           source_file=project.relpath(path))
        chapters.extend(ch)
        warnings.extend(w)
    if not chapters:  # pragma: no cover - every file has text or raised
        raise InputError("the manuscript has no chapters", file=project.manifest_label, field="manuscript")
    warnings.extend(duplicate_title_warnings(chapters, source_locator(project)))
    return chapters, warnings


def source_locator(project: "Project"):
    """``where(SourceRef) -> "file:line"`` with the file shown as the parser's warnings show it."""
    labels = {project.relpath(p): display_path(p) for p in project.manuscripts}
    return lambda ref: f"{labels.get(ref.file, ref.file)}:{ref.line}"


def duplicate_title_warnings(chapters: list[Chapter], where=str) -> list[str]:
    """A warning for each chapter whose title (ignoring case and spacing) an earlier chapter has:
    the M4B's chapter list and the players' menus would show them alike. ``where(source)``: how a
    SourceRef is shown."""
    first: dict[str, Chapter] = {}
    out = []
    for ch in chapters:
        key = " ".join(ch.title.split()).casefold()
        if key in first:
            f = first[key]
            out.append(f"{where(ch.source)}: chapter {ch.index} has the same title as chapter {f.index} "
                       f"({where(f.source)}): {ch.title!r}; the book's chapter list will show both alike")
        else:
            first[key] = ch
    return out


__all__ = ["Block", "Chapter", "SourceRef", "Casting", "KNOWN_CUES", "parse_text", "parse_file",
           "parse_project_manuscripts", "read_text_file", "decode_text", "MAX_LINE_CHARS", "unreadable_kind",
           "duplicate_title_warnings"]
