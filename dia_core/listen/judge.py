"""Decisions on a take's listening results (listener.Listener.listen) against the project's `qc:`.

Failures (short strings, like dia_core.audio.qc's):
- ``words``: PocketSphinx heard fewer than ``min_word_hits`` of the text's words in order, or
  Whisper's WER is above ``max_wer`` (wrong words, a different segment, noise, reversed speech).
- ``truncated``: more than ``max_missing_at_end`` words missing after the last one heard.
- ``loop``: a run of 3+ words, two of them content words, heard at least twice more than the
  text has it.
- ``rate``: words per minute off the voice's median in this render by more than ``max_rate_deviation``.
- ``voice``: a turn closer to another cast voice than to its own (by more than ``voice_margin``),
  or below ``min_voice_similarity``.
- ``mos``: DNSMOS overall below ``min_mos``.
- ``listen_error``: the listener crashed on this take.

Combined score (the best attempt is kept when none passes): the audio QC score, minus 10 per
listening failure, minus 5 x the share of words not heard (1 - hit ratio, or the WER for Whisper,
capped at 1), minus 5 x each turn's similarity shortfall below the floor.
"""
from __future__ import annotations

from statistics import median

# A loop must repeat content: PocketSphinx inserts short function words into clean espeak-ng takes
# (a clean example take came back with "the on the" heard three times).
FUNCTION_WORDS = frozenset("a an the and or but of to in on at for by with as from is was be it i you he she "
                           "we they this that his her its my our your".split())


def voice_rates(listened: list[tuple[str | None, dict]]) -> dict[str, float]:
    """Median words per minute per voice over single-voice takes: (voice or None, listening result)."""
    rates: dict[str, list[float]] = {}
    for voice, result in listened:
        wpm = (result.get("words") or {}).get("words_per_minute")
        if voice and wpm:
            rates.setdefault(voice, []).append(wpm)
    return {v: median(r) for v, r in rates.items()}


def judge(result: dict, settings, *, voice: str | None = None, rates: dict[str, float] | None = None
          ) -> tuple[list[str], float]:
    """(failures, score penalty) of one take's listening result."""
    failures: list[str] = []
    penalty = 0.0
    if result.get("error"):
        return [f"listen_error: {result['error']}"], 10.0
    w = result.get("words")
    if w and w.get("ref_words", 0) > 0:
        if w["backend"] == "pocketsphinx":
            miss = 1.0 - w["hit_ratio"]
            if w["hit_ratio"] < settings.min_word_hits:
                failures.append(f"words: heard {w['hit_ratio']:.0%} of the text's words in order "
                                f"(min {settings.min_word_hits:.0%})")
        else:
            miss = min(1.0, w["wer"])
            if w["wer"] > settings.max_wer:
                failures.append(f"words: WER {w['wer']:.2f} above {settings.max_wer:g}")
        penalty += 5.0 * miss
        if w["missing_at_end"] > settings.max_missing_at_end:
            failures.append(f"truncated: last {w['missing_at_end']} words not heard")
        loops = [g for g in w.get("repeated_ngrams", [])
                 if len(g.split()) >= 3 and len(set(g.split()) - FUNCTION_WORDS) >= 2]
        if loops:
            failures.append(f"loop: {loops[0]!r} repeated")
        wpm, mid = w.get("words_per_minute"), (rates or {}).get(voice) if voice else None
        if wpm and mid and abs(wpm / mid - 1.0) > settings.max_rate_deviation:
            failures.append(f"rate: {wpm:.0f} words/min, the voice's median is {mid:.0f}")
    for t in result.get("turns") or []:
        sim, other = t.get("similarity"), t.get("other_similarity")
        if sim is None:
            continue
        penalty += 5.0 * max(0.0, settings.min_voice_similarity - sim)
        if other is not None and other - sim > settings.voice_margin:
            failures.append(f"voice: turn at {t['start_s']:.1f} s sounds like {t['closest_other']} "
                            f"({other:.2f}) more than {t['voice']} ({sim:.2f})")
        elif sim < settings.min_voice_similarity:
            failures.append(f"voice: turn at {t['start_s']:.1f} s is {sim:.2f} similar to {t['voice']} "
                            f"(min {settings.min_voice_similarity:g})")
    mos = (result.get("mos") or {}).get("ovrl_mos")
    if mos is not None and mos < settings.min_mos:
        failures.append(f"mos: DNSMOS {mos:.2f} below {settings.min_mos:g}")
    return failures, penalty + 10.0 * len(failures)
