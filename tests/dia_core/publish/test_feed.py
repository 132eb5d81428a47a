"""The podcast episode (MP3 with ID3 chapters, JSON chapters, transcripts, episode.json) built from
synthetic deliveries of two episodes, and their feed parsed back with feedparser and lxml."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from PIL import Image

from dia_core.audio import captions as cap
from dia_core.files import file_sha256
from dia_core.publish.episode import build_episode, validate_chapters_json
from dia_core.publish.feed import PODCAST_NS, write_feed
from dia_core.publish.tags import Mark, read_mp3_chapters
from dia_core.script.project import load_project
from dia_core.settings import DeliverySettings

from .conftest import make_chapter

YAML = """\
title: "Study Hall {n}: {title}"
author: Study Hall
narrator: Alex and Sam
description: Episode {n}.
language: en
manuscript: episode.md
voices:
  alex:
    seed: 5
podcast:
  show: Study Hall
  description: Two hosts on learning things the slow way.
  link: https://example.com/study-hall
  image: cover.png
  owner:
    name: Alex Rivera
    email: studyhall@example.com
  categories: [Education/Self-Improvement, Arts]
  season: 1
  episode: {n}
  pub_date: {date}
  base_url: https://cdn.example.com/study-hall/ep{n}
"""
PODCAST = DeliverySettings(profile="podcast", formats=("mp3",), mp3_bitrate_kbps=96)


def _episode_project(root: Path, n: int, title: str, date: str) -> Path:
    d = root / f"ep{n}"
    d.mkdir(parents=True)
    (d / "episode.md").write_text("# Hello\n\nHi there.\n")
    Image.new("RGB", (1400, 1400), (30, 90, 80)).save(d / "cover.png")
    (d / "project.yaml").write_text(YAML.format(n=n, title=title, date=date))
    return d / "project.yaml"


def _delivery(out: Path, n_sections: int, seed: int) -> list[dict]:
    chapters = [make_chapter(out, f"chapter-0{i + 1}", f"Section {i + 1}", 2, seconds=1.5, seed=seed + i)
                for i in range(n_sections)]
    for c in chapters[:1]:   # one chapter with a delivered VTT (speaker per cue), the rest from manifests
        segs = json.loads((out / c["manifest"]).read_text())["segments"]
        cues = [cap.Cue(s["start_ms"] / 1000, s["end_ms"] / 1000, "ALEX" if k % 2 == 0 else "SAM", s["text"])
                for k, s in enumerate(segs)]
        cap.write_vtt(cues, out / f"{c['id']}.vtt")
        c["files"] = [{"path": f"{c['id']}.vtt"}]
    return chapters


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog")
    out = root / "out"
    episodes = {}
    for n, title, date, sections in ((1, "Friction", "2026-11-02T08:00:00Z", 3), (2, "Tracking", "2026-11-09", 1)):
        project = load_project(_episode_project(root / "projects", n, title, date))
        delivery = out / f"ep{n}"
        chapters = _delivery(delivery, sections, seed=10 * n)
        record = build_episode(project, delivery, chapters, PODCAST)
        episodes[n] = {"project": project, "out": delivery, "chapters": chapters, "record": record}
    first = episodes[1]
    mp3 = first["out"] / first["record"]["enclosure"]["path"]
    episodes["first_build_sha"] = file_sha256(mp3)
    episodes["rebuilt"] = build_episode(first["project"], first["out"], first["chapters"], PODCAST)   # a re-render
    feed = write_feed(out)
    return {"root": root, "out": out, "feed": feed, **episodes}


def test_episode_mp3_chapters_match_the_record_to_the_millisecond(catalog):
    ep = catalog[1]
    rec = ep["record"]
    mp3 = ep["out"] / rec["enclosure"]["path"]
    marks = [Mark(m["title"], m["start_ms"], m["end_ms"]) for m in rec["chapters"]["marks"]]
    assert [m.title for m in marks] == ["Section 1", "Section 2", "Section 3"]
    expected_ms = 0
    for m, c in zip(marks, ep["chapters"]):   # sections back to back, from the masters' lengths
        assert m.start_ms == expected_ms
        expected_ms = round(sum(x["duration_s"] for x in ep["chapters"][:marks.index(m) + 1]) * 1000)
        assert abs(m.end_ms - expected_ms) <= 1
    assert read_mp3_chapters(mp3) == marks
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_chapters", "-show_format",
                                       str(mp3)], capture_output=True, text=True, check=True).stdout)
    assert [(c["tags"]["title"], int(c["start"]), int(c["end"])) for c in probe["chapters"]] == \
        [(m.title, m.start_ms, m.end_ms) for m in marks]
    assert probe["format"]["tags"]["album"] == "Study Hall"
    assert abs(float(probe["format"]["duration"]) - rec["duration_s"]) < 0.01
    assert abs(rec["duration_s"] - marks[-1].end_ms / 1000) < 0.1
    # one section: no chapter frames
    assert read_mp3_chapters(catalog[2]["out"] / catalog[2]["record"]["enclosure"]["path"]) == []


def test_chapters_json_and_transcripts(catalog):
    ep = catalog[1]
    doc = json.loads((ep["out"] / ep["record"]["chapters"]["path"]).read_text())
    validate_chapters_json(doc)
    assert doc["version"] == "1.2.0"
    assert [(c["title"], round(c["startTime"] * 1000)) for c in doc["chapters"]] == \
        [(m["title"], m["start_ms"]) for m in ep["record"]["chapters"]["marks"]]
    import jsonschema
    with pytest.raises(jsonschema.ValidationError):
        validate_chapters_json({"version": "1.2.0", "chapters": [{"title": "no start time"}]})
    transcript = json.loads((ep["out"] / "podcast" / "transcript.json").read_text())
    speakers = [s["speaker"] for s in transcript["segments"]]
    assert speakers[:2] == ["ALEX", "SAM"] and "Narrator" in speakers   # VTT voices, then manifests'
    starts = [s["startTime"] for s in transcript["segments"]]
    assert starts == sorted(starts) and starts[-1] > ep["record"]["chapters"]["marks"][-1]["start_ms"] / 1000
    vtt = cap.read_vtt(ep["out"] / "podcast" / "ep1.vtt")
    assert [c.text for c in vtt] == [s["body"] for s in transcript["segments"]]


def test_rerender_keeps_guid_and_bytes(catalog):
    first, again = catalog[1]["record"], catalog["rebuilt"]
    assert again["guid"] == first["guid"] and again["enclosure"] == first["enclosure"]
    assert again["enclosure"]["sha256"] == catalog["first_build_sha"]
    assert first["guid"] != catalog[2]["record"]["guid"]


def test_feed_parses_back_with_two_items_matching_the_files(catalog):
    d = feedparser.parse(catalog["feed"].read_bytes())
    assert not d.bozo, d.bozo_exception
    assert d.version == "rss20"
    ch = d.feed
    assert ch.title == "Study Hall" and ch.link == "https://example.com/study-hall" and ch.language == "en"
    assert ch.subtitle == "Two hosts on learning things the slow way."
    assert ch.image.href == "https://cdn.example.com/study-hall/ep2/podcast/cover.png"   # the newest episode's
    assert ch.itunes_explicit is not True      # feedparser reads "no" as None (unset), "yes" as True
    assert ch.publisher_detail.email == "studyhall@example.com"
    assert {t.term for t in ch.tags} >= {"Education", "Self-Improvement", "Arts"}
    assert len(d.entries) == 2
    assert [e.itunes_episode for e in d.entries] == ["2", "1"]    # newest first
    for e in d.entries:
        ep = catalog[int(e.itunes_episode)]
        rec, out = ep["record"], ep["out"]
        assert e.id == rec["guid"] and e.guidislink is False
        enc = e.enclosures[0]
        mp3 = out / rec["enclosure"]["path"]
        assert enc.href == rec["enclosure"]["url"] and enc.type == "audio/mpeg"
        assert int(enc.length) == mp3.stat().st_size
        h, m, s = map(int, e.itunes_duration.split(":"))
        assert abs(h * 3600 + m * 60 + s - rec["duration_s"]) <= 0.5
        assert e.itunes_season == "1"
    # the podcast namespace (feedparser does not model it): lxml
    tree = etree.fromstring(catalog["feed"].read_bytes())
    itunes = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
    assert tree.findtext(f"channel/{itunes}explicit") == "no"
    assert tree.find(f"channel/{itunes}image").get("href").endswith(".png")
    items = tree.findall("channel/item")
    for item in items:
        guid = item.findtext("guid")
        ep = next(catalog[n] for n in (1, 2) if catalog[n]["record"]["guid"] == guid)
        base = ep["project"].podcast.base_url
        chapters = item.find(f"{{{PODCAST_NS}}}chapters")
        assert chapters.get("type") == "application/json+chapters"
        urls = [chapters.get("url")] + [t.get("url") for t in item.findall(f"{{{PODCAST_NS}}}transcript")]
        types = {t.get("type") for t in item.findall(f"{{{PODCAST_NS}}}transcript")}
        assert types == {"text/vtt", "application/x-subrip", "application/json"}
        for url in urls:   # every file is served under the episode's base URL, and exists there
            assert url.startswith(base)
            assert (ep["out"] / url[len(base):]).is_file()
