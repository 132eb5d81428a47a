"""`catalog` over two podcast episodes (the tiny fixture project with a `podcast:` section, its
chapters as sections): one feed.xml with two items, each episode's MP3 carrying ID3 chapters that
match its episode.json, chapters JSON and transcripts next to it."""
from __future__ import annotations

import json
import subprocess

import feedparser

from dia_core.production.options import RenderOptions
from dia_core.publish.tags import read_mp3_chapters
from tests.reliability.fixture import PROJECT_YAML, REFERENCE_TRANSCRIPT, build_project

PODCAST = """\
podcast:
  show: Tiny Show
  description: Two tiny episodes.
  link: https://example.com/tiny
  owner: {{name: Owner, email: owner@example.com}}
  categories: [Arts]
  episode: {n}
  pub_date: 2026-11-{day:02d}
  base_url: https://example.com/tiny/ep{n}/
"""


def test_catalog_publishes_one_feed_for_two_episodes(tmp_path):
    from flows.catalog import narrate_catalog

    catalog = tmp_path / "catalog"
    for n in (1, 2):
        build_project(catalog, name=f"ep{n}", yaml_text=PROJECT_YAML.format(transcript=REFERENCE_TRANSCRIPT)
                      .replace("title: Tiny Bell", f"title: Tiny Bell {n}") + PODCAST.format(n=n, day=n + 1))
    out = tmp_path / "out"
    # one store: the second episode's takes are the first's (same text, voices and seeds)
    states = narrate_catalog(str(catalog), RenderOptions(draft=True, out_dir=str(out), store=str(tmp_path / "store")))
    assert set(states.values()) == {"COMPLETED"}
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo and feed.feed.title == "Tiny Show"
    assert [e.title for e in feed.entries] == ["Tiny Bell 2", "Tiny Bell 1"]
    for e, n in zip(feed.entries, (2, 1)):
        record = json.loads((out / f"ep{n}" / "podcast" / "episode.json").read_text())
        mp3 = out / f"ep{n}" / record["enclosure"]["path"]
        assert e.enclosures[0].href == f"https://example.com/tiny/ep{n}/podcast/ep{n}.mp3"
        assert int(e.enclosures[0].length) == mp3.stat().st_size
        marks = [(m.title, m.start_ms, m.end_ms) for m in read_mp3_chapters(mp3)]
        assert marks == [(m["title"], m["start_ms"], m["end_ms"]) for m in record["chapters"]["marks"]]
        assert [t for t, _, _ in marks] == ["Chapter One: The Bell", "Chapter Two: The Boat"]
        probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_chapters", str(mp3)],
                                          capture_output=True, text=True, check=True).stdout)
        assert [(c["tags"]["title"], int(c["start"]), int(c["end"])) for c in probe["chapters"]] == marks
        manifest = json.loads((out / f"ep{n}" / "manifest.json").read_text())
        for c, (_, start, end) in zip(manifest["chapters"], marks):   # sections = the delivered chapters
            assert abs(c["duration_s"] * 1000 - (end - start)) <= 1
        for t in record["transcripts"]:
            assert (out / f"ep{n}" / t["path"]).is_file()
