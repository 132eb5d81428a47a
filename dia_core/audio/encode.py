"""Chapter encoding: float32 to PCM (TPDF dither) and WAV/FLAC/MP3 through pydub/ffmpeg.

Float32 is kept until here; ``to_pcm`` converts to 24-bit (default) or 16-bit with TPDF dither.
MP3 is CBR at ``settings.mp3_bitrate_kbps`` (192 for acx), 44.1 kHz mono. Every file is written
through ``atomic_path``: ffmpeg writes a hidden ``.tmp-<stem>-XXXX.<ext>`` beside the target, renamed
into place only after the encode succeeded; a killed export leaves at most such a temp file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydub import AudioSegment

from .. import faults
from ..atomic import atomic_path
from ..errors import InputError
from ..params import SAMPLE_RATE
from ..settings import DeliverySettings
from ..audiofile import as_float_mono, read_audio, undb
from .meter import measure
from .profiles import profile_limits, profile_target

__all__ = ["to_pcm", "export_chapter", "CHAPTER_FORMATS"]

CHAPTER_FORMATS = ("wav", "flac", "mp3")


_PCM_CHUNK = 1 << 20   # samples converted at a time


def to_pcm(audio: np.ndarray, bits: int = 24, seed: int = 0, *, gain_db: float = 0.0) -> tuple[bytearray, int]:
    """Float [-1, 1) to little-endian PCM bytes (a bytearray) and pydub sample width.

    24-bit is returned left-aligned in 32-bit words (sample width 4; the encoder is told 24 bits);
    16-bit gets TPDF dither (sum of two uniform +/-0.5 LSB) before rounding. Values are clamped
    to the integer range (the limiter keeps real peaks far below; this only guards rounding).
    ``gain_db`` multiplies the float32 samples by ``float32(undb(gain_db))`` first.
    Converted a chunk at a time into the output buffer (no float64 copy of the whole chapter);
    the dither's two uniform draws are the stream positions [0, n) and [n, 2n) of ``seed``."""
    if bits not in (16, 24):
        raise InputError(f"pcm_bits must be 16 or 24, got {bits}", field="delivery.pcm_bits")
    x = as_float_mono(audio)
    n = len(x)
    width = 2 if bits == 16 else 4
    buf = bytearray(n * width)
    q = np.frombuffer(buf, dtype="<i2" if bits == 16 else "<i4")
    if bits == 16:
        rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
        rng_b.bit_generator.advance(n)   # one 64-bit draw per uniform double
    for s in range(0, n, _PCM_CHUNK):
        c = x[s:s + _PCM_CHUNK]
        if gain_db:
            c = c * np.float32(undb(gain_db))
        c = c.astype(np.float64)
        if bits == 16:
            c = c * 32767.0 + (rng_a.random(len(c)) - rng_b.random(len(c)))
            q[s:s + len(c)] = np.clip(np.round(c), -32768, 32767)
        else:
            q[s:s + len(c)] = np.clip(np.round(c * 8388607.0), -8388608, 8388607).astype(np.int64) << 8
    return buf, width


def _out_path(out_stem: Path, fmt: str) -> Path:
    return out_stem.parent / f"{out_stem.name}.{fmt}"


def export_chapter(audio: np.ndarray, out_stem: str | Path, settings: DeliverySettings | None = None,
                   *, tags: dict | None = None, correct_lossy_gain: bool = True,
                   sample_rate: int = SAMPLE_RATE) -> dict[str, Path]:
    """Encode one finished chapter to every format in ``settings.formats`` except m4b.

    Returns {format: path}; paths are ``<out_stem>.<format>``. ``tags`` (title, artist, album,
    ...) are written as container metadata (ID3 for MP3, Vorbis comments for FLAC).
    With ``correct_lossy_gain`` the MP3 is decoded and measured after encoding; if the encoder
    moved the profile's metric by more than 0.1 dB it is re-encoded once with that gain undone
    (never past the peak limit)."""
    settings = settings or DeliverySettings()
    out_stem = Path(out_stem)
    fmts = [f for f in settings.formats if f != "m4b"]
    unknown = [f for f in fmts if f not in CHAPTER_FORMATS]
    if unknown:
        raise InputError(f"unknown export format(s) {unknown}", field="delivery.formats")
    audio = as_float_mono(audio)
    bits24 = settings.pcm_bits == 24
    out: dict[str, Path] = {}
    for fmt in fmts:
        target = _out_path(out_stem, fmt)
        # One temp file per format, renamed into place only once final: the trial MP3 measured for
        # the gain correction never carries the final name (a crash there publishes nothing).
        with atomic_path(target) as tmp:
            _encode(audio, tmp, fmt, settings, tags, sample_rate, bits24)
            if fmt == "mp3" and correct_lossy_gain:
                delta = _lossy_gain_correction(tmp, settings)
                if delta:
                    _encode(audio, tmp, fmt, settings, tags, sample_rate, bits24, gain_db=delta)
            faults.hit("encode")  # the encoded temp file is complete but not yet renamed into place
        out[fmt] = target
    return out


def _lossy_gain_correction(path: Path, settings: DeliverySettings) -> float:
    """dB to add so the decoded MP3 hits the profile target again (LAME at 192 kbps mono reads
    about 0.26 dB quieter than its input); 0 when within 0.1 dB or when the correction would
    push the peak past the profile's limit."""
    metric, target, _ = profile_target(settings)
    m = measure(read_audio(path))
    delta = target - getattr(m, metric)
    if abs(delta) <= 0.1:
        return 0.0
    limits = profile_limits(settings)
    for name in ("true_peak_dbtp", "sample_peak_dbfs"):
        if name in limits and getattr(m, name) + delta > limits[name]["max"] - 0.2:
            return 0.0
    return float(delta)


def _encode(audio, path: Path, fmt: str, settings: DeliverySettings, tags, sample_rate: int,
            bits24: bool, gain_db: float = 0.0) -> None:
    """Encode ``audio`` (times ``gain_db``) to ``path`` (a temp file of the caller's atomic_path;
    overwritten)."""
    data, width = to_pcm(audio, settings.pcm_bits, gain_db=gain_db)
    seg = AudioSegment(data=data, sample_width=width, frame_rate=sample_rate, channels=1)
    common = ["-ar", str(sample_rate), "-ac", "1"]
    if fmt == "wav":
        kw = dict(codec="pcm_s24le" if bits24 else "pcm_s16le", parameters=common)
    elif fmt == "flac":
        kw = dict(codec="flac", parameters=common + (["-sample_fmt", "s32", "-bits_per_raw_sample", "24"]
                                                     if bits24 else ["-sample_fmt", "s16"]))
    else:  # mp3: libmp3lame CBR
        kw = dict(codec="libmp3lame", bitrate=f"{settings.mp3_bitrate_kbps}k",
                  parameters=common + ["-write_xing", "1"])
    f = seg.export(str(path), format=fmt, tags=tags or None, **kw)
    f.close()
