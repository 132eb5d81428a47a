"""Shared test signals: synthetic speech-like audio and short real speech from espeak-ng."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

SR = 44100


def speechlike(seconds: float, *, f0: float = 140.0, seed: int = 0, level: float = 0.2,
               lead: float = 0.3, trail: float = 0.4) -> np.ndarray:
    """Harmonic tone with vibrato, syllable-rate AM and random dropouts, padded with silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * ph) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * 3.5 * t + rng.uniform(0, 6)), 0, None) ** 0.7
    syl = (rng.random(int(seconds * 4) + 1) > 0.2).repeat(SR // 4 + 1)[: len(t)]
    x = x * env * syl
    x = x / np.abs(x).max() * level
    return np.concatenate([np.zeros(int(lead * SR)), x, np.zeros(int(trail * SR))]).astype(np.float32)


def espeak(text: str, path) -> np.ndarray:
    """Real speech from espeak-ng, read back as float32 mono 44.1 kHz."""
    from dia_core.audiofile import read_audio
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return read_audio(path)


@pytest.fixture(scope="session")
def speech_clips(tmp_path_factory):
    """Three short espeak-ng utterances (two voices) at 44.1 kHz."""
    if not shutil.which("espeak-ng"):
        pytest.fail("espeak-ng is required for the real-speech tests")
    d = tmp_path_factory.mktemp("espeak")
    texts = ["Chapter one. The lighthouse keeper climbed the stairs at dusk.",
             "Who is there? she asked, holding the lamp high.",
             "Only the wind, he said, and closed the heavy door behind him."]
    return [espeak(t, d / f"s{i}.wav") for i, t in enumerate(texts)]
