"""The README is the front door: its commands and its YAML example must keep working."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    assert "make test   #" in README
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), re.M)


def test_readme_yaml_example_validates_and_plans(tmp_path):
    from dia_core.script.planner import plan_project
    from dia_core.script.project import load_project

    [yaml_text] = re.findall(r"```yaml\n(.*?)```", README, re.S)
    (tmp_path / "project.yaml").write_text(yaml_text)
    (tmp_path / "manuscript.md").write_text(
        "# Chapter One\n\nThe lighthouse at Caerwyn stood on the cliff.\n\nMARA: Who is there?\n")
    (tmp_path / "voices").mkdir()
    t = np.arange(6 * 44100) / 44100
    sf.write(tmp_path / "voices" / "narrator.flac", (0.1 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 44100)
    project = load_project(tmp_path / "project.yaml")
    plan = plan_project(project)
    texts = " ".join(s.text for c in plan.chapters for s in c.segments)
    assert "Kair-win" in texts and "Who is there?" in texts
    assert {s.slots["S1"] for c in plan.chapters for s in c.segments} <= {"narrator", "mara"}


def test_readme_cli_commands_exist():
    from flows.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for command in re.findall(r"^dia-studio (\w+)", README, re.M):
        assert command in sub.choices, command
    assert shutil.which("make")
