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
