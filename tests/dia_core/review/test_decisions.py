"""review.yaml: validated with file:line errors, written atomically under a lock, applied to a plan
(text fixes, retake seeds, pins kept or dropped with a warning naming the segment)."""
from __future__ import annotations

import threading

import pytest

from dia_core.errors import InputError
from dia_core.production.engines import VoicePrompt
from dia_core.production.jobs import open_job
from dia_core.production.options import RenderOptions
from dia_core.review import apply, decisions as dec


def test_round_trip_and_file_line_errors(tmp_path):
    root = tmp_path
    dec.retake(root, "0123456789abcdef", "too fast", "chapter-01")
    dec.retake(root, "0123456789abcdef", "still too fast")
    dec.pin(root, "fedcba9876543210", "a" * 64, "[S1] Hello.", "chapter-02")
    dec.fix_text(root, "1111111111111111", "[S1]  Fixed   words.", "[S1] Old words.", "chapter-01")
    dec.add_lexicon(root, "Caerwyn", "Kair-win")
    d = dec.load(root)
    assert d.get("0123456789abcdef").retake == dec.Retake(2, "still too fast")   # the counter went up
    assert d.get("fedcba9876543210").pin == dec.Pin("a" * 64, "[S1] Hello.")
    assert d.get("1111111111111111").text == "[S1] Fixed words."
    assert d.lexicon == {"Caerwyn": "Kair-win"}
    assert dec.parse(d.to_yaml(), "x", root) == d
    dec.unpin(root, "fedcba9876543210")
    assert "fedcba9876543210" not in dec.load(root).segments   # nothing left: the entry goes

    bad = {
        "segments:\n  xyz: {}\n": (2, "segments.xyz"),
        "segments:\n  0123456789abcdef:\n    retake: {count: 0}\n": (3, "segments.0123456789abcdef.retake.count"),
        "segments:\n  0123456789abcdef:\n    pin: {take: abc, text: '[S1] x'}\n": (3, "pin.take"),
        "segments:\n  0123456789abcdef:\n    colour: red\n": (3, "colour"),
        "lexicon:\n  word: '[S2] x'\n": (2, "lexicon.word"),
        "segments: [1, 2\n": (2, None),
        "segments:\n  0123456789abcdef: !!python/object:os.system {}\n": (2, None),
    }
    for text, (line, field) in bad.items():
        (root / "review.yaml").write_text(text)
        with pytest.raises(InputError) as e:
            dec.load(root)
        assert e.value.line == line and str(e.value).startswith(f"{root / 'review.yaml'}:{line}:"), str(e.value)
        if field:
            assert field in str(e.value)


def test_text_fix_must_keep_speaker_tags(tmp_path):
    with pytest.raises(InputError, match="speaker tags"):
        dec.fix_text(tmp_path, "0123456789abcdef", "[S1] a [S2] b", "[S1] a b")
    assert not (tmp_path / "review.yaml").exists()   # nothing written


def test_concurrent_writers_lose_nothing_and_readers_never_see_a_torn_file(tmp_path):
    """Two writers (a review page and the CLI) and an unlocked reader (a render) at once."""
    errors, stop = [], threading.Event()

    def writer(prefix: str):
        for i in range(8):
            dec.retake(tmp_path, "0123456789abcdef", f"{prefix}{i}")
            dec.add_lexicon(tmp_path, f"{prefix}word{i}", "x")

    def reader():
        while not stop.is_set():
            try:
                dec.load(tmp_path)
            except Exception as e:   # a torn file would fail to parse
                errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in "ab"] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join()
    stop.set()
    threads[2].join()
    d = dec.load(tmp_path)
    assert not errors
    assert d.get("0123456789abcdef").retake.count == 16   # every increment kept
    assert len(d.lexicon) == 16
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


PROMPTS = {v: VoicePrompt(v, None, None, v) for v in ("narrator", "mara")}


