"""Small EPUB 2 / EPUB 3 / DOCX books built for the tests (every word written here)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""


def tiny_png(size: int = 32) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def write_zip(path: Path, files: dict[str, str | bytes], *, mimetype: str | None = "application/epub+zip") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        if mimetype:
            z.writestr(zipfile.ZipInfo("mimetype"), mimetype)
        for name, data in files.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def xhtml(body: str, *, title: str = "x", body_attrs: str = "") -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
            'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>' + title + '</title></head>'
            f'<body{body_attrs}>{body}</body></html>')


# The reading text of the EPUB 3 book, chapter by chapter: what must reach the plan.
EPUB3_CHAPTERS = {
    "Chapter One: The Letter": [
        "The lighthouse at Caerwyn had stood for two hundred years.",
        "Mara kept its lamp burning through every storm of the winter.",
        "The Harbour Board",
        "The letter came on a Tuesday, carried up the hill by the ferryman.",
        "She read it twice by the window, and then once more by the lamp.",
    ],
    "Chapter Two: The Log": [
        "That night Mara climbed to the lamp room and opened the old log.",
        "In the morning the ferryman found her on the rocks below the tower.",
    ],
    "Chapter Three: The Last Night": [
        "On the last night the whole village climbed the hill together.",
    ],
}


def epub3_files(*, encryption: str | None = None) -> dict[str, str | bytes]:
    nav = xhtml("""
<nav epub:type="toc" id="toc"><h1>Contents</h1><ol>
  <li><a href="ch1.xhtml">Chapter One: The Letter</a>
    <ol><li><a href="ch1.xhtml#board">The Harbour Board</a></li></ol></li>
  <li><a href="part2.xhtml">Part Two</a>
    <ol><li><a href="ch2.xhtml">Chapter Two: The Log</a></li>
        <li><a href="ch3.xhtml">Chapter Three: The Last Night</a></li></ol></li>
  <li><a href="ack.xhtml">Acknowledgements</a></li>
</ol></nav>
<nav epub:type="landmarks"><ol>
  <li><a epub:type="cover" href="cover.xhtml">Cover</a></li>
  <li><a epub:type="bodymatter" href="ch1.xhtml">Start</a></li>
</ol></nav>""", title="Contents")
    cover = xhtml('<div><img src="cover.png" alt="A red square"/></div>')
    titlepage = xhtml('<h1>The Keeper of Caerwyn</h1><p>Ione Marsh</p>', body_attrs=' epub:type="titlepage"')
    copyright_ = xhtml('<section epub:type="copyright-page"><p>Copyright 2026 Ione Marsh. All rights reserved.</p>'
                       '</section>')
    dedication = xhtml('<section><h2>For my sister</h2><p>who kept the light.</p></section>')
    ch1 = xhtml("""<section epub:type="chapter"><h1>Chapter One</h1><h2>The Letter</h2>
<p>The lighthouse at <em>Caerwyn</em> had stood for two hundred years.<a epub:type="noteref" href="#fn1">1</a></p>
<p>Mara kept its lamp burning through every storm of the <strong>winter</strong>.</p>
<figure><img src="cover.png" alt="The tower at dusk"/><figcaption></figcaption></figure>
<h3 id="board">The Harbour Board</h3>
<p>The letter came on a Tuesday, carried up the hill by the ferryman.</p>
<hr class="scene"/>
<table><tr><td>Tide</td><td>High</td></tr></table>
<p>She read it twice by the window, and then once more by the lamp.</p>
<aside epub:type="footnote" id="fn1"><p>Caerwyn is pronounced Kair-win.</p></aside>
</section>""")
    part2 = xhtml('<h1>Part Two</h1>')
    ch2 = xhtml("""<h1>Chapter Two: The Log</h1>
