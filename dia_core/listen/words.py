"""Speech recognition of a take against its text: PocketSphinx (offline CPU, draft renders and the
tests) and Whisper through the transformers pipeline (production, weights from the HF cache).

Both return a Transcript: the recognized words (normalized like the text, textnorm.words) with
their times where the backend gives them. ``load_recognizer`` loads a backend once and raises
ListenerUnavailable (one line) when it cannot, so a render fails before it generates anything.

PocketSphinx decodes with a language model built from the segment's own words (a bigram chain of
the text over its vocabulary, unigram back-off): free recognition with the general English model
finds only ~20 % of the words of an espeak-ng take (WER ~0.8), while the text's model finds most
of them in a clean take and few in the wrong audio (measurements: docs/project-yaml.md, `qc`).
Its word times come from the decoder's segmentation (10 ms frames). (PocketSphinx's forced
alignment, ``set_align_text``, found no path through most espeak-ng takes even with wide beams, and
cannot say which words are missing; the text's language model can.)
"""
from __future__ import annotations

import math
import os
import tempfile
import threading
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from ..params import SAMPLE_RATE
from .textnorm import words as norm_words

RECOGNIZERS = ("pocketsphinx", "whisper")
DEFAULT_WHISPER = "openai/whisper-small.en"


class ListenerUnavailable(Exception):
    """A listening model cannot be loaded (missing package, weights or dictionary): one line."""


@dataclass
class Transcript:
    words: list[str]                                  # normalized, respellings mapped back
    times: list[tuple[float, float]] | None = None    # per word (start_s, end_s), if the backend has them
    ref: list[str] = field(default_factory=list)      # the text's words this backend can check
    unchecked: list[str] = field(default_factory=list)  # text words the backend cannot hear (no pronunciation)