class RecordingEngine:
    """Stands in for an engine: records what it is asked to generate."""
    name, version, model_id, checksum, default_batch_size = "fake", "1", "fake", "0" * 64, 8

    def __init__(self):
        self.requests = []

    def start(self, requests, prompts):
        import numpy as np

        from dia_core.production.engines import ReadyTakes, Take

        self.requests += requests
        return ReadyTakes([Take(np.full(44100, 0.1, np.float32), False) for _ in requests])


def test_apply_pins_retakes_fixes_and_drops_a_pin_when_the_manuscript_changes(planned):
    root, store = planned["project"].root, planned["store"]
    segs = planned["plan"].chapters[0].segments
    pinned, retaken, fixed, alts = segs[0], segs[1], segs[3], segs[4]
    dec.pin(root, pinned.id, "00" + "00".ljust(62, "a"), pinned.text, "chapter-01")   # attempt 1 of segment 0
    dec.retake(root, retaken.id, "rushed", "chapter-01")
    dec.fix_text(root, fixed.id, fixed.text.replace("morning", "early"), fixed.text, "chapter-01")
    dec.request_alternatives(root, alts.id, 2, "chapter-01")

    job = open_job(planned["path"], RenderOptions(draft=True))
    job._engine = engine = RecordingEngine()
    applied = apply.apply_decisions(job)
    assert set(applied.pins) == {pinned.id} and set(applied.retakes) == {retaken.id}
    seg = {s.id: s for s in job.plan.segments}
    assert seg[retaken.id].seed == apply.retake_seed(retaken.seed, retaken.id, 1) != retaken.seed
    assert seg[fixed.id].text == "[S1] Then we wait for the early ferry."
    assert seg[fixed.id].turns[0].text == "Then we wait for the early ferry."   # captions follow the fix

    outcomes = apply.generate_takes(job, PROMPTS, applied)
    asked = [r.text for r in engine.requests]
    assert pinned.text not in asked                      # the pinned segment is not generated
    seeds = {r.seed for r in engine.requests if r.text == alts.text}
    assert {alts.seed, apply.alternative_seed(alts.seed, alts.id, 1),
            apply.alternative_seed(alts.seed, alts.id, 2)} <= seeds   # its take and two alternatives
    assert outcomes[pinned.id].chosen.key == "00" + "00".ljust(62, "a")
    per_segment, chapter = apply.manifest_annotations(applied, outcomes, job.plan.chapters[0])
    assert per_segment[retaken.id]["review"]["retaken"]["note"] == "rushed"
    assert len(per_segment[alts.id]["review"]["alternatives"]) == 2
    assert chapter["review"]["pinned"] == [pinned.id]

    # a manuscript edit changes the pinned segment (its id and text): the pin is dropped, named
    manuscript = planned["project"].root / "manuscript.md"
    manuscript.write_text(manuscript.read_text().replace("grey stones", "black stones"))
    warnings = []
    job = open_job(planned["path"], RenderOptions(draft=True))
    applied = apply.apply_decisions(job, log=warnings.append)
    assert applied.pins == {} and applied.dropped[0]["segment"] == pinned.id
    assert pinned.id in warnings[0] and "pin dropped" in warnings[0] and "chapter-01" in warnings[0]

    # a pin survives sampling changes: its take is read from the store by key
    manuscript.write_text(manuscript.read_text().replace("black stones", "grey stones"))
    (root / "project.yaml").write_text((root / "project.yaml").read_text().replace("temperature: 1.3", "temperature: 0.9"))
    job = open_job(planned["path"], RenderOptions(draft=True))
    job._engine = RecordingEngine()
    outcomes = apply.generate_takes(job, PROMPTS, apply.apply_decisions(job))
    assert outcomes[pinned.id].chosen.key == "00" + "00".ljust(62, "a")
    assert store.get(outcomes[segs[5].id].chosen.key).record["segment_id"] == segs[5].id  # others: new keys
