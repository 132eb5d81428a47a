"""Dia 1.6B in plain PyTorch: byte-text encoder and 9-channel audio-code decoder (the network only;
the generation loop is dia_core.dia.generate, which imports this module, never the reverse).

Facts implemented (docs/dia-model.md#architecture): pre-norm blocks with fp32 RMSNorm, SiLU-gated
MLP without biases, GQA, attention scale 1.0, half-split RoPE on self-attention only (v0.1
checkpoints also rotate cross-attention), 9 summed channel embeddings, fp32 logits [B, T, 9, 1028].

``Decoder.forward`` serves teacher forcing, prefill and the decode step. Given ``kv_len`` it is the
decode step with static shapes (the self-attention cache is preallocated, positions are a device
tensor, attention reads a fixed ``kv_len`` prefix of the cache), so the step can be compiled and
captured as a CUDA graph (dia_core.dia.generate). Cross-attention K/V are computed once per batch.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import check_state_dict, load_checkpoint, weights_checksum
from .config import DiaConfig
from ..params import DEFAULT_REPO


# ---- building blocks -------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """RMSNorm computed in fp32 with an fp32 weight whatever the model dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * self.weight.float()).to(x.dtype)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_up_proj = nn.Linear(dim, 2 * hidden, bias=False)  # rows [0, hidden) are the gate
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


def rope_cos_sin(positions: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos/sin tables [T, head_dim] in fp32 for integer positions [T]."""
    inv_freq = theta ** -(torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Half-split rotation of x [B, H, T, D] in fp32 (cos/sin [T, D])."""
    x32 = x.float()
    x1, x2 = x32.chunk(2, dim=-1)
    return (x32 * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)


class KVCache:
    """Static self-attention cache [B, kv_heads, max_len, head_dim]; written at tensor positions."""

    def __init__(self, batch: int, kv_heads: int, max_len: int, head_dim: int, dtype, device):
        self.k = torch.zeros(batch, kv_heads, max_len, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)

    def update(self, positions: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.k.index_copy_(2, positions, k)
        self.v.index_copy_(2, positions, v)
        return self.k, self.v


class Attention(nn.Module):
    """Multi-head attention with grouped K/V heads and scale 1.0 (Dia's training used no 1/sqrt(d))."""

    def __init__(self, dim: int, kv_in: int, heads: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(dim, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(kv_in, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(kv_in, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, dim, bias=False)

    def _split(self, x: Tensor, heads: int) -> Tensor:  # [B, T, H*D] -> [B, H, T, D]
        return x.view(x.shape[0], x.shape[1], heads, self.head_dim).transpose(1, 2)

    def query(self, x: Tensor) -> Tensor:
        return self._split(self.q_proj(x), self.heads)

    def key_value(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._split(self.k_proj(x), self.kv_heads), self._split(self.v_proj(x), self.kv_heads)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, one_row: bool = False) -> Tensor:
        """q [B, H, T, D], k/v [B, KVH, K, D], mask broadcastable to [B, H, T, K] -> [B, T, dim].

        ``one_row`` is the decode step's kernel (T = 1): query heads are grouped onto their K/V head
        by a plain matmul (no repeat of K/V, no SDPA backend choice depending on the mask), softmax
        in fp32. Prefill and teacher forcing use SDPA."""
        if one_row:
            B, D, G = q.shape[0], self.head_dim, self.heads // self.kv_heads
            scores = torch.matmul(q.view(B, self.kv_heads, G, D), k.transpose(-1, -2)).float()  # scale 1.0
            probs = scores.masked_fill(~mask, float("-inf")).softmax(-1).to(v.dtype)
            return self.o_proj(torch.matmul(probs, v).reshape(B, 1, self.heads * D))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0,
                                             enable_gqa=self.heads != self.kv_heads)
        return self.o_proj(out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1))


class EncoderLayer(nn.Module):
    def __init__(self, c: DiaConfig):
        super().__init__()
        self.pre_sa_norm = RMSNorm(c.enc_hidden, c.norm_eps)
        self.self_attention = Attention(c.enc_hidden, c.enc_hidden, c.enc_heads, c.enc_kv_heads, c.enc_head_dim)
        self.post_sa_norm = RMSNorm(c.enc_hidden, c.norm_eps)
        self.mlp = MLP(c.enc_hidden, c.enc_intermediate)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor) -> Tensor:
        h = self.pre_sa_norm(x)
        attn = self.self_attention
        q, (k, v) = attn.query(h), attn.key_value(h)
        x = x + attn.attend(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, mask)
        return x + self.mlp(self.post_sa_norm(x))


class Encoder(nn.Module):
    def __init__(self, c: DiaConfig):
        super().__init__()
        self.config = c
        self.embedding = nn.Embedding(c.enc_vocab, c.enc_hidden)
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.enc_layers))
        self.norm = RMSNorm(c.enc_hidden, c.norm_eps)

    def forward(self, tokens: Tensor, text_mask: Tensor) -> Tensor:
        """tokens [B, S]; text_mask [B, S] (True = real byte). The unconditional CFG rows pass all-zero
        tokens with the conditional rows' mask, so the mask is an argument, not ``tokens != 0``."""
        x = self.embedding(tokens)
        cos, sin = rope_cos_sin(torch.arange(tokens.shape[1], device=tokens.device),
                                self.config.enc_head_dim, self.config.rope_theta)
        # Real bytes see real bytes, padding sees padding: no row is fully masked.
        mask = (text_mask[:, :, None] == text_mask[:, None, :])[:, None]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, c: DiaConfig):
        super().__init__()
        self.pre_sa_norm = RMSNorm(c.dec_hidden, c.norm_eps)
        self.self_attention = Attention(c.dec_hidden, c.dec_hidden, c.dec_heads, c.dec_kv_heads, c.dec_head_dim)
        self.pre_ca_norm = RMSNorm(c.dec_hidden, c.norm_eps)
        self.cross_attention = Attention(c.dec_hidden, c.enc_hidden, c.cross_heads, c.cross_kv_heads,
                                         c.cross_head_dim)
        self.pre_mlp_norm = RMSNorm(c.dec_hidden, c.norm_eps)
        self.mlp = MLP(c.dec_hidden, c.dec_intermediate)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], self_mask: Tensor, positions: Tensor,
                cache: KVCache | None, cross_kv: tuple[Tensor, Tensor], cross_mask: Tensor,
                cross_rope: tuple[Tensor, Tensor] | None, kv_len: int | None = None) -> Tensor:
        """Rows x [B, T, D] at ``positions``; see Decoder.forward for the cache and ``kv_len``."""
        step = kv_len is not None
        cos, sin = rope
        h = self.pre_sa_norm(x)
        attn = self.self_attention
        q, (k, v) = attn.query(h), attn.key_value(h)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(positions, k, v)
        if step:  # a fixed prefix of the cache: the step's shapes do not change with its position
            k, v = k[:, :, :kv_len], v[:, :, :kv_len]
        x = x + attn.attend(q, k, v, self_mask, one_row=step)

        h = self.pre_ca_norm(x)
        q = self.cross_attention.query(h)
        if cross_rope is not None:  # v0.1 only
            q = apply_rope(q, *cross_rope)
        x = x + self.cross_attention.attend(q, *cross_kv, cross_mask, one_row=step)
        return x + self.mlp(self.pre_mlp_norm(x))


