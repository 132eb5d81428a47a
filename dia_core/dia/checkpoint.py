"""Find, read, checksum and convert Dia checkpoints into dia_core's state dict.

Layouts (docs/dia-model.md#checkpoints):
- reference (0626 model.safetensors / pytorch_model.bin, and v0.1 .pth): JAX-style "dense general"
  kernels [in..., out...], mlp.wi_fused [D, 2, I] (gate, up), 9 separate channel embeddings,
  decoder.logits_dense [D, C, V].
- transformers (DiaForConditionalGeneration): nn.Linear [out, in] under ``model.``, top-level
  logits_dense [C*V, D], one concatenated embedding table; single or sharded safetensors + index.
dia_core's own names are the transformers ones without ``model.`` (embeddings.embed -> embeddings,
logits_dense under decoder), so that layout needs renames only.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from .config import DiaConfig
from ..errors import InputError
from ..files import canonical_hash, file_sha256

WEIGHT_PATTERNS = ("model.safetensors.index.json", "model-*-of-*.safetensors", "model.safetensors",
                   "pytorch_model.bin", "*.pth")
_IGNORED = re.compile(r".*(rotary_emb|timescale|inv_freq).*")  # recomputed RoPE tables, never weights


@dataclass
class Checkpoint:
    config: DiaConfig
    state_dict: dict[str, Tensor]  # dia_core names and shapes
    layout: str  # "reference", "v0.1", "transformers" or "dia_core"
    source: str
    weight_files: list[Path]


def load_checkpoint(source: str | Path) -> Checkpoint:
    directory = resolve(source)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise InputError(f"no config.json in {directory}", file=config_path)
    config = DiaConfig.load(config_path)
    files = find_weight_files(directory)
    tensors = read_tensors(files)
    layout = detect_layout(tensors, files)
    if layout == "reference":
        state_dict = convert_reference(tensors, config)
        layout = "v0.1" if config.cross_attention_rope else "reference"
    elif layout == "transformers":
        state_dict = convert_transformers(tensors)
    else:
        state_dict = {k: v for k, v in tensors.items() if not _IGNORED.fullmatch(k)}
    return Checkpoint(config, state_dict, layout, str(source), files)


# ---- checksum --------------------------------------------------------------------------------------

def weights_checksum(files: list[Path]) -> str:
    """The model checksum (segment store keys include it): a single weight file's sha256 (so the
    keys of single-file checkpoints such as Dia-1.6B-0626 are those of earlier versions), and for
    several files the canonical hash of their (name, sha256) in load order. Built from per-file
    hashes so that dia_core.dia.identity can find it from the hub's LFS metadata or a memo."""
    return combine_file_hashes([(Path(f).name, file_sha256(f)) for f in files])


def combine_file_hashes(named: list[tuple[str, str]]) -> str:
    """weights_checksum from (file name, sha256) pairs in load order."""
    if len(named) == 1:
        return named[0][1]
    return canonical_hash({"weight_files": [[name, sha] for name, sha in named]})


def checkpoint_checksum(source: str | Path) -> str:
    """The checksum of a local directory or Hugging Face repo id without loading the model: the
    files are resolved as load_checkpoint does (a repo id may download them)."""
    return weights_checksum(find_weight_files(resolve(source)))


# ---- locating files --------------------------------------------------------------------------------

