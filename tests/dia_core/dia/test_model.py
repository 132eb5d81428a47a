"""Parity with the transformers implementation (a peer, test-only dependency)."""
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from dia_core.dia.generate import AudioPrompt, delay_codes, generate, undelay_codes
from dia_core.dia.model import DiaModel
from dia_core.params import SamplingParams
from dia_core.dia.tokenizer import encode_batch, encode_text
from tests.tiny_models import tiny_config, to_reference_layout, write_tiny_dia_checkpoint

transformers = pytest.importorskip("transformers")  # declared in the [test] extra
from transformers import DiaConfig as HFDiaConfig, DiaForConditionalGeneration  # noqa: E402
from transformers.models.dia.configuration_dia import DiaDecoderConfig, DiaEncoderConfig  # noqa: E402

TEXTS = ["[S1] Hello there, how are you doing today? [S2] Fine.", "[S2] Hi."]
# Greedy CFG with transformers' settings in _hf_greedy (guidance_scale 3.0, top_k 45).
GREEDY = SamplingParams(temperature=0.0, cfg_scale=3.0, cfg_filter_top_k=45, max_new_tokens=500)
EOS, PAD, BOS = 1024, 1025, 1026
# The tiny config has 256 decoder positions, so max_new_tokens=500 is capped (with a warning).
pytestmark = [pytest.mark.filterwarnings("ignore:.*exceeds the decoder:UserWarning"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def hf_model():
    c = tiny_config()
    enc = DiaEncoderConfig(num_hidden_layers=c.enc_layers, hidden_size=c.enc_hidden,
                           intermediate_size=c.enc_intermediate, num_attention_heads=c.enc_heads,
                           num_key_value_heads=c.enc_kv_heads, head_dim=c.enc_head_dim)
    dec = DiaDecoderConfig(num_hidden_layers=c.dec_layers, hidden_size=c.dec_hidden,
                           intermediate_size=c.dec_intermediate, num_attention_heads=c.dec_heads,
                           num_key_value_heads=c.dec_kv_heads, head_dim=c.dec_head_dim,
                           cross_num_attention_heads=c.cross_heads, cross_num_key_value_heads=c.cross_kv_heads,
                           cross_head_dim=c.cross_head_dim, cross_hidden_size=c.enc_hidden,
                           max_position_embeddings=c.dec_max_positions)
    model = DiaForConditionalGeneration(HFDiaConfig(encoder_config=enc, decoder_config=dec)).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # O(1) activations and well-separated logits, unlike the 0.02 init
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name:
                p.copy_(1 + 0.1 * noise)
            elif "embed" in name:
                p.copy_(noise)
            else:
                p.copy_(noise * (2.0 if name == "logits_dense.weight" else 1.0) / p.shape[1] ** 0.5)
    return model


@pytest.fixture(scope="module")
def saved(hf_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_model.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def reference_dir(saved, tmp_path_factory):
    """The same weights converted to the reference layout (facts sheet mapping, tests/tiny_models.py)."""
    hf = load_file(saved / "model.safetensors")
    ours = {}
    for k, v in hf.items():
        k = "decoder.logits_dense.weight" if k == "logits_dense.weight" else k.removeprefix("model.")
        ours[k.replace("embeddings.embed.weight", "embeddings.weight")] = v
    d = tmp_path_factory.mktemp("ref")
    save_file(to_reference_layout(ours, tiny_config()), d / "model.safetensors")
    (d / "config.json").write_text((saved / "config.json").read_text())
    return d


def _text():
    text = encode_batch([encode_text(t) for t in TEXTS])
    return text, (text != 0).long()


def _hf_logits(hf_model, text, mask, audio):
    with torch.no_grad():
        out = hf_model(input_ids=text, attention_mask=mask, decoder_input_ids=audio).logits
    B, T = audio.shape[:2]
    return out.view(B, 9, T, 1028).transpose(1, 2)  # channel-first -> [B, T, 9, V]


@pytest.mark.parametrize("layout", ["transformers", "reference"])
def test_teacher_forced_logits_match_transformers(hf_model, saved, reference_dir, layout):
    model = DiaModel.from_pretrained(saved if layout == "transformers" else reference_dir)
    text, mask = _text()
    audio = torch.randint(0, 1024, (2, 40, 9), generator=torch.Generator().manual_seed(5))
    audio = torch.stack([delay_codes(torch.cat([torch.full((1, 9), BOS), a[:24]]), model.config.delay_pattern,
                                     BOS, PAD)[:40] for a in audio])
    ours = model(text, audio)
    ref = _hf_logits(hf_model, text, mask, audio)
    assert ours.shape == ref.shape == (2, 40, 9, 1028)
    assert (ours - ref).abs().max().item() < 1e-4


def test_tiny_builder_transformers_layout_loads_in_transformers(tmp_path):
    d = write_tiny_dia_checkpoint(tmp_path, "transformers", seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = DiaForConditionalGeneration.from_pretrained(d).eval()
    text, mask = _text()
    audio = torch.full((2, 12, 9), BOS)
    audio[:, 1:, 0] = torch.arange(11) * 7
    ours = DiaModel.from_pretrained(d)(text, audio)
    assert (ours - _hf_logits(hf, text, mask, audio)).abs().max().item() < 1e-4


def _hf_greedy(hf_model, text, mask, prompts, max_new_tokens):
    """transformers greedy CFG generation from the processor-style delayed prefill."""
    prefix = [delay_codes(torch.cat([torch.full((1, 9), BOS), p]), [0, 8, 9, 10, 11, 12, 13, 14, 15], BOS, PAD)
              for p in prompts]
    prefill = torch.stack(prefix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = hf_model.generate(input_ids=text, attention_mask=mask, decoder_input_ids=prefill,
                                decoder_attention_mask=torch.ones(prefill.shape[:2], dtype=torch.long),
                                do_sample=False, guidance_scale=3.0, top_k=45, max_new_tokens=max_new_tokens)
    return out  # [B, rows, 9], delayed


def _compare(out_rows, prompt_len, ours):
    """Rows are identical until either implementation starts its EOS countdown; after that the inputs
    differ by design (transformers counts its max length differently). A frame j needs rows up to
    1 + L + j + 15, so frames j < trigger_row - 16 - L must match exactly."""
    eos_rows = (out_rows[:, 0] == EOS).nonzero()
    hf_row = int(eos_rows[0]) if len(eos_rows) else out_rows.shape[0]
    our_row = 1 + prompt_len + len(ours.codes)
    frames = undelay_codes(out_rows, [0, 8, 9, 10, 11, 12, 13, 14, 15])[1 + prompt_len:]
    if not ours.hit_limit and our_row <= hf_row:  # our EOS came first: transformers must agree
        assert hf_row == our_row
        assert torch.equal(ours.codes, frames[: len(ours.codes)])
    else:
        n = min(hf_row, our_row) - 16 - prompt_len
        assert n >= 20
        assert torch.equal(ours.codes[:n], frames[:n])


def test_greedy_cfg_generation_matches_transformers(hf_model, saved):
    model = DiaModel.from_pretrained(saved)
    text, mask = _text()
    out = _hf_greedy(hf_model, text, mask, [torch.zeros(0, 9, dtype=torch.long)] * 2, 70)
    ours = generate(model, TEXTS, seeds=[1, 2], sampling=GREEDY)
    for i in range(2):
        _compare(out[i], 0, ours[i])


def test_greedy_with_voice_prompt_matches_transformers(hf_model, reference_dir):
    """Every known prefix row (BOS + prompt, delayed: 1 + L + 15 rows) is forced, as transformers does."""
    model = DiaModel.from_pretrained(reference_dir)
    prompt = torch.randint(0, 1024, (12, 9), generator=torch.Generator().manual_seed(9))
    transcript, new_text = "[S1] This is the prompt.", "[S1] And this is new."
    text = encode_batch([encode_text(transcript + " " + new_text)])
    out = _hf_greedy(hf_model, text, (text != 0).long(), [prompt], 60)
    ours = generate(model, [new_text], [0], audio_prompts=[AudioPrompt(prompt, transcript)], sampling=GREEDY)[0]
    assert ours.prompt_frames == 12
    _compare(out[0], 12, ours)


def test_bf16_keeps_norms_and_logits_fp32(saved):
    model = DiaModel.from_pretrained(saved, dtype=torch.bfloat16)
    assert model.decoder.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
    assert model.decoder.layers[0].pre_sa_norm.weight.dtype == torch.float32
    text, _ = _text()
    logits = model(text, torch.full((2, 3, 9), BOS))
    assert logits.dtype == torch.float32
    ref = DiaModel.from_pretrained(saved)(text, torch.full((2, 3, 9), BOS))
    assert (logits - ref).abs().max().item() < 0.5  # same model, bf16 rounding only
