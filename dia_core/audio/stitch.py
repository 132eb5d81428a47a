"""Stitch a chapter's segments: trim silence, insert room-tone pauses by boundary kind, fade joins.

Layout of a chapter (all float32 at 44.1 kHz):

    [head room tone = pauses.chapter_start][piece 0][pause by piece 1's boundary][piece 1]...[tail]

- Each piece is trimmed to the first/last 10 ms frame whose short-term RMS (20 ms window) exceeds
  ``trim.threshold_db``, widened by ``trim.padding_ms`` on both sides.
- The whole chapter lies on a continuous room-tone bed (pink-ish noise at ``room_tone_db`` dBFS
  RMS, never digital silence); speech is added on top of it. Every piece fades in and out with a
  raised-cosine ramp of ``trim.crossfade_ms``, so joins never click. With a pause shorter than
  the crossfade, the two pieces overlap by the difference (a true crossfade).
- ``spans[i]`` is the (start, end) in seconds of piece i's kept audio in the output.
Deterministic for a given ``seed`` (only the room tone is random).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..settings import DeliverySettings
from ..errors import InputError
from ..params import SAMPLE_RATE
from ..audiofile import as_float_mono, undb

__all__ = ["BOUNDARIES", "StitchPiece", "StitchResult", "stitch_chapter", "trim_bounds", "room_tone",
           "pause_seconds"]

BOUNDARIES = ("chapter_start", "scene", "paragraph", "turn", "sentence")

# Pink-noise IIR (-3 dB/octave within 0.1 dB over the audio band; J. O. Smith / R. Bristow-Johnson).
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


@dataclass(frozen=True)
class StitchPiece:
    audio: np.ndarray
    boundary: str
    segment_id: str


@dataclass(frozen=True)
class StitchResult:
    audio: np.ndarray
    spans: list[tuple[float, float]]
    head_s: float
    tail_s: float
    sample_rate: int = SAMPLE_RATE
    trims: list[tuple[int, int]] = field(default_factory=list)   # kept [start, end) samples of each input

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def trim_bounds(audio: np.ndarray, threshold_db: float, padding_ms: float,
                sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """[start, end) of ``audio`` to keep; (0, 0) when nothing exceeds the threshold."""
    n = len(audio)
    if n == 0:
        return 0, 0
    hop = max(1, int(0.01 * sample_rate))
    win = 2 * hop
    sq = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    starts = np.arange(0, n, hop)
    ends = np.minimum(starts + win, n)
    rms = np.sqrt((sq[ends] - sq[starts]) / np.maximum(ends - starts, 1))
    loud = np.nonzero(rms > undb(threshold_db))[0]
    if len(loud) == 0:
        return 0, 0
    pad = int(round(padding_ms * sample_rate / 1000))
    start = max(0, int(starts[loud[0]]) - pad)
    end = min(n, int(ends[loud[-1]]) + pad)
    return start, end


_ROOM_TONE_CHUNK = 1 << 20   # samples generated and filtered at a time (bounded memory)


def _pink_chunks(n: int, rng: np.random.Generator, warm: int):
    """The pink-filtered noise ``lfilter(_PINK_B, _PINK_A, rng.standard_normal(n + warm))[warm:]``,
    yielded in consecutive float64 chunks: the normal draws continue one stream and the filter
    state is carried from chunk to chunk, so the values are the same as the one-shot version."""
    from scipy.signal import lfilter   # imported on first use: the CLI's validate needs none of scipy.signal

    zi = np.zeros(len(_PINK_A) - 1)
    done = -warm
    while done < n:
        m = min(_ROOM_TONE_CHUNK, n - done)
        y, zi = lfilter(_PINK_B, _PINK_A, rng.standard_normal(m), zi=zi)
        if done < 0:
            y = y[-done:]
        done += m
        if len(y):
            yield y


def room_tone(n: int, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink-ish noise whose RMS is ``level_db`` dBFS (float32).

    Generated chunk by chunk (memory: the float32 result plus one chunk) in one pass that also
    measures its mean and RMS; then centred and scaled in place. ``rng`` is drawn from once."""
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    warm = 4096   # let the IIR settle so the start has the same spectrum as the rest
    total = total_sq = 0.0
    out = np.empty(n, dtype=np.float32)
    pos = 0
    for y in _pink_chunks(n, rng, warm):   # one pass: the raw noise and its statistics
        total += float(np.sum(y))
        total_sq += float(np.dot(y, y))
        out[pos:pos + len(y)] = y
        pos += len(y)
    mean = total / n
    rms = float(np.sqrt(max(total_sq / n - mean * mean, 0.0))) or 1.0   # RMS after removing the mean
    scale = undb(level_db) / rms
    for s, e in ((i, min(n, i + _ROOM_TONE_CHUNK)) for i in range(0, n, _ROOM_TONE_CHUNK)):
        out[s:e] = (out[s:e] - mean) * scale   # in float64 a chunk at a time, stored as float32
    return out


def pause_seconds(boundary: str, settings: DeliverySettings) -> float:
    if boundary not in BOUNDARIES:
        raise InputError(f"unknown boundary kind {boundary!r}; expected one of {', '.join(BOUNDARIES)}",
                         field="boundary")
    return float(getattr(settings.pauses, boundary))


def _fade(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def stitch_chapter(pieces, settings: DeliverySettings | None = None, seed: int = 0,
                   *, sample_rate: int = SAMPLE_RATE) -> StitchResult:
    """Join ``pieces`` (StitchPiece) into one chapter (see module docstring)."""
    settings = settings or DeliverySettings()
    pieces = list(pieces)
    sr = sample_rate
    trim = settings.trim
    xf = max(0, int(round(trim.crossfade_ms * sr / 1000)))
    head = int(round(settings.pauses.chapter_start * sr))
    tail = int(round(settings.pauses.chapter_end * sr))

    # First pass: trim bounds and offsets only; the pieces are added onto the room tone in place
    # below, so no trimmed copy of the chapter is held.
    arrays: list[np.ndarray] = []
    trims: list[tuple[int, int]] = []
    offsets: list[int] = []
    cursor = head
    for i, p in enumerate(pieces):
        a = as_float_mono(p.audio, name=f"segment {p.segment_id}")
        pause_seconds(p.boundary, settings)  # validates the kind
        s, e = trim_bounds(a, trim.threshold_db, trim.padding_ms, sr)
        if i > 0:
            gap = int(round(pause_seconds(p.boundary, settings) * sr))
            f_prev = min(xf, (trims[-1][1] - trims[-1][0]) // 2)
            f_this = min(xf, (e - s) // 2)
            overlap = max(0, min(f_prev, f_this) - gap)
            cursor += gap - overlap
        arrays.append(a)
        trims.append((s, e))
        offsets.append(cursor)
        cursor += e - s
    total = cursor + tail

    rng = np.random.default_rng(seed)
    out = room_tone(total, settings.room_tone_db, rng)
    spans: list[tuple[float, float]] = []
    for off, a, (s, e) in zip(offsets, arrays, trims):
        n = e - s
        f = min(xf, n // 2)
        if f > 0:   # raised-cosine fade in and out at the piece's edges
            ramp = _fade(f)
            out[off:off + f] += a[s:s + f] * ramp
            out[off + f:off + n - f] += a[s + f:e - f]
            out[off + n - f:off + n] += a[e - f:e] * ramp[::-1]
        else:
            out[off:off + n] += a[s:e]
        spans.append((off / sr, (off + n) / sr))
    return StitchResult(out, spans, head / sr, tail / sr, sr, trims)
