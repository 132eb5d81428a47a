"""Speaker similarity: Resemblyzer's GE2E encoder (its weights ship in the wheel, CPU).

A voice's reference embedding comes from a clip of that voice as the engine speaks it (the
reference or calibrated clip for Dia; for the draft engine, which ignores prompts, a line the
engine itself speaks in that voice). Each turn of a take is embedded and compared (cosine) with
its own voice and with every other voice of the cast: a turn closer to another voice than to its
own, or below the similarity floor, fails.
"""
from __future__ import annotations

import threading
from importlib import metadata

import numpy as np

MIN_TURN_S = 0.6   # shorter turns carry too little voice to embed (Resemblyzer uses 1.6 s windows)


class SpeakerEncoder:
    name = "resemblyzer"

    def __init__(self):
        try:
            from resemblyzer import VoiceEncoder, preprocess_wav
            self.version = metadata.version("resemblyzer")
            self._encoder = VoiceEncoder(device="cpu", verbose=False)
        except Exception as e:
            from .words import ListenerUnavailable
            raise ListenerUnavailable(f"Resemblyzer speaker encoder cannot load: {type(e).__name__}: {e}") from None
        self._preprocess = preprocess_wav
        self.identity = f"resemblyzer-{self.version}/ge2e"
        self._lock = threading.Lock()

    def embed(self, audio: np.ndarray, sample_rate: int = 44100) -> np.ndarray | None:
        """Unit-length embedding of ``audio``, or None when it holds too little speech."""
        if not len(audio) or float(np.max(np.abs(audio))) < 1e-4:   # silence: no voice to embed
            return None
        from scipy.signal import resample_poly   # on first use (slow import)

        x = resample_poly(np.asarray(audio, dtype=np.float32), 160, sample_rate // 100) if sample_rate != 16000 \
            else np.asarray(audio, dtype=np.float32)
        wav = self._preprocess(x, source_sr=16000)   # loudness-normalized, long silences removed (VAD)
        if len(wav) < MIN_TURN_S * 16000:
            return None
        with self._lock:
            return self._encoder.embed_utterance(wav)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def turn_spans(n_samples: int, turn_texts: list[str], word_counts: list[int],
               word_times: list[tuple[float, float]] | None, sample_rate: int = 44100) -> list[tuple[int, int]]:
    """Where each turn of a take lies: cut at the recognizer's word times when it heard every word
    of each turn, else in proportion to the turns' characters (turns are short, the error is small)."""
    if len(turn_texts) == 1:
        return [(0, n_samples)]
    if word_times and len(word_times) == sum(word_counts) and all(word_counts):
        spans, i = [], 0
        for k, n in enumerate(word_counts):
            start = 0 if k == 0 else spans[-1][1]
            end = n_samples if k == len(word_counts) - 1 else \
                int((word_times[i + n - 1][1] + word_times[i + n][0]) / 2 * sample_rate)
            spans.append((start, max(start, min(end, n_samples))))
            i += n
        return spans
    weights = np.array([max(1, len(t)) for t in turn_texts], dtype=float)
    edges = np.concatenate([[0], np.cumsum(weights) / weights.sum()]) * n_samples
    return [(int(edges[k]), int(edges[k + 1])) for k in range(len(turn_texts))]


def voice_metrics(encoder: SpeakerEncoder, audio: np.ndarray, turns: list[tuple[str, str]],
                  spans: list[tuple[int, int]], references: dict[str, np.ndarray]) -> list[dict]:
    """Per turn: similarity to its own voice's reference and the closest other voice's."""
    out = []
    for (voice, _text), (a, b) in zip(turns, spans):
        emb = encoder.embed(audio[a:b])
        row: dict = {"voice": voice, "start_s": round(a / 44100, 3), "end_s": round(b / 44100, 3)}
        if emb is None or voice not in references:
            out.append({**row, "similarity": None, "closest_other": None, "other_similarity": None})
            continue
        others = {v: similarity(emb, r) for v, r in references.items() if v != voice}
        closest = max(others, key=others.get) if others else None
        out.append({**row, "similarity": round(similarity(emb, references[voice]), 4),
                    "closest_other": closest,
                    "other_similarity": round(others[closest], 4) if closest else None})
    return out
