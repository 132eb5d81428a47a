"""Export: per-chapter WAV/FLAC/MP3 through pydub/ffmpeg, whole-book M4B with chapters via ffmpeg.

Float32 is kept until here; ``to_pcm`` converts to 24-bit (default) or 16-bit with TPDF dither.
MP3 is CBR at ``settings.mp3_bitrate_kbps`` (192 for acx), 44.1 kHz mono.

Every file is written through ``atomic_path``: ffmpeg writes a hidden ``.tmp-<stem>-XXXX.<ext>``
beside the target and it is renamed into place only after the encode succeeded and was fsynced.
A killed export (kill -9, power loss) leaves at most such a temp file, never a file with the final
name; ``clean_temps(dir)`` removes the leftovers and the pipeline calls it at the start of a run.
"""
from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from pydub import AudioSegment

from .. import faults
from ..atomic import TMP_PREFIX, atomic_path
from ..delivery import DeliverySettings
from ..errors import InputError
from ..params import SAMPLE_RATE
from .io import as_float_mono, ffmpeg_bin, read_audio, undb

__all__ = ["to_pcm", "export_chapter", "export_m4b", "ffmetadata", "escape_ffmetadata", "clean_temps",
           "CHAPTER_FORMATS"]

CHAPTER_FORMATS = ("wav", "flac", "mp3")


def to_pcm(audio: np.ndarray, bits: int = 24, seed: int = 0) -> tuple[bytes, int]:
    """Float [-1, 1) to little-endian PCM bytes and pydub sample width.

    24-bit is returned left-aligned in 32-bit words (sample width 4; the encoder is told 24 bits);
    16-bit gets TPDF dither (sum of two uniform +/-0.5 LSB) before rounding. Values are clamped
    to the integer range (the limiter keeps real peaks far below; this only guards rounding)."""
    x = as_float_mono(audio).astype(np.float64)
    if bits == 16:
        scale = 32767.0
        rng = np.random.default_rng(seed)
        x = x * scale + (rng.random(len(x)) - rng.random(len(x)))
        return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes(), 2
    if bits == 24:
        q = np.clip(np.round(x * 8388607.0), -8388608, 8388607).astype(np.int64)
        return (q << 8).astype("<i4").tobytes(), 4
    raise InputError(f"pcm_bits must be 16 or 24, got {bits}", field="delivery.pcm_bits")


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
                    _encode(audio * np.float32(undb(delta)), tmp, fmt, settings, tags, sample_rate, bits24)
            faults.hit("encode")  # the encoded temp file is complete but not yet renamed into place
        out[fmt] = target
    return out


def _lossy_gain_correction(path: Path, settings: DeliverySettings) -> float:
    """dB to add so the decoded MP3 hits the profile target again (LAME at 192 kbps mono reads
    about 0.26 dB quieter than its input); 0 when within 0.1 dB or when the correction would
    push the peak past the profile's limit."""
    from . import loudness
    metric, target, _ = loudness.profile_target(settings)
    m = loudness.measure(read_audio(path))
    delta = target - getattr(m, metric)
    if abs(delta) <= 0.1:
        return 0.0
    limits = loudness.profile_limits(settings)
    for name in ("true_peak_dbtp", "sample_peak_dbfs"):
        if name in limits and getattr(m, name) + delta > limits[name]["max"] - 0.2:
            return 0.0
    return float(delta)


def _encode(audio, path: Path, fmt: str, settings: DeliverySettings, tags, sample_rate: int,
            bits24: bool) -> None:
    """Encode to ``path`` (a temp file of the caller's atomic_path; overwritten)."""
    data, width = to_pcm(audio, settings.pcm_bits)
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


def escape_ffmetadata(value) -> str:
    """Escape ``= ; # \\`` and newlines with a backslash (ffmpeg FFMETADATA syntax)."""
    s = str(value)
    for ch in ("\\", "=", ";", "#", "\n"):
        s = s.replace(ch, "\\" + ch)
    return s


def ffmetadata(tags: dict, chapters: list[tuple[int, int, str]]) -> str:
    """FFMETADATA1 text: global tags, then one [CHAPTER] (TIMEBASE=1/1000) per (start_ms, end_ms, title)."""
    lines = [";FFMETADATA1"]
    for k, v in tags.items():
        if v is not None and v != "":
            lines.append(f"{k}={escape_ffmetadata(v)}")
    for start, end, title in chapters:
        lines += ["", "[CHAPTER]", "TIMEBASE=1/1000", f"START={int(start)}", f"END={int(end)}",
                  f"title={escape_ffmetadata(title)}"]
    return "\n".join(lines) + "\n"


