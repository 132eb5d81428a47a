"""Render options: everything besides the project that decides how a render runs.

One typed object travels from the CLI (its flags are generated from this dataclass's fields) and
the flows' parameters to the job; it is JSON-able, so a flow run records it as its parameters.
"""
from __future__ import annotations

import os
from pathlib import Path
from dataclasses import asdict, dataclass, fields
from typing import Callable

from ..errors import InputError
from ..params import check_fast_path

ProgressFn = Callable[[int, int], None]   # (segments settled, total)


@dataclass(frozen=True)
class RenderOptions:
    """Everything besides the project that decides how a render runs (JSON-able: flow parameters)."""
    out_dir: str | None = None        # parent folder; outputs land in out_dir/<project folder name>/
    draft: bool = False               # espeak-ng draft engine instead of Dia
    model: str | None = None          # HF repo id or local path; overrides the project's `model`
    codec: str | None = None          # local DAC weights; default: descript-audio-codec's download
    store: str | None = None          # segment store; share it between hosts for scale-out
    chapters: tuple[int, ...] | str | None = None   # None: the project's `chapters:`; "all": every chapter
    device: str | None = None         # "cuda", "cuda:1", "cpu"; default cuda when available
    batch_size: int | None = None
    fast_path: str | None = None      # "off" | "static" | "inductor"; default $DIA_STUDIO_FAST_PATH, else off
    shard_minutes: float | None = None     # audio per generation shard; default shards.DEFAULT_SHARD_MINUTES
    shard_deployment: str | None = None    # "generate-shard/gpu": shards run on its work pool; None: in-process
    finish_workers: int | None = None      # chapters finished at once; default finish_workers(): up to 2

    def __post_init__(self):
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or self.batch_size < 1):
            raise InputError(f"must be at least 1, got {self.batch_size}", field="batch_size")
        if self.finish_workers is not None and (isinstance(self.finish_workers, bool)
                                                or not isinstance(self.finish_workers, int)
                                                or self.finish_workers < 1):
            raise InputError(f"must be at least 1, got {self.finish_workers!r}", field="finish_workers")
        if self.shard_minutes is not None and (isinstance(self.shard_minutes, bool)
                                               or not isinstance(self.shard_minutes, (int, float))
                                               or not self.shard_minutes > 0):
            raise InputError(f"must be a positive number of minutes, got {self.shard_minutes!r}",
                             field="shard_minutes")
        if self.fast_path is not None:
            check_fast_path(self.fast_path, field="fast_path")
        if self.chapters is not None and not isinstance(self.chapters, (tuple, str)):
            object.__setattr__(self, "chapters", tuple(self.chapters) or None)
        if isinstance(self.chapters, str) and self.chapters != "all":
            raise InputError(f"must be chapter numbers or 'all', got {self.chapters!r}", field="chapters")

    def to_dict(self) -> dict:
        """Flow parameters (JSON): chapters as a list."""
        d = asdict(self)
        d["chapters"] = list(self.chapters) if isinstance(self.chapters, tuple) else self.chapters
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> "RenderOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})

    def replace(self, **changes) -> "RenderOptions":
        return RenderOptions(**{**asdict(self), **changes})

    def for_other_hosts(self) -> "RenderOptions":
        """These options as a run on another worker (another working directory) must receive them:
        the output and store folders absolute, a local model or codec path absolute (a Hugging Face
        repo id stays as it is)."""
        local = lambda p: str(Path(p).resolve()) if p and Path(p).exists() else p   # noqa: E731
        return self.replace(out_dir=str(Path(self.out_dir).resolve()) if self.out_dir else None,
                            store=str(Path(self.store).resolve()) if self.store else None,
                            model=local(self.model), codec=local(self.codec))


def fast_path_mode(options: RenderOptions) -> str:
    """The Dia decode mode: the option, else $DIA_STUDIO_FAST_PATH (a GPU host's own setting), else off."""
    mode = options.fast_path or os.environ.get("DIA_STUDIO_FAST_PATH") or "off"
    return check_fast_path(mode, field="--fast-path" if options.fast_path else "DIA_STUDIO_FAST_PATH")


DEFAULT_FINISH_WORKERS = 2


def finish_workers(options: RenderOptions) -> int:
    """Chapters finished at once: the option, else up to DEFAULT_FINISH_WORKERS (no more than the
    CPUs this process may use). Each holds a few copies of its chapter in memory (about 4x the
    float32 chapter, bench/bench_finish.py), so a host finishing 2-hour chapters wants few."""
    if options.finish_workers:
        return options.finish_workers
    from ..audio.tempo import usable_cpus   # not at import: options load in the CLI before numpy is needed
    return max(1, min(DEFAULT_FINISH_WORKERS, usable_cpus()))
