"""The fast decode path (bucketed static shapes, compiled step; CUDA graphs on a GPU) gives the same
codes as the eager path on CPU, and a segment's codes do not depend on its padded, bucketed batch."""
import pytest
import torch

import dia_core.dia.generate as gen
from dia_core.dia.generate import AudioPrompt
from dia_core.params import SamplingParams

pytestmark = [pytest.mark.filterwarnings("ignore:.*exceeds the decoder:UserWarning"),
              pytest.mark.usefixtures("one_torch_thread")]  # `model`: tests/dia_core/conftest.py
PROMPT = torch.randint(0, 1024, (10, 9), generator=torch.Generator().manual_seed(4))
TEXTS = ["[S2] A much longer segment of text that pads the encoder batch by quite a lot more bytes.",
         "[S1] Short one.", "[S2] Middle length text here."]
PROMPTS = [AudioPrompt(PROMPT, "[S1] Prompt words."), None, AudioPrompt(PROMPT[:4], "[S2] Other.")]
SEEDS = [7, 1234, 5]
REF = SamplingParams(temperature=1.2, cfg_scale=3.0, cfg_filter_top_k=45)  # the 0626 reference's defaults


@pytest.fixture(autouse=True)
def _small_kv_block(monkeypatch):
    monkeypatch.setattr(gen, "KV_BLOCK", 64)  # several attended-cache buckets within 256 positions


def _gen(model, texts, seeds, prompts, fast_path, **params):
    """Lists in ``params`` are per item, scalars are for all items."""
    sampling = [REF.replace(**{k: v[i] if isinstance(v, list) else v for k, v in params.items()})
                for i in range(len(texts))]
    return gen.generate(model, texts, seeds, audio_prompts=prompts, sampling=sampling, fast_path=fast_path)


def _same(a, b):
    assert [g.prompt_frames for g in a] == [g.prompt_frames for g in b]
    for x, y in zip(a, b):
        assert x.codes.shape == y.codes.shape and torch.equal(x.codes, y.codes) and x.hit_limit == y.hit_limit


@pytest.mark.parametrize("params", [dict(temperature=0.0),
                                    dict(temperature=[1.0, 1.3, 1.8], top_p=[0.95, 0.9, 1.0],
                                         cfg_scale=[2.0, 3.0, 1.0], cfg_filter_top_k=[10, 40, 100])],
                         ids=["greedy", "sampled"])
@pytest.mark.parametrize("fast_path", ["static", "eager"])
def test_fast_path_equals_eager_path(model, params, fast_path):
    eager = _gen(model, TEXTS, SEEDS, PROMPTS, "off", **params)
    fast = _gen(model, TEXTS, SEEDS, PROMPTS, fast_path, **params)  # batch 3 -> bucket 4, text -> 128 bytes
    _same(eager, fast)
    assert model._static.key[:2] == (4, 128)


def test_segment_alone_equals_segment_in_bucketed_batch(model):
    params = dict(temperature=[1.2, 1.5, 0.0], top_p=[0.9, 0.95, 1.0], cfg_filter_top_k=[45, 20, 45])
    batch = _gen(model, TEXTS, SEEDS, PROMPTS, "eager", **params)
    for i in range(3):
        alone = _gen(model, [TEXTS[i]], [SEEDS[i]], [PROMPTS[i]], "eager",
                     **{k: [v[i]] for k, v in params.items()})
        _same(alone, [batch[i]])


def test_no_recompilation_across_segment_lengths_after_warmup(model):
    from torch._dynamo.utils import counters

    texts = ["[S1] Warm up.", "[S1] A rather longer line of text, still inside the first text bucket.",
             "[S2] Mid.", "[S1] Another one of a different length, with a voice prompt."]
    _gen(model, texts[:2], [1, 2], None, "eager", temperature=0.0)  # warm-up: every cache bucket
    before = counters["stats"]["unique_graphs"]
    _gen(model, texts[2:], [3, 4], [None, AudioPrompt(PROMPT[:7], "[S1] Hm.")], "eager")
    _gen(model, texts[1:3], [5, 6], [AudioPrompt(PROMPT, "[S2] x"), None], "eager", temperature=0.0)
    assert counters["stats"]["unique_graphs"] == before



def test_top_k_beyond_the_project_range_gets_its_own_candidate_set(model):
    params = dict(temperature=1.0, cfg_filter_top_k=[300, 10, 45])  # the model allows up to its vocabulary
    _same(_gen(model, TEXTS, SEEDS, PROMPTS, "off", **params), _gen(model, TEXTS, SEEDS, PROMPTS, "static", **params))
    assert model._static.key[3] == 300
