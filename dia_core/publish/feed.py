"""The podcast feed of a catalog: RSS 2.0 with the itunes namespace (feedgen's podcast extension)
and the Podcasting 2.0 ``podcast`` namespace (``podcast:chapters``, ``podcast:transcript``; a
feedgen extension below, built with lxml like the rest of the feed: no string templates).

Built from the ``episode.json`` records the episodes' deliveries hold (dia_core.publish.episode):
one item per episode, newest first; the channel (show title, description, link, artwork, owner,
categories, language, explicit) is the newest episode's ``podcast:`` section.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from ..atomic import write_bytes
from .episode import EPISODE_DIR, EPISODE_RECORD

__all__ = ["PODCAST_NS", "build_feed", "write_feed", "find_episode_records"]

PODCAST_NS = "https://podcastindex.org/namespace/1.0"


class _PodcastIndexFeed(BaseExtension):
    def extend_ns(self):
        return {"podcast": PODCAST_NS}


class _PodcastIndexEntry(BaseEntryExtension):
    """``podcast:chapters`` and ``podcast:transcript`` children of an item."""

    def __init__(self):
        self.chapters: dict | None = None
        self.transcripts: list[dict] = []

    def extend_ns(self):
        return {"podcast": PODCAST_NS}

    def extend_rss(self, item):
        if self.chapters:
            etree.SubElement(item, f"{{{PODCAST_NS}}}chapters", url=self.chapters["url"], type=self.chapters["type"])
        for t in self.transcripts:
            attrs = {"url": t["url"], "type": t["type"]}
            if t.get("language"):
                attrs["language"] = t["language"]
            if t.get("rel"):
                attrs["rel"] = t["rel"]
            etree.SubElement(item, f"{{{PODCAST_NS}}}transcript", **attrs)
        return item


def find_episode_records(root: str | Path) -> list[Path]:
    """Every ``podcast/episode.json`` under ``root`` (a catalog's output folder)."""
    return sorted(p for p in Path(root).rglob(f"{EPISODE_DIR}/{EPISODE_RECORD}") if ".superseded" not in p.parts)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def build_feed(records: list[dict]) -> bytes:
    """The RSS document (UTF-8 bytes) for these episode records."""
    if not records:
        raise ValueError("no episodes: a feed needs at least one")
    records = sorted(records, key=lambda r: dt.datetime.fromisoformat(r["pub_date"]), reverse=True)
    show = records[0]["show"]
    fg = FeedGenerator()
    fg.load_extension("podcast")
    fg.register_extension("podcastindex", _PodcastIndexFeed, _PodcastIndexEntry)
    fg.title(show["title"])
    fg.description(show["description"])
    fg.link(href=show["link"], rel="alternate")
    fg.language(show["language"])
    fg.author({"name": show["author"], "email": show["owner_email"]})
    fg.generator("dia-studio")
    fg.podcast.itunes_author(show["author"])
    fg.podcast.itunes_owner(name=show["owner_name"], email=show["owner_email"])
    fg.podcast.itunes_explicit("yes" if show["explicit"] else "no")
    fg.podcast.itunes_category([{"cat": c.split("/")[0], **({"sub": c.split("/")[1]} if "/" in c else {})}
                                for c in show["categories"]])
    fg.podcast.itunes_summary(show["description"])
    if show.get("image_url"):
        fg.image(url=show["image_url"], title=show["title"], link=show["link"])
        fg.podcast.itunes_image(show["image_url"])
    fg.lastBuildDate(dt.datetime.fromisoformat(records[0]["pub_date"]))   # reproducible: no clock
    for r in reversed(records):   # feedgen prepends by default; append oldest .. newest, then sort
        fe = fg.add_entry(order="prepend")
        fe.title(r["title"])
        fe.description(r["description"] or r["title"])
        fe.guid(r["guid"], permalink=False)
        fe.pubDate(dt.datetime.fromisoformat(r["pub_date"]))
        enc = r["enclosure"]
        fe.enclosure(enc["url"], str(enc["length"]), enc["type"])
        fe.podcast.itunes_duration(_duration(r["duration_s"]))
        fe.podcast.itunes_explicit("yes" if r["explicit"] else "no")
        fe.podcast.itunes_episode_type(r["episode_type"])
        if r.get("season"):
            fe.podcast.itunes_season(r["season"])
        if r.get("episode"):
            fe.podcast.itunes_episode(r["episode"])
        fe.podcastindex.chapters = r["chapters"]
        fe.podcastindex.transcripts = [{**t, "language": r.get("language")} for t in r["transcripts"]]
    return fg.rss_str(pretty=True)


def write_feed(catalog_out: str | Path, target: str | Path | None = None) -> Path | None:
    """Write ``feed.xml`` for every episode record under ``catalog_out`` (None when there is none)."""
    paths = find_episode_records(catalog_out)
    if not paths:
        return None
    records = [json.loads(p.read_text()) for p in paths]
    target = Path(target) if target else Path(catalog_out) / "feed.xml"
    return write_bytes(target, build_feed(records))
