"""Settings that more than one room reads: delivery (profile, formats, pauses, trimming, room tone) and QC.

These dataclasses are what the `delivery:` and `qc:` sections of project.yaml are validated into
(dia_core.script.project); their field names are the YAML keys. Audio finishing and QC read them
without importing the YAML loader. Profile numbers: docs/delivery-specs.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PROFILES = ("acx", "podcast", "apple", "spotify", "ebu-r128", "custom")
FORMATS = ("mp3", "flac", "wav", "m4b")
CAPTIONS = ("vtt", "srt")
TEMPO_ENGINES = ("auto", "atempo", "rubberband", "rubberband-hq")   # dia_core.audio.tempo; auto: the first here
# PCM sample sizes of the final encode (wav, flac, and the mp3 encoder's input): the one list that the
# manifest check (script.project) and the encoder (audio.encode) both read. No 32: ffmpeg 5's FLAC
# encoder writes 24 bits when asked for 32 (32-bit FLAC is experimental in later ones), and 24 bits
# already hold Dia's output far below its noise floor.
PCM_BITS = (16, 24)
# ACX rejects a chapter file longer than this (planning warns, the delivery check fails it).
ACX_MAX_MINUTES = 120


@dataclass(frozen=True)
class Pauses:
    """Silence (room tone) inserted between segments, in seconds, by boundary kind."""
    sentence: float = 0.25   # two segments cut inside one paragraph
    turn: float = 0.45       # speaker change
    paragraph: float = 0.7
    scene: float = 1.5       # scene break (***, ---)
    chapter_start: float = 0.75  # head room tone; acx needs 0.5-1 s
    chapter_end: float = 2.5     # tail room tone; acx needs 1-5 s


@dataclass(frozen=True)
class Trim:
    """Leading/trailing silence trimming of each generated segment."""
    threshold_db: float = -45.0   # below this (dBFS, short-term RMS) counts as silence
    padding_ms: float = 40.0      # keep this much around detected speech
    crossfade_ms: float = 8.0     # fade at every join to avoid clicks


@dataclass(frozen=True)
class DeliverySettings:
    profile: str = "acx"                 # acx | podcast | apple | spotify | ebu-r128 | custom
    target_lufs: float | None = None     # custom profile: integrated loudness target
    true_peak_db: float | None = None    # custom profile: true-peak ceiling (dBTP)
    strict: bool = False                 # a chapter that misses its profile fails the run
    formats: tuple[str, ...] = ("mp3", "m4b")
    captions: tuple[str, ...] = ("vtt", "srt")
    mp3_bitrate_kbps: int = 192
    room_tone_db: float = -70.0          # level of the generated room tone (dBFS RMS)
    pcm_bits: int = 24                   # PCM_BITS: size at the final encode (wav/flac/mp3 input); 16 gets TPDF dither
    aac_bitrate_kbps: int = 96           # m4b (AAC, mono); at 64 the encode lifts speech peaks ~0.5 dB
    tempo_engine: str = "auto"           # auto | atempo | rubberband | rubberband-hq (dia_core.audio.tempo)
    pauses: Pauses = field(default_factory=Pauses)
    trim: Trim = field(default_factory=Trim)


@dataclass(frozen=True)
class QCSettings:
    """Manifest ``qc:``, and the one source of the QC defaults (dia_core.audio.qc.QCThresholds)."""
    max_attempts: int = 3
    duration_ratio_min: float = 0.5
    duration_ratio_max: float = 2.0
    max_internal_silence_s: float = 2.0
    # Listening (dia_core.listen; calibration and evidence: docs/project-yaml.md, `qc`)
    asr: str = "auto"                   # auto (pocketsphinx for --draft, whisper for Dia) | pocketsphinx | whisper | off
    asr_model: str | None = None        # Whisper model id (HF cache); default dia_core.listen.words.DEFAULT_WHISPER
    min_word_hits: float = 0.3          # PocketSphinx: share of the text's words heard in order
    max_wer: float = 0.3                # Whisper: word error rate
    max_missing_at_end: int = 6         # words not heard after the last one that was (truncation)
    max_rate_deviation: float = 0.35    # words/min against the voice's median in the render
    voice_check: bool = True            # Resemblyzer similarity of each turn to its voice
    min_voice_similarity: float = 0.75
    voice_margin: float = 0.05          # a turn fails when another voice is closer than its own by more
    mos: bool = False                   # DNSMOS estimate (speechmos)
    min_mos: float = 2.0
