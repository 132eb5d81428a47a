"""The ACX package: what Audible's ACX takes, built from a finished acx delivery, and its report.

``<delivery>/acx/`` holds, in upload order, the opening credits, one MP3 per chapter (a chapter
over ACX's 120 minutes split at paragraph pauses into numbered parts, each with its own head and
tail room tone), the closing credits, and ``retail-sample.mp3`` (1-5 minutes starting in a chosen
chapter, cut in pauses with fades, no credits). Every file is MP3 CBR at the delivery's bit rate
(192 kbps or more), 44.1 kHz, mono or stereo as ``acx.channels`` says, tagged (dia_core.publish.tags).

``acx-report.json`` / ``acx-report.md``: one row per file (RMS, sample peak, noise floor, head and
tail room tone, bit rate and its mode, sample rate, channels, duration) measured on the encoded
MP3 against docs/delivery-specs.md#acx, pass or fail with the reasons, and the cover's check
(square, at least 2400 px, JPEG or PNG, RGB).
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from mutagen.mp3 import MP3, BitrateMode

from ..atomic import write_json, write_text
from ..errors import InputError
from ..audio import encode, profiles
from ..audio.meter import Measurements
from ..audio.stitch import room_tone
from ..audiofile import probe
from ..settings import ACX_MAX_MINUTES
from .metadata import chapter_tags
from .tags import publish_staged, write_mp3_tags

__all__ = ["Gap", "Part", "split_gaps", "plan_parts", "SplitImpossible", "check_cover", "plan_sample",
           "build_package", "check_retail_sample", "ACX_DIR", "ACX_LIMIT_MS", "write_report"]

ACX_DIR = "acx"
ACX_LIMIT_MS = ACX_MAX_MINUTES * 60_000
ACX_MIN_BITRATE = 192
COVER_MIN_PX = 2400
SAMPLE_MIN_S, SAMPLE_MAX_S = 60.0, 300.0
SAMPLE_FADE_IN_S, SAMPLE_FADE_OUT_S = 0.05, 1.0
SAMPLE_LEAD_S = 0.3          # room tone kept before the sample's first word
SAMPLE_TAIL_S = 1.0          # and after its last one (the fade-out runs over it)


class SplitImpossible(ValueError):
    """A chapter over the limit has no paragraph pauses that cut it into parts under the limit."""


@dataclass(frozen=True)
class Gap:
    """The pause before a paragraph (or scene) inside a chapter: where it may be split."""
    end_ms: int      # end of the speech before the pause
    start_ms: int    # start of the speech after it


@dataclass(frozen=True)
class Part:
    start_ms: int
    end_ms: int
    head_pad_ms: int = 0     # room tone added before (a part that starts at a cut)
    tail_pad_ms: int = 0     # and after (a part that ends at a cut)

    @property
    def length_ms(self) -> int:
        return self.end_ms - self.start_ms + self.head_pad_ms + self.tail_pad_ms


def split_gaps(segments: list[dict]) -> list[Gap]:
    """Paragraph and scene pauses of a chapter from its manifest's segments."""
    return [Gap(int(a["end_ms"]), int(b["start_ms"])) for a, b in zip(segments, segments[1:])
            if b.get("boundary") in ("paragraph", "scene")]


def plan_parts(duration_ms: int, gaps: list[Gap], *, limit_ms: int = ACX_LIMIT_MS,
               head_ms: int = 750, tail_ms: int = 2500) -> list[Part]:
    """The parts a chapter is delivered in: itself when it fits ``limit_ms``, else the fewest parts
    of about equal length cut at paragraph pauses (each cut part gets ``head_ms``/``tail_ms`` of
    room tone). Raises SplitImpossible when no choice of pauses keeps every part under the limit."""
    if duration_ms <= limit_ms:
        return [Part(0, duration_ms)]
    gaps = sorted(gaps, key=lambda g: g.end_ms)
    for n in range(math.ceil(duration_ms / limit_ms), len(gaps) + 2):
        cuts, used = [], -1
        for k in range(1, n):
            target = k * duration_ms / n
            options = [i for i in range(used + 1, len(gaps))]
            if not options:
                break
            used = min(options, key=lambda i: abs((gaps[i].end_ms + gaps[i].start_ms) / 2 - target))
            cuts.append(gaps[used])
        if len(cuts) != n - 1:
            continue
        parts, start, head = [], 0, 0
        for g in cuts:
            parts.append(Part(start, g.end_ms, head, tail_ms))
            start, head = g.start_ms, head_ms
        parts.append(Part(start, duration_ms, head, 0))
        if all(p.length_ms <= limit_ms for p in parts):
            return parts
    raise SplitImpossible(f"{duration_ms / 60000:.1f} minutes with {len(gaps)} paragraph pause(s): no split "
                          f"into parts of at most {limit_ms / 60000:g} minutes")


