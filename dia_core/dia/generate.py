"""Generation: delay pattern, requests, CFG + filtering + counter-based sampling, the decode loop.

The entry points are ``generate(model, texts, seeds, ...)`` and ``generate_codes``; this module
imports the network (dia_core.dia.model), never the reverse, as gpt-fast's generate.py does.

Rows of the decoder sequence are "delayed" (docs/dia-model.md#delay-pattern): delayed[t, c] =
frames[t - d_c, c] with BOS before a channel's delay. Frame 0 is BOS, then the voice prompt, then new
audio. Row t is predicted by the step that feeds row t - 1 at position t - 1.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .codec import DiaCodec
from .model import DiaModel
from .tokenizer import encode_batch, encode_text
from ..errors import InputError
from ..params import CODEBOOK_SIZE, FAST_PATH_MODES, FRAME_RATE, RANGES, SamplingParams, check_seed

CHECK_DONE_EVERY = 16  # host sync for "all items finished" only every N steps
# Fast path buckets (static shapes): batch -> power of two (padded with copies of item 0, results
# dropped), text -> multiple of TEXT_BLOCK bytes, attended self-attention cache -> multiple of
# KV_BLOCK positions (the cache itself always holds the decoder's full positions), top-k candidate
# set -> the largest cfg_filter_top_k a project file allows (per-item k is a mask inside it; a batch
# asking for more gets a larger set, and graphs of its own).
TEXT_BLOCK = 128
KV_BLOCK = 512
MAX_TOP_K = int(RANGES["cfg_filter_top_k"][1])


@dataclass
class AudioPrompt:
    """A voice prompt: reference audio (a file, or DAC codes [L, 9]) and what is said in it, with
    correct [S1]/[S2] tags. The transcript is placed before the new text."""
    audio: str | Path | Tensor
    transcript: str


@dataclass
class Generated:
    codes: Tensor  # LongTensor[T, 9] on CPU: undelayed, EOS-trimmed, new audio only
    hit_limit: bool  # stopped by the token limit, not by EOS
    prompt_frames: int


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


# ---- entry points ----------------------------------------------------------------------------------

@torch.inference_mode()
def generate(model: DiaModel, texts: list[str], seeds: list[int], *, audio_prompts: list | None = None,
             sampling: SamplingParams | list[SamplingParams] = SamplingParams(),
             fast_path: str = "off") -> list[Generated]:
    """Generate one code sequence per text. Each item has its own seed and ``sampling`` (one
    SamplingParams for all items, or one per item); its codes do not depend on the rest of the
    batch. Everything is validated before any compute.

    ``fast_path`` (the same vocabulary as --fast-path, params.FAST_PATH_MODES): "off" runs the
    decode step eagerly at the batch's exact shapes. Anything else is the fast path: shapes bucketed
    (batch, text length, attended cache length) so segment lengths do not recompile; "static" runs
    the bucketed step uncompiled; "inductor" compiles it with torch.compile(fullgraph=True,
    dynamic=False); "aot_eager"/"eager" are the same with those torch.compile backends (tests). On
    CUDA every fast mode replays the step as a captured CUDA graph (no host sync except the
    every-16-steps done check)."""
    return run_generation(model, build_requests(model, texts, seeds, audio_prompts, sampling), fast_path=fast_path)


def generate_codes(model: DiaModel, texts: list[str], seeds: list[int], **kwargs) -> list[Tensor]:
    """``generate``, codes only."""
    return [g.codes for g in generate(model, texts, seeds, **kwargs)]


def require_codec(model: DiaModel) -> DiaCodec:
    """The model's codec (model.codec), loading DAC's 44.1 kHz weights (a download) on first need."""
    if model.codec is None:
        model.codec = DiaCodec.load(device=model.device)
    return model.codec


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


# ---- requests --------------------------------------------------------------------------------------
# SamplingParams checked its own values when it was built; here only what depends on this model
# (vocabulary, decoder positions), the texts, seeds and prompts.

def _per_item(name: str, value, n: int) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InputError(f"has {len(value)} values for {n} texts", field=name)
        return list(value)
    return [value] * n


def build_requests(model: DiaModel, texts, seeds, audio_prompts=None,
                   sampling: SamplingParams | list[SamplingParams] = SamplingParams()) -> list[Request]:
    """Validate a whole batch up front; every error names the batch item."""
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
    params = _per_item("sampling", sampling, n)

    requests = []
    for i, (text, seed, prompt, p) in enumerate(zip(texts, seeds, prompts, params)):
        item = f"item {i}"
        check_seed(seed, field=f"{item}: seed")
        if not isinstance(p, SamplingParams):
            raise InputError(f"must be a SamplingParams, got {type(p).__name__}", field=f"{item}: sampling")
        if p.cfg_filter_top_k > cfg.dec_vocab:
            raise InputError(f"must be at most the vocabulary size {cfg.dec_vocab}, got {p.cfg_filter_top_k}",
                             field=f"{item}: cfg_filter_top_k")
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

        # docs/dia-model.md#stopping-and-length: BOS + prompt + new frames + delay tail <= positions.
        requested = p.max_new_tokens
        limit = cfg.dec_max_positions
        max_tokens = min(requested, limit)
        L = 0 if codes is None else codes.shape[0]
        new_frames = limit - 1 - L - cfg.max_delay
        if requested > limit:
            warnings.warn(f"{item}: max_new_tokens={requested} exceeds the decoder's {limit} positions, which "
                          f"hold BOS + voice prompt + new frames; capped to {limit} (at most "
                          f"{new_frames} new frames, {new_frames / FRAME_RATE:.1f} s)", stacklevel=3)
        if 1 + L + cfg.max_delay >= max_tokens:
            if L == 0:
                raise InputError(f"must be at least {2 + cfg.max_delay} (BOS and the {cfg.max_delay}-frame delay "
                                 f"tail take {1 + cfg.max_delay} decoder positions), got {requested}",
                                 field=f"{item}: max_new_tokens")
            raise InputError(f"the voice prompt is {L} frames ({L / FRAME_RATE:.1f} s); with BOS and the "
                             f"{cfg.max_delay}-frame delay tail it needs more than {max_tokens} decoder positions "
                             f"(min(max_new_tokens, {limit})), leaving no room for new audio; use a prompt of at "
                             f"most {max_tokens - 2 - cfg.max_delay} frames", field=f"{item}: audio_prompts")
        requests.append(Request(ids, codes, seed, max_tokens, float(p.cfg_scale), float(p.temperature),
                                float(p.top_p), int(p.cfg_filter_top_k)))
    return requests


def _prompt_codes(model, audio, field: str) -> Tensor:
    if isinstance(audio, (str, Path)):
        return require_codec(model).encode_file(audio).long().cpu()
    if not isinstance(audio, Tensor):
        raise InputError(f"audio must be a file path or a codes tensor [L, 9], got {type(audio).__name__}",
                         field=field)
    C = model.config.num_channels
    if audio.dim() != 2 or audio.shape[1] != C or audio.shape[0] < 1:
        raise InputError(f"codes must have shape [L, {C}] with L >= 1, got {list(audio.shape)}", field=field)
    if audio.dtype.is_floating_point or audio.dtype == torch.bool:
        raise InputError(f"codes must be integers, got {audio.dtype}", field=field)
    if bool(((audio < 0) | (audio >= CODEBOOK_SIZE)).any()):
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
                  max_tokens: Tensor, delays: Tensor, eos_id: int, pad_id: int, max_delay: int | None = None):
    """Per-item stop logic. When channel 0 emits EOS, or at step max_tokens - max_delay, a countdown
    starts; k steps later channels with delay k get EOS and channels with smaller delay get PAD. As in
    the reference the item is done after k = max_delay - 1: the frames before the EOS frame need no
    later row. countdown: -1 not started, >0 running, 0 done. Returns (pred, countdown, finished, eos_hit)."""
    if max_delay is None:  # pass it to avoid a host sync (and a graph break) per step
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


# ---- the decode step --------------------------------------------------------------------------------
# Everything one step reads or writes lives in a DecodeState of device tensors; the step mutates them
# in place and returns nothing, so its shapes and addresses are fixed and a captured CUDA graph of it
# can be replayed step after step. The host only chooses the graph (by attended cache length) and
# reads "all done?" every CHECK_DONE_EVERY steps.

@dataclass(eq=False)
class DecodeState:
    buf: Tensor  # [B, M, C] delayed rows (known prefix written up front)
    known: Tensor  # [B, M, C] bool: forced entries
    step: Tensor  # [1] the row the next step produces
    countdown: Tensor  # [B]
    finished: Tensor  # [B]
    eos_hit: Tensor  # [B] bool
    cfg_scale: Tensor
    temperature: Tensor
    top_p: Tensor
    top_k: Tensor
    max_tokens: Tensor
    seed_lo: Tensor
    seed_hi: Tensor
    allowed: Tensor  # [C, V] bool
    delays: Tensor  # [C]
    text_mask: Tensor  # [2B, S] bool (cond rows, then uncond rows)
    cross_kv: list  # per layer (k, v) [2B, H, S, D]
    caches: list  # per layer KVCache [2B, KVH, M, D]
    max_top_k: int
    max_delay: int

    def mutable(self) -> list[Tensor]:
        return [self.buf, self.step, self.countdown, self.finished, self.eos_hit]


def advance(model, s: DecodeState, logits: Tensor) -> None:
    """Sample row s.step from logits [2B, C, V], apply forcing and the EOS countdown, write it, step += 1."""
    cfg = model.config
    t = s.step
    pred = sample_tokens(logits, s.cfg_scale, s.temperature, s.top_p, s.top_k, s.max_top_k, s.allowed, cfg.eos_id,
                         s.seed_lo, s.seed_hi, step=t)
    pred = torch.where(s.known.index_select(1, t)[:, 0], s.buf.index_select(1, t)[:, 0], pred)
    pred, countdown, finished, eos_hit = eos_countdown(pred, t, s.countdown, s.finished, s.eos_hit, s.max_tokens,
                                                       s.delays, cfg.eos_id, cfg.pad_id, max_delay=s.max_delay)
    s.buf.index_copy_(1, t, pred[:, None])
    s.countdown.copy_(countdown)
    s.finished.copy_(finished)
    s.eos_hit.copy_(eos_hit)
    s.step.add_(1)


def decode_step(model: DiaModel, s: DecodeState, kv_len: int) -> None:
    """Feed row step - 1 (cond and uncond rows) at position step - 1, then advance. Static shapes."""
    position = s.step - 1
    prev = s.buf.index_select(1, position)  # [B, 1, C]
    logits = model.decoder(prev.repeat(2, 1, 1), position, s.cross_kv, s.text_mask, s.caches, kv_len)
    advance(model, s, logits[:, 0])


_COMPILED: dict[str, object] = {}


TEST_BACKENDS = ("aot_eager", "eager")   # torch.compile backends the tests use on CPU


def step_function(fast_path: str):
    """The decode step for a ``fast_path`` mode (see generate)."""
    if fast_path in ("off", "static"):
        return decode_step
    backend = fast_path
    if backend not in ("inductor", *TEST_BACKENDS):
        raise InputError(f"must be one of {', '.join(FAST_PATH_MODES + TEST_BACKENDS)}, got {fast_path!r}",
                         field="fast_path")
    if backend not in _COMPILED:
        import torch._dynamo.config as dcfg  # only when compiling
        # One graph per (batch bucket, text bucket, cache bucket): more than dynamo's default 8.
        name = "recompile_limit" if hasattr(dcfg, "recompile_limit") else "cache_size_limit"
        setattr(dcfg, name, max(getattr(dcfg, name), 256))
        # No mode="reduce-overhead": its CUDA graph trees skip graphs that mutate non-static inputs;
        # the compiled step is captured by hand instead (StaticDecode.run), as vLLM does.
        _COMPILED[backend] = torch.compile(decode_step, backend=backend, fullgraph=True, dynamic=False)
    return _COMPILED[backend]


class StaticDecode:
    """The fast path's persistent state for one (batch bucket, text bucket) and its CUDA graphs, one
    per attended cache length. Kept on the model between batches (DiaModel._static) so graphs are
    replayed, not recaptured; a batch with other buckets replaces it."""

    def __init__(self, key: tuple, state: DecodeState):
        self.key, self.state, self.graphs, self.pool = key, state, {}, None
        self.captures = 0

    def load(self, fresh: DecodeState) -> None:
        """Copy a new batch into the persistent tensors (same shapes; caches are overwritten as written)."""
        s = self.state
        for name in ("buf", "known", "step", "countdown", "finished", "eos_hit", "cfg_scale", "temperature",
                     "top_p", "top_k", "max_tokens", "seed_lo", "seed_hi", "text_mask"):
            getattr(s, name).copy_(getattr(fresh, name))
        for (k, v), (k2, v2) in zip(s.cross_kv, fresh.cross_kv):
            k.copy_(k2)
            v.copy_(v2)

    def run(self, model, fn, kv_len: int) -> None:
        s = self.state
        if s.buf.device.type != "cuda":
            fn(model, s, kv_len)
            return
        graph = self.graphs.get(kv_len)
        if graph is None:
            graph = self.graphs[kv_len] = self._capture(model, fn, kv_len)
        graph.replay()

    def _capture(self, model, fn, kv_len: int):
        s = self.state
        snapshot = [t.clone() for t in s.mutable()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # compile, autotune and allocate outside the capture
            for _ in range(2):
                fn(model, s, kv_len)
        torch.cuda.current_stream().wait_stream(side)
        for t, saved in zip(s.mutable(), snapshot):  # the warm-up steps must not count
            t.copy_(saved)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            fn(model, s, kv_len)
        self.captures += 1
        return graph


def release_static(model) -> None:
    """Free the fast path's persistent caches and CUDA graphs."""
    model._static = None


