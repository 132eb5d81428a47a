"""A Book as a project folder: ``manuscript.md`` in the project's manuscript format,
``project.yaml``, ``import.md`` (the report) and the cover, published atomically.

The text is written so that the manuscript parser reads it back as the same words: a line that
would parse as something else (``WORD:`` speaker syntax, ``#`` headings, ``[S1]`` tags) is
escaped, and each escape is counted in the report.

``--out``: a new or empty folder is filled through a temporary sibling folder renamed into place;
a folder holding a previous import of the same book (its import.md names the same source sha256)
has the import's own files replaced one by one, atomically; anything else is refused.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_bytes
from ..errors import InputError
from ..script.manuscript import CONTROL_RE, DIALOGUE_RE, SCENE_RE
from .book import Book, Para, word_count

MARKER_RE = re.compile(r"^<!-- dia-studio import: source-sha256=([0-9a-f]{64}) files=([^ ]*) -->$", re.M)
LANG_RE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
MAX_WRITTEN_LINE = 10_000     # the manuscript allows 100,000; long paragraphs are wrapped at spaces
NARRATOR_VOICE = "narrator"


@dataclass
class Line:
    """One manuscript paragraph: narration (speaker None) or a character's line."""
    text: str
    speaker: str | None = None


@dataclass
class Written:
    files: dict[str, bytes] = field(default_factory=dict)
    escapes: int = 0


def _escape_line(s: str, characters: set[str], w: Written) -> str:
    s2 = CONTROL_RE.sub("", s)   # the manuscript refuses control characters
    if re.match(r"#+\s", s2):
        s2 = s2.lstrip("#").lstrip()
    s2 = re.sub(r"\[(S[12])\]", r"\1", s2)
    for _ in range(8):   # "NOTE: x" -> "NOTE - x", until no speaker-looking prefix is left
        m = DIALOGUE_RE.match(s2)
        name = m.group("name").strip() if m and not s2.startswith("[") else ""
        if not name or not (name.casefold() in characters or (name.upper() == name and any(c.isalpha() for c in name))):
            break
        s2 = s2[:m.end("name")] + " -" + s2[m.end("name"):].lstrip()[1:]
    if SCENE_RE.match(s2.strip()):
        s2 = s2.replace("*", "").replace("#", "").replace("-", " ").strip() or "."
    if s2 != s:
        w.escapes += 1
    return s2


def _wrap(text: str) -> list[str]:
    out = []
    while len(text) > MAX_WRITTEN_LINE:
        cut = text.rfind(" ", 0, MAX_WRITTEN_LINE)
        cut = cut if cut > 0 else MAX_WRITTEN_LINE
        out.append(text[:cut])
        text = text[cut:].lstrip()
    out.append(text)
    return out


def manuscript_text(book: Book, lines_of, characters: set[str], w: Written) -> str:
    """``lines_of(para) -> list[Line]``: narration, or attributed lines with --cast."""
    chunks: list[str] = []
    for ch in book.chapters:
        title = " ".join(re.sub(r"\[(S[12])\]", r"\1", CONTROL_RE.sub("", ch.title)).split()).rstrip("#").strip() \
            or "Untitled"
        chunks.append(f"# {title}")
        paras = list(ch.paras)
        if ch.notes:
            paras.append(Para("section", "Notes."))
            paras.extend(Para("text", n) for n in ch.notes)
        for p in paras:
            if p.kind == "scene":
                chunks.append("* * *")
            elif p.kind == "section":
                chunks.append("### " + _escape_line(p.text, characters, w))
            else:
                for line in lines_of(p):
                    phys = _wrap(line.text)
                    if line.speaker:
                        phys[0] = f"{line.speaker}: {phys[0]}"
                        rest = [_escape_line(x, characters, w) for x in phys[1:]]
                        chunks.append("\n".join([phys[0], *rest]))
                    else:
                        chunks.append("\n".join(_escape_line(x, characters, w) for x in phys))
    return "\n\n".join(chunks) + "\n"


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)   # a JSON string is a YAML double-quoted scalar


