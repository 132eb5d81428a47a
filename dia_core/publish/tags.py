"""Tags inside delivered files, written with mutagen (the kept library for ID3, Vorbis comments and
MP4 atoms; ffmpeg's ``-metadata`` cannot write ID3 chapter frames).

* MP3: ID3v2.4 title, artist (author), album, album artist, track ``n/total``, narrator (TCOM, the
  audiobook convention, and ``TXXX:NARRATOR``), year (TDRC), genre, front cover (APIC); a file with
  more than one chapter or section also gets one CHAP frame per chapter and a top-level, ordered
  CTOC listing them (ID3v2 Chapter Frame Addendum), which podcast players and ffprobe read.
* FLAC: the same as Vorbis comments and a front-cover PICTURE block.
* M4B: tags and cover added where missing; its chapters (written by ffmpeg) are left as they are.

Files are tagged through a copy renamed into place (dia_core.atomic): a crash leaves the untagged
file or the tagged one, never half a rewrite.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mutagen.flac import FLAC, Picture
from mutagen.id3 import (APIC, CHAP, CTOC, ID3, TALB, TCOM, TCON, TDRC, TIT2, TPE1, TPE2, TRCK, TXXX,
                         CTOCFlags, ID3NoHeaderError)
from mutagen.mp4 import MP4, MP4Cover

from ..atomic import TMP_PREFIX, atomic_path

__all__ = ["FileTags", "Mark", "tag_mp3", "write_mp3_tags", "publish_staged", "tag_flac", "ensure_m4b_tags", "tag_file", "read_mp3_chapters",
           "cover_mime"]

FRONT_COVER = 3   # ID3/FLAC picture type "Cover (front)"
NO_OFFSET = 0xFFFFFFFF   # CHAP byte offsets unused: times only


@dataclass(frozen=True)
class Mark:
    """One chapter or section inside a file, in milliseconds from its start."""
    title: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class FileTags:
    title: str
    artist: str                   # the author (or the show)
    album: str
    narrator: str | None = None
    year: int | None = None
    genre: str | None = None
    track: int | None = None
    track_total: int | None = None
    cover: Path | None = None
    comment: str | None = None

    @property
    def track_text(self) -> str | None:
        if self.track is None:
            return None
        return f"{self.track}/{self.track_total}" if self.track_total else str(self.track)


def cover_mime(path: Path) -> str:
    head = Path(path).read_bytes()[:8]
    return "image/png" if head.startswith(b"\x89PNG") else "image/jpeg"


def _in_place(path: Path, edit) -> Path:
    """Apply ``edit(tmp_path)`` to a copy of ``path`` and rename it over ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        edit(Path(tmp))
    return path


def publish_staged(target: Path, make) -> Path:
    """``make(staged stem)`` builds the finished (tagged) MP3 in a staging folder beside ``target``;
    it is then published in one rename, and not at all when the same bytes are already there (a
    re-render of an unchanged book rewrites no published file)."""
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX + "stage-", dir=target.parent) as stage:
        staged = make(Path(stage) / target.stem)
        with atomic_path(target) as tmp:
            os.replace(staged, tmp)
    return target


def tag_mp3(path: str | Path, tags: FileTags, marks: list[Mark] | tuple = ()) -> Path:
    """Write ID3v2.4 tags (replacing any) and, for more than one mark, CHAP/CTOC frames."""
    return _in_place(Path(path), lambda tmp: write_mp3_tags(tmp, tags, marks))


def write_mp3_tags(tmp: Path, tags: FileTags, marks: list[Mark] | tuple = ()) -> Path:
    """tag_mp3's edit, on a file not yet published (a staged or temp file): changed in place."""
    try:
        id3 = ID3(tmp)
        id3.delete(tmp)
    except ID3NoHeaderError:
        pass
    id3 = ID3()
    id3.add(TIT2(encoding=3, text=[tags.title]))
    id3.add(TPE1(encoding=3, text=[tags.artist]))
    id3.add(TPE2(encoding=3, text=[tags.artist]))
    id3.add(TALB(encoding=3, text=[tags.album]))
    if tags.track_text:
        id3.add(TRCK(encoding=3, text=[tags.track_text]))
    if tags.narrator:
        id3.add(TCOM(encoding=3, text=[tags.narrator]))
        id3.add(TXXX(encoding=3, desc="NARRATOR", text=[tags.narrator]))
    if tags.year:
        id3.add(TDRC(encoding=3, text=[str(tags.year)]))
    if tags.genre:
        id3.add(TCON(encoding=3, text=[tags.genre]))
    if tags.cover:
        id3.add(APIC(encoding=3, mime=cover_mime(tags.cover), type=FRONT_COVER, desc="Cover",
                     data=Path(tags.cover).read_bytes()))
    if len(marks) > 1:
        ids = [f"chp{i}" for i in range(len(marks))]
        id3.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                     child_element_ids=ids, sub_frames=[TIT2(encoding=3, text=["Chapters"])]))
        for eid, m in zip(ids, marks):
            id3.add(CHAP(element_id=eid, start_time=int(m.start_ms), end_time=int(m.end_ms),
                         start_offset=NO_OFFSET, end_offset=NO_OFFSET,
                         sub_frames=[TIT2(encoding=3, text=[m.title])]))
    id3.save(tmp, v2_version=4)
    return Path(tmp)


