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
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .. import faults
from ..atomic import atomic_path
from ..errors import InputError
from ..params import SAMPLE_RATE
from ..settings import PCM_BITS, DeliverySettings
from ..audiofile import as_float_mono, ffmpeg_bin, undb
from .profiles import measure_encoded, profile_limits, profile_target

__all__ = ["to_pcm", "export_chapter", "CHAPTER_FORMATS", "ffmpeg_pipe", "FFmpegError"]

CHAPTER_FORMATS = ("wav", "flac", "mp3")
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


def ffmpeg_pipe(cmd: list[str], chunks: Iterable, *, what: str = "encode", target: Path | str | None = None) -> None:
    """Run ``cmd`` (an ffmpeg command reading ``pipe:0``), write each bytes-like item of ``chunks`` to
    its stdin, and wait for it.

    ffmpeg's stderr is read by a thread while writing (never lost, never a deadlock). If ffmpeg
    exits early, the write that notices it fails with BrokenPipeError: that is not reported; ffmpeg's
    own error is: ``OSError`` with the errno its message names (ENOSPC, EDQUOT, EFBIG, EROFS,
    EACCES, EIO; ``filename`` = ``target``) or ``FFmpegError``. An exception raised by ``chunks``
    kills ffmpeg and propagates."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = bytearray()

    def drain() -> None:
        for block in iter(lambda: proc.stderr.read1(65536), b""):
            err.extend(block)
            if len(err) > 2 * _STDERR_KEEP:
                del err[:-_STDERR_KEEP]

    reader = threading.Thread(target=drain, name="ffmpeg-stderr", daemon=True)
    reader.start()
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
        raise
    reader.join()
    proc.stderr.close()
    if rc != 0 or broken:
        stderr = bytes(err[-_STDERR_KEEP:]).decode(errors="replace")
        if rc == 0:
            stderr += "\nffmpeg stopped reading its input"
        raise _ffmpeg_failure(what, rc, stderr, target)


_PCM_CHUNK = 1 << 20   # samples converted at a time


def to_pcm(audio: np.ndarray, bits: int = 24, seed: int = 0, *, gain_db: float = 0.0) -> tuple[bytearray, int]:
    """Float [-1, 1) to little-endian PCM bytes (a bytearray) and pydub sample width.

    24-bit is returned left-aligned in 32-bit words (sample width 4; the encoder is told 24 bits);
    16-bit gets TPDF dither (sum of two uniform +/-0.5 LSB) before rounding. Values are clamped
    to the integer range (the limiter keeps real peaks far below; this only guards rounding).
    ``gain_db`` multiplies the float32 samples by ``float32(undb(gain_db))`` first.
    Converted a chunk at a time into the output buffer (no float64 copy of the whole chapter);
    the dither's two uniform draws are the stream positions [0, n) and [n, 2n) of ``seed``."""
    if bits not in PCM_BITS:
        raise InputError(f"must be {' or '.join(map(str, PCM_BITS))}, got {bits!r}", field="delivery.pcm_bits")
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
                   sample_rate: int = SAMPLE_RATE, channels: int = 1) -> dict[str, Path]:
    """Encode one finished chapter to every format in ``settings.formats`` except m4b.

    Returns {format: path}; paths are ``<out_stem>.<format>``. ``tags`` (title, artist, album,
    ...) are written as container metadata (ID3 for MP3, Vorbis comments for FLAC).
    With ``correct_lossy_gain`` the MP3 is decoded and measured after encoding; if the encoder
    moved the profile's metric by more than 0.1 dB it is re-encoded once with that gain undone
    (never past the peak limit). ``channels`` 2 writes the mono programme on both channels (ACX's
    stereo option)."""
    settings = settings or DeliverySettings()
    out_stem = Path(out_stem)
    if settings.pcm_bits not in PCM_BITS:   # before any file is started
        raise InputError(f"must be {' or '.join(map(str, PCM_BITS))}, got {settings.pcm_bits!r}",
                         field="delivery.pcm_bits")
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
            _encode(audio, tmp, fmt, settings, tags, sample_rate, bits24, label=target, channels=channels)
            if fmt == "mp3" and correct_lossy_gain:
                delta = _lossy_gain_correction(tmp, settings)
                if delta:
                    _encode(audio, tmp, fmt, settings, tags, sample_rate, bits24, gain_db=delta, label=target,
                            channels=channels)
            faults.hit("encode")  # the encoded temp file is complete but not yet renamed into place
        out[fmt] = target
    return out


def _lossy_gain_correction(path: Path, settings: DeliverySettings) -> float:
    """dB to add so the decoded MP3 hits the profile target again (LAME at 192 kbps mono reads
    about 0.26 dB quieter than its input); 0 when within 0.1 dB or when the correction would
    push the peak past the profile's limit."""
    metric, target, _ = profile_target(settings)
    m = measure_encoded(path)   # remembered: the chapter's check_file measures this same file
    delta = target - getattr(m, metric)
    if abs(delta) <= 0.1:
        return 0.0
    limits = profile_limits(settings)
    for name in ("true_peak_dbtp", "sample_peak_dbfs"):
        if name in limits and getattr(m, name) + delta > limits[name]["max"] - 0.2:
            return 0.0
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
        cmd += ["-acodec", "libmp3lame", "-b:a", f"{settings.mp3_bitrate_kbps}k", *common, "-write_xing", "1"]
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
    data, _ = to_pcm(audio, settings.pcm_bits, gain_db=gain_db)
    ffmpeg_pipe(encode_command(path, fmt, settings, tags, sample_rate, bits24, channels), [data],
                what=f"{fmt} encode", target=label or path)
