"""Tags written with mutagen, read back with mutagen and ffprobe: MP3 (ID3v2.4, APIC, CHAP/CTOC),
FLAC (Vorbis comments, PICTURE), M4B (missing tags and cover added, chapters kept)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.mp4 import MP4
from PIL import Image

from dia_core.publish.tags import FileTags, Mark, ensure_m4b_tags, read_mp3_chapters, tag_flac, tag_mp3


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_chapters", "-show_format", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("tags")
    src = ["-f", "lavfi", "-i", "sine=f=330:d=7"]
    out = ["-ac", "1", "-ar", "44100"]
    _ffmpeg(*src, *out, "-c:a", "libmp3lame", "-b:a", "192k", str(d / "a.mp3"))
    _ffmpeg(*src, *out, "-c:a", "flac", str(d / "a.flac"))
    meta = d / "meta.txt"
    meta.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=3000\ntitle=One\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=3000\nEND=7000\ntitle=Two\n")
    _ffmpeg(*src, "-i", str(meta), *out, "-map", "0:a", "-map_chapters", "1", "-c:a", "aac", "-b:a", "64k",
            "-f", "mp4", str(d / "a.m4b"))
    Image.new("RGB", (64, 64), (200, 30, 30)).save(d / "cover.png")
    return d


def test_mp3_id3v24_tags_cover_and_chapters_read_back_by_mutagen_and_ffprobe(media):
    tags = FileTags("Episode 3", "Ione Marsh", "Study Hall", narrator="Sam", year=2026, genre="Podcast",
                    track=3, track_total=9, cover=media / "cover.png")
    marks = [Mark("Intro", 0, 2345), Mark("Friction", 2345, 5001), Mark("Tracking", 5001, 7000)]
    tag_mp3(media / "a.mp3", tags, marks)
    id3 = ID3(media / "a.mp3")
    assert id3.version[:2] == (2, 4)
    assert str(id3["TIT2"]) == "Episode 3" and str(id3["TPE1"]) == "Ione Marsh" and str(id3["TALB"]) == "Study Hall"
    assert str(id3["TRCK"]) == "3/9" and str(id3["TCOM"]) == "Sam" and str(id3["TXXX:NARRATOR"]) == "Sam"
    assert str(id3["TDRC"]) == "2026"
    apic = id3.getall("APIC")[0]
    assert apic.type == 3 and apic.mime == "image/png" and apic.data == (media / "cover.png").read_bytes()
    assert read_mp3_chapters(media / "a.mp3") == marks
    toc = id3.getall("CTOC")[0]
    assert toc.child_element_ids == ["chp0", "chp1", "chp2"]
    probe = _ffprobe(media / "a.mp3")
    got = [(c["tags"]["title"], int(c["start"]), int(c["end"])) for c in probe["chapters"]]
    assert got == [(m.title, m.start_ms, m.end_ms) for m in marks]   # to the millisecond
    assert probe["format"]["tags"]["title"] == "Episode 3"
    # one chapter: no CHAP/CTOC frames, tags replaced (no stale chapters left)
    tag_mp3(media / "a.mp3", tags, [Mark("Whole", 0, 7000)])
    assert ID3(media / "a.mp3").getall("CHAP") == [] and _ffprobe(media / "a.mp3")["chapters"] == []


def test_flac_vorbis_comments_and_picture(media):
    tag_flac(media / "a.flac", FileTags("Chapter 1", "Ione Marsh", "The Keeper", narrator="Ann", year=2025,
                                        track=1, track_total=3, cover=media / "cover.png"))
    f = FLAC(media / "a.flac")
    assert f["TITLE"] == ["Chapter 1"] and f["ARTIST"] == ["Ione Marsh"] and f["ALBUM"] == ["The Keeper"]
    assert f["TRACKNUMBER"] == ["1"] and f["TRACKTOTAL"] == ["3"] and f["NARRATOR"] == ["Ann"]
    assert f["DATE"] == ["2025"]
    assert len(f.pictures) == 1 and f.pictures[0].type == 3 and f.pictures[0].mime == "image/png"
    assert _ffprobe(media / "a.flac")["format"]["tags"]["TITLE"] == "Chapter 1"


def test_m4b_gains_missing_tags_and_cover_and_keeps_its_chapters(media):
    path = media / "a.m4b"
    before = [(c["tags"]["title"], c["start"], c["end"]) for c in _ffprobe(path)["chapters"]]
    tags = FileTags("The Keeper", "Ione Marsh", "The Keeper", narrator="Ann", cover=media / "cover.png")
    added = ensure_m4b_tags(path, tags)
    assert set(added) >= {"\xa9nam", "\xa9ART", "\xa9alb", "\xa9wrt", "covr"}
    m = MP4(path)
    assert m.tags["\xa9nam"] == ["The Keeper"] and m.tags["\xa9wrt"] == ["Ann"]
    assert bytes(m.tags["covr"][0]) == (media / "cover.png").read_bytes()
    assert [(c["tags"]["title"], c["start"], c["end"]) for c in _ffprobe(path)["chapters"]] == before
    assert ensure_m4b_tags(path, tags) == []   # nothing missing: file untouched
