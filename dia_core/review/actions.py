"""The review actions, checked against what was rendered: the CLI (`takes`, `pin`, `retake`, ...)
and the review page both call these, and they write only review.yaml (dia_core.review.decisions)."""
from __future__ import annotations

from ..errors import InputError
from . import decisions as dec
from .listing import Review, find_segment, find_take


def pin(review: Review, segment_id: str, take: str | None = None) -> dict:
    chapter, segment = find_segment(review, segment_id)
    key = find_take(segment, take)
    if review.store.get(key) is None:
        raise InputError(f"take {key[:12]} is not in the store {review.store.root}", field="take")
    dec.pin(review.root, segment["id"], key, segment["text"], chapter)
    return {"segment": segment["id"], "chapter": chapter, "pinned": key}


def unpin(review: Review, segment_id: str) -> dict:
    chapter, segment = find_segment(review, segment_id)
    dec.unpin(review.root, segment["id"])
    return {"segment": segment["id"], "chapter": chapter, "pinned": None}


def retake(review: Review, segment_id: str, note: str = "") -> dict:
    chapter, segment = find_segment(review, segment_id)
    d = dec.retake(review.root, segment["id"], note, chapter)
    return {"segment": segment["id"], "chapter": chapter, "retake": {"count": d.retake.count, "note": d.retake.note}}


def alternatives(review: Review, segment_id: str, count: int) -> dict:
    chapter, segment = find_segment(review, segment_id)
    d = dec.request_alternatives(review.root, segment["id"], count, chapter)
    return {"segment": segment["id"], "chapter": chapter, "alternatives": d.alternatives}


def fix_text(review: Review, segment_id: str, text: str | None) -> dict:
    chapter, segment = find_segment(review, segment_id)
    original = segment.get("review", {}).get("text_fixed", {}).get("manuscript_text", segment["text"])
    d = dec.fix_text(review.root, segment["id"], text, original, chapter)
    return {"segment": segment["id"], "chapter": chapter, "text": d.text}


def add_lexicon(review: Review, word: str, replacement: str) -> dict:
    d = dec.add_lexicon(review.root, word, replacement)
    return {"lexicon": d.lexicon}
