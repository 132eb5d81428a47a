"""DOCX -> Book through python-docx, after archive.py has checked the ZIP.

Chapters start at the highest heading level the document uses (``Heading 1``, else ``Heading 2``
...); deeper headings are section headings. A ``Title`` paragraph is the book's title when the
core properties have none. Text before the first chapter heading (title page, copyright) and
chapters whose heading names left-out matter (Contents, Dedication, Acknowledgements, Index...)
are left out with a Decision; ``TOC n`` paragraphs (Word's table of contents) are dropped.
Tables and pictures are skipped with a note; footnotes are not read (python-docx does not expose
them) and are counted in the report.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .archive import open_checked_zip
from .book import SCENE_TEXT_RE, Book, Decision, DraftChapter, Para, matter_from_name, word_count

HEADING_RE = re.compile(r"^heading\s*(\d)$", re.I)
BEFORE_FIRST = "(before the first heading)"
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def read_docx(path: Path, label: str, *, include: frozenset[str] = frozenset()) -> Book:
    with open_checked_zip(path, label, "DOCX") as zf:
        names = set(zf.namelist())
    if "word/document.xml" not in names or "[Content_Types].xml" not in names:
        raise InputError("not a DOCX: a ZIP archive without word/document.xml and [Content_Types].xml", file=label)
    import docx  # noqa: PLC0415 - only after the archive passed its checks
    try:
        doc = docx.Document(str(path))
    except Exception as e:  # python-docx raises KeyError, ValueError, lxml errors on broken parts
        raise InputError(f"not a readable DOCX ({type(e).__name__}: {str(e).strip()[:200]})", file=label) from None
    book = Book(format="DOCX")
    cp = doc.core_properties
    book.title = (cp.title or "").strip() or None
    book.author = (cp.author or "").strip() or None
    book.language = (cp.language or "").strip() or None

    paras = []   # (level or None, text): level 0 = Title style
    footnote_refs = pictures = toc_lines = 0
    for p in doc.paragraphs:
        style = (p.style.name if p.style is not None else "") or ""
        footnote_refs += len(p._p.findall(f".//{W}footnoteReference")) + len(p._p.findall(f".//{W}endnoteReference"))
        pictures += len(p._p.findall(f".//{W}drawing")) + len(p._p.findall(f".//{W}pict"))
        if style.lower().startswith("toc"):
            toc_lines += 1
            continue
        text = " ".join(p.text.split())
        if not text:
            continue
        m = HEADING_RE.match(style)
        level = 0 if style.lower() == "title" else int(m.group(1)) if m else None
        paras.append((level, text))
    levels = [lv for lv, _ in paras if lv]
    chapter_level = min(levels) if levels else None
    if book.title is None:
        book.title = next((t for lv, t in paras if lv == 0), None)

    chapters: list[DraftChapter] = []
    front = DraftChapter(BEFORE_FIRST, BEFORE_FIRST)
    cur = front if chapter_level else DraftChapter(book.title or path.stem, "the whole document")
    all_chapters = [cur]
    for i, (level, text) in enumerate(paras, 1):
        if level == 0:
            continue
        if level is not None and level == chapter_level:
            cur = DraftChapter(text, f"heading at paragraph {i}")
            all_chapters.append(cur)
        elif level is not None:
            cur.paras.append(Para("section", text))
        elif SCENE_TEXT_RE.match(text):
            if cur.paras and cur.paras[-1].kind != "scene":
                cur.paras.append(Para("scene"))
        else:
            cur.paras.append(Para("text", text))
    for ch in all_chapters:
        words = sum(word_count(p.text) for p in ch.paras)
        kind = "front matter before the first chapter heading" if ch is front else matter_from_name(ch.title)
        if ch is front and not ch.has_text():
            continue
        if kind:
            evidence = "position" if ch is front else f"heading {ch.title!r}"
            book.left_out.append(Decision(ch.title, kind, evidence, words))
            if ch.title not in include:
                continue
        if ch.has_text():
            chapters.append(ch)
        else:
            book.notes.append(f"{ch.source}: {ch.title!r} has no text: left out")
    book.chapters = chapters
    if toc_lines:
        book.notes.append(f"{toc_lines} table-of-contents line(s) (TOC styles) dropped")
    if doc.tables:
        book.notes.append(f"{len(doc.tables)} table(s) skipped")
    if pictures:
        book.notes.append(f"{pictures} picture(s) skipped")
    if footnote_refs:
        book.notes.append(f"{footnote_refs} footnote/endnote reference(s): DOCX notes are not read (dropped)")
    return book


__all__ = ["read_docx", "BEFORE_FIRST"]
