"""Chapter encoding: float32 to PCM (TPDF dither) and WAV/FLAC/MP3 through ffmpeg.

Float32 is kept until here; ``to_pcm`` converts to 24-bit (default) or 16-bit with TPDF dither
(``settings.PCM_BITS``). MP3 is CBR at ``settings.mp3_bitrate_kbps`` (192 for acx), 44.1 kHz mono.
The PCM is piped to ffmpeg's stdin (``ffmpeg_pipe``; no temp copies elsewhere), and every file is
written through ``atomic_path``: ffmpeg writes a hidden ``.tmp-<stem>-XXXX.<ext>`` beside the target,
renamed into place only after the encode succeeded; a killed export leaves at most such a temp file.

When ffmpeg fails while audio is being piped to it (a full disk, a quota, a bad output path), the
error is ffmpeg's own, not the ``BrokenPipeError`` of the write that noticed it: ``ffmpeg_pipe``
raises ``OSError`` with the matching errno (ENOSPC for "No space left on device") or ``FFmpegError``
with the tail of ffmpeg's stderr.
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from .. import faults
from ..atomic import atomic_path
from ..errors import InputError
from ..params import SAMPLE_RATE
from ..settings import PCM_BITS, DeliverySettings
from ..audiofile import as_float_mono, db, decode_ffmpeg, ffmpeg_bin, undb
from .meter import integrated_lufs
from .profiles import decode_mp3, measure_encoded, profile_limits, profile_target

__all__ = ["to_pcm", "pcm_chunks", "export_chapter", "CHAPTER_FORMATS", "ffmpeg_pipe", "FFmpegError"]

CHAPTER_FORMATS = ("wav", "flac", "mp3")
LAME_QUALITY = 5       # libmp3lame's algorithm quality (0 best/slowest .. 9); see encode_command
_PIPE_CHUNK = 1 << 22   # bytes written to ffmpeg's stdin at a time
_STDERR_KEEP = 16_384   # bytes of ffmpeg's stderr kept for the error message

# ffmpeg's words for the OS errors a caller handles (strerror of the C library, as ffmpeg prints them)
_OS_ERRORS = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "File too large": errno.EFBIG,
    "Read-only file system": errno.EROFS,
    "Permission denied": errno.EACCES,
    "Input/output error": errno.EIO,
}


class FFmpegError(RuntimeError):
    """ffmpeg failed; ``stderr`` holds the tail of what it said."""

    def __init__(self, message: str, stderr: str = "", returncode: int | None = None):
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode


def _ffmpeg_failure(what: str, rc: int | None, stderr: str, target: Path | str | None) -> Exception:
    """The exception for a failed ffmpeg run: OSError(errno) when its stderr names an OS error
    (so a full disk reads "No space left on device: <file>"), else FFmpegError with its stderr."""
    tail = stderr.strip()[-600:]
    last = tail.splitlines()[-1].strip() if tail else ""
    code = next((c for words, c in _OS_ERRORS.items() if words in tail), None)
    if code is None and rc is not None and rc == -signal.SIGXFSZ:
        code = errno.EFBIG   # killed for writing past RLIMIT_FSIZE: that is what it means
    if code is not None:
        e = OSError(code, os.strerror(code), str(target) if target is not None else None)
        e.add_note(f"ffmpeg ({what}, exit {rc}): {tail}")
        e.ffmpeg_stderr = tail
        return e
    if rc is not None and rc < 0:
        try:
            detail = f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            detail = f"killed by signal {-rc}"
        detail += f" ({last})" if last else ""
    else:
        detail = last or (f"exit status {rc}" if rc is not None else "no message")
    return FFmpegError(f"ffmpeg {what} failed: {detail}", tail, rc)


def ffmpeg_pipe(cmd: list[str], chunks: Iterable, *, what: str = "encode", target: Path | str | None = None,
                capture: bool = False) -> bytes | None:
    """Run ``cmd`` (an ffmpeg command reading ``pipe:0``), write each bytes-like item of ``chunks`` to
    its stdin, and wait for it. With ``capture`` (a command writing ``pipe:1``) its stdout is read
    by a thread while writing and returned.

    ffmpeg's stderr is read by a thread while writing (never lost, never a deadlock). If ffmpeg
    exits early, the write that notices it fails with BrokenPipeError: that is not reported; ffmpeg's
    own error is: ``OSError`` with the errno its message names (ENOSPC, EDQUOT, EFBIG, EROFS,
    EACCES, EIO; ``filename`` = ``target``) or ``FFmpegError``. An exception raised by ``chunks``
    kills ffmpeg and propagates."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    err = bytearray()
    out: list[bytes] = []

    def drain() -> None:
        for block in iter(lambda: proc.stderr.read1(65536), b""):
            err.extend(block)
            if len(err) > 2 * _STDERR_KEEP:
                del err[:-_STDERR_KEEP]

    def collect() -> None:
        for block in iter(lambda: proc.stdout.read1(1 << 20), b""):
            out.append(block)

    reader = threading.Thread(target=drain, name="ffmpeg-stderr", daemon=True)
    reader.start()
    collector = threading.Thread(target=collect, name="ffmpeg-stdout", daemon=True) if capture else None
    if collector:
        collector.start()
    broken = False
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                for s in range(0, len(view), _PIPE_CHUNK):
                    proc.stdin.write(view[s:s + _PIPE_CHUNK])
        except (BrokenPipeError, ConnectionResetError):
            broken = True   # ffmpeg quit: its exit status and stderr say why
        try:
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            broken = True
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        reader.join(5)
        if collector:
            collector.join(5)
        raise
    reader.join()
    proc.stderr.close()
    if collector:
        collector.join()
        proc.stdout.close()
    if rc != 0 or broken:
        stderr = bytes(err[-_STDERR_KEEP:]).decode(errors="replace")
        if rc == 0:
            stderr += "\nffmpeg stopped reading its input"
        raise _ffmpeg_failure(what, rc, stderr, target)
    return b"".join(out) if capture else None


