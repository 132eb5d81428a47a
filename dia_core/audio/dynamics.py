"""Dynamics: gain to a profile's target, look-ahead true-peak limiter, room-tone expander (``finish``).

Works a chunk at a time (``meter.CHUNK``) on float32: ``finish`` holds its input and one output
array.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d

from ..errors import InputError
from ..params import SAMPLE_RATE
from ..settings import DeliverySettings
from . import meter
from ..audiofile import as_float_mono, db, undb
from .meter import (_TP_PAD, OVERSAMPLE, Measurements, _chunks, _frame_rms, _measure, _noise_floor_db, _rms, _true_peak_envelope, integrated_lufs)
from .profiles import profile_target

__all__ = ["LoudnessReport", "finish", "limit", "limiter_gain", "LEVEL_TOLERANCE_DB"]


@dataclass(frozen=True)
class LoudnessReport:
    profile: str
    target: dict                 # {"metric": "rms_db"|"integrated_lufs", "value": float}
    ceiling_dbtp: float
    gain_db: float               # total static gain applied
    limiter_max_reduction_db: float
    noise_floor_reduction_db: float
    iterations: int
    before: Measurements
    after: Measurements

    def to_dict(self) -> dict:
        d = asdict(self)
        d["before"] = self.before.to_dict()
        d["after"] = self.after.to_dict()
        return d


# ----------------------------------------------------------------------------------- processing

def _map_chunks(fn, n: int, out: np.ndarray, *, chunk: int, margin: int) -> None:
    """``out[s:e] = fn(s, e)`` for consecutive chunks [s, e) of range(n), where fn reads its input
    within ``margin`` samples of its chunk. ``out`` may be that input (in place): each result is
    written only once the next chunk has been computed, so fn never reads a written sample."""
    if margin > chunk:
        raise ValueError("chunk must be at least the margin")
    pending = None
    for s, e in _chunks(n, chunk):
        r = fn(s, e)
        if pending is not None:
            out[pending[0]:pending[0] + len(pending[1])] = pending[1]
        pending = (s, r)
    if pending is not None:
        out[pending[0]:pending[0] + len(pending[1])] = pending[1]


@dataclass(frozen=True)
class _Limiter:
    """The look-ahead limiter's parameters in samples (see ``limiter_gain``)."""
    ceiling: float      # linear
    w: int              # look-ahead = attack/release ramp
    hold: int
    true_peak: bool = True   # False: sample peaks (no oversampling; only for estimates)

    @classmethod
    def of(cls, ceiling_dbtp: float, sample_rate: int, lookahead_ms: float, hold_ms: float,
           true_peak: bool = True) -> "_Limiter":
        return cls(undb(ceiling_dbtp), max(1, int(lookahead_ms * sample_rate / 1000)),
                   int(hold_ms * sample_rate / 1000), true_peak)

    @property
    def margin(self) -> int:   # input samples a chunk's gain reads beyond its chunk, each side
        return 2 * self.w + self.hold + 1 + _TP_PAD

    @property
    def chunk(self) -> int:    # a quarter of CHUNK: the 4x oversampled envelope is the big temporary
        return max(meter.CHUNK // OVERSAMPLE, self.margin)

    def gain(self, x: np.ndarray, s: int, e: int) -> tuple[np.ndarray, float]:
        """Gain for samples [s, e) of x (float64), from x[s - margin : e + margin] only, and the
        largest true-peak envelope value over [s, e) (the chunks' largest is x's true peak)."""
        w, hold, n = self.w, self.hold, len(x)
        # gain[m] = mean(gmin[m-w+1 .. m]); gmin[k] = min(g[k-hold-w+1 .. k+w-1])
        a = max(0, s - (w - 1) - (hold + w - 1))
        b = min(n, e + w - 1)
        # Oversampled only where the envelope can reach the ceiling (elsewhere g = 1 either way) or
        # this chunk's sample peak (where its largest value can be): the same gain and peak.
        env = _true_peak_envelope(x, a, b, floor=min(self.ceiling, float(np.abs(x[s:e]).max()))) \
            if self.true_peak else np.abs(x[a:b]).astype(np.float64)
        peak = float(env[s - a:e - a].max())
        out = np.ones(e - s)
        over = np.flatnonzero(env > self.ceiling)   # where g < 1: the gain is 1 farther than the
        if len(over) == 0:                          # ramps and the hold from all of them
            return out, peak
        # g[j] < 1 lowers gain[m] for m in [j - w + 1, j + hold + 2w - 2]: only those stretches
        # (merged when close) are computed, each exactly as over the whole chunk.
        before, after = w - 1, hold + 2 * w - 2
        j = over + a
        breaks = np.flatnonzero(np.diff(j) > before + after + 1)
        for j0, j1 in zip(np.concatenate([[j[0]], j[breaks + 1]]), np.concatenate([j[breaks], [j[-1]]])):
            m0, m1 = max(s, int(j0) - before), min(e, int(j1) + after + 1)
            if m0 < m1:
                out[m0 - s:m1 - s] = self._dense(env, a, m0, m1)
        return out, peak

    def _dense(self, env: np.ndarray, a: int, m0: int, m1: int) -> np.ndarray:
        """The gain for samples [m0, m1) from the envelope ``env`` of x[a : a + len(env)], which
        covers every g the window needs (clipped only at the signal's ends)."""
        w, hold = self.w, self.hold
        lo = max(a, m0 - (w - 1) - (hold + w - 1))
        hi = min(a + len(env), m1 + w - 1)
        g = np.minimum(1.0, self.ceiling / np.maximum(env[lo - a:hi - a], 1e-12))
        size = hold + 2 * w - 1
        origin = (hold + w - 1) - size // 2   # positive origin shifts the window to earlier samples
        gmin = minimum_filter1d(g, size=size, mode="nearest", origin=origin)   # right where lo, hi are
        k0 = m0 - (w - 1)                                                      # 0, n or where g is 1
        seg = gmin[k0 - lo:m1 - lo] if k0 >= lo else np.concatenate([np.full(lo - k0, gmin[0]), gmin[:m1 - lo]])
        csum = np.concatenate([[0.0], np.cumsum(seg)])
        return np.minimum((csum[w:] - csum[:-w]) / w, 1.0)


def limiter_gain(audio: np.ndarray, ceiling_dbtp: float, *, sample_rate: int = SAMPLE_RATE,
                 lookahead_ms: float = 5.0, hold_ms: float = 40.0) -> np.ndarray:
    """Smoothed gain curve (<= 1) of the look-ahead true-peak limiter, one value per sample.

    Gain needed per sample g[n] = min(1, ceiling / true-peak envelope[n]); a sliding minimum over
    [n - hold - W + 1, n + W - 1] followed by a W-sample moving average (W = look-ahead) gives a
    smooth gain (attack and release ramps of W samples, held for ``hold_ms``, slope at most 1/W per
    sample) that is never above g at any sample: peaks are reduced before they arrive and nothing
    is clipped. Computed a chunk at a time (``limit`` never holds the whole curve)."""
    x = as_float_mono(audio)
    lim = _Limiter.of(ceiling_dbtp, sample_rate, lookahead_ms, hold_ms)
    out = np.empty(len(x))
    _map_chunks(lambda s, e: lim.gain(x, s, e)[0], len(x), out, chunk=lim.chunk, margin=lim.margin)
    return out


def _limit(x: np.ndarray, out: np.ndarray, ceiling_dbtp: float, sample_rate: int,
           lookahead_ms: float = 5.0, hold_ms: float = 40.0, *, energy: list | None = None,
           true_peak: bool = True) -> tuple[float, float | None]:
    """``out = x * limiter gain`` chunk by chunk (``out`` may be ``x``: in place), then the final
    static trim of ``limit``. Returns the smallest gain applied (1.0: under the ceiling, out = x)
    and out's true peak (linear) when nothing was limited; None when it was (only the limited
    stretches are re-measured here: a caller that needs the peak measures it once, at the end).
    ``energy``, a list, receives [sum of out^2 where the gain is below 1, sum of out^2] (float64).
    ``true_peak`` False limits sample peaks, without the final check: a cheap estimate of what
    the true-peak limiter does to the level."""
    lim = _Limiter.of(ceiling_dbtp, sample_rate, lookahead_ms, hold_ms, true_peak)
    smallest, peak = [1.0], [0.0]
    limited: list[tuple[int, int]] = []   # stretches where the gain is below 1, within reach

    def chunk(s, e):
        g, p = lim.gain(x, s, e)
        low = float(g.min())
        smallest[0], peak[0] = min(smallest[0], low), max(peak[0], p)
        if low >= 1.0:
            if energy is not None:
                energy[1] += float(np.dot(x[s:e].astype(np.float64), x[s:e].astype(np.float64)))
            return x[s:e]
        idx = np.flatnonzero(g < 1.0)
        breaks = np.flatnonzero(np.diff(idx) > _CHECK_GAP)
        for i0, i1 in zip(np.concatenate([[idx[0]], idx[breaks + 1]]), np.concatenate([idx[breaks], [idx[-1]]])):
            limited.append((max(0, s + int(i0) - _CHECK_REACH), min(len(x), s + int(i1) + 1 + _CHECK_REACH)))
        r = x[s:e].astype(np.float64) * g
        if energy is not None:
            sq = np.square(r)
            energy[0] += float(sq[g < 1.0].sum())
            energy[1] += float(sq.sum())
        return r.astype(np.float32)

    if energy is not None:
        energy[:] = [0.0, 0.0]
    _map_chunks(chunk, len(x), out, chunk=lim.chunk, margin=lim.margin)
    if smallest[0] >= 1.0:
        return 1.0, peak[0]
    if not true_peak:
        return smallest[0], None
    # Where the gain is 1 throughout the filter's reach, out's oversampled points are x's, which
    # are under the ceiling there (g = 1): only the limited stretches can be over it.
    for _ in range(3):
        tp = max(float(_true_peak_envelope(out, r0, r1, floor=lim.ceiling).max()) for r0, r1 in limited)
        if tp <= lim.ceiling:
            return smallest[0], None
        for s, e in _chunks(len(out)):
            out[s:e] *= np.float32((lim.ceiling / tp) * 0.9995)
    return smallest[0], None


_CHECK_REACH = 2 * 11 + 2   # samples beyond a limited one whose oversampled points it reaches
_CHECK_GAP = 2048           # limited stretches closer than this are checked as one


def limit(audio: np.ndarray, ceiling_dbtp: float, *, sample_rate: int = SAMPLE_RATE,
          lookahead_ms: float = 5.0, hold_ms: float = 40.0) -> tuple[np.ndarray, float]:
    """Look-ahead true-peak limiter (see ``limiter_gain``). Returns (audio, max gain reduction dB).

    Audio already under the ceiling is returned unchanged. A last tiny static trim covers the
    interpolation between oversampled points after the gain is applied."""
    x = as_float_mono(audio)
    y = np.empty_like(x)
    smallest, _ = _limit(x, y, ceiling_dbtp, sample_rate, lookahead_ms, hold_ms)
    return (x, 0.0) if smallest >= 1.0 else (y, -db(smallest))


def _box_mean(step, n: int, s: int, e: int, k: int) -> np.ndarray:
    """``np.convolve(v, np.ones(k) / k, mode="same")[s:e]`` for the length-n signal v with
    ``v[a:b] = step(a, b)``, from v[s - k : e + k] only (a cumulative sum of that stretch)."""
    lo, hi = s - k // 2, e + (k - 1) // 2          # output i averages v[i - k//2 .. i + (k-1)//2]
    a, b = max(0, lo), min(n, hi)
    v = np.zeros(hi - lo)
    v[a - lo:b - lo] = step(a, b)
    c = np.concatenate([[0.0], np.cumsum(v)])
    return (c[k:] - c[:-k]) / k


def _tame_noise_floor(x: np.ndarray, sr: int, floor_db: float, target_db: float) -> float:
    """Downward expander for the room tone, in place: frames quieter than ``floor + 10 dB`` (and
    below -45 dBFS, so speech is never touched) are attenuated so the noise floor lands at
    ``target_db``. The gain is smoothed over 50 ms. Returns the reduction (dB; 0: nothing done)."""
    reduction = floor_db - target_db
    if reduction <= 0:
        return 0.0
    n = len(x)
    hop = int(0.01 * sr)
    win = int(0.05 * sr)
    rms = _frame_rms(x, win, hop, pad=win // 2)
    quiet = rms < undb(min(floor_db + 10.0, -45.0))
    gain_frames = np.where(quiet, undb(-reduction), 1.0)
    # only keep the reduction where a frame and its neighbours are quiet (protect speech edges)
    gain_frames = np.maximum.reduce([gain_frames, np.roll(gain_frames, 1), np.roll(gain_frames, -1)])

    def per_sample(a, b):   # np.repeat(gain_frames, hop), the last frame's gain held to the end
        return gain_frames[np.minimum(np.arange(a, b) // hop, len(gain_frames) - 1)]

    k = max(1, int(0.05 * sr))
    for s, e in _chunks(n):   # reads only the frame gains: safe in place
        x[s:e] = (x[s:e] * _box_mean(per_sample, n, s, e, k)).astype(np.float32)
    return reduction


def _gain_curve(n: int, spans, speech_db: float, room_db: float, sr: int, ramp_s: float = 0.01):
    """Per-sample linear gain: ``speech_db`` inside the spans, ``room_db`` outside, 10 ms ramps;
    as a function ``(s, e) -> gain[s:e]`` (the curve is never held whole)."""
    bounds = np.array([(max(0, int(round(a * sr))), min(n, int(round(b * sr)))) for a, b in spans],
                      dtype=np.int64).reshape(-1, 2)
    r = max(1, int(ramp_s * sr))
    room, speech = undb(room_db), undb(speech_db)

    def mask(a, b):
        m = np.zeros(b - a, dtype=np.int64)
        for i0, i1 in bounds[(bounds[:, 0] < b) & (bounds[:, 1] > a)]:
            m[max(i0, a) - a:min(i1, b) - a] = 1
        return m

    return lambda s, e: room + (speech - room) * _box_mean(mask, n, s, e, r)


# How close to the profile's target a finished chapter's level must be: a tenth of a dB, ten times
# finer than a listener can hear, and the same as the MP3 level correction (encode.py).
LEVEL_TOLERANCE_DB = 0.1
# Audio at least this long gets a pilot pass (below: the passes are cheap anyway).
_PILOT_MIN_S = 120.0


def _pilot_step(x: np.ndarray, y: np.ndarray, curve, ceiling: float, sr: int, quick, target: float) -> float:
    """dB to add to the gain before the first full pass: the whole audio gained and limited on its
    SAMPLE peaks (no oversampling: about a third of a full pass, written into ``y``), its level
    measured, and the miss turned into a gain step with the secant's first slope (the share of
    energy the limiter left alone). The true-peak limiter takes a little more, so the full pass
    usually lands within LEVEL_TOLERANCE_DB; when it does not, the secant steps continue."""
    if len(x) < _PILOT_MIN_S * sr:
        return 0.0
    for s, e in _chunks(len(x)):
        y[s:e] = x[s:e].astype(np.float64) * curve(s, e)
    energy: list = []
    _limit(y, y, ceiling, sr, energy=energy, true_peak=False)
    if energy[1] <= 0:
        return 0.0
    return float((target - quick(y)) / max(0.2, 1.0 - energy[0] / energy[1]))


def finish(audio: np.ndarray, settings: DeliverySettings, *, spans=None,
           sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, LoudnessReport]:
    """Gain ``audio`` to the profile's target, limit to its true-peak ceiling, keep the room tone
    under the noise-floor limit, then verify; if the limiter pulled the level out of tolerance
    (LEVEL_TOLERANCE_DB), correct the gain (secant steps) and limit again, up to six passes. On long
    audio the first pass's gain already includes the limiter's loss, estimated by a sample-peak
    pilot pass (``_pilot_step``).

    ``spans`` (StitchResult.spans, seconds) marks the speech: with it only the speech is gained
    and the room tone between spans keeps its generated level (settings.room_tone_db), however
    large the gain. Without it the whole file is gained and, for acx, a downward expander pulls a
    room tone that rose above -63 dB back to -65 dB (speech above -45 dBFS is never touched)."""
    x = as_float_mono(audio)
    metric, target, ceiling = profile_target(settings)
    before = _measure(x, sample_rate)
    current = getattr(before, metric)
    if current <= -150.0:
        raise InputError("cannot normalize silent audio")
    quick = (lambda a: db(_rms(a))) if metric == "rms_db" else (lambda a: integrated_lufs(a, sample_rate))
    total_gain = target - current
    curve_of = lambda g: (_gain_curve(len(x), spans, g, min(0.0, g), sample_rate) if spans is not None
                          else (lambda s, e: undb(g)))
    max_red = floor_red = 0.0
    prev = None
    iterations = 0
    # Memory: the input and ONE output array; each pass rewrites y from x chunk by chunk, and the
    # limiter and the expander work on y in place.
    y = np.empty_like(x)
    total_gain += _pilot_step(x, y, curve_of(total_gain), ceiling, sample_rate, quick, target)
    for iterations in range(1, 7):
        curve = curve_of(total_gain)
        for s, e in _chunks(len(x)):
            y[s:e] = x[s:e].astype(np.float64) * curve(s, e)
        energy: list = []
        smallest, peak = _limit(y, y, ceiling, sample_rate, energy=energy)   # peak: for ``after``
        max_red = max(max_red, -db(smallest) if smallest < 1.0 else 0.0)
        floor_red = 0.0
        if settings.profile == "acx":
            nf = _noise_floor_db(y, sample_rate)
            if nf > -63.0:   # keep the room tone 3 dB under ACX's -60 dB floor
                floor_red = _tame_noise_floor(y, sample_rate, nf, -65.0)
                peak = None
        reached = quick(y)
        if abs(reached - target) <= LEVEL_TOLERANCE_DB:
            break
        # secant step: under heavy limiting 1 dB more gain yields less than 1 dB more level; the
        # first step's slope is the share of the energy the limiter left alone (what more gain raises)
        slope = max(0.2, 1.0 - energy[0] / energy[1]) if energy[1] > 0 else 1.0
        if prev is not None and abs(total_gain - prev[0]) > 1e-6:
            slope = min(1.0, max(0.2, (reached - prev[1]) / (total_gain - prev[0])))
        prev = (total_gain, reached)
        total_gain += (target - reached) / slope
    after = _measure(y, sample_rate, true_peak=peak)
    return y, LoudnessReport(settings.profile, {"metric": metric, "value": target}, ceiling, total_gain,
                             max_red, floor_red, iterations, before, after)
