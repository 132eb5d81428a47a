"""The take loop's ears: loads the listener the project's `qc:` asks for (before anything is
generated), builds each voice's reference embedding, listens to an attempt's takes (results
stored beside each take, keyed by the listener's identity) and judges them (dia_core.listen.judge).
"""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..listen.judge import judge, voice_rates
from ..listen.listener import Listener, recognizer_name
from ..listen.words import ListenerUnavailable
from ..files import canonical_hash
from .engines import TakeRequest, VoicePrompt
from .jobs import Job

_LISTENERS: dict[tuple, Listener] = {}
_REFERENCES: dict[tuple, dict[str, np.ndarray]] = {}
_LOCK = threading.Lock()


class ListeningUnavailable(RuntimeError):
    """An instrument that `qc:` asks for cannot load: the render stops before generating."""


def open_listener(job: Job) -> Listener:
    """The render's listener, loaded once per process; raises ListeningUnavailable (one line)."""
    qc = job.project.qc
    asr = recognizer_name(qc.asr, job.options.draft)
    key = (asr, qc.asr_model, qc.voice_check, qc.mos, job.options.device)
    with _LOCK:
        if key not in _LISTENERS:
            try:
                _LISTENERS[key] = Listener(asr, qc.asr_model, qc.voice_check, qc.mos, job.options.device)
            except ListenerUnavailable as e:
                raise ListeningUnavailable(f"qc: {e} (set qc.asr: off / qc.voice_check: false to render "
                                           f"without it)") from None
        return _LISTENERS[key]


def voice_references(job: Job, listener: Listener, prompts: dict[str, VoicePrompt]) -> dict[str, np.ndarray]:
    """Each voice's reference embedding: its prompt clip (reference or calibrated) when the engine
    clones prompts (Dia); the engine's own reading of the voice's transcript when it does not
    (the draft engine ignores prompts: its voices are espeak-ng's)."""
    if listener.encoder is None:
        return {}
    clones = getattr(job.engine, "clones_prompts", True)
    key = (listener.identity, canonical_hash({v: p.sha256 for v, p in prompts.items()}), job.engine.checksum, clones)
    if key in _REFERENCES:
        return _REFERENCES[key]
    refs = {}
    for name, prompt in prompts.items():
        if clones and prompt.audio_path is not None:
            import soundfile as sf
            audio, sr = sf.read(prompt.audio_path, dtype="float32", always_2d=True)
            audio = audio.mean(axis=1)
        else:
            voice = job.project.voices[name]
            line = prompt.transcript or voice.calibration_text
            [take] = job.engine.generate([TakeRequest(f"[S1] {line}", "", {"S1": name, "S2": None},
                                                      voice.seed or 0, voice.sampling)], prompts)
            audio, sr = take.audio, 44100
        emb = listener.encoder.embed(audio, sr)
        if emb is not None:
            refs[name] = emb
    _REFERENCES[key] = refs
    return refs


def _note_name(listener: Listener, refs: dict[str, np.ndarray]) -> str:
    ref_hash = hashlib.sha256(b"".join(refs[v].astype(np.float32).tobytes() for v in sorted(refs))).hexdigest()
    return "listen-" + hashlib.sha256(f"{listener.identity}|{ref_hash}".encode()).hexdigest()[:16]


def listen_takes(job: Job, listener: Listener, refs: dict[str, np.ndarray], rows: list) -> dict[str, dict]:
    """Listening results for [(segment, StoredTake, qc)]: from the store, else measured (two worker
    threads: the instruments release the GIL in their native code) and stored."""
    name = _note_name(listener, refs)
    lexicon = job.project.lexicon

    def one(row) -> dict:
        s, take, qc = row
        found = job.store.read_note(take.key, name)
        if found is not None:
            return found
        result = listener.listen(take.load_audio(), s.text, [(t.voice, t.text) for t in s.turns],
                                 active_s=qc["metrics"].get("active_s") or 0.0, respellings=lexicon,
                                 references=refs)
        if "error" not in result:   # a crash is not a measurement: the next render tries again
            job.store.write_note(take.key, name, result)
        return result

    with ThreadPoolExecutor(max_workers=2) as pool:
        return {row[0].id: r for row, r in zip(rows, pool.map(one, rows))}


def apply_listening(job: Job, listener: Listener, refs: dict[str, np.ndarray], rows: list) -> None:
    """Listen to [(segment, StoredTake, qc)] and fold the results into each qc dict in place:
    ``qc["listen"]`` holds the measurements, failures and score include the judgement."""
    if not listener.active:
        for _s, _take, qc in rows:
            qc["listen"] = {"listener": "off"}
        return
    results = listen_takes(job, listener, refs, rows)
    single = {s.id: (s.turns[0].voice if len({t.voice for t in s.turns}) == 1 else None) for s, _t, _q in rows}
    rates = voice_rates([(single[sid], r) for sid, r in results.items()])
    for s, _take, qc in rows:
        result = results[s.id]
        failures, penalty = judge(result, job.project.qc, voice=single[s.id], rates=rates)
        qc["listen"] = {k: v for k, v in result.items() if k != "word_times"}
        if "word_times" in result:   # kept in the store, not the manifest: captions read them there
            qc["listen"]["word_times_note"] = _note_name(listener, refs)
        qc["failures"] = qc["failures"] + failures
        qc["passed"] = not qc["failures"]
        qc["score"] = round(qc["score"] - penalty, 4)


class Prefetch:
    """Listens to each stored batch in a worker thread while the engine generates the next one; the
    results land in the store, where ``apply_listening`` finds them (a GPU host hides most of the
    listening behind generation). ``wait`` returns once everything submitted is listened to."""

    def __init__(self, job: Job, listener: Listener, refs: dict[str, np.ndarray]):
        self.job, self.listener, self.refs = job, listener, refs
        self._pool = ThreadPoolExecutor(max_workers=1) if listener.active else None
        self._futures = []

    def submit(self, stored: list) -> None:
        """[(segment, store key)] just stored."""
        if self._pool is None:
            return
        self._futures.append(self._pool.submit(self._listen, stored))

    def _listen(self, stored: list) -> None:
        from ..audio.qc import check_segment
        rows = []
        for s, key in stored:
            take = self.job.store.get(key)
            if take is None:
                continue
            result = check_segment(take.load_audio(), expected_seconds=s.est_seconds, settings=self.job.project.qc)
            rows.append((s, take, {"metrics": result.metrics}))
        listen_takes(self.job, self.listener, self.refs, rows)

    def wait(self) -> None:
        """Errors here are not the render's: apply_listening listens again to whatever is missing."""
        for f in self._futures:
            try:
                f.result()
            except Exception:  # noqa: BLE001 - logged by the listener; the take is listened to again
                pass
        self._futures.clear()

    def close(self) -> None:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown()
