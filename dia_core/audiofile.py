"""Audio files: the one reader (soundfile, else ffmpeg) into float32 mono, the float WAV writer, ffprobe.

A shared leaf: the Dia codec reads voice prompts with it, audio finishing reads and writes with it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from .atomic import atomic_path
from .errors import InputError
from .params import SAMPLE_RATE

__all__ = ["SAMPLE_RATE", "as_float_mono", "read_audio", "read_audio_native", "decode_ffmpeg", "write_wav_float",
           "ffmpeg_bin", "ffprobe_bin", "probe", "db", "undb"]


def ffmpeg_bin() -> str:
    exe = shutil.which("ffmpeg")
    if not exe:
        raise RuntimeError("ffmpeg not found on PATH; it is needed for tempo changes and export")
    return exe


def ffprobe_bin() -> str:
    exe = shutil.which("ffprobe")
    if not exe:
        raise RuntimeError("ffprobe not found on PATH")
    return exe


def db(x: float, floor: float = -200.0) -> float:
    """20*log10(x) for an amplitude ratio, clamped at ``floor`` dB (never -inf)."""
    x = float(x)
    return float(floor) if x <= 10 ** (floor / 20) else float(20.0 * np.log10(x))


def undb(d: float) -> float:
    return float(10.0 ** (d / 20.0))


def as_float_mono(audio, *, name: str = "audio") -> np.ndarray:
    """Check and convert an array to contiguous float32 mono. Stereo (n, 2) is averaged."""
    a = np.asarray(audio)
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] <= 8 else a.mean(axis=0)
    if a.ndim != 1:
        raise InputError(f"{name}: expected mono audio (1-D array), got shape {a.shape}")
    if a.dtype.kind in "iu":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.size and not np.isfinite(a).all():
        raise InputError(f"{name}: audio contains NaN or infinite samples")
    return a


def decode_ffmpeg(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any file ffmpeg reads to float32 mono at ``sample_rate`` (downmix + resample)."""
    path = Path(path)
    if not path.exists():
        raise InputError("audio file not found", file=path)
    streams = [s for s in probe(path).get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise InputError("no audio stream", file=path)
    channels = int(streams[0].get("channels") or 1)
    # Decode all channels and average them here: ffmpeg's own -ac 1 downmix adds +3 dB for stereo.
    cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-map", "0:a:0", "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    p = subprocess.run(cmd, capture_output=True)
    if p.returncode != 0:
        raise InputError(f"ffmpeg could not decode it: {p.stderr.decode(errors='replace').strip()[-300:]}",
                         file=path)
    a = np.frombuffer(p.stdout, dtype=np.float32)
    if channels > 1:
        a = a[: len(a) // channels * channels].reshape(-1, channels).mean(axis=1)
    return np.ascontiguousarray(a, dtype=np.float32)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read WAV/FLAC directly (soundfile) when already at ``sample_rate``, else decode with ffmpeg."""
    path = Path(path)
    if not path.exists():
        raise InputError("audio file not found", file=path)
    try:
        info = sf.info(str(path))
    except Exception:  # not a libsndfile format (mp3/m4b/...): let ffmpeg handle it
        info = None
    if info is not None and info.samplerate == sample_rate:
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], dtype=np.float32)
    return decode_ffmpeg(path, sample_rate)


def read_audio_native(path: str | Path) -> tuple[np.ndarray, int]:
    """Float32 mono samples at the file's own rate (soundfile), or at 44.1 kHz when only ffmpeg can
    decode it; for callers that resample themselves (the Dia codec)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("audio file not found", file=path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        data = data.mean(axis=1)
    except Exception as sf_error:   # not a libsndfile format (m4a, opus, ...): ffmpeg at 44.1 kHz
        if shutil.which("ffmpeg") is None:
            raise InputError(f"cannot read audio: {sf_error}", file=path) from None
        data, rate = decode_ffmpeg(path, SAMPLE_RATE), SAMPLE_RATE
    if data.size == 0:
        raise InputError("audio file has no samples", file=path)
    if not np.isfinite(data).all():
        raise InputError("audio contains NaN or infinite samples", file=path)
    return data, int(rate)


def write_wav_float(audio: np.ndarray, path: str | Path, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a 32-bit float WAV atomically (intermediate files; delivery goes through export)."""
    a = as_float_mono(audio)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), a, sample_rate, subtype="FLOAT", format="WAV")
    return Path(path)


def probe(path: str | Path) -> dict:
    """ffprobe -show_format -show_streams -show_chapters as a dict."""
    cmd = [ffprobe_bin(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
           "-show_chapters", str(path)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise InputError(f"ffprobe failed: {p.stderr.strip()[-300:]}", file=path)
    return json.loads(p.stdout)
