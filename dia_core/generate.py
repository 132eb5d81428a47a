"""Generation: delay pattern, request validation, CFG + filtering + counter-based sampling, decode loop.

Rows of the decoder sequence are "delayed": delayed[t, c] = frames[t - d_c, c] with BOS before a
channel's delay. Frame 0 is BOS, then the voice prompt, then new audio. Row t is predicted by the
step that feeds row t - 1 at position t - 1.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .errors import InputError
from .params import FRAME_RATE, check_param, check_seed
from .tokenizer import encode_batch, encode_text

CHECK_DONE_EVERY = 16  # host sync for "all items finished" only every N steps


@dataclass
class Request:
    text_ids: list[int]
    prompt: Tensor | None  # LongTensor[L, C] (undelayed DAC codes) or None
    seed: int
    max_tokens: int  # decoder rows: BOS + prompt + new frames + delay tail, <= decoder positions
    cfg_scale: float
    temperature: float
    top_p: float
    top_k: int

    @property
    def prompt_frames(self) -> int:
        return 0 if self.prompt is None else int(self.prompt.shape[0])


# ---- delay pattern ---------------------------------------------------------------------------------

def delay_codes(frames: Tensor, delay_pattern, bos_id: int, pad_id: int) -> Tensor:
    """frames [T, C] -> delayed [T + max_delay, C]: BOS before each channel's delay, PAD after its end."""
    T, C = frames.shape
    D = max(delay_pattern)
    out = torch.full((T + D, C), pad_id, dtype=torch.long, device=frames.device)
    for c, d in enumerate(delay_pattern):
        out[:d, c] = bos_id
        out[d:d + T, c] = frames[:, c]
    return out


def undelay_codes(delayed: Tensor, delay_pattern) -> Tensor:
    """delayed [T, C] -> frames [T - max_delay, C] with frames[t, c] = delayed[t + d_c, c]."""
    T = delayed.shape[0] - max(delay_pattern)
    return torch.stack([delayed[d:d + T, c] for c, d in enumerate(delay_pattern)], dim=1)


# ---- validation ------------------------------------------------------------------------------------

def _per_item(name: str, value, n: int) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InputError(f"has {len(value)} values for {n} texts", field=name)
        return list(value)
    return [value] * n


def build_requests(model, texts, seeds, audio_prompts=None, *, max_new_tokens=3072, cfg_scale=3.0,
                   temperature=1.2, top_p=0.95, cfg_filter_top_k=45) -> list[Request]:
    """Validate a whole batch up front; every error names the batch item."""
    from .model import AudioPrompt

    cfg = model.config
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not texts:
        raise InputError("must be a non-empty list of strings", field="texts")
    n = len(texts)
    if isinstance(seeds, int) or not isinstance(seeds, (list, tuple)) or len(seeds) != n:
        raise InputError(f"must be a list of {n} integers, one per text", field="seeds")
    if audio_prompts is None:
        audio_prompts = [None] * n
    prompts = _per_item("audio_prompts", audio_prompts, n) if isinstance(audio_prompts, (list, tuple)) else None
    if prompts is None:
        raise InputError("must be a list with one AudioPrompt or None per text", field="audio_prompts")
    params = {name: _per_item(name, v, n) for name, v in dict(
        max_new_tokens=max_new_tokens, cfg_scale=cfg_scale, temperature=temperature, top_p=top_p,
        cfg_filter_top_k=cfg_filter_top_k).items()}

    requests = []
    for i, (text, seed, prompt) in enumerate(zip(texts, seeds, prompts)):
        item = f"item {i}"
        check_seed(seed, field=f"{item}: seed")
        for name, values in params.items():
            check_param(name, values[i], field=f"{item}: {name}")
        encode_text(text, max_bytes=cfg.enc_max_positions, field=f"{item}: text")

        codes, full_text = None, text
        if prompt is not None:
            if not isinstance(prompt, AudioPrompt):
                raise InputError(f"got a bare {type(prompt).__name__}, but a transcript is required with a voice "
                                 "prompt: pass AudioPrompt(audio, transcript)", field=f"{item}: audio_prompts")
            if not isinstance(prompt.transcript, str) or not prompt.transcript.strip():
                raise InputError("the voice prompt's transcript is required (what is said in the reference "
                                 "audio, with [S1]/[S2] tags)", field=f"{item}: transcript")
            encode_text(prompt.transcript, max_bytes=cfg.enc_max_positions, field=f"{item}: transcript")
            codes = _prompt_codes(model, prompt.audio, f"{item}: audio_prompts")
            full_text = prompt.transcript + " " + text
        ids = encode_text(full_text, max_bytes=cfg.enc_max_positions, field=f"{item}: transcript + ' ' + text")

        requested = params["max_new_tokens"][i]
        limit = cfg.dec_max_positions
        max_tokens = min(requested, limit)
        L = 0 if codes is None else codes.shape[0]
        if requested > limit:
            warnings.warn(f"{item}: max_new_tokens={requested} exceeds the decoder's {limit} positions, which "
                          f"hold BOS + voice prompt + new frames; capped to {limit} (at most "
                          f"{limit - 1 - L - cfg.max_delay} new frames, {(limit - 1 - L - cfg.max_delay) / FRAME_RATE:.1f} s)",
                          stacklevel=3)
        if 1 + L + cfg.max_delay >= max_tokens:
            raise InputError(f"the voice prompt is {L} frames ({L / FRAME_RATE:.1f} s); with BOS and the "
                             f"{cfg.max_delay}-frame delay tail it needs more than {max_tokens} decoder positions "
                             f"(min(max_new_tokens, {limit})), leaving no room for new audio; use a prompt of at "
                             f"most {max_tokens - 2 - cfg.max_delay} frames", field=f"{item}: audio_prompts")
        requests.append(Request(ids, codes, seed, max_tokens, float(params["cfg_scale"][i]),
                                float(params["temperature"][i]), float(params["top_p"][i]),
                                int(params["cfg_filter_top_k"][i])))
    return requests


