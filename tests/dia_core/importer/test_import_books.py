"""`dia-studio import` on small EPUB 2, EPUB 3, DOCX and Markdown books built here: chapters, titles,
order, what was left out, the report, determinism, and every word of the reading text in the plan."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dia_core.errors import InputError
from dia_core.importer import import_book
from dia_core.script.planner import plan_project
from dia_core.script.project import load_project
from flows.cli import main

from .books import EPUB2_CHAPTERS, EPUB3_CHAPTERS, epub2_files, epub3_files, write_zip

FONT_ONLY_ENCRYPTION = """<?xml version="1.0"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
 <enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>
  <enc:CipherData><enc:CipherReference URI="OEBPS/fonts/serif.otf"/></enc:CipherData></enc:EncryptedData>
</encryption>"""

DOCX_CHAPTERS = {
    "The First Morning": ["Ada woke before the bells and walked to the river.",
                          "The water was high after the rain of the week before."],
    "The Second Morning": ["Nobody came to the river that day.", "The ferry stayed tied to its post until noon."],
}


def _words(text: str) -> list[str]:
    text = re.sub(r"\[S[12]\]", " ", text)   # the speaker tags of a segment are not the book's words
    return re.findall(r"[\w’']+", text.replace("’", "'").casefold())


def _plan_words(project_yaml: Path) -> list[list[str]]:
    plan = plan_project(load_project(project_yaml))
    return [_words(" ".join(s.display_text for s in ch.segments)) for ch in plan.chapters], plan


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    root = tmp_path_factory.mktemp("books")
    out = {"epub3": write_zip(root / "keeper.epub", epub3_files(encryption=FONT_ONLY_ENCRYPTION)),
           "epub2": write_zip(root / "weather.epub", epub2_files())}
    import docx
    d = docx.Document()
    d.core_properties.title, d.core_properties.author, d.core_properties.language = "River Days", "B. Writer", "en-US"
    d.add_paragraph("River Days", style="Title")
    d.add_paragraph("Copyright 2026 B. Writer")
    d.add_heading("Contents", level=1)
    d.add_paragraph("The First Morning ..... 1")
    for title, paras in DOCX_CHAPTERS.items():
        d.add_heading(title, level=1)
        d.add_paragraph(paras[0])
        d.add_heading("By the water", level=2)
        d.add_paragraph("***")
        d.add_paragraph(paras[1])
    d.add_table(rows=1, cols=2)
    d.save(root / "river.docx")
    out["docx"] = root / "river.docx"
    (root / "notes.md").write_text("# Dedication\n\nFor the ferry.\n\n# Part One\n\nThe ferry left at dawn, *slowly*.\n"
                                   "\n![map](map.png)\n\nNOTE: the river was high.\n\n## Upstream\n\n"
                                   "They rowed [upstream](http://x.example) until dark.\n")
    out["md"] = root / "notes.md"
    projects = {k: root / f"{k}-project" for k in out}
    for k, src in out.items():
        assert main(["import", str(src), "--out", str(projects[k])]) == 0
    return out, projects, root


def test_epub3_chapters_titles_order_left_out(books):
    _, projects, _ = books
    p = projects["epub3"]
    project = load_project(p / "project.yaml")
    assert (project.title, project.author, project.language) == ("The Keeper of Caerwyn", "Ione Marsh", "en-GB")
    assert project.cover is not None and project.cover.name == "cover.png"   # cover-image from the manifest
    per_chapter, plan = _plan_words(p / "project.yaml")
    assert [c.title for c in plan.chapters] == list(EPUB3_CHAPTERS)           # titles from the nav, in order
    report = (p / "import.md").read_text()
    left = dict(re.findall(r"^- `([^`]+)`: ([^(]+) \(", report, re.M))
    assert left == {"cover.xhtml": "cover", "titlepage.xhtml": "title page", "copyright.xhtml": "copyright page",
                    "dedication.xhtml": "dedication", "nav.xhtml": "table of contents",
                    "ack.xhtml": "acknowledgements"}
    assert "landmarks cover" in report and "epub:type copyright-page" in report and "epub:type titlepage" in report
    assert "1 image(s) skipped" in report and "The tower at dusk" in report and "1 table(s) skipped" in report
    assert "1 footnote(s)/endnote(s) dropped" in report and "obfuscated font" in report
    ms = (p / "manuscript.md").read_text()
    assert "### The Harbour Board" in ms and ms.count("* * *") == 2 and "### Part Two" in ms
    assert "Kair-win" not in ms and "All rights reserved" not in ms and "For my sister" not in ms
    # every word of the reading text reaches the plan, in order (headings included, nothing else)
    for words, (title, paras) in zip(per_chapter, EPUB3_CHAPTERS.items()):
        extra = ["part", "two"] if title.startswith("Chapter Two") else []
        expected = _words(title) + extra + [w for para in paras for w in _words(para)]
        assert words == expected


def test_epub2_ncx_anchors_guide_and_heuristics(books):
    _, projects, _ = books
    per_chapter, plan = _plan_words(projects["epub2"] / "project.yaml")
    assert [c.title for c in plan.chapters] == list(EPUB2_CHAPTERS)   # one file split at the NCX's anchors
    for words, (title, paras) in zip(per_chapter, EPUB2_CHAPTERS.items()):
        assert words == _words(title) + [w for p in paras for w in _words(p)]   # the note marker "1" is gone
    report = (projects["epub2"] / "import.md").read_text()
    assert "`text/title.html`: title page (guide title-page" in report
    assert "`text/legal.html`: copyright page (content:" in report
    assert "`text/notes.html`: notes" in report
    assert load_project(projects["epub2"] / "project.yaml").cover.name == "cover.jpg"   # <meta name="cover">


def test_docx_heading_styles(books):
    _, projects, _ = books
    project = load_project(projects["docx"] / "project.yaml")
    assert (project.title, project.author, project.language) == ("River Days", "B. Writer", "en-US")
    per_chapter, plan = _plan_words(projects["docx"] / "project.yaml")
    assert [c.title for c in plan.chapters] == list(DOCX_CHAPTERS)
    for words, (title, paras) in zip(per_chapter, DOCX_CHAPTERS.items()):
        assert words == _words(title) + _words(paras[0]) + _words("By the water") + _words(paras[1])
    report = (projects["docx"] / "import.md").read_text()
    assert "`(before the first heading)`: front matter" in report and "`Contents`: table of contents" in report
    assert "1 table(s) skipped" in report
    assert (projects["docx"] / "manuscript.md").read_text().count("* * *") == 2


def test_markdown_escapes_and_left_out(books):
    _, projects, _ = books
    ms = (projects["md"] / "manuscript.md").read_text()
    assert ms.startswith("# Part One\n") and "For the ferry" not in ms and "map" not in ms
    assert "NOTE - the river was high." in ms            # would have been an unknown speaker
    assert "They rowed upstream until dark." in ms and "### Upstream" in ms
    per_chapter, _ = _plan_words(projects["md"] / "project.yaml")
    assert per_chapter[0] == _words("Part One The ferry left at dawn, slowly. NOTE the river was high. Upstream "
                                    "They rowed upstream until dark.")


def test_deterministic_reimport_include_and_refusals(books, tmp_path, capsys):
    srcs, projects, _ = books
    again = tmp_path / "again"
    assert main(["import", str(srcs["epub3"]), "--out", str(again)]) == 0
    for f in ("manuscript.md", "project.yaml", "import.md", "cover.png"):
        assert (again / f).read_bytes() == (projects["epub3"] / f).read_bytes(), f
    # the same book again into its own folder, now with the dedication and footnotes read
    assert main(["import", str(srcs["epub3"]), "--out", str(again), "--include", "dedication.xhtml",
                 "--footnotes", "read"]) == 0
    ms = (again / "manuscript.md").read_text()
    assert ms.startswith("# For my sister\n\nwho kept the light.") and "Caerwyn is pronounced Kair-win." in ms
    assert "**included** (--include)" in (again / "import.md").read_text()
    capsys.readouterr()
    # another book into that folder: refused, nothing changed
    before = {p.name: p.read_bytes() for p in again.iterdir()}
    assert main(["import", str(srcs["epub2"]), "--out", str(again)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out: folder is not empty and holds no earlier import of this book" in err[0]
    assert {p.name: p.read_bytes() for p in again.iterdir()} == before
    with pytest.raises(InputError, match="--include: 'nope.xhtml' is not something the import left out"):
        import_book(srcs["epub3"], tmp_path / "x", include=["nope.xhtml"])
    assert not (tmp_path / "x").exists()


def test_a_book_no_one_here_wrote(tmp_path):
    """tests/dia_core/importer/data/minimal.epub (public domain, see SOURCE.md): its two chapters, their
    every word in the plan, its nav and copyright page left out."""
    from lxml import etree
    src = Path(__file__).parent / "data" / "minimal.epub"
    assert main(["import", str(src), "--out", str(tmp_path / "p")]) == 0
    project = load_project(tmp_path / "p" / "project.yaml")
    assert (project.title, project.author, project.language) == ("Sample .epub Book", "Thomas Hansen", "en")
    per_chapter, plan = _plan_words(tmp_path / "p" / "project.yaml")
    assert [c.title for c in plan.chapters] == ["Chapter 1", "Chapter 2"]
    import zipfile
    with zipfile.ZipFile(src) as z:   # the reading text, read independently of the importer
        for words, name in zip(per_chapter, ("chapter_1.xhtml", "chapter_2.xhtml")):
            root = etree.fromstring(z.read(f"OEBPS/{name}"))
            paras = [" ".join(p.itertext()) for p in root.iter("{http://www.w3.org/1999/xhtml}p")]
            title = "".join(next(root.iter("{http://www.w3.org/1999/xhtml}h1")).itertext())
            assert words == _words(title) + [w for p in paras for w in _words(p)]
    report = (tmp_path / "p" / "import.md").read_text()
    assert "`toc.xhtml`: table of contents" in report and "`copyright.xhtml`: copyright page" in report


def test_plain_text_chapters_and_control_characters(tmp_path):
    book = tmp_path / "tide.txt"
    book.write_text("Tide Tables\nby C. Writer\n\nContents\n\nChapter 1\n\nThe tide came in at noon.\x01\n"
                    "It went out again.\n\n* * *\n\nThe moon rose.\n\nCHAPTER II. The Neap\n\nNothing moved.\n")
    out = tmp_path / "p"
    assert main(["import", str(book), "--out", str(out)]) == 0
    per_chapter, plan = _plan_words(out / "project.yaml")
    assert [c.title for c in plan.chapters] == ["Chapter 1", "CHAPTER II. The Neap"]
    assert per_chapter[0] == _words("Chapter 1 The tide came in at noon. It went out again. The moon rose.")
    assert "(before the first heading)`: front matter" in (out / "import.md").read_text()
    one = tmp_path / "note.txt"
    one.write_text("Just one paragraph of text.\n")
    assert main(["import", str(one), "--out", str(tmp_path / "q")]) == 0
    assert (tmp_path / "q" / "manuscript.md").read_text() == "# note\n\nJust one paragraph of text.\n"
