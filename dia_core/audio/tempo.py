"""Pitch-preserving tempo change (speed_factor), float32 end to end.

``speed_factor`` follows Dia's hosted-app meaning: 0.94 plays 6 % slower, so the duration becomes
``duration / speed_factor``. Unlike the reference app (which resamples and so shifts pitch), the
audio is time-stretched. Engines (``delivery.tempo_engine``; ``auto`` is the first available):

- ``atempo`` (default): ffmpeg's WSOLA filter, the time-domain method made for speech. All the
  takes of a call go through one ffmpeg process per group (the stream is split at the takes'
  exact sample boundaries, each piece stretched by its own filter instance, padded or cut to its
  exact length, joined again): the same samples as one process per take, about 5x less CPU than
  that and 3x less than Rubber Band. Groups run on every core.
- ``rubberband``: the Rubber Band library's R2 "faster" phase vocoder in this process, through
  Spotify's pedalboard (an optional dependency, GPL-3.0: ``pip install dia-studio[rubberband]``);
- ``rubberband-hq``: Rubber Band's R3 "finer" engine (about 4x slower again).

Measured on draft speech at 0.94 (docs/delivery-specs.md, "Time stretch"): DNSMOS overall 2.90 for
atempo against 2.91 unstretched; Rubber Band R2 3.04.
"""
from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InputError
from ..params import SAMPLE_RATE, check_param
from ..settings import TEMPO_ENGINES
from ..audiofile import as_float_mono, ffmpeg_bin

__all__ = ["change_tempo", "change_tempo_all", "available_engines", "resolve_engine", "ENGINES"]

ENGINES = tuple(e for e in TEMPO_ENGINES if e != "auto")
_ATEMPO_FILTERS = ("asegment", "atempo", "apad", "atrim", "concat")


@functools.lru_cache(maxsize=1)
def available_engines() -> tuple[str, ...]:
    """The engines this host can run, in ``ENGINES`` order."""
    found = []
    p = subprocess.run([ffmpeg_bin(), "-hide_banner", "-filters"], capture_output=True, text=True)
    filters = {line.split()[1] for line in p.stdout.splitlines() if len(line.split()) > 2}
    if all(f in filters for f in _ATEMPO_FILTERS):
        found.append("atempo")
    try:
        import pedalboard  # noqa: F401
        found += ["rubberband", "rubberband-hq"]
    except ImportError:
        pass
    return tuple(found)


def resolve_engine(engine: str = "auto") -> str:
    """The engine a call with ``engine`` runs here; InputError when it is unknown or missing."""
    engines = available_engines()
    if engine == "auto":
        if not engines:
            raise RuntimeError("no tempo engine: an ffmpeg with the atempo filter, or pedalboard, is needed")
        return engines[0]
    if engine not in ENGINES:
        raise InputError(f"unknown tempo engine {engine!r} (one of auto, {', '.join(ENGINES)})",
                         field="delivery.tempo_engine")
    if engine not in engines:
        hint = " (pip install dia-studio[rubberband])" if engine.startswith("rubberband") else ""
        raise InputError(f"tempo engine {engine!r} is not available here{hint}", field="delivery.tempo_engine")
    return engine


def _rubberband(x: np.ndarray, speed: float, sample_rate: int, high_quality: bool) -> np.ndarray:
    import pedalboard

    # Library defaults (crisp transients) measured best on espeak speech: RMS -0.1 dB at 0.94.
    return pedalboard.time_stretch(x[None, :], float(sample_rate), float(speed),
                                   high_quality=high_quality)[0]


# Takes per ffmpeg process: the filter graph (three filters a take) stays small on the command line.
_ATEMPO_GROUP = 192


