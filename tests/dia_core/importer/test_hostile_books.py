"""Hostile books: each is refused with exit 2 and one line naming the file and the problem, nothing
is written, in well under a few seconds; all of them in one process stay far under 1 GB."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from flows.cli import main

from .books import epub3_files, write_zip

REPO = Path(__file__).resolve().parents[3]
DRM_ENCRYPTION = """<?xml version="1.0"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
 <enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>
  <enc:CipherData><enc:CipherReference URI="OEBPS/fonts/serif.otf"/></enc:CipherData></enc:EncryptedData>
 <enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
  <enc:CipherData><enc:CipherReference URI="OEBPS/ch1.xhtml"/></enc:CipherData></enc:EncryptedData>
</encryption>"""
XXE = '<?xml version="1.0"?>\n<!DOCTYPE package [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE html [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
          + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("bcdefgh", "cdefghi")) + ']>\n')


def zip_bomb(path: Path, gib_blocks: int = 255) -> Path:
    """An EPUB whose one XHTML entry inflates to gib_blocks x 16 MiB of zeros (4 GB for 255) from a
    ~4 MB deflate stream, built without deflating 4 GB: after a full flush the compressor's output
    for each further 16 MiB of zeros is the same bytes, so one block is repeated."""
    zeros = b"\0" * (1 << 24)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    again = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    last = co.compress(zeros) + co.flush()
    data = first + again * (gib_blocks - 2) + last
    size = gib_blocks << 24
    crc = 0   # not computed (seconds of CPU): the archive is refused on its declared size, before any CRC check
    entries = [("mimetype", b"application/epub+zip", 0, 0, 20, zlib.crc32(b"application/epub+zip")),
               ("META-INF/container.xml", zlib.compress(b"<container/>")[2:-4], 8, 12, 12,
                zlib.crc32(b"<container/>")),
               ("OEBPS/ch1.xhtml", data, 8, size, None, crc)]
    out, central = io.BytesIO(), io.BytesIO()
    for name, payload, method, usize, _, c in entries:
        usize = usize or len(payload)
        off = out.tell()
        n = name.encode()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, c, len(payload), usize, len(n), 0))
        out.write(n + payload)
        central.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, c, len(payload),
                                  usize, len(n), 0, 0, 0, 0, 0, off) + n)
    cd = central.getvalue()
    start = out.tell()
    out.write(cd + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(cd), start, 0))
    path.write_bytes(out.getvalue())
    return path


def _hostile(root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words the error line must hold)."""
    good = epub3_files()
    cases: dict[str, tuple[Path, str]] = {}

    def add(name, path, expect):
        cases[name] = (path, expect)

    raw = bytearray(write_zip(root / "good.epub", good).read_bytes())
    i = raw.find(b"OEBPS/ch1.xhtml") + 40
    raw[i:i + 60] = b"\xff" * 60                       # inside ch1's deflated data: a corrupt entry
    (root / "corrupt.epub").write_bytes(bytes(raw))
    add("corrupt entry", root / "corrupt.epub", "corrupt ZIP entry")
    (root / "truncated.epub").write_bytes(bytes(raw[: len(raw) // 2]))
    add("truncated archive", root / "truncated.epub", "not a valid ZIP archive")
    add("zip bomb 4 GB", zip_bomb(root / "bomb.epub"), "zip bomb")
    with zipfile.ZipFile(root / "ratio.epub", "w") as z:   # 40 MiB of zeros in ~40 KB: refused by its ratio
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("OEBPS/pad.xhtml", b"\0" * (40 << 20), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    add("zip bomb ratio", root / "ratio.epub", "times (limit 100): refused as a zip bomb")
    add("dotdot entry", write_zip(root / "dotdot.epub", {**good, "OEBPS/../../evil.txt": "x"}), "'..'")
    add("absolute entry", write_zip(root / "abs.epub", {**good, "/etc/evil.txt": "x"}), "an absolute path")
    enc = bytearray(write_zip(root / "enc.epub", {**good, "OEBPS/secret.xhtml": "ciphertext"}).read_bytes())
    local_at, central_at = (enc.find(b"OEBPS/secret.xhtml", k) for k in (0, enc.find(b"PK\x01\x02")))
    enc[local_at - 30 + 6] |= 0x1                      # the "encrypted" flag, in the local and central headers
    enc[central_at - 46 + 8] |= 0x1
    (root / "enc.epub").write_bytes(bytes(enc))
    add("encrypted entry", root / "enc.epub", "is encrypted (password-protected)")
    opf = good["OEBPS/content.opf"].replace('<?xml version="1.0" encoding="utf-8"?>\n', XXE)
    add("XXE in OPF", write_zip(root / "xxe.epub", {**good, "OEBPS/content.opf": opf.replace(
        "<dc:title>The Keeper of Caerwyn", "<dc:title>&xxe;")}), "OEBPS/content.opf: XML declares entities")
    ch1 = good["OEBPS/ch1.xhtml"].replace('<?xml version="1.0" encoding="utf-8"?>\n', LAUGHS).replace(
        "two hundred years", "&i;")
    add("billion laughs in XHTML", write_zip(root / "laughs.epub", {**good, "OEBPS/ch1.xhtml": ch1}),
        "OEBPS/ch1.xhtml: XML declares entities")
    add("DRM", write_zip(root / "drm.epub", {**good, "META-INF/encryption.xml": DRM_ENCRYPTION}),
        "DRM: the book's content is encrypted (OEBPS/ch1.xhtml")
    with zipfile.ZipFile(root / "junk.docx", "w") as z:
        z.writestr("junk/a.bin", bytes(range(256)) * 40)
        z.writestr("readme.txt", "not a word document")
    add("DOCX of junk", root / "junk.docx", "not a DOCX")
    add("EPUB that is a DOCX", write_zip(root / "docx.epub", {"word/document.xml": "<w/>"}, mimetype=None),
        "not an EPUB: a DOCX")
    (root / "text.epub").write_text("just text, renamed")
    add("text renamed .epub", root / "text.epub", "not a ZIP archive, so not an EPUB")
    (root / "empty.epub").write_bytes(b"")
    add("empty file", root / "empty.epub", "empty file")
    with open(root / "huge.txt", "wb") as f:
        f.truncate(100 * 1024 * 1024)                  # 100 MiB (sparse): refused on its size, never read
    add("100 MB text", root / "huge.txt", "text file is 104857600 bytes (limit 67108864)")
    (root / "book.pdf").write_bytes(b"%PDF-1.7\n%\xe2\xe3\n1 0 obj<<>>endobj\n")
    add("PDF", root / "book.pdf", "PDF is not imported")
    return cases


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return _hostile(tmp_path_factory.mktemp("hostile"))


CASES = ["corrupt entry", "truncated archive", "zip bomb 4 GB", "zip bomb ratio", "dotdot entry", "absolute entry",
         "encrypted entry", "XXE in OPF", "billion laughs in XHTML", "DRM", "DOCX of junk", "EPUB that is a DOCX",
         "text renamed .epub", "empty file", "100 MB text", "PDF"]


def test_every_case_is_built(hostile):
    assert sorted(hostile) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_refused_in_one_line_nothing_written(hostile, case, tmp_path, capsys):
    path, expect = hostile[case]
    out = tmp_path / "project"
    t0 = time.monotonic()
    rc = main(["import", str(path), "--out", str(out)])
    elapsed = time.monotonic() - t0
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), lines
    assert expect in lines[0], lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []     # no project, no temporary folder
    assert elapsed < 3, elapsed


def test_all_hostile_books_in_one_process_stay_under_1_gb(hostile, tmp_path):
    # the importer alone (the CLI's one-line handling is checked above): a lean process to measure
    # VmHWM, this process's own peak: ru_maxrss would carry a big parent's (pytest's) across exec
    script = ("import json, sys\nfrom dia_core.errors import InputError\n"
              "from dia_core.importer import import_book\nrefused = 0\n"
              "for i, p in enumerate(json.loads(sys.argv[1])):\n"
              "    try:\n        import_book(p, sys.argv[2] + str(i))\n"
              "    except InputError:\n        refused += 1\n"
              "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0]\n"
              "print(json.dumps({'refused': refused, 'maxrss_kb': int(hwm.split()[1])}))\n")
    paths = [str(hostile[c][0]) for c in CASES]
    r = subprocess.run([sys.executable, "-c", script, json.dumps(paths), str(tmp_path / "out")], cwd=REPO,
                       capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["refused"] == len(CASES), r.stderr
    assert result["maxrss_kb"] < 1024 * 1024, result      # peak resident memory of the whole run
    print(f"\nhostile books: peak resident memory {result['maxrss_kb'] // 1024} MB for all {len(CASES)}")
    assert not list(tmp_path.iterdir())
