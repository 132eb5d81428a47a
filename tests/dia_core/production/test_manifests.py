"""Manifests against their JSON Schemas, plus an end-to-end chapter -> book run on real speech."""
import copy
import hashlib
import json

import jsonschema
import numpy as np
import pytest

from dia_core import __version__
from dia_core.audio import captions, dynamics, profiles
from dia_core.production import manifests as manifest
from dia_core.audio.encode import export_chapter
from dia_core.audio.m4b import export_m4b
from dia_core.audiofile import probe, read_audio
from dia_core.audio.qc import check_segment, expected_seconds
from dia_core.audio.stitch import StitchPiece, stitch_chapter
from dia_core.audio.tempo import change_tempo
from dia_core.settings import DeliverySettings
from dia_core.params import SamplingParams

SHA = "0" * 64
TEXTS = ["[S1] Chapter one. The lighthouse keeper climbed the stairs at dusk.",
         "[S2] Who is there? she asked, holding the lamp high.",
         "[S1] Only the wind, he said, and closed the heavy door behind him."]


def chapter_doc(**over):
    qc = {"passed": True, "score": -0.1, "metrics": {"duration_ratio": 1.1}, "failures": []}
    doc = {
        "schema_version": "1", "chapter_id": "ch01", "index": 0, "title": "Chapter 1", "sample_rate": 44100,
        "duration_ms": 9000, "head_ms": 750, "tail_ms": 2500, "speed_factor": 0.94, "profile": "acx",
        "speaker_names": {"S1": "Narrator", "S2": "Ann"},
        "segments": [{
            "id": "ch01-0001", "text": "[S1] Hello.", "voices": {"S1": "narrator", "S2": None},
            "speakers": ["S1"], "boundary": "chapter_start", "seed": 42, "attempt": 2,
            "attempts": [{"attempt": 1, "seed": 41, "qc": {**qc, "passed": False, "failures": ["x"]}},
                         {"attempt": 2, "seed": 42, "qc": qc}],
            "sampling": SamplingParams().to_dict(), "start_ms": 750, "end_ms": 2000, "qc": qc,
            "source": {"file": "book.md", "line": 3}}],
    }
    doc.update(over)
    return doc


def project_doc(**over):
    m = {"integrated_lufs": -19.5, "true_peak_dbtp": -4.0, "sample_peak_dbfs": -4.2, "rms_db": -20.0,
         "noise_floor_db": -70.0, "duration_s": 9.0}
    doc = {
        "schema_version": "1", "title": "Book", "author": "A", "narrator": "N", "profile": "acx", "strict": True,
        "chapters": [{"id": "ch01", "title": "Chapter 1", "manifest": "ch01.json",
                      "files": [{"path": "ch01.mp3", "format": "mp3", "sha256": SHA, "bytes": 10, "duration_s": 9.0}],
                      "duration_s": 9.0, "start_ms": 0, "end_ms": 9000, "measurements": m,
                      "limits": {"rms_db": {"min": -23, "max": -18}}, "passed": True, "failures": [],
                      "qc_failed": 0, "qc_failed_segments": []}],
        "book_files": [{"path": "book.m4b", "format": "m4b", "sha256": SHA, "bytes": 10}],
        "model": {"engine": "dia", "id": "nari-labs/Dia-1.6B-0626", "checksum": "sha256:" + SHA},
        "software": {"name": "dia-studio", "version": __version__},
        "started_at": "2025-01-01T10:00:00Z", "finished_at": "2025-01-01T11:00:00Z",
        "inputs_hash": "sha256:" + SHA, "qc_failed": 0, "passed": True, "complete": True, "missing_chapters": [],
    }
    doc.update(over)
    return doc


def test_schemas_are_valid_draft_2020_12():
    for name in (manifest.CHAPTER_SCHEMA, manifest.PROJECT_SCHEMA):
        schema = manifest.load_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_valid_manifests_write_atomically(tmp_path):
    manifest.write_chapter_manifest(chapter_doc(), tmp_path / "ch01.json")
    manifest.write_project_manifest(project_doc(), tmp_path / "project.json")
    assert json.loads((tmp_path / "ch01.json").read_text())["segments"][0]["seed"] == 42
    assert json.loads((tmp_path / "project.json").read_text())["complete"] is True
    assert not list(tmp_path.glob(".tmp-*"))


