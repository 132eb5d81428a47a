"""Speech engines behind one interface: Dia on a GPU, and an espeak-ng draft engine for proofs.

The pipeline hands an engine a batch of TakeRequests (what to say, which voice holds each slot, the
seed and sampling parameters) plus the voices' prompts, and gets back one Take per request.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import soundfile as sf

from .. import __version__, faults
from ..errors import InputError, OutOfMemory
from ..params import SAMPLE_RATE, SamplingParams, check_fast_path

TURN_RE = re.compile(r"\[(S[12])\]\s*")
CUE_RE = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True)
class VoicePrompt:
    voice: str
    audio_path: Path | None   # reference (or calibrated) audio; None when the engine needs none
    transcript: str | None
    sha256: str               # identity of the prompt for store keys: audio bytes + transcript


@dataclass(frozen=True)
class TakeRequest:
    text: str                       # what the model reads after the prompt transcript; starts with [S1]
    prompt_text: str                # "[S1] ... [S2] ..." transcripts of the slot voices, "" if none
    slots: dict[str, str | None]    # {"S1": voice, "S2": voice | None}
    seed: int
    sampling: SamplingParams


@dataclass
class Take:
    audio: np.ndarray   # float32 mono 44.1 kHz
    hit_limit: bool     # generation stopped at the token limit without EOS


class PendingTakes(Protocol):
    def result(self) -> list[Take]: ...


@dataclass
class ReadyTakes:
    takes: list[Take]

    def result(self) -> list[Take]:
        return self.takes


class Engine(Protocol):
    name: str
    version: str
    model_id: str
    checksum: str
    default_batch_size: int

    def start(self, requests: list[TakeRequest], prompts: dict[str, VoicePrompt]) -> PendingTakes:
        """Generate a batch; the takes may still be finishing (audio decode) until ``result()``, so
        the caller can start the next batch meanwhile."""
        ...

    def generate(self, requests: list[TakeRequest], prompts: dict[str, VoicePrompt]) -> list[Take]: ...


def split_turns(text: str) -> list[tuple[str, str]]:
    """'[S1] a [S2] b' -> [('S1', 'a'), ('S2', 'b')]."""
    parts = TURN_RE.split(text)
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2) if parts[i + 1].strip()]


# Distinct espeak-ng voices handed out to a cast in order when a voice names none.
DRAFT_VOICES = ("en-us+m3", "en-us+f3", "en-gb+m1", "en-us+f5", "en-gb-x-rp+m7", "en-us+f2",
                "en-gb+m4", "en-us+f4", "en-us+m1", "en-gb+f1")


class DraftEngine:
    """espeak-ng proofs: no GPU, no weights, deterministic; one distinct voice per cast member."""

    name = "draft-espeak-ng"
    default_batch_size = 8
    clones_prompts = False   # its voices are espeak-ng's, whatever the prompts (dia_core.production.listening)

    def __init__(self, cast: dict[str, str | None]):
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise InputError("espeak-ng is not installed (Debian package espeak-ng); it is needed for --draft")
        self.exe = exe
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
        # "+seedpitch": takes depend on the seed since then (older entries sound different)
        self.version = f"{__version__}+{out.split()[3] if len(out.split()) > 3 else out.strip()}+seedpitch"
        self.model_id = "espeak-ng"
        self.checksum = hashlib.sha256(out.encode()).hexdigest()
        names = sorted(cast)
        self.voices = {v: cast[v] or DRAFT_VOICES[i % len(DRAFT_VOICES)] for i, v in enumerate(names)}

    def generate(self, requests: list[TakeRequest], prompts: dict[str, VoicePrompt]) -> list[Take]:
        faults.hit("generate")
        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(self._one, requests))

    def start(self, requests: list[TakeRequest], prompts: dict[str, VoicePrompt]) -> ReadyTakes:
        return ReadyTakes(self.generate(requests, prompts))

    def _one(self, request: TakeRequest) -> Take:
        gap = np.zeros(int(0.25 * SAMPLE_RATE), np.float32)
        pieces = []
        for slot, text in split_turns(request.text):
            voice = request.slots.get(slot)
            spoken = CUE_RE.sub(" ", text).strip()  # nonverbal cues are Dia's, espeak would read them
            if spoken:
                pieces += [self._speak(spoken, self.voices[voice], request.seed), gap]
        audio = np.concatenate(pieces[:-1]) if pieces else np.zeros(SAMPLE_RATE // 2, np.float32)
        return Take(audio=audio, hit_limit=False)

    def _speak(self, text: str, voice: str, seed: int) -> np.ndarray:
        # Like Dia, another seed is another read: the seed sets the pitch (espeak-ng's default is 50),
        # so a retake or an alternative of a draft proof is audibly a different take.
        pitch = 44 + seed % 13
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "take.wav"
            subprocess.run([self.exe, "-v", voice, "-s", "160", "-p", str(pitch), "-w", str(wav), "--", text],
                           check=True, capture_output=True)
            audio, sr = sf.read(wav, dtype="float32")
        if sr != SAMPLE_RATE:
            g = np.gcd(sr, SAMPLE_RATE)
            from scipy.signal import resample_poly   # on first use (slow import)

            audio = resample_poly(audio, SAMPLE_RATE // g, sr // g).astype(np.float32)
        return audio


class DiaEngine:
    """Dia on a GPU (or CPU): two-voice prompts from the slot map, per-item seeds and sampling.

    ``fast_path``: "off" decodes eagerly at each batch's exact shapes; "static" runs the bucketed
    static-shape step (replayed as CUDA graphs on a GPU); "inductor" also compiles it with
    torch.compile (minutes of compile per bucket on first use). See dia_core.dia.generate.generate."""

    name = "dia"

    def __init__(self, model=None, default_batch_size: int = 16, fast_path: str = "off", *,
                 loader: Callable[[], object] | None = None, model_id: str | None = None,
                 checksum: str | None = None, device: str | None = None):
        """Either a loaded ``model``, or a ``loader`` with the model's id and checksum (found without
        the weights, dia_core.dia.identity): the model is then built on the first batch, so a render
        whose takes are all in the store never loads it."""
        check_fast_path(fast_path)
        if model is None and (loader is None or checksum is None):
            raise ValueError("DiaEngine needs a model, or a loader and the model's checksum")
        self._model, self._loader = model, loader
        self.version = __version__
        self.model_id = str(model.source) if model is not None else str(model_id)
        self.checksum = model.checksum if model is not None else checksum
        self.device = str(model.device) if model is not None else device
        self.default_batch_size = default_batch_size
        self.fast_path = fast_path

    @property
    def model(self):
        if self._model is None:
            self._model = self._loader()
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def generate(self, requests: list[TakeRequest], prompts: dict[str, VoicePrompt]) -> list[Take]:
        return self.start(requests, prompts).result()

    def start(self, requests: list[TakeRequest], prompts: dict[str, VoicePrompt]) -> "DiaPendingTakes":
        """Generate the batch's codes, then queue their DAC decode (on a GPU it runs on a side stream
        while the caller starts the next batch); ``result()`` returns the takes."""
        # torch and the model's code load only when a Dia engine runs (the draft engine needs neither)
        import torch

        from ..dia.generate import AudioPrompt, generate, require_codec

        audio_prompts = []
        for r in requests:
            voices = [r.slots[s] for s in ("S1", "S2") if r.slots.get(s)]
            paths = [prompts[v].audio_path for v in voices if v in prompts and prompts[v].audio_path]
            if paths and len(paths) == len(voices):
                codes = torch.cat([self.model.codec.encode_file(p) for p in paths])
                audio_prompts.append(AudioPrompt(codes, r.prompt_text))
            else:
                audio_prompts.append(None)
        texts = [r.text for r in requests]
        try:
            faults.hit("generate")
            out = generate(self.model, texts, [r.seed for r in requests], audio_prompts=audio_prompts,
                           sampling=[r.sampling for r in requests],
                           fast_path=self.fast_path)
            decoding = require_codec(self.model).start_decode([g.codes for g in out])  # one batched DAC pass
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            raise OutOfMemory(str(e)) from e
        return DiaPendingTakes(decoding, [g.hit_limit for g in out])


@dataclass
class DiaPendingTakes:
    decoding: object  # dia_core.dia.codec.PendingDecode
    hit_limit: list[bool]

    def result(self) -> list[Take]:
        return [Take(audio=a, hit_limit=h) for a, h in zip(self.decoding.result(), self.hit_limit)]
