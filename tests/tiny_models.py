"""Tiny random Dia checkpoints (every layout) and a tiny DAC codec, for fast CPU tests.

The layouts are written here from the facts sheet, independently of dia_core.checkpoint, so loading
them tests the conversion rather than round-tripping it.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from dia_core.dia.config import DiaConfig

LAYOUTS = ("reference", "v0.1", "transformers", "transformers-sharded")


def tiny_config(**overrides) -> DiaConfig:
    return DiaConfig.tiny(**overrides)


def random_state_dict(config: DiaConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """dia_core-named fp32 weights with O(1) activations and logits of std ~2 (clear argmax gaps)."""
    from dia_core.dia.model import DiaModel

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DiaModel(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        shape = shapes[key]
        noise = torch.randn(shape, generator=gen)
        if "norm" in key:
            out[key] = 1.0 + 0.1 * noise
        elif "embedding" in key:
            out[key] = noise
        elif key == "decoder.logits_dense.weight":
            out[key] = noise * 2.0 / shape[1] ** 0.5
        else:
            out[key] = noise / shape[1] ** 0.5
    return out


def to_transformers_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in sd.items():
        if key == "decoder.logits_dense.weight":
            out["logits_dense.weight"] = t
        elif key == "decoder.embeddings.weight":
            out["model.decoder.embeddings.embed.weight"] = t
        else:
            out["model." + key] = t
    return out


def to_reference_layout(sd: dict[str, torch.Tensor], c: DiaConfig) -> dict[str, torch.Tensor]:
    """nn.Linear [out, in] -> JAX dense-general kernels [in..., out...] (facts sheet)."""
    out = {}
    for key, w in sd.items():
        parts = key.split(".")
        if key == "decoder.embeddings.weight":
            for ch, table in enumerate(w.split(c.dec_vocab, dim=0)):
                out[f"decoder.embeddings.{ch}.weight"] = table.contiguous().clone()
            continue
        if key == "decoder.logits_dense.weight":
            out[key] = w.T.reshape(c.dec_hidden, c.num_channels, c.dec_vocab).contiguous().clone()
            continue
        if parts[-2] in ("q_proj", "k_proj", "v_proj", "o_proj"):
            enc, cross = parts[0] == "encoder", parts[3] == "cross_attention"
            hd = c.enc_head_dim if enc else c.cross_head_dim if cross else c.dec_head_dim
            if parts[-2] == "o_proj":  # [D, H*hd] -> [H, hd, D]
                out[key] = w.T.reshape(-1, hd, w.shape[0]).contiguous().clone()
            else:  # [H*hd, D_in] -> [D_in, H, hd]
                out[key] = w.T.reshape(w.shape[1], -1, hd).contiguous().clone()
            continue
        if parts[-2] == "gate_up_proj":  # [2I, D] -> [D, 2, I] (0 = gate)
            out[key.replace("gate_up_proj", "wi_fused")] = w.T.reshape(w.shape[1], 2, w.shape[0] // 2).contiguous().clone()
            continue
        if parts[-2] == "down_proj":  # [D, I] -> [I, D]
            out[key.replace("down_proj", "wo")] = w.T.contiguous().clone()
            continue
        out[key] = w.contiguous().clone()
    return out


def write_tiny_dia_checkpoint(directory, layout: str = "reference", seed: int = 0,
                              config: DiaConfig | None = None) -> Path:
    """Write a tiny random Dia checkpoint in ``layout`` (one of LAYOUTS) into ``directory``."""
    from safetensors.torch import save_file

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    c = config or tiny_config()
    sd = random_state_dict(c, seed)
    if layout.startswith("transformers"):
        (directory / "config.json").write_text(json.dumps(c.to_hf_dict("transformers"), indent=2))
        tensors = {k: v.contiguous() for k, v in to_transformers_layout(sd).items()}
        if layout == "transformers":
            save_file(tensors, str(directory / "model.safetensors"))
        else:
            keys = sorted(tensors)
            halves = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
            weight_map = {}
            for n, part in enumerate(halves, start=1):
                name = f"model-{n:05d}-of-00002.safetensors"
                save_file({k: tensors[k] for k in part}, str(directory / name))
                weight_map.update({k: name for k in part})
            total = sum(t.numel() * t.element_size() for t in tensors.values())
            (directory / "model.safetensors.index.json").write_text(
                json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    elif layout == "reference":
        (directory / "config.json").write_text(json.dumps(c.to_hf_dict("reference"), indent=2))
        save_file(to_reference_layout(sd, c), str(directory / "model.safetensors"))
    else:  # v0.1: old-schema config.json + .pth state dict with reference keys
        (directory / "config.json").write_text(json.dumps(c.to_v01_dict(), indent=2))
        torch.save(to_reference_layout(sd, c), directory / "dia-v0_1.pth")
    return directory


def write_tiny_dac(path) -> Path:
    """A random dac.DAC with the real 512 hop (2*4*8*8) and 9 codebooks of 1024, saved like the real
    weights file (DAC.save(package=False)) so DiaCodec.load(path) takes the production path."""
    import dac

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = dac.DAC(encoder_dim=4, encoder_rates=[2, 4, 8, 8], decoder_dim=32, decoder_rates=[8, 8, 4, 2],
                        n_codebooks=9, codebook_size=1024, codebook_dim=8, sample_rate=44100)
    model.save(str(path), package=False)
    return path


@contextlib.contextmanager
def single_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the thread pool's
    spinning makes them several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
