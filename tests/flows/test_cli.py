"""`dia-studio plan` / `validate`: output on stdout, one-line errors on stderr, exit code 2."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows import cli

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "projects" / "short-audiobook" / "project.yaml"
POD = REPO / "projects" / "podcast-episode" / "project.yaml"


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_validate_ok(capsys):
    rc, out, err = run(capsys, "validate", BOOK)
    assert rc == 0 and err == ""
    assert out.startswith("ok: ") and "3 chapters" in out and "4 voices" in out


def test_plan_table(capsys):
    rc, out, err = run(capsys, "plan", BOOK)
    assert rc == 0 and err == ""
    for word in ("chapter-01", "chapter-03", "The Keeper of Caerwyn", "segments", "est. min", "total"):
        assert word in out


def test_plan_json_shape(capsys):
    rc, out, err = run(capsys, "plan", POD, "--json")
    assert rc == 0
    plan = json.loads(out)
    assert plan["project_title"].startswith("Study Hall")
    assert [c["title"] for c in plan["chapters"]] == ["Episode 12: Small Habits", "Friction", "Tracking"]
    ch = plan["chapters"][0]   # the episode's sections are its chapters
    assert ch["id"] == "chapter-01"
    for seg in [s for c in plan["chapters"] for s in c["segments"]]:
        assert {"id", "text", "prompt_text", "slots", "est_seconds", "source"} <= set(seg)
        assert set(seg["slots"]) == {"S1", "S2"} and seg["slots"]["S1"] in ("alex", "sam")
        assert seg["text"].startswith("[S1] ")
        assert set(seg["source"]) == {"file", "line"} and seg["source"]["file"] == "episode.md"
    assert any(seg["slots"]["S2"] for c in plan["chapters"] for seg in c["segments"])


def test_plan_chapter_selection(capsys):
    rc, out, _ = run(capsys, "plan", BOOK, "--json", "--chapters", "1,3")
    assert rc == 0
    assert [c["id"] for c in json.loads(out)["chapters"]] == ["chapter-01", "chapter-03"]
    rc, out, err = run(capsys, "plan", BOOK, "--chapters", "9")
    assert rc == 2 and out == ""
    assert err == "error: chapters: chapter 9 does not exist (the manuscript has 3 chapters)\n"


def test_chapters_all_as_in_yaml(capsys, tmp_path):
    """--chapters all plans every chapter, even where the project's own `chapters:` selects fewer."""
    rc, out, _ = run(capsys, "plan", BOOK, "--json", "--chapters", "all")
    assert rc == 0 and len(json.loads(out)["chapters"]) == 3
    shutil.copytree(BOOK.parent, tmp_path / "book", ignore=shutil.ignore_patterns(".dia-studio", "out"))
    selective = tmp_path / "book" / "project.yaml"
    selective.write_text(BOOK.read_text() + "\nchapters: [2]\n")
    rc, out, _ = run(capsys, "plan", selective, "--json")
    assert rc == 0 and [c["id"] for c in json.loads(out)["chapters"]] == ["chapter-02"]
    rc, out, _ = run(capsys, "plan", selective, "--json", "--chapters", "ALL")
    assert rc == 0 and len(json.loads(out)["chapters"]) == 3
    args = cli.build_parser().parse_args(["render", str(selective), "--chapters", "all"])
    assert cli.options_from_args(args).chapters == "all"
    assert cli.options_from_args(args).to_dict()["chapters"] == "all"


def test_bad_chapter_syntax_is_usage_error(capsys):
    with pytest.raises(SystemExit) as ei:
        cli.main(["plan", str(BOOK), "--chapters", "one"])
    assert ei.value.code == 2
    assert "--chapters" in capsys.readouterr().err


def _project(tmp_path, manifest: str, book: str = "# One\n\nText.\n") -> Path:
    (tmp_path / "book.md").write_text(book)
    p = tmp_path / "project.yaml"
    p.write_text(manifest)
    return p


GOOD = "title: T\nauthor: A\nmanuscript: book.md\nvoices:\n  n: {seed: 1}\n"


