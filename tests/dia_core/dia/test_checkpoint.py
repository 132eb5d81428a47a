import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import dia_core.dia.checkpoint as checkpoint
from dia_core.dia.checkpoint import checkpoint_checksum, load_checkpoint
from dia_core.dia.config import DiaConfig
from dia_core.errors import InputError
from dia_core.files import canonical_hash
from dia_core.dia.model import DEFAULT_REPO, DiaModel
from tests.tiny_models import LAYOUTS, tiny_config, write_tiny_dia_checkpoint


def _inputs():
    text = torch.tensor([[1, 72, 105, 33, 0, 0], [2, 65, 66, 67, 68, 69]])
    audio = torch.randint(0, 1024, (2, 24, 9), generator=torch.Generator().manual_seed(1))
    audio[:, 0] = 1026
    return text, audio


def test_all_layouts_load_to_the_same_model(tmp_path):
    text, audio = _inputs()
    logits = {}
    for layout in LAYOUTS:
        model = DiaModel.from_pretrained(write_tiny_dia_checkpoint(tmp_path / layout, layout, seed=3))
        assert model.config == tiny_config(cross_attention_rope=layout == "v0.1")
        assert load_checkpoint(tmp_path / layout).layout == layout.replace("-sharded", "")
        logits[layout] = model(text, audio)
    assert logits["reference"].shape == (2, 24, 9, 1028) and logits["reference"].dtype == torch.float32
    assert torch.equal(logits["reference"], logits["transformers"])
    assert torch.equal(logits["transformers"], logits["transformers-sharded"])
    # Same weights, v0.1 code: RoPE in cross-attention changes the outputs.
    assert not torch.allclose(logits["v0.1"], logits["reference"], atol=1e-3)


def test_reference_layout_as_pytorch_model_bin(tmp_path):
    d = write_tiny_dia_checkpoint(tmp_path, "reference", seed=3)
    expected = DiaModel.from_pretrained(d)(*_inputs())
    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    assert load_checkpoint(d).layout == "reference"
    assert torch.equal(DiaModel.from_pretrained(d)(*_inputs()), expected)


def test_config_parsers_invert_writers():
    c = DiaConfig.tiny()
    assert DiaConfig.from_dict(c.to_hf_dict("transformers")) == c
    assert DiaConfig.from_dict(c.to_hf_dict("reference")) == c
    assert DiaConfig.from_dict(c.to_v01_dict()) == c.replace(cross_attention_rope=True)
    real = DiaConfig()
    assert (real.dec_max_positions, real.enc_max_positions, real.dec_kv_heads) == (3072, 1024, 4)
    with pytest.raises(InputError, match="config.json"):
        DiaConfig.from_dict({"foo": 1})
    bad = c.to_hf_dict("transformers")
    del bad["decoder_config"]["num_hidden_layers"]
    with pytest.raises(InputError, match="num_hidden_layers"):
        DiaConfig.from_dict(bad)


def test_missing_tensor_is_named(tmp_path):
    d = write_tiny_dia_checkpoint(tmp_path, "transformers")
    tensors = load_file(d / "model.safetensors")
    del tensors["model.decoder.layers.1.mlp.down_proj.weight"]
    save_file(tensors, d / "model.safetensors")
    with pytest.raises(InputError) as e:
        DiaModel.from_pretrained(d)
    assert "missing decoder.layers.1.mlp.down_proj.weight (expected shape [64, 128])" in str(e.value)


def test_mismatched_tensor_names_key_and_both_shapes(tmp_path):
    d = write_tiny_dia_checkpoint(tmp_path / "t", "transformers")
    tensors = load_file(d / "model.safetensors")
    tensors["model.encoder.embedding.weight"] = torch.zeros(256, 48)
    tensors["model.decoder.extra.weight"] = torch.zeros(3)
    save_file(tensors, d / "model.safetensors")
    with pytest.raises(InputError) as e:
        DiaModel.from_pretrained(d)
    assert "encoder.embedding.weight has shape [256, 48] but the config expects [256, 32]" in str(e.value)
    assert "unexpected decoder.extra.weight" in str(e.value)

    d = write_tiny_dia_checkpoint(tmp_path / "r", "reference")
    tensors = load_file(d / "model.safetensors")
    key = "decoder.layers.0.self_attention.q_proj.weight"
    assert tensors[key].shape == (64, 4, 16)  # dense-general kernel [in, heads, head_dim]
    tensors[key] = torch.zeros(64, 4, 8)
    save_file(tensors, d / "model.safetensors")
    with pytest.raises(InputError) as e:
        DiaModel.from_pretrained(d)
    assert f"{key} has shape [64, 4, 8] but the config expects [64, 4, 16]" in str(e.value)


def test_sharded_index_with_missing_shard(tmp_path):
    d = write_tiny_dia_checkpoint(tmp_path, "transformers-sharded")
    (d / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(InputError, match="model-00002-of-00002.safetensors"):
        DiaModel.from_pretrained(d)


def test_directory_without_weights_or_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(DiaConfig.tiny().to_hf_dict()))
    with pytest.raises(InputError, match="no Dia weights"):
        DiaModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(InputError, match="no config.json"):
        DiaModel.from_pretrained(tmp_path)


def test_neither_directory_nor_repo_id(tmp_path):
    with pytest.raises(InputError, match="not a Hugging Face repo id"):
        DiaModel.from_pretrained(tmp_path / "nope" / "deeper" / "x")


def _populate_hf_cache(cache, repo, layout):
    commit = "0123456789abcdef0123456789abcdef01234567"
    storage = cache / ("models--" + repo.replace("/", "--"))
    write_tiny_dia_checkpoint(storage / "snapshots" / commit, layout)
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    return storage / "snapshots" / commit


def test_repo_id_resolves_through_offline_hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snapshot = _populate_hf_cache(cache, DEFAULT_REPO, "transformers-sharded")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = DiaModel.from_pretrained()  # the default repo id
    assert model.source == DEFAULT_REPO
    assert model.config == tiny_config()
    # Several files: the canonical hash of their names and sha256s in load order.
    expected = canonical_hash({"weight_files": [
        [name, hashlib.sha256((snapshot / name).read_bytes()).hexdigest()]
        for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")]})
    assert model.checksum == expected
    assert checkpoint_checksum(DEFAULT_REPO) == model.checksum  # resolved like load_checkpoint

    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # HF_HOME/hub is the same cache
    assert DiaModel.from_pretrained(DEFAULT_REPO).config == tiny_config()

    with pytest.raises(InputError) as e:
        DiaModel.from_pretrained("someone/not-cached")
    assert "someone/not-cached" in str(e.value) and "HF_HUB_OFFLINE" in str(e.value)


def test_checksum_is_sha256_of_weight_file(tmp_path):
    d = write_tiny_dia_checkpoint(tmp_path, "v0.1")
    model = DiaModel.from_pretrained(str(d))
    assert model.source == str(d)
    assert model.checksum == hashlib.sha256((d / "dia-v0_1.pth").read_bytes()).hexdigest()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_checksum_of_a_source_without_loading_it(tmp_path, layout, monkeypatch):
    d = write_tiny_dia_checkpoint(tmp_path, layout)
    loaded = DiaModel.from_pretrained(d).checksum
    monkeypatch.setattr(checkpoint, "read_tensors", lambda files: pytest.fail("read the weights"))
    assert checkpoint_checksum(d) == checkpoint_checksum(str(d)) == loaded