def hf_cache_dir() -> str:
    """The standard Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def hf_offline() -> bool:
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve(source: str | Path) -> Path:
    """A local directory as is; otherwise a Hugging Face repo id through the standard cache."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise InputError("is a file; pass the directory holding config.json and the weights", file=path)
    repo = str(source)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo) or repo.startswith((".", "/")):
        raise InputError("no such directory, and not a Hugging Face repo id (owner/name)", file=repo)

    from huggingface_hub import HfApi, snapshot_download  # only repo ids need the hub client

    cache, offline = hf_cache_dir(), hf_offline()
    errors = []
    if not offline:
        try:
            names = HfApi().list_repo_files(repo)
            wanted = _pick_weight_names(names)
            if not wanted:
                raise InputError(f"repo has no Dia weights ({', '.join(WEIGHT_PATTERNS)})", file=repo)
            return Path(snapshot_download(repo, allow_patterns=["config.json", *wanted], cache_dir=cache))
        except InputError:
            raise
        except Exception as e:  # unreachable hub, auth, ... -> try the cache like huggingface_hub does
            errors.append(f"download: {type(e).__name__}: {e}")
    try:
        # Only config.json as pattern: the snapshot may hold just the weights we chose when online.
        return Path(snapshot_download(repo, allow_patterns=["config.json"], cache_dir=cache, local_files_only=True))
    except Exception as e:
        errors.append(f"cache: {type(e).__name__}: {e}")
    mode = "offline (HF_HUB_OFFLINE set)" if offline else "online"
    raise InputError(f"not a local directory, and Hugging Face repo {repo!r} could not be resolved ({mode}, "
                     f"cache {cache}): " + "; ".join(errors), file=repo)


def _pick_weight_names(names: list[str]) -> list[str]:
    """Which files of a repo to download: one layout only (the 0626 repo holds two)."""
    if "model.safetensors.index.json" in names:
        index_shards = [n for n in names if re.fullmatch(r"model-\d+-of-\d+\.safetensors", n)]
        return ["model.safetensors.index.json", *index_shards]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if single in names:
            return [single]
    return [n for n in names if n.endswith(".pth") and "/" not in n]


def find_weight_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"unreadable shard index: {e}", file=index) from None
        shards = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise InputError(f"shards listed in the index are missing: {', '.join(missing)}", file=index)
        return shards
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return [directory / name]
    for pattern in ("*.safetensors", "*.pth"):
        found = sorted(directory.glob(pattern))
        if len(found) == 1:
            return found
        if len(found) > 1:
            raise InputError(f"several {pattern} files and no index; cannot tell which holds the weights: "
                             + ", ".join(p.name for p in found), file=directory)
    raise InputError("no Dia weights found (looked for model.safetensors.index.json, model.safetensors, "
                     "pytorch_model.bin, *.pth)", file=directory)


def read_tensors(files: list[Path]) -> dict[str, Tensor]:
    tensors: dict[str, Tensor] = {}
    for path in files:
        try:
            if path.suffix == ".safetensors":
                part = load_file(str(path), device="cpu")
            else:
                part = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                for wrapper in ("state_dict", "model"):
                    if isinstance(part, dict) and isinstance(part.get(wrapper), dict) and len(part) <= 2:
                        part = part[wrapper]
        except Exception as e:
            raise InputError(f"cannot read weights: {type(e).__name__}: {e}", file=path) from None
        if not isinstance(part, dict) or not all(isinstance(v, Tensor) for v in part.values()):
            raise InputError("not a state dict of tensors", file=path)
        tensors.update(part)
    return tensors


def detect_layout(tensors: dict[str, Tensor], files: list[Path]) -> str:
    keys = tensors.keys()
    if "logits_dense.weight" in keys or any(k.startswith("model.") for k in keys):
        return "transformers"
    if "decoder.embeddings.0.weight" in keys:
        return "reference"
    if "decoder.embeddings.weight" in keys:
        return "dia_core"
    sample = ", ".join(sorted(keys)[:5])
    raise InputError(f"unrecognised Dia checkpoint keys (first: {sample})", file=files[0])


# ---- conversion ------------------------------------------------------------------------------------