@pytest.mark.parametrize("command", ["plan", "validate"])
@pytest.mark.parametrize("manifest,book,expected", [
    (GOOD + "colour: red\n", None, ":6: colour: unknown key"),
    (GOOD.replace("n: {seed: 1}", "n: {seed: 1, reference: v.wav, transcript: hi}"), None,
     ":5: voices.n.reference: file not found: v.wav"),
    (GOOD + "characters: {BOB: bob}\n", None, ":6: characters.BOB: voice 'bob' is not defined"),
    ("title: [\n", None, "malformed YAML"),
    (GOOD, "# One\n\n# Two\n\nText.\n", "book.md:1: empty chapter 'One'"),
    (GOOD, "BOB: hello\n", "book.md:1: unknown speaker 'BOB'"),
])
def test_invalid_input_exit_2_one_line(tmp_path, capsys, command, manifest, book, expected):
    p = _project(tmp_path, manifest, book or "# One\n\nText.\n")
    rc, out, err = run(capsys, command, p)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1
    assert expected in err


def test_binary_manuscript(tmp_path, capsys):
    p = _project(tmp_path, GOOD)
    (tmp_path / "book.md").write_bytes(b"\x00\x01\x02binary")
    rc, _, err = run(capsys, "validate", p)
    assert rc == 2 and "binary file" in err


def test_warnings_go_to_stderr(tmp_path, capsys):
    p = _project(tmp_path, GOOD, "# One\n\nShe smiled (giggles) and left.\n")
    rc, out, err = run(capsys, "plan", p, "--json")
    assert rc == 0
    plan = json.loads(out)
    assert len(plan["warnings"]) == 1
    assert err.startswith("warning: ") and "book.md:3: nonverbal cue (giggles)" in err


def test_parser_structure():
    parser = cli.build_parser()
    assert isinstance(parser, argparse.ArgumentParser)
    assert set(cli.COMMANDS) >= {"plan", "validate"}
    args = parser.parse_args(["plan", "x.yaml", "--json", "--chapters", "1,3-4"])
    assert (args.command, args.project, args.json, args.chapters) == ("plan", "x.yaml", True, (1, 3, 4))
    assert cli.parse_chapters("2-3") == (2, 3)


def test_module_entry_point_no_traceback(tmp_path):
    p = _project(tmp_path, GOOD + "colour: red\n")
    r = subprocess.run([sys.executable, "-m", "flows.cli", "plan", str(p)], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    r = subprocess.run([sys.executable, "-m", "flows.cli", "validate", str(POD)], capture_output=True,
                       text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr


def test_summary_line_counts_regenerated_takes_and_why(tmp_path):
    """After `done:`, one line says what the take checks did (from the manifests the delivery lists)."""
    import json

    from flows.cli import _takes_summary

    def attempt(failures, listener="pocketsphinx:en-us@5"):
        return {"qc": {"passed": not failures, "failures": failures, "listen": {"listener": listener}}}

    segments = [{"attempts": [attempt([])]},
                {"attempts": [attempt(["words: heard 20% of the text's words"]), attempt([])]},
                {"attempts": [attempt(["voice: turn at 0.0 s sounds like mara", "truncated: last 7 words"]),
                              attempt(["voice: turn at 0.0 s sounds like mara"])]}]
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "chapter-01.json").write_text(json.dumps({"segments": segments}))
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"chapters": [{"manifest": "manifests/chapter-01.json"}], "qc_failed": 1}))
    line = _takes_summary(tmp_path)
    assert line.startswith("takes: 3 segments, listened by pocketsphinx:en-us@5; 2 regenerated (")
    assert "words 1" in line and "voice 1" in line and "truncated 1" in line
    assert "1 failed every attempt" in line
    assert _takes_summary(tmp_path / "nowhere") == ""


_CHATTER_PROBE = """
import argparse, importlib.util, logging, pathlib, sys
from prefect.logging.configuration import setup_logging
setup_logging()
from flows import cli
log = cli._log_to_file(argparse.Namespace(debug=False, command="probe"), pathlib.Path(sys.argv[1]))
services = importlib.util.find_spec("prefect._internal.concurrency.services").origin
for name, path, text in (("EventsWorker", services, "Still processing items: 1 items remaining..."),
                         ("prefect.flow_runs", cli.__file__, "a warning the producer should see")):
    logging.getLogger(name).handle(logging.LogRecord(name, logging.WARNING, path, 1, text, None, None))
print(log)
"""


def test_prefect_queue_chatter_goes_to_the_log_not_after_the_last_line(tmp_path):
    """CI once saw EventsWorker's "Still processing items" printed after a render's one error line."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    r = subprocess.run([sys.executable, "-c", _CHATTER_PROBE, str(tmp_path / "logs")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Still processing items" not in r.stderr and "a warning the producer should see" in r.stderr
    logged = Path(r.stdout.strip()).read_text()
    assert "Still processing items" in logged and "a warning the producer should see" in logged
