"""The audio half of finishing a chapter, in one place for delivery and bench/bench_finish.py:
time stretch (every CPU), stitch with room tone and pauses, gain + true-peak limiter, encode to
the delivery formats (at once). Tagging, the float master, captions, the profile check and the
manifest are delivery's (dia_core.production.delivery)."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import faults
from ..settings import DeliverySettings
from . import dynamics, encode, stitch, tempo


@dataclass
class FinishedAudio:
    audio: np.ndarray                  # the finished chapter, float32
    loudness: dynamics.LoudnessReport
    spans: list                        # (start_s, end_s) of each segment's speech in the chapter
    head_s: float
    tail_s: float
    trims: list                        # (trim_start, trim_end) samples cut from each stretched take
    files: dict[str, Path]             # format -> encoded file


_blas_lock = threading.Lock()
_blas_users = [0, None]   # chapters finishing now, threadpoolctl's limiter while any is


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """numpy's BLAS on one thread while any chapter is being finished. Finishing calls BLAS only
    for dot products; OpenBLAS's idle threads spin after each one, which cost a quarter of the
    finishing CPU and slowed the chapter finished beside it. Counted: the limit is lifted when the
    last concurrent chapter is done (threadpoolctl's limits are process-wide)."""
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_users[0] == 0:
            _blas_users[1] = threadpool_limits(limits=1, user_api="blas")
        _blas_users[0] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users[0] -= 1
            if _blas_users[0] == 0:
                _blas_users[1].restore_original_limits()
                _blas_users[1] = None


@single_threaded_blas()
def finish_chapter_audio(takes: list[np.ndarray], speed_factors: list[float], boundaries: list[str],
                         segment_ids: list[str], settings: DeliverySettings, *, seed: int,
                         out_stem: Path, on_step: Callable[[str], None] | None = None) -> FinishedAudio:
    """Finish one chapter from its chosen takes (in order). ``takes`` is consumed (emptied as soon
    as the stretched copies exist: a long chapter is GBs, one copy of it is kept alive at a time).
    ``on_step(name)`` is called after each step (tempo, stitch, finish, export), for benchmarks."""
    step = on_step or (lambda name: None)
    stretched = tempo.change_tempo_all(takes, speed_factors, engine=settings.tempo_engine)
    takes.clear()
    pieces = [stitch.StitchPiece(a, b, i) for a, b, i in zip(stretched, boundaries, segment_ids)]
    del stretched
    step("tempo")
    faults.hit("stitch")
    stitched = stitch.stitch_chapter(pieces, settings, seed=seed)
    pieces.clear()
    step("stitch")
    # With spans, only speech is gained: the room tone stays under the noise floor.
    audio, loud = dynamics.finish(stitched.audio, settings, spans=stitched.spans)
    result = FinishedAudio(audio, loud, stitched.spans, stitched.head_s, stitched.tail_s, stitched.trims, {})
    del stitched
    step("finish")
    faults.hit("export")
    Path(out_stem).parent.mkdir(parents=True, exist_ok=True)
    result.files = encode.export_chapter(audio, out_stem, settings)
    step("export")
    return result
