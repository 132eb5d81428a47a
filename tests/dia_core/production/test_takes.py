"""dia_core.render pieces that need no flow: the batch pipeline and the fast-path setting."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from dia_core.production import delivery, jobs, takes
from dia_core.production.options import RenderOptions, fast_path_mode
from dia_core.production.engines import Take
from dia_core.errors import InputError
from tests.listening_off import without_listening

ROOT = Path(__file__).resolve().parents[3]


class RecordingEngine:
    """Records when batches are started and when their takes are collected."""
    name, version, model_id, checksum, default_batch_size = "rec", "1", "rec", "0" * 64, 2

    def __init__(self):
        self.events = []

    def start(self, requests, prompts):
        n = sum(e[0] == "start" for e in self.events) + 1
        self.events.append(("start", n))
        takes = [Take(np.full(4410, 0.1, np.float32), False) for _ in requests]
        events = self.events

        class Pending:
            def result(self):
                events.append(("result", n))
                return takes
        return Pending()

    def generate(self, requests, prompts):
        return self.start(requests, prompts).result()


@pytest.fixture
def job(tmp_path):
    shutil.copytree(ROOT / "projects" / "short-audiobook", tmp_path / "book")
    return jobs.open_job(without_listening(tmp_path / "book" / "project.yaml"),
                           RenderOptions(draft=True, store=str(tmp_path / "store"), batch_size=2))


def test_next_batch_is_generated_before_the_previous_one_is_collected(job):
    engine = job._engine = RecordingEngine()
    segments = job.plan.segments[:5]  # 3 batches of 2, 2, 1
    work = [(s, s.seed) for s in segments]
    keys = {s.id: f"{i:064x}" for i, s in enumerate(segments)}
    takes._generate_missing(job, work, keys, {}, attempt=1, log=lambda m: None)
    assert engine.events == [("start", 1), ("start", 2), ("result", 1), ("start", 3), ("result", 2),
                             ("result", 3)]
    assert all(job.store.get(k) is not None for k in keys.values())  # every take stored


def test_fast_path_mode_from_option_then_environment(monkeypatch):
    monkeypatch.delenv("DIA_STUDIO_FAST_PATH", raising=False)
    assert fast_path_mode(RenderOptions()) == "off"
    monkeypatch.setenv("DIA_STUDIO_FAST_PATH", "static")
    assert fast_path_mode(RenderOptions()) == "static"
    assert fast_path_mode(RenderOptions(fast_path="inductor")) == "inductor"
    monkeypatch.setenv("DIA_STUDIO_FAST_PATH", "fast")
    with pytest.raises(InputError, match="DIA_STUDIO_FAST_PATH.*got 'fast'"):
        fast_path_mode(RenderOptions())


def test_strict_profile_fails_on_a_failing_m4b_check():
    from types import SimpleNamespace

    def job(strict):
        return SimpleNamespace(project=SimpleNamespace(manifest_path="p/project.yaml", delivery=SimpleNamespace(
            strict=strict, profile="acx")))
    chapters = [{"id": "chapter-01", "passed": True, "failures": []}]
    book = {"path": "out/book.m4b", "check": {"passed": False, "failures": ["true peak -2.1 dBTP > -3.0"]}}
    with pytest.raises(delivery.DeliveryFailed, match=r"book\.m4b: true peak -2\.1 dBTP"):
        delivery.check_strict(job(True), chapters, book)
    delivery.check_strict(job(False), chapters, book)  # not strict: recorded in the manifest only
    delivery.check_strict(job(True), chapters, {"path": "out/book.m4b", "check": {"passed": True, "failures": []}})
    delivery.check_strict(job(True), chapters, None)


def test_device_is_held_only_while_something_is_generated(job):
    """The GPU slot (hold_device) is entered once, before the first generation; a re-render whose
    takes are all in the store never enters it (it would wait for a busy GPU for nothing)."""
    prompts = takes.prepare_voices(job)
    only = {s.id for s in job.plan.segments[:3]}
    entered = []

    class Hold:
        def __enter__(self):
            entered.append(len(list(job.store.root.rglob("take.json"))))   # takes stored so far

        def __exit__(self, *exc):
            return False

    before = len(list(job.store.root.rglob("take.json")))   # the voices' calibration takes
    first = takes.generate_takes(job, prompts, only=only, hold_device=Hold)
    assert entered == [before] and all(a.generated for o in first.values() for a in o.attempts[:1])
    again = takes.generate_takes(job, prompts, only=only, hold_device=Hold)
    assert entered == [before], "a render with every take stored took the device"
    assert {sid: o.chosen.key for sid, o in again.items()} == {sid: o.chosen.key for sid, o in first.items()}