class Decoder(nn.Module):
    def __init__(self, c: DiaConfig):
        super().__init__()
        self.config = c
        # The 9 channel embeddings live in one table (channel c at rows c*V..c*V+V-1) and are summed.
        self.embeddings = nn.Embedding(c.num_channels * c.dec_vocab, c.dec_hidden)
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.dec_layers))
        self.norm = RMSNorm(c.dec_hidden, c.norm_eps)
        self.logits_dense = nn.Linear(c.dec_hidden, c.num_channels * c.dec_vocab, bias=False)

    def cross_key_values(self, enc_out: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Cross-attention K/V per layer, computed once per generation."""
        c = self.config
        out = []
        for layer in self.layers:
            k, v = layer.cross_attention.key_value(enc_out)
            if c.cross_attention_rope:  # v0.1 rotated encoder keys by their text positions
                cos, sin = rope_cos_sin(torch.arange(enc_out.shape[1], device=enc_out.device),
                                        c.cross_head_dim, c.rope_theta)
                k = apply_rope(k, cos, sin)
            out.append((k, v))
        return out

    def new_caches(self, batch: int, max_len: int, dtype, device) -> list[KVCache]:
        c = self.config
        return [KVCache(batch, c.dec_kv_heads, max_len, c.dec_head_dim, dtype, device) for _ in self.layers]

    def forward(self, tokens: Tensor, positions: Tensor, cross_kv: list[tuple[Tensor, Tensor]],
                text_mask: Tensor, caches: list[KVCache] | None = None, kv_len: int | None = None) -> Tensor:
        """tokens [B, T, C] (delayed codes) at absolute positions [T] -> fp32 logits [B, T, C, V].

        Without caches this is plain causal attention over the T rows (teacher forcing). With caches
        the rows are written at ``positions`` and attend to everything cached at or before their
        position (prefill). With ``kv_len`` as well it is the decode step: one row per item (T = 1,
        the position a device tensor), self-attention reads only cache positions [0, kv_len)
        (kv_len > position), and both attentions use the one-row kernel, so shapes are static.
        """
        c = self.config
        offsets = torch.arange(c.num_channels, device=tokens.device) * c.dec_vocab
        x = self.embeddings(tokens + offsets).sum(dim=2)
        rope = rope_cos_sin(positions, c.dec_head_dim, c.rope_theta)
        cross_rope = rope_cos_sin(positions, c.cross_head_dim, c.rope_theta) if c.cross_attention_rope else None
        if kv_len is not None:
            key_len = kv_len
        else:
            key_len = caches[0].k.shape[2] if caches is not None else tokens.shape[1]
        self_mask = torch.arange(key_len, device=tokens.device)[None, :] <= positions[:, None]  # [T, K]
        cross_mask = text_mask[:, None, None, :]
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, self_mask, positions, caches[i] if caches is not None else None, cross_kv[i],
                      cross_mask, cross_rope, kv_len)
        logits = self.logits_dense(self.norm(x)).float()
        return logits.view(*tokens.shape[:2], c.num_channels, c.dec_vocab)


# ---- the model -------------------------------------------------------------------------------------

class DiaModel(nn.Module):
    def __init__(self, config: DiaConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.source: str | None = None
        # The DiaCodec paired with this model (voice prompt files in, audio out); set by the loader,
        # or loaded on first need by dia_core.dia.generate.require_codec. The model does not decode.
        self.codec = None
        self._weight_files: list[Path] = []
        self._checksum: str | None = None
        self._static = None  # dia_core.dia.generate.StaticDecode: buffers and CUDA graphs of the fast path

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path = DEFAULT_REPO, device="cpu",
                        dtype: torch.dtype = torch.float32) -> "DiaModel":
        """Load a local directory or Hugging Face repo id, in any of the three checkpoint layouts."""
        ckpt = load_checkpoint(path_or_repo_id)
        with torch.device("meta"):
            model = cls(ckpt.config)
        model.load_converted_state_dict(ckpt.state_dict)
        model.to_device(device, dtype)
        model.source, model._weight_files = ckpt.source, ckpt.weight_files
        return model.eval()

    def load_converted_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Assign an already converted state dict; InputError naming missing/unexpected/mismatched keys."""
        check_state_dict(state_dict, {k: tuple(v.shape) for k, v in self.state_dict().items()})
        self.load_state_dict(state_dict, assign=True)

    def to_device(self, device, dtype: torch.dtype) -> "DiaModel":
        """Move to device/dtype, keeping RMSNorm weights in fp32."""
        self.to(device=device, dtype=dtype)
        for m in self.modules():
            if isinstance(m, RMSNorm):
                m.weight.data = m.weight.data.float()
        return self

    @property
    def device(self) -> torch.device:
        return self.decoder.logits_dense.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.logits_dense.weight.dtype

    @property
    def checksum(self) -> str:
        """checkpoint.weights_checksum of the loaded weight files, computed on first use."""
        if self._checksum is None:
            self._checksum = weights_checksum(self._weight_files)
        return self._checksum

    def forward(self, text_tokens: Tensor, audio_tokens: Tensor) -> Tensor:
        """Teacher-forced logits: text [B, S] (0-padded), delayed audio [B, T, 9] with BOS at row 0
        -> fp32 logits [B, T, 9, 1028] (row t predicts row t + 1)."""
        text_tokens, audio_tokens = text_tokens.to(self.device), audio_tokens.to(self.device)
        text_mask = text_tokens != 0
        enc = self.encoder(text_tokens, text_mask)
        positions = torch.arange(audio_tokens.shape[1], device=self.device)
        return self.decoder(audio_tokens, positions, self.decoder.cross_key_values(enc), text_mask)


__all__ = ["DiaModel", "DEFAULT_REPO"]