def _atempo_group(xs: Sequence[np.ndarray], speeds: Sequence[float], sample_rate: int) -> list[np.ndarray]:
    """``xs`` (float32, each non-empty) stretched by ffmpeg's atempo in one process: the joined
    stream is split at the takes' sample boundaries (asegment), each part gets its own atempo and
    is padded or cut to round(n / speed) samples, and the parts are joined again in order."""
    from .encode import ffmpeg_pipe   # encode imports meter/profiles; tempo stays light without it

    outs = [int(round(len(x) / v)) for x, v in zip(xs, speeds)]
    k = len(xs)
    if k == 1:
        graph = f"[0:a]atempo={speeds[0]:.6f},apad=whole_len={outs[0]},atrim=end_sample={outs[0]}[out]"
    else:
        cuts = np.cumsum([len(x) for x in xs])[:-1]
        parts = [f"[0:a]asegment=samples={'|'.join(str(int(c)) for c in cuts)}" + "".join(f"[s{i}]" for i in range(k))]
        parts += [f"[s{i}]atempo={v:.6f},apad=whole_len={m},atrim=end_sample={m}[t{i}]"
                  for i, (v, m) in enumerate(zip(speeds, outs))]
        parts.append("".join(f"[t{i}]" for i in range(k)) + f"concat=n={k}:v=0:a=1[out]")
        graph = ";".join(parts)
    cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error",
           "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
           "-filter_complex", graph, "-map", "[out]",
           "-f", "f32le", "-acodec", "pcm_f32le", "-ar", str(sample_rate), "-ac", "1", "pipe:1"]
    raw = ffmpeg_pipe(cmd, (np.ascontiguousarray(x, dtype="<f4") for x in xs), what="atempo", capture=True)
    y = np.frombuffer(raw, dtype="<f4")
    if len(y) != sum(outs):
        raise RuntimeError(f"ffmpeg atempo returned {len(y)} samples, expected {sum(outs)}")
    return [np.array(p, dtype=np.float32) for p in np.split(y, np.cumsum(outs)[:-1])]


def _atempo_all(xs: Sequence[np.ndarray], speeds: Sequence[float], sample_rate: int, workers: int) -> list[np.ndarray]:
    """Groups of consecutive takes (about equal audio per worker, at most _ATEMPO_GROUP takes),
    one ffmpeg each, ``workers`` at a time."""
    total = sum(len(x) for x in xs)
    per = max(1, -(-total // max(1, workers)))
    groups, cur, size = [], [], 0
    for i, x in enumerate(xs):
        if cur and (size + len(x) > per or len(cur) >= _ATEMPO_GROUP):
            groups.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += len(x)
    if cur:
        groups.append(cur)
    done = _on_threads(lambda g: _atempo_group([xs[i] for i in g], [speeds[i] for i in g], sample_rate),
                       groups, workers)
    return [y for ys in done for y in ys]


def _on_threads(fn, items: list, workers: int) -> list:
    """``[fn(item) for item in items]``, on up to ``workers`` threads (the stretchers release the GIL
    or wait on ffmpeg)."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="tempo") as ex:
        return list(ex.map(fn, items))


def change_tempo(audio: np.ndarray, speed_factor: float, *, engine: str = "auto",
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Return ``audio`` played at ``speed_factor`` (0.5-1.5) without changing pitch.

    The output has exactly ``round(len(audio) / speed_factor)`` samples. ``speed_factor`` 1.0 returns
    the input object unchanged. A stretch may change the level a little; it is not compensated
    here because dynamics.finish sets the final level.
    """
    return change_tempo_all([audio], [speed_factor], engine=engine, workers=1, sample_rate=sample_rate)[0]


def _fit(y: np.ndarray, n_out: int) -> np.ndarray:
    if len(y) >= n_out:
        y = y[:n_out]
    else:  # a stretcher may drop a few tail samples on very short inputs
        y = np.concatenate([y, np.zeros(n_out - len(y), dtype=np.float32)])
    return np.ascontiguousarray(y, dtype=np.float32)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def change_tempo_all(audios: Sequence[np.ndarray], speed_factors: Sequence[float], *,
                     engine: str = "auto", workers: int | None = None,
                     sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """``change_tempo`` of each audio at its speed factor, using ``workers`` CPUs (default: the CPUs
    this process may use). The same samples as one at a time, in order."""
    if len(audios) != len(speed_factors):
        raise ValueError("one speed factor per audio")
    for v in speed_factors:
        check_param("speed_factor", v)
    xs = [as_float_mono(a) for a in audios]
    todo = [i for i, (x, v) in enumerate(zip(xs, speed_factors)) if v != 1.0 and len(x)]
    out: list[np.ndarray] = [a if v == 1.0 else xs[i] for i, (a, v) in enumerate(zip(audios, speed_factors))]
    if not todo:
        return out
    engine = resolve_engine(engine)
    workers = workers or usable_cpus()
    speeds = [float(speed_factors[i]) for i in todo]
    if engine == "atempo":
        done = _atempo_all([xs[i] for i in todo], speeds, sample_rate, workers)
    else:
        done = _on_threads(lambda j: _fit(_rubberband(xs[todo[j]], speeds[j], sample_rate, engine == "rubberband-hq"),
                                          int(round(len(xs[todo[j]]) / speeds[j]))), list(range(len(todo))), workers)
    for i, y in zip(todo, done):
        out[i] = y
    return out
