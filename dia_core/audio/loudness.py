"""Loudness measurement, normalization to a delivery profile, look-ahead limiting, and file checks.

Conventions (documented so the manifest numbers are unambiguous):

- Integrated loudness: ITU-R BS.1770-4 via pyloudnorm (K-weighting, 400 ms blocks, 75 % overlap,
  gates at -70 LKFS and -10 LU). LUFS.
- True peak: the signal is oversampled 4x with a polyphase low-pass (scipy ``resample_poly``,
  Kaiser-windowed FIR) and the largest absolute value is reported in dBTP.
- Sample peak: largest absolute sample, dBFS.
- RMS ("ACX RMS"): plain RMS of the whole file, ``20*log10(rms)`` with full scale = 1.0, i.e. a
  full-scale square wave reads 0 dB and a full-scale sine -3.01 dB. This is the convention of
  Audacity's ACX Check / Contrast tools (no +3 dB "AES" sine offset).
- Noise floor: RMS of the quietest 500 ms window (windows every 50 ms over the whole file), dB.
  In a stitched chapter the quietest window lies in the room tone (head, tail, pauses), so this is
  the room-tone level ACX checks. Digital silence would read -200 dB (we never produce it).
- Head/tail silence: time before the first / after the last 50 ms frame whose RMS exceeds
  ``max(noise_floor + 20 dB, -50 dBFS)`` capped at -40 dBFS: the room tone around the speech.

Profiles (see shared/docs/delivery-specs.md): ``acx`` normalizes plain RMS to -20 dB (window
-23..-18) with a -3.5 dBTP ceiling before encoding (0.5 dB margin for MP3 overshoot; the check is
the -3 dBFS sample peak on the decoded MP3); ``podcast`` -16 LUFS, ceiling -1.5 dBTP (limit -1);
``ebu-r128`` -23 LUFS, ceiling -1.5 dBTP (limit -1); ``custom`` ``target_lufs`` and
``true_peak_db`` (ceiling 0.5 dB under it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyloudnorm
from scipy.ndimage import minimum_filter1d
from scipy.signal import resample_poly

from ..delivery import DeliverySettings
from ..errors import InputError
from ..params import SAMPLE_RATE
from .io import as_float_mono, db, decode_ffmpeg, probe, undb

__all__ = ["Measurements", "LoudnessReport", "ProfileReport", "measure", "true_peak", "limit",
           "profile_limits", "profile_target", "finish", "check_file", "check_audio", "FLOOR_DB"]

FLOOR_DB = -200.0          # what silence reads instead of -inf (JSON has no infinities)
OVERSAMPLE = 4
ENCODER_MARGIN_DB = 0.5    # ceiling margin for lossy-encoder overshoot
NOISE_WINDOW_S = 0.5
ACX_RMS_TARGET = -20.0
ACX_MAX_MINUTES = 120


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


@dataclass(frozen=True)
class ProfileReport:
    passed: bool
    measurements: Measurements
    limits: dict
    failures: list[str] = field(default_factory=list)
    format: dict = field(default_factory=dict)    # ffprobe facts about the encoded file
    path: str | None = None

    def to_dict(self) -> dict:
        return {"passed": self.passed, "measurements": self.measurements.to_dict(), "limits": self.limits,
                "failures": list(self.failures), "format": dict(self.format), "path": self.path}


# ----------------------------------------------------------------------------------- measurement

def _oversampled_abs_chunks(x: np.ndarray, factor: int = OVERSAMPLE, chunk: int = 1 << 18):
    """Yield (start_sample, |oversampled|.reshape(n, factor)) chunk by chunk (bounded memory)."""
    pad = 64
    n = len(x)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        a, b = max(0, s - pad), min(n, e + pad)
        y = resample_poly(x[a:b].astype(np.float64), factor, 1)
        y = np.abs(y[(s - a) * factor:(e - a) * factor])
        yield s, y.reshape(e - s, factor)


def true_peak(audio: np.ndarray) -> float:
    """True peak in dBTP (4x oversampling)."""
    x = as_float_mono(audio)
    if len(x) == 0:
        return FLOOR_DB
    peak = 0.0
    for _, y in _oversampled_abs_chunks(x):
        peak = max(peak, float(y.max()))
    peak = max(peak, float(np.max(np.abs(x))))
    return db(peak, FLOOR_DB)


def _true_peak_envelope(x: np.ndarray) -> np.ndarray:
    """Per-sample max |signal| over the oversampled points from sample n-1 to n+1."""
    env = np.empty(len(x), dtype=np.float64)
    for s, y in _oversampled_abs_chunks(x):
        env[s:s + len(y)] = y.max(axis=1)
    env = np.maximum(env, np.abs(x))
    env[1:] = np.maximum(env[1:], env[:-1])
    return env


def _frame_rms(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """RMS of windows of ``win`` samples every ``hop`` samples (at least one window)."""
    if len(x) <= win:
        return np.array([np.sqrt(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0])
    c = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    starts = np.arange(0, len(x) - win + 1, hop)
    return np.sqrt(np.maximum(c[starts + win] - c[starts], 0.0) / win)


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


def integrated_lufs(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    if len(x) < int(0.4 * sr) + 1:
        return FLOOR_DB
    v = pyloudnorm.Meter(sr).integrated_loudness(x.astype(np.float64))
    return float(v) if np.isfinite(v) else FLOOR_DB


def measure(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Measurements:
    """All delivery measurements of float mono audio (see module docstring for definitions)."""
    x = as_float_mono(audio)
    sr = sample_rate
    if len(x) == 0:
        return Measurements(FLOOR_DB, FLOOR_DB, FLOOR_DB, FLOOR_DB, FLOOR_DB, 0.0, 0.0, 0.0)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    nf = _noise_floor_db(x, sr)
    head, tail = _head_tail_silence(x, sr, nf)
    return Measurements(
        integrated_lufs=integrated_lufs(x, sr),
        true_peak_dbtp=true_peak(x),
        sample_peak_dbfs=db(float(np.max(np.abs(x))), FLOOR_DB),
        rms_db=db(rms, FLOOR_DB),
        noise_floor_db=nf,
        duration_s=len(x) / sr,
        head_silence_s=head,
        tail_silence_s=tail,
    )


# ------------------------------------------------------------------------------------ profiles

def profile_target(settings: DeliverySettings) -> tuple[str, float, float]:
    """(metric, target value, pre-encode true-peak ceiling dBTP) for the settings' profile."""
    p = settings.profile
    if p == "acx":
        return "rms_db", ACX_RMS_TARGET, -3.0 - ENCODER_MARGIN_DB
    if p == "podcast":
        return "integrated_lufs", -16.0, -1.0 - ENCODER_MARGIN_DB
    if p == "ebu-r128":
        return "integrated_lufs", -23.0, -1.0 - ENCODER_MARGIN_DB
    if p == "custom":
        if settings.target_lufs is None:
            raise InputError("the custom profile needs target_lufs", field="delivery.target_lufs")
        tp = -1.0 if settings.true_peak_db is None else float(settings.true_peak_db)
        return "integrated_lufs", float(settings.target_lufs), tp - ENCODER_MARGIN_DB
    raise InputError(f"unknown delivery profile {p!r}", field="delivery.profile")


