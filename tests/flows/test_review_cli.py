"""`dia-studio takes/retake/pin/unpin/review`: thin commands over dia_core.review (in-process)."""
from __future__ import annotations

import json

import pytest

from dia_core.review import decisions as dec
from flows.cli import main
from tests.review_fixture import make_planned


@pytest.fixture
def planned(tmp_path):
    return make_planned(tmp_path)


def test_takes_retake_pin_unpin(planned, capsys):
    project, segs = str(planned["path"]), planned["manifest"]["segments"]
    assert main(["takes", project, "chapter-01"]) == 0
    table = capsys.readouterr().out
    assert segs[0]["id"] in table and "att" in table
    assert main(["takes", project, "--json"]) == 0
    [view] = json.loads(capsys.readouterr().out)
    assert [len(s["takes"]) for s in view["segments"]] == [2, 1, 1, 1, 1, 1]

    assert main(["retake", project, segs[1]["id"][:6], "--note", "too fast"]) == 0
    assert json.loads(capsys.readouterr().out)["retake"] == {"count": 1, "note": "too fast"}
    first = segs[0]["attempts"][0]["key"]
    assert main(["pin", project, segs[0]["id"], first[:8]]) == 0
    assert main(["pin", project, segs[2]["id"]]) == 0          # default: the take in the chapter now
    root = planned["project"].root
    d = dec.load(root)
    assert d.get(segs[0]["id"]).pin.take == first and d.get(segs[2]["id"]).pin.take == segs[2]["attempts"][0]["key"]
    assert main(["unpin", project, segs[0]["id"]]) == 0
    assert dec.load(root).get(segs[0]["id"]).pin is None
    capsys.readouterr()

    # bad input: one error line, exit 2, review.yaml untouched
    before = dec.review_path(root).read_bytes()
    for argv in (["pin", project, segs[0]["id"], "ffffffff"], ["retake", project, "abcdabcd"],
                 ["takes", project, "chapter-07"], ["unpin", project, "not-hex"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    assert dec.review_path(root).read_bytes() == before

    dec.review_path(root).write_text("segments:\n  0123456789abcdef:\n    retake: {count: -1}\n")
    for argv in (["takes", project], ["review", project], ["render", project, "--draft"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "review.yaml:3: segments.0123456789abcdef.retake.count" in err, err
