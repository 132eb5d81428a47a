"""A tiny project for the reliability suite: 2 chapters, a few short segments, one reference voice
made with espeak-ng and one seed-only voice; delivery mp3 + m4b + vtt (a draft render takes seconds)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

MANUSCRIPT = """\
# Chapter One: The Bell

The bell rang twice before the keeper woke.

ROSA: Who rings at this hour?

# Chapter Two: The Boat

At dawn a small boat came round the point.

ROSA: Not again.
"""

REFERENCE_TRANSCRIPT = "The lighthouse stood alone at the edge of the harbour every night."

PROJECT_YAML = """\
title: Tiny Bell
author: Reliability Suite
narrator: Test Voices
language: en
manuscript: manuscript.md
seed: 7
voices:
  narrator:
    reference: voices/narrator.wav
    transcript: "{transcript}"
    draft_voice: en-us+m3
  rosa:
    seed: 99
    calibration_text: "Mind the step there, the rope is wet."
    draft_voice: en-us+f3
characters:
  ROSA: rosa
narrator_voice: narrator
delivery:
  profile: podcast
  formats: [mp3, m4b]
  captions: [vtt]
segmenting:
  min_seconds: 1
  max_seconds: 4
qc:
  max_attempts: 1
  asr: off            # not about listening (tests/listening_off.py)
  voice_check: false
"""

_REF_CACHE: dict[str, bytes] = {}


def reference_wav_bytes() -> bytes:
    """A ~4 s speech clip made with espeak-ng (cached per process)."""
    if "ref" not in _REF_CACHE:
        import tempfile
        with tempfile.TemporaryDirectory() as td:
            wav = Path(td) / "ref.wav"
            subprocess.run([shutil.which("espeak-ng") or "espeak-ng", "-v", "en-us+m3", "-s", "150",
                            "-w", str(wav), "--", REFERENCE_TRANSCRIPT], check=True, capture_output=True)
            _REF_CACHE["ref"] = wav.read_bytes()
    return _REF_CACHE["ref"]


def build_project(root: Path, *, name: str = "tiny-bell", yaml_text: str | None = None,
                  manuscript: str | None = None) -> Path:
    """Create the fixture project under root/name; returns the path of its project.yaml."""
    proj = Path(root) / name
    (proj / "voices").mkdir(parents=True, exist_ok=True)
    (proj / "voices" / "narrator.wav").write_bytes(reference_wav_bytes())
    (proj / "manuscript.md").write_text(MANUSCRIPT if manuscript is None else manuscript, encoding="utf-8")
    text = yaml_text if yaml_text is not None else PROJECT_YAML.format(transcript=REFERENCE_TRANSCRIPT)
    (proj / "project.yaml").write_text(text, encoding="utf-8")
    return proj / "project.yaml"
