"""Caption cues as common practice asks: <= 2 lines of ~42 characters, ~7 s, cut at phrase ends."""
from dia_core.audio.captions import Cue, readable_cues

FIRST = Cue(0.0, 13.3, "Narrator", "Chapter One: The Letter. The lighthouse at Caerwyn had stood for two hundred years, "
            "and for the last twelve of them Mara had kept its lamp burning. She knew every stair by the sound it "
            "made under her boots.")


def test_the_examples_first_cue_is_split_at_phrase_ends():
    cues = readable_cues(FIRST)
    assert len(cues) >= 2 and " ".join(c.text for c in cues) == FIRST.text
    assert all(len(c.text) <= 84 and c.end_s - c.start_s <= 7.0 + 1e-9 for c in cues)
    assert all(c.text[-1] in ",.;:!?" for c in cues)             # every cut at a phrase end here
    assert cues[0].start_s == 0.0 and cues[-1].end_s == 13.3
    assert all(a.end_s == b.start_s for a, b in zip(cues, cues[1:])) and {c.speaker for c in cues} == {"Narrator"}


def test_short_cue_is_kept_and_a_run_on_is_cut_between_words():
    short = Cue(1.0, 3.0, None, "Nobody leaves Caerwyn.")
    assert readable_cues(short) == [short]
    run_on = Cue(0.0, 20.0, None, " ".join(["word"] * 60))
    cues = readable_cues(run_on)
    assert all(len(c.text) <= 84 for c in cues) and sum(len(c.text.split()) for c in cues) == 60


# Word times (the alignment's, one per word of the text) time the pieces instead of characters.
TIMED = Cue(10.0, 24.0, "Mara", "Nobody leaves Caerwyn, not in a storm, not for a letter, and not for you. "
            "Go home before the tide turns and the causeway floods.")


def _times(text: str, start: float, step: float, long_pause_after: int | None = None):
    out, t = [], start
    for i, _w in enumerate(text.split()):
        out.append((t, t + step * 0.8))
        t += step + (3.0 if i == long_pause_after else 0.0)
    return out


def test_word_times_set_each_piece_from_its_first_to_its_last_word():
    times = _times(TIMED.text, 10.5, 0.3, long_pause_after=14)   # a 3 s pause after "you."
    cues = readable_cues(TIMED, word_times=times)
    shared = readable_cues(TIMED)
    assert [c.text for c in cues] == [c.text for c in shared] and len(cues) >= 2
    i = 0
    for c in cues:
        n = len(c.text.split())
        assert (c.start_s, c.end_s) == (times[i][0], times[i + n - 1][1])
        i += n
    assert [c.start_s for c in cues] != [c.start_s for c in shared]   # not the character share
    assert all(a.end_s <= b.start_s for a, b in zip(cues, cues[1:]))
    assert cues[0].start_s == 10.5   # speech starts half a second into the segment's span


def test_word_times_are_clamped_to_the_cue_and_never_overlap():
    n = len(TIMED.text.split())
    times = [(9.0 + 0.58 * i, 9.0 + 0.58 * i + 0.5) for i in range(n)]   # starts before the span
    times[-1] = (times[-1][0], 25.0)                                    # and ends after it
    times[20] = (times[19][0] - 2.0, times[19][1])                      # one word timed back in time
    cues = readable_cues(TIMED, word_times=times)
    assert cues[0].start_s == TIMED.start_s and cues[-1].end_s == TIMED.end_s
    assert all(TIMED.start_s <= c.start_s < c.end_s <= TIMED.end_s for c in cues)
    assert all(a.end_s <= b.start_s for a, b in zip(cues, cues[1:]))
    first = len(cues[0].text.split())
    assert cues[0].end_s == times[first - 1][1] and cues != readable_cues(TIMED)   # timed, not shared


def test_unfit_word_times_fall_back_to_the_character_share():
    words = TIMED.text.split()
    assert readable_cues(TIMED, word_times=_times(TIMED.text, 10.5, 0.3)[:-1]) == readable_cues(TIMED)  # count
    outside = [(30.0 + i, 30.5 + i) for i in range(len(words))]     # all after the span: no time on screen
    assert readable_cues(TIMED, word_times=outside) == readable_cues(TIMED)
    short = Cue(1.0, 3.0, None, "Nobody leaves Caerwyn.")
    assert readable_cues(short, word_times=[(1.2, 1.5), None, (1.9, 2.4)]) == [Cue(1.2, 2.4, None, short.text)]