<p>That night Mara climbed to the lamp room and opened the old log.</p>
<p>* * *</p>
<p>In the morning the ferryman found her on the rocks below the tower.</p>""")
    ch3 = xhtml("<h1>Chapter Three: The Last Night</h1><p>On the last night the whole village climbed the hill "
                "together.</p>")
    ack = xhtml("<h1>Acknowledgements</h1><p>Thanks to everyone at the harbour.</p>")
    manifest = "\n".join(
        f'<item id="{i}" href="{h}" media-type="application/xhtml+xml"{p}/>' for i, h, p in (
            ("nav", "nav.xhtml", ' properties="nav"'), ("coverpage", "cover.xhtml", ""),
            ("titlepage", "titlepage.xhtml", ""), ("copyright", "copyright.xhtml", ""),
            ("dedication", "dedication.xhtml", ""), ("ch1", "ch1.xhtml", ""), ("part2", "part2.xhtml", ""),
            ("ch2", "ch2.xhtml", ""), ("ch3", "ch3.xhtml", ""), ("ack", "ack.xhtml", "")))
    spine = "".join(f'<itemref idref="{i}"/>' for i in ("coverpage", "titlepage", "copyright", "dedication", "nav",
                                                        "ch1", "part2", "ch2", "ch3", "ack"))
    opf = f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
  <dc:identifier id="uid">urn:uuid:0000-test</dc:identifier>
  <dc:title>The Keeper of Caerwyn</dc:title><dc:creator>Ione Marsh</dc:creator><dc:language>en-GB</dc:language>
</metadata>
<manifest>{manifest}
<item id="cover-img" href="cover.png" media-type="image/png" properties="cover-image"/>
<item id="font" href="fonts/serif.otf" media-type="font/otf"/>
</manifest>
<spine>{spine}</spine></package>"""
    files: dict[str, str | bytes] = {
        "META-INF/container.xml": CONTAINER, "OEBPS/content.opf": opf, "OEBPS/nav.xhtml": nav,
        "OEBPS/cover.xhtml": cover, "OEBPS/titlepage.xhtml": titlepage, "OEBPS/copyright.xhtml": copyright_,
        "OEBPS/dedication.xhtml": dedication, "OEBPS/ch1.xhtml": ch1, "OEBPS/part2.xhtml": part2,
        "OEBPS/ch2.xhtml": ch2, "OEBPS/ch3.xhtml": ch3, "OEBPS/ack.xhtml": ack, "OEBPS/cover.png": tiny_png(),
        "OEBPS/fonts/serif.otf": b"\x00\x01obfuscated-font-bytes" * 8,
    }
    if encryption:
        files["META-INF/encryption.xml"] = encryption
    return files


EPUB2_CHAPTERS = {
    "I. The Storm": ["The storm came in from the west before dawn.", "Nobody on the island slept that night."],
    "II. The Calm": ["By noon the sea was flat and grey as slate.",
                     "The gulls came back one by one to the harbour wall."],
}


def epub2_files() -> dict[str, str | bytes]:
    def html2(body):  # EPUB 2: XHTML 1.1, no epub:type
        return ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
                '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml">'
                f'<head><title>t</title></head><body>{body}</body></html>')
    book = html2("""<h2 id="c1">I. The Storm</h2><p>The storm came in from the <i>west</i> before dawn.</p>
<p>Nobody on the island slept that night.<sup><a href="notes.html#n1">1</a></sup></p>
<h2 id="c2">II. The Calm</h2><p>By noon the sea was flat and grey as slate.</p>
<p>The gulls came back one by one to the harbour wall.</p>""")
    title = html2("<h1>Island Weather</h1><p>by A. Writer</p>")
    legal = html2("<p>Published 2026. ISBN 978-0-00-000000-0. All rights reserved.</p>")
    notes = html2('<h2>Notes</h2><p id="n1">1. Except the keeper.</p>')
    ncx = """<?xml version="1.0" encoding="utf-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><head/><docTitle><text>Island Weather</text></docTitle>
<navMap>
<navPoint id="n1" playOrder="1"><navLabel><text>I. The Storm</text></navLabel><content src="text/book.html#c1"/></navPoint>
<navPoint id="n2" playOrder="2"><navLabel><text>II. The Calm</text></navLabel><content src="text/book.html#c2"/></navPoint>
<navPoint id="n3" playOrder="3"><navLabel><text>Notes</text></navLabel><content src="text/notes.html"/></navPoint>
</navMap></ncx>"""
    opf = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
  <dc:identifier id="uid">urn:isbn:0</dc:identifier><dc:title>Island Weather</dc:title>
  <dc:creator opf:role="aut">A. Writer</dc:creator><dc:language>en</dc:language>
  <meta name="cover" content="cover-img"/>
</metadata>
<manifest>
  <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
  <item id="title" href="text/title.html" media-type="application/xhtml+xml"/>
  <item id="legal" href="text/legal.html" media-type="application/xhtml+xml"/>
  <item id="book" href="text/book.html" media-type="application/xhtml+xml"/>
  <item id="notes" href="text/notes.html" media-type="application/xhtml+xml"/>
  <item id="cover-img" href="images/cover.jpg" media-type="image/jpeg"/>
</manifest>
<spine toc="ncx"><itemref idref="title"/><itemref idref="legal"/><itemref idref="book"/><itemref idref="notes"/></spine>
<guide><reference type="title-page" title="Title" href="text/title.html"/></guide>
</package>"""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 10, 90)).save(buf, "JPEG")
    return {"META-INF/container.xml": CONTAINER.replace("OEBPS/content.opf", "OPS/content.opf"),
            "OPS/content.opf": opf, "OPS/toc.ncx": ncx, "OPS/text/title.html": title,
            "OPS/text/legal.html": legal, "OPS/text/book.html": book, "OPS/text/notes.html": notes,
            "OPS/images/cover.jpg": buf.getvalue()}
