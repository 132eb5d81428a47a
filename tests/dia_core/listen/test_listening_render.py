"""The take loop with listening on (the projects' defaults): both example projects' clean draft
takes all pass, the results land in each attempt's qc (schema-valid), a second pass reads them from
the store instead of listening again, and failures to load or to listen are handled as documented."""
import shutil
from pathlib import Path

import jsonschema
import pytest

from dia_core.listen.listener import Listener
from dia_core.listen.words import ListenerUnavailable, load_recognizer
from dia_core.production import jobs, listening, takes
from dia_core.production.manifests import load_schema
from dia_core.production.options import RenderOptions

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", ["short-audiobook", "podcast-episode"])
def test_clean_draft_takes_of_the_examples_all_pass(rendered, name):
    r = rendered[name]
    rejected = {sid: o.attempts[0].qc["failures"] for sid, o in r["first"].items() if not o.attempts[0].qc["passed"]}
    assert rejected == {}
    qc_schema = {"$defs": load_schema("chapter-manifest.schema.json")["$defs"], "$ref": "#/$defs/qc"}
    for o in r["first"].values():
        listen = o.attempts[0].qc["listen"]
        assert "pocketsphinx" in listen["listener"] and "resemblyzer" in listen["listener"]
        assert listen["words"]["hit_ratio"] >= 0.35 and all(t["voice"] for t in listen["turns"])
        jsonschema.validate(o.attempts[0].qc, qc_schema)
    assert r["listened"] == len({s.id for s in r["job"].plan.segments})   # every distinct take, once
    assert r["relistened"] == 0                                          # the store had them all
    assert [o.attempts[0].qc for o in r["again"].values()] == [o.attempts[0].qc for o in r["first"].values()]


def test_asr_off_is_recorded_and_a_listener_crash_fails_only_that_take(rendered):
    job = rendered["podcast-episode"]["job"]
    seg = job.plan.segments[0]
    take = job.store.get(rendered["podcast-episode"]["first"][seg.id].attempts[0].key)
    qc = {"passed": True, "score": 0.0, "metrics": {"active_s": 5.0}, "failures": []}
    row = (seg, take, dict(qc))
    listening.apply_listening(job, Listener(None, voice_check=False), {}, [row])
    assert row[2]["listen"] == {"listener": "off"} and row[2]["passed"]

    class Broken:
        name, identity = "pocketsphinx", "broken-1"

        def transcribe(self, *a, **k):
            raise RuntimeError("decoder exploded")
    crashing = Listener(None, voice_check=False)
    crashing.recognizer, crashing.identity = Broken(), "broken-1"
    row = (seg, take, dict(qc))
    listening.apply_listening(job, crashing, {}, [row])
    assert not row[2]["passed"] and row[2]["failures"] == ["listen_error: RuntimeError: decoder exploded"]
    assert job.store.read_note(take.key, listening._note_name(crashing, {})) is None   # not cached


def test_a_model_that_cannot_load_stops_the_render_before_it_generates(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ListenerUnavailable, match=r"^Whisper model '/nonexistent/whisper' cannot load: ") as e:
        load_recognizer("whisper", "/nonexistent/whisper", device="cpu")
    assert "\n" not in str(e.value)
    shutil.copytree(REPO / "projects" / "podcast-episode", tmp_path / "p", ignore=shutil.ignore_patterns(".dia-studio", "out"))
    yaml = tmp_path / "p" / "project.yaml"
    yaml.write_text(yaml.read_text() + "qc:\n  asr: whisper\n  asr_model: /nonexistent/whisper\n")
    job = jobs.open_job(yaml, RenderOptions(draft=True, store=str(tmp_path / "store")))
    with pytest.raises(listening.ListeningUnavailable, match=r"^qc: Whisper model '/nonexistent/whisper' cannot load"):
        takes.prepare_voices(job)
    assert not (tmp_path / "store").exists()   # nothing generated
    with pytest.raises(ListenerUnavailable, match="unknown speech recognizer 'vosk'"):
        load_recognizer("vosk")


