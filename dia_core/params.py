"""Dia constants and sampling parameters: one set of defaults, two levels of checks.

``SamplingParams`` declares each parameter once, with its default and two ranges in the field's
metadata: what the model itself can do (checked by the constructor, so generation can take any
``SamplingParams``) and the hosted Dia APIs' range, which is the project file's rule (``RANGES``,
``check_param``; docs/dia-model.md#parameter-ranges).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .errors import InputError

DEFAULT_REPO = "nari-labs/Dia-1.6B-0626"   # the Hugging Face repo of the weights

# Decoder positions (BOS + voice prompt + new frames) and encoder positions (text bytes).
MAX_DECODER_POSITIONS = 3072
MAX_TEXT_BYTES = 1024
TEXT_VOCAB = 256  # the encoder reads UTF-8 bytes
SAMPLE_RATE = 44100
HOP_LENGTH = 512
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH  # 86.13 frames/s
NUM_CHANNELS = 9
DELAY_PATTERN = (0, 8, 9, 10, 11, 12, 13, 14, 15)
MAX_DELAY = max(DELAY_PATTERN)
# Token ids (docs/dia-model.md#token-ids): 0..1023 are DAC codes; each channel's vocabulary is 1028 wide.
CODEBOOK_SIZE = 1024
EOS_ID = 1024
PAD_ID = 1025
BOS_ID = 1026
AUDIO_VOCAB = 1028


def _param(default, api: tuple[float, float], *, at_least=None, above=None, at_most=None):
    """A sampling field: its default, the hosted API's range ``api`` (the project file's rule) and
    the model's own limits (>= at_least or > above, <= at_most). Integer fields have int defaults."""
    return field(default=default, metadata=dict(api=api, at_least=at_least, above=above, at_most=at_most))


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings of one generation (docs/dia-model.md#sampling). The constructor checks what
    the model can do; the project file's narrower ranges are checked by ``check_param``."""
    temperature: float = _param(1.3, (0.1, 2.0), at_least=0)  # 0: greedy (the API allows it too)
    top_p: float = _param(0.95, (0.1, 1.0), above=0, at_most=1)
    cfg_scale: float = _param(4.0, (1.0, 5.0), at_least=0)
    cfg_filter_top_k: int = _param(35, (10, 100), at_least=1)  # generation checks it against the vocabulary
    speed_factor: float = _param(0.94, (0.5, 1.5), above=0)  # finishing only (time stretch), not the model
    max_new_tokens: int = _param(3072, (500, 4096), at_least=1)  # generation caps it to the decoder's positions

    def __post_init__(self):
        for f in fields(self):
            check_model_param(f.name, getattr(self, f.name))

    def replace(self, **changes) -> "SamplingParams":
        return SamplingParams(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        return asdict(self)


_FIELDS = {f.name: f for f in fields(SamplingParams)}

# name: (low, high, default) of the hosted API: the project file's ranges (temperature 0 also allowed).
RANGES: dict[str, tuple[float, float, float]] = {
    name: (*f.metadata["api"], f.default) for name, f in _FIELDS.items()}


def _check_type(name: str, value, file, line, field) -> None:
    """InputError unless ``value`` is a finite number (an int for integer fields)."""
    if name not in _FIELDS:
        raise InputError(f"unknown sampling parameter {name!r}", file=file, line=line, field=field or name)
    integral = type(_FIELDS[name].default) is int
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integral and not isinstance(value, int)):
        kind = "an integer" if integral else "a number"
        raise InputError(f"must be {kind}, got {value!r}", file=file, line=line, field=field or name)
    if not math.isfinite(value):
        raise InputError(f"must be a finite number, got {value!r}", file=file, line=line, field=field or name)


def check_model_param(name: str, value, *, file=None, line=None, field=None) -> None:
    """Raise InputError if the model cannot use ``value`` for ``name`` (limits in SamplingParams)."""
    _check_type(name, value, file, line, field)
    m = _FIELDS[name].metadata
    limits = []  # (text, holds)
    if m["at_least"] is not None:
        limits.append((f">= {m['at_least']:g}", value >= m["at_least"]))
    if m["above"] is not None:
        limits.append((f"> {m['above']:g}", value > m["above"]))
    if m["at_most"] is not None:
        limits.append((f"<= {m['at_most']:g}", value <= m["at_most"]))
    if not all(holds for _, holds in limits):
        raise InputError(f"must be {' and '.join(text for text, _ in limits)}, got {value!r}",
                         file=file, line=line, field=field or name)


def check_param(name: str, value, *, file=None, line=None, field=None) -> None:
    """Raise InputError if ``value`` is outside the hosted API's range for ``name`` (the project
    file's rule; RANGES)."""
    _check_type(name, value, file, line, field)
    if name == "temperature" and value == 0:
        return  # greedy decoding
    low, high, _ = RANGES[name]
    if not low <= value <= high:
        extra = " (or 0 for greedy)" if name == "temperature" else ""
        raise InputError(f"must be between {low:g} and {high:g}{extra}, got {value!r}",
                         file=file, line=line, field=field or name)


def check_seed(value, *, file=None, line=None, field="seed") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"must be an integer, got {value!r}", file=file, line=line, field=field)


def decoder_budget(max_new_tokens: int, prompt_frames: int) -> int:
    """New audio frames that fit: BOS + prompt + new frames + the 15-step delay tail must stay
    within max_new_tokens, itself capped by the decoder's 3072 positions."""
    return min(max_new_tokens, MAX_DECODER_POSITIONS) - 1 - prompt_frames - MAX_DELAY

# Dia decode modes (DiaEngine, --fast-path): eager; bucketed static step (CUDA graphs on a GPU); + torch.compile.
FAST_PATH_MODES = ("off", "static", "inductor")


def check_fast_path(mode: str, field: str = "fast_path") -> str:
    if mode not in FAST_PATH_MODES:
        raise InputError(f"must be one of {', '.join(FAST_PATH_MODES)}, got {mode!r}", field=field)
    return mode
