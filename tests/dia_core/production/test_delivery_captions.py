"""Rendered captions (and the chapter manifest's display text) show the manuscript's spelling, while
Dia is given the lexicon's respelling. The example audiobook respells "Caerwyn" as "Kair-win"; its
project is copied with a short first chapter and rendered with the draft engine through the plain
recipe functions (no Prefect)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dia_core.production import delivery, jobs, takes
from dia_core.production.options import RenderOptions
from dia_core.production import manifests as manifest_mod
from dia_core.audio.captions import read_srt, read_vtt

from tests.listening_off import without_listening

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def chapter_one(tmp_path_factory):
    if not shutil.which("espeak-ng"):
        pytest.fail("espeak-ng is required for draft renders")
    root = tmp_path_factory.mktemp("captions")
    shutil.copytree(REPO / "projects" / "short-audiobook", root / "short-audiobook",
                    ignore=shutil.ignore_patterns(".dia-studio", "out"))
    yaml = root / "short-audiobook" / "project.yaml"
    text = yaml.read_text()
    for old, new in (("formats: [mp3, m4b]", "formats: [wav]"), ("captions: [vtt]", "captions: [vtt, srt]"),
                     ("max_attempts: 3", "max_attempts: 1")):
        assert old in text
        text = text.replace(old, new)
    yaml.write_text(text)
    without_listening(yaml)
    # a short first chapter read by the two reference voices (no seed-only calibration): fast
    (root / "short-audiobook" / "manuscript.md").write_text(
        "# Chapter One: The Letter\n\nThe lighthouse at Caerwyn had stood for two hundred years. "
        "Mara had kept its lamp burning.\n\nMARA: Nobody leaves Caerwyn, not in a storm.\n")
    options = RenderOptions(out_dir=str(root / "out"), draft=True, store=str(root / "store"), chapters=(1,))
    job = jobs.open_job(yaml, options)
    outcomes = takes.generate_takes(job, takes.prepare_voices(job))
    result = delivery.finish_chapter(job, "chapter-01", outcomes)
    return job, result


def test_captions_show_the_manuscript_spelling(chapter_one):
    job, _ = chapter_one
    spoken = " ".join(s.text for s in job.plan.segments)
    assert "Kair-win" in spoken and "Caerwyn" not in spoken  # Dia reads the respelling
    for path, read in ((job.out_dir / "chapter-01.vtt", read_vtt), (job.out_dir / "chapter-01.srt", read_srt)):
        raw = path.read_text()
        assert "Caerwyn" in raw and "Kair-win" not in raw, path.name
        cues = read(path)
        assert any("The lighthouse at Caerwyn had stood" in c.text for c in cues)
        assert any(c.speaker == "MARA" and c.text == "Nobody leaves Caerwyn, not in a storm." for c in cues)


def test_manifest_keeps_dia_text_and_adds_display_text(chapter_one):
    job, result = chapter_one
    doc = json.loads((job.out_dir / result["manifest"]).read_text())
    manifest_mod.validate_chapter_manifest(doc)
    planned = {s.id: s for s in job.plan.segments}
    for seg in doc["segments"]:
        assert seg["text"] == planned[seg["id"]].text  # exactly what Dia was given
        assert "Kair-win" not in seg["display_text"]
    respelled = [s for s in doc["segments"] if "Kair-win" in s["text"]]
    assert respelled
    for seg in respelled:
        assert seg["display_text"] == seg["text"].replace("Kair-win", "Caerwyn")