def test_drift_report_names_outliers_by_chapter_and_segment(rendered):
    import copy
    import json

    from dia_core.production import drift
    r = rendered["short-audiobook"]
    outcomes = copy.deepcopy(r["first"])
    victim = r["job"].plan.chapters[1].segments[0]
    turn = outcomes[victim.id].chosen.qc["listen"]["turns"][0]
    turn["similarity"] = 0.1   # as if this take drifted to another voice
    png = drift.write_drift_report(r["job"], r["first"]).parent / "qc-report.png"
    rendered_plot = png.stat()
    path = drift.write_drift_report(r["job"], outcomes)
    assert png.stat().st_ino != rendered_plot.st_ino            # other rows: redrawn
    redrawn = png.stat()
    drift.write_drift_report(r["job"], outcomes)                 # the same rows: the plot is kept
    assert (png.stat().st_ino, png.stat().st_mtime_ns) == (redrawn.st_ino, redrawn.st_mtime_ns)
    report = json.loads(path.read_text())
    assert set(report["per_voice_chapter"]["narrator"]) == {c.id for c in r["job"].plan.chapters}
    assert {"chapter": r["job"].plan.chapters[1].id, "segment": victim.id, "voice": turn["voice"],
            "measure": "similarity", "value": 0.1} in [{k: o[k] for k in ("chapter", "segment", "voice", "measure", "value")}
                                                     for o in report["outliers"]]
    assert (path.parent / "qc-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert victim.id in (path.parent / "qc-report.md").read_text()


def test_the_listened_word_times_time_the_captions(rendered):
    """The chosen takes' stored word times reach the captions (production.cue_times): where the
    recognizer heard enough of each turn's words, cues follow them; else the character share."""
    from dia_core.production import cue_times
    r = rendered["short-audiobook"]
    job, timed = r["job"], []
    for s in job.plan.segments:
        chosen = r["first"][s.id].chosen
        times = cue_times.take_word_times(job.store, chosen)
        assert times, s.id   # PocketSphinx times every heard word; the note is where qc names it
        end = job.store.get(chosen.key).load_audio().shape[0] / 44100
        cues = cue_times.segment_cues(s, 0.0, end, times, job.project.lexicon)
        assert all(0.0 <= c.start_s < c.end_s <= end for c in cues) and cues
        assert all(a.end_s <= b.start_s for a, b in zip(cues, cues[1:]))
        if cues != cue_times.segment_cues(s, 0.0, end, None, job.project.lexicon):   # timed by words
            timed.append(s.id)
            assert cues[0].start_s in {0.0} | {a for _w, a, _b in times}   # a word's start, or the span's
    print(f"cues timed by word times: {len(timed)} of {len(job.plan.segments)} segments")
    assert len(timed) >= len(job.plan.segments) // 2   # measured: all 13


def test_a_delivered_chapters_captions_are_timed_by_its_takes_words(rendered):
    """End to end: the first chapter finished from the listened takes (tempo 0.94, trimmed, stitched);
    its VTT cues are the word-timed cues of each segment, placed where the stitch put the take."""
    import json

    from dia_core.audio import stitch, tempo
    from dia_core.audio.captions import read_vtt
    from dia_core.production import cue_times, delivery
    r = rendered["short-audiobook"]
    job, chapter = r["job"], r["job"].plan.chapters[0]
    result = delivery.finish_chapter(job, chapter.id, r["first"])
    doc = json.loads((job.out_dir / result["manifest"]).read_text())
    trim = job.project.delivery.trim
    expected, shared = [], []
    for s, entry in zip(chapter.segments, doc["segments"]):
        chosen = r["first"][s.id].chosen
        assert chosen.qc["listen"]["word_times_note"].startswith("listen-")
        audio = tempo.change_tempo(job.store.get(chosen.key).load_audio(), s.sampling.speed_factor)
        trim_start, _e = stitch.trim_bounds(audio, trim.threshold_db, trim.padding_ms)
        start, end = entry["start_ms"] / 1000, entry["end_ms"] / 1000
        heard = cue_times.chapter_times(cue_times.take_word_times(job.store, chosen), trim_start=trim_start,
                                        speed_factor=s.sampling.speed_factor, span_start_s=start)
        expected += cue_times.segment_cues(s, start, end, heard, job.project.lexicon)
        shared += cue_times.segment_cues(s, start, end, None, job.project.lexicon)
    delivered = read_vtt(job.out_dir / f"{chapter.id}.vtt")
    assert [c.text for c in delivered] == [c.text for c in expected]
    assert all(abs(d.start_s - e.start_s) <= 0.002 and abs(d.end_s - e.end_s) <= 0.002
               for d, e in zip(delivered, expected))
    assert [round(c.start_s, 3) for c in delivered] != [round(c.start_s, 3) for c in shared]