def _pcm16k(audio: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly   # on first use (slow import)

    x = resample_poly(np.asarray(audio, dtype=np.float32), 160, 441)  # 44.1 kHz -> 16 kHz
    return np.clip(x, -1.0, 1.0).astype(np.float32)


class PocketSphinxRecognizer:
    name = "pocketsphinx"

    def __init__(self):
        try:
            import pocketsphinx
            from pocketsphinx import Decoder
            self.version = metadata.version("pocketsphinx")
            self._model_dir = os.path.join(pocketsphinx.get_model_path(), "en-us")
            self._pron = _read_dictionary(os.path.join(self._model_dir, "cmudict-en-us.dict"))
            Decoder(samprate=16000, loglevel="FATAL", lm=None)   # the acoustic model loads
        except Exception as e:  # ImportError, or its model files missing/corrupt
            raise ListenerUnavailable(f"PocketSphinx cannot load: {type(e).__name__}: {e}") from None
        self._decoder_class = Decoder
        self.model = "en-us"
        self.identity = f"pocketsphinx-{self.version}/en-us/text-lm-1"

    def _known(self, word: str) -> bool:
        return word in self._pron

    def transcribe(self, audio: np.ndarray, text: str, respellings: dict[str, str] | None = None) -> Transcript:
        said = norm_words(text)   # what the take should say (respellings as spelled for the engine)
        known = [w for w in said if self._known(w)]
        unchecked = sorted({w for w in said if not self._known(w)})
        ref = _map_back([w for w in said if w not in unchecked], respellings)
        if not known:
            return Transcript([], None, ref, unchecked)
        pcm = (_pcm16k(audio) * 32767).astype(np.int16).tobytes()
        with tempfile.TemporaryDirectory() as tmp:
            # A decoder per take over the take's own words: a model over the whole 135k-word
            # dictionary costs ~12 s of CPU to build, one over the text's words ~1 ms.
            lm, dic = os.path.join(tmp, "text.arpa"), os.path.join(tmp, "text.dict")
            with open(lm, "w") as f:
                f.write(_text_arpa(known))
            with open(dic, "w") as f:
                f.writelines(f"{w if i == 0 else f'{w}({i + 1})'} {p}\n"
                             for w in sorted(set(known)) for i, p in enumerate(self._pron[w]))
            # One forward pass (no flat-lexicon second pass, no lattice rescoring): with a text-sized
            # model they add time and nothing measurable.
            d = self._decoder_class(samprate=16000, loglevel="FATAL", lm=lm, dict=dic,
                                    fwdflat=False, bestpath=False)
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            segs = [(s.word, s.start_frame / 100, (s.end_frame + 1) / 100) for s in d.seg()]
        spoken = [(w.split("(")[0], a, b) for w, a, b in segs if not w.startswith(("<", "[")) and w != "<sil>"]
        hyp = [w for w, _a, _b in spoken]
        times = [(a, b) for _w, a, b in spoken]
        mapped = _map_back(hyp, respellings)
        return Transcript(mapped, times if len(mapped) == len(hyp) else None, ref, unchecked)


def _read_dictionary(path: str) -> dict[str, list[str]]:
    """CMUdict as {word: [phones, ...]} (alternative pronunciations are listed as word(2), ...)."""
    pron: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            word, _, phones = line.strip().partition(" ")
            if phones:
                pron.setdefault(word.split("(")[0], []).append(phones.strip())
    return pron


def _map_back(seq: list[str], respellings: dict[str, str] | None) -> list[str]:
    return norm_words(" ".join(seq), respellings) if respellings else seq


def _text_arpa(words: list[str]) -> str:
    """A bigram model of one text: each word follows its predecessor in the text with high
    probability; back-off to a uniform unigram over the text's vocabulary keeps skips, repeats and
    reorderings possible (so they can be heard)."""
    vocab = sorted(set(words))
    bigrams = sorted(set(zip(["<s>"] + words, words + ["</s>"])))
    uni = math.log10(1.0 / (len(vocab) + 1))
    lines = ["\\data\\", f"ngram 1={len(vocab) + 2}", f"ngram 2={len(bigrams)}", "", "\\1-grams:",
             f"{uni:.4f} </s> 0.0000", "-99.0000 <s> -0.3000"]
    lines += [f"{uni:.4f} {w} -1.0000" for w in vocab]
    lines += ["", "\\2-grams:"] + [f"-0.0500 {a} {b}" for a, b in bigrams] + ["", "\\end\\", ""]
    return "\n".join(lines)


class WhisperRecognizer:
    """Whisper through transformers' ASR pipeline, word timestamps on; the weights come from the
    Hugging Face cache (HF_HUB_OFFLINE=1 renders never download)."""
    name = "whisper"

    def __init__(self, model_id: str = DEFAULT_WHISPER, device: str | None = None):
        try:
            import torch
            from transformers import pipeline
            self.version = metadata.version("transformers")
        except Exception as e:
            raise ListenerUnavailable(f"Whisper needs transformers and torch: {type(e).__name__}: {e}") from None
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self._pipe = pipeline("automatic-speech-recognition", model=model_id, device=device,
                                  dtype=torch.float16 if device.startswith("cuda") else torch.float32)
        except Exception as e:  # not in the cache offline, not a Whisper checkpoint, corrupt weights
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ListenerUnavailable(f"Whisper model {model_id!r} cannot load: {first}") from None
        self.model = model_id
        self.identity = f"whisper:{model_id}@transformers-{self.version}"
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray, text: str, respellings: dict[str, str] | None = None) -> Transcript:
        with self._lock:
            out = self._pipe({"raw": _pcm16k(audio), "sampling_rate": 16000}, return_timestamps="word")
        hyp, times = [], []
        for chunk in out.get("chunks") or []:
            ws = norm_words(chunk["text"])
            start, end = chunk.get("timestamp") or (None, None)
            for w in ws:
                hyp.append(w)
                times.append((float(start or 0.0), float(end if end is not None else start or 0.0)))
        if not hyp:
            hyp = norm_words(out.get("text", ""))
            times = []
        mapped = _map_back(hyp, respellings)
        return Transcript(mapped, times if times and len(mapped) == len(hyp) else None,
                          norm_words(text, respellings), [])


def load_recognizer(name: str, model_id: str | None = None, device: str | None = None):
    if name == "pocketsphinx":
        return PocketSphinxRecognizer()
    if name == "whisper":
        return WhisperRecognizer(model_id or DEFAULT_WHISPER, device)
    raise ListenerUnavailable(f"unknown speech recognizer {name!r} (one of {', '.join(RECOGNIZERS)})")


__all__ = ["ListenerUnavailable", "PocketSphinxRecognizer", "RECOGNIZERS", "Transcript", "WhisperRecognizer",
           "load_recognizer", "SAMPLE_RATE"]
