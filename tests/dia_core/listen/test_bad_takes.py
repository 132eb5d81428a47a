"""A corpus of bad takes, built here from the draft engine (espeak-ng) and synthesized audio; each is
caught by the check that should catch it (named in each case), and the clean takes pass.

The example audiobook as the shared render (conftest.py) made it, listening on (its defaults:
PocketSphinx + Resemblyzer)."""
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from dia_core.audio.qc import check_segment
from dia_core.listen.judge import judge
from dia_core.production import listening, takes


def espeak(text: str, voice: str, speed: int = 160) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "t.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), "--", text],
                       check=True, capture_output=True)
        audio, sr = sf.read(wav, dtype="float32")
    return resample_poly(audio, 441, sr // 100).astype(np.float32)


@pytest.fixture(scope="module")
def ears(rendered):
    """The example audiobook as rendered (and listened to) by the package's shared render."""
    r = rendered["short-audiobook"]
    job = r["job"]
    listener = listening.open_listener(job)
    refs = listening.voice_references(job, listener, takes.prepare_voices(job))   # cached: no new work
    segs = job.plan.segments
    narration = next(s for s in segs if {t.voice for t in s.turns} == {"narrator"} and len(s.text.split()) > 30)
    duo = next(s for s in segs if len(s.turns) == 2)
    chosen = {s.id: r["first"][s.id].attempts[0] for s in (narration, duo)}
    clean = {sid: job.store.get(a.key).load_audio() for sid, a in chosen.items()}
    heard = {sid: a.qc["listen"] for sid, a in chosen.items()}
    voices = job.engine.voices   # cast voice -> espeak-ng voice

    def verdict(segment, audio, rates=None):
        qc = check_segment(audio, expected_seconds=segment.est_seconds, settings=job.project.qc)
        result = listener.listen(audio, segment.text, [(t.voice, t.text) for t in segment.turns],
                                 active_s=qc.metrics["active_s"], respellings=job.project.lexicon, references=refs)
        failures, _ = judge(result, job.project.qc, voice=segment.turns[0].voice, rates=rates)
        return failures, result

    def kinds(failures):
        return {f.split(":")[0] for f in failures}

    return dict(job=job, narration=narration, duo=duo, clean=clean, heard=heard, voices=voices, verdict=verdict,
                kinds=kinds)


def test_clean_takes_pass(ears):
    """The corpus's sources as the render judged them (every clean take of both examples passes:
    test_listening_render.py); here, with the thresholds they are judged by."""
    qc = ears["job"].project.qc
    for seg in (ears["narration"], ears["duo"]):
        result = ears["heard"][seg.id]
        assert result["words"]["hit_ratio"] >= qc.min_word_hits
        assert all(t["similarity"] > qc.min_voice_similarity for t in result["turns"])


def _spoken(text):   # what espeak reads: no tags, no cues
    return re.sub(r"\[S\d\]|\([^)]*\)", " ", text).strip()


CASES = {
    # case: (how the bad take is made, the check that must catch it)
    "sentence dropped at the end": ("drop_last", "truncated"),
    "phrase repeated three times": ("repeat", "loop"),
    "right words, other character's voice": ("mara_voice", "voice"),
    "another espeak voice": ("stranger", "voice"),
    "white noise": ("noise", "words"),
    "silence": ("silence", "words"),
    "reversed speech": ("reversed", "words"),
    "audio of a different segment": ("other_segment", "words"),
    "read far too fast": ("fast", "rate"),
}


@pytest.mark.parametrize("case", CASES, ids=[c.replace(" ", "-").replace(",", "").replace("'", "") for c in CASES])
def test_bad_take_is_caught_by_its_check(ears, case):
    how, check = CASES[case]
    seg, v = ears["narration"], ears["voices"]
    text = _spoken(seg.text)
    clean = ears["clean"][seg.id]
    rng = np.random.default_rng(7)
    if how == "drop_last":
        sentences = re.split(r"(?<=[.!?])\s+", text)
        assert len(sentences[-1].split()) > 6
        audio = espeak(" ".join(sentences[:-1]), v["narrator"])
    elif how == "repeat":
        words = text.split()
        phrase = " ".join(words[8:12])
        audio = espeak(text.replace(phrase, ", ".join([phrase] * 3), 1), v["narrator"])
    elif how == "mara_voice":
        audio = espeak(text, v["mara"])
    elif how == "stranger":
        audio = espeak(text, "en-us+f4")
    elif how == "noise":
        audio = rng.normal(0, 0.1, len(clean)).astype(np.float32)
    elif how == "silence":
        audio = np.zeros(len(clean), np.float32)
    elif how == "reversed":
        audio = clean[::-1].copy()
    elif how == "other_segment":
        audio = ears["clean"][ears["duo"].id]
    elif how == "fast":
        audio = espeak(text, v["narrator"], speed=300)
    rates = None
    if how == "fast":   # the voice's median rate in a render: here its clean take's
        rates = {"narrator": ears["heard"][seg.id]["words"]["words_per_minute"]}
    failures, result = ears["verdict"](seg, audio, rates)
    assert check in ears["kinds"](failures), (case, failures, result.get("words"), result.get("turns"))
