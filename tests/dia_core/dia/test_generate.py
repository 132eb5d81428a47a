import inspect

import pytest
import torch

import dia_core.dia.generate as gen
from dia_core.dia.config import DiaConfig
from dia_core.errors import InputError
from dia_core.dia.generate import (AudioPrompt, build_requests, counter_uniforms, delay_codes, eos_countdown,
                                   generate, generate_codes, sample_tokens, split_seed, undelay_codes)
from dia_core.dia.model import DiaModel
from dia_core.params import SamplingParams

# The tiny config has 256 decoder positions, so max_new_tokens of 500 and more is capped, with a warning.
pytestmark = [pytest.mark.filterwarnings("ignore:.*exceeds the decoder:UserWarning"),
              pytest.mark.usefixtures("one_torch_thread")]  # `model`: tests/dia_core/conftest.py
DELAYS = [0, 8, 9, 10, 11, 12, 13, 14, 15]
EOS, PAD, BOS = 1024, 1025, 1026
PROMPT = torch.randint(0, 1024, (10, 9), generator=torch.Generator().manual_seed(4))
# The 0626 reference's sampling defaults, which these tests were written against.
REF = SamplingParams(temperature=1.2, cfg_scale=3.0, cfg_filter_top_k=45)


def per_item(**values) -> list[SamplingParams]:
    """One SamplingParams per item from lists of values (the rest from REF)."""
    n = len(next(iter(values.values())))
    return [REF.replace(**{k: v[i] for k, v in values.items()}) for i in range(n)]


def same(a, b):
    return a.shape == b.shape and torch.equal(a, b)


# ---- delay pattern -----------------------------------------------------------------------------------

def test_delay_and_undelay():
    frames = torch.randint(0, 1024, (20, 9))
    d = delay_codes(frames, DELAYS, BOS, PAD)
    assert d.shape == (35, 9)
    assert torch.equal(d[:20, 0], frames[:, 0]) and (d[20:, 0] == PAD).all()
    assert (d[:15, 8] == BOS).all() and torch.equal(d[15:, 8], frames[:, 8])
    assert torch.equal(undelay_codes(d, DELAYS), frames)


# ---- seeds and batching ------------------------------------------------------------------------------

def test_segment_codes_do_not_depend_on_batch(model):
    texts = ["[S2] A much longer segment of text that pads the encoder batch by quite a lot more bytes.",
             "[S1] Short one.", "[S1] hi", "[S2] Middle length text here."]
    prompts = [AudioPrompt(PROMPT, "[S1] Prompt words."), None, AudioPrompt(PROMPT[:4], "[S2] Other."), None]
    params = per_item(temperature=[1.0, 1.3, 0.0, 1.8], top_p=[0.95, 0.9, 0.5, 1.0], cfg_scale=[2.0, 3.0, 4.0, 1.0],
                      cfg_filter_top_k=[10, 40, 100, 45])
    seeds = [7, 1234, 99, 5]
    batch = generate(model, texts, seeds, audio_prompts=prompts, sampling=params)
    assert [g.prompt_frames for g in batch] == [10, 0, 4, 0]
    for i in (0, 1, 3):  # alone: a different batch size, text padding, prefill length and neighbours
        alone = generate(model, [texts[i]], [seeds[i]], audio_prompts=[prompts[i]], sampling=params[i])[0]
        assert same(alone.codes, batch[i].codes) and alone.hit_limit == batch[i].hit_limit
    for g in batch:
        assert g.codes.dtype == torch.long and g.codes.device.type == "cpu" and g.codes.shape[1] == 9
        assert ((g.codes >= 0) & (g.codes < 1024)).all()
        if g.hit_limit:  # 256 positions: BOS + prompt + new frames + the 15-row delay tail
            assert len(g.codes) == 256 - 16 - g.prompt_frames


def test_seeds(model):
    a = generate_codes(model, ["[S1] Hello there.", "[S1] Hello there."], [1, 2], sampling=REF)
    assert not same(a[0], a[1])
    assert same(generate_codes(model, ["[S1] Hello there."], [1], sampling=REF)[0], a[0])
    big = generate_codes(model, ["[S1] Hello there."], [2**70 + 3], sampling=REF)[0]
    assert same(generate_codes(model, ["[S1] Hello there."], [2**70 + 3], sampling=REF)[0], big)


def test_greedy_ignores_seed(model):
    a = generate_codes(model, ["[S1] Hello.", "[S1] Hello."], [1, 2], sampling=REF.replace(temperature=0))
    assert same(a[0], a[1])


# ---- sampling ----------------------------------------------------------------------------------------

