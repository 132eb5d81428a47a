"""Dia model configuration and parsers for the three config.json schemas in the wild.

- 0626 reference (and transformers 4.x): ``encoder_config``/``decoder_config`` with ``rope_theta``,
  token ids at the top level.
- transformers 5.x: the same sub-configs with ``rope_parameters`` and token ids in ``decoder_config``.
- v0.1 (old schema): ``model.encoder.n_layer``, ``data.delay_pattern``, ... The v0.1 code applied
  RoPE in cross-attention too, so a v0.1 checkpoint sets ``cross_attention_rope``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..errors import InputError
from ..params import (AUDIO_VOCAB, BOS_ID, DELAY_PATTERN, EOS_ID, MAX_DECODER_POSITIONS, MAX_TEXT_BYTES, NUM_CHANNELS,
                      PAD_ID, TEXT_VOCAB)


@dataclass(frozen=True)
class DiaConfig:
    # Encoder (text bytes).
    enc_layers: int = 12
    enc_hidden: int = 1024
    enc_intermediate: int = 4096
    enc_heads: int = 16
    enc_kv_heads: int = 16
    enc_head_dim: int = 128
    enc_vocab: int = TEXT_VOCAB
    enc_max_positions: int = MAX_TEXT_BYTES
    # Decoder (audio codes, 9 channels).
    dec_layers: int = 18
    dec_hidden: int = 2048
    dec_intermediate: int = 8192
    dec_heads: int = 16
    dec_kv_heads: int = 4
    dec_head_dim: int = 128
    cross_heads: int = 16
    cross_kv_heads: int = 16
    cross_head_dim: int = 128
    dec_vocab: int = AUDIO_VOCAB
    dec_max_positions: int = MAX_DECODER_POSITIONS
    num_channels: int = NUM_CHANNELS
    # Shared.
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    cross_attention_rope: bool = False  # True only for v0.1 checkpoints
    eos_id: int = EOS_ID
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    delay_pattern: tuple[int, ...] = DELAY_PATTERN

    def __post_init__(self):
        if len(self.delay_pattern) != self.num_channels:
            raise InputError(f"delay_pattern has {len(self.delay_pattern)} entries but the decoder has "
                             f"{self.num_channels} channels", field="config.json")
        if self.dec_heads % self.dec_kv_heads or self.cross_heads % self.cross_kv_heads \
                or self.enc_heads % self.enc_kv_heads:
            raise InputError("attention heads must be a multiple of key/value heads", field="config.json")

    @property
    def max_delay(self) -> int:
        return max(self.delay_pattern)

    @classmethod
    def tiny(cls, **overrides) -> "DiaConfig":
        """A few-hundred-kB model with the real vocabularies, token ids, channels and delay pattern."""
        small = dict(enc_layers=2, enc_hidden=32, enc_intermediate=64, enc_heads=4, enc_kv_heads=4, enc_head_dim=8,
                     dec_layers=2, dec_hidden=64, dec_intermediate=128, dec_heads=4, dec_kv_heads=2, dec_head_dim=16,
                     cross_heads=4, cross_kv_heads=4, cross_head_dim=16, dec_max_positions=256)
        return cls(**{**small, **overrides})

    # ---- parsers ---------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict) -> "DiaConfig":
        """Parse any of the three schemas (detected from the keys)."""
        try:
            if "model" in d and "data" in d:
                return cls._from_v01(d)
            if "encoder_config" in d and "decoder_config" in d:
                return cls._from_hf(d)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"config.json is missing or has a bad value for {e}", field="config.json") from None
        raise InputError("unrecognised Dia config.json: expected encoder_config/decoder_config (0626 or "
                         "transformers) or model/data (v0.1)", field="config.json")

    @classmethod
    def load(cls, path: str | Path) -> "DiaConfig":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read config: {e}", file=path) from None
        return cls.from_dict(d)

    @classmethod
    def _from_hf(cls, d: dict) -> "DiaConfig":
        enc, dec = d["encoder_config"], d["decoder_config"]

        def theta(sub):  # 5.x: rope_parameters; 0626 / 4.x: rope_theta
            rope = sub.get("rope_parameters") or {}
            return float(rope.get("rope_theta", sub.get("rope_theta", 10000.0)))

        def token(name, default):  # 5.x keeps ids in decoder_config, 0626 at the top level
            for src in (dec, d):
                if src.get(name) is not None:
                    return int(src[name])
            return default

        return cls(
            enc_layers=enc["num_hidden_layers"], enc_hidden=enc["hidden_size"],
            enc_intermediate=enc["intermediate_size"], enc_heads=enc["num_attention_heads"],
            enc_kv_heads=enc.get("num_key_value_heads") or enc["num_attention_heads"],
            enc_head_dim=enc.get("head_dim") or enc["hidden_size"] // enc["num_attention_heads"],
            enc_vocab=enc.get("vocab_size", TEXT_VOCAB),
            enc_max_positions=enc.get("max_position_embeddings", MAX_TEXT_BYTES),
            dec_layers=dec["num_hidden_layers"], dec_hidden=dec["hidden_size"],
            dec_intermediate=dec["intermediate_size"], dec_heads=dec["num_attention_heads"],
            dec_kv_heads=dec["num_key_value_heads"], dec_head_dim=dec["head_dim"],
            cross_heads=dec["cross_num_attention_heads"], cross_kv_heads=dec["cross_num_key_value_heads"],
            cross_head_dim=dec["cross_head_dim"], dec_vocab=dec.get("vocab_size", AUDIO_VOCAB),
            dec_max_positions=dec.get("max_position_embeddings", MAX_DECODER_POSITIONS),
            num_channels=dec.get("num_channels", NUM_CHANNELS),
            rope_theta=theta(dec), norm_eps=float(dec.get("norm_eps", d.get("norm_eps", 1e-5))),
            eos_id=token("eos_token_id", EOS_ID), pad_id=token("pad_token_id", PAD_ID),
            bos_id=token("bos_token_id", BOS_ID),
            delay_pattern=tuple(d.get("delay_pattern") or DELAY_PATTERN),
        )

    @classmethod
    def _from_v01(cls, d: dict) -> "DiaConfig":
        m, data = d["model"], d["data"]
        enc, dec = m["encoder"], m["decoder"]
        # v0.1 RoPE: timescale = min * (max/min)^(2i/d); with min 1 that is theta = max.
        lo, hi = float(m.get("rope_min_timescale", 1)), float(m.get("rope_max_timescale", 10000))
        if lo != 1:
            raise ValueError("'rope_min_timescale' (only 1 is supported)")
        return cls(
            enc_layers=enc["n_layer"], enc_hidden=enc["n_embd"], enc_intermediate=enc["n_hidden"],
            enc_heads=enc["n_head"], enc_kv_heads=enc["n_head"], enc_head_dim=enc["head_dim"],
            enc_vocab=m.get("src_vocab_size", TEXT_VOCAB), enc_max_positions=data.get("text_length", MAX_TEXT_BYTES),
            dec_layers=dec["n_layer"], dec_hidden=dec["n_embd"], dec_intermediate=dec["n_hidden"],
            dec_heads=dec["gqa_query_heads"], dec_kv_heads=dec["kv_heads"], dec_head_dim=dec["gqa_head_dim"],
            cross_heads=dec["cross_query_heads"], cross_kv_heads=dec["cross_query_heads"],
            cross_head_dim=dec["cross_head_dim"], dec_vocab=m.get("tgt_vocab_size", AUDIO_VOCAB),
            dec_max_positions=data.get("audio_length", MAX_DECODER_POSITIONS),
            num_channels=data.get("channels", NUM_CHANNELS),
            rope_theta=hi, norm_eps=float(m.get("normalization_layer_epsilon", 1e-5)), cross_attention_rope=True,
            eos_id=data.get("audio_eos_value", EOS_ID), pad_id=data.get("audio_pad_value", PAD_ID),
            bos_id=data.get("audio_bos_value", BOS_ID), delay_pattern=tuple(data.get("delay_pattern", DELAY_PATTERN)),
        )

    # ---- writers (the inverse of the parsers; used to build test checkpoints) --------------------

    def to_hf_dict(self, schema: str = "transformers") -> dict:
        """config.json for ``schema`` "transformers" (5.x) or "reference" (0626)."""
        enc = dict(model_type="dia_encoder", num_hidden_layers=self.enc_layers, hidden_size=self.enc_hidden,
                   intermediate_size=self.enc_intermediate, num_attention_heads=self.enc_heads,
                   num_key_value_heads=self.enc_kv_heads, head_dim=self.enc_head_dim, vocab_size=self.enc_vocab,
                   max_position_embeddings=self.enc_max_positions, norm_eps=self.norm_eps, hidden_act="silu")
        dec = dict(model_type="dia_decoder", num_hidden_layers=self.dec_layers, hidden_size=self.dec_hidden,
                   intermediate_size=self.dec_intermediate, num_attention_heads=self.dec_heads,
                   num_key_value_heads=self.dec_kv_heads, head_dim=self.dec_head_dim,
                   cross_num_attention_heads=self.cross_heads, cross_num_key_value_heads=self.cross_kv_heads,
                   cross_head_dim=self.cross_head_dim, cross_hidden_size=self.enc_hidden,
                   vocab_size=self.dec_vocab, max_position_embeddings=self.dec_max_positions,
                   num_channels=self.num_channels, norm_eps=self.norm_eps, hidden_act="silu")
        ids = dict(eos_token_id=self.eos_id, pad_token_id=self.pad_id, bos_token_id=self.bos_id)
        out = dict(model_type="dia", architectures=["DiaForConditionalGeneration"], encoder_config=enc,
                   decoder_config=dec, delay_pattern=list(self.delay_pattern), norm_eps=self.norm_eps,
                   is_encoder_decoder=True)
        if schema == "transformers":
            for sub in (enc, dec):
                sub["rope_parameters"] = {"rope_theta": self.rope_theta, "rope_type": "default"}
            dec.update(ids)
        elif schema == "reference":
            for sub in (enc, dec):
                sub["rope_theta"] = self.rope_theta
            out.update(ids)
        else:
            raise ValueError(schema)
        return out

    def to_v01_dict(self) -> dict:
        if self.enc_kv_heads != self.enc_heads or self.cross_kv_heads != self.cross_heads:
            raise ValueError("the v0.1 schema has no encoder/cross-attention kv head counts")
        return {
            "version": "0.1",
            "model": {
                "encoder": dict(n_layer=self.enc_layers, n_embd=self.enc_hidden, n_hidden=self.enc_intermediate,
                                n_head=self.enc_heads, head_dim=self.enc_head_dim),
                "decoder": dict(n_layer=self.dec_layers, n_embd=self.dec_hidden, n_hidden=self.dec_intermediate,
                                gqa_query_heads=self.dec_heads, cross_query_heads=self.cross_heads,
                                kv_heads=self.dec_kv_heads, gqa_head_dim=self.dec_head_dim,
                                cross_head_dim=self.cross_head_dim),
                "src_vocab_size": self.enc_vocab, "tgt_vocab_size": self.dec_vocab, "dropout": 0.0,
                "normalization_layer_epsilon": self.norm_eps, "weight_dtype": "float32",
                "rope_min_timescale": 1, "rope_max_timescale": int(self.rope_theta),
            },
            "data": dict(text_length=self.enc_max_positions, audio_length=self.dec_max_positions,
                         channels=self.num_channels, text_pad_value=0, audio_eos_value=self.eos_id,
                         audio_pad_value=self.pad_id, audio_bos_value=self.bos_id,
                         delay_pattern=list(self.delay_pattern)),
        }

    def replace(self, **changes) -> "DiaConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