def read_mp3_chapters(path: str | Path) -> list[Mark]:
    """The CHAP frames of an MP3 in CTOC order (start order when there is no CTOC)."""
    id3 = ID3(path)
    chaps = {f.element_id: f for f in id3.getall("CHAP")}
    tocs = id3.getall("CTOC")
    order = list(tocs[0].child_element_ids) if tocs else sorted(chaps, key=lambda k: chaps[k].start_time)
    return [Mark(str(chaps[k].sub_frames["TIT2"].text[0]) if "TIT2" in chaps[k].sub_frames else "",
                 chaps[k].start_time, chaps[k].end_time) for k in order if k in chaps]


def _vorbis(tags: FileTags) -> dict[str, str]:
    out = {"TITLE": tags.title, "ARTIST": tags.artist, "ALBUMARTIST": tags.artist, "ALBUM": tags.album}
    if tags.track is not None:
        out["TRACKNUMBER"] = str(tags.track)
    if tags.track_total:
        out["TRACKTOTAL"] = str(tags.track_total)
    if tags.narrator:
        out["PERFORMER"] = tags.narrator   # the reader of a recording, by the Vorbis comment convention
        out["NARRATOR"] = tags.narrator
    if tags.year:
        out["DATE"] = str(tags.year)
    if tags.genre:
        out["GENRE"] = tags.genre
    return out


def tag_flac(path: str | Path, tags: FileTags) -> Path:
    """Vorbis comments (replacing any) and a front-cover PICTURE block."""
    def edit(tmp: Path) -> None:
        f = FLAC(tmp)
        f.delete()
        f.clear_pictures()
        for k, v in _vorbis(tags).items():
            f[k] = v
        if tags.cover:
            pic = Picture()
            pic.type = FRONT_COVER
            pic.mime = cover_mime(tags.cover)
            pic.desc = "Cover"
            pic.data = Path(tags.cover).read_bytes()
            f.add_picture(pic)
        f.save()
    return _in_place(Path(path), edit)


def _mp4_wanted(tags: FileTags) -> dict:
    out = {"\xa9nam": [tags.title], "\xa9ART": [tags.artist], "aART": [tags.artist], "\xa9alb": [tags.album]}
    if tags.narrator:
        out["\xa9wrt"] = [tags.narrator]   # composer: the narrator, as Apple Books reads it
    if tags.year:
        out["\xa9day"] = [str(tags.year)]
    if tags.genre:
        out["\xa9gen"] = [tags.genre]
    return out


def ensure_m4b_tags(path: str | Path, tags: FileTags) -> list[str]:
    """Add the tags and the cover the M4B lacks (existing ones and the chapters are kept).
    Returns the atoms added (empty: the file was left untouched)."""
    f = MP4(path)
    missing = [k for k in _mp4_wanted(tags) if not (f.tags or {}).get(k)]
    need_cover = bool(tags.cover) and not (f.tags or {}).get("covr")
    if not missing and not need_cover:
        return []

    def edit(tmp: Path) -> None:
        m = MP4(tmp)
        if m.tags is None:
            m.add_tags()
        wanted = _mp4_wanted(tags)
        for k in missing:
            m.tags[k] = wanted[k]
        if need_cover:
            fmt = MP4Cover.FORMAT_PNG if cover_mime(tags.cover) == "image/png" else MP4Cover.FORMAT_JPEG
            m.tags["covr"] = [MP4Cover(Path(tags.cover).read_bytes(), imageformat=fmt)]
        m.save()
    _in_place(Path(path), edit)
    return missing + (["covr"] if need_cover else [])


def tag_file(path: str | Path, tags: FileTags, marks: list[Mark] | tuple = ()) -> Path | None:
    """Tag by extension (mp3, flac); other formats are left alone (WAV has no tags players read)."""
    ext = Path(path).suffix.lower()
    if ext == ".mp3":
        return tag_mp3(path, tags, marks)
    if ext == ".flac":
        return tag_flac(path, tags)
    return None
