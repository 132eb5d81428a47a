"""A tiny two-voice project for the review tests: a short chapter of six one-sentence segments and one of two,
seed-only voices (no reference files), MP3 only: it renders with the draft engine in seconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dia_core.params import SAMPLE_RATE
from dia_core.production import manifests
from dia_core.production.store import SegmentStore
from dia_core.script.planner import plan_project
from dia_core.script.project import load_project


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
qc: {asr: 'off', voice_check: false}   # not about listening (tests/listening_off.py)
"""


def write_project(folder: Path, temperature: float = 1.3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manuscript.md").write_text(MANUSCRIPT)
    (folder / "project.yaml").write_text(PROJECT.replace("temperature: 1.3", f"temperature: {temperature}"))
    return folder / "project.yaml"


def _key(i: int, j: int = 0) -> str:
    return f"{i:02x}{j:02x}".ljust(64, "a")


def make_planned(tmp_path):
    """{project, plan, store, out, manifest}: a chapter manifest as a render writes it, with two
    attempts for segment 0 and one for the others, every take in the store."""
    path = write_project(tmp_path / "proj")
    project = load_project(path)
    plan = plan_project(project)
    store = SegmentStore(project.work_dir / "store")
    out = project.root / "out"
    chapter = plan.chapters[0]
    segments, t = [], 0
    for i, s in enumerate(chapter.segments):
        attempts = []
        for j in range(2 if i == 0 else 1):
            key = _key(i, j)
            store.put(key, np.full(SAMPLE_RATE // 10, 0.01 * (i + 1), np.float32),
                      {"kind": "segment", "segment_id": s.id, "attempt": j + 1, "seed": s.seed + j})
            attempts.append({"attempt": j + 1, "seed": s.seed + j, "key": key,
                             "qc": {"passed": j == 1 or i != 0, "score": 0.0, "metrics": {}, "failures": []}})
        chosen = attempts[-1]
        segments.append({"id": s.id, "text": s.text, "display_text": s.display_text, "voices": dict(s.slots),
                         "speakers": [x.character for x in s.turns], "seed": chosen["seed"],
                         "attempt": chosen["attempt"], "attempts": attempts, "sampling": s.sampling.to_dict(),
                         "start_ms": t, "end_ms": t + 1000, "qc": {k: chosen["qc"][k] for k in ("passed", "metrics", "failures")}})
        t += 1000
    (out / "manifests").mkdir(parents=True)
    (out / "chapter-01.mp3").write_bytes(b"ID3 not really audio")
    doc = {"schema_version": "1", "chapter_id": chapter.id, "title": chapter.title, "sample_rate": SAMPLE_RATE,
           "duration_ms": t, "segments": segments,
           "files": [manifests.file_entry(out / "chapter-01.mp3", relative_to=out)]}
    manifests.write_chapter_manifest(doc, out / "manifests" / f"{chapter.id}.json")
    return {"path": path, "project": project, "plan": plan, "store": store, "out": out, "manifest": doc}
