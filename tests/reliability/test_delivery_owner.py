"""Two projects with the same folder name and one --out: the second (or the one that loses the race)
exits 2 with one line naming both projects, and the first one's delivery is left as it was."""
from __future__ import annotations

import json

from .conftest import Result, popen_cli, run_cli
from .fixture import MANUSCRIPT, build_project
from .outputs import NAME, owner, published, render_args


def _error_lines(r: Result) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]


def test_second_project_with_the_same_folder_name_exits_2(render_env, tmp_path):
    x = build_project(tmp_path / "x")
    y = build_project(tmp_path / "y", manuscript=MANUSCRIPT.replace("small boat", "grey ferry"))
    out = tmp_path / "out"
    first = run_cli(render_args(x, out), render_env)
    assert first.rc == 0, first
    before = {rel: p.read_bytes() for rel, p in published(out).items()}

    second = run_cli(render_args(y, out), render_env)
    assert second.rc == 2, second
    assert second.stdout == "" and second.stderr.count("\n") == 1, second   # one line, before any flow
    [line] = _error_lines(second)
    assert str(x.resolve()) in line and str(y.resolve()) in line and "belongs to another project" in line
    assert {rel: p.read_bytes() for rel, p in published(out).items()} == before
    assert owner(out) == str(x.resolve())
    assert not (y.parent / ".dia-studio" / "store").exists()   # no work done


def test_two_projects_with_the_same_folder_name_at_once(render_env, tmp_path):
    x = build_project(tmp_path / "x")
    y = build_project(tmp_path / "y", manuscript=MANUSCRIPT.replace("small boat", "grey ferry"))
    out = tmp_path / "out"
    args = [render_args(p, out) for p in (x, y)]
    procs = [popen_cli(a, render_env) for a in args]
    results = []
    for p, a in zip(procs, args):
        stdout, stderr = p.communicate(timeout=240)
        results.append(Result([str(v) for v in a], p.returncode, stdout, stderr))
    assert sorted(r.rc for r in results) == [0, 2], "\n".join(map(str, results))
    winner, loser = (x, 1) if results[0].rc == 0 else (y, 0)
    lines = [ln for ln in _error_lines(results[loser]) if "belongs to another project" in ln]
    assert len(lines) == 1 and str(x.resolve()) in lines[0] and str(y.resolve()) in lines[0], results[loser]
    assert owner(out) == str(winner.resolve())
    data = json.loads((out / NAME / "manifest.json").read_text())
    assert data["complete"] is True
    ferry = any("grey ferry" in s["text"] for c in data["chapters"]
                for s in json.loads((out / NAME / c["manifest"]).read_text())["segments"])
    assert ferry == (winner == y)   # the delivery is the winner's, all of it