def profile_limits(settings: DeliverySettings) -> dict:
    """Limits a finished file must meet: {measurement: {"min": x, "max": y}} (either may be absent)."""
    p = settings.profile
    if p == "acx":
        return {
            "rms_db": {"min": -23.0, "max": -18.0},
            "sample_peak_dbfs": {"max": -3.0},
            "noise_floor_db": {"max": -60.0},
            "duration_s": {"max": ACX_MAX_MINUTES * 60.0},
            "head_silence_s": {"min": 0.5, "max": 1.0},
            "tail_silence_s": {"min": 1.0, "max": 5.0},
        }
    metric, target, _ = profile_target(settings)
    tp = -1.0
    if p == "custom" and settings.true_peak_db is not None:
        tp = float(settings.true_peak_db)
    return {"integrated_lufs": {"min": target - 1.0, "max": target + 1.0}, "true_peak_dbtp": {"max": tp}}


def _compare(m: Measurements, limits: dict) -> list[str]:
    failures = []
    values = asdict(m)
    for name, lim in limits.items():
        v = values.get(name)
        if v is None:
            continue
        if "min" in lim and v < lim["min"] - 1e-9:
            failures.append(f"{name} {v:.2f} below {lim['min']:g}")
        if "max" in lim and v > lim["max"] + 1e-9:
            failures.append(f"{name} {v:.2f} above {lim['max']:g}")
    return failures


