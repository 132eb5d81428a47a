"""dia_core: Dia 1.6B inference, manuscript planning and audio finishing. Never imports Prefect."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["AudioPrompt", "DiaCodec", "DiaConfig", "DiaModel", "Generated", "InputError", "SamplingParams",
           "encode_text", "__version__"]


def __getattr__(name):
    # Import torch-heavy modules lazily so planning and the CLI start fast.
    if name == "DiaModel":
        from .dia.model import DiaModel
        return DiaModel
    if name in ("AudioPrompt", "Generated"):
        from .dia import generate
        return getattr(generate, name)
    if name == "DiaCodec":
        from .dia.codec import DiaCodec
        return DiaCodec
    if name == "DiaConfig":
        from .dia.config import DiaConfig
        return DiaConfig
    if name == "encode_text":
        from .dia.tokenizer import encode_text
        return encode_text
    if name == "InputError":
        from .errors import InputError
        return InputError
    if name == "SamplingParams":
        from .params import SamplingParams
        return SamplingParams
    raise AttributeError(name)
