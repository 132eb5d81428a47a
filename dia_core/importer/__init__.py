"""`dia-studio import`: a book (EPUB 2/3, DOCX, Markdown, plain text) -> a project folder a producer
can review and render (project.yaml, manuscript.md, import.md, the cover).

Readers: ``epub`` (ebooklib + lxml), ``docx`` (python-docx), ``plaintext``; all ZIP containers pass
``archive.open_checked_zip`` first and all XML goes through ``safexml``. ``writer`` turns the Book
into files and publishes them; ``attribution`` (``--cast``) turns quoted speech into ``NAME:`` lines.
PDF is refused: its text has no reliable reading order, paragraphs or headings to recover honestly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..files import file_sha256
from .book import Book
from .writer import Line, Written, import_report, manuscript_text, project_yaml, publish

MAX_BOOK_BYTES = 200 * 1024 * 1024
MAX_TEXT_BYTES = 64 * 1024 * 1024
FOOTNOTE_MODES = ("drop", "read")


@dataclass
class ImportResult:
    out: Path
    book: Book
    files: list[str]
    attributed: int = 0


def _sniff(path: Path, label: str) -> str:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InputError(f"cannot read the book: {e.strerror or e}", file=label) from None
    if not path.is_file():
        raise InputError("not a file", file=label)
    if size == 0:
        raise InputError("empty file", file=label)
    suffix = path.suffix.lower()
    if head.startswith(b"%PDF"):
        raise InputError("PDF is not imported (its text has no reliable paragraphs, headings or reading order): "
                         "export the book as EPUB, DOCX or plain text", file=label)
    if head.startswith(b"PK"):
        if size > MAX_BOOK_BYTES:
            raise InputError(f"the book is {size} bytes (limit {MAX_BOOK_BYTES})", file=label)
        return "docx" if suffix == ".docx" else "epub"
    if suffix in (".epub", ".docx"):
        kind = "an EPUB" if suffix == ".epub" else "a DOCX"
        raise InputError(f"not a ZIP archive, so not {kind} (it starts with {head[:4]!r})", file=label)
    if size > MAX_TEXT_BYTES:
        raise InputError(f"text file is {size} bytes (limit {MAX_TEXT_BYTES}); split the book into smaller files",
                         file=label)
    return "markdown" if suffix in (".md", ".markdown") else "text"


def read_book(path: Path, label: str, *, footnotes: str = "drop", include: frozenset[str] = frozenset()) -> Book:
    kind = _sniff(path, label)
    if kind == "epub":
        from .epub import read_epub  # noqa: PLC0415 - ebooklib is only imported for EPUBs
        return read_epub(path, label, footnotes=footnotes, include=include)
    if kind == "docx":
        from .docx import read_docx  # noqa: PLC0415
        return read_docx(path, label, include=include)
    from .plaintext import read_text_book  # noqa: PLC0415
    return read_text_book(path, label, markdown=kind == "markdown", include=include)


def _narration(para) -> list[Line]:
    return [Line(para.text)]


def import_book(source: str | Path, out: str | Path, *, footnotes: str = "drop", include=(), cast: bool = False
                ) -> ImportResult:
    """Import ``source`` into the project folder ``out``. InputError on bad input (nothing written)."""
    path, out = Path(source), Path(out)
    label = str(source)
    if footnotes not in FOOTNOTE_MODES:
        raise InputError(f"must be one of {', '.join(FOOTNOTE_MODES)}", field="--footnotes")
    include = frozenset(include)
    book = read_book(path, label, footnotes=footnotes, include=include)
    unknown = sorted(include - {d.key for d in book.left_out})
    if unknown:
        keys = ", ".join(d.key for d in book.left_out) or "nothing was left out"
        raise InputError(f"{unknown[0]!r} is not something the import left out ({keys})", field="--include")
    if not book.chapters:
        raise InputError("no chapter with text found (everything was front or back matter, or empty; see "
                         "--include)", file=label)
    sha = file_sha256(path)
    notes = list(book.notes)
    rows: list[tuple] = []
    counts: dict[str, int] = {}
    lines_of = _narration
    if cast:
        from .attribution import Attributor  # noqa: PLC0415
        attributor = Attributor(book)
        lines_of, counts, rows = attributor.lines, attributor.counts, attributor.rows
    w = Written()
    cover_name = f"cover{book.cover[1]}" if book.cover else None
    manuscript = manuscript_text(book, lines_of, {n.casefold() for n in counts}, w)
    if w.escapes:
        notes.append(f"{w.escapes} line(s) changed so the manuscript parser reads them as text (a leading '#', "
                     "an ALL-CAPS 'WORD:' that would be a speaker, a [S1]/[S2] tag)")
    files = {"manuscript.md": manuscript.encode()}
    if cover_name:
        files[cover_name] = book.cover[0]
    files["project.yaml"] = project_yaml(book, path.name, counts, cover_name, notes).encode()
    names = sorted([*files, "import.md"])
    options = {"footnotes": footnotes, "include": sorted(include), "cast": "on" if cast else "off"}
    files["import.md"] = import_report(book, path.name, book.format, sha, options, names, notes, rows).encode()
    publish(out, files, sha)
    return ImportResult(out, book, names, sum(counts.values()))


__all__ = ["import_book", "read_book", "ImportResult", "FOOTNOTE_MODES"]
