"""Word metrics of one take: its transcript against its text, both normalized (textnorm.words).

- ``wer``/``cer``: jiwer's word and character error rates.
- ``hit_ratio``: words of the text recognized in order (jiwer's alignment hits / text words); a
  weak recognizer (PocketSphinx on espeak-ng) still finds a share of the right words, and the
  wrong audio finds almost none, so this is the draft-mode decision metric.
- ``missing_at_end``: text words deleted after the last recognized one (a truncated take).
- ``inserted``: transcript words with no counterpart in the text.
- ``repeated_ngrams``: n-grams (n >= 2) the transcript says at least twice more than the text does
  (a loop; one extra is within PocketSphinx's noise on clean espeak-ng takes).
- ``words_per_minute``: text words over the take's active speech time.
"""
from __future__ import annotations

from collections import Counter

import jiwer


def word_metrics(ref: list[str], hyp: list[str], active_s: float | None = None) -> dict:
    out: dict = {"ref_words": len(ref), "hyp_words": len(hyp)}
    if not ref:
        return {**out, "wer": 0.0 if not hyp else 1.0, "cer": 0.0, "hit_ratio": 1.0, "missing_at_end": 0,
                "inserted": len(hyp), "repeated_ngrams": [], "words_per_minute": None}
    r, h = " ".join(ref), " ".join(hyp)
    if hyp:
        aligned = jiwer.process_words(r, h)
        hits, inserted = aligned.hits, aligned.insertions
        wer, cer = aligned.wer, jiwer.cer(r, h)
        missing_at_end = 0
        chunks = aligned.alignments[0]
        for chunk in reversed(chunks):
            if chunk.type == "delete":
                missing_at_end += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type == "insert":
                continue
            else:
                break
    else:
        hits, inserted, wer, cer, missing_at_end = 0, 0, 1.0, 1.0, len(ref)
    out.update({
        "wer": round(float(wer), 4), "cer": round(float(cer), 4), "hit_ratio": round(hits / len(ref), 4),
        "missing_at_end": int(missing_at_end), "inserted": int(inserted),
        "repeated_ngrams": repeated_ngrams(ref, hyp),
        "words_per_minute": round(len(ref) / active_s * 60, 1) if active_s else None,
    })
    return out


def repeated_ngrams(ref: list[str], hyp: list[str], sizes=(2, 3, 4)) -> list[str]:
    """N-grams the transcript holds at least twice more often than the text does (longest first,
    without the shorter n-grams inside a reported longer one)."""
    found: list[str] = []
    for n in sorted(sizes, reverse=True):
        have = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
        want = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        for gram, count in have.items():
            text = " ".join(gram)
            if count >= want[gram] + 2 and not any(text in f for f in found):
                found.append(text)
    return found
