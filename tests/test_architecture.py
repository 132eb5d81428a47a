"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and they catch a wrong import."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=300)


def test_contracts_kept():
    r = _lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "broken" in r.stdout and "0 broken" in r.stdout


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root)
    for pkg in ("dia_core", "flows"):
        shutil.copytree(REPO / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + "\n" + line + "\n")


@pytest.mark.parametrize("module,line,broken", [
    # the model imports no pipeline package
    ("dia/codec.py", "from dia_core.production import store", "dia_core.dia.codec -> dia_core.production.store"),
    # the library never imports Prefect
    ("audio/stitch.py", "import prefect", "dia_core.audio.stitch -> prefect"),
    # script, audio and the model are independent: finishing must not pull in the YAML loader
    ("audio/qc.py", "from dia_core.script import project", "dia_core.audio.qc -> dia_core.script.project"),
])
def test_a_wrong_import_is_refused(tmp_path, module, line, broken):
    root = _copy(tmp_path)
    _append(root / "dia_core" / module, f"{line}  # noqa")
    r = _lint(root)
    assert r.returncode != 0
    assert broken in r.stdout, r.stdout