def _params(B, temperature=1.0, top_p=1.0, top_k=10, cfg=3.0):
    f = lambda v: torch.full((B,), v, dtype=torch.float32)
    allowed = torch.ones(9, 1028, dtype=torch.bool)
    allowed[:, EOS + 1:] = False
    allowed[1:, EOS] = False
    lo, hi = (torch.tensor(s) for s in zip(*(split_seed(s) for s in range(B))))
    return dict(cfg_scale=f(cfg), temperature=f(temperature), top_p=f(top_p),
                top_k=torch.full((B,), top_k), max_top_k=top_k, allowed=allowed, eos_id=EOS, seed_lo=lo, seed_hi=hi)


def test_counter_uniforms_are_per_row_and_uniform():
    lo, hi = torch.tensor([1, 2, 3]), torch.tensor([0, 0, 5])
    u = counter_uniforms(lo, hi, torch.tensor([7]), 9, 1028)
    assert u.shape == (3, 9, 1028) and u.dtype == torch.float32 and (u > 0).all() and (u < 1).all()
    assert torch.equal(counter_uniforms(lo[1:2], hi[1:2], torch.tensor([7]), 9, 1028)[0], u[1])
    assert not torch.equal(counter_uniforms(lo, hi, torch.tensor([8]), 9, 1028), u)
    hist = torch.histc(u, bins=10, min=0, max=1) / u.numel()
    assert (hist - 0.1).abs().max() < 0.01
    assert abs(u.mean().item() - 0.5) < 0.01
    x = u.flatten()
    assert abs(torch.corrcoef(torch.stack([x[:-1], x[1:]]))[0, 1].item()) < 0.02  # neighbours uncorrelated


def test_sampling_follows_softmax_of_filtered_logits():
    B = 400
    logits = torch.full((2 * B, 9, 1028), -20.0)
    values = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5, -2.0, -2.5])
    logits[:, :, :10] = values
    tokens = sample_tokens(logits, **_params(B), step=torch.tensor([3]))
    freq = torch.bincount(tokens.flatten(), minlength=1028)[:10].float() / tokens.numel()
    assert tokens.max() < 10
    assert (freq - values.softmax(0)).abs().max() < 0.03  # ~4 sigma for 3600 draws
    # temperature sharpens: at 0.5 the top id is much more frequent
    sharp = sample_tokens(logits, **_params(B, temperature=0.5), step=torch.tensor([3]))
    assert (sharp == 0).float().mean() > (tokens == 0).float().mean() + 0.1


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    B = 200
    logits = torch.full((2 * B, 9, 1028), -30.0)
    logits[:, :, :4] = torch.tensor([0.4, 0.3, 0.2, 0.1]).log()
    tokens = sample_tokens(logits, **_params(B, top_p=0.5), step=torch.tensor([0]))
    assert set(tokens.unique().tolist()) == {0, 1}  # 0.4 < 0.5 so id 1 stays; 0.7 > 0.5 so id 2 goes


def test_cfg_picks_the_candidates_and_cond_logits_score_them():
    B = 1
    cond = torch.full((B, 9, 1028), -10.0)
    uncond = cond.clone()
    cond[..., 5], uncond[..., 5] = 10.0, 20.0  # best cond id, but guided = 10 + 3 * (10 - 20) = -20: not a candidate
    cond[..., 7], uncond[..., 7] = 1.0, 0.0  # guided 4.0
    cond[..., 8], uncond[..., 8] = 1.5, 1.5  # guided 1.5; best cond logit among the candidates
    greedy = sample_tokens(torch.cat([cond, uncond]), **_params(B, temperature=0.0), step=torch.tensor([0]))
    assert (greedy == 8).all()


def test_eos_only_on_channel_0_and_forced_when_best():
    B = 300
    logits = torch.zeros(2 * B, 9, 1028)
    logits[:, :, :20] = torch.linspace(2, 0, 20)
    logits[:, :, EOS] = 5.0  # best everywhere
    tokens = sample_tokens(logits, **_params(B, temperature=1.5, top_k=30), step=torch.tensor([1]))
    assert (tokens[:, 0] == EOS).all()
    assert (tokens[:, 1:] < 1024).all()
    logits[:, :, EOS] = 1.9  # second best: never sampled
    tokens = sample_tokens(logits, **_params(B, temperature=1.5, top_k=30), step=torch.tensor([1]))
    assert (tokens != EOS).all()


# ---- stopping ----------------------------------------------------------------------------------------

