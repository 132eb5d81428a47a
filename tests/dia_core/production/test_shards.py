"""Shard planning (pure) and reading a partly generated store back (what the producer does between shards)."""
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dia_core.production import jobs, shards, takes
from dia_core.production.engines import Take
from dia_core.production.options import RenderOptions

ROOT = Path(__file__).resolve().parents[3]


def seg(id, text, seconds):
    return SimpleNamespace(id=id, text=text, prompt_text="", est_seconds=seconds)


def test_shards_are_length_buckets_of_at_most_n_minutes():
    segments = [seg(f"s{i}", "x" * (10 + (i * 7) % 50), 30.0) for i in range(20)]   # 10 minutes in all
    plan = shards.plan_shards(segments, minutes=3)
    assert [len(s.segment_ids) for s in plan] == [6, 6, 6, 2]            # 3 min = 6 segments of 30 s
    assert all(s.est_seconds <= 180 for s in plan) and sum(s.est_seconds for s in plan) == 600
    assert [s.index for s in plan] == [0, 1, 2, 3]
    by_id = {s.id: s for s in segments}
    lengths = [len(by_id[i].text) for s in plan for i in s.segment_ids]
    assert lengths == sorted(lengths)                                    # consecutive length buckets
    assert sorted(i for s in plan for i in s.segment_ids) == sorted(by_id)  # each segment exactly once
    assert shards.plan_shards(list(reversed(segments)), minutes=3) == plan  # deterministic


def test_a_segment_longer_than_a_shard_is_a_shard_and_repeated_ids_count_once():
    segments = [seg("a", "short", 10), seg("b", "a much longer text", 400), seg("a", "short", 10)]
    plan = shards.plan_shards(segments, minutes=1)
    assert [s.segment_ids for s in plan] == [("a",), ("b",)]
    assert [s.est_seconds for s in plan] == [10, 400]
    assert shards.plan_shards([], minutes=1) == []
    assert shards.Shard.from_dict(plan[1].to_dict()) == plan[1]
    with pytest.raises(ValueError):
        shards.plan_shards(segments, minutes=0)


class QuietEngine:
    """0.1 s of constant audio per take: fails QC on every attempt, so each segment stores them all."""
    name, version, model_id, checksum, default_batch_size = "quiet", "1", "quiet", "0" * 64, 4

    def start(self, requests, prompts):
        result = [Take(np.full(4410, 0.1, np.float32), False) for _ in requests]
        return SimpleNamespace(result=lambda: result)

    def generate(self, requests, prompts):
        return self.start(requests, prompts).result()


def test_read_store_settles_exactly_what_a_shard_generated(tmp_path):
    shutil.copytree(ROOT / "projects" / "short-audiobook", tmp_path / "book")
    job = jobs.open_job(tmp_path / "book" / "project.yaml", RenderOptions(draft=True, store=str(tmp_path / "store")))
    job._engine = QuietEngine()
    prompts = takes.prepare_voices(job)
    first = job.plan.chapters[0]
    settled, todo = shards.read_store(job, prompts, job.plan.segments)
    assert settled == {} and len(todo) == len({s.id for s in job.plan.segments})
    assert shards.ready_chapters(job, settled) == []

    done = takes.generate_takes(job, prompts, only={s.id for s in first.segments})
    assert set(done) == {s.id for s in first.segments}
    settled, todo = shards.read_store(job, prompts, job.plan.segments)
    assert set(settled) == set(done) and not {s.id for s in todo} & set(done)
    for sid, outcome in done.items():   # the same attempts, keys and verdicts the take loop recorded
        assert [(a.attempt, a.key, a.qc["passed"]) for a in settled[sid].attempts] == \
               [(a.attempt, a.key, a.qc["passed"]) for a in outcome.attempts]
    assert len(settled[first.segments[0].id].attempts) == job.project.qc.max_attempts
    assert shards.ready_chapters(job, settled) == [first.id]
    assert shards.ready_chapters(job, settled, done=[first.id]) == []


def test_shard_minutes_option_is_checked():
    from dia_core.errors import InputError

    assert RenderOptions(shard_minutes=0.5).shard_minutes == 0.5
    for bad in (0, -1, True):
        with pytest.raises(InputError, match="shard_minutes: must be a positive number of minutes"):
            RenderOptions(shard_minutes=bad)
