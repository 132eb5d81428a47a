"""Content-addressed store of generated takes: finished GPU work is never redone.

A take's key hashes everything that determines its audio (text, prompt text, the voices' prompt
hashes, seed, generation parameters, model checksum, engine name and version). An entry is a
float32 WAV plus a JSON record written last that holds the WAV's sha256: an entry without its
record, or whose WAV does not match the recorded checksum, is treated as missing and regenerated.
The store may live on storage shared by several hosts; writes are atomic renames, so two hosts
that race on one key both publish a complete, identical entry.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import atomic, faults
from ..files import file_sha256
from ..params import SAMPLE_RATE


@dataclass(frozen=True)
class StoredTake:
    key: str
    audio_path: Path
    record: dict  # what was generated and how: seed, attempt, hit_limit, qc, ...

    def load_audio(self) -> np.ndarray:
        audio, sr = sf.read(self.audio_path, dtype="float32", always_2d=False)
        assert sr == SAMPLE_RATE, f"{self.audio_path}: expected {SAMPLE_RATE} Hz, found {sr}"
        return audio


class SegmentStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> StoredTake | None:
        """The take stored under ``key``, or None if missing or corrupt (corrupt entries are removed)."""
        d = self._dir(key)
        record_path, audio_path = d / "take.json", d / "take.wav"
        if not record_path.exists():
            return None
        try:
            record = json.loads(record_path.read_text())
            ok = audio_path.exists() and file_sha256(audio_path) == record["audio_sha256"]
        except (OSError, ValueError, KeyError):
            ok = False
        if not ok:
            self.discard(key)
            return None
        return StoredTake(key, audio_path, record)

    def put(self, key: str, audio: np.ndarray, record: dict) -> StoredTake:
        d = self._dir(key)
        buf = io.BytesIO()
        sf.write(buf, np.asarray(audio, dtype=np.float32), SAMPLE_RATE, format="WAV", subtype="FLOAT")
        data = buf.getvalue()
        atomic.write_bytes(d / "take.wav", data)
        faults.hit("store-put", key)  # between the audio and its record: the entry must read as missing
        record = {**record, "key": key, "audio_sha256": hashlib.sha256(data).hexdigest(),
                  "samples": int(len(audio))}
        atomic.write_json(d / "take.json", record)  # last: its presence marks a finished entry
        faults.hit("stored", key)   # the entry is complete (the scale-out test counts these)
        return StoredTake(key, d / "take.wav", record)

    def discard(self, key: str) -> None:
        d = self._dir(key)
        for name in ("take.json", "take.wav"):
            (d / name).unlink(missing_ok=True)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    # Notes: small JSON results kept beside a take (listening results, keyed by the listener's
    # identity), so a re-render reads them instead of measuring again.
    def read_note(self, key: str, name: str) -> dict | None:
        path = self._dir(key) / f"{name}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def write_note(self, key: str, name: str, data: dict) -> None:
        atomic.write_json(self._dir(key) / f"{name}.json", data)
