"""Draw the example projects' cover art (deterministic: same bytes every run) with Pillow.

    python scripts/make_example_covers.py

projects/short-audiobook/cover.png: 2400 x 2400 (ACX's minimum); projects/podcast-episode/cover.png:
1400 x 1400 (Apple Podcasts' minimum). Flat shapes, so the PNGs stay a few tens of KB.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1] / "projects"


def lighthouse(size: int) -> Image.Image:
    im = Image.new("RGB", (size, size), (18, 32, 58))
    d = ImageDraw.Draw(im)
    u = size / 24
    d.rectangle([0, 17 * u, size, size], fill=(12, 58, 84))                      # sea
    d.polygon([(10 * u, 17 * u), (14 * u, 17 * u), (13 * u, 7 * u), (11 * u, 7 * u)], fill=(236, 232, 220))
    for k in range(3):                                                              # red bands
        y = 9 * u + k * 2.6 * u
        d.rectangle([10 * u, y, 14 * u, y + u], fill=(176, 48, 44))
    d.rectangle([10.6 * u, 5.6 * u, 13.4 * u, 7 * u], fill=(250, 214, 110))        # lamp
    d.polygon([(13.4 * u, 6 * u), (24 * u, 3 * u), (24 * u, 9 * u)], fill=(60, 72, 96))   # beam
    d.rectangle([2 * u, 2 * u, 22 * u, 3.2 * u], fill=(236, 232, 220))             # title bar
    return im


def study_hall(size: int) -> Image.Image:
    im = Image.new("RGB", (size, size), (250, 244, 230))
    d = ImageDraw.Draw(im)
    u = size / 24
    d.ellipse([5 * u, 5 * u, 19 * u, 19 * u], fill=(38, 110, 96))
    d.rectangle([8 * u, 9 * u, 16 * u, 15 * u], fill=(250, 244, 230))              # an open book
    d.line([12 * u, 9 * u, 12 * u, 15 * u], fill=(38, 110, 96), width=int(u / 3))
    return im


if __name__ == "__main__":
    lighthouse(2400).save(ROOT / "short-audiobook" / "cover.png", optimize=True)
    study_hall(1400).save(ROOT / "podcast-episode" / "cover.png", optimize=True)
