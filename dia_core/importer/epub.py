"""EPUB 2 and 3 -> Book: metadata, spine and table of contents through ebooklib, each XHTML
document through the safe lxml parser (safexml), after archive.py has checked the ZIP.

Chapters follow the table of contents (EPUB 3 nav, else the NCX): each entry that points to a
spine document (or, at the top level, to an anchor inside one) starts a chapter with the entry's
title; a spine document the TOC does not name continues the chapter before it unless it opens
with a heading. Front and back matter is recognized, in this order, from ``epub:type`` on the
document's body or first section, the EPUB 3 landmarks, the EPUB 2 guide, then headings, file
names and content (a short page with ©/ISBN/"All rights reserved"; a page that is mostly links;
a page with an image and no text), and left out with a Decision. Spine items marked
``linear="no"`` are left out too.
"""
from __future__ import annotations

import posixpath
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from ..errors import InputError
from .archive import open_checked_zip
from .book import LEFT_OUT_TYPES, SCENE_TEXT_RE, Book, Decision, DraftChapter, Para, matter_from_name, word_count
from .safexml import local, parse_xml

OPS_TYPE = "{http://www.idpf.org/2007/ops}type"
XMLENC = "{http://www.w3.org/2001/04/xmlenc#}"
# Font obfuscation (IDPF and Adobe): not DRM, the only encryption a readable book may carry.
FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
FONT_SUFFIXES = (".ttf", ".otf", ".woff", ".woff2", ".eot", ".pfb", ".pfm")
SKIP_TAGS = {"script", "style", "head", "title", "math", "object", "video", "audio", "iframe", "template",
             "noscript", "nav", "button", "input", "select", "textarea", "form"}