def _format_failures(settings: DeliverySettings, fmt: dict) -> list[str]:
    if settings.profile != "acx" or not fmt:
        return []
    out = []
    if fmt.get("codec") != "mp3":
        out.append(f"format: acx needs MP3, got {fmt.get('codec')}")
    if fmt.get("sample_rate") != 44100:
        out.append(f"sample_rate {fmt.get('sample_rate')} is not 44100")
    if fmt.get("channels") != 1:
        out.append(f"channels {fmt.get('channels')}: acx files must all be mono")
    br = fmt.get("bit_rate")
    if fmt.get("codec") == "mp3" and (br is None or br < 192000):
        out.append(f"bit_rate {br} below 192 kbps")
    return out


def check_audio(audio: np.ndarray, settings: DeliverySettings) -> ProfileReport:
    """Check float audio against the profile (before encoding; check_file is the real gate)."""
    m = measure(audio)
    limits = profile_limits(settings)
    failures = _compare(m, limits)
    return ProfileReport(not failures, m, limits, failures)


def check_file(path: str | Path, settings: DeliverySettings) -> ProfileReport:
    """Decode the ENCODED file with ffmpeg, measure it, and compare with the profile's limits.

    For acx it also checks the container facts: MP3, 44.1 kHz, mono, >= 192 kbps.
    """
    path = Path(path)
    info = probe(path)
    stream = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), {})
    fmt = {
        "codec": stream.get("codec_name"),
        "sample_rate": int(stream["sample_rate"]) if stream.get("sample_rate") else None,
        "channels": stream.get("channels"),
        "bit_rate": int(stream["bit_rate"]) if stream.get("bit_rate") else None,
    }
    m = measure(decode_ffmpeg(path))
    limits = profile_limits(settings)
    failures = _compare(m, limits) + _format_failures(settings, fmt)
    return ProfileReport(not failures, m, limits, failures, fmt, str(path))


# ----------------------------------------------------------------------------------- processing

def limiter_gain(audio: np.ndarray, ceiling_dbtp: float, *, sample_rate: int = SAMPLE_RATE,
                 lookahead_ms: float = 5.0, hold_ms: float = 40.0) -> np.ndarray:
    """Smoothed gain curve (<= 1) of the look-ahead true-peak limiter, one value per sample.

    Gain needed per sample g[n] = min(1, ceiling / true-peak envelope[n]); a sliding minimum over
    [n - hold - W + 1, n + W - 1] followed by a W-sample moving average (W = look-ahead) gives a
    smooth gain (attack and release ramps of W samples, held for ``hold_ms``, slope at most 1/W per
    sample) that is never above g at any sample: peaks are reduced before they arrive and nothing
    is clipped."""
    x = as_float_mono(audio)
    if len(x) == 0:
        return np.ones(0)
    c = undb(ceiling_dbtp)
    env = _true_peak_envelope(x)
    if env.max() <= c:
        return np.ones(len(x))
    g = np.minimum(1.0, c / np.maximum(env, 1e-12))
    w = max(1, int(lookahead_ms * sample_rate / 1000))
    hold = int(hold_ms * sample_rate / 1000)
    size = hold + 2 * w - 1
    origin = (hold + w - 1) - size // 2   # positive origin shifts the window to earlier samples
    gmin = minimum_filter1d(g, size=size, mode="nearest", origin=origin)
    padded = np.concatenate([np.full(w - 1, gmin[0]), gmin])
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    return np.minimum((csum[w:] - csum[:-w]) / w, 1.0)   # mean of gmin[n-w+1 .. n]


def limit(audio: np.ndarray, ceiling_dbtp: float, *, sample_rate: int = SAMPLE_RATE,
          lookahead_ms: float = 5.0, hold_ms: float = 40.0) -> tuple[np.ndarray, float]:
    """Look-ahead true-peak limiter (see ``limiter_gain``). Returns (audio, max gain reduction dB).

    Audio already under the ceiling is returned unchanged. A last tiny static trim covers the
    interpolation between oversampled points after the gain is applied."""
    x = as_float_mono(audio)
    gain = limiter_gain(x, ceiling_dbtp, sample_rate=sample_rate, lookahead_ms=lookahead_ms, hold_ms=hold_ms)
    if len(x) == 0 or gain.min() >= 1.0:
        return x, 0.0
    c = undb(ceiling_dbtp)
    y = x.astype(np.float64) * gain
    for _ in range(3):
        tp = undb(true_peak(y))
        if tp <= c:
            break
        y *= (c / tp) * 0.9995
    return y.astype(np.float32), -db(float(gain.min()))


