"""A tiny two-voice project for the review tests: a short chapter of six one-sentence segments and one of two,
seed-only voices (no reference files), MP3 only: it renders with the draft engine in seconds."""
from __future__ import annotations

from pathlib import Path

MANUSCRIPT = """# The Pier

The tide came in slowly over the grey stones.

MARA: Is the boat late again tonight?

The keeper looked at the harbour lights for a long time.

MARA: Then we wait for the morning ferry.

A gull called twice from the end of the pier.

The lamp turned and the night went on.

# Morning

MARA: The ferry is here at last.

The keeper waved from the pier.
"""

PROJECT = """title: Review Test
author: Test Author
manuscript: manuscript.md
seed: 42
sampling: {temperature: 1.3, speed_factor: 1.0}
voices:
  narrator: {seed: 7, draft_voice: en-gb+m1, calibration_text: "The lamp is lit."}
  mara: {seed: 11, draft_voice: en-us+f2, calibration_text: "I am here."}
characters: {MARA: mara}
narrator_voice: narrator
segmenting: {min_seconds: 1, max_seconds: 4}
delivery: {profile: podcast, formats: [mp3], captions: [vtt]}
"""


def write_project(folder: Path, temperature: float = 1.3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manuscript.md").write_text(MANUSCRIPT)
    (folder / "project.yaml").write_text(PROJECT.replace("temperature: 1.3", f"temperature: {temperature}"))
    return folder / "project.yaml"