def _reference_kernel_dims(key: str, c: DiaConfig) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(in dims, out dims) of a reference dense-general kernel, or None if ``key`` is not one."""
    if key == "decoder.logits_dense.weight":
        return (c.dec_hidden,), (c.num_channels, c.dec_vocab)
    m = re.fullmatch(r"(encoder|decoder)\.layers\.\d+\.(self_attention|cross_attention|mlp)\.(\w+)\.weight", key)
    if not m:
        return None
    side, block, proj = m.groups()
    if side == "encoder":
        dim, inter, heads, kv_heads, hd, kv_in = (c.enc_hidden, c.enc_intermediate, c.enc_heads, c.enc_kv_heads,
                                                  c.enc_head_dim, c.enc_hidden)
    elif block == "cross_attention":
        dim, inter, heads, kv_heads, hd, kv_in = (c.dec_hidden, c.dec_intermediate, c.cross_heads,
                                                  c.cross_kv_heads, c.cross_head_dim, c.enc_hidden)
    else:
        dim, inter, heads, kv_heads, hd, kv_in = (c.dec_hidden, c.dec_intermediate, c.dec_heads, c.dec_kv_heads,
                                                  c.dec_head_dim, c.dec_hidden)
    return {
        "q_proj": ((dim,), (heads, hd)),
        "k_proj": ((kv_in,), (kv_heads, hd)),
        "v_proj": ((kv_in,), (kv_heads, hd)),
        "o_proj": ((heads, hd), (dim,)),
        "wi_fused": ((dim,), (2, inter)),  # index 0 gate, 1 up -> first `inter` rows of gate_up_proj
        "wo": ((inter,), (dim,)),
    }.get(proj)


def _mismatch(key: str, got, expected) -> InputError:
    return InputError(f"tensor {key} has shape {list(got)} but the config expects {list(expected)}",
                      field="checkpoint")


def convert_reference(tensors: dict[str, Tensor], c: DiaConfig) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    embeddings: dict[int, Tensor] = {}
    for key, t in tensors.items():
        if _IGNORED.fullmatch(key):
            continue
        m = re.fullmatch(r"decoder\.embeddings\.(\d+)\.weight", key)
        if m:
            if tuple(t.shape) != (c.dec_vocab, c.dec_hidden):
                raise _mismatch(key, t.shape, (c.dec_vocab, c.dec_hidden))
            embeddings[int(m.group(1))] = t
            continue
        dims = _reference_kernel_dims(key, c)
        if dims is not None:
            in_dims, out_dims = dims
            if tuple(t.shape) != in_dims + out_dims:
                raise _mismatch(key, t.shape, in_dims + out_dims)
            t = t.reshape(math.prod(in_dims), math.prod(out_dims)).T.contiguous()  # -> nn.Linear [out, in]
        out[key.replace("mlp.wi_fused.", "mlp.gate_up_proj.").replace("mlp.wo.", "mlp.down_proj.")] = t
    missing = [f"decoder.embeddings.{i}.weight" for i in range(c.num_channels) if i not in embeddings]
    if missing or len(embeddings) != c.num_channels:
        raise InputError(f"expected {c.num_channels} channel embeddings decoder.embeddings.0..{c.num_channels - 1}"
                         f"; missing: {', '.join(missing) or 'none'}; found {len(embeddings)}", field="checkpoint")
    out["decoder.embeddings.weight"] = torch.cat([embeddings[i] for i in range(c.num_channels)], dim=0)
    return out


def convert_transformers(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, t in tensors.items():
        if _IGNORED.fullmatch(key):
            continue
        if key == "logits_dense.weight":
            out["decoder.logits_dense.weight"] = t
        elif key.startswith("model."):
            out[key[len("model."):].replace("decoder.embeddings.embed.weight", "decoder.embeddings.weight")] = t
        else:
            out[key] = t  # reported as unexpected by check_state_dict
    return out


def check_state_dict(state_dict: dict[str, Tensor], expected: dict[str, tuple[int, ...]]) -> None:
    """InputError listing missing, unexpected and mismatched tensors (key and both shapes)."""
    problems = []
    for key, shape in expected.items():
        if key not in state_dict:
            problems.append(f"missing {key} (expected shape {list(shape)})")
        elif tuple(state_dict[key].shape) != tuple(shape):
            problems.append(f"{key} has shape {list(state_dict[key].shape)} but the config expects {list(shape)}")
    problems += [f"unexpected {k} (shape {list(v.shape)})" for k, v in state_dict.items() if k not in expected]
    if problems:
        more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
        raise InputError("checkpoint does not match its config: " + "; ".join(problems[:8]) + more,
                         field="checkpoint")