def _prompt_codes(model, audio, field: str) -> Tensor:
    if isinstance(audio, (str, Path)):
        return model.require_codec().encode_file(audio).long().cpu()
    if not isinstance(audio, Tensor):
        raise InputError(f"audio must be a file path or a codes tensor [L, 9], got {type(audio).__name__}",
                         field=field)
    C = model.config.num_channels
    if audio.dim() != 2 or audio.shape[1] != C or audio.shape[0] < 1:
        raise InputError(f"codes must have shape [L, {C}] with L >= 1, got {list(audio.shape)}", field=field)
    if audio.dtype.is_floating_point or audio.dtype == torch.bool:
        raise InputError(f"codes must be integers, got {audio.dtype}", field=field)
    if bool(((audio < 0) | (audio >= 1024)).any()):
        raise InputError("codes must lie in 0..1023 (DAC codebook entries)", field=field)
    return audio.long().cpu()


# ---- sampling --------------------------------------------------------------------------------------
# Counter-based random stream: the uniform for (seed, step, channel, vocab id) is an integer hash of
# those four numbers, computed on the device. A row's draw therefore depends only on its own seed and
# step, never on the batch it shares. Values stay in [0, 2^32) and the multiplier is < 2^27, so every
# product is < 2^59 and int64 never overflows. Sampling is Gumbel-max: argmax(logits - log(-log u))
# is an exact draw from softmax(logits) over the entries left finite by the filters.

_M32 = 0xFFFFFFFF
_MUL = 0x45D9F3B


def _mix32(x: Tensor) -> Tensor:
    x = (((x >> 16) ^ x) * _MUL) & _M32
    x = (((x >> 16) ^ x) * _MUL) & _M32
    return (x >> 16) ^ x


def split_seed(seed: int) -> tuple[int, int]:
    """Any Python int -> two 32-bit halves (seed mod 2^64)."""
    s = seed % (1 << 64)
    return s & _M32, s >> 32


def counter_uniforms(seed_lo: Tensor, seed_hi: Tensor, step: Tensor, num_channels: int, vocab: int) -> Tensor:
    """Uniforms in (0, 1), float32 [B, C, V], from seeds [B] (int64 halves) and step [1]."""
    row = _mix32(seed_lo ^ _mix32(seed_hi ^ _mix32((step + 0x9E3779B9) & _M32)))  # [B]
    ids = torch.arange(num_channels * vocab, device=seed_lo.device).view(num_channels, vocab)
    h = _mix32(_mix32(row[:, None, None] ^ _mix32(ids + 0x2545F491)) + ids)
    h = h & _M32
    # 23 bits so that (k + 0.5) / 2^23 is exact in float32 and never rounds to 1.
    return ((h >> 9).float() + 0.5) * (1.0 / (1 << 23))


