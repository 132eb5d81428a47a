"""Synthetic deliveries for the publishing tests: chapter masters (speech-like noise bursts between
room tone, at ACX levels) and chapter manifests with segment times, without any TTS render."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dia_core.audio.stitch import room_tone

SR = 44100


def speechlike(seconds: float, rng) -> np.ndarray:
    """Noise with a 4 Hz syllable envelope peaking at -6 dBFS, RMS about -18 dBFS (a chapter of them reads about -20 dB)."""
    n = int(seconds * SR)
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * np.arange(n) / SR)
    x = np.clip(rng.standard_normal(n), -2.5, 2.5).astype(np.float32) * env.astype(np.float32)   # crest ~13 dB
    x *= np.float32(10 ** (-6 / 20)) / np.abs(x).max()
    return x


def make_chapter(folder: Path, cid: str, title: str, n_segments: int, *, seconds: float = 4.0,
                 seed: int = 0, gain_db: float = 0.0) -> dict:
    """Write folder/masters/<cid>.wav and folder/manifests/<cid>.json; return a project-manifest
    chapter entry (id, title, manifest, master, files, duration_s)."""
    rng = np.random.default_rng(seed)
    pieces, segments, t = [room_tone(int(0.75 * SR), -70, rng)], [], int(0.75 * SR)
    for i in range(n_segments):
        if i:
            pause = room_tone(int(0.7 * SR), -70, rng)
            pieces.append(pause)
            t += len(pause)
        s = speechlike(seconds, rng)
        segments.append({"id": f"{cid}-s{i}", "text": f"Segment {i} of {title}.", "speakers": ["Narrator"],
                         "boundary": "chapter_start" if i == 0 else "paragraph",
                         "start_ms": round(t * 1000 / SR), "end_ms": round((t + len(s)) * 1000 / SR)})
        pieces.append(s)
        t += len(s)
    pieces.append(room_tone(int(2.5 * SR), -70, rng))
    audio = np.concatenate(pieces) * np.float32(10 ** (gain_db / 20))
    master = folder / "masters" / f"{cid}.wav"
    master.parent.mkdir(parents=True, exist_ok=True)
    sf.write(master, audio, SR, subtype="FLOAT")
    (folder / "manifests").mkdir(parents=True, exist_ok=True)
    (folder / "manifests" / f"{cid}.json").write_text(json.dumps({"segments": segments}))
    return {"id": cid, "title": title, "manifest": f"manifests/{cid}.json", "master": str(master),
            "files": [], "duration_s": len(audio) / SR}


@pytest.fixture
def chapter_factory():
    return make_chapter
