"""What a reader (EPUB, DOCX, Markdown, text) makes of a book, before it is written as a project."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Paragraph texts that are scene breaks in every format.
SCENE_TEXT_RE = re.compile(r"^[\s*·•~#⁂§◆◇●○✦✧❖–—-]+$")

# Matter left out of the reading by default, by the names EPUB uses for it (epub:type, landmarks,
# guide) or that a heading gives it (heuristics). Preface, foreword, prologue, epilogue and
# afterword are read.
LEFT_OUT_TYPES = {
    "cover": "cover", "titlepage": "title page", "title-page": "title page", "halftitlepage": "half-title page",
    "copyright-page": "copyright page", "copyright": "copyright page", "imprint": "copyright page",
    "colophon": "colophon", "toc": "table of contents", "landmarks": "table of contents",
    "loi": "list of illustrations", "lot": "list of tables", "page-list": "list of pages",
    "dedication": "dedication", "acknowledgments": "acknowledgements", "acknowledgements": "acknowledgements",
    "index": "index", "bibliography": "bibliography", "footnotes": "notes", "endnotes": "notes",
    "rearnotes": "notes", "notes": "notes", "other-credits": "credits", "contributors": "credits",
    "seriespage": "series page", "errata": "errata",
}
# Headings, titles and file names that name left-out matter (the fallback heuristics).
MATTER_NAME_RE = [
    (re.compile(r"^(?:book\s*)?cover(?:\s*(?:page|image))?$", re.I), "cover"),
    (re.compile(r"^(?:half[\s-]*)?title[\s_-]*page$|^titlepage$", re.I), "title page"),
    (re.compile(r"^copyright(?:\s*page)?$|^copyright\b.{0,40}$", re.I), "copyright page"),
    (re.compile(r"^(?:table\s+of\s+)?contents$|^toc$", re.I), "table of contents"),
    (re.compile(r"^dedication$", re.I), "dedication"),
    (re.compile(r"^acknowledge?ments?$", re.I), "acknowledgements"),
    (re.compile(r"^index$", re.I), "index"),
    (re.compile(r"^colophon$", re.I), "colophon"),
    (re.compile(r"^(?:foot|end)?notes$", re.I), "notes"),
    (re.compile(r"^(?:bibliography|references|works cited|further reading)$", re.I), "bibliography"),
]


def matter_from_name(name: str) -> str | None:
    """The kind of left-out matter a heading or file stem names, or None."""
    s = re.sub(r"[_\-.]+", " ", name or "").strip()
    s = re.sub(r"^\d+\s*", "", s)
    for rx, kind in MATTER_NAME_RE:
        if rx.search(s):
            return kind
    return None


@dataclass
class Para:
    kind: str        # "text" | "section" (a heading inside a chapter) | "scene"
    text: str = ""


@dataclass
class DraftChapter:
    title: str
    source: str                       # where it came from: "OEBPS/ch1.xhtml", "heading at paragraph 12"
    paras: list[Para] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # footnotes/endnotes found inside it

    def has_text(self) -> bool:
        return any(p.kind == "text" for p in self.paras)


@dataclass
class Decision:
    """Something left out of the reading, and how to take it back in (``--include KEY``)."""
    key: str        # what --include takes: an EPUB document's path, a DOCX/text heading
    kind: str       # "title page", "dedication", "not linear", ...
    evidence: str   # "epub:type", "landmarks", "guide", "heading", "content: ©/ISBN", ...
    words: int


@dataclass
class Book:
    format: str                       # "EPUB 3", "EPUB 2", "DOCX", "Markdown", "text"
    title: str | None = None
    author: str | None = None
    language: str | None = None
    cover: tuple[bytes, str] | None = None    # (image bytes, ".jpg" | ".png")
    chapters: list[DraftChapter] = field(default_factory=list)
    left_out: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # skipped images/tables, footnotes, other remarks


def word_count(text: str) -> int:
    return len(text.split())


__all__ = ["Book", "DraftChapter", "Para", "Decision", "SCENE_TEXT_RE", "LEFT_OUT_TYPES", "matter_from_name",
           "word_count"]
