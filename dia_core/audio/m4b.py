"""The M4B audiobook: build it from the chapter masters with chapter markers, tags and cover, then check it.

The M4B is checked after writing (``export_m4b_checked`` -> ``verify_m4b``), still under its temp
name: ffprobe for the container (AAC 44.1 kHz mono, one marker per chapter within 20 ms of the
plan, duration within 50 ms of the chapter masters, title/artist tags, cover) and the decoded audio
per chapter slice and as a whole book against the profile (meter.measure, profiles.profile_limits).
A peak pushed over the limit by the AAC encode gets one re-encode with that chapter's gain lowered.
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from ..params import SAMPLE_RATE
from ..settings import DeliverySettings
from ..audiofile import as_float_mono, db, ffmpeg_bin, probe, read_audio, undb
from .encode import ffmpeg_pipe
from .meter import FLOOR_DB, Measurements, measure
from .profiles import compare, profile_limits

__all__ = ["export_m4b", "export_m4b_checked", "verify_m4b", "M4BReport", "M4BChapterCheck", "ffmetadata",
           "escape_ffmetadata"]


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


def _load_chapter(item, sample_rate: int) -> np.ndarray:
    return as_float_mono(item) if isinstance(item, np.ndarray) else read_audio(item, sample_rate)


def _m4b_layout(chapter_audio, chapter_titles, tags: dict | None, cover, sample_rate: int):
    """(items, lengths in samples, [(start_ms, end_ms)], FFMETADATA text) of a planned M4B."""
    items = list(chapter_audio)
    titles = list(chapter_titles)
    if len(titles) != len(items) or not titles:
        raise InputError(f"{len(items)} chapters but {len(titles)} titles")
    if cover is not None and not Path(cover).exists():
        raise InputError("cover image not found", file=cover)
    # First pass: chapter lengths (arrays are cheap; files are decoded again when streaming).
    lengths = [len(_load_chapter(c, sample_rate)) for c in items]
    bounds, pos = [], 0
    for n in lengths:
        bounds.append((round(pos * 1000 / sample_rate), round((pos + n) * 1000 / sample_rate)))
        pos += n
    meta = ffmetadata(_book_tags(tags or {}), [(s, e, t) for (s, e), t in zip(bounds, titles)])
    return items, lengths, bounds, meta


def _encode_m4b(items, lengths, meta_path: Path, out: Path, cover, bitrate_kbps: int, sample_rate: int,
                gains_db=None, label: Path | None = None) -> None:
    """Stream the chapters (times ``gains_db`` per chapter, if given) through one ffmpeg AAC encode
    into ``out`` (a temp file of the caller's atomic_path; overwritten). A failed encode raises
    ffmpeg's error naming ``label`` (the book being made; default ``out``)."""
    cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
           "-i", str(meta_path)]
    if cover is not None:
        cmd += ["-i", str(cover)]
    cmd += ["-map", "0:a", "-map_metadata", "1", "-map_chapters", "1"]
    if cover is not None:
        cmd += ["-map", "2:v", "-c:v", "copy", "-disposition:v:0", "attached_pic"]
    cmd += ["-c:a", "aac", "-b:a", f"{bitrate_kbps}k", "-ac", "1", "-ar", str(sample_rate),
            "-movflags", "+faststart", "-f", "mp4", str(out)]
    gains = list(gains_db) if gains_db is not None else [0.0] * len(items)

    def pcm():
        for item, n, g in zip(items, lengths, gains):
            a = _load_chapter(item, sample_rate)
            if len(a) != n:
                raise RuntimeError("chapter audio changed while exporting")
            if g:
                a = (a * np.float32(undb(g))).astype(np.float32)
            for s in range(0, len(a), 1 << 20):
                yield np.ascontiguousarray(a[s:s + (1 << 20)], dtype="<f4")

    # ffmpeg's own error (a full disk: OSError ENOSPC naming the file), not the BrokenPipeError of
    # the write that noticed it quit.
    ffmpeg_pipe(cmd, pcm(), what="m4b encode", target=label or out)


