"""Markdown and plain text -> Book.

Markdown: ATX headings (``#`` ...); the highest level used starts chapters, deeper ones are
section headings. Images, tables, code blocks and HTML tags are skipped with a note; links keep
their text; list and quote markers are dropped. Plain text: a short line such as ``Chapter 3``,
``CHAPTER IV. The Storm``, ``Part One``, ``Prologue`` or ``Epilogue`` standing alone starts a
chapter; without any, the file is one chapter. Chapters whose heading names left-out matter are
left out with a Decision, as is front matter before the first heading.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .book import SCENE_TEXT_RE, Book, Decision, DraftChapter, Para, matter_from_name, word_count

MAX_TEXT_BYTES = 64 * 1024 * 1024     # as for manuscripts
BEFORE_FIRST = "(before the first heading)"
MD_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
MD_IMAGE_RE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
MD_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
HTML_TAG_RE = re.compile(r"</?[A-Za-z][^>]{0,200}>")
LIST_RE = re.compile(r"^(?:[-+*][ \t]+|\d{1,3}[.)][ \t]+|>[ \t]?)+")
TEXT_CHAPTER_RE = re.compile(r"^(?:(?:chapter|part|book)\s+(?:\d+|[ivxlcdm]+|[a-z-]+)\b.{0,60}|prologue|epilogue"
                             r"|preface|foreword|afterword|introduction)\.?$", re.I)


def read_text_book(path: Path, label: str, *, markdown: bool, include: frozenset[str] = frozenset()) -> Book:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\x00" in raw:
        raise InputError("binary file (NUL bytes), not text", file=label)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})", file=label) from None
    if not text.strip():
        raise InputError("the file has no text", file=label)
    book = Book(format="Markdown" if markdown else "text")
    lines = text.splitlines()
    heads: list[tuple[int, int, str]] = []    # (line index, level, title)
    skipped = {"images": 0, "tables": 0, "code blocks": 0}
    body: list[tuple[int, str]] = []          # (line index, cleaned line); "" separates paragraphs
    fence = False
    for i, line in enumerate(lines):
        s = line.strip()
        if markdown:
            if s.startswith(("```", "~~~")):
                if not fence:
                    skipped["code blocks"] += 1
                fence = not fence
                continue
            if fence:
                continue
            m = MD_HEADING_RE.match(s)
            if m and m.group(2):
                heads.append((i, len(m.group(1)), m.group(2)))
                body.append((i, ""))
                continue
            if s.startswith("|"):
                skipped["tables"] += 1 if not (body and body[-1][1].startswith("|")) else 0
                body.append((i, "|"))
                continue
            skipped["images"] += len(MD_IMAGE_RE.findall(s))
            s = MD_LINK_RE.sub(r"\1", MD_IMAGE_RE.sub("", s))
            s = HTML_TAG_RE.sub("", s)
            if not SCENE_TEXT_RE.match(s):
                s = LIST_RE.sub("", s)
        elif s and TEXT_CHAPTER_RE.match(s) and (i == 0 or not lines[i - 1].strip()) and \
                (i + 1 >= len(lines) or not lines[i + 1].strip()):
            heads.append((i, 1, s))
            body.append((i, ""))
            continue
        body.append((i, s))
    body = [(i, "" if s == "|" else s) for i, s in body]
    chapter_level = min((lv for _, lv, _ in heads), default=None)
    head_at = {i: (lv, t) for i, lv, t in heads}
    front = DraftChapter(BEFORE_FIRST, "line 1")
    cur = front if chapter_level else DraftChapter(path.stem, "the whole file")
    chapters = [cur]
    para: list[str] = []

    def end_para():
        t = " ".join(" ".join(para).split())
        para.clear()
        if not t:
            return
        if SCENE_TEXT_RE.match(t):
            if cur.paras and cur.paras[-1].kind != "scene":
                cur.paras.append(Para("scene"))
        else:
            cur.paras.append(Para("text", t))

    for i, s in body:
        if i in head_at:
            end_para()
            lv, title = head_at[i]
            if lv == chapter_level:
                cur = DraftChapter(title, f"line {i + 1}")
                chapters.append(cur)
            else:
                cur.paras.append(Para("section", title))
            continue
        if not s:
            end_para()
        else:
            para.append(s)
    end_para()
    for ch in chapters:
        kind = "front matter before the first chapter heading" if ch is front else matter_from_name(ch.title)
        if ch is front and not ch.has_text():
            continue
        if kind:
            book.left_out.append(Decision(ch.title, kind, "position" if ch is front else f"heading {ch.title!r}",
                                          sum(word_count(p.text) for p in ch.paras)))
            if ch.title not in include:
                continue
        if ch.has_text():
            book.chapters.append(ch)
        else:
            book.notes.append(f"{ch.source}: {ch.title!r} has no text: left out")
    book.notes.extend(f"{n} {what} skipped" for what, n in skipped.items() if n)
    return book


__all__ = ["read_text_book", "MAX_TEXT_BYTES"]
