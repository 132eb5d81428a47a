"""Project manifest (projects/<name>/project.yaml): load and validate into typed, frozen objects.

Every user error is an :class:`InputError` naming the manifest, the line and the dotted field,
e.g. ``project.yaml:14: voices.anna.reference: file not found``. The YAML is composed with the
safe loader (node line numbers kept) and converted by hand, so that:

* only the standard scalar/sequence/mapping tags are accepted (``!!python/object`` and friends,
  ``!!binary``, ``!!set``... are errors);
* duplicate keys are errors (PyYAML silently keeps the last one);
* alias expansion is capped (billion-laughs manifests fail fast) and recursive aliases are errors;
* the manifest itself is capped at :data:`MAX_MANIFEST_BYTES`.

Unknown keys are errors at every level. Paths resolve relative to the manifest and may not
escape the project directory (symlinks are resolved first). See docs/project-yaml.md.
"""
from __future__ import annotations

import math
import re
import struct
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from .. import params as _params
from ..settings import CAPTIONS, FORMATS, PCM_BITS, PROFILES, TEMPO_ENGINES, DeliverySettings, Pauses, QCSettings, Trim
from ..errors import InputError
from ..files import read_bounded
from .yamltree import CONTROL_RE, Located, Validator, join, parse_yaml
from .publishing import AcxSettings, PodcastSettings, parse_acx, parse_podcast
from ..params import FRAME_RATE, RANGES, SamplingParams, check_param, check_seed

MAX_MANIFEST_BYTES = 1_000_000
ALL_CHAPTERS = "all"                 # chapters: all / --chapters all (plan_project(chapters="all"))
DEFAULT_CALIBRATION_TEXT = "This is my voice for the whole book, steady and clear."
# A seed-only voice is generated once from its calibration line; the pipeline caps that generation
# at prompt_frames_for(voice) frames, which is the line's estimate times this margin.
CALIBRATION_MARGIN = 1.25
REFERENCE_MAX_SECONDS = 60.0
REFERENCE_GOOD_RANGE = (3.0, 15.0)   # warn outside; 5-10 s is best
MAX_TRANSCRIPT_CPS = 40              # a transcript faster than this cannot be the reference's (cut audio)
SPEAKER_TAG_RE = re.compile(r"\[S[12]\]")
VOICE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
CHARACTER_NAME_RE = re.compile(r"^[^\W\d_][\w'’.\- ]{0,39}$")
HF_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Reference level checks (the voice prompt is copied, level, room and distortion included).
REFERENCE_QUIET_DB = -50.0           # warn below this RMS (dBFS)
REFERENCE_CLIP_LEVEL = 1.0 - 2.0 ** -14   # |sample| at or above this is full scale (16-bit: 32766+)
REFERENCE_CLIP_RUN = 3               # that many full-scale samples in a row = a clipped peak
# Text a voice's generation must still hold after its audio prompt (see check of max_new_tokens).
MIN_TEXT_SECONDS = 3.0
# Cover art: what an M4B can carry as an attached picture, decoded at validation (Pillow).
COVER_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG"}   # Pillow's name -> what it is
COVER_MIN_PX = 16                    # smaller is not a picture (error)
COVER_SMALL_PX = 300                 # smaller shows blurred in players (warning)
COVER_ACX_PX = 2400                  # ACX: square, at least 2400 x 2400 (warning)
COVER_MAX_PIXELS = 64_000_000        # decompression-bomb limit (8000 x 8000)



# --------------------------------------------------------------------------------------------
# Typed objects
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentingSettings:
    min_seconds: float = 5.0
    max_seconds: float = 20.0
    chars_per_second: float = 14.0   # default speaking rate; voices may override
    read_headings: bool = True       # chapter headings are read aloud by the narration voice


@dataclass(frozen=True)
class Voice:
    name: str
    reference: Path | None
    transcript: str | None
    seed: int
    sampling: SamplingParams
    chars_per_second: float
    draft_voice: str | None = None
    calibration_text: str = DEFAULT_CALIBRATION_TEXT
    reference_seconds: float | None = None

    @property
    def seed_only(self) -> bool:
        return self.reference is None

    @property
    def prompt_transcript(self) -> str:
        """Transcript of the audio prompt: the reference transcript, or the calibration line."""
        return self.transcript if self.reference is not None else self.calibration_text

    @property
    def calibration_seconds(self) -> float:
        return len(self.calibration_text) / self.chars_per_second


def prompt_frames_for(voice: Voice) -> int:
    """Decoder frames the voice's audio prompt occupies.

    Reference voices: the reference duration at 86.13 frames/s (rounded up). Seed-only voices:
    the calibration line's estimated duration times CALIBRATION_MARGIN; the pipeline must cap the
    calibration generation at this many frames so the budgets computed by the planner hold.
    """
    if voice.reference is not None:
        return math.ceil((voice.reference_seconds or 0.0) * FRAME_RATE)
    return math.ceil(voice.calibration_seconds * FRAME_RATE * CALIBRATION_MARGIN)


