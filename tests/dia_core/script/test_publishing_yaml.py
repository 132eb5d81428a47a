"""The podcast:, acx: and year: keys of project.yaml: values, defaults and file:line:field errors;
the manuscript's explicit chapter marker."""
from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path

import pytest

from dia_core.errors import InputError
from dia_core.script.manuscript import Casting, parse_text
from dia_core.script.project import load_project

BASE = """\
title: Episode 3
author: A. Host
language: en-GB
manuscript: ep.md
year: 2026
voices:
  host:
    seed: 5
"""
PODCAST = """\
podcast:
  show: The Show
  description: About things.
  link: https://example.com/show
  owner:
    email: host@example.com
  categories: [Education / Self-Improvement, Arts]
  pub_date: {date}
  base_url: {base}
"""


def load(tmp_path: Path, extra: str) -> object:
    (tmp_path / "ep.md").write_text("# One\n\nHello.\n")
    (tmp_path / "project.yaml").write_text(BASE + textwrap.dedent(extra))
    return load_project(tmp_path / "project.yaml")


def error(tmp_path, extra) -> str:
    with pytest.raises(InputError) as ei:
        load(tmp_path, extra)
    return str(ei.value)


def test_podcast_section_values_and_defaults(tmp_path):
    p = load(tmp_path, PODCAST.format(date="2026-11-30", base="http://example.com/show/ep3"))
    pod = p.podcast
    assert p.year == 2026
    assert pod.base_url == "http://example.com/show/ep3/"        # one trailing slash
    assert pod.pub_date == dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    assert pod.categories == ("Education/Self-Improvement", "Arts")
    assert (pod.author, pod.owner_name, pod.language) == ("A. Host", "A. Host", "en-GB")   # from the project
    assert (pod.explicit, pod.episode_type, pod.image, pod.season) == (False, "full", None, None)
    p = load(tmp_path, PODCAST.format(date="'2026-11-30T09:30:00+01:00'", base="https://x.org/"))
    assert p.podcast.pub_date == dt.datetime(2026, 11, 30, 8, 30, tzinfo=dt.timezone.utc)
    assert load(tmp_path, "").podcast is None


@pytest.mark.parametrize("old,new,says", [
    ("pub_date: 2026-11-30", "pub_date: next tuesday", r"project.yaml:\d+: podcast.pub_date: not a date"),
    ("categories: [Education / Self-Improvement, Arts]", "categories: [a/b/c]",
     r"project.yaml:\d+: podcast.categories: a category is 'Name' or 'Name/Subcategory'"),
    ("    email: host@example.com", "    email: not-an-address", r"podcast.owner.email: not an email address"),
    ("  link: https://example.com/show", "  link: example.com", r"podcast.link: must be an http\(s\) URL"),
    ("  show: The Show\n", "", r"project.yaml:9: podcast.show: required key missing"),   # the podcast: line
])
def test_podcast_errors_name_file_line_and_field(tmp_path, old, new, says):
    text = PODCAST.format(date="2026-11-30", base="https://example.com/")
    assert old in text
    msg = error(tmp_path, text.replace(old, new))
    assert re.search(says, msg), msg


def test_acx_section(tmp_path):
    p = load(tmp_path, "acx:\n  channels: stereo\n  credits: false\n  retail_sample: {chapter: 2, start_s: 30, duration_s: 120}\n")
    assert p.acx.channels == 2 and p.acx.credits is False
    assert (p.acx.retail_sample.chapter, p.acx.retail_sample.start_s, p.acx.retail_sample.duration_s) == (2, 30, 120)
    assert load(tmp_path, "").acx.channels == 1 and load(tmp_path, "").acx.credits is True
    assert "acx.channels: must be mono or stereo" in error(tmp_path, "acx:\n  channels: quad\n")
    msg = error(tmp_path, "acx:\n  retail_sample: {duration_s: 400}\n")
    assert ":10: acx.retail_sample.duration_s: must be between 60 and 300" in msg


def test_explicit_chapter_marker_starts_an_unread_chapter():
    cast = Casting("host", {}, {}, {"S1": "host", "S2": None}, "Episode")
    chapters, _ = parse_text("# Episode\n\nHello.\n\n<!-- chapter: Friction -->\n\nMore.\n\n"
                          "<!--chapter:Tracking-->\nLast.\n", cast)
    assert [(c.title, c.has_heading) for c in chapters] == [("Episode", True), ("Friction", False), ("Tracking", False)]
    assert [b.text for b in chapters[1].blocks] == ["More."]
