"""Measurement: integrated loudness, true and sample peak, RMS, noise floor, head/tail silence.

Conventions (documented so the manifest numbers are unambiguous):

- Integrated loudness: ITU-R BS.1770-4 as pyloudnorm computes it (its K-weighting filters, 400 ms
  blocks, 75 % overlap, gates at -70 LKFS and -10 LU), evaluated a chunk at a time. LUFS.
- True peak: the signal is oversampled 4x with a polyphase low-pass (scipy ``resample_poly``,
  Kaiser-windowed FIR, in overlapping chunks) and the largest absolute value is reported in dBTP.
- Sample peak: largest absolute sample, dBFS.
- RMS ("ACX RMS"): plain RMS of the whole file, ``20*log10(rms)`` with full scale = 1.0, i.e. a
  full-scale square wave reads 0 dB and a full-scale sine -3.01 dB. This is the convention of
  Audacity's ACX Check / Contrast tools (no +3 dB "AES" sine offset).
- Noise floor: RMS of the quietest 500 ms window (windows every 50 ms over the whole file), dB.
  In a stitched chapter the quietest window lies in the room tone (head, tail, pauses), so this is
  the room-tone level ACX checks. Digital silence would read -200 dB (we never produce it).
- Head/tail silence: time before the first / after the last 50 ms frame whose RMS exceeds
  ``max(noise_floor + 20 dB, -50 dBFS)`` capped at -40 dBFS: the room tone around the speech.


Memory: everything works on float32 audio in chunks of ``CHUNK`` samples (float64 only inside a
chunk), reading the neighbours a windowed step needs across chunk edges, so the results are the
whole-array formulas' to float rounding (tests/dia_core/audio/test_chunked.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from ..params import SAMPLE_RATE
from ..audiofile import as_float_mono, db, undb

__all__ = ["Measurements", "measure", "true_peak", "integrated_lufs", "FLOOR_DB", "CHUNK"]

FLOOR_DB = -200.0          # what silence reads instead of -inf (JSON has no infinities)
OVERSAMPLE = 4
NOISE_WINDOW_S = 0.5


@dataclass(frozen=True)
class Measurements:
    integrated_lufs: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    rms_db: float
    noise_floor_db: float
    duration_s: float
    head_silence_s: float = 0.0
    tail_silence_s: float = 0.0

    def to_dict(self) -> dict:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}



# ----------------------------------------------------------------------------------- measurement
#
# Everything below works a chunk at a time on float32 audio: a long chapter (120 min = 1.27 GB as
# float32) is never converted to float64 or copied whole. Windowed computations read their
# neighbours across chunk edges, so the results are those of the whole-array formulas (to float64
# rounding): see tests/dia_core/audio/test_chunked.py.

CHUNK = 1 << 20            # samples per chunk (8 MiB as float64)
_TP_PAD = 64               # context each side of an oversampled chunk (the filter reaches 10 samples)


def _chunks(n: int, size: int | None = None):
    size = size or CHUNK
    for s in range(0, n, size):
        yield s, min(n, s + size)


def _sum_squares(x: np.ndarray) -> float:
    return float(sum(np.sum(np.square(x[s:e], dtype=np.float64)) for s, e in _chunks(len(x))))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(_sum_squares(x) / len(x))) if len(x) else 0.0


def _abs_max(x: np.ndarray) -> float:
    return max((max(float(x[s:e].max()), -float(x[s:e].min())) for s, e in _chunks(len(x))), default=0.0)


def _oversampled(x: np.ndarray, s: int, e: int, factor: int = OVERSAMPLE) -> np.ndarray:
    """The 4x oversampled signal (float64) at the ``factor`` points of each sample in [s, e),
    from x[s - 64 : e + 64] (scipy ``resample_poly``, zero outside the signal)."""
    a, b = max(0, s - _TP_PAD), min(len(x), e + _TP_PAD)
    # the filter resample_poly designs for this factor, designed once (firwin costs ~1 ms a call)
    from scipy.signal import resample_poly   # scipy.signal: imported on first use (1.6 s; the CLI's validate needs none)

    return resample_poly(x[a:b].astype(np.float64), factor, 1,
                         window=_design(factor))[(s - a) * factor:(e - a) * factor]


@lru_cache(maxsize=4)
def _design(factor: int) -> np.ndarray:
    """resample_poly's own low-pass for up=factor, down=1 (before its gain of ``factor``)."""
    from scipy.signal import firwin

    h = firwin(2 * 10 * factor + 1, 1.0 / factor, window=("kaiser", 5.0))
    h.flags.writeable = False
    return h


