"""A podcast episode from a finished delivery: one MP3 of every chapter (the episode's sections)
with ID3 chapters, its Podcasting 2.0 JSON chapters file, captions (VTT, SRT) and speaker-labelled
JSON transcript of the whole episode, and ``episode.json``, the record the feed is built from.

Section times come from the chapter masters' sample counts (the same samples the MP3 encodes), so
the CHAP frames, the chapters JSON and episode.json agree to the millisecond.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import soundfile as sf

from ..atomic import write_bytes, write_json
from ..audio import captions as cap
from ..audio import encode
from ..audiofile import probe
from ..files import file_sha256
from .metadata import book_tags, marks_from
from .tags import publish_staged, write_mp3_tags

__all__ = ["build_episode", "validate_chapters_json", "EPISODE_DIR", "EPISODE_RECORD"]

EPISODE_DIR = "podcast"
EPISODE_RECORD = "episode.json"
CHAPTERS_VERSION = "1.2.0"
TRANSCRIPT_VERSION = "1.0.0"


@lru_cache(maxsize=None)
def _chapters_schema() -> dict:
    text = resources.files("dia_core").joinpath("schemas", "podcast-chapters.schema.json").read_text("utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def validate_chapters_json(doc: dict) -> None:
    """Raise jsonschema.ValidationError unless ``doc`` is a valid JSON chapters file."""
    jsonschema.Draft202012Validator(_chapters_schema(), format_checker=jsonschema.FormatChecker()).validate(doc)


def _chapter_cues(out_dir: Path, chapter: dict, offset_s: float) -> list[cap.Cue]:
    """The chapter's caption cues (its delivered VTT: one cue per speaker turn; else one per
    segment from its manifest), moved by ``offset_s``."""
    vtt = next((out_dir / f["path"] for f in chapter["files"] if f["path"].endswith(".vtt")), None)
    if vtt is not None and vtt.is_file():
        cues = cap.read_vtt(vtt)
    else:
        cues = cap.cues_from_segments(json.loads((out_dir / chapter["manifest"]).read_text())["segments"])
    return [cap.Cue(c.start_s + offset_s, c.end_s + offset_s, c.speaker, c.text) for c in cues]


def episode_guid(project, enclosure_url: str) -> str:
    """The item's GUID: the YAML's ``podcast.guid``, else a UUID (v5) of the enclosure URL, the
    same for every render of the episode published at the same place."""
    return project.podcast.guid or str(uuid.uuid5(uuid.NAMESPACE_URL, enclosure_url))


def build_episode(project, out_dir: Path, chapters: list[dict], settings) -> dict:
    """Write ``out_dir/podcast/``: <folder>.mp3 (tagged, CHAP/CTOC for more than one section),
    chapters.json, transcript.json, <folder>.vtt/.srt and episode.json. ``chapters``: the project
    manifest's chapter entries in order (with ``master`` paths). Returns the episode record."""
    pod = project.podcast
    folder = Path(out_dir) / EPISODE_DIR
    name = project.root.name
    pieces, lengths = [], []
    sample_rate = None
    for c in chapters:
        audio, sr = sf.read(c["master"], dtype="float32", always_2d=False)
        sample_rate = sample_rate or sr
        if sr != sample_rate:
            raise ValueError(f"{c['master']}: sample rate {sr}, expected {sample_rate}")
        pieces.append(audio if audio.ndim == 1 else audio.mean(axis=1))
        lengths.append(len(pieces[-1]))
    audio = np.concatenate(pieces)
    del pieces
    edges = np.concatenate([[0], np.cumsum(lengths)])
    edges_ms = [int(round(e * 1000 / sample_rate)) for e in edges]
    marks = marks_from([c["title"] for c in chapters], np.diff(edges_ms).tolist())
    # The masters are finished to the profile's target: no decode for a lossy-gain correction.
    folder.mkdir(parents=True, exist_ok=True)

    def make(staged_stem: Path) -> Path:
        files = encode.export_chapter(audio, staged_stem, replace(settings, formats=("mp3",)),
                                      sample_rate=sample_rate, correct_lossy_gain=False)
        return write_mp3_tags(Path(files["mp3"]), book_tags(project), marks)
    mp3 = publish_staged(folder / f"{name}.mp3", make)

    base = pod.base_url + EPISODE_DIR + "/"
    chapters_doc = {"version": CHAPTERS_VERSION, "title": project.title, "podcastName": pod.show,
                    "author": pod.author, "fileName": mp3.name,
                    "chapters": [{"startTime": m.start_ms / 1000, "endTime": m.end_ms / 1000, "title": m.title}
                                 for m in marks]}
    validate_chapters_json(chapters_doc)
    write_json(folder / "chapters.json", chapters_doc)

    cues = [cue for c, start in zip(chapters, edges[:-1]) for cue in _chapter_cues(out_dir, c, start / sample_rate)]
    transcript = {"version": TRANSCRIPT_VERSION, "segments": [
        {"speaker": c.speaker or "", "startTime": round(c.start_s, 3), "endTime": round(c.end_s, 3), "body": c.text}
        for c in cues]}
    write_json(folder / "transcript.json", transcript)
    cap.write_vtt(cues, folder / f"{name}.vtt")
    cap.write_srt(cues, folder / f"{name}.srt")

    info = probe(mp3)
    duration_s = float(info["format"]["duration"])
    url = base + mp3.name
    record = {
        "title": project.title, "description": project.description or pod.description,
        "guid": episode_guid(project, url),
        "pub_date": pod.pub_date.isoformat(), "season": pod.season, "episode": pod.episode,
        "episode_type": pod.episode_type, "explicit": pod.explicit,
        "enclosure": {"path": f"{EPISODE_DIR}/{mp3.name}", "url": url, "length": mp3.stat().st_size,
                      "type": "audio/mpeg", "sha256": file_sha256(mp3)},
        "duration_s": round(duration_s, 3),
        "chapters": {"path": f"{EPISODE_DIR}/chapters.json", "url": base + "chapters.json",
                     "type": "application/json+chapters",
                     "marks": [{"title": m.title, "start_ms": m.start_ms, "end_ms": m.end_ms} for m in marks]},
        "transcripts": [
            {"path": f"{EPISODE_DIR}/{name}.vtt", "url": base + f"{name}.vtt", "type": "text/vtt", "rel": "captions"},
            {"path": f"{EPISODE_DIR}/{name}.srt", "url": base + f"{name}.srt", "type": "application/x-subrip",
             "rel": "captions"},
            {"path": f"{EPISODE_DIR}/transcript.json", "url": base + "transcript.json",
             "type": "application/json"}],
        "show": {"title": pod.show, "description": pod.description, "link": pod.link, "author": pod.author,
                 "owner_name": pod.owner_name, "owner_email": pod.owner_email,
                 "categories": list(pod.categories), "language": pod.language, "explicit": pod.explicit,
                 "image_url": (pod.base_url + EPISODE_DIR + "/" + "cover" + pod.image.suffix.lower())
                 if pod.image else None},
        "language": pod.language,
    }
    if pod.image:
        write_bytes(folder / ("cover" + pod.image.suffix.lower()), pod.image.read_bytes())
    write_json(folder / EPISODE_RECORD, record)
    return record