def sample_tokens(logits: Tensor, cfg_scale: Tensor, temperature: Tensor, top_p: Tensor, top_k: Tensor,
                  max_top_k: int, allowed: Tensor, eos_id: int, seed_lo: Tensor, seed_hi: Tensor,
                  step: Tensor) -> Tensor:
    """logits [2B, C, V] (cond rows then uncond rows, fp32) -> tokens [B, C]. Per-item params are [B]."""
    B, C, V = logits.shape[0] // 2, logits.shape[1], logits.shape[2]
    cond, uncond = logits[:B], logits[B:]
    # CFG only picks the candidate set: top-k of the guided logits, scored by the cond logits (0626).
    guided = cond + cfg_scale[:, None, None] * (cond - uncond)
    top_ids = guided.topk(max_top_k, dim=-1).indices
    in_top = (torch.arange(max_top_k, device=logits.device) < top_k[:, None, None]).expand_as(top_ids)
    keep = torch.zeros_like(cond, dtype=torch.bool).scatter(-1, top_ids, in_top) & allowed  # per-item k
    x = cond.masked_fill(~keep, float("-inf"))
    greedy = x.argmax(-1)

    x = x / torch.where(temperature > 0, temperature, torch.ones_like(temperature))[:, None, None]
    # EOS (channel 0 only, by `allowed`) is forced if it is the best candidate, else never sampled.
    is_eos = torch.arange(V, device=logits.device) == eos_id
    eos_best = (x.argmax(-1) == eos_id)[..., None]
    x = x.masked_fill(eos_best & ~is_eos, float("-inf")).masked_fill(~eos_best & is_eos, float("-inf"))
    # The reference applies top-k again here; the set already has at most k entries, so it is a no-op.
    # Nucleus: drop a candidate when the probability mass before it already exceeds top_p.
    sorted_p, order = x.softmax(-1).sort(-1, descending=True)
    mass_before = torch.cat((torch.zeros_like(sorted_p[..., :1]), sorted_p.cumsum(-1)[..., :-1]), dim=-1)
    drop = torch.zeros_like(keep).scatter(-1, order, mass_before > top_p[:, None, None])
    x = x.masked_fill(drop, float("-inf"))
    u = counter_uniforms(seed_lo, seed_hi, step, C, V)
    sampled = (x - torch.log(-torch.log(u))).argmax(-1)
    return torch.where(temperature[:, None] > 0, sampled, greedy)


def eos_countdown(pred: Tensor, step: Tensor, countdown: Tensor, finished: Tensor, eos_hit: Tensor,
                  max_tokens: Tensor, delays: Tensor, eos_id: int, pad_id: int):
    """Per-item stop logic. When channel 0 emits EOS, or at step max_tokens - max_delay, a countdown
    starts; k steps later channels with delay k get EOS and channels with smaller delay get PAD. As in
    the reference the item is done after k = max_delay - 1: the frames before the EOS frame need no
    later row. countdown: -1 not started, >0 running, 0 done. Returns (pred, countdown, finished, eos_hit)."""
    max_delay = int(delays.max())
    done_before = countdown == 0
    not_started = countdown < 0
    eos_now = not_started & (pred[:, 0] == eos_id)
    start = eos_now | (not_started & (step >= max_tokens - max_delay))
    countdown = torch.where(start, torch.full_like(countdown, max_delay), countdown)
    finished = torch.where(start, step.expand_as(finished), finished)
    eos_hit = eos_hit | eos_now
    running = (countdown > 0)[:, None]
    since = (max_delay - countdown)[:, None]
    pred = torch.where(running & (since == delays), torch.full_like(pred, eos_id), pred)
    pred = torch.where((running & (since > delays)) | done_before[:, None], torch.full_like(pred, pad_id), pred)
    countdown = torch.where(countdown > 0, countdown - 1, countdown)
    return pred, countdown, finished, eos_hit