def export_m4b(chapter_audio, chapter_titles, out_path: str | Path, tags: dict | None = None,
               cover: str | Path | None = None, *, bitrate_kbps: int = 64,
               sample_rate: int = SAMPLE_RATE) -> tuple[Path, list[tuple[int, int]]]:
    """Whole-book M4B (AAC mono) with one chapter marker per chapter and book tags.

    ``chapter_audio`` is a list of paths (any format ffmpeg decodes) or float arrays; they are
    decoded one at a time and streamed to ffmpeg as float32, so memory stays one chapter.
    Chapter boundaries are the exact cumulative sample counts, in ms. Returns (path, [(start_ms,
    end_ms)]). ``tags``: title, author, narrator, genre (default "Audiobook"), description.
    Nothing is checked here; ``export_m4b_checked`` also verifies the written file."""
    items, lengths, bounds, meta = _m4b_layout(chapter_audio, chapter_titles, tags, cover, sample_rate)
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="dia-m4b-") as td, atomic_path(out_path) as tmp:
        meta_path = Path(td) / "meta.txt"
        meta_path.write_text(meta, encoding="utf-8")
        _encode_m4b(items, lengths, meta_path, tmp, cover, bitrate_kbps, sample_rate, label=out_path)
    return out_path, bounds


# ------------------------------------------------------------------------------- M4B verification

M4B_SAMPLE_RATE = 44100      # delivery-specs: 44.1 kHz, as the chapter files
M4B_CHANNELS = 1             # "all files mono, or all stereo": the chapter files are mono
MARK_TOLERANCE_MS = 20.0     # a chapter marker's start/end vs the planned (sample-exact) boundary
DURATION_TOLERANCE_MS = 50.0  # the book's duration vs the sum of the chapter masters
REQUIRED_BOOK_TAGS = ("title", "artist")   # artist = the author
MAX_PEAK_REENCODES = 2       # peak-correcting re-encodes of the M4B, at most
PEAK_MARGIN_DB = 0.5         # a corrected M4B aims this far under the peak limit (loudness.ENCODER_MARGIN_DB:
                             # 64 kbps AAC moves peaks by a few tenths of a dB from one encode to the next)
_PEAK_METRICS = ("true_peak_dbtp", "sample_peak_dbfs")


@dataclass(frozen=True)
class M4BChapterCheck:
    """One chapter of the M4B: planned marks, the file's marks, measurements of its decoded slice."""
    index: int                    # 1-based
    title: str
    start_ms: int                 # planned
    end_ms: int
    file_start_ms: float | None   # as ffprobe reads the marker back (None: no such marker)
    file_end_ms: float | None
    measurements: object          # meter.Measurements
    failures: list[str] = field(default_factory=list)
    gain_db: float = 0.0          # gain applied to this chapter by the peak correction

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        r = lambda v: None if v is None else round(float(v), 1)  # noqa: E731
        return {"index": self.index, "title": self.title, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "file_start_ms": r(self.file_start_ms), "file_end_ms": r(self.file_end_ms),
                "measurements": self.measurements.to_dict(), "passed": self.passed,
                "failures": list(self.failures), "gain_db": round(float(self.gain_db), 3)}


@dataclass(frozen=True)
class M4BReport:
    """The written M4B checked against the plan and the delivery profile.

    ``failures`` holds every problem: container ones (codec, rate, channels, markers, duration,
    tags, cover), ``chapter N (title): ...`` for a chapter slice off the profile, ``book: ...`` for
    the whole book. ``first_pass_failures`` are those of the uncorrected encode when a peak
    correction re-encoded it (``chapters[i].gain_db``)."""
    passed: bool
    failures: list[str]
    measurements: object          # meter.Measurements of the whole book
    limits: dict                  # {"chapter": profile limits, "book": the same without the per-file duration}
    container: dict
    chapters: list[M4BChapterCheck]
    path: str | None = None
    sliced_by: str = "file"       # "file": the file's own markers; "plan": the planned marks (markers unusable)
    first_pass_failures: list[str] | None = None

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failures": list(self.failures),
                "measurements": self.measurements.to_dict(), "limits": self.limits,
                "container": dict(self.container), "sliced_by": self.sliced_by,
                "corrected": self.first_pass_failures is not None,
                "first_pass_failures": list(self.first_pass_failures or []),
                "chapters": [c.to_dict() for c in self.chapters], "path": self.path}


