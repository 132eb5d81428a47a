import numpy as np
import pytest

from dia_core.engines import DraftEngine, TakeRequest, split_turns
from dia_core.params import SAMPLE_RATE, SamplingParams


def test_split_turns():
    assert split_turns("[S1] Hello there. [S2] Hi! (laughs) [S1] Bye.") == [
        ("S1", "Hello there."), ("S2", "Hi! (laughs)"), ("S1", "Bye.")]


@pytest.fixture(scope="module")
def engine():
    return DraftEngine({"anna": None, "ben": None, "cara": "en-gb+f4"})


def test_draft_voices_are_distinct_and_explicit_voice_kept(engine):
    assert engine.voices["cara"] == "en-gb+f4"
    assert len(set(engine.voices.values())) == 3


def test_draft_engine_speaks_each_slot_in_its_voice(engine):
    req = lambda text, slots: TakeRequest(text, "", slots, 0, SamplingParams())  # noqa: E731
    one, two, same = engine.generate([
        req("[S1] The quick brown fox.", {"S1": "anna", "S2": None}),
        req("[S1] The quick brown fox.", {"S1": "ben", "S2": None}),
        req("[S1] The quick brown fox.", {"S1": "anna", "S2": None})], {})
    assert one.audio.dtype == np.float32 and not one.hit_limit
    assert 0.5 < len(one.audio) / SAMPLE_RATE < 5
    np.testing.assert_array_equal(one.audio, same.audio)  # deterministic
    assert len(one.audio) != len(two.audio) or not np.array_equal(one.audio, two.audio)
    dialogue, = engine.generate([req("[S1] Hello. [S2] Hi there. (laughs)", {"S1": "anna", "S2": "ben"})], {})
    assert len(dialogue.audio) > len(one.audio) * 0.5