# ---- the loop --------------------------------------------------------------------------------------

def run_generation(model, requests: list[Request]):
    from .model import Generated

    cfg, dev = model.config, model.device
    B, C, V = len(requests), cfg.num_channels, cfg.dec_vocab
    delays = torch.tensor(cfg.delay_pattern, device=dev)

    # Encoder once for cond rows and uncond rows (all-zero text, same padding mask).
    text = encode_batch([r.text_ids for r in requests]).to(dev)
    text_mask = (text != 0).repeat(2, 1)
    enc = model.encoder(torch.cat([text, torch.zeros_like(text)]), text_mask)
    cross_kv = model.decoder.cross_key_values(enc)

    # Delayed row buffer with the known prefix (BOS + prompt); `known` marks entries that are forced.
    M = max(r.max_tokens for r in requests)
    buf = torch.full((B, M, C), cfg.pad_id, dtype=torch.long, device=dev)
    for i, r in enumerate(requests):
        frames = torch.full((1, C), cfg.bos_id, dtype=torch.long)
        if r.prompt is not None:
            frames = torch.cat([frames, r.prompt])
        prefix = delay_codes(frames, cfg.delay_pattern, cfg.bos_id, cfg.pad_id)
        buf[i, : prefix.shape[0]] = prefix.to(dev)
    known = buf != cfg.pad_id

    per_item = lambda name, dtype=torch.float32: torch.tensor([getattr(r, name) for r in requests], dtype=dtype,
                                                             device=dev)
    cfg_scale, temperature, top_p = per_item("cfg_scale"), per_item("temperature"), per_item("top_p")
    top_k, max_tokens = per_item("top_k", torch.long), per_item("max_tokens", torch.long)
    seed_lo, seed_hi = (torch.tensor(s, dtype=torch.long, device=dev)
                        for s in zip(*(split_seed(r.seed) for r in requests)))
    allowed = torch.ones(C, V, dtype=torch.bool, device=dev)
    allowed[:, cfg.eos_id + 1:] = False  # PAD/BOS are never predicted
    allowed[1:, cfg.eos_id] = False  # only channel 0 may end the sequence
    max_top_k = int(top_k.max())

    countdown = torch.full((B,), -1, dtype=torch.long, device=dev)
    finished = torch.full((B,), -1, dtype=torch.long, device=dev)
    eos_hit = torch.zeros(B, dtype=torch.bool, device=dev)

    # Prefill every row known for all items (BOS + shortest prompt), then one row per step.
    caches = model.decoder.new_caches(2 * B, M, model.dtype, dev)
    P = 1 + min(r.prompt_frames for r in requests)
    logits = model.decoder(buf[:, :P].repeat(2, 1, 1), torch.arange(P, device=dev), cross_kv, text_mask,
                           caches)[:, -1]
    for t in range(P, M):  # every item is done by row max_tokens - 1
        step = torch.tensor([t], device=dev)
        pred = sample_tokens(logits, cfg_scale, temperature, top_p, top_k, max_top_k, allowed, cfg.eos_id,
                             seed_lo, seed_hi, step=step)
        pred = torch.where(known[:, t], buf[:, t], pred)
        pred, countdown, finished, eos_hit = eos_countdown(pred, step, countdown, finished, eos_hit, max_tokens,
                                                           delays, cfg.eos_id, cfg.pad_id)
        buf[:, t] = pred
        if t == M - 1 or ((t - P) % CHECK_DONE_EVERY == CHECK_DONE_EVERY - 1 and bool((countdown == 0).all())):
            break
        logits = model.decoder(pred[:, None].repeat(2, 1, 1), step, cross_kv, text_mask, caches)[:, -1]

    out = []
    finished, eos_hit, buf = finished.tolist(), eos_hit.tolist(), buf.cpu()
    for i, r in enumerate(requests):
        start, end = 1 + r.prompt_frames, finished[i]
        assert end >= start, "every item stops by max_tokens"
        codes = undelay_codes(buf[i, start:end + cfg.max_delay], cfg.delay_pattern)
        out.append(Generated(codes=codes, hit_limit=not eos_hit[i], prompt_frames=r.prompt_frames))
    return out
