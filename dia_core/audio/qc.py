"""Segment QC: pure functions over a generated segment's audio and metadata.

Checks (each failure is a short string in ``QCResult.failures``):

- ``duration_ratio``: actual speech duration / duration expected from the text outside
  [duration_ratio_min, duration_ratio_max] (Dia skipping or repeating text shows up here).
- ``hit_token_limit``: generation stopped at max_new_tokens without EOS (likely cut off).
- ``internal_silence``: a silence longer than max_internal_silence_s inside the speech.
- ``clipping``: runs of 3+ consecutive samples at |x| >= 0.999, or more than 0.1 % of samples there.
- ``near_silent``: RMS of the trimmed speech below -50 dBFS, or less than 0.2 s of active audio.

``score`` ranks attempts (higher is better): 0 minus 10 per failure, minus the |log2| distance of
the duration ratio from 1, minus small penalties for long silences and clipped samples.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..params import SAMPLE_RATE
from ..settings import QCSettings
from ..audiofile import as_float_mono, db, undb

__all__ = ["QCResult", "QCThresholds", "check_segment", "expected_seconds", "longest_internal_silence"]

SILENCE_DB = -45.0          # frames below this short-term RMS count as silence
CLIP_LEVEL = 0.999
NEAR_SILENT_DB = -50.0
MIN_ACTIVE_S = 0.2
CHARS_PER_SECOND = 14.0     # Dia speaks roughly 13-16 characters/s at speed 1.0 (English)


_DEFAULTS = QCSettings()


@dataclass(frozen=True)
class QCThresholds:
    """The QC limits without the retry count; defaults from dia_core.settings.QCSettings (one source)."""
    duration_ratio_min: float = _DEFAULTS.duration_ratio_min
    duration_ratio_max: float = _DEFAULTS.duration_ratio_max
    max_internal_silence_s: float = _DEFAULTS.max_internal_silence_s


@dataclass(frozen=True)
class QCResult:
    passed: bool
    score: float
    metrics: dict
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "score": self.score, "metrics": dict(self.metrics),
                "failures": list(self.failures)}


_TAG = re.compile(r"\[S\d+\]|\([^)]*\)")


def expected_seconds(text: str, *, speed_factor: float = 1.0, chars_per_second: float = CHARS_PER_SECOND) -> float:
    """Rough spoken duration of ``text``: speaker tags and (non-verbal) cues removed, whitespace
    collapsed, ``chars_per_second`` at speed 1.0, stretched by 1/speed_factor."""
    spoken = re.sub(r"\s+", " ", _TAG.sub(" ", text)).strip()
    return len(spoken) / chars_per_second / speed_factor


def _frames_db(x: np.ndarray, sr: int, hop_s: float = 0.01, win_s: float = 0.02) -> tuple[np.ndarray, int]:
    hop = max(1, int(hop_s * sr))
    win = max(hop, int(win_s * sr))
    sq = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    starts = np.arange(0, max(len(x), 1), hop)
    ends = np.minimum(starts + win, len(x))
    rms = np.sqrt(np.maximum(sq[ends] - sq[starts], 0) / np.maximum(ends - starts, 1))
    return rms, hop


def longest_internal_silence(audio: np.ndarray, sample_rate: int = SAMPLE_RATE,
                             threshold_db: float = SILENCE_DB) -> tuple[float, float]:
    """(longest silence strictly inside the speech in seconds, active speech span in seconds)."""
    x = as_float_mono(audio)
    if len(x) == 0:
        return 0.0, 0.0
    rms, hop = _frames_db(x, sample_rate)
    loud = rms > undb(threshold_db)
    idx = np.nonzero(loud)[0]
    if len(idx) == 0:
        return 0.0, 0.0
    inner = loud[idx[0]:idx[-1] + 1]
    longest = run = 0
    for v in inner:   # frames are 10 ms: a few thousand per segment
        run = 0 if v else run + 1
        longest = max(longest, run)
    return longest * hop / sample_rate, (idx[-1] + 1 - idx[0]) * hop / sample_rate


def _clip_stats(x: np.ndarray) -> tuple[int, int]:
    hot = np.abs(x) >= CLIP_LEVEL
    n_hot = int(hot.sum())
    if n_hot == 0:
        return 0, 0
    d = np.diff(np.concatenate([[0], hot.astype(np.int8), [0]]))
    runs = np.nonzero(d == -1)[0] - np.nonzero(d == 1)[0]
    return n_hot, int((runs >= 3).sum())


def check_segment(audio: np.ndarray, *, expected_seconds: float, hit_limit: bool = False, settings=None,
                  sample_rate: int = SAMPLE_RATE, duration_ratio_min: float | None = None,
                  duration_ratio_max: float | None = None,
                  max_internal_silence_s: float | None = None) -> QCResult:
    """QC one generated segment. ``settings`` is any object with duration_ratio_min,
    duration_ratio_max and max_internal_silence_s (e.g. the project's QCSettings); keyword
    arguments override it; defaults: QCThresholds()."""
    base = settings or QCThresholds()
    rmin = duration_ratio_min if duration_ratio_min is not None else float(base.duration_ratio_min)
    rmax = duration_ratio_max if duration_ratio_max is not None else float(base.duration_ratio_max)
    smax = max_internal_silence_s if max_internal_silence_s is not None else float(base.max_internal_silence_s)

    x = as_float_mono(audio)
    duration = len(x) / sample_rate
    silence, active = longest_internal_silence(x, sample_rate)
    if active > 0:
        rms, hop = _frames_db(x, sample_rate)
        idx = np.nonzero(rms > undb(SILENCE_DB))[0]
        body = x[idx[0] * hop: min(len(x), (idx[-1] + 1) * hop + hop)]
    else:
        body = x
    body_rms_db = db(float(np.sqrt(np.mean(np.square(body, dtype=np.float64)))) if len(body) else 0.0)
    n_clip, clip_runs = _clip_stats(x)
    clip_fraction = n_clip / max(len(x), 1)
    ratio = active / expected_seconds if expected_seconds > 0 else float("inf")

    failures: list[str] = []
    if not rmin <= ratio <= rmax:
        failures.append(f"duration_ratio {ratio:.2f} outside [{rmin:g}, {rmax:g}]")
    if hit_limit:
        failures.append("hit_token_limit: generation reached max_new_tokens without EOS")
    if silence > smax:
        failures.append(f"internal_silence {silence:.2f} s longer than {smax:g} s")
    if clip_runs > 0 or clip_fraction > 0.001:
        failures.append(f"clipping: {n_clip} samples at full scale ({clip_runs} runs of 3+)")
    if body_rms_db < NEAR_SILENT_DB or active < MIN_ACTIVE_S:
        failures.append(f"near_silent: speech RMS {body_rms_db:.1f} dBFS, {active:.2f} s active")

    score = -10.0 * len(failures)
    score -= abs(float(np.log2(ratio))) if 0 < ratio < float("inf") else 10.0
    score -= 0.1 * max(0.0, silence - 0.5)
    score -= 100.0 * clip_fraction
    metrics = {
        "duration_s": round(duration, 3),
        "active_s": round(active, 3),
        "expected_s": round(float(expected_seconds), 3),
        "duration_ratio": round(ratio, 3) if ratio != float("inf") else None,
        "hit_limit": bool(hit_limit),
        "max_internal_silence_s": round(silence, 3),
        "clipped_samples": n_clip,
        "clip_runs": clip_runs,
        "speech_rms_db": round(body_rms_db, 2),
        "peak_dbfs": round(db(float(np.max(np.abs(x))) if len(x) else 0.0), 2),
    }
    return QCResult(not failures, round(score, 4), metrics, failures)