def project_yaml(book: Book, source_name: str, cast: dict[str, int], cover_name: str | None, notes: list[str]) -> str:
    title = book.title or Path(source_name).stem
    author = book.author or "Unknown"
    lang = book.language if book.language and LANG_RE.fullmatch(book.language) else "en"
    if not book.title:
        notes.append(f"the book has no title in its metadata: {title!r} (the file name) used")
    if not book.author:
        notes.append("the book names no author: 'Unknown' written in project.yaml")
    if book.language and lang != book.language:
        notes.append(f"language {book.language!r} is not a language tag: 'en' written in project.yaml")
    out = [f"# Imported from {source_name} by `dia-studio import` (see import.md). Review, then:",
           "#   dia-studio plan project.yaml",
           f"title: {_q(title)}", f"author: {_q(author)}", f"language: {lang}"]
    if cover_name:
        out.append(f"cover: {cover_name}")
    out += ["manuscript: manuscript.md", "", "voices:", f"  {NARRATOR_VOICE}:", "    seed: 1"]
    voice_names = {}
    for i, name in enumerate(sorted(cast, key=lambda n: (-cast[n], n)), 2):
        voice = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-") or f"voice{i}"
        while voice in voice_names.values() or voice == NARRATOR_VOICE:
            voice += "-2"
        voice_names[name] = voice
        out += [f"  {voice}:", f"    seed: {i * 1000 + 7}"]
    out.append(f"narrator_voice: {NARRATOR_VOICE}")
    if cast:
        out.append("characters:   # suggested by import --cast: names found with their line counts")
        for name in sorted(cast, key=lambda n: (-cast[n], n)):
            out.append(f"  {_q(name)}: {voice_names[name]}   # {cast[name]} line{'s' if cast[name] != 1 else ''}")
    return "\n".join(out) + "\n"


def import_report(book: Book, source_name: str, source_format: str, sha: str, options: dict, files: list[str],
                  notes: list[str], attribution_rows: list[tuple] = ()) -> str:
    out = [f"<!-- dia-studio import: source-sha256={sha} files={','.join(files)} -->",
           f"# Import report: {book.title or source_name}", "",
           f"Source: `{source_name}` ({source_format}), sha256 `{sha}`.",
           "Options: " + ", ".join(f"{k}={v}" for k, v in options.items()) + ".", "",
           f"## Chapters ({len(book.chapters)})", "", "| # | title | from | words |", "|---|---|---|---|"]
    for i, ch in enumerate(book.chapters, 1):
        words = sum(word_count(p.text) for p in ch.paras if p.kind != "scene")
        out.append(f"| {i} | {_cell(ch.title)} | `{_cell(ch.source)}` | {words} |")
    out += ["", "## Left out of the reading", ""]
    if not book.left_out:
        out.append("Nothing.")
    for d in book.left_out:
        state = "**included** (--include)" if d.key in options.get("include", ()) else "left out"
        out.append(f"- `{d.key}`: {d.kind} ({d.evidence}; {d.words} words): {state}; "
                   f"to read it: `--include {_shell(d.key)}`")
    out += ["", "## Notes", ""]
    out += [f"- {n}" for n in notes] or ["Nothing."]
    if attribution_rows:
        out += ["", "## Dialogue attribution (--cast)", "",
                "Quotes attributed to a speaker became `NAME:` lines; unattributed quotes stayed narration.", "",
                "| chapter | speaker | confidence | evidence | line |", "|---|---|---|---|---|"]
        for chapter, speaker, conf, why, text in attribution_rows:
            out.append(f"| {chapter} | {speaker} | {conf:.2f} | {_cell(why)} | {_cell(text[:80])} |")
    return "\n".join(out) + "\n"


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _shell(s: str) -> str:
    return s if re.fullmatch(r"[\w./#-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def publish(out: Path, files: dict[str, bytes], sha: str) -> None:
    """Write ``files`` into ``out`` (see the module docstring for what is refused)."""
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", file=out, field="--out")
    existing = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if existing:
        try:
            report = (out / "import.md").read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            report = ""
        m = MARKER_RE.search(report)
        if not m or m.group(1) != sha:
            raise InputError("folder is not empty and holds no earlier import of this book: choose a new or "
                             "empty folder", file=out, field="--out")
        for name, data in files.items():
            write_bytes(out / name, data)
        for old in m.group(2).split(","):     # files the previous import wrote that this one does not
            if old and old not in files and "/" not in old and (out / old).is_file():
                (out / old).unlink()
        return
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".tmp-import-", dir=parent))
    except OSError as e:
        raise InputError(f"cannot write here: {e.strerror or e}", file=out, field="--out") from None
    try:
        for name, data in files.items():
            (stage / name).write_bytes(data)
            with open(stage / name, "rb+") as f:
                os.fsync(f.fileno())
        os.chmod(stage, 0o777 & ~_umask())
        if out.is_dir():
            out.rmdir()
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


__all__ = ["Line", "Written", "manuscript_text", "project_yaml", "import_report", "publish", "MARKER_RE"]