_PCM_CHUNK = 1 << 20   # samples converted at a time


def to_pcm(audio: np.ndarray, bits: int = 24, seed: int = 0, *, gain_db: float = 0.0) -> tuple[bytearray, int]:
    """Float [-1, 1) to little-endian PCM bytes (a bytearray) and pydub sample width.

    24-bit is returned left-aligned in 32-bit words (sample width 4; the encoder is told 24 bits);
    16-bit gets TPDF dither (sum of two uniform +/-0.5 LSB) before rounding. Values are clamped
    to the integer range (the limiter keeps real peaks far below; this only guards rounding).
    ``gain_db`` multiplies the float32 samples by ``float32(undb(gain_db))`` first.
    The bytes of ``pcm_chunks`` joined (an encode streams those instead of holding this buffer)."""
    check_pcm_bits(bits)
    x = as_float_mono(audio)
    width = 2 if bits == 16 else 4
    buf = bytearray(len(x) * width)
    at = 0
    for chunk in _pcm_blocks(x, bits, seed, gain_db):
        buf[at:at + len(chunk)] = chunk
        at += len(chunk)
    return buf, width


def check_pcm_bits(bits) -> None:
    if bits not in PCM_BITS:
        raise InputError(f"must be {' or '.join(map(str, PCM_BITS))}, got {bits!r}", field="delivery.pcm_bits")


def pcm_chunks(audio: np.ndarray, bits: int = 24, seed: int = 0, *, gain_db: float = 0.0):
    """``to_pcm``'s bytes, ``_PCM_CHUNK`` samples at a time (no float64 copy of the whole chapter,
    no whole PCM buffer); the dither's two uniform draws are the stream positions [0, n) and
    [n, 2n) of ``seed``."""
    check_pcm_bits(bits)
    return _pcm_blocks(as_float_mono(audio), bits, seed, gain_db)


def _pcm_blocks(x: np.ndarray, bits: int, seed: int, gain_db: float):
    n = len(x)
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
            yield np.clip(np.round(c), -32768, 32767).astype("<i2").tobytes()
        else:
            yield (np.clip(np.round(c * 8388607.0), -8388608, 8388607).astype(np.int64) << 8).astype("<i4").tobytes()


def _out_path(out_stem: Path, fmt: str) -> Path:
    return out_stem.parent / f"{out_stem.name}.{fmt}"