def check_cover(path: Path | None) -> dict:
    """ACX's cover rules: JPEG or PNG, square, at least 2400 px a side, RGB."""
    if path is None:
        return {"file": None, "passed": False, "reasons": ["no cover: set `cover:` in project.yaml"]}
    from PIL import Image
    reasons = []
    try:
        with Image.open(path) as im:
            fmt, (w, h), mode = im.format, im.size, im.mode
    except Exception as e:   # Pillow raises many kinds for a file that is not an image
        return {"file": str(path), "passed": False, "reasons": [f"not an image ({type(e).__name__})"]}
    if fmt not in ("JPEG", "PNG", "MPO"):
        reasons.append(f"format {fmt}: ACX takes JPEG or PNG")
    if w != h:
        reasons.append(f"not square: {w}x{h} px")
    if min(w, h) < COVER_MIN_PX:
        reasons.append(f"too small: {w}x{h} px, ACX needs at least {COVER_MIN_PX}x{COVER_MIN_PX}")
    if mode not in ("RGB", "P", "L", "RGBA"):
        reasons.append(f"colour mode {mode}: ACX needs RGB")
    return {"file": str(path), "format": fmt, "width": w, "height": h, "mode": mode,
            "passed": not reasons, "reasons": reasons}


def plan_sample(chapters: list[dict], segments: list[list[dict]], sample) -> tuple[int, int, str | None]:
    """(start_ms, end_ms) of the retail sample on the book's timeline (chapters back to back), cut
    in pauses: it starts SAMPLE_LEAD_S before the first segment at or after the requested start and
    ends SAMPLE_TAIL_S after the last segment ending by the requested end (or the first one after,
    when that leaves under a minute). ``sample``: acx.retail_sample. The third item names a
    problem (a sample that had to be shortened or lies outside the book), else None."""
    offsets = np.concatenate([[0], np.cumsum([round(c["duration_s"] * 1000) for c in chapters])]).astype(int)
    index = sample.chapter - 1
    if not 0 <= index < len(chapters):
        return 0, 0, f"chapter {sample.chapter} is not in the delivery ({len(chapters)} chapters)"
    spans = [(int(offsets[i] + s["start_ms"]), int(offsets[i] + s["end_ms"]))
             for i, segs in enumerate(segments) for s in segs]
    t0 = offsets[index] + round(sample.start_s * 1000)
    t1 = t0 + round(sample.duration_s * 1000)
    first = next((s for s in spans if s[0] >= t0 and s[0] < offsets[index + 1]), None)
    if first is None:
        return 0, 0, f"starts at {sample.start_s:g} s, after the last words of chapter {sample.chapter}"
    start = max(int(offsets[index]), first[0] - round(SAMPLE_LEAD_S * 1000))
    ends = [s[1] for s in spans if s[0] >= first[0]]
    fitting = [e for e in ends if e <= t1]
    end = fitting[-1] if fitting else ends[0]
    if end - start < SAMPLE_MIN_S * 1000:
        end = next((e for e in ends if e - start >= SAMPLE_MIN_S * 1000), ends[-1])
    end = min(int(offsets[-1]), end + round(SAMPLE_TAIL_S * 1000))
    problem = None
    if end - start < SAMPLE_MIN_S * 1000:
        problem = f"only {(end - start) / 1000:.1f} s of the book follow the requested start"
    return int(start), int(end), problem