def _tame_noise_floor(x: np.ndarray, sr: int, floor_db: float, target_db: float) -> tuple[np.ndarray, float]:
    """Downward expander for the room tone: frames quieter than ``floor + 10 dB`` (and below
    -45 dBFS, so speech is never touched) are attenuated so the noise floor lands at ``target_db``.
    The gain is smoothed over 50 ms."""
    reduction = floor_db - target_db
    if reduction <= 0:
        return x, 0.0
    hop = int(0.01 * sr)
    win = int(0.05 * sr)
    pad = np.pad(x.astype(np.float64), (win // 2, win // 2), mode="edge")
    rms = _frame_rms(pad, win, hop)
    quiet = rms < undb(min(floor_db + 10.0, -45.0))
    gain_frames = np.where(quiet, undb(-reduction), 1.0)
    # only keep the reduction where a frame and its neighbours are quiet (protect speech edges)
    gain_frames = np.maximum.reduce([gain_frames, np.roll(gain_frames, 1), np.roll(gain_frames, -1)])
    gains = np.repeat(gain_frames, hop)[:len(x)]
    if len(gains) < len(x):
        gains = np.concatenate([gains, np.full(len(x) - len(gains), gains[-1] if len(gains) else 1.0)])
    k = max(1, int(0.05 * sr))
    gains = np.convolve(gains, np.ones(k) / k, mode="same")
    return (x * gains).astype(np.float32), reduction


def _gain_curve(n: int, spans, speech_db: float, room_db: float, sr: int, ramp_s: float = 0.01) -> np.ndarray:
    """Per-sample linear gain: ``speech_db`` inside the spans, ``room_db`` outside, 10 ms ramps."""
    mask = np.zeros(n)
    for a, b in spans:
        mask[max(0, int(round(a * sr))):min(n, int(round(b * sr)))] = 1.0
    r = max(1, int(ramp_s * sr))
    mask = np.convolve(mask, np.ones(r) / r, mode="same")
    return undb(room_db) + (undb(speech_db) - undb(room_db)) * mask


def finish(audio: np.ndarray, settings: DeliverySettings, *, spans=None,
           sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, LoudnessReport]:
    """Gain ``audio`` to the profile's target, limit to its true-peak ceiling, keep the room tone
    under the noise-floor limit, then verify; if the limiter pulled the level out of tolerance,
    correct the gain (secant steps) and limit again, up to six passes.

    ``spans`` (StitchResult.spans, seconds) marks the speech: with it only the speech is gained
    and the room tone between spans keeps its generated level (settings.room_tone_db), however
    large the gain. Without it the whole file is gained and, for acx, a downward expander pulls a
    room tone that rose above -63 dB back to -65 dB (speech above -45 dBFS is never touched)."""
    x = as_float_mono(audio)
    metric, target, ceiling = profile_target(settings)
    before = measure(x, sample_rate)
    current = getattr(before, metric)
    if current <= -150.0:
        raise InputError("cannot normalize silent audio")
    quick = (lambda a: db(float(np.sqrt(np.mean(np.square(a, dtype=np.float64)))))) if metric == "rms_db" \
        else (lambda a: integrated_lufs(a, sample_rate))
    total_gain = target - current
    max_red = floor_red = 0.0
    prev = None
    iterations = 0
    for iterations in range(1, 7):
        if spans is not None:
            y = (x.astype(np.float64) * _gain_curve(len(x), spans, total_gain, min(0.0, total_gain),
                                                    sample_rate)).astype(np.float32)
        else:
            y = (x.astype(np.float64) * undb(total_gain)).astype(np.float32)
        y, red = limit(y, ceiling, sample_rate=sample_rate)
        max_red = max(max_red, red)
        floor_red = 0.0
        if settings.profile == "acx":
            nf = _noise_floor_db(y, sample_rate)
            if nf > -63.0:   # keep the room tone 3 dB under ACX's -60 dB floor
                y, floor_red = _tame_noise_floor(y, sample_rate, nf, -65.0)
        reached = quick(y)
        if abs(reached - target) <= 0.05:
            break
        # secant step: under heavy limiting 1 dB more gain yields less than 1 dB more level
        slope = 1.0
        if prev is not None and abs(total_gain - prev[0]) > 1e-6:
            slope = min(1.0, max(0.2, (reached - prev[1]) / (total_gain - prev[0])))
        prev = (total_gain, reached)
        total_gain += (target - reached) / slope
    after = measure(y, sample_rate)
    return y, LoudnessReport(settings.profile, {"metric": metric, "value": target}, ceiling, total_gain,
                             max_red, floor_red, iterations, before, after)