@dataclass(frozen=True)
class Project:
    manifest_path: Path
    root: Path
    title: str
    author: str
    narrator: str | None
    genre: str
    description: str | None
    language: str
    cover: Path | None
    manuscripts: tuple[Path, ...]
    chapters: tuple[int, ...] | None
    voices: dict[str, Voice]
    characters: dict[str, str]        # character name as written in the YAML -> voice name (match case-insensitively)
    narration_voice: str
    seed: int
    sampling: SamplingParams
    segmenting: SegmentingSettings
    lexicon: dict[str, str]
    delivery: DeliverySettings
    qc: QCSettings
    model: str | None
    output_dir: Path
    work_dir: Path
    raw_slots: dict[str, str | None] = field(default_factory=dict)   # {"S1": voice, "S2": voice|None}
    character_names: dict[str, str] = field(default_factory=dict)    # casefolded -> name as written in YAML
    warnings: tuple[str, ...] = ()
    normalize: bool = True            # text normalization for speech (dia_core.script.normalize)
    year: int | None = None                       # publication year (tags)
    podcast: PodcastSettings | None = None        # `podcast:` (dia_core.script.publishing)
    acx: AcxSettings = field(default_factory=AcxSettings)   # `acx:`

    @property
    def manifest_label(self) -> str:
        """The manifest path as shown in messages (relative to the working directory when inside it)."""
        return display_path(self.manifest_path)

    def voice_for_character(self, name: str) -> str | None:
        """The voice of ``name`` as written in a manuscript (case-insensitive), or None."""
        key = self.character_names.get(name.strip().casefold())
        return self.characters[key] if key is not None else None

    def relpath(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

TOP_KEYS = ("title", "author", "narrator", "genre", "description", "language", "cover",
            "manuscript", "chapters", "voices", "characters", "narrator_voice", "raw_slots",
            "seed", "sampling", "segmenting", "lexicon", "delivery", "qc", "model", "output_dir", "normalize",
            "year", "podcast", "acx")
VOICE_KEYS = ("reference", "transcript", "seed", "sampling", "chars_per_second", "draft_voice",
              "calibration_text")


def _sampling(v: Validator, y: Located | None, path: str, base: SamplingParams) -> SamplingParams:
    if y is None:
        return base
    m = v.mapping(y, path, tuple(RANGES))
    changes = {}
    for k, item in m.items():
        check_param(k, item.value, file=v.file, line=item.line, field=join(path, k))
        changes[k] = item.value
    return base.replace(**changes)


def parse_chapter_selection(spec, *, file=None, line=None, field="chapters") -> tuple[int, ...] | None:
    """``"1,3-4"`` / ``[1, 3, 4]`` / ``"all"`` -> sorted 1-based chapter numbers (None = all).

    ``all`` is matched ignoring case and surrounding spaces (``--chapters ALL`` as in YAML)."""
    if spec is None or (isinstance(spec, str) and spec.strip().casefold() == ALL_CHAPTERS):
        return None
    items: list[int] = []
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = [spec]
    if isinstance(spec, list):
        for x in spec:
            if isinstance(x, bool) or not isinstance(x, int) or x < 1:
                raise InputError(f"chapter numbers are integers >= 1, got {x!r}", file=file, line=line,
                                 field=field)
            items.append(x)
    elif isinstance(spec, str):
        for part in spec.split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
            if not m:
                raise InputError(f"bad chapter selection {spec!r} (use e.g. 1,3-4)", file=file, line=line,
                                 field=field)
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            if a < 1 or b < a:
                raise InputError(f"bad chapter range {part!r}", file=file, line=line, field=field)
            if b - a > 100_000:
                raise InputError(f"chapter range {part!r} too large", file=file, line=line, field=field)
            items.extend(range(a, b + 1))
    else:
        raise InputError(f"must be a list of chapter numbers or a string like '1,3-4', got {spec!r}",
                         file=file, line=line, field=field)
    if not items:
        raise InputError("empty chapter selection", file=file, line=line, field=field)
    return tuple(sorted(set(items)))


def _segmenting(v: Validator, y: Located | None) -> SegmentingSettings:
    d = SegmentingSettings()
    if y is None:
        return d
    m = v.mapping(y, "segmenting", tuple(f.name for f in fields(SegmentingSettings)))
    mn = v.number(m["min_seconds"], "segmenting.min_seconds", 1, 30) if "min_seconds" in m else d.min_seconds
    mx = v.number(m["max_seconds"], "segmenting.max_seconds", 3, 35) if "max_seconds" in m else d.max_seconds
    if mx <= mn:
        raise v.error(f"must be larger than min_seconds ({mn:g})", m.get("max_seconds") or m["min_seconds"],
                      "segmenting.max_seconds")
    cps = (v.number(m["chars_per_second"], "segmenting.chars_per_second", 5, 40)
           if "chars_per_second" in m else d.chars_per_second)
    rh = v.boolean(m["read_headings"], "segmenting.read_headings") if "read_headings" in m else d.read_headings
    return SegmentingSettings(mn, mx, cps, rh)


def _qc(v: Validator, y: Located | None) -> QCSettings:
    d = QCSettings()
    if y is None:
        return d
    m = v.mapping(y, "qc", tuple(f.name for f in fields(QCSettings)))
    g = lambda k, fn, *a: fn(m[k], f"qc.{k}", *a) if k in m else getattr(d, k)  # noqa: E731
    q = QCSettings(
        max_attempts=g("max_attempts", v.integer, 1, 20),
        duration_ratio_min=g("duration_ratio_min", v.number, 0.05, 1.0),
        duration_ratio_max=g("duration_ratio_max", v.number, 1.0, 20.0),
        max_internal_silence_s=g("max_internal_silence_s", v.number, 0.1, 60.0),
        **_qc_listening(v, m, g),
    )
    if q.duration_ratio_max <= q.duration_ratio_min:
        raise v.error("must be larger than duration_ratio_min", m.get("duration_ratio_max"), "qc.duration_ratio_max")
    return q


def _qc_listening(v: Validator, m: dict, g) -> dict:
    """`qc:` listening keys (dia_core.listen; defaults and evidence in docs/project-yaml.md)."""
    # YAML 1.1 reads a bare `off` as false: `asr: off` and `asr: false` both switch recognition off
    asr = ("off" if m["asr"].value is False else g("asr", v.string)) if "asr" in m else QCSettings().asr
    if asr not in ASR_CHOICES:
        raise v.error(f"must be one of {', '.join(ASR_CHOICES)}, got {asr!r}", m["asr"], "qc.asr")
    return dict(
        asr=asr, asr_model=g("asr_model", v.string) if "asr_model" in m else None,
        min_word_hits=g("min_word_hits", v.number, 0.0, 1.0), max_wer=g("max_wer", v.number, 0.0, 5.0),
        max_missing_at_end=g("max_missing_at_end", v.integer, 0, 1000),
        max_rate_deviation=g("max_rate_deviation", v.number, 0.05, 10.0),
        voice_check=g("voice_check", v.boolean), min_voice_similarity=g("min_voice_similarity", v.number, -1.0, 1.0),
        voice_margin=g("voice_margin", v.number, 0.0, 2.0),
        mos=g("mos", v.boolean), min_mos=g("min_mos", v.number, 1.0, 5.0))


ASR_CHOICES = ("auto", "pocketsphinx", "whisper", "off")


def _float_fields(v: Validator, m: dict[str, Located], path: str, spec: dict[str, tuple[float, float]], default):
    out = {}
    for k, (lo, hi) in spec.items():
        out[k] = v.number(m[k], join(path, k), lo, hi) if k in m else getattr(default, k)
    return out


def _delivery(v: Validator, y: Located | None) -> DeliverySettings:
    d = DeliverySettings()
    if y is None:
        return d
    m = v.mapping(y, "delivery", tuple(f.name for f in fields(DeliverySettings)))
    kw: dict[str, Any] = {}
    if "profile" in m:
        p = v.string(m["profile"], "delivery.profile")
        if p not in PROFILES:
            raise v.error(f"unknown profile {p!r} (one of {', '.join(PROFILES)})", m["profile"], "delivery.profile")
        kw["profile"] = p
    profile = kw.get("profile", d.profile)
    if "target_lufs" in m and m["target_lufs"].value is not None:
        kw["target_lufs"] = v.number(m["target_lufs"], "delivery.target_lufs", -40, -5)
    if "true_peak_db" in m and m["true_peak_db"].value is not None:
        kw["true_peak_db"] = v.number(m["true_peak_db"], "delivery.true_peak_db", -20, 0)
    if profile == "custom" and "target_lufs" not in kw:
        raise v.error("the custom profile needs target_lufs", m.get("profile", y), "delivery.target_lufs")
    if "strict" in m:
        kw["strict"] = v.boolean(m["strict"], "delivery.strict")
    for key, allowed, allow_empty in (("formats", FORMATS, False), ("captions", CAPTIONS, True)):
        if key in m:
            item = m[key]
            vals = item.value if isinstance(item.value, list) else [item]
            if not isinstance(item.value, list):
                vals = [item]
            out = []
            for e in vals:
                s = v.string(e, f"delivery.{key}")
                if s not in allowed:
                    raise v.error(f"unknown format {s!r} (one of {', '.join(allowed)})", e, f"delivery.{key}")
                if s not in out:
                    out.append(s)
            if not out and not allow_empty:
                raise v.error("needs at least one format", item, f"delivery.{key}")
            kw[key] = tuple(out)
    if "mp3_bitrate_kbps" in m:
        kw["mp3_bitrate_kbps"] = v.integer(m["mp3_bitrate_kbps"], "delivery.mp3_bitrate_kbps", 32, 320)
        if profile == "acx" and kw["mp3_bitrate_kbps"] < 192:
            raise v.error("ACX needs 192 kbps or more", m["mp3_bitrate_kbps"], "delivery.mp3_bitrate_kbps")
    if "room_tone_db" in m:
        kw["room_tone_db"] = v.number(m["room_tone_db"], "delivery.room_tone_db", -120, -40)
    if "pcm_bits" in m:
        kw["pcm_bits"] = v.integer(m["pcm_bits"], "delivery.pcm_bits", -10**9, 10**9)
        if kw["pcm_bits"] not in PCM_BITS:   # the encoder's own list: what validates, renders
            raise v.error(f"must be {' or '.join(map(str, PCM_BITS))}, got {kw['pcm_bits']!r}", m["pcm_bits"],
                          "delivery.pcm_bits")
    if "aac_bitrate_kbps" in m:
        kw["aac_bitrate_kbps"] = v.integer(m["aac_bitrate_kbps"], "delivery.aac_bitrate_kbps", 32, 320)
    if "tempo_engine" in m:
        engine = v.string(m["tempo_engine"], "delivery.tempo_engine")
        if engine not in TEMPO_ENGINES:
            raise v.error(f"unknown tempo engine {engine!r} (one of {', '.join(TEMPO_ENGINES)})",
                          m["tempo_engine"], "delivery.tempo_engine")
        kw["tempo_engine"] = engine
    # fields added to DeliverySettings later: validated by the type of their default
    for f in fields(DeliverySettings):
        k = f.name
        if k in m and k not in kw and k not in ("target_lufs", "true_peak_db", "pauses", "trim"):
            default = getattr(d, k)
            path = f"delivery.{k}"
            if isinstance(default, bool):
                kw[k] = v.boolean(m[k], path)
            elif isinstance(default, int):
                kw[k] = v.integer(m[k], path, -10**9, 10**9)
            elif isinstance(default, float):
                kw[k] = v.number(m[k], path, -1e9, 1e9)
            elif isinstance(default, str):
                kw[k] = v.string(m[k], path)
            else:  # pragma: no cover
                raise v.error("cannot be set from YAML", m[k], path)
    if "pauses" in m:
        pm = v.mapping(m["pauses"], "delivery.pauses", tuple(f.name for f in fields(Pauses)))
        kw["pauses"] = Pauses(**_float_fields(v, pm, "delivery.pauses",
                                              {f.name: (0.0, 30.0) for f in fields(Pauses)}, Pauses()))
        if profile == "acx":
            p = kw["pauses"]
            if not 0.5 <= p.chapter_start <= 1.0:
                v.warn("ACX wants 0.5-1 s of room tone at the start", pm.get("chapter_start"), "delivery.pauses.chapter_start")
            if not 1.0 <= p.chapter_end <= 5.0:
                v.warn("ACX wants 1-5 s of room tone at the end", pm.get("chapter_end"), "delivery.pauses.chapter_end")
    if "trim" in m:
        tm = v.mapping(m["trim"], "delivery.trim", tuple(f.name for f in fields(Trim)))
        kw["trim"] = Trim(**_float_fields(v, tm, "delivery.trim", {
            "threshold_db": (-100.0, -10.0), "padding_ms": (0.0, 2000.0), "crossfade_ms": (0.0, 500.0)}, Trim()))
    return DeliverySettings(**kw)


def _reference_seconds(v: Validator, path: Path, y: Located, fpath: str) -> float:
    try:
        info = soundfile.info(str(path))
    except Exception as e:  # soundfile raises RuntimeError / LibsndfileError / TypeError
        raise v.error(f"cannot read audio file ({str(e).strip() or type(e).__name__})", y, fpath) from None
    if not info.samplerate or info.frames <= 0:
        raise v.error("audio file is empty", y, fpath)
    _check_wav_complete(v, path, y, fpath)
    seconds = info.frames / info.samplerate
    if seconds > REFERENCE_MAX_SECONDS:
        raise v.error(f"reference is {seconds:.1f} s long (limit {REFERENCE_MAX_SECONDS:g} s; 5-10 s is best)", y, fpath)
    lo, hi = REFERENCE_GOOD_RANGE
    if not lo <= seconds <= hi:
        v.warn(f"reference is {seconds:.1f} s long; 5-10 s works best", y, fpath)
    _check_reference_levels(v, path, y, fpath)
    return seconds


def _check_reference_levels(v: Validator, path: Path, y: Located, fpath: str) -> None:
    """Digital silence is an error; a near-silent (RMS under REFERENCE_QUIET_DB) or clipped
    (REFERENCE_CLIP_RUN samples in a row at full scale) reference is a warning: Dia copies the
    prompt's level and distortion into every segment of the voice."""
    try:
        x, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception:  # header readable, samples not: reported by whoever decodes it (not a level problem)
        return
    if x.size == 0:
        return
    mag = np.abs(x).max(axis=1)
    peak = float(mag.max())
    if peak == 0.0:
        raise v.error("reference is digital silence (every sample is 0): record the voice", y, fpath)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    rms_db = 20 * math.log10(rms) if rms > 0 else -math.inf
    if rms_db < REFERENCE_QUIET_DB:
        v.warn(f"reference is nearly silent (RMS {rms_db:.0f} dBFS, peak {20 * math.log10(peak):.0f} dBFS): "
               "Dia copies the prompt's level and noise; use a clip recorded at speaking level "
               "(RMS about -20 dBFS)", y, fpath)
    full = mag >= REFERENCE_CLIP_LEVEL
    if full.sum() >= REFERENCE_CLIP_RUN:
        k = REFERENCE_CLIP_RUN
        run = np.ones(len(full) - k + 1, dtype=bool)
        for i in range(k):
            run &= full[i:len(full) - k + 1 + i]
        starts = np.flatnonzero(run & ~np.concatenate(([False], run[:-1])))
        if len(starts):
            v.warn(f"reference clips: {len(starts)} run{'s' if len(starts) != 1 else ''} of {k}+ samples at "
                   f"full scale (first at {starts[0] / rate:.2f} s); Dia imitates the distortion: use an "
                   "unclipped recording (peaks below about -3 dBFS)", y, fpath)


def _check_wav_complete(v: Validator, path: Path, y: Located, fpath: str) -> None:
    """A RIFF/WAVE file whose data chunk is shorter than its header says was cut off (readers
    silently play the part that is there, so the prompt would not match its transcript)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return
            size = path.stat().st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, n = struct.unpack("<4sI", f.read(8))
                if cid == b"data":
                    have = size - pos - 8
                    if n not in (0, 0xFFFFFFFF) and n > have:
                        raise v.error(f"truncated WAV: the header declares {n} bytes of audio, the file has "
                                      f"{have}", y, fpath)
                    return
                pos += 8 + n + (n & 1)
    except OSError as e:
        raise v.error(f"cannot read audio file ({e.strerror or e})", y, fpath) from None


def _check_cover(v: Validator, path: Path, y: Located, profile: str, field: str = "cover") -> None:
    """The cover must be a JPEG or PNG that decodes (what the M4B attaches as its picture, copied as
    is); too small is an error, not square / small (/ under ACX's 2400 px) is a warning."""
    from PIL import Image   # only projects with a cover pay for the import

    def bad(msg: str):
        return v.error(msg, y, field)

    kind = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                kind = COVER_FORMATS.get(im.format or "")
                if kind is None:
                    raise bad(f"a {im.format or 'unknown'} image: the cover must be JPEG or PNG")
                w, h = im.size
                mode = im.mode
                if w * h > COVER_MAX_PIXELS:
                    raise bad(f"image is {w}x{h} px, over the {COVER_MAX_PIXELS // 1_000_000} megapixel limit "
                              "(a decompression bomb?); 2400-3200 px square is plenty")
                im.verify()              # structure and checksums (PNG CRCs)
            with Image.open(path) as im:
                im.load()                # decode every pixel: truncated or corrupt data fails here
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise bad(f"image too large to decode safely ({e})") from None
    except Image.DecompressionBombWarning as e:
        raise bad(f"image too large to decode safely ({e})") from None
    except Image.UnidentifiedImageError:
        head = path.read_bytes()[:256].lstrip() if path.stat().st_size else b""
        what = ("an empty file" if not path.stat().st_size else
                "an SVG or other text file" if head[:1] == b"<" else "not an image Pillow can read")
        raise bad(f"not a JPEG or PNG image ({what})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        raise bad(f"cannot decode the {kind or 'image'} ({str(e).strip() or type(e).__name__}): "
                  "the file is truncated or corrupt") from None
    if min(w, h) < COVER_MIN_PX:
        raise bad(f"image is {w}x{h} px: too small for a cover (at least {COVER_MIN_PX} px a side; "
                  f"{COVER_ACX_PX} x {COVER_ACX_PX} for ACX)")
    square = abs(w - h) <= 0.01 * max(w, h)
    if profile == "acx":
        if not square or min(w, h) < COVER_ACX_PX:
            v.warn(f"cover is {w}x{h} px: ACX wants a square cover of at least {COVER_ACX_PX}x{COVER_ACX_PX} px",
                   y, field)
    elif not square:
        v.warn(f"cover is {w}x{h} px: audiobook and podcast covers are square (players crop or letterbox it)",
               y, field)
    elif min(w, h) < COVER_SMALL_PX:
        v.warn(f"cover is {w}x{h} px: players show covers at {COVER_SMALL_PX} px and more; it will look blurred",
               y, field)
    if mode == "CMYK":
        v.warn(f"cover is a CMYK {kind}: players and ACX expect RGB", y, field)


def _prompt_text(v: Validator, y: Located, path: str, max_len: int) -> str:
    s = " ".join(v.string(y, path, max_len=max_len).split())
    if SPEAKER_TAG_RE.search(s):
        raise v.error("plain text only: leave out [S1]/[S2] tags (the planner adds them)", y, path)
    return s


def _check_prompt_budget(v: Validator, voice: Voice, m: dict[str, Located], y: Located,
                         proj_tokens_y: Located | None) -> None:
    """The voice's audio prompt plus MIN_TEXT_SECONDS of text must fit one generation of
    min(max_new_tokens, 3072) decoder positions (params.decoder_budget: BOS, prompt, text, the
    15-frame delay tail); else every segment of the voice would be unplannable, and the planner
    could only blame the first word. Reported at the max_new_tokens that sets the budget (the
    voice's own, else the reference / calibration line, naming the project's)."""
    path = f"voices.{voice.name}"
    tokens = voice.sampling.max_new_tokens
    frames = prompt_frames_for(voice)
    budget = _params.decoder_budget(tokens, frames)   # frames left for text
    need = math.ceil(MIN_TEXT_SECONDS * FRAME_RATE)
    if budget >= need:
        return
    available = frames + budget                        # min(max_new_tokens, 3072) - BOS - delay tail
    required = 1 + frames + need + _params.MAX_DELAY   # <= 1 + 1500 + 259 + 15: always within 3072 here
    if voice.reference is not None:
        what = f"the reference clip ({voice.reference_seconds:.1f} s) needs {frames} decoder frames"
        shorter = "a shorter reference clip"
    else:
        what = (f"the calibration line (~{voice.calibration_seconds * CALIBRATION_MARGIN:.1f} s) needs "
                f"{frames} decoder frames")
        shorter = "a shorter calibration_text"
    left = f"leaving {budget} for text" if budget > 0 else "leaving none for text"
    msg = (f"{what} of the {available} available with max_new_tokens {tokens}, {left} (at least {need}, "
           f"{MIN_TEXT_SECONDS:g} s of speech, are needed): raise max_new_tokens to at least {required} or "
           f"use {shorter}")
    sy = m.get("sampling")
    own = sy.value.get("max_new_tokens") if sy is not None and isinstance(sy.value, dict) else None
    if own is not None:
        raise v.error(msg, own, f"{path}.sampling.max_new_tokens")
    if proj_tokens_y is not None:
        msg += f" (max_new_tokens is set by sampling.max_new_tokens at line {proj_tokens_y.line})"
    key = "reference" if voice.reference is not None else "calibration_text"
    raise v.error(msg, m.get(key, y), f"{path}.{key}" if key in m else path)


def _voice(v: Validator, name: str, y: Located, key_line: int, proj_seed_y: Located | None, project_sampling: SamplingParams,
           default_cps: float, proj_tokens_y: Located | None = None) -> Voice:
    path = f"voices.{name}"
    if not VOICE_NAME_RE.match(name):
        raise v.error("voice names use letters, digits, '_', '.', '-'", path=path, line=key_line)
    if y.value is None:
        y = Located({}, key_line, {})
    m = v.mapping(y, path, VOICE_KEYS)
    y = Located(y.value, key_line, y.key_lines)   # voice-level errors point at the voice's name
    ref = v.path(m["reference"], path + ".reference") if "reference" in m else None
    transcript = _prompt_text(v, m["transcript"], path + ".transcript", 900) if "transcript" in m else None
    if ref is not None and transcript is None:
        raise v.error("a voice with a reference needs the reference's exact transcript", y, path + ".transcript",
                      line=m["reference"].line)
    if transcript is not None and ref is None:
        raise v.error("a transcript needs a reference audio file (or remove it for a seed-only voice)",
                      m["transcript"], path + ".reference")
    if "seed" in m:
        check_seed(m["seed"].value, file=v.file, line=m["seed"].line, field=path + ".seed")
        seed = m["seed"].value
    elif ref is None:
        raise v.error("a seed-only voice needs a seed (or a reference + transcript)", y, path + ".seed")
    else:
        seed = proj_seed_y.value if proj_seed_y is not None else 0
    sampling = _sampling(v, m.get("sampling"), path + ".sampling", project_sampling)
    cps = v.number(m["chars_per_second"], path + ".chars_per_second", 5, 40) if "chars_per_second" in m else default_cps
    draft = v.string(m["draft_voice"], path + ".draft_voice", max_len=100) if "draft_voice" in m else None
    if draft is not None and not re.fullmatch(r"[\w.+\-/]+", draft):
        raise v.error(f"not an espeak-ng voice name: {draft!r}", m["draft_voice"], path + ".draft_voice")
    calib = (_prompt_text(v, m["calibration_text"], path + ".calibration_text", 300)
             if "calibration_text" in m else DEFAULT_CALIBRATION_TEXT)
    if "calibration_text" in m and ref is not None:
        raise v.error("calibration_text is only for seed-only voices (this voice has a reference)",
                      m["calibration_text"], path + ".calibration_text")
    ref_seconds = _reference_seconds(v, ref, m["reference"], path + ".reference") if ref is not None else None
    if ref_seconds is not None and len(transcript) > MAX_TRANSCRIPT_CPS * max(ref_seconds, 0.5):
        raise v.error(f"reference is {ref_seconds:.1f} s long but its transcript has {len(transcript)} characters "
                      f"(more than {MAX_TRANSCRIPT_CPS} per second): truncated audio or the wrong transcript?",
                      m["reference"], path + ".reference")
    voice = Voice(name=name, reference=ref, transcript=transcript, seed=seed, sampling=sampling,
                  chars_per_second=cps, draft_voice=draft, calibration_text=calib,
                  reference_seconds=ref_seconds)
    if prompt_frames_for(voice) > 1500:
        raise v.error(f"voice prompt needs {prompt_frames_for(voice)} decoder frames; keep it under about "
                      "15 s so text still fits in Dia's 3072 positions", m.get("reference", y), path)
    _check_prompt_budget(v, voice, m, y, proj_tokens_y)
    return voice


def _voice_ref(v: Validator, y: Located, path: str, voices: dict[str, Voice]) -> str:
    name = v.string(y, path, max_len=64)
    if name not in voices:
        raise v.error(f"voice {name!r} is not defined in voices", y, path)
    return name


def parse_lexicon(v: Validator, ly: Located | None) -> dict[str, str]:
    """A `lexicon:` mapping (project.yaml, review.yaml): word or phrase -> plain one-line respelling."""
    lexicon: dict[str, str] = {}
    if ly is None or ly.value is None:
        return lexicon
    lmap = v.mapping(ly, "lexicon", tuple(ly.value) if isinstance(ly.value, dict) else ())
    for word, item in lmap.items():
        p = f"lexicon.{word}"
        if not word.strip() or word != word.strip() or CONTROL_RE.search(word) or SPEAKER_TAG_RE.search(word):
            raise v.error("lexicon entries are words or phrases without surrounding spaces", path=p,
                          line=ly.key_lines[word])
        if isinstance(item.value, (int, float)) and not isinstance(item.value, bool):
            item = Located(str(item.value), item.line)
        rep = v.string(item, p, max_len=500)
        if SPEAKER_TAG_RE.search(rep) or "\n" in rep:
            raise v.error("replacement must be plain text on one line without [S1]/[S2]", item, p)
        lexicon[word] = rep
    return lexicon


def load_project(path: str | Path) -> Project:
    """Load and validate ``path`` (a project.yaml). Raises InputError on any problem."""
    given = str(path)
    mpath = Path(path)
    if mpath.is_dir():
        inside = mpath / "project.yaml"
        hint = f"; did you mean {inside}?" if inside.is_file() else " (give the path of its project.yaml)"
        raise InputError(f"is a folder, not a manifest{hint}", file=given)
    if not mpath.is_file():
        raise InputError("manifest not found" if not mpath.exists() else "not a regular file", file=given)
    raw = read_bounded(mpath, MAX_MANIFEST_BYTES, label=given, what="manifest")
    if b"\x00" in raw:
        raise InputError("binary file: a manifest is UTF-8 YAML text", file=given)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte 0x{raw[e.start]:02x})", file=given, line=line) from None
    root = mpath.resolve().parent
    tree = parse_yaml(text, given)
    if tree is None:
        raise InputError("empty manifest", file=given)
    v = Validator(given, root)
    m = v.mapping(tree, "", TOP_KEYS)

    def req(key):
        if key not in m:
            raise v.error("required key missing", tree, key, line=tree.line)
        return m[key]

    title = v.string(req("title"), "title", max_len=500)
    author = v.string(req("author"), "author", max_len=500)
    opt = lambda k, fn=v.string, **kw: fn(m[k], k, **kw) if k in m and m[k].value is not None else None  # noqa: E731
    narrator = opt("narrator", max_len=500)
    genre = opt("genre", max_len=100) or "Audiobook"
    description = opt("description", max_len=5000)
    language = opt("language", max_len=35) or "en"
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", language):
        raise v.error(f"not a language tag: {language!r} (e.g. en, en-US)", m["language"], "language")
    cover = v.path(m["cover"], "cover") if "cover" in m and m["cover"].value is not None else None

    ms_y = req("manuscript")
    ms_items = ms_y.value if isinstance(ms_y.value, list) else [ms_y]
    if not ms_items:
        raise v.error("needs at least one manuscript file", ms_y, "manuscript")
    manuscripts = tuple(v.path(i, "manuscript") for i in ms_items)

    chapters = None
    if "chapters" in m:
        c = m["chapters"]
        chapters = parse_chapter_selection(c.plain(), file=given, line=c.line, field="chapters")

    seed_y = m.get("seed")
    seed = 0
    if seed_y is not None:
        check_seed(seed_y.value, file=given, line=seed_y.line, field="seed")
        seed = seed_y.value
    sampling = _sampling(v, m.get("sampling"), "sampling", SamplingParams())
    segmenting = _segmenting(v, m.get("segmenting"))

    vy = req("voices")
    vmap = v.mapping(vy, "voices", tuple(vy.value) if isinstance(vy.value, dict) else ())
    if not vmap:
        raise v.error("define at least one voice", vy, "voices")
    sy = m.get("sampling")
    proj_tokens_y = sy.value.get("max_new_tokens") if sy is not None and isinstance(sy.value, dict) else None
    voices = {name: _voice(v, name, item, vy.key_lines[name], seed_y, sampling, segmenting.chars_per_second,
                           proj_tokens_y)
              for name, item in vmap.items()}
    seeds: dict[int, str] = {}
    for vo in voices.values():
        if vo.seed_only:
            if vo.seed in seeds:
                v.warn(f"seed-only voices {seeds[vo.seed]!r} and {vo.name!r} share seed {vo.seed} "
                       "and will sound alike", vmap[vo.name], f"voices.{vo.name}.seed")
            seeds[vo.seed] = vo.name

    characters: dict[str, str] = {}
    character_names: dict[str, str] = {}
    if "characters" in m and m["characters"].value is not None:
        cy = m["characters"]
        cmap = v.mapping(cy, "characters", tuple(cy.value) if isinstance(cy.value, dict) else ())
        for cname, item in cmap.items():
            p = f"characters.{cname}"
            if not CHARACTER_NAME_RE.match(cname.strip()):
                raise v.error("character names are letters, digits, spaces, ' . - (up to 40, no ':')",
                              path=p, line=cy.key_lines[cname])
            key = cname.strip().casefold()
            if key in character_names:
                raise v.error(f"same character as {character_names[key]!r} (names match case-insensitively)",
                              path=p, line=cy.key_lines[cname])
            characters[cname.strip()] = _voice_ref(v, item, p, voices)
            character_names[key] = cname.strip()

    first_voice = next(iter(voices))
    narration_voice = _voice_ref(v, m["narrator_voice"], "narrator_voice", voices) if "narrator_voice" in m else first_voice
    second = next((n for n in voices if n != narration_voice), None)
    raw_slots: dict[str, str | None] = {"S1": narration_voice, "S2": second}
    if "raw_slots" in m:
        rm = v.mapping(m["raw_slots"], "raw_slots", ("S1", "S2"))
        for slot, item in rm.items():
            raw_slots[slot] = _voice_ref(v, item, f"raw_slots.{slot}", voices)

    lexicon = parse_lexicon(v, m.get("lexicon"))

    delivery = _delivery(v, m.get("delivery"))
    if cover is not None:
        _check_cover(v, cover, m["cover"], delivery.profile)
    qc = _qc(v, m.get("qc"))
    year = v.integer(m["year"], "year", 1000, 9999) if "year" in m and m["year"].value is not None else None
    podcast = parse_podcast(v, m.get("podcast"), author=author, language=language,
                            check_image=lambda p, y, f: _check_cover(v, p, y, "podcast", f),
                            key_line=tree.key_lines.get("podcast"))
    acx = parse_acx(v, m.get("acx"))

    model = None
    if "model" in m and m["model"].value is not None:
        s = v.string(m["model"], "model", max_len=4096)
        local = (root / Path(s).expanduser()).resolve()
        if local.exists():
            # a manifest reads files inside its project only: shared weights come from --model
            if not local.is_relative_to(root):
                raise v.error(f"path {s!r} escapes the project directory (give shared weights with --model)",
                              m["model"], "model")
            model = str(local)
        elif HF_REPO_RE.match(s) and not s.startswith((".", "/", "~")):
            model = s
        else:
            raise v.error(f"model path not found: {s} (use a local path or a Hugging Face repo id)", m["model"], "model")

    output_dir = (v.path(m["output_dir"], "output_dir", must_exist=False) if "output_dir" in m
                  else root / "out")

    return Project(
        manifest_path=mpath.resolve(), root=root, title=title, author=author, narrator=narrator, genre=genre,
        description=description, language=language, cover=cover, manuscripts=manuscripts, chapters=chapters,
        voices=voices, characters=characters, narration_voice=narration_voice, seed=seed, sampling=sampling,
        segmenting=segmenting, lexicon=lexicon, delivery=delivery, qc=qc, model=model, output_dir=output_dir,
        work_dir=root / ".dia-studio", raw_slots=raw_slots, character_names=character_names,
        warnings=tuple(v.warnings), year=year, podcast=podcast, acx=acx,
        normalize=v.boolean(m["normalize"], "normalize") if "normalize" in m else True,
    )