def _read_span(chapters: list[dict], start_ms: int, end_ms: int, sample_rate: int) -> np.ndarray:
    """Samples of the book's timeline [start_ms, end_ms) read from the chapter masters."""
    out, offset = [], 0
    for c in chapters:
        n = sf.info(c["master"]).frames
        a, b = max(start_ms * sample_rate // 1000 - offset, 0), min(end_ms * sample_rate // 1000 - offset, n)
        if a < b:
            x, _ = sf.read(c["master"], start=a, stop=b, dtype="float32", always_2d=False)
            out.append(x if x.ndim == 1 else x.mean(axis=1))
        offset += n
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _fade(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    a = audio.copy()
    n_in, n_out = int(SAMPLE_FADE_IN_S * sample_rate), int(SAMPLE_FADE_OUT_S * sample_rate)
    a[:n_in] *= np.linspace(0, 1, n_in, dtype=np.float32)
    a[len(a) - n_out:] *= np.linspace(1, 0, min(n_out, len(a)), dtype=np.float32)
    return a


def _row_limits(settings, kind: str) -> dict:
    limits = dict(profiles.profile_limits(replace(settings, profile="acx")))
    if kind == "retail-sample":   # faded in and out: no room-tone rule; 1-5 minutes
        limits.pop("head_silence_s", None)
        limits.pop("tail_silence_s", None)
        limits["duration_s"] = {"min": SAMPLE_MIN_S, "max": SAMPLE_MAX_S}
    return limits


def measure_row(path: Path, settings, kind: str, channels: int, measured: dict | None = None) -> dict:
    """One report row: the encoded file decoded and measured (or ``measured``: the delivery's own
    measurements of the same audio), container facts, pass/fail, reasons."""
    if measured is None:
        report = profiles.check_file(path, replace(settings, profile="acx"))
        m, fmt = report.measurements, report.format
    else:
        m = Measurements(**{k: measured[k] for k in Measurements.__dataclass_fields__})
        stream = next(s for s in probe(path)["streams"] if s.get("codec_type") == "audio")
        fmt = {"codec": stream.get("codec_name"), "sample_rate": int(stream.get("sample_rate") or 0) or None,
               "channels": stream.get("channels"), "bit_rate": int(stream.get("bit_rate") or 0) or None}
    limits = _row_limits(settings, kind)
    reasons = profiles.compare(m, limits)
    info = MP3(path).info if fmt.get("codec") == "mp3" else None
    mode = {BitrateMode.CBR: "CBR", BitrateMode.VBR: "VBR", BitrateMode.ABR: "ABR"}.get(
        getattr(info, "bitrate_mode", None), "unknown")
    kbps = round((fmt.get("bit_rate") or 0) / 1000)
    if fmt.get("codec") != "mp3":
        reasons.append(f"format {fmt.get('codec')}: ACX takes MP3")
    if kbps < ACX_MIN_BITRATE:
        reasons.append(f"bit rate {kbps} kbps below {ACX_MIN_BITRATE} kbps")
    if info is not None and mode != "CBR":
        reasons.append(f"bit rate mode {mode}: ACX needs constant bit rate")
    if fmt.get("sample_rate") != 44100:
        reasons.append(f"sample rate {fmt.get('sample_rate')} Hz: ACX needs 44100")
    if fmt.get("channels") != channels:
        reasons.append(f"{fmt.get('channels')} channel(s): the package is {'mono' if channels == 1 else 'stereo'}")
    return {"file": path.name, "kind": kind, "measured": "delivery" if measured else "package", "rms_db": m.rms_db, "peak_dbfs": m.sample_peak_dbfs,
            "noise_floor_db": m.noise_floor_db, "head_s": m.head_silence_s, "tail_s": m.tail_silence_s,
            "bitrate_kbps": kbps, "bitrate_mode": mode, "sample_rate": fmt.get("sample_rate"),
            "channels": fmt.get("channels"), "duration_s": m.duration_s, "passed": not reasons,
            "reasons": reasons}


def _encode(audio: np.ndarray, stem: Path, settings, channels: int, sample_rate: int, tags) -> Path:
    # The masters are finished to the acx target already (and the report measures the MP3): no
    # second decode for the lossy-gain correction.
    def make(staged_stem: Path) -> Path:
        mp3 = encode.export_chapter(audio, staged_stem, replace(settings, formats=("mp3",)),
                                    sample_rate=sample_rate, channels=channels, correct_lossy_gain=False)["mp3"]
        return write_mp3_tags(Path(mp3), tags)
    return publish_staged(Path(f"{stem}.mp3"), make)


def _delivered_mp3(out_dir: Path, entry: dict, settings, channels: int) -> tuple[Path, dict] | None:
    """The chapter's delivered MP3 and its acx measurements, when the package can take it as it is
    (an acx delivery measures each chapter's encoded MP3 with the acx limits; mono package)."""
    mp3 = next((f["path"] for f in entry.get("files") or [] if f["path"].endswith(".mp3")), None)
    if mp3 is None or channels != 1 or settings.profile != "acx" or not entry.get("measurements"):
        return None
    path = Path(out_dir) / mp3
    return (path, entry["measurements"]) if path.is_file() else None


def _copy_tagged(src: Path, target: Path, tags) -> Path:
    def make(staged_stem: Path) -> Path:
        staged = staged_stem.with_name(staged_stem.name + ".mp3")
        shutil.copyfile(src, staged)
        return write_mp3_tags(staged, tags)
    return publish_staged(target, make)


def build_package(project, out_dir: Path, chapters: list[dict], credits: list[dict], settings, *,
                  limit_ms: int = ACX_LIMIT_MS, seed: int = 0) -> dict:
    """Write ``out_dir/acx/`` and its report; returns the report. ``chapters``/``credits``: chapter
    entries (title, manifest, master, duration_s) of the book and of the opening/closing credits
    (``credits`` empty when the project turns them off)."""
    folder = Path(out_dir) / ACX_DIR
    folder.mkdir(parents=True, exist_ok=True)
    channels = project.acx.channels
    segments = [json.loads((Path(out_dir) / c["manifest"]).read_text())["segments"] for c in chapters]
    rows, planned = [], []   # planned: (file stem, kind, title, audio source)
    opening = [c for c in credits if c["id"] == "opening-credits"]
    closing = [c for c in credits if c["id"] == "closing-credits"]
    n = 0
    for c in opening:
        planned.append((f"{n:02d}-opening-credits", "credits", c["title"], ("whole", c)))
        n += 1
    for c, segs in zip(chapters, segments):
        try:
            parts = plan_parts(round(c["duration_s"] * 1000), split_gaps(segs), limit_ms=limit_ms,
                               head_ms=round(settings.pauses.chapter_start * 1000),
                               tail_ms=round(settings.pauses.chapter_end * 1000))
        except SplitImpossible as e:
            rows.append({"file": f"{c['id']}.mp3", "kind": "chapter", "passed": False,
                         "reasons": [f"over {limit_ms / 60000:g} minutes and cannot be split: {e}"]})
            parts = [Part(0, round(c["duration_s"] * 1000))]
        if len(parts) == 1:
            planned.append((f"{n:02d}-{c['id']}", "chapter", c["title"], ("whole", c)))
            n += 1
        else:
            for k, p in enumerate(parts, 1):
                planned.append((f"{n:02d}-{c['id']}-part-{k}", "chapter-part", f"{c['title']} (part {k})",
                                ("part", c, p)))
                n += 1
    for c in closing:
        planned.append((f"{n:02d}-closing-credits", "credits", c["title"], ("whole", c)))
        n += 1

    rng = np.random.default_rng(seed)
    total = len(planned)
    for track, (stem, kind, title, source) in enumerate(planned, 1):
        c = source[1]
        tags = chapter_tags(project, title, track, total)
        # A whole chapter (or credits file) delivered as an acx MP3 is taken as it is: same audio,
        # same bytes but the tags, measured when it was delivered.
        reuse = _delivered_mp3(out_dir, c, settings, channels) if source[0] == "whole" else None
        if reuse is not None:
            path = _copy_tagged(reuse[0], folder / f"{stem}.mp3", tags)
            rows.append(measure_row(path, settings, kind, channels, measured=reuse[1]))
            continue
        audio, sr = sf.read(c["master"], dtype="float32", always_2d=False)
        if source[0] == "part":
            p = source[2]
            ms = lambda t: int(t * sr // 1000)  # noqa: E731
            audio = np.concatenate([room_tone(ms(p.head_pad_ms), settings.room_tone_db, rng),
                                    audio[ms(p.start_ms):ms(p.end_ms)],
                                    room_tone(ms(p.tail_pad_ms), settings.room_tone_db, rng)])
        path = _encode(audio, folder / stem, settings, channels, sr, tags)
        del audio
        rows.append(measure_row(path, settings, kind, channels))

    sample = project.acx.retail_sample
    start, end, problem = plan_sample(chapters, segments, sample)
    if end > start:
        sr = sf.info(chapters[0]["master"]).samplerate
        audio = _fade(_read_span(chapters, start, end, sr), sr)
        path = _encode(audio, folder / "retail-sample", settings, channels, sr,
                       chapter_tags(project, f"{project.title} (retail sample)"))
        row = measure_row(path, settings, "retail-sample", channels)
        row["source"] = {"chapter": sample.chapter, "start_s": start / 1000, "end_s": end / 1000}
    else:
        row = {"file": "retail-sample.mp3", "kind": "retail-sample", "passed": False, "reasons": []}
    if problem:
        row["reasons"].append(f"retail sample: {problem}")
        row["passed"] = False
    rows.append(row)
    # An earlier package's files this one does not make (a chapter removed, a part no longer
    # needed) must not be uploaded with it: they are derived, and removed.
    made = {r["file"] for r in rows}
    for stale in folder.glob("*.mp3"):
        if stale.name not in made:
            stale.unlink()
    report = {"profile": "acx", "channels": "mono" if channels == 1 else "stereo", "files": rows,
              "cover": check_cover(project.cover)}
    report["passed"] = all(r["passed"] for r in rows) and report["cover"]["passed"]
    write_report(report, folder)
    return report


def _cell(v, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    """acx-report.json and acx-report.md (the same rows)."""
    lines = ["# ACX conformance report", "",
             f"**{'PASS' if report['passed'] else 'FAIL'}**: {sum(r['passed'] for r in report['files'])} of "
             f"{len(report['files'])} files pass; package {report['channels']}; limits in docs/delivery-specs.md#acx.",
             "", "| file | kind | RMS dB | peak dBFS | noise floor dB | head s | tail s | kbps | mode | Hz | ch | "
             "duration s | result |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["files"]:
        verdict = "pass" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        lines.append(f"| {r['file']} | {r['kind']} | {_cell(r.get('rms_db'))} | {_cell(r.get('peak_dbfs'))} | "
                     f"{_cell(r.get('noise_floor_db'))} | {_cell(r.get('head_s'), '{:.2f}')} | "
                     f"{_cell(r.get('tail_s'), '{:.2f}')} | {_cell(r.get('bitrate_kbps'), '{}')} | "
                     f"{r.get('bitrate_mode', '-')} | {_cell(r.get('sample_rate'), '{}')} | "
                     f"{_cell(r.get('channels'), '{}')} | {_cell(r.get('duration_s'))} | {verdict} |")
    cover = report["cover"]
    lines += ["", f"Cover: {cover.get('file') or 'none'}: "
              + ("pass" if cover["passed"] else "FAIL: " + "; ".join(cover["reasons"]))
              + (f" ({cover['width']}x{cover['height']} {cover['format']})" if "width" in cover else ""), ""]
    return (write_json(folder / "acx-report.json", report), write_text(folder / "acx-report.md", "\n".join(lines)))


def check_retail_sample(project, plan) -> None:
    """Before anything is rendered: a retail sample set in project.yaml must start inside its
    chapter (by the plan's estimate; InputError naming the acx.retail_sample line otherwise). One
    that runs past the end of the book is cut there (its report row fails under a minute)."""
    sample = project.acx.retail_sample
    lines = sample.lines
    if project.delivery.profile != "acx" or not lines:   # the default sample adapts (its row says how)
        return
    where = lambda key: dict(file=project.manifest_label, line=lines.get(key) or lines.get(""),  # noqa: E731
                             field=f"acx.retail_sample.{key}")
    chapters = {c.index: c for c in plan.chapters}
    if sample.chapter not in chapters:
        raise InputError(f"chapter {sample.chapter} is not in the book (chapters "
                         f"{', '.join(str(i) for i in sorted(chapters))})", **where("chapter"))
    est = {c.index: c.est_seconds for c in plan.chapters}
    if sample.start_s >= est[sample.chapter]:
        raise InputError(f"starts at {sample.start_s:g} s, outside chapter {sample.chapter} (about "
                         f"{est[sample.chapter]:.0f} s long)", **where("start_s"))
