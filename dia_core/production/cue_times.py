"""Caption cues of a delivered segment, timed by the listening alignment's word times.

The listener stores each take's word times (seconds into the take, one per normalized spoken word)
in the take's listening note, with the words it heard. In the chapter a take is played at
``speed_factor`` (its times divide by it) and trimmed before it is placed at its stitch span, so a
take time ``t`` lands at ``span_start + t / speed_factor - trim_start / sample_rate``.

The heard words map to the text's words by index where the counts agree; where the recognizer
heard more or fewer words, by identity (difflib's longest matching blocks, in order), and a text
word it did not hear fills the gap between the heard words around it. The text's words map
to the manuscript's caption words by index within each turn. Anything that does not fit (no
listening, fewer than MIN_MATCHED of the words heard, a turn with no heard word) falls back to
sharing the segment's span out by characters.
"""
from __future__ import annotations

from difflib import SequenceMatcher

import numpy as np

from ..audio.captions import Cue, readable_cues
from ..listen.textnorm import words as norm_words
from ..params import SAMPLE_RATE

Heard = list[tuple[str, float, float]]          # (normalized word, start_s, end_s)
Span = tuple[float, float]
# Of the text's words found among the heard ones, to time a segment by them. PocketSphinx finds
# 32-100 % of the words of the example's clean espeak-ng draft takes (13 segments, median 58 %);
# below this a take is mostly unheard and the character share is the better guess.
MIN_MATCHED = 0.3


def take_word_times(store, attempt) -> Heard | None:
    """The chosen attempt's heard words and times (seconds into the take) from its listening note."""
    note = (attempt.qc.get("listen") or {}).get("word_times_note")
    found = store.read_note(attempt.key, note) if note else None
    rows = (found or {}).get("word_times")
    if not rows:
        return None
    return [(str(w), float(a), float(b)) for w, a, b in rows]


def chapter_times(heard: Heard | None, *, speed_factor: float, trim_start: int,
                  span_start_s: float, sample_rate: int = SAMPLE_RATE) -> Heard | None:
    """Take times placed in the stitched chapter (tempo applied, trimmed head removed)."""
    if not heard:
        return None
    offset = span_start_s - trim_start / sample_rate
    return [(w, offset + a / speed_factor, offset + b / speed_factor) for w, a, b in heard]


def _text_word_times(text_words: list[str], heard: Heard) -> list[Span | None] | None:
    """One time per text word (None: not heard), or None when too few were heard to use."""
    if len(heard) == len(text_words):
        return [(a, b) for _w, a, b in heard]
    out: list[Span | None] = [None] * len(text_words)
    matcher = SequenceMatcher(None, text_words, [w for w, _a, _b in heard], autojunk=False)
    for block in matcher.get_matching_blocks():
        for i in range(block.size):
            out[block.a + i] = heard[block.b + i][1:]
    matched = sum(t is not None for t in out)
    return out if text_words and matched >= MIN_MATCHED * len(text_words) else None


def _caption_word_times(caption: str, times: list[Span | None]) -> list[Span | None] | None:
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
        covered = [t for t in times[lo:hi] if t is not None]
        out.append((covered[0][0], covered[-1][1]) if covered else None)
        lo = max(lo, hi)
    # a word not heard runs from the heard word before it to the one after it (the turn's own edges
    # at either end: readable_cues clamps the infinities), so its cue neither vanishes nor overlaps
    filled = list(out)
    for i, t in enumerate(out):
        if t is None:
            before = next((s[1] for s in reversed(out[:i]) if s is not None), float("-inf"))
            after = next((s[0] for s in out[i + 1:] if s is not None), float("inf"))
            filled[i] = (before, after)
    return filled


def _turn_times(text_words: list[list[str]], heard: Heard | None) -> list[list[Span | None]] | None:
    """Each turn's text-word times, or None when the heard words do not time every turn."""
    if not heard or not all(text_words):
        return None
    times = _text_word_times([w for ws in text_words for w in ws], heard)
    if times is None:
        return None
    out, i = [], 0
    for ws in text_words:
        out.append(times[i:i + len(ws)])
        i += len(ws)
    return out if all(any(t is not None for t in ts) for ts in out) else None


def segment_cues(segment, start: float, end: float, heard: Heard | None,
                 respellings: dict[str, str] | None = None) -> list[Cue]:
    """Readable cues (captions.readable_cues) of one segment spanning [start, end] seconds of the
    chapter: one speaker turn's cues never share a cue with the next turn's. ``heard``: the chosen
    take's heard words with times in chapter seconds (chapter_times), or None."""
    turns = [t for t in segment.turns if t.text.strip()]
    if not turns:
        return []
    turn_times = _turn_times([norm_words(t.text, respellings) for t in turns], heard)
    if turn_times is not None:
        edges = [start]
        for k in range(1, len(turns)):   # turns meet half-way between their heard words
            last = [t for t in turn_times[k - 1] if t is not None][-1]
            first = next(t for t in turn_times[k] if t is not None)
            edges.append(min(max((last[1] + first[0]) / 2, edges[-1]), end))
        edges.append(end)
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
