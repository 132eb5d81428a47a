"""Chapters are finished a bounded number at a time (flows.produce._finish_chapters), results in
plan order; the bound comes from --finish-workers, checked like every render flag."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dia_core.errors import InputError
from dia_core.production.options import RenderOptions, finish_workers
from flows import cli
from flows.produce import _finish_chapters


class _Future:   # the part of PrefectFuture that _finish_chapters uses
    def __init__(self, inner):
        self.inner = inner

    def wait(self):
        self.inner.exception()

    def result(self):
        return self.inner.result()


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_at_most_finish_workers_chapters_at_once_results_in_order(limit):
    planned = [{"id": f"ch{i:02d}"} for i in range(7)]
    lock, now, most = threading.Lock(), [0], [0]

    def finish(c):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.05 if c["id"] != "ch01" else 0.15)   # a slow chapter does not reorder results
        with lock:
            now[0] -= 1
        return {"id": c["id"]}

    with ThreadPoolExecutor(8) as pool:
        out = _finish_chapters(planned, RenderOptions(finish_workers=limit).to_dict(),
                               lambda c: _Future(pool.submit(finish, c)))
    assert [c["id"] for c in out] == [c["id"] for c in planned]
    assert most[0] == limit


def test_default_is_two_or_the_cpus_and_bad_values_are_input_errors(monkeypatch):
    assert finish_workers(RenderOptions()) in (1, 2)
    assert finish_workers(RenderOptions(finish_workers=5)) == 5
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InputError) as e:
            RenderOptions(finish_workers=bad)
        assert e.value.field == "finish_workers"
    args = cli.build_parser().parse_args(["render", "p/project.yaml", "--finish-workers", "0"])
    with pytest.raises(InputError) as e:
        cli.options_from_args(args)
    assert e.value.field == "--finish-workers"