def test_eos_countdown_forces_eos_then_pad_per_item():
    B = 2
    countdown = torch.full((B,), -1)
    finished = torch.full((B,), -1)
    eos_hit = torch.zeros(B, dtype=torch.bool)
    max_tokens = torch.tensor([200, 30])  # item 1 reaches its limit at step 30 - 15 = 15
    delays = torch.tensor(DELAYS)
    rows = {}
    for t in range(10, 50):
        pred = torch.randint(0, 1024, (B, 9))
        if t == 12:
            pred[0, 0] = EOS
        pred, countdown, finished, eos_hit = eos_countdown(pred, torch.tensor([t]), countdown, finished, eos_hit,
                                                           max_tokens, delays, EOS, PAD)
        rows[t] = pred
    assert finished.tolist() == [12, 15] and eos_hit.tolist() == [True, False] and countdown.tolist() == [0, 0]
    for i, start in enumerate([12, 15]):
        for k in range(0, 35):
            for c, d in enumerate(DELAYS):
                tok = int(rows[start + k][i, c])
                if k >= 15:  # done after k = 14: the frames before the EOS frame need no later row
                    assert tok == PAD
                elif k == d:
                    assert tok == EOS
                elif k > d:
                    assert tok == PAD
                else:
                    assert tok < 1024
    assert (rows[12 - 1][0] < 1024).all()


def test_per_item_eos_stop_and_early_exit(model, monkeypatch):
    real = gen.sample_tokens
    calls = []

    def eos_at(step_for_item):
        def fake(*args, step, **kwargs):  # called as sample_tokens(..., step=step)
            calls.append(int(step))
            out = real(*args, step=step, **kwargs)
            for i, s in enumerate(step_for_item):
                if int(step) == s:
                    out[i, 0] = EOS
            return out
        return fake

    texts, seeds, greedy = ["[S1] One two three.", "[S2] Four five six seven."], [3, 4], REF.replace(temperature=0)
    free = generate(model, texts, seeds, sampling=greedy)  # no natural EOS in 256 rows for this tiny model
    assert [g.hit_limit for g in free] == [True, True]

    monkeypatch.setattr(gen, "sample_tokens", eos_at([40, None]))
    out = generate(model, texts, seeds, sampling=greedy)
    assert len(out[0].codes) == 39 and not out[0].hit_limit  # frames 1..39, EOS frame at row 40
    # Rows before 40 are unchanged: all of channel 0, and whole frames j with 1 + j + 15 < 40.
    assert torch.equal(out[0].codes[:, 0], free[0].codes[:39, 0])
    assert same(out[0].codes[:24], free[0].codes[:24])
    assert same(out[1].codes, free[1].codes) and out[1].hit_limit  # the other item runs on untouched
    assert max(calls) == 255  # rows 1..255: every item is done by row 255

    calls.clear()
    monkeypatch.setattr(gen, "sample_tokens", eos_at([20, 22]))
    out = generate(model, texts, seeds, sampling=greedy)
    assert [len(g.codes) for g in out] == [19, 21]
    assert max(calls) < 22 + 15 + gen.CHECK_DONE_EVERY + 1  # the loop stops once every item is done


# ---- validation --------------------------------------------------------------------------------------

def test_text_errors_name_the_item(model):
    with pytest.raises(InputError, match=r"item 1: text: is 1102 bytes .* at most 1024"):
        generate(model, ["[S1] ok", "[S1] " + "a" * 1100], [1, 2])
    with pytest.raises(InputError, match=r"item 0: text: unknown speaker tag '\[S3\]'"):
        generate(model, ["[S3] who?"], [1])
    with pytest.raises(InputError, match="item 0: text: is empty"):
        generate(model, [""], [1])
    with pytest.raises(InputError, match="item 0: transcript \\+ ' ' \\+ text: is 1205 bytes"):
        generate(model, ["[S1] " + "b" * 600], [1], audio_prompts=[AudioPrompt(PROMPT, "[S1] " + "a" * 600)])


@pytest.mark.parametrize("bad", [PROMPT, "voice.wav"])
def test_prompt_without_transcript(model, bad):
    with pytest.raises(InputError, match="item 0: audio_prompts: .*transcript"):
        generate(model, ["[S1] hi"], [1], audio_prompts=[bad])
    with pytest.raises(InputError, match="item 0: transcript: the voice prompt's transcript is required"):
        generate(model, ["[S1] hi"], [1], audio_prompts=[AudioPrompt(PROMPT, "  ")])