def export_chapter(audio: np.ndarray, out_stem: str | Path, settings: DeliverySettings | None = None,
                   *, tags: dict | None = None, correct_lossy_gain: bool = True,
                   sample_rate: int = SAMPLE_RATE, channels: int = 1) -> dict[str, Path]:
    """Encode one finished chapter to every format in ``settings.formats`` except m4b, the formats
    at the same time (one ffmpeg each, fed from its own thread).

    Returns {format: path}; paths are ``<out_stem>.<format>``. ``tags`` (title, artist, album,
    ...) are written as container metadata (ID3 for MP3, Vorbis comments for FLAC).
    With ``correct_lossy_gain`` the MP3 is encoded with the gain that undoes the encoder's level
    change, predicted from an excerpt (``_predicted_lossy_gain``), then decoded and measured; if it
    still misses the profile's target by more than 0.1 dB it is re-encoded once with the rest
    (never past the peak limit). ``channels`` 2 writes the mono programme on both channels (ACX's
    stereo option)."""
    settings = settings or DeliverySettings()
    out_stem = Path(out_stem)
    check_pcm_bits(settings.pcm_bits)   # before any file is started
    fmts = [f for f in settings.formats if f != "m4b"]
    unknown = [f for f in fmts if f not in CHAPTER_FORMATS]
    if unknown:
        raise InputError(f"unknown export format(s) {unknown}", field="delivery.formats")
    audio = as_float_mono(audio)
    bits24 = settings.pcm_bits == 24

    def export(fmt: str) -> Path:
        target = _out_path(out_stem, fmt)
        # One temp file per format, renamed into place only once final: an MP3 that is re-encoded
        # never carries the final name before (a crash there publishes nothing).
        with atomic_path(target) as tmp:
            enc = lambda gain: _encode(audio, tmp, fmt, settings, tags, sample_rate, bits24, gain_db=gain,
                                       label=target, channels=channels)
            if fmt == "mp3" and correct_lossy_gain:
                gain = _predicted_lossy_gain(audio, settings, tags, sample_rate, bits24, channels)
                enc(gain)
                rest = _lossy_gain_correction(tmp, settings, applied_db=gain)
                if rest is not None:
                    enc(gain + rest)
            else:
                enc(0.0)
            faults.hit("encode")  # the encoded temp file is complete but not yet renamed into place
        return target

    if len(fmts) <= 1:
        return {f: export(f) for f in fmts}
    with ThreadPoolExecutor(max_workers=len(fmts), thread_name_prefix="encode") as ex:
        futures = {f: ex.submit(export, f) for f in fmts}
        wait(futures.values())
    for f in futures.values():   # every encode has ended (its temp file is gone) before one raises
        f.result()
    return {f: futures[f].result() for f in fmts}


# The excerpt the MP3 encoder's level change is predicted from: windows spread evenly over the
# chapter, joined with short fades. LAME's change is mostly its low-pass (192 kbps mono: about
# -0.26 dB RMS on speech), a property of the voice's spectrum that an excerpt shares.
_EXCERPT_WINDOWS = 12
_EXCERPT_WINDOW_S = 2.5
_EXCERPT_FADE_S = 0.01


