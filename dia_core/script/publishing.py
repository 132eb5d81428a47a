"""The ``podcast:`` and ``acx:`` sections of project.yaml: where and how a project is published.

``podcast:`` describes the show and this episode for the RSS feed (dia_core.publish.feed);
``acx:`` the ACX package (dia_core.publish.acx): channels, credits, the retail sample. Both are
validated here with ``file:line: field: problem`` errors like the rest of the manifest
(docs/project-yaml.md, "Publishing").
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from .yamltree import Located, Validator

__all__ = ["PodcastSettings", "AcxSettings", "RetailSample", "parse_podcast", "parse_acx",
           "EPISODE_TYPES", "RETAIL_SAMPLE_RANGE_S"]

PODCAST_KEYS = ("show", "description", "link", "image", "author", "owner", "categories", "explicit",
                "language", "season", "episode", "episode_type", "pub_date", "base_url", "guid")
EPISODE_TYPES = ("full", "trailer", "bonus")
EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[A-Za-z0-9-]{2,}$")
ACX_KEYS = ("channels", "credits", "retail_sample")
RETAIL_KEYS = ("chapter", "start_s", "duration_s")
RETAIL_SAMPLE_RANGE_S = (60.0, 300.0)     # ACX: a retail sample of 1 to 5 minutes


@dataclass(frozen=True)
class PodcastSettings:
    show: str
    description: str
    link: str
    base_url: str                     # ends with "/": where this episode's delivery folder is served
    pub_date: dt.datetime             # timezone-aware (UTC when the YAML gives none)
    owner_name: str
    owner_email: str
    author: str
    categories: tuple[str, ...]       # "Category" or "Category/Subcategory"
    language: str
    image: Path | None = None
    explicit: bool = False
    season: int | None = None
    episode: int | None = None
    episode_type: str = "full"
    guid: str | None = None


@dataclass(frozen=True)
class RetailSample:
    chapter: int = 1                  # 1-based chapter the sample starts in
    start_s: float = 0.0              # from the start of that chapter
    duration_s: float = 90.0
    lines: dict = field(default_factory=dict, compare=False)   # key -> manifest line, for errors


@dataclass(frozen=True)
class AcxSettings:
    channels: int = 1                 # 1 mono, 2 stereo: every file of the package alike
    credits: bool = True              # opening and closing credits files
    retail_sample: RetailSample = field(default_factory=RetailSample)


def _url(v: Validator, y: Located, path: str) -> str:
    s = v.string(y, path, max_len=2000)
    parts = urlsplit(s)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in s:
        raise v.error(f"must be an http(s) URL, got {s!r}", y, path)
    return s


def _date(v: Validator, y: Located, path: str) -> dt.datetime:
    raw = y.value
    if isinstance(raw, dt.datetime):
        d = raw
    elif isinstance(raw, dt.date):
        d = dt.datetime(raw.year, raw.month, raw.day)
    else:
        s = v.string(y, path, max_len=64)
        try:
            d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise v.error(f"not a date: {s!r} (ISO 8601, e.g. 2026-11-30 or 2026-11-30T08:00:00Z)", y, path) from None
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def parse_podcast(v: Validator, y: Located | None, *, author: str, language: str,
                  check_image: Callable[[Path, Located, str], None], key_line: int | None = None
                  ) -> PodcastSettings | None:
    """The ``podcast:`` section, or None when absent. ``check_image(path, located, field)`` checks
    the show artwork (the manifest's cover check: JPEG or PNG that decodes); ``key_line``: the line
    of ``podcast:`` (where a missing key is reported)."""
    if y is None or y.value is None:
        return None
    m = v.mapping(y, "podcast", PODCAST_KEYS)

    def req(key: str) -> Located:
        if key not in m:
            raise v.error("required key missing", y, f"podcast.{key}", line=key_line)
        return m[key]

    show = v.string(req("show"), "podcast.show", max_len=500)
    description = v.string(req("description"), "podcast.description", max_len=4000)
    link = _url(v, req("link"), "podcast.link")
    base_url = _url(v, req("base_url"), "podcast.base_url")
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    owner_y = req("owner")
    om = v.mapping(owner_y, "podcast.owner", ("name", "email"))
    if "email" not in om:
        raise v.error("required key missing (Apple and Spotify verify the show through it)", owner_y,
                      "podcast.owner.email", line=y.key_lines.get("owner"))
    email = v.string(om["email"], "podcast.owner.email", max_len=320)
    if not EMAIL_RE.match(email):
        raise v.error(f"not an email address: {email!r}", om["email"], "podcast.owner.email")
    owner_name = v.string(om["name"], "podcast.owner.name", max_len=500) if "name" in om else author
    cy = req("categories")
    items = cy.value if isinstance(cy.value, list) else [cy]
    categories = []
    for item in items:
        c = v.string(item, "podcast.categories", max_len=200)
        if c.count("/") > 1 or any(not p.strip() for p in c.split("/")):
            raise v.error(f"a category is 'Name' or 'Name/Subcategory', got {c!r}", item, "podcast.categories")
        categories.append("/".join(p.strip() for p in c.split("/")))
    if not categories:
        raise v.error("needs at least one category", cy, "podcast.categories")
    image = None
    if "image" in m and m["image"].value is not None:
        image = v.path(m["image"], "podcast.image")
        check_image(image, m["image"], "podcast.image")
    etype = v.string(m["episode_type"], "podcast.episode_type") if "episode_type" in m else "full"
    if etype not in EPISODE_TYPES:
        raise v.error(f"must be one of {', '.join(EPISODE_TYPES)}", m["episode_type"], "podcast.episode_type")
    lang = v.string(m["language"], "podcast.language", max_len=35) if "language" in m else language
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", lang):
        raise v.error(f"not a language tag: {lang!r} (e.g. en, en-US)", m["language"], "podcast.language")
    return PodcastSettings(
        show=show, description=description, link=link, base_url=base_url,
        pub_date=_date(v, req("pub_date"), "podcast.pub_date"), owner_name=owner_name, owner_email=email,
        author=v.string(m["author"], "podcast.author", max_len=500) if "author" in m else author,
        categories=tuple(categories), language=lang, image=image,
        explicit=v.boolean(m["explicit"], "podcast.explicit") if "explicit" in m else False,
        season=v.integer(m["season"], "podcast.season", 1, 100_000) if "season" in m else None,
        episode=v.integer(m["episode"], "podcast.episode", 1, 1_000_000) if "episode" in m else None,
        episode_type=etype,
        guid=v.string(m["guid"], "podcast.guid", max_len=500) if "guid" in m else None)


def parse_acx(v: Validator, y: Located | None) -> AcxSettings:
    """The ``acx:`` section (defaults when absent)."""
    d = AcxSettings()
    if y is None or y.value is None:
        return d
    m = v.mapping(y, "acx", ACX_KEYS)
    channels = d.channels
    if "channels" in m:
        s = v.string(m["channels"], "acx.channels")
        if s not in ("mono", "stereo"):
            raise v.error(f"must be mono or stereo, got {s!r}", m["channels"], "acx.channels")
        channels = 1 if s == "mono" else 2
    credits = v.boolean(m["credits"], "acx.credits") if "credits" in m else d.credits
    sample = d.retail_sample
    if "retail_sample" in m:
        sy = m["retail_sample"]
        sm = v.mapping(sy, "acx.retail_sample", RETAIL_KEYS)
        lo, hi = RETAIL_SAMPLE_RANGE_S
        sample = RetailSample(
            chapter=v.integer(sm["chapter"], "acx.retail_sample.chapter", 1, 100_000) if "chapter" in sm else 1,
            start_s=v.number(sm["start_s"], "acx.retail_sample.start_s", 0, 86_400) if "start_s" in sm else 0.0,
            duration_s=(v.number(sm["duration_s"], "acx.retail_sample.duration_s", lo, hi)
                        if "duration_s" in sm else d.retail_sample.duration_s),
            lines={"": sy.line, **{k: item.line for k, item in sm.items()}})
    return AcxSettings(channels=channels, credits=credits, retail_sample=sample)