def test_bad_prompt_codes_and_audio(model, tmp_path):
    with pytest.raises(InputError, match=r"0\.\.1023"):
        generate(model, ["[S1] hi"], [1], audio_prompts=[AudioPrompt(torch.full((5, 9), 1025), "[S1] x")])
    with pytest.raises(InputError, match=r"shape \[L, 9\]"):
        generate(model, ["[S1] hi"], [1], audio_prompts=[AudioPrompt(torch.zeros(5, 8, dtype=torch.long), "[S1] x")])
    with pytest.raises(InputError, match="voice prompt is 250 frames"):
        generate(model, ["[S1] hi"], [1], audio_prompts=[AudioPrompt(torch.zeros(250, 9, dtype=torch.long), "[S1] x")])
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"this is not a wav file")
    try:
        from tests.tiny_models import write_tiny_dac
        from dia_core.dia.codec import DiaCodec
        model.codec = DiaCodec.load(write_tiny_dac(tmp_path / "dac.pth"))
        for path in (tmp_path / "missing.wav", bad):
            with pytest.raises(InputError) as e:
                generate(model, ["[S1] hi"], [1], audio_prompts=[AudioPrompt(path, "[S1] x")])
            assert str(path) in str(e.value)
    finally:
        model.codec = None


@pytest.mark.parametrize("name,value", [("top_p", 0.0), ("top_p", 1.5), ("temperature", -0.1),
                                        ("temperature", float("nan")), ("cfg_scale", float("inf")),
                                        ("cfg_scale", -1.0), ("max_new_tokens", 0), ("max_new_tokens", 60.0),
                                        ("cfg_filter_top_k", 0), ("cfg_filter_top_k", 45.0), ("top_p", "0.9")])
def test_what_the_model_cannot_use_is_refused_by_sampling_params(name, value):
    with pytest.raises(InputError, match=f"{name}: must be"):
        SamplingParams(**{name: value})


def test_generation_checks_what_depends_on_the_model(model):
    with pytest.raises(InputError, match="item 1: cfg_filter_top_k: must be at most the vocabulary size 1028"):
        generate(model, ["[S1] a", "[S1] b"], [1, 2], sampling=[REF, REF.replace(cfg_filter_top_k=2000)])
    with pytest.raises(InputError, match="item 1: sampling: must be a SamplingParams, got dict"):
        generate(model, ["[S1] a", "[S1] b"], [1, 2], sampling=[REF, dict(temperature=1.0)])
    with pytest.raises(InputError, match=r"item 0: max_new_tokens: must be at least 17 .*got 16"):
        generate(model, ["[S1] a"], [1], sampling=REF.replace(max_new_tokens=16))


def test_short_generation_below_the_project_files_range(model):
    """max_new_tokens 60 is below the hosted API's 500 (a project file's rule), but the model can do it."""
    short = REF.replace(max_new_tokens=60, temperature=0)
    (out,) = generate(model, ["[S1] A short clip."], [3], sampling=short)
    assert out.hit_limit and len(out.codes) == 60 - 16  # BOS and the 15-row delay tail take 16 positions
    (longer,) = generate(model, ["[S1] A short clip."], [3], sampling=short.replace(max_new_tokens=100))
    assert same(out.codes[:29], longer.codes[:29])  # the frames whose rows all precede the stop at row 45


def test_defaults_are_sampling_params_defaults(model):
    for fn in (generate, build_requests):
        assert inspect.signature(fn).parameters["sampling"].default == SamplingParams()
    (req,) = build_requests(model, ["[S1] hi"], [1])
    d = SamplingParams()
    assert (req.temperature, req.top_p, req.cfg_scale, req.top_k) == (d.temperature, d.top_p, d.cfg_scale,
                                                                      d.cfg_filter_top_k)


def test_seed_and_list_errors(model):
    with pytest.raises(InputError, match="item 0: seed: must be an integer"):
        generate(model, ["[S1] a"], ["x"])
    with pytest.raises(InputError, match="seeds: must be a list of 2 integers"):
        generate(model, ["[S1] a", "[S1] b"], [1])
    with pytest.raises(InputError, match="sampling: has 1 values for 2 texts"):
        generate(model, ["[S1] a", "[S1] b"], [1, 2], sampling=[REF])


def test_max_new_tokens_beyond_3072_positions_is_capped_and_said():
    model = DiaModel(DiaConfig.tiny(dec_max_positions=3072))
    with pytest.warns(UserWarning, match="max_new_tokens=4096 exceeds the decoder's 3072 positions.*at most 3051 new"):
        (req,) = build_requests(model, ["[S1] hi"], [1], [AudioPrompt(PROMPT[:5], "[S1] x")],
                                sampling=SamplingParams(max_new_tokens=4096))
    assert req.max_tokens == 3072
    with pytest.raises(InputError, match=r"3060 frames .*more than 3072 decoder positions"):
        build_requests(model, ["[S1] hi"], [1], [AudioPrompt(torch.zeros(3060, 9, dtype=torch.long), "[S1] x")],
                       sampling=SamplingParams(max_new_tokens=4096))
