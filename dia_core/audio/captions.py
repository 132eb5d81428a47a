"""WebVTT and SRT captions from segment timings (speaker name as the WebVTT cue voice)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text

__all__ = ["Cue", "write_vtt", "write_srt", "vtt_text", "srt_text", "read_vtt", "read_srt",
           "cues_from_segments", "clean_text", "readable_cues"]


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    speaker: str | None
    text: str


_TAG = re.compile(r"\[S\d+\]\s*")


def clean_text(text: str) -> str:
    """Dia's speaker tags removed, whitespace collapsed (non-verbal cues like (laughs) kept)."""
    return re.sub(r"\s+", " ", _TAG.sub(" ", text)).strip()


def _ts(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _vtt_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _check(cues) -> list[Cue]:
    cues = list(cues)
    for c in cues:
        if c.end_s < c.start_s:
            raise ValueError(f"cue ends before it starts: {c}")
    return cues


def vtt_text(cues) -> str:
    lines = ["WEBVTT", ""]
    for c in _check(cues):
        text = _vtt_escape(" ".join(c.text.split("\n")))
        if c.speaker:
            # the voice annotation ends at '>', so it must not contain one
            text = f"<v {_vtt_escape(c.speaker).replace('&gt;', '')}>{text}"
        lines += [f"{_ts(c.start_s, '.')} --> {_ts(c.end_s, '.')}", text, ""]
    return "\n".join(lines)


def srt_text(cues) -> str:
    lines = []
    for i, c in enumerate(_check(cues), 1):
        text = " ".join(c.text.split("\n"))
        if c.speaker:
            text = f"{c.speaker}: {text}"
        lines += [str(i), f"{_ts(c.start_s, ',')} --> {_ts(c.end_s, ',')}", text, ""]
    return "\n".join(lines)


def write_vtt(cues, path: str | Path) -> Path:
    return write_text(path, vtt_text(cues))


def write_srt(cues, path: str | Path) -> Path:
    return write_text(path, srt_text(cues))


def _parse_ts(s: str) -> float:
    h, m, rest = s.strip().replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(rest)


def read_vtt(path: str | Path) -> list[Cue]:
    blocks = Path(path).read_text(encoding="utf-8").split("\n\n")
    out = []
    for b in blocks:
        lines = [ln for ln in b.strip().split("\n") if ln]
        arrow = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if arrow is None:
            continue
        a, z = lines[arrow].split("-->")
        text = " ".join(lines[arrow + 1:])
        speaker = None
        mv = re.match(r"<v ([^>]*)>(.*)", text)
        if mv:
            speaker, text = mv.group(1), mv.group(2)
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        out.append(Cue(_parse_ts(a), _parse_ts(z.split()[0]), speaker, text))
    return out


def read_srt(path: str | Path) -> list[Cue]:
    out = []
    for b in Path(path).read_text(encoding="utf-8").split("\n\n"):
        lines = [ln for ln in b.strip().split("\n") if ln]
        if len(lines) < 3 or "-->" not in lines[1]:
            continue
        a, z = lines[1].split("-->")
        text = " ".join(lines[2:])
        speaker = None
        if ": " in text:
            speaker, text = text.split(": ", 1)
        out.append(Cue(_parse_ts(a), _parse_ts(z), speaker, text))
    return out


def cues_from_segments(segments, speaker_names: dict | None = None) -> list[Cue]:
    """Cues from chapter-manifest segment entries (start_ms, end_ms, text, speakers).

    The cue speaker is the segment's speakers mapped through ``speaker_names`` (e.g.
    {"S1": "Narrator"}), joined with " & " for a two-speaker segment."""
    names = speaker_names or {}
    cues = []
    for seg in segments:
        speakers = [names.get(s, s) for s in seg.get("speakers", [])]
        cues.append(Cue(seg["start_ms"] / 1000.0, seg["end_ms"] / 1000.0,
                        " & ".join(speakers) or None, clean_text(seg["text"])))
    return cues


_PHRASE_END = re.compile(r"[,;:.!?\u2014)]$")


def readable_cues(cue: Cue, *, line_chars: int = 42, lines: int = 2, max_seconds: float = 7.0,
                  word_times: list[tuple[float, float] | None] | None = None) -> list[Cue]:
    """Split one long cue as common caption practice asks: at most ``lines`` lines of about
    ``line_chars`` characters and about ``max_seconds`` on screen, cut at phrase boundaries
    (after , ; : . ! ? or a dash) where one falls in the second half of the allowed length, else
    between words.

    ``word_times``: (start_s, end_s) of each word of ``cue.text`` (split on whitespace) as the
    alignment heard it, None for a word with nothing spoken (a cue like "(sighs)"). With them a
    piece runs from its first word's start to its last word's end, clamped within the cue and
    never overlapping the piece before; without them (or when they do not fit) times are shared
    out by characters (speech runs at a roughly even rate)."""
    duration = max(cue.end_s - cue.start_s, 1e-6)
    limit = min(line_chars * lines, max(line_chars, int(len(cue.text) / duration * max_seconds)))
    words, pieces, current = cue.text.split(), [], []
    for w in words:
        if current and len(" ".join(current + [w])) > limit:
            cut = len(current)
            for i in range(len(current) - 1, 0, -1):   # the last phrase end in the later half of the piece
                if _PHRASE_END.search(current[i - 1]) and len(" ".join(current[:i])) >= limit // 2:
                    cut = i
                    break
            pieces.append(current[:cut])
            current = current[cut:]
        current.append(w)
    if current:
        pieces.append(current)
    if word_times is not None and len(word_times) == len(words):
        timed = _timed_pieces(cue, pieces, word_times)
        if timed is not None:
            return timed
    if len(pieces) <= 1:
        return [cue]
    texts = [" ".join(p) for p in pieces]
    total = sum(len(t) for t in texts)
    out, t0 = [], cue.start_s
    for i, t in enumerate(texts):
        t1 = cue.end_s if i == len(texts) - 1 else t0 + duration * len(t) / total
        out.append(Cue(t0, t1, cue.speaker, t))
        t0 = t1
    return out


def _timed_pieces(cue: Cue, pieces: list[list[str]], word_times) -> list[Cue] | None:
    """Pieces timed by their words (see readable_cues); None when the times leave a piece with no
    time on screen (an alignment outside the cue's span), so the caller shares by characters."""
    spans, i = [], 0
    for p in pieces:
        heard = [t for t in word_times[i:i + len(p)] if t is not None]
        spans.append((heard[0][0], heard[-1][1]) if heard else None)
        i += len(p)
    if all(sp is None for sp in spans):
        return None
    out, t0 = [], cue.start_s
    for k, (p, sp) in enumerate(zip(pieces, spans)):
        if sp is None:   # nothing spoken in it: it fills the gap up to the next heard piece
            nxt = next((s[0] for s in spans[k + 1:] if s is not None), cue.end_s)
            start, end = t0, min(max(nxt, t0), cue.end_s)
        else:
            start = min(max(sp[0], t0), cue.end_s)
            end = min(max(sp[1], start), cue.end_s)
        if end <= start:
            return None
        out.append(Cue(start, end, cue.speaker, " ".join(p)))
        t0 = end
    return out