def _broken_chapters():
    d = chapter_doc(); del d["segments"][0]["seed"]; yield d
    d = chapter_doc(); d["segments"][0]["end_ms"] = 500; yield d               # ends before it starts
    d = chapter_doc(); d["segments"][0]["start_ms"] = 1.5; yield d             # not integer ms
    d = chapter_doc(); d["segments"][0]["voices"] = {"X": "a"}; yield d
    d = chapter_doc(); d["segments"][0]["end_ms"] = 99999; yield d             # past chapter end
    d = chapter_doc(); d["segments"].append(copy.deepcopy(d["segments"][0])); yield d   # duplicate id
    d = chapter_doc(); d["segments"][0]["qc"]["metrics"]["x"] = float("inf"); yield d


def _broken_projects():
    d = project_doc(); d["complete"] = False; yield d
    d = project_doc(); d["chapters"][0]["files"][0]["sha256"] = "abc"; yield d
    d = project_doc(); del d["inputs_hash"]; yield d
    d = project_doc(); del d["chapters"][0]["measurements"]["rms_db"]; yield d
    d = project_doc(); d["profile"] = "loud"; yield d
    d = project_doc(); d["finished_at"] = "2024-12-31T00:00:00Z"; yield d
    d = project_doc(); d["chapters"][0]["limits"] = {"rms_db": {}}; yield d
    # complete exactly when nothing is missing; an incomplete delivery has no book; QC counts add up
    d = project_doc(); d["missing_chapters"] = ["ch02"]; yield d
    d = project_doc(complete=False, missing_chapters=["ch02"]); yield d             # ...but a book
    d = project_doc(complete=False, missing_chapters=["ch01"], book_files=[]); yield d   # present and missing
    d = project_doc(); del d["qc_failed"]; yield d
    d = project_doc(); del d["chapters"][0]["qc_failed_segments"]; yield d
    d = project_doc(); d["chapters"][0]["qc_failed"] = 1; yield d                   # 1 but no segment ids
    d = project_doc(); d["qc_failed"] = 2; yield d                                  # not the chapters' sum


