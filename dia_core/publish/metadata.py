"""What a project's delivered files are tagged with (dia_core.publish.tags.FileTags)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .tags import FileTags, Mark, ensure_m4b_tags, tag_file

__all__ = ["chapter_tags", "book_tags", "tag_chapter_files", "tag_book"]


def chapter_tags(project, title: str, track: int | None = None, total: int | None = None) -> FileTags:
    """A chapter file: its title, the author as artist, the book (or the show) as album."""
    album = project.podcast.show if project.podcast else project.title
    year = project.year or (project.podcast.pub_date.year if project.podcast else None)
    return FileTags(title=title, artist=project.author, album=album, narrator=project.narrator, year=year,
                    genre=project.genre, track=track, track_total=total, cover=_cover(project))


def book_tags(project) -> FileTags:
    """The whole book or episode: the project's title."""
    t = chapter_tags(project, project.title)
    return replace(t, track=None, track_total=None)


def _cover(project) -> Path | None:
    if project.podcast and project.podcast.image:
        return project.podcast.image
    return project.cover


def tag_chapter_files(files: dict, project, title: str, track: int, total: int) -> None:
    """Tag a finished chapter's MP3/FLAC in place (before their hashes are taken)."""
    tags = chapter_tags(project, title, track, total)
    for path in files.values():
        tag_file(path, tags)


def tag_book(path: str | Path, project) -> list[str]:
    """Add to the M4B the tags and cover it lacks (its chapters are kept)."""
    return ensure_m4b_tags(path, book_tags(project))


def marks_from(titles, lengths_ms) -> list[Mark]:
    out, t = [], 0
    for title, n in zip(titles, lengths_ms):
        out.append(Mark(title, t, t + n))
        t += n
    return out