def bucket_batch(n: int) -> int:
    return 1 << (n - 1).bit_length()


def bucket_len(n: int, block: int, cap: int) -> int:
    return min(cap, -(-n // block) * block)


# ---- the loop --------------------------------------------------------------------------------------

def run_generation(model: DiaModel, requests: list[Request], fast_path: str = "off") -> list[Generated]:
    fast = fast_path != "off"
    step_fn = step_function(fast_path)
    cfg, dev = model.config, model.device
    n = len(requests)
    if fast:  # pad the batch to its bucket with copies of item 0 (computed, then dropped)
        requests = list(requests) + [requests[0]] * (bucket_batch(n) - n)
    B, C, V = len(requests), cfg.num_channels, cfg.dec_vocab

    # Encoder once for cond rows and uncond rows (all-zero text, same padding mask).
    text = encode_batch([r.text_ids for r in requests])
    if fast:  # cross-attention reads the batch's real text length, rounded up to a bucket
        S = bucket_len(text.shape[1], TEXT_BLOCK, max(cfg.enc_max_positions, text.shape[1]))
        text = torch.nn.functional.pad(text, (0, S - text.shape[1]))
    text = text.to(dev)
    text_mask = (text != 0).repeat(2, 1)
    enc = model.encoder(torch.cat([text, torch.zeros_like(text)]), text_mask)
    cross_kv = [(k.contiguous(), v.contiguous()) for k, v in model.decoder.cross_key_values(enc)]

    # Delayed row buffer with the known prefix (BOS + prompt); `known` marks entries that are forced.
    M = max(r.max_tokens for r in requests)
    cache_len = cfg.dec_max_positions if fast else M
    buf = torch.full((B, cache_len, C), cfg.pad_id, dtype=torch.long, device=dev)
    for i, r in enumerate(requests):
        frames = torch.full((1, C), cfg.bos_id, dtype=torch.long)
        if r.prompt is not None:
            frames = torch.cat([frames, r.prompt])
        prefix = delay_codes(frames, cfg.delay_pattern, cfg.bos_id, cfg.pad_id)
        buf[i, : prefix.shape[0]] = prefix.to(dev)

    per_item = lambda name, dtype=torch.float32: torch.tensor([getattr(r, name) for r in requests], dtype=dtype,
                                                             device=dev)
    allowed = torch.ones(C, V, dtype=torch.bool, device=dev)
    allowed[:, cfg.eos_id + 1:] = False  # PAD/BOS are never predicted
    allowed[1:, cfg.eos_id] = False  # only channel 0 may end the sequence
    seed_lo, seed_hi = (torch.tensor(s, dtype=torch.long, device=dev)
                        for s in zip(*(split_seed(r.seed) for r in requests)))
    P = 1 + min(r.prompt_frames for r in requests)  # rows known for all items: prefilled at once
    top_k = max(r.top_k for r in requests)
    fresh = DecodeState(
        buf=buf, known=buf != cfg.pad_id, step=torch.tensor([P], device=dev),
        countdown=torch.full((B,), -1, dtype=torch.long, device=dev),
        finished=torch.full((B,), -1, dtype=torch.long, device=dev),
        eos_hit=torch.zeros(B, dtype=torch.bool, device=dev),
        cfg_scale=per_item("cfg_scale"), temperature=per_item("temperature"), top_p=per_item("top_p"),
        top_k=per_item("top_k", torch.long), max_tokens=per_item("max_tokens", torch.long),
        seed_lo=seed_lo, seed_hi=seed_hi, allowed=allowed, delays=torch.tensor(cfg.delay_pattern, device=dev),
        text_mask=text_mask, cross_kv=cross_kv, caches=[],
        max_top_k=max(top_k, MAX_TOP_K) if fast else top_k, max_delay=cfg.max_delay)

    static = None
    if fast:
        key = (B, text.shape[1], cache_len, fresh.max_top_k, model.dtype, dev)
        static = model._static
        if static is not None and static.key == key:
            static.load(fresh)
        else:
            model._static = None  # free the old caches before allocating new ones
            fresh.caches = model.decoder.new_caches(2 * B, cache_len, model.dtype, dev)
            static = model._static = StaticDecode(key, fresh)
        s = static.state
    else:
        s = fresh
        s.caches = model.decoder.new_caches(2 * B, cache_len, model.dtype, dev)

    # Prefill rows 0..P-1 (eager, once per batch), sample row P, then one static step per row.
    logits = model.decoder(s.buf[:, :P].repeat(2, 1, 1), torch.arange(P, device=dev), s.cross_kv, s.text_mask,
                           s.caches)[:, -1]
    advance(model, s, logits)
    t = P
    while t < M - 1:  # every item is done by row max_tokens - 1
        if (t - P) % CHECK_DONE_EVERY == CHECK_DONE_EVERY - 1 and bool((s.countdown == 0).all()):
            break
        t += 1  # the step produces row t, attending to positions < t
        kv_len = bucket_len(t, KV_BLOCK, cache_len) if fast else cache_len
        if static is not None:
            static.run(model, step_fn, kv_len)
        else:
            step_fn(model, s, kv_len)

    out = []
    finished, eos_hit, rows = s.finished[:n].tolist(), s.eos_hit[:n].tolist(), s.buf[:n].cpu()
    for i, r in enumerate(requests[:n]):
        start, end = 1 + r.prompt_frames, finished[i]
        assert end >= start, "every item stops by max_tokens"
        codes = undelay_codes(rows[i, start:end + cfg.max_delay], cfg.delay_pattern)
        out.append(Generated(codes=codes, hit_limit=not eos_hit[i], prompt_frames=r.prompt_frames))
    return out
