"""One listener for a render: the instruments the project's `qc:` asks for, loaded once, and
``listen`` which measures one take (never raises: a crash becomes the take's ``error``).

``identity`` names every instrument with its version; stored results are keyed by it, so a
re-render never listens twice and a changed instrument listens again.
"""
from __future__ import annotations

import logging
import traceback

import numpy as np

from .metrics import word_metrics
from .quality import MosEstimator
from .voice import SpeakerEncoder, turn_spans, voice_metrics
from .words import load_recognizer

log = logging.getLogger(__name__)


def recognizer_name(asr: str, draft: bool) -> str | None:
    """`qc.asr`: auto is PocketSphinx for draft renders (CPU, no download) and Whisper for Dia."""
    if asr == "off":
        return None
    if asr == "auto":
        return "pocketsphinx" if draft else "whisper"
    return asr


class Listener:
    def __init__(self, asr: str | None, asr_model: str | None = None, voice_check: bool = True,
                 mos: bool = False, device: str | None = None):
        """Loads every instrument now (raises words.ListenerUnavailable with one line)."""
        self.recognizer = load_recognizer(asr, asr_model, device) if asr else None
        self.encoder = SpeakerEncoder() if voice_check else None
        self.mos = MosEstimator() if mos else None
        parts = [i.identity for i in (self.recognizer, self.encoder, self.mos) if i is not None]
        self.identity = " + ".join(parts) if parts else "off"

    @property
    def active(self) -> bool:
        return self.identity != "off"

    def listen(self, audio: np.ndarray, text: str, turns: list[tuple[str, str]], *, active_s: float,
               respellings: dict[str, str] | None = None,
               references: dict[str, np.ndarray] | None = None) -> dict:
        """Measure one take. ``turns``: (voice, text) in order; ``references``: voice -> embedding."""
        out: dict = {"listener": self.identity}
        try:
            times = None
            if self.recognizer is not None:
                t = self.recognizer.transcribe(audio, text, respellings)
                times = t.times
                out["words"] = {"backend": self.recognizer.name, **word_metrics(t.ref, t.words, active_s),
                                "heard": " ".join(t.words)[:2000], "unchecked": t.unchecked}
                if t.times:
                    out["word_times"] = [[w, round(a, 2), round(b, 2)] for w, (a, b) in zip(t.words, t.times)]
            if self.encoder is not None and references:
                from .textnorm import words as norm_words
                counts = [len(norm_words(tx, respellings)) for _v, tx in turns]
                spans = turn_spans(len(audio), [tx for _v, tx in turns], counts,
                                   times if self.recognizer is not None else None)
                out["turns"] = voice_metrics(self.encoder, audio, turns, spans, references)
            if self.mos is not None:
                out["mos"] = self.mos.score(audio)
        except Exception as e:  # one take's listening failure fails that take's check, never the render
            log.warning("listening failed: %s", traceback.format_exc())
            out["error"] = f"{type(e).__name__}: {e}"[:300]
        return out
