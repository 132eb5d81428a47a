"""Dia sampling parameters: ranges and defaults users know from the hosted Dia APIs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import InputError

DEFAULT_REPO = "nari-labs/Dia-1.6B-0626"   # the Hugging Face repo of the weights

# Decoder positions (BOS + voice prompt + new frames) and encoder positions (text bytes).
MAX_DECODER_POSITIONS = 3072
MAX_TEXT_BYTES = 1024
SAMPLE_RATE = 44100
HOP_LENGTH = 512
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH  # 86.13 frames/s
NUM_CHANNELS = 9
DELAY_PATTERN = (0, 8, 9, 10, 11, 12, 13, 14, 15)
MAX_DELAY = max(DELAY_PATTERN)

# name: (low, high, default); temperature 0 is also allowed (greedy).
RANGES: dict[str, tuple[float, float, float]] = {
    "temperature": (0.1, 2.0, 1.3),
    "top_p": (0.1, 1.0, 0.95),
    "cfg_scale": (1.0, 5.0, 4.0),
    "cfg_filter_top_k": (10, 100, 35),
    "speed_factor": (0.5, 1.5, 0.94),
    "max_new_tokens": (500, 4096, 3072),
}


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.3
    top_p: float = 0.95
    cfg_scale: float = 4.0
    cfg_filter_top_k: int = 35
    speed_factor: float = 0.94
    max_new_tokens: int = 3072

    def __post_init__(self):
        for f in fields(self):
            check_param(f.name, getattr(self, f.name))

    def replace(self, **changes) -> "SamplingParams":
        return SamplingParams(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        return asdict(self)


def check_param(name: str, value, *, file=None, line=None, field=None) -> None:
    """Raise InputError if ``value`` is outside the documented range for ``name``."""
    if name not in RANGES:
        raise InputError(f"unknown sampling parameter {name!r}", file=file, line=line, field=field or name)
    low, high, _ = RANGES[name]
    integral = name in ("cfg_filter_top_k", "max_new_tokens")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integral and not isinstance(value, int)):
        kind = "an integer" if integral else "a number"
        raise InputError(f"must be {kind}, got {value!r}", file=file, line=line, field=field or name)
    if name == "temperature" and value == 0:
        return  # greedy decoding
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