def _book_tags(tags: dict) -> dict:
    title = tags.get("title")
    return {
        "title": title,
        "album": title,
        "artist": tags.get("author"),
        "album_artist": tags.get("author"),
        "composer": tags.get("narrator"),
        "genre": tags.get("genre") or "Audiobook",
        "comment": tags.get("description"),
        "description": tags.get("description"),
    }


def export_m4b(chapter_audio, chapter_titles, out_path: str | Path, tags: dict | None = None,
               cover: str | Path | None = None, *, bitrate_kbps: int = 64,
               sample_rate: int = SAMPLE_RATE) -> tuple[Path, list[tuple[int, int]]]:
    """Whole-book M4B (AAC mono) with one chapter marker per chapter and book tags.

    ``chapter_audio`` is a list of paths (any format ffmpeg decodes) or float arrays; they are
    decoded one at a time and streamed to ffmpeg as float32, so memory stays one chapter.
    Chapter boundaries are the exact cumulative sample counts, in ms. Returns (path, [(start_ms,
    end_ms)]). ``tags``: title, author, narrator, genre (default "Audiobook"), description."""
    chapter_audio = list(chapter_audio)
    titles = list(chapter_titles)
    if len(titles) != len(chapter_audio) or not titles:
        raise InputError(f"{len(chapter_audio)} chapters but {len(titles)} titles")
    if cover is not None and not Path(cover).exists():
        raise InputError("cover image not found", file=cover)
    out_path = Path(out_path)

    def load(item):
        return as_float_mono(item) if isinstance(item, np.ndarray) else read_audio(item, sample_rate)

    # First pass: chapter lengths (arrays are cheap; files are decoded again when streaming).
    lengths = [len(load(c)) for c in chapter_audio]
    bounds, pos = [], 0
    for n in lengths:
        bounds.append((round(pos * 1000 / sample_rate), round((pos + n) * 1000 / sample_rate)))
        pos += n
    meta = ffmetadata(_book_tags(tags or {}), [(s, e, t) for (s, e), t in zip(bounds, titles)])

    with tempfile.TemporaryDirectory(prefix="dia-m4b-") as td, atomic_path(out_path) as tmp:
        meta_path = Path(td) / "meta.txt"
        meta_path.write_text(meta, encoding="utf-8")
        cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
               "-i", str(meta_path)]
        if cover is not None:
            cmd += ["-i", str(cover)]
        cmd += ["-map", "0:a", "-map_metadata", "1", "-map_chapters", "1"]
        if cover is not None:
            cmd += ["-map", "2:v", "-c:v", "copy", "-disposition:v:0", "attached_pic"]
        cmd += ["-c:a", "aac", "-b:a", f"{bitrate_kbps}k", "-ac", "1", "-ar", str(sample_rate),
                "-movflags", "+faststart", "-f", "mp4", str(tmp)]
        with open(Path(td) / "ffmpeg.log", "w+b") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=log)
            try:
                for item, n in zip(chapter_audio, lengths):
                    a = load(item)
                    if len(a) != n:
                        raise RuntimeError("chapter audio changed while exporting")
                    for s in range(0, len(a), 1 << 20):
                        proc.stdin.write(a[s:s + (1 << 20)].tobytes())
                proc.stdin.close()
                rc = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            if rc != 0:
                log.seek(0)
                raise RuntimeError(f"ffmpeg m4b export failed: {log.read().decode(errors='replace')[-400:]}")
    return out_path, bounds


def clean_temps(directory: str | Path, *, recursive: bool = True, min_age_s: float = 0.0) -> list[Path]:
    """Remove leftover ``.tmp-*`` files of interrupted atomic writes under ``directory``.

    Call it when a run starts (no other writer is active on that directory); ``min_age_s`` skips
    temps younger than that, for directories another live process may be writing to."""
    directory = Path(directory)
    if not directory.exists():
        return []
    pattern = "**/" + TMP_PREFIX + "*" if recursive else TMP_PREFIX + "*"
    now = time.time()
    removed = []
    for p in directory.glob(pattern):
        if p.is_file() and now - p.stat().st_mtime >= min_age_s:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed
