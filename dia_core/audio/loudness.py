"""Loudness measurement, normalization to a delivery profile, look-ahead limiting, and file checks.

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

Profiles (see shared/docs/delivery-specs.md): ``acx`` normalizes plain RMS to -20 dB (window
-23..-18) with a -3.5 dBTP ceiling before encoding (0.5 dB margin for MP3 overshoot; the check is
the -3 dBFS sample peak on the decoded MP3); ``podcast`` -16 LUFS, ceiling -1.5 dBTP (limit -1);
``ebu-r128`` -23 LUFS, ceiling -1.5 dBTP (limit -1); ``custom`` ``target_lufs`` and
``true_peak_db`` (ceiling 0.5 dB under it).

Memory: measurement, gain, limiter and expander work on float32 audio in chunks of ``CHUNK``
samples (float64 only inside a chunk), with the neighbours a windowed step needs read across chunk
edges, so the results are the whole-array formulas' to float rounding. ``finish`` holds its input
and one output array; ``check_file`` one decoded copy.
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyloudnorm
from scipy.ndimage import minimum_filter1d
from scipy.signal import lfilter, resample_poly

from ..delivery import DeliverySettings
from ..errors import InputError
from ..params import SAMPLE_RATE
from .io import as_float_mono, db, decode_ffmpeg, ffmpeg_bin, probe, undb

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
    return resample_poly(x[a:b].astype(np.float64), factor, 1)[(s - a) * factor:(e - a) * factor]


def _true_peak_linear(x: np.ndarray) -> float:
    peak = _abs_max(x)
    for s, e in _chunks(len(x), CHUNK // OVERSAMPLE):
        y = _oversampled(x, s, e)
        peak = max(peak, float(y.max()), -float(y.min()))
    return peak


def true_peak(audio: np.ndarray) -> float:
    """True peak in dBTP (4x oversampling)."""
    x = as_float_mono(audio)
    if len(x) == 0:
        return FLOOR_DB
    return db(_true_peak_linear(x), FLOOR_DB)


def _true_peak_envelope(x: np.ndarray, s: int = 0, e: int | None = None) -> np.ndarray:
    """Per-sample max |signal| over the oversampled points from sample n-1 to n+1, n in [s, e)."""
    e = len(x) if e is None else e
    a = max(0, s - 1)
    y = np.abs(_oversampled(x, a, e)).reshape(e - a, OVERSAMPLE)
    env = np.abs(x[a:e]).astype(np.float64)
    for k in range(OVERSAMPLE):
        np.maximum(env, y[:, k], out=env)
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
def _k_weighting(sr: int) -> tuple:
    """pyloudnorm's BS.1770 K-weighting stages at ``sr`` (high shelf, then high pass), in its order,
    as (b, a, passband gain)."""
    return tuple((f.b, f.a, f.passband_gain) for f in pyloudnorm.Meter(sr)._filters.values())


def integrated_lufs(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """BS.1770-4 integrated loudness of mono ``x``: ``pyloudnorm.Meter(sr).integrated_loudness``,
    computed a chunk at a time. The K-weighting filters run through ``lfilter`` with their state
    carried from chunk to chunk (the same output as one call); each 400 ms block's energy is summed
    from the chunks it spans; then pyloudnorm's gating: blocks every 100 ms (its bounds formula),
    absolute gate -70 LKFS, relative gate -10 LU."""
    n = len(x)
    if n < int(0.4 * sr) + 1:
        return FLOOR_DB
    t_g, step = 0.4, 1.0 - 0.75
    blocks = int(np.round((n / sr - t_g) / (t_g * step))) + 1
    j = np.arange(blocks)
    lo = np.minimum((t_g * (j * step) * sr).astype(np.int64), n)
    hi = np.minimum((t_g * (j * step + 1) * sr).astype(np.int64), n)
    z = np.zeros(blocks)
    stages = _k_weighting(sr)
    zi = [np.zeros(max(len(b), len(a)) - 1) for b, a, _ in stages]
    for s, e in _chunks(n):
        y = x[s:e].astype(np.float64)
        for k, (b, a, gain) in enumerate(stages):
            y, zi[k] = lfilter(b, a, y, zi=zi[k])
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


def _decode_mono(path: Path, info: dict, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The audio of a mono file as float32 at ``sample_rate``, decoded by ffmpeg as in
    ``io.decode_ffmpeg``, but read straight into one array sized from the probed duration
    (decode_ffmpeg collects ffmpeg's output and joins it: two copies of the chapter at once).
    ``info`` is ``probe(path)``. Files with more channels go through decode_ffmpeg (it averages
    them)."""
    stream = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), None)
    if stream is None or int(stream.get("channels") or 1) != 1:
        return decode_ffmpeg(path, sample_rate)
    duration = float(info.get("format", {}).get("duration") or stream.get("duration") or 10.0)
    buf = np.empty(int(duration * sample_rate) + sample_rate, dtype=np.float32)
    cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-map", "0:a:0", "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            got = 0   # bytes
            while True:
                if got == buf.nbytes:   # longer than probed: grow (rare)
                    buf = np.concatenate([buf, np.empty(len(buf) // 4 + sample_rate, dtype=np.float32)])
                k = proc.stdout.readinto(memoryview(buf).cast("B")[got:])
                if not k:
                    break
                got += k
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc != 0:
            err.seek(0)
            raise InputError(f"ffmpeg could not decode it: {err.read().decode(errors='replace').strip()[-300:]}",
                             file=path)
    a = buf[:got // 4]
    if not all(np.isfinite(a[s:e]).all() for s, e in _chunks(len(a))):
        raise InputError("decoded audio contains NaN or infinite samples", file=path)
    return a


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
    m = _measure(_decode_mono(path, info), SAMPLE_RATE)
    limits = profile_limits(settings)
    failures = _compare(m, limits) + _format_failures(settings, fmt)
    return ProfileReport(not failures, m, limits, failures, fmt, str(path))


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

    @classmethod
    def of(cls, ceiling_dbtp: float, sample_rate: int, lookahead_ms: float, hold_ms: float) -> "_Limiter":
        return cls(undb(ceiling_dbtp), max(1, int(lookahead_ms * sample_rate / 1000)),
                   int(hold_ms * sample_rate / 1000))

    @property
    def margin(self) -> int:   # input samples a chunk's gain reads beyond its chunk, each side
        return 2 * self.w + self.hold + 1 + _TP_PAD

    @property
    def chunk(self) -> int:    # a quarter of CHUNK: the 4x oversampled envelope is the big temporary
        return max(CHUNK // OVERSAMPLE, self.margin)

    def gain(self, x: np.ndarray, s: int, e: int) -> tuple[np.ndarray, float]:
        """Gain for samples [s, e) of x (float64), from x[s - margin : e + margin] only, and the
        largest true-peak envelope value over [s, e) (the chunks' largest is x's true peak)."""
        w, hold, n = self.w, self.hold, len(x)
        # gain[m] = mean(gmin[m-w+1 .. m]); gmin[k] = min(g[k-hold-w+1 .. k+w-1])
        a = max(0, s - (w - 1) - (hold + w - 1))
        b = min(n, e + w - 1)
        env = _true_peak_envelope(x, a, b)
        peak = float(env[s - a:e - a].max())
        g = np.minimum(1.0, self.ceiling / np.maximum(env, 1e-12))
        size = hold + 2 * w - 1
        origin = (hold + w - 1) - size // 2   # positive origin shifts the window to earlier samples
        gmin = minimum_filter1d(g, size=size, mode="nearest", origin=origin)   # right where a, b are
        k0 = s - (w - 1)                                                       # 0, n or far from s, e
        seg = gmin[k0 - a:e - a] if k0 >= 0 else np.concatenate([np.full(-k0, gmin[0]), gmin[:e]])
        csum = np.concatenate([[0.0], np.cumsum(seg)])
        return np.minimum((csum[w:] - csum[:-w]) / w, 1.0), peak


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
           lookahead_ms: float = 5.0, hold_ms: float = 40.0) -> tuple[float, float | None]:
    """``out = x * limiter gain`` chunk by chunk (``out`` may be ``x``: in place), then the final
    static trim of ``limit``. Returns the smallest gain applied (1.0: under the ceiling, out = x)
    and out's true peak (linear; None in the unlikely case the trims leave it unmeasured)."""
    lim = _Limiter.of(ceiling_dbtp, sample_rate, lookahead_ms, hold_ms)
    smallest, peak = [1.0], [0.0]

    def chunk(s, e):
        g, p = lim.gain(x, s, e)
        low = float(g.min())
        smallest[0], peak[0] = min(smallest[0], low), max(peak[0], p)
        return x[s:e] if low >= 1.0 else (x[s:e].astype(np.float64) * g).astype(np.float32)

    _map_chunks(chunk, len(x), out, chunk=lim.chunk, margin=lim.margin)
    if smallest[0] >= 1.0:
        return 1.0, peak[0]
    for _ in range(3):
        tp = _true_peak_linear(out)
        if tp <= lim.ceiling:
            return smallest[0], tp
        for s, e in _chunks(len(out)):
            out[s:e] *= np.float32((lim.ceiling / tp) * 0.9995)
    return smallest[0], None


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
    before = _measure(x, sample_rate)
    current = getattr(before, metric)
    if current <= -150.0:
        raise InputError("cannot normalize silent audio")
    quick = (lambda a: db(_rms(a))) if metric == "rms_db" else (lambda a: integrated_lufs(a, sample_rate))
    total_gain = target - current
    max_red = floor_red = 0.0
    prev = None
    iterations = 0
    # Memory: the input and ONE output array; each pass rewrites y from x chunk by chunk, and the
    # limiter and the expander work on y in place.
    y = np.empty_like(x)
    for iterations in range(1, 7):
        curve = _gain_curve(len(x), spans, total_gain, min(0.0, total_gain), sample_rate) \
            if spans is not None else None
        for s, e in _chunks(len(x)):
            y[s:e] = x[s:e].astype(np.float64) * (curve(s, e) if curve else undb(total_gain))
        smallest, peak = _limit(y, y, ceiling, sample_rate)   # peak: y's true peak, for ``after``
        max_red = max(max_red, -db(smallest) if smallest < 1.0 else 0.0)
        floor_red = 0.0
        if settings.profile == "acx":
            nf = _noise_floor_db(y, sample_rate)
            if nf > -63.0:   # keep the room tone 3 dB under ACX's -60 dB floor
                floor_red = _tame_noise_floor(y, sample_rate, nf, -65.0)
                peak = None
        reached = quick(y)
        if abs(reached - target) <= 0.05:
            break
        # secant step: under heavy limiting 1 dB more gain yields less than 1 dB more level
        slope = 1.0
        if prev is not None and abs(total_gain - prev[0]) > 1e-6:
            slope = min(1.0, max(0.2, (reached - prev[1]) / (total_gain - prev[0])))
        prev = (total_gain, reached)
        total_gain += (target - reached) / slope
    after = _measure(y, sample_rate, true_peak=peak)
    return y, LoudnessReport(settings.profile, {"metric": metric, "value": target}, ceiling, total_gain,
                             max_red, floor_red, iterations, before, after)
