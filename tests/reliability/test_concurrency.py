"""Concurrent renders: the same project twice -> one renders, the other exits 3 with a clear
message and writes nothing; two different projects at once -> both complete."""
from __future__ import annotations

import json

import pytest
from filelock import FileLock

from .conftest import Result, popen_cli, run_cli
from .fixture import MANUSCRIPT, build_project
from .outputs import published, render_args, same_as_reference, temps


def _wait(proc, args) -> Result:
    out, err = proc.communicate(timeout=240)
    return Result([str(a) for a in args], proc.returncode, out, err)


def _busy_line(r: Result) -> str:
    """The clear message: exactly one `busy: ...` line on stderr (Prefect's own log lines may follow)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("busy: ")]
    assert len(lines) == 1, r
    return lines[0]


@pytest.fixture(scope="module")
def busy_render(render_env, tmp_path_factory):
    """A render started while another process holds the project's lock."""
    tmp = tmp_path_factory.mktemp("busy")
    yaml = build_project(tmp)
    work = yaml.parent / ".dia-studio"
    work.mkdir()
    with FileLock(str(work / "render.lock")):
        r = run_cli(render_args(yaml, tmp / "out"), render_env)
    return r, tmp / "out"


def test_render_while_lock_is_held_exits_3(busy_render):
    r, out = busy_render
    assert r.rc == 3, r
    line = _busy_line(r)
    assert "project.yaml" in line and "another render of this project is running" in line, line
    assert not published(out), "a render that lost the lock wrote outputs"


def test_busy_render_prints_no_traceback(busy_render):
    r, _ = busy_render
    assert "Traceback" not in r.stderr, r


def test_same_project_twice_one_renders_other_exits_3(render_env, reference, tmp_path):
    yaml = build_project(tmp_path)
    outs = [tmp_path / "out-a", tmp_path / "out-b"]   # separate folders: we can tell who wrote what
    args = [render_args(yaml, o) for o in outs]
    procs = [popen_cli(a, render_env) for a in args]
    results = [_wait(p, a) for p, a in zip(procs, args)]
    assert sorted(r.rc for r in results) == [0, 3], "\n".join(map(str, results))
    winner, loser = (0, 1) if results[0].rc == 0 else (1, 0)
    assert "another render of this project is running" in _busy_line(results[loser])
    assert not published(outs[loser]), "the render that lost the lock wrote outputs"
    files = published(outs[winner])
    assert set(files) == set(reference.files) | set(reference.manifests)
    for rel, p in files.items():
        same_as_reference(rel, p, reference)
    assert not temps(outs[winner])


def test_two_projects_at_once_both_complete(render_env, reference, tmp_path):
    a = build_project(tmp_path / "a")
    b = build_project(tmp_path / "b", name="other-bell",
                      manuscript=MANUSCRIPT.replace("small boat", "grey ferry"))
    args = [render_args(a, tmp_path / "out"), render_args(b, tmp_path / "out")]
    procs = [popen_cli(x, render_env) for x in args]
    ra, rb = [_wait(p, x) for p, x in zip(procs, args)]
    assert ra.rc == 0, ra
    assert rb.rc == 0, rb
    files_a = published(tmp_path / "out")   # tiny-bell's folder
    assert set(files_a) == set(reference.files) | set(reference.manifests)
    for rel, p in files_a.items():
        same_as_reference(rel, p, reference)
    mb = json.loads((tmp_path / "out" / "other-bell" / "manifest.json").read_text())
    assert mb["complete"] is True and [c["id"] for c in mb["chapters"]] == ["chapter-01", "chapter-02"]
    assert (tmp_path / "out" / "other-bell" / "other-bell.m4b").stat().st_size > 0