BLOCK_TAGS = {"p", "div", "section", "article", "aside", "blockquote", "li", "ul", "ol", "dl", "dt", "dd",
              "h1", "h2", "h3", "h4", "h5", "h6", "header", "footer", "figure", "figcaption", "pre", "table",
              "hr", "main", "body", "hgroup", "address", "center", "svg"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
NOTE_TYPES = {"footnote", "endnote", "rearnote", "note", "footnotes", "endnotes", "rearnotes"}
NOTE_ROLES = {"doc-footnote", "doc-endnote", "doc-endnotes", "doc-footnotes"}
KEEP_TYPES = {"bodymatter", "chapter", "text", "preface", "foreword", "prologue", "epilogue", "afterword",
              "introduction", "part", "division", "volume", "conclusion"}
COPYRIGHT_RE = re.compile(r"©|\(c\)\s*\d{4}|all rights reserved|\bISBN\b", re.I)


@dataclass
class TocEntry:
    title: str
    file: str          # relative to the OPF folder, as ebooklib names items
    fragment: str | None
    depth: int
    parent_file: str | None


def _starts_chapter(e: TocEntry, file: str, depth: int) -> bool:
    """A TOC entry starts a chapter when it names a whole document, sits at most ``depth`` deep, or
    its parent entry is in another document; deeper anchors inside one document are sections."""
    return e.fragment is None or e.depth <= depth or e.parent_file != file


def _types(el) -> set[str]:
    return set((el.get(OPS_TYPE) or "").split()) | {r.removeprefix("doc-") for r in (el.get("role") or "").split()}


def _split_href(href: str, base: str) -> tuple[str, str | None]:
    path, _, frag = (href or "").partition("#")
    path = posixpath.normpath(posixpath.join(base, unquote(path))) if path else ""
    return path, (frag or None)


def _check_drm(zf, label: str) -> list[str]:
    """Refuse a book with encrypted content; allow obfuscated fonts (returned, for the report)."""
    try:
        data = zf.read("META-INF/encryption.xml")
    except KeyError:
        return []
    root = parse_xml(data, label, "META-INF/encryption.xml")
    fonts, refused = [], []
    for ed in root.iter(XMLENC + "EncryptedData"):
        method = ed.find(XMLENC + "EncryptionMethod")
        algo = method.get("Algorithm", "") if method is not None else ""
        ref = ed.find(f"{XMLENC}CipherData/{XMLENC}CipherReference")
        uri = unquote(ref.get("URI", "")) if ref is not None else ""
        if algo in FONT_OBFUSCATION and uri.lower().endswith(FONT_SUFFIXES):
            fonts.append(uri)
        else:
            refused.append((uri or "?", algo or "no algorithm"))
    if refused:
        uri, algo = refused[0]
        more = f" and {len(refused) - 1} more" if len(refused) > 1 else ""
        raise InputError(f"DRM: the book's content is encrypted ({uri}, {algo}{more}); only font obfuscation "
                         "can be imported: use a DRM-free copy", file=label)
    return fonts


def read_epub(path: Path, label: str, *, footnotes: str = "drop", include: frozenset[str] = frozenset()) -> Book:
    with open_checked_zip(path, label, "EPUB") as zf:
        names = set(zf.namelist())
        if "META-INF/container.xml" not in names:
            what = "a DOCX" if "word/document.xml" in names else "a ZIP archive"
            raise InputError(f"not an EPUB: {what} without META-INF/container.xml", file=label)
        fonts = _check_drm(zf, label)
    from ebooklib import epub  # noqa: PLC0415 - only after the archive passed its checks
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eb = epub.read_epub(str(path), {"ignore_ncx": True})
    except Exception as e:  # ebooklib raises anything from KeyError to AttributeError on a broken OPF
        raise InputError(f"not a readable EPUB ({type(e).__name__}: {str(e).strip()[:200]})", file=label) from None
    return _EpubReader(eb, label, footnotes, fonts, include).read()


class _EpubReader:
    def __init__(self, eb, label: str, footnotes: str, fonts: list[str], include: frozenset[str]):
        self.eb = eb
        self.include = include
        self.label = label
        self.footnotes = footnotes
        version = str(getattr(eb, "version", "") or "")
        self.book = Book(format="EPUB 3" if version.startswith("3") else "EPUB 2")
        if fonts:
            self.book.notes.append(f"{len(fonts)} obfuscated font(s) ignored (font obfuscation is not DRM)")
        self.images: list[str] = []
        self.tables: list[str] = []
        self.notes_found = 0

    # ---- metadata ----
    def _dc(self, name: str) -> str | None:
        for value, _ in self.eb.get_metadata("DC", name):
            if value and value.strip():
                return " ".join(value.split())
        return None

    def metadata(self) -> None:
        b = self.book
        b.title, b.author, b.language = self._dc("title"), self._dc("creator"), self._dc("language")
        import ebooklib  # noqa: PLC0415
        cover = None
        for item in self.eb.get_items():
            if item.get_type() == ebooklib.ITEM_COVER or "cover-image" in (getattr(item, "properties", None) or []):
                cover = item
                break
        if cover is None:
            # EPUB 2: <meta name="cover" content="ID"/> (ebooklib files it under "meta" or "cover")
            metas = self.eb.get_metadata("OPF", "cover") + self.eb.get_metadata("OPF", "meta")
            for _, attrs in metas:
                if not attrs or attrs.get("name", "cover") != "cover":
                    continue
                cover = self.eb.get_item_with_id(attrs.get("content", ""))
                if cover is not None:
                    break
        if cover is not None:
            data = cover.content or b""
            ext = ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else None
            if ext:
                b.cover = (data, ext)
            else:
                b.notes.append(f"cover {cover.get_name()} is not JPEG or PNG: not used")

    # ---- navigation ----
    def toc(self) -> list[TocEntry]:
        from ebooklib import epub  # noqa: PLC0415
        nav = next((i for i in self.eb.get_items() if isinstance(i, epub.EpubNav)), None)
        ncx = next((i for i in self.eb.get_items() if isinstance(i, epub.EpubNcx)), None)
        # nav hrefs come normalized against the OPF folder; NCX ones are relative to the NCX file
        base = "" if nav is not None else posixpath.dirname(ncx.get_name()) if ncx is not None else ""
        out: list[TocEntry] = []

        def walk(entries, depth, parent_file):
            for e in entries:
                node, children = (e if isinstance(e, tuple) else (e, []))
                href = getattr(node, "href", "") or ""
                title = " ".join((getattr(node, "title", "") or "").split())
                file, frag = _split_href(href, base) if href else ("", None)
                if file:
                    out.append(TocEntry(title, file, frag, depth, parent_file))
                walk(children, depth + 1, file or parent_file)
        walk(self.eb.toc or [], 0, None)
        return out

    def landmarks(self) -> dict[str, str]:
        from ebooklib import epub  # noqa: PLC0415
        out: dict[str, str] = {}
        for item in self.eb.get_items():
            if not isinstance(item, epub.EpubNav):
                continue
            root = parse_xml(item.content, self.label, item.get_name())
            base = posixpath.dirname(item.get_name())
            for nav in root.iter("{*}nav"):
                if "landmarks" not in _types(nav):
                    continue
                for a in nav.iter("{*}a"):
                    file, _ = _split_href(a.get("href", ""), base)
                    for t in _types(a):
                        out.setdefault(file, t)
        return out

    def guide(self) -> dict[str, str]:
        out = {}
        for ref in getattr(self.eb, "guide", None) or []:
            file, _ = _split_href(ref.get("href") or "", "")
            if file and ref.get("type"):
                out.setdefault(file, ref["type"].lower())
        return out

    # ---- documents ----
    def read(self) -> Book:
        from ebooklib import epub  # noqa: PLC0415
        self.metadata()
        toc = self.toc()
        landmarks, guide = self.landmarks(), self.guide()
        nav_files = {i.get_name() for i in self.eb.get_items() if isinstance(i, epub.EpubNav)}
        by_file: dict[str, list[TocEntry]] = {}
        for e in toc:
            by_file.setdefault(e.file, []).append(e)
        carried: list[Para] = []   # headings of part pages, read at the start of the next chapter
        carried_from: list[str] = []
        depth = self.chapter_depth(toc)
        for idref, linear in self.eb.spine:
            item = self.eb.get_item_with_id(idref)
            if item is None or not isinstance(item, (epub.EpubHtml, epub.EpubNav)) and \
                    getattr(item, "media_type", "") != "application/xhtml+xml":
                continue
            name = item.get_name()
            if not (item.content or b"").strip():
                self.book.notes.append(f"{name}: an empty document in the spine: skipped")
                continue
            root = parse_xml(item.content, self.label, name)
            body = next(root.iter("{*}body"), None)
            if body is None:
                self.book.notes.append(f"{name}: no <body>: skipped")
                continue
            entries = by_file.get(name, [])
            starts = [e for e in entries if _starts_chapter(e, name, depth)]
            kind, evidence = self.classify(name, body, entries, landmarks, guide, nav_files)
            words = word_count(" ".join(body.itertext()))
            if kind is None and str(linear).lower() == "no":
                kind, evidence = "not in the linear reading order", "spine linear=\"no\""
            if kind is not None:
                self.book.left_out.append(Decision(name, kind, evidence, words))
                if name not in self.include:
                    continue
            file_title = next((e.title for e in starts if e.fragment is None), None) or \
                (starts[0].title if starts else None)
            split_ids = {e.fragment: e.title for e in starts if e.fragment and e.title != file_title}
            chapters = self.document(name, body, file_title, split_ids)
            for ch in chapters:
                kind = matter_from_name(ch.title or "") if "#" in ch.source else None
                if kind:   # a chapter cut out of a document at a TOC anchor, named like front/back matter
                    self.book.left_out.append(Decision(ch.source, kind, f"TOC title {ch.title!r}",
                                                       sum(word_count(p.text) for p in ch.paras)))
                    if ch.source not in self.include:
                        continue
                if ch.title is None and self.book.chapters and not (ch.paras and ch.paras[0].kind == "section"):
                    prev = self.book.chapters[-1]   # a TOC-less continuation file
                    prev.paras.extend(ch.paras)
                    prev.notes.extend(ch.notes)
                    continue
                if ch.title is None:
                    ch.title = self._first_heading(ch) or f"Chapter {len(self.book.chapters) + 1}"
                self._drop_title_headings(ch)
                if not ch.has_text():
                    carried.append(Para("section", ch.title))
                    carried.extend(p for p in ch.paras if p.kind == "section")
                    carried_from.append(f"{ch.source}: {ch.title!r}")
                    continue
                if carried_from:
                    self.book.notes.append(f"{'; '.join(carried_from)}: no text of its own: its title is read at the "
                                           f"start of the next chapter ({ch.title!r})")
                    carried_from = []
                ch.paras[:0] = carried
                carried = []
                self.book.chapters.append(ch)
        if carried_from:
            self.book.notes.append(f"{'; '.join(carried_from)}: no text of its own, and no chapter after it: left out")
        if self.images:
            self.book.notes.append(f"{len(self.images)} image(s) skipped; alt text not read: "
                                   + "; ".join(self.images[:20]) + (" ..." if len(self.images) > 20 else ""))
        if self.tables:
            self.book.notes.append(f"{len(self.tables)} table(s) skipped: " + ", ".join(sorted(set(self.tables))))
        if self.notes_found:
            how = "read at the end of their chapter" if self.footnotes == "read" else \
                "dropped (read them with --footnotes read)"
            self.book.notes.append(f"{self.notes_found} footnote(s)/endnote(s) {how}")
        return self.book

    @staticmethod
    def chapter_depth(toc: list[TocEntry]) -> int:
        """The TOC depth whose anchors still start chapters: 0 (the top level), one deeper while the
        TOC would otherwise give the whole book as one chapter (a single top entry over everything)."""
        depth = 0
        max_depth = max((e.depth for e in toc), default=0)
        while depth < max_depth and len({(e.file, e.fragment) for e in toc if _starts_chapter(e, e.file, depth)}) <= 1:
            depth += 1
        return depth

    def classify(self, name, body, entries, landmarks, guide, nav_files) -> tuple[str | None, str]:
        types = _types(body)
        first = next((c for c in body if isinstance(c.tag, str)), None)
        if first is not None:
            types |= _types(first)
        if types & KEEP_TYPES and not types & set(LEFT_OUT_TYPES):
            return None, ""
        for t in sorted(types):
            if t in LEFT_OUT_TYPES:
                return LEFT_OUT_TYPES[t], f"epub:type {t}"
        for src, where in ((landmarks, "landmarks"), (guide, "guide")):
            t = src.get(name)
            if t in LEFT_OUT_TYPES:
                return LEFT_OUT_TYPES[t], f"{where} {t}"
            if t in KEEP_TYPES:
                return None, ""
        if name in nav_files:
            return "table of contents", "the EPUB 3 navigation document"
        heading = next((" ".join("".join(h.itertext()).split()) for h in body.iter() if local(h.tag) in HEADINGS),
                       "")
        for what, how in ((entries[0].title if entries else "", "TOC title"), (heading, "heading"),
                          (posixpath.splitext(posixpath.basename(name))[0], "file name")):
            kind = matter_from_name(what)
            if kind:
                return kind, f"{how} {what!r}"
        text = " ".join(" ".join(body.itertext()).split())
        words = word_count(text)
        if words < 400 and COPYRIGHT_RE.search(text):
            return "copyright page", "content: ©/ISBN/all rights reserved"
        links = sum(word_count(" ".join(a.itertext())) for a in body.iter("{*}a"))
        if words >= 3 and links >= 0.6 * words and len(list(body.iter("{*}a"))) >= 3:
            return "table of contents", "content: mostly links"
        if words == 0 and any(local(e.tag) in ("img", "image") for e in body.iter()):
            return "cover", "content: an image and no text"
        return None, ""

    @staticmethod
    def _first_heading(ch: DraftChapter) -> str | None:
        for i, p in enumerate(ch.paras):
            if p.kind == "section":
                del ch.paras[i]
                return p.text
            if p.kind == "text":
                return None
        return None

    @staticmethod
    def _drop_title_headings(ch: DraftChapter) -> None:
        """Headings before the first text that only repeat the TOC title ('Chapter 1' + 'The Letter'
        under the TOC's 'Chapter 1: The Letter') are the title itself: not read twice."""
        title_words = set(re.findall(r"\w+", ch.title.casefold()))
        while ch.paras and ch.paras[0].kind == "section" and \
                set(re.findall(r"\w+", ch.paras[0].text.casefold())) <= title_words:
            del ch.paras[0]

    def document(self, name: str, body, title: str | None, split_ids: dict[str, str]) -> list[DraftChapter]:
        chapters = [DraftChapter(title, name)]
        walker = _Walker(self, name, chapters, split_ids)
        walker.walk(body)
        walker.flush()
        return chapters


class _Walker:
    """Block-level walk of one XHTML body into paragraphs, section headings and scene breaks."""

    def __init__(self, reader: _EpubReader, name: str, chapters: list[DraftChapter], split_ids: dict[str, str]):
        self.r = reader
        self.name = name
        self.chapters = chapters
        self.split_ids = split_ids
        self.pending: list[str] = []

    @property
    def cur(self) -> DraftChapter:
        return self.chapters[-1]

    def flush(self) -> None:
        text = " ".join(" ".join(self.pending).split())
        self.pending = []
        if not text:
            return
        if SCENE_TEXT_RE.match(text):
            self.scene()
        else:
            self.cur.paras.append(Para("text", text))

    def scene(self) -> None:
        if self.cur.paras and self.cur.paras[-1].kind != "scene":
            self.cur.paras.append(Para("scene"))

    def is_note(self, el) -> bool:
        return bool(_types(el) & NOTE_TYPES) or (el.get("role") or "") in NOTE_ROLES

    def walk(self, el) -> None:
        tag = local(el.tag)
        if not tag or tag in SKIP_TAGS:
            return
        el_id = el.get("id")
        if el_id and el_id in self.split_ids:
            self.flush()
            self.chapters.append(DraftChapter(self.split_ids.pop(el_id), f"{self.name}#{el_id}"))
        if self.is_note(el):
            self.flush()
            self.r.notes_found += 1
            text = self.inline(el, notes=True)
            if text and self.r.footnotes == "read":
                self.cur.notes.append(text)
            return
        if tag == "table":
            self.flush()
            self.r.tables.append(self.name)
            return
        if tag == "hr":
            self.flush()
            self.scene()
            return
        if tag in ("img", "image") or tag == "svg":
            self.flush()
            self._image(el)
            return
        if tag in HEADINGS:
            self.flush()
            text = self.inline(el)
            if text:
                self.cur.paras.append(Para("section", text))
            return
        if not any(local(c.tag) in BLOCK_TAGS or (isinstance(c.tag, str) and self.is_note(c)) for c in el):
            self.flush()
            self.pending.append(self.inline(el))
            self.flush()
            return
        if el.text:
            self.pending.append(el.text)
        for c in el:
            if local(c.tag) in BLOCK_TAGS or (isinstance(c.tag, str) and self.is_note(c)) \
                    or (isinstance(c.tag, str) and c.get("id") in self.split_ids):
                self.flush()
                self.walk(c)
            else:
                self.pending.append(self.inline(c))
            if c.tail:
                self.pending.append(c.tail)
        self.flush()

    def _image(self, el) -> None:
        for e in el.iter():
            if local(e.tag) in ("img", "image"):
                alt = " ".join((e.get("alt") or "").split())
                self.r.images.append(f"{self.name}" + (f" ({alt!r})" if alt else ""))

    def is_noteref(self, el) -> bool:
        if _types(el) & {"noteref", "backlink", "referrer"}:
            return True
        tag = local(el.tag)
        if tag == "a" and (el.get("href") or "").partition("#")[2]:
            text = "".join(el.itertext()).strip()
            return bool(re.fullmatch(r"[\[(]?[\d*†‡§a-z]{1,3}[\])]?|↩\ufe0e?|\^", text)) and \
                (any(local(p.tag) == "sup" for p in el.iterancestors()) or any(local(c.tag) == "sup" for c in el.iter())
                 or text.startswith("↩"))
        return False

    def inline(self, el, notes: bool = False) -> str:
        """The text of an inline subtree: emphasis flattened, note markers, images and scripts dropped."""
        parts: list[str] = []

        def rec(e):
            tag = local(e.tag)
            if tag in SKIP_TAGS or (tag and self.is_noteref(e)) or tag == "table":
                if tag == "table":
                    self.r.tables.append(self.name)
                return
            if tag in ("img", "image", "svg"):
                self._image(e)
                return
            if tag == "br":
                parts.append(" ")
            elif e.text and tag:
                parts.append(e.text)
            for c in e:
                rec(c)
                if c.tail:
                    parts.append(c.tail)
        rec(el)
        return " ".join("".join(parts).split())


__all__ = ["read_epub"]
