"""ZIP containers (EPUB, DOCX) checked before any parser opens them.

A book from a user is hostile until proven otherwise. ``open_checked_zip`` refuses, with one
InputError naming the file and the problem:

* a file that is not a ZIP archive, or whose central directory or entries are corrupt (every
  entry is read once, in bounded chunks, so a CRC error shows here and not inside ebooklib);
* zip bombs: more than MAX_ENTRIES entries, more than MAX_TOTAL_BYTES uncompressed in all, an entry
  over MAX_ENTRY_BYTES, or an entry over 1 MiB expanding more than MAX_RATIO times (sizes from
  the central directory are checked before anything is decompressed; zipfile never reads past the
  declared size, so a lying header ends as a CRC error instead);
* entry names that are absolute, hold ``..``, backslashes, drive letters or NUL bytes;
* encrypted (password-protected) entries;
* XML entries that declare entities or an internal DTD subset (external entities and
  entity-expansion bombs): no parser ever sees them.
"""
from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import InputError

MAX_ARCHIVE_BYTES = 200 * 1024 * 1024   # the book file itself
MAX_ENTRIES = 10_000
MAX_ENTRY_BYTES = 128 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024
MAX_RATIO = 100
_CHUNK = 1 << 20
_XML_SUFFIXES = (".xml", ".opf", ".ncx", ".xhtml", ".html", ".htm", ".rels", ".svg", ".smil")
# An internal DTD subset or any entity declaration: XXE and billion-laughs need one of these.
_DTD_DANGER_RE = re.compile(rb"<!ENTITY|<!DOCTYPE[^>\[]*\[", re.IGNORECASE)


def _bad_name(name: str) -> str | None:
    if "\x00" in name:
        return "a NUL byte"
    if "\\" in name:
        return "a backslash"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..'"
    return None


def _an(kind: str) -> str:
    return ("an " if kind[:1] in "AEIO" else "a ") + kind


def open_checked_zip(path: Path, label: str, kind: str) -> zipfile.ZipFile:
    """The archive at ``path``, opened after every check above passed. ``kind`` ("EPUB", "DOCX")
    names the format in messages. The caller closes it."""
    size = path.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise InputError(f"{kind} file is {size} bytes (limit {MAX_ARCHIVE_BYTES})", file=label)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise InputError(f"not a valid ZIP archive, so not {_an(kind)} ({e})", file=label) from None
    try:
        _check_entries(zf, label, kind)
    except BaseException:
        zf.close()
        raise
    return zf


def _check_entries(zf: zipfile.ZipFile, label: str, kind: str) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InputError(f"ZIP archive has {len(infos)} entries (limit {MAX_ENTRIES}): refused as a zip bomb",
                         file=label)
    total = 0
    for info in infos:
        why = _bad_name(info.filename)
        if why:
            raise InputError(f"ZIP entry {info.filename!r} has {why} in its name: refused", file=label)
        if info.flag_bits & 0x1:
            raise InputError(f"ZIP entry {info.filename!r} is encrypted (password-protected): refused", file=label)
        total += info.file_size
        if info.file_size > MAX_ENTRY_BYTES or total > MAX_TOTAL_BYTES:
            raise InputError(f"ZIP entry {info.filename!r} expands to {info.file_size} bytes ({total} in all so far; "
                             f"limits {MAX_ENTRY_BYTES} per entry, {MAX_TOTAL_BYTES} in all): refused as a zip bomb",
                             file=label)
        if info.file_size > _CHUNK and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise InputError(f"ZIP entry {info.filename!r} expands {info.file_size // max(info.compress_size, 1)} "
                             f"times (limit {MAX_RATIO}): refused as a zip bomb", file=label)
    for info in infos:
        if info.is_dir():
            continue
        is_xml = info.filename.lower().endswith(_XML_SUFFIXES)
        tail = b""
        try:
            with zf.open(info) as f:
                for block in iter(lambda: f.read(_CHUNK), b""):
                    if is_xml and _DTD_DANGER_RE.search(tail + block):
                        raise InputError(f"{info.filename}: XML declares entities or an internal DTD (external "
                                         "entities / entity expansion): refused", file=label)
                    tail = block[-256:]
        except InputError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as e:
            raise InputError(f"corrupt ZIP entry {info.filename!r} ({e})", file=label) from None


__all__ = ["open_checked_zip", "MAX_TOTAL_BYTES", "MAX_ENTRY_BYTES", "MAX_RATIO", "MAX_ENTRIES", "MAX_ARCHIVE_BYTES"]