def _excerpt(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    win = int(_EXCERPT_WINDOW_S * sample_rate)
    if len(audio) <= 2 * _EXCERPT_WINDOWS * win:   # short: the whole of it
        return audio
    fade = int(_EXCERPT_FADE_S * sample_rate)
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
    parts = []
    for k in range(_EXCERPT_WINDOWS):
        start = int((k + 0.5) * len(audio) / _EXCERPT_WINDOWS) - win // 2
        w = audio[start:start + win].copy()
        w[:fade] *= ramp
        w[-fade:] *= ramp[::-1]
        parts.append(w)
    return np.concatenate(parts)


def _predicted_lossy_gain(audio: np.ndarray, settings: DeliverySettings, tags, sample_rate: int,
                          bits24: bool, channels: int) -> float:
    """dB that undoes the MP3 encoder's change of the profile's metric, measured on an excerpt
    encoded and decoded the same way (0 when it is within 0.1 dB)."""
    metric, _, _ = profile_target(settings)
    part = _excerpt(audio, sample_rate)
    with tempfile.TemporaryDirectory(prefix="dia-lossy-") as tmp:
        path = Path(tmp) / "excerpt.mp3"
        _encode(part, path, "mp3", settings, None, sample_rate, bits24, channels=channels)
        decoded = decode_mp3(path)   # None for the stereo option: ffmpeg averages the channels
        if decoded is None:
            decoded = decode_ffmpeg(path, sample_rate)
    if metric == "rms_db":   # energies, so the encoder's delay and padding do not count
        delta = db(float(np.sqrt(np.sum(np.square(decoded, dtype=np.float64)) /
                                 max(np.sum(np.square(part, dtype=np.float64)), 1e-30))))
    else:
        delta = integrated_lufs(decoded, sample_rate) - integrated_lufs(part, sample_rate)
    return 0.0 if abs(delta) <= 0.1 or not np.isfinite(delta) else float(-delta)


def _lossy_gain_correction(path: Path, settings: DeliverySettings, applied_db: float = 0.0) -> float | None:
    """What to re-encode the MP3 at ``path`` (encoded with ``applied_db``) with: None when it is
    within 0.1 dB of the profile's target and under the peak limit (keep it); else the dB to add:
    the rest of the correction, or minus ``applied_db`` when the applied gain pushed a peak within
    0.2 dB of the profile's limit (then the file is as the encoder made it, uncorrected)."""
    metric, target, _ = profile_target(settings)
    m = measure_encoded(path)   # remembered: the chapter's check_file measures this same file
    limits = profile_limits(settings)
    peaks = [n for n in ("true_peak_dbtp", "sample_peak_dbfs") if n in limits]
    if applied_db > 0 and any(getattr(m, n) > limits[n]["max"] - 0.2 for n in peaks):
        return -applied_db
    delta = target - getattr(m, metric)
    if abs(delta) <= 0.1:
        return None
    if any(getattr(m, n) + delta > limits[n]["max"] - 0.2 for n in peaks):
        return None
    return float(delta)


def encode_command(path: Path, fmt: str, settings: DeliverySettings, tags, sample_rate: int,
                   bits24: bool, channels: int = 1) -> list[str]:
    """The ffmpeg command that encodes ``to_pcm`` output (s32le for 24 bits, s16le for 16) read
    from stdin into ``path`` as ``fmt``."""
    cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "s32le" if bits24 else "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0"]
    common = ["-ar", str(sample_rate), "-ac", str(channels)]
    if channels == 2:   # the programme on both channels at full level (ffmpeg's upmix puts it 3 dB down)
        common = ["-af", "pan=stereo|c0=c0|c1=c0", *common]
    if fmt == "wav":
        cmd += ["-acodec", "pcm_s24le" if bits24 else "pcm_s16le", *common]
    elif fmt == "flac":
        cmd += ["-acodec", "flac", *common,
                *(["-sample_fmt", "s32", "-bits_per_raw_sample", "24"] if bits24 else ["-sample_fmt", "s16"])]
    else:  # mp3: libmp3lame CBR
        # LAME's -q 5 (its default before 3.98) instead of today's -q 3: 30 % less CPU, the largest
        # single cost of finishing; at 192 kbps mono speech the two decode to the same SNR (30.2 dB)
        # and level (docs/delivery-specs.md, "MP3 encoder quality").
        cmd += ["-acodec", "libmp3lame", "-b:a", f"{settings.mp3_bitrate_kbps}k", "-compression_level", str(LAME_QUALITY),
                *common, "-write_xing", "1"]
    for key, value in (tags or {}).items():
        cmd += ["-metadata", f"{key}={value}"]
    if fmt == "mp3" and tags:
        cmd += ["-id3v2_version", "4"]
    return cmd + ["-f", fmt, str(path)]


def _encode(audio, path: Path, fmt: str, settings: DeliverySettings, tags, sample_rate: int,
            bits24: bool, gain_db: float = 0.0, label: Path | None = None, channels: int = 1) -> None:
    """Encode ``audio`` (times ``gain_db``) to ``path`` (a temp file of the caller's atomic_path;
    overwritten). A failed encode raises ffmpeg's error (``ffmpeg_pipe``), naming ``label`` (the
    file being made; default ``path``)."""
    ffmpeg_pipe(encode_command(path, fmt, settings, tags, sample_rate, bits24, channels),
                pcm_chunks(audio, settings.pcm_bits, gain_db=gain_db),
                what=f"{fmt} encode", target=label or path)
