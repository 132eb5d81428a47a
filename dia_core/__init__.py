"""dia_core: Dia 1.6B inference, manuscript planning and audio finishing. Never imports Prefect."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["DiaModel", "InputError", "SamplingParams", "__version__"]


def __getattr__(name):
    # Import torch-heavy modules lazily so planning and the CLI start fast.
    if name == "DiaModel":
        from .model import DiaModel
        return DiaModel
    if name == "InputError":
        from .errors import InputError
        return InputError
    if name == "SamplingParams":
        from .params import SamplingParams
        return SamplingParams
    raise AttributeError(name)
