"""Delivery profiles: each profile's target and limits, and the check of finished audio or files.

Profiles (numbers: docs/delivery-specs.md): ``acx`` normalizes plain RMS to -20 dB (window
-23..-18) with a -3.5 dBTP ceiling before encoding (0.5 dB margin for MP3 overshoot; the check is
the -3 dBFS sample peak on the decoded MP3); ``podcast`` -16 LUFS, ceiling -1.5 dBTP (limit -1);
``apple`` (Apple Podcasts) -16 LUFS, limit -1 dBTP; ``spotify`` -14 LUFS, limit -1 dBTP;
``ebu-r128`` -23 LUFS, ceiling -1.5 dBTP (limit -1); ``custom`` ``target_lufs`` and
``true_peak_db`` (ceiling 0.5 dB under it). ``check_file`` decodes the encoded file (one copy).
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import InputError
from ..params import SAMPLE_RATE
from ..settings import ACX_MAX_MINUTES, DeliverySettings
from ..audiofile import decode_ffmpeg, ffmpeg_bin, probe
from .meter import Measurements, _chunks, _measure, measure

__all__ = ["ProfileReport", "profile_limits", "profile_target", "check_file", "check_audio", "compare"]

ENCODER_MARGIN_DB = 0.5    # ceiling margin for lossy-encoder overshoot
ACX_RMS_TARGET = -20.0
# Integrated-loudness profiles with a -1 dBTP limit (docs/delivery-specs.md#podcast-loudness)
LOUDNESS_TARGETS = {"podcast": -16.0, "apple": -16.0, "spotify": -14.0, "ebu-r128": -23.0}


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


def profile_target(settings: DeliverySettings) -> tuple[str, float, float]:
    """(metric, target value, pre-encode true-peak ceiling dBTP) for the settings' profile."""
    p = settings.profile
    if p == "acx":
        return "rms_db", ACX_RMS_TARGET, -3.0 - ENCODER_MARGIN_DB
    if p in LOUDNESS_TARGETS:
        return "integrated_lufs", LOUDNESS_TARGETS[p], -1.0 - ENCODER_MARGIN_DB
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


def compare(m: Measurements, limits: dict) -> list[str]:
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
    failures = compare(m, limits)
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
    if stream.get("codec_name") == "mp3" and int(stream.get("sample_rate") or 0) == sample_rate:
        mp3 = decode_mp3(path)
        if mp3 is not None:
            return mp3
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


def decode_mp3(path: Path) -> np.ndarray | None:
    """A mono MP3 decoded in process by libsndfile's mpg123 (soundfile), None when this
    libsndfile cannot. The same samples as ffmpeg's decoder within 1e-5 (relative) and the same length
    (both drop the encoder delay and padding its LAME header records), at a quarter of the CPU."""
    try:
        data, _rate = sf.read(str(path), dtype="float32")
    except Exception:   # a libsndfile without MP3 (before 1.1): ffmpeg decodes it
        return None
    if data.ndim != 1 or not all(np.isfinite(data[s:e]).all() for s, e in _chunks(len(data))):
        return None
    return data


def check_file(path: str | Path, settings: DeliverySettings) -> ProfileReport:
    """Decode the ENCODED file (``_decode_mono``: ffmpeg, or libsndfile for a mono MP3), measure it,
    and compare with the profile's limits.

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
    m = measure_encoded(path, info)
    limits = profile_limits(settings)
    failures = compare(m, limits) + _format_failures(settings, fmt)
    return ProfileReport(not failures, m, limits, failures, fmt, str(path))



# The export measures the MP3 it encoded (the lossy gain correction), and the chapter's check then
# measures the same file again: a decode and a full measurement (about a fifth of the finishing
# time). Both go through measure_encoded, which remembers the last few files' measurements by the
# file's identity (device, inode, size, modification time): an atomic rename keeps all four, any
# rewrite changes the time.
_MEASURED: dict[tuple, Measurements] = {}
_MEASURED_KEEP = 8


def measure_encoded(path: str | Path, info: dict | None = None) -> Measurements:
    """``measure`` of an encoded file's decoded audio (check_file's decode), remembered per file."""
    path = Path(path)
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _MEASURED:
        m = _measure(_decode_mono(path, info if info is not None else probe(path)), SAMPLE_RATE)
        if len(_MEASURED) >= _MEASURED_KEEP:
            _MEASURED.pop(next(iter(_MEASURED)))
        _MEASURED[key] = m
    return _MEASURED[key]
