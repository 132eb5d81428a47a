import numpy as np
import pytest

from dia_core.production.engines import DraftEngine, TakeRequest, split_turns
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


# ---- Dia engine on a tiny random checkpoint and a tiny DAC (CPU) ----------------------------------

@pytest.fixture(scope="module")
def dia(tmp_path_factory):
    from dia_core.dia.codec import DiaCodec
    from dia_core.dia.model import DiaModel
    from tests.tiny_models import write_tiny_dac, write_tiny_dia_checkpoint

    tmp = tmp_path_factory.mktemp("dia")
    model = DiaModel.from_pretrained(write_tiny_dia_checkpoint(tmp / "ckpt", "reference", seed=2))
    model.codec = DiaCodec.load(write_tiny_dac(tmp / "dac.pth"))
    return model


def _dia_requests():
    from dia_core.params import SamplingParams

    texts = ["[S1] One line.", "[S1] A second, longer line of text. [S2] And a reply.", "[S2] Third."]
    return [TakeRequest(t, "", {"S1": "anna", "S2": "ben"}, seed, SamplingParams(max_new_tokens=520))
            for t, seed in zip(texts, (3, 99, 12345))]


@pytest.mark.filterwarnings("ignore:.*exceeds the decoder:UserWarning")  # tiny config: 256 positions
def test_dia_engine_fast_path_equals_eager_and_start_result_equals_generate(dia):
    from dia_core.production.engines import DiaEngine
    from tests.tiny_models import single_thread

    requests = _dia_requests()
    with single_thread():
        eager = DiaEngine(dia, fast_path="off").generate(requests, {})
        pending = DiaEngine(dia, fast_path="static").start(requests, {})
        fast = pending.result()
    assert len(eager) == len(fast) == 3
    for a, b in zip(eager, fast):
        assert a.audio.dtype == np.float32 and a.audio.size > 0 and a.audio.size % 512 == 0
        np.testing.assert_array_equal(a.audio, b.audio)
        assert a.hit_limit == b.hit_limit
    assert dia._static is not None  # the static path really ran


def test_dia_engine_rejects_unknown_fast_path(dia):
    from dia_core.production.engines import DiaEngine
    from dia_core.errors import InputError

    with pytest.raises(InputError, match="fast_path.*off, static, inductor"):
        DiaEngine(dia, fast_path="turbo")


def test_draft_engine_seed_is_another_read(engine):
    """Retakes and alternatives of a draft proof must be audibly other takes: the seed sets the pitch."""
    req = lambda seed: TakeRequest("[S1] The quick brown fox.", "", {"S1": "anna", "S2": None}, seed, SamplingParams())  # noqa: E731
    a, b, a2 = engine.generate([req(3), req(4), req(3)], {})
    np.testing.assert_array_equal(a.audio, a2.audio)
    assert len(a.audio) != len(b.audio) or not np.array_equal(a.audio, b.audio)
