"""Captions timed by the listening alignment: a take's word times placed in the stitched chapter
(tempo, trim, span) and mapped to the manuscript's caption words by index within each turn, with the
character share as the fallback."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dia_core.audio import stitch, tempo
from dia_core.params import SAMPLE_RATE
from dia_core.production import cue_times
from dia_core.production.store import SegmentStore
from dia_core.production.takes import Attempt
from dia_core.script.planner import Turn
from dia_core.settings import DeliverySettings

LEXICON = {"Caerwyn": "Kair-win"}
SEGMENT = SimpleNamespace(turns=[
    Turn("S1", "narrator", "Narrator", "[S1] The lighthouse at Kair-win had stood for 200 years.",
         "The lighthouse at Caerwyn had stood for 200 years."),
    Turn("S2", "mara", "MARA", "[S2] Nobody leaves Kair-win.", "Nobody leaves Caerwyn."),
])
# the text's normalized words, as the recognizer reports what it heard (respellings mapped back)
SPOKEN = "the lighthouse at caerwyn had stood for two hundred years nobody leaves caerwyn".split()


def _times(start: float, words=SPOKEN, step: float = 0.25) -> list[tuple[str, float, float]]:
    return [(w, start + step * i, start + step * i + 0.2) for i, w in enumerate(words)]


def test_turn_cues_follow_the_word_times_and_show_the_manuscript_spelling():
    times = _times(2.3)
    times[10:] = [(w, a + 1.0, b + 1.0) for w, a, b in times[10:]]   # MARA answers after a second's pause
    cues = cue_times.segment_cues(SEGMENT, 2.0, 7.0, times, LEXICON)
    assert [(c.speaker, c.text) for c in cues] == [("Narrator", "The lighthouse at Caerwyn had stood for 200 years."),
                                                   ("MARA", "Nobody leaves Caerwyn.")]
    # "200" is two spoken words: the narrator's cue ends with the tenth word, MARA's starts at the 11th
    assert (cues[0].start_s, cues[0].end_s) == (times[0][1], times[9][2])
    assert (cues[1].start_s, cues[1].end_s) == (times[10][1], times[12][2])
    shared = cue_times.segment_cues(SEGMENT, 2.0, 7.0, None, LEXICON)
    assert shared[0].start_s == 2.0 and shared[0].end_s == shared[1].start_s and shared[1].end_s == 7.0
    assert cues[0].end_s != pytest.approx(shared[0].end_s, abs=0.05)   # not the character share


def test_a_different_word_count_is_matched_by_identity():
    """The recognizer missed "the" and heard an extra "uh" and "um" (14 words for the text's 13): the
    words it did hear keep their times."""
    heard = _times(2.3, ["lighthouse", "at", "caerwyn", "had", "uh", "stood", "for", "two", "hundred", "years",
                         "um", "nobody", "leaves", "caerwyn"])
    cues = cue_times.segment_cues(SEGMENT, 2.0, 7.0, heard, LEXICON)
    # "the", not heard, runs from the span's start to "lighthouse"; the cue ends with "years"
    assert (cues[0].start_s, cues[0].end_s) == (2.0, heard[9][2])
    assert (cues[1].start_s, cues[1].end_s) == (heard[11][1], heard[13][2])


def test_a_word_not_heard_fills_the_gap_between_its_heard_neighbours():
    heard = [h for h in _times(2.3) if h[0] != "nobody"]   # MARA's first word not heard
    cues = cue_times.segment_cues(SEGMENT, 2.0, 7.0, heard, LEXICON)
    edge = (heard[9][2] + heard[10][1]) / 2                  # half-way from "years" to "leaves"
    assert cues[0].end_s == heard[9][2] and cues[1].start_s == pytest.approx(edge)
    assert cues[1].end_s == heard[-1][2]


def test_unusable_word_times_fall_back_to_the_character_share():
    shared = cue_times.segment_cues(SEGMENT, 2.0, 7.0, None, LEXICON)
    assert shared[0].start_s == 2.0 and shared[-1].end_s == 7.0
    garbage = _times(2.3, "a storm came in over the sea and nobody saw it come".split())   # 2 of 13 match
    assert cue_times.segment_cues(SEGMENT, 2.0, 7.0, garbage, LEXICON) == shared
    mara_unheard = _times(2.3, SPOKEN[:10])   # 10 of 13, but MARA's turn has no heard word
    assert cue_times.segment_cues(SEGMENT, 2.0, 7.0, mara_unheard, LEXICON) == shared


def test_times_outside_the_span_are_clamped_and_cues_never_overlap():
    times = _times(1.0, step=0.5)   # starts before the span (2.0) and runs past its end (7.0)
    cues = cue_times.segment_cues(SEGMENT, 2.0, 7.0, times, LEXICON)
    assert cues[0].start_s == 2.0 and cues[-1].end_s == 7.0
    assert all(2.0 <= c.start_s < c.end_s <= 7.0 for c in cues)
    assert all(a.end_s <= b.start_s for a, b in zip(cues, cues[1:]))
    assert cues[0].end_s == times[9][2]   # the narrator's last word still ends its cue


def test_take_word_times_come_from_the_note_the_listening_qc_names(tmp_path):
    store = SegmentStore(tmp_path)
    key = "ab" + "0" * 62
    store.write_note(key, "listen-1234", {"listener": "x", "word_times": [["the", 0.1, 0.3], ["end", 0.4, 0.9]]})
    heard = Attempt(1, 7, key, {"listen": {"listener": "x", "word_times_note": "listen-1234"}}, False)
    assert cue_times.take_word_times(store, heard) == [("the", 0.1, 0.3), ("end", 0.4, 0.9)]
    assert cue_times.take_word_times(store, Attempt(1, 7, key, {"listen": {"listener": "off"}}, False)) is None
    assert cue_times.take_word_times(store, Attempt(1, 7, key, {"passed": True}, False)) is None


def test_chapter_times_place_a_word_where_stitch_and_tempo_put_its_sound():
    """A take whose one 'word' is a tone burst at 0.6-1.4 s, slowed to 0.8 and stitched after another
    piece: the placed word starts and ends where the tone does in the chapter."""
    sr = SAMPLE_RATE
    t = np.arange(int(0.8 * sr)) / sr
    burst = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    take = np.concatenate([np.zeros(int(0.6 * sr), np.float32), burst, np.zeros(int(0.4 * sr), np.float32)])
    slowed = tempo.change_tempo(take, 0.8)
    first = np.concatenate([np.zeros(sr // 4, np.float32), burst[: sr // 2], np.zeros(sr // 4, np.float32)])
    settings = DeliverySettings()
    out = stitch.stitch_chapter([stitch.StitchPiece(first, "chapter_start", "a"),
                                 stitch.StitchPiece(slowed, "paragraph", "b")], settings, seed=1)
    [(_w, start, end)] = cue_times.chapter_times([("la", 0.6, 1.4)], speed_factor=0.8, trim_start=out.trims[1][0],
                                             span_start_s=out.spans[1][0])
    assert start == pytest.approx(out.spans[1][0] + 0.6 / 0.8 - out.trims[1][0] / sr)
    a, b = int(out.spans[1][0] * sr), int(out.spans[1][1] * sr)
    loud = np.nonzero(np.abs(out.audio[a:b]) > 0.1)[0]
    onset, offset = (a + loud[0]) / sr, (a + loud[-1]) / sr
    assert start == pytest.approx(onset, abs=0.02) and end == pytest.approx(offset, abs=0.02)
