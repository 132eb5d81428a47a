"""Caption cues of a delivered segment, timed by the listening alignment's word times.

The listener stores each take's word times (seconds into the take, one per normalized spoken word)
in the take's listening note. In the chapter a take is played at ``speed_factor`` (its times
divide by it) and trimmed before it is placed at its stitch span, so a take time ``t`` lands at
``span_start + t / speed_factor - trim_start / sample_rate``. Words map to the manuscript's caption
words by index within each turn, only where the counts agree; anything that does not fit (no
listening, a recognizer that heard more or fewer words, a turn with no words) falls back to
sharing the span out by characters.
"""
from __future__ import annotations

import numpy as np

from ..audio.captions import Cue, readable_cues
from ..listen.textnorm import words as norm_words
from ..params import SAMPLE_RATE

Times = list[tuple[float, float]]


def take_word_times(store, attempt) -> Times | None:
    """The chosen attempt's word times (seconds into the take) from its listening note, if any."""
    note = (attempt.qc.get("listen") or {}).get("word_times_note")
    found = store.read_note(attempt.key, note) if note else None
    rows = (found or {}).get("word_times")
    if not rows:
        return None
    return [(float(a), float(b)) for _w, a, b in rows]


def chapter_times(times: Times | None, *, speed_factor: float, trim_start: int,
                  span_start_s: float, sample_rate: int = SAMPLE_RATE) -> Times | None:
    """Take times placed in the stitched chapter (tempo applied, trimmed head removed)."""
    if not times:
        return None
    offset = span_start_s - trim_start / sample_rate
    return [(offset + a / speed_factor, offset + b / speed_factor) for a, b in times]


def _caption_word_times(caption: str, times: Times) -> list[tuple[float, float] | None] | None:
    """One (start, end) per whitespace word of ``caption`` (None: nothing spoken, e.g. "(sighs)"),
    or None when the caption's words do not count up to ``times``. A caption word covers the spoken
    words its prefix adds ("12" -> "twelve", "1999" -> four words, "Kair-win" read for "Caerwyn")."""
    words = caption.split()
    cum = [len(norm_words(" ".join(words[:i + 1]))) for i in range(len(words))]
    for i in range(len(cum) - 2, -1, -1):   # a cue cut mid-way ("(clears" | "throat)") counts 0
        cum[i] = min(cum[i], cum[i + 1])
    if not cum or cum[-1] != len(times):
        return None
    out, lo = [], 0
    for hi in cum:
        out.append((times[lo][0], times[hi - 1][1]) if hi > lo else None)
        lo = max(lo, hi)
    return out


def segment_cues(segment, start: float, end: float, times: Times | None,
                 respellings: dict[str, str] | None = None) -> list[Cue]:
    """Readable cues (captions.readable_cues) of one segment spanning [start, end] seconds of the
    chapter: one speaker turn's cues never share a cue with the next turn's. ``times``: the chosen
    take's word times in chapter seconds (chapter_times), or None."""
    turns = [t for t in segment.turns if t.text.strip()]
    if not turns:
        return []
    counts = [len(norm_words(t.text, respellings)) for t in turns]
    if times and len(times) == sum(counts) and all(counts):
        firsts = np.cumsum([0] + counts[:-1])
        edges = [start]
        for k in range(1, len(turns)):   # turns meet half-way between their words
            mid = (times[firsts[k] - 1][1] + times[firsts[k]][0]) / 2
            edges.append(min(max(mid, edges[-1]), end))
        edges.append(end)
        turn_times = [times[f:f + n] for f, n in zip(firsts, counts)]
    else:   # shared by the spoken text's characters
        weights = np.array([max(1, len(t.text)) for t in turns], dtype=float)
        edges = list(start + np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]) * (end - start))
        turn_times = [None] * len(turns)
    cues = []
    for k, t in enumerate(turns):
        if not t.caption_text.strip():
            continue
        cue = Cue(float(edges[k]), float(edges[k + 1]), t.character, t.caption_text)
        per_word = _caption_word_times(t.caption_text, turn_times[k]) if turn_times[k] else None
        cues += readable_cues(cue, word_times=per_word)
    return cues