def _stream_slices(path: Path, cuts: list[tuple[int, int]], sample_rate: int, channels: int,
                   on_slice) -> tuple[int, str | None]:
    """Decode ``path`` once with ffmpeg (float, averaged to mono) and hand each [start, end) sample
    range of ``cuts`` to ``on_slice(i, audio)`` while streaming: memory stays about one chapter.
    Returns (decoded samples in all, ffmpeg's error text or None)."""
    cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-map", "0:a:0", "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    channels = max(1, int(channels or 1))
    frame_bytes = 4 * channels
    blocks: list[np.ndarray] = []
    state = {"base": 0, "have": 0, "eof": False}   # blocks hold samples [base, base + have)

    def read_block() -> None:
        data = proc.stdout.read(frame_bytes << 18)
        if not data:
            state["eof"] = True
            return
        a = np.frombuffer(data[: len(data) // frame_bytes * frame_bytes], dtype=np.float32)
        if channels > 1:
            a = a.reshape(-1, channels).mean(axis=1, dtype=np.float32)
        blocks.append(a)
        state["have"] += len(a)

    def joined() -> np.ndarray:
        if len(blocks) != 1:
            a = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
            blocks[:] = [a]
        return blocks[0]

    order = sorted(range(len(cuts)), key=lambda i: cuts[i])
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        try:
            for k, i in enumerate(order):
                s, e = cuts[i]
                while state["base"] + state["have"] < e and not state["eof"]:
                    read_block()
                a = joined()
                lo, hi = max(0, s - state["base"]), max(0, e - state["base"])
                on_slice(i, a[lo:hi])
                # keep only what a later cut still needs
                keep_from = min((cuts[j][0] for j in order[k + 1:]), default=e)
                drop = min(max(0, keep_from - state["base"]), len(a))
                blocks[:] = [a[drop:]]
                state["base"] += drop
                state["have"] -= drop
            while not state["eof"]:          # the rest only counts towards the decoded duration
                read_block()
                state["base"] += state["have"]
                state["have"] = 0
                blocks.clear()
            proc.stdout.close()
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        msg = err.read().decode(errors="replace").strip()[-300:] if rc != 0 else None
    return state["base"] + state["have"], msg


def _book_measurements(ms: list, lengths: list[int], sample_rate: int):
    """Whole-book measurements from the chapter slices' (memory stays one chapter): RMS from the
    summed energy (exact), peaks the largest, noise floor the lowest, head/tail silence of the
    first/last chapter; integrated loudness is the duration-weighted power mean of the chapters'
    gated loudness (BS.1770 gating over the whole book would differ by a few hundredths of a LU
    for chapters normalized to one target)."""
    n = sum(lengths)
    if not ms or n == 0:
        return Measurements(FLOOR_DB, FLOOR_DB, FLOOR_DB, FLOOR_DB, FLOOR_DB, 0.0, 0.0, 0.0)
    energy = sum(k * undb(m.rms_db) ** 2 for m, k in zip(ms, lengths))
    loud = [(k, m.integrated_lufs) for m, k in zip(ms, lengths) if m.integrated_lufs > FLOOR_DB]
    lufs = (float(10 * np.log10(sum(k * 10 ** (v / 10) for k, v in loud) / sum(k for k, _ in loud)))
            if loud else FLOOR_DB)
    return Measurements(
        integrated_lufs=lufs,
        true_peak_dbtp=max(m.true_peak_dbtp for m in ms),
        sample_peak_dbfs=max(m.sample_peak_dbfs for m in ms),
        rms_db=db(float(np.sqrt(energy / n)), FLOOR_DB),
        noise_floor_db=min(m.noise_floor_db for m in ms),
        duration_s=n / sample_rate,
        head_silence_s=ms[0].head_silence_s,
        tail_silence_s=ms[-1].tail_silence_s,
    )


def verify_m4b(path: str | Path, chapter_titles, marks_ms, settings: DeliverySettings, *,
               duration_s: float, tags: dict | None = None, cover: bool = False,
               channels: int = M4B_CHANNELS, sample_rate: int = M4B_SAMPLE_RATE,
               label: str | None = None) -> M4BReport:
    """Check a written M4B against its plan and the delivery profile.

    Container (ffprobe): one AAC audio stream at ``sample_rate`` (44.1 kHz) with ``channels``
    (mono, like the chapter files); one chapter marker per planned chapter, titles equal, start
    and end within 20 ms of ``marks_ms`` [(start_ms, end_ms)]; duration (container and decoded)
    within 50 ms of ``duration_s`` (the chapter masters' sum); tags title and artist present (and
    equal to ``tags``' title/author when given); an attached picture when ``cover``.
    Audio: the file is decoded once (ffmpeg) and each chapter, sliced at the file's markers (at
    the planned marks when the markers are unusable), is measured with ``measure`` and
    compared with ``profile_limits`` like a chapter file; so is the whole book, without
    the per-file duration cap (ACX's 120 minutes apply to each chapter).
    ``label``: the path to report (the final name when ``path`` is still a temp file)."""
    path = Path(path)
    titles = [str(t) for t in chapter_titles]
    marks = [(int(s), int(e)) for s, e in marks_ms]
    if len(titles) != len(marks) or not titles:
        raise InputError(f"{len(titles)} chapter titles but {len(marks)} marks")
    info = probe(path)
    streams = info.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    a = audio[0] if audio else {}
    fmt = info.get("format", {})
    file_tags = {str(k).lower(): v for k, v in (fmt.get("tags") or {}).items()}
    pictures = [s for s in streams if (s.get("disposition") or {}).get("attached_pic")]
    file_marks = [(float(c["start_time"]) * 1000, float(c["end_time"]) * 1000, (c.get("tags") or {}).get("title"))
                  for c in info.get("chapters", [])]
    container_s = float(a.get("duration") or fmt.get("duration") or 0.0)
    container = {
        "codec": a.get("codec_name"),
        "sample_rate": int(a["sample_rate"]) if a.get("sample_rate") else None,
        "channels": a.get("channels"),
        "bit_rate": int(a["bit_rate"]) if a.get("bit_rate") else None,
        "audio_streams": len(audio),
        "duration_s": round(container_s, 3),
        "expected_duration_s": round(float(duration_s), 3),
        "chapter_markers": len(file_marks),
        "tags": {k: file_tags.get(k) for k in REQUIRED_BOOK_TAGS},
        "cover": bool(pictures),
    }
    failures: list[str] = []
    if len(audio) != 1:
        failures.append(f"audio streams: {len(audio)} in the file, expected 1")
    if container["codec"] != "aac":
        failures.append(f"codec {container['codec']}: M4B audio must be AAC")
    if container["sample_rate"] != sample_rate:
        failures.append(f"sample_rate {container['sample_rate']} is not {sample_rate}")
    if container["channels"] != channels:
        failures.append(f"channels {container['channels']}: expected {channels} like the chapter files")
    wanted = _book_tags(tags) if tags is not None else {}
    for k in REQUIRED_BOOK_TAGS:
        got = file_tags.get(k)
        if not got:
            failures.append(f"tag {k} missing")
        elif wanted.get(k) and got != str(wanted[k]):
            failures.append(f"tag {k} is {got!r}, expected {str(wanted[k])!r}")
    if cover and not pictures:
        failures.append("cover: no attached picture in the file")
    if len(file_marks) != len(marks):
        failures.append(f"chapter markers: {len(file_marks)} in the file, {len(marks)} planned")
    for i, ((s, e), t, fm) in enumerate(zip(marks, titles, file_marks), 1):
        if fm[2] != t:
            failures.append(f"chapter {i}: marker title {fm[2]!r}, planned {t!r}")
        for what, got, want in (("start", fm[0], s), ("end", fm[1], e)):
            if abs(got - want) > MARK_TOLERANCE_MS:
                failures.append(f"chapter {i} ({t}): marker {what} {got:.0f} ms is {got - want:+.0f} ms "
                                f"off the planned {want} ms (max {MARK_TOLERANCE_MS:g})")
    if abs(container_s - duration_s) * 1000 > DURATION_TOLERANCE_MS:
        failures.append(f"duration {container_s:.3f} s, the chapters add up to {duration_s:.3f} s "
                        f"({(container_s - duration_s) * 1000:+.0f} ms, max {DURATION_TOLERANCE_MS:g})")

    # Audio: slice at the file's own markers, unless they cannot be matched to the plan.
    usable = len(file_marks) == len(marks) and all(0 <= fs <= fe for fs, fe, _ in file_marks)
    cuts_ms = [(fs, fe) for fs, fe, _ in file_marks] if usable else [(float(s), float(e)) for s, e in marks]
    cuts = [(round(s * sample_rate / 1000), round(e * sample_rate / 1000)) for s, e in cuts_ms]
    chapter_limits = profile_limits(settings)
    book_limits = {k: v for k, v in chapter_limits.items() if k != "duration_s"}
    measured: dict[int, object] = {}
    sizes: dict[int, int] = {}

    def on_slice(i: int, x: np.ndarray) -> None:
        measured[i] = measure(x, sample_rate)
        sizes[i] = len(x)

    decoded, error = _stream_slices(path, cuts, sample_rate, int(a.get("channels") or 1), on_slice)
    decoded_s = decoded / sample_rate
    container["decoded_duration_s"] = round(decoded_s, 3)
    if error:
        failures.append(f"audio: ffmpeg could not decode it all: {error}")
    if abs(decoded_s - duration_s) * 1000 > DURATION_TOLERANCE_MS:
        failures.append(f"decoded duration {decoded_s:.3f} s, the chapters add up to {duration_s:.3f} s "
                        f"({(decoded_s - duration_s) * 1000:+.0f} ms, max {DURATION_TOLERANCE_MS:g})")
    chapters = []
    for i, ((s, e), t) in enumerate(zip(marks, titles)):
        fm = file_marks[i] if i < len(file_marks) else (None, None, None)
        ch_fail = compare(measured[i], chapter_limits)
        failures += [f"chapter {i + 1} ({t}): {f}" for f in ch_fail]
        chapters.append(M4BChapterCheck(i + 1, t, s, e, fm[0], fm[1], measured[i], ch_fail))
    ordered = sorted(range(len(cuts)), key=lambda i: cuts[i])
    book = _book_measurements([measured[i] for i in ordered], [sizes[i] for i in ordered], sample_rate)
    failures += [f"book: {f}" for f in compare(book, book_limits)]
    return M4BReport(not failures, failures, book, {"chapter": chapter_limits, "book": book_limits},
                     container, chapters, label or str(path), "file" if usable else "plan")


def _peak_corrections(report: M4BReport, settings: DeliverySettings) -> list[float]:
    """Per chapter: dB to add so a chapter whose decoded peak is over the profile's limit lands
    ``PEAK_MARGIN_DB`` under it (0 for the chapters within it)."""
    limits = profile_limits(settings)
    gains = []
    for c in report.chapters:
        g = 0.0
        for name in _PEAK_METRICS:
            lim = limits.get(name, {}).get("max")
            v = getattr(c.measurements, name)
            if lim is not None and v > lim:
                g = min(g, lim - PEAK_MARGIN_DB - v)
        gains.append(round(g, 3))
    return gains


def export_m4b_checked(chapter_audio, chapter_titles, out_path: str | Path, settings: DeliverySettings,
                       tags: dict | None = None, cover: str | Path | None = None, *,
                       bitrate_kbps: int | None = None, sample_rate: int = SAMPLE_RATE,
                       correct_peaks: bool = True) -> tuple[Path, list[tuple[int, int]], M4BReport]:
    """``export_m4b``, then ``verify_m4b`` on the written file before it gets its final name.

    AAC encoding raises peaks like MP3 does: with ``correct_peaks``, when a chapter's decoded peak
    (the profile's true-peak or sample-peak limit) is over the limit, the book is re-encoded with
    that chapter's gain lowered so its peak lands ``PEAK_MARGIN_DB`` under the limit, and verified
    again (up to MAX_PEAK_REENCODES times, the gains adding up); whatever still fails is in the report (the file is published either way, as
    chapter files are). Returns (path, [(start_ms, end_ms)], report)."""
    items, lengths, bounds, meta = _m4b_layout(chapter_audio, chapter_titles, tags, cover, sample_rate)
    titles = list(chapter_titles)
    out_path = Path(out_path)
    kbps = bitrate_kbps or settings.aac_bitrate_kbps
    duration_s = sum(lengths) / sample_rate

    with tempfile.TemporaryDirectory(prefix="dia-m4b-") as td, atomic_path(out_path) as tmp:
        meta_path = Path(td) / "meta.txt"
        meta_path.write_text(meta, encoding="utf-8")

        def encode_and_verify(gains=None) -> M4BReport:
            _encode_m4b(items, lengths, meta_path, tmp, cover, kbps, sample_rate, gains, label=out_path)
            return verify_m4b(tmp, titles, bounds, settings, duration_s=duration_s, tags=tags,
                              cover=cover is not None, sample_rate=sample_rate, label=str(out_path))

        report = encode_and_verify()
        first, gains = report.failures, [0.0] * len(titles)
        # AAC's overshoot changes from one encode to the next: a correction can put another chapter
        # over (a one-hour book did, measured): corrections add up over at most MAX_PEAK_REENCODES.
        for _ in range(MAX_PEAK_REENCODES if correct_peaks else 0):
            more = _peak_corrections(report, settings)
            if not any(more):
                break
            gains = [round(g + m, 3) for g, m in zip(gains, more)]
            report = encode_and_verify(gains)
        if any(gains):
            report = replace(report, first_pass_failures=list(first),
                             chapters=[replace(c, gain_db=g) for c, g in zip(report.chapters, gains)])
    return out_path, bounds, report