def _true_peak_linear(x: np.ndarray) -> float:
    """max(|x|, |4x oversampled x|): the sample peak, raised by the oversampled points only where
    they can exceed it (only those stretches are oversampled: ``_candidate_runs``)."""
    peak = _abs_max(x)
    for s, e in _chunks(len(x), CHUNK // OVERSAMPLE):
        for r0, r1 in _candidate_runs(x, s, e, peak):
            peak = max(peak, float(np.abs(_oversampled(x, r0, r1)).max()))
    return peak


def true_peak(audio: np.ndarray) -> float:
    """True peak in dBTP (4x oversampling)."""
    x = as_float_mono(audio)
    if len(x) == 0:
        return FLOOR_DB
    return db(_true_peak_linear(x), FLOOR_DB)


@lru_cache(maxsize=1)
def _overshoot_bound() -> float:
    """An upper bound of |oversampled point| / max |x| over the filter's reach: the largest sum of
    |taps| of one polyphase branch of resample_poly's 4x filter (the filter it designs for up=4)."""
    h = _design(OVERSAMPLE) * OVERSAMPLE
    return float(max(np.abs(h[p::OVERSAMPLE]).sum() for p in range(OVERSAMPLE))) * (1 + 1e-6)


_REACH = 11          # input samples an oversampled point of sample m depends on, each side (10, +1 spare)
_BLOCK = 256         # candidates are found a block at a time (a block's max is cheap; a sliding max is not)
_RUN_GAP = 2048      # candidate runs closer than this are oversampled as one (fewer calls)


def _candidate_runs(x: np.ndarray, a: int, e: int, floor: float) -> list[tuple[int, int]]:
    """Runs [r0, r1) (indices into x, within [a, e)) outside of which no oversampled point of a
    sample can reach ``floor``: there, the largest |x| within the filter's reach times
    ``_overshoot_bound`` is below it. Found per block of ``_BLOCK`` samples: a block is a candidate
    when the largest |x| of it and its two neighbours (which hold every sample within reach, as
    _REACH < _BLOCK) times the bound reaches ``floor`` (a superset of the per-sample answer)."""
    if e <= a:
        return []
    nb = -(-(e - a) // _BLOCK)
    span = np.zeros(nb * _BLOCK, dtype=x.dtype)
    np.abs(x[a:e], out=span[:e - a])
    bm = span.reshape(nb, _BLOCK).max(axis=1)
    near = bm.copy()
    near[1:] = np.maximum(near[1:], bm[:-1])
    near[:-1] = np.maximum(near[:-1], bm[1:])
    outside = (x[max(0, a - _REACH):a], x[e:e + _REACH])   # within reach of the first/last samples
    near[0] = max(near[0], float(np.abs(outside[0]).max(initial=0.0)))
    near[-1] = max(near[-1], float(np.abs(outside[1]).max(initial=0.0)))
    mask = near.astype(np.float64) * _overshoot_bound() >= floor
    if not mask.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    starts, ends = edges[0::2] * _BLOCK, edges[1::2] * _BLOCK
    keep = np.concatenate([[True], starts[1:] - ends[:-1] > _RUN_GAP])   # merge close runs
    starts = starts[keep]
    ends = np.concatenate([ends[np.flatnonzero(keep)[1:] - 1], ends[-1:]])
    return [(a + int(r0), min(e, a + int(r1))) for r0, r1 in zip(starts, ends)]


def _true_peak_envelope(x: np.ndarray, s: int = 0, e: int | None = None, *, floor: float | None = None) -> np.ndarray:
    """Per-sample max |signal| over the oversampled points from sample n-1 to n+1, n in [s, e).

    With ``floor``, exact wherever that value can reach ``floor``; elsewhere the samples' own |x|
    (below the exact value, and below ``floor``): only the loud stretches are oversampled. A caller
    that only asks where the envelope exceeds ``floor``, or its maximum when that is at least
    ``floor``, gets the dense envelope's answer."""
    e = len(x) if e is None else e
    a = max(0, s - 1)
    env = np.abs(x[a:e]).astype(np.float64)
    runs = [(a, e)] if floor is None else _candidate_runs(x, a, e, floor)
    for r0, r1 in runs:
        y = np.abs(_oversampled(x, r0, r1)).reshape(r1 - r0, OVERSAMPLE)
        seg = env[r0 - a:r1 - a]
        for k in range(OVERSAMPLE):
            np.maximum(seg, y[:, k], out=seg)
    env[1:] = np.maximum(env[1:], env[:-1])
    return env[s - a:]


def _frame_energy(x: np.ndarray, win: int, hop: int, *, pad: int = 0) -> np.ndarray:
    """Sum of squares (float64) of the windows ``xp[k*hop : k*hop + win]`` of ``xp = np.pad(x, pad,
    mode="edge")``, for every k with the window inside xp; a block of frames at a time."""
    n = len(x)
    frames = (n + 2 * pad - win) // hop + 1
    out = np.empty(max(frames, 0))
    per = max(1, CHUNK // hop)
    for f0 in range(0, frames, per):
        f1 = min(frames, f0 + per)
        a, b = f0 * hop - pad, (f1 - 1) * hop - pad + win      # the frames' samples in x's indices
        seg = np.square(x[max(a, 0):min(b, n)], dtype=np.float64)
        if a < 0 or b > n:
            seg = np.pad(seg, (max(0, -a), max(0, b - n)), mode="constant",
                         constant_values=(float(x[0]) ** 2, float(x[-1]) ** 2))
        c = np.concatenate([[0.0], np.cumsum(seg)])
        starts = np.arange(f1 - f0) * hop
        out[f0:f1] = c[starts + win] - c[starts]
    return out


def _frame_rms(x: np.ndarray, win: int, hop: int, *, pad: int = 0) -> np.ndarray:
    """RMS of windows of ``win`` samples every ``hop`` samples (at least one window); ``pad``: as
    in ``_frame_energy`` (edge samples repeated)."""
    if len(x) + 2 * pad <= win:   # short audio: one window over all of it
        return np.array([_rms(np.pad(x.astype(np.float64), pad, mode="edge") if pad else x)])
    return np.sqrt(np.maximum(_frame_energy(x, win, hop, pad=pad), 0.0) / win)


def _noise_floor_db(x: np.ndarray, sr: int) -> float:
    win = int(NOISE_WINDOW_S * sr)
    return db(float(_frame_rms(x, win, int(0.05 * sr)).min()), FLOOR_DB)


def _head_tail_silence(x: np.ndarray, sr: int, noise_floor_db: float) -> tuple[float, float]:
    hop = int(0.05 * sr)
    if len(x) < hop:
        return len(x) / sr, len(x) / sr
    rms = _frame_rms(x, hop, hop)
    thr = min(max(noise_floor_db + 20.0, -50.0), -40.0)
    loud = np.nonzero(rms > undb(thr))[0]
    if len(loud) == 0:
        return len(x) / sr, len(x) / sr
    head = float(loud[0] * hop / sr)
    tail = float((len(x) - (loud[-1] + 1) * hop) / sr)
    return head, max(tail, 0.0)


@lru_cache(maxsize=8)
def _k_weighting_sos(sr: int) -> tuple[np.ndarray, float]:
    """pyloudnorm's BS.1770 K-weighting stages at ``sr`` (high shelf, then high pass, in its order)
    as one cascade of second-order sections, and their passband gains' product (sosfilt runs both
    biquads in one pass, half the time of two lfilter calls; outputs equal within 1e-12)."""
    import pyloudnorm
    from scipy.signal import tf2sos

    stages = list(pyloudnorm.Meter(sr)._filters.values())
    return np.vstack([tf2sos(f.b, f.a) for f in stages]), float(np.prod([f.passband_gain for f in stages]))


def integrated_lufs(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """BS.1770-4 integrated loudness of mono ``x``: ``pyloudnorm.Meter(sr).integrated_loudness``,
    computed a chunk at a time. The K-weighting filters run through ``sosfilt`` with their state
    carried from chunk to chunk (the same output as one call); each 400 ms block's energy is summed
    from the chunks it spans; then pyloudnorm's gating: blocks every 100 ms (its bounds formula),
    absolute gate -70 LKFS, relative gate -10 LU."""
    from scipy.signal import sosfilt

    n = len(x)
    if n < int(0.4 * sr) + 1:
        return FLOOR_DB
    t_g, step = 0.4, 1.0 - 0.75
    blocks = int(np.round((n / sr - t_g) / (t_g * step))) + 1
    j = np.arange(blocks)
    lo = np.minimum((t_g * (j * step) * sr).astype(np.int64), n)
    hi = np.minimum((t_g * (j * step + 1) * sr).astype(np.int64), n)
    z = np.zeros(blocks)
    sos, gain = _k_weighting_sos(sr)
    zi = np.zeros((len(sos), 2))
    for s, e in _chunks(n):
        y, zi = sosfilt(sos, x[s:e].astype(np.float64), zi=zi)
        if gain != 1.0:
            y *= gain
        c = np.concatenate([[0.0], np.cumsum(np.square(y))])
        j0, j1 = np.searchsorted(hi, s, "right"), np.searchsorted(lo, e, "left")   # blocks touching [s, e)
        z[j0:j1] += c[np.clip(hi[j0:j1], s, e) - s] - c[np.clip(lo[j0:j1], s, e) - s]
    z *= 1.0 / (t_g * sr)
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10.0 * np.log10(z)
    gated = z[loud >= -70.0]
    if len(gated) == 0:
        return FLOOR_DB
    rel = -0.691 + 10.0 * np.log10(np.mean(gated)) - 10.0
    gated = z[(loud > rel) & (loud > -70.0)]
    v = -0.691 + 10.0 * np.log10(np.mean(gated)) if len(gated) else -np.inf
    return float(v) if np.isfinite(v) else FLOOR_DB


def _measure(x: np.ndarray, sr: int, true_peak: float | None = None) -> Measurements:
    """``measure`` of checked float32 audio; ``true_peak`` (linear), when already known, is used."""
    if len(x) == 0:
        return Measurements(FLOOR_DB, FLOOR_DB, FLOOR_DB, FLOOR_DB, FLOOR_DB, 0.0, 0.0, 0.0)
    nf = _noise_floor_db(x, sr)
    head, tail = _head_tail_silence(x, sr, nf)
    return Measurements(
        integrated_lufs=integrated_lufs(x, sr),
        true_peak_dbtp=db(_true_peak_linear(x) if true_peak is None else true_peak, FLOOR_DB),
        sample_peak_dbfs=db(_abs_max(x), FLOOR_DB),
        rms_db=db(_rms(x), FLOOR_DB),
        noise_floor_db=nf,
        duration_s=len(x) / sr,
        head_silence_s=head,
        tail_silence_s=tail,
    )


def measure(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Measurements:
    """All delivery measurements of float mono audio (see module docstring for definitions)."""
    return _measure(as_float_mono(audio), sample_rate)