@pytest.mark.parametrize("doc", list(_broken_chapters()))
def test_invalid_chapter_manifest_raises_and_writes_nothing(doc, tmp_path):
    with pytest.raises(ValueError):
        manifest.write_chapter_manifest(doc, tmp_path / "c.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("doc", list(_broken_projects()))
def test_invalid_project_manifest_raises(doc, tmp_path):
    with pytest.raises(ValueError):
        manifest.write_project_manifest(doc, tmp_path / "p.json")
    assert list(tmp_path.iterdir()) == []


def test_incomplete_delivery_and_qc_failures_validate(tmp_path):
    ch = project_doc()["chapters"][0] | {"qc_failed": 2, "qc_failed_segments": ["a1", "b2"]}
    manifest.write_project_manifest(project_doc(chapters=[ch], qc_failed=2, passed=False, complete=False,
                                                missing_chapters=["ch02"], book_files=[], book=None),
                                    tmp_path / "p.json")


def test_file_sha256_and_entry(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"abc" * 1000)
    assert manifest.file_sha256(p) == hashlib.sha256(b"abc" * 1000).hexdigest()
    e = manifest.file_entry(p, relative_to=tmp_path, duration_s=1.23456)
    assert e == {"path": "a.bin", "format": "bin", "sha256": hashlib.sha256(b"abc" * 1000).hexdigest(),
                 "bytes": 3000, "duration_s": 1.235}


def test_end_to_end_book(speech_clips, tmp_path):
    """Segments -> tempo -> QC -> stitch -> finish -> export + check -> captions -> manifests -> M4B."""
    s = DeliverySettings(profile="acx", formats=("mp3", "flac"))
    speed = 0.94
    params = SamplingParams(speed_factor=speed)
    chapters = []
    for ci in range(2):
        clips = [change_tempo(c, speed) for c in (speech_clips if ci == 0 else speech_clips[1:])]
        texts = TEXTS if ci == 0 else TEXTS[1:]
        qcs = [check_segment(c, expected_seconds=expected_seconds(t, speed_factor=speed), hit_limit=False)
               for c, t in zip(clips, texts)]
        kinds = ["chapter_start", "turn", "turn"]
        st = stitch_chapter([StitchPiece(c, k, f"ch{ci}-{i}") for i, (c, k) in enumerate(zip(clips, kinds))], s,
                            seed=ci)
        y, rep = dynamics.finish(st.audio, s, spans=st.spans)
        files = export_chapter(y, tmp_path / f"ch{ci}", s)
        check = profiles.check_file(files["mp3"], s)
        assert check.passed, check.failures
        times = manifest.segment_times_ms(st.spans)
        segs = [{"id": f"ch{ci}-{i}", "text": t, "voices": {"S1": "narrator", "S2": "ann"},
                 "speakers": [t[1:3]], "boundary": k, "seed": 100 + i, "attempt": 1,
                 "attempts": [{"attempt": 1, "seed": 100 + i, "qc": q.to_dict()}],
                 "sampling": params.to_dict(), "start_ms": a, "end_ms": b, "qc": q.to_dict(),
                 "source": {"file": "book.md", "line": 1 + i}}
                for i, (t, k, q, (a, b)) in enumerate(zip(texts, kinds, qcs, times))]
        doc = chapter_doc(chapter_id=f"ch{ci}", index=ci, title=f"Chapter {ci + 1}", segments=segs,
                          duration_ms=round(len(y) / 44.1), head_ms=round(st.head_s * 1000),
                          tail_ms=round(st.tail_s * 1000), loudness=rep.to_dict(),
                          files=[manifest.file_entry(p, relative_to=tmp_path) for p in files.values()])
        manifest.write_chapter_manifest(doc, tmp_path / f"ch{ci}.json")
        cues = captions.cues_from_segments(segs, doc["speaker_names"])
        captions.write_vtt(cues, tmp_path / f"ch{ci}.vtt")
        captions.write_srt(cues, tmp_path / f"ch{ci}.srt")
        # caption cues line up with the manifest timings (to the millisecond)
        for cue, seg in zip(captions.read_vtt(tmp_path / f"ch{ci}.vtt"), segs):
            assert (round(cue.start_s * 1000), round(cue.end_s * 1000)) == (seg["start_ms"], seg["end_ms"])
        expected_names = {"S1": "Narrator", "S2": "Ann"}
        assert [c.speaker for c in cues] == [expected_names[t[1:3]] for t in texts]
        # ...and the manifest timings point at the speech in the final decoded file
        decoded = read_audio(files["flac"])
        for a, b in times:
            inside = decoded[int(a * 44.1) + 2205: int(b * 44.1) - 2205]
            assert 20 * np.log10(np.abs(inside).max()) > -30
        chapters.append({"id": f"ch{ci}", "title": f"Chapter {ci + 1}", "manifest": f"ch{ci}.json",
                         "files": doc["files"], "duration_s": round(len(y) / 44100, 3),
                         "measurements": check.measurements.to_dict(), "limits": check.limits,
                         "passed": check.passed, "failures": check.failures,
                         "qc_failed": 0, "qc_failed_segments": []})
    book, bounds = export_m4b([tmp_path / f"ch{i}.flac" for i in range(2)], ["Chapter 1", "Chapter 2"],
                              tmp_path / "book.m4b", {"title": "Book", "author": "A", "narrator": "N"})
    info = probe(book)
    assert [round(float(c["start_time"]) * 1000) for c in info["chapters"]] == [b[0] for b in bounds]
    assert abs(bounds[1][0] / 1000 - chapters[0]["duration_s"]) <= 0.020
    for ch, (a, b) in zip(chapters, bounds):
        ch["start_ms"], ch["end_ms"] = a, b
    proj = project_doc(chapters=chapters, book_files=[manifest.file_entry(book, relative_to=tmp_path)],
                       started_at="2025-01-01T10:00:00Z", finished_at=manifest.utc_now())
    manifest.write_project_manifest(proj, tmp_path / "project.json")
    loaded = json.loads((tmp_path / "project.json").read_text())
    assert loaded["book_files"][0]["sha256"] == manifest.file_sha256(book)
    assert all(c["passed"] for c in loaded["chapters"])
