"""`qc:` listening keys: validated with file:line errors; `asr: off` (YAML's false) allowed."""
import shutil
from pathlib import Path

import pytest

from dia_core.errors import InputError
from dia_core.script.project import load_project

REPO = Path(__file__).resolve().parents[3]


def project_with(tmp_path, qc: str) -> Path:
    shutil.copytree(REPO / "projects" / "podcast-episode", tmp_path / "p", ignore=shutil.ignore_patterns(".dia-studio", "out"))
    yaml = tmp_path / "p" / "project.yaml"
    yaml.write_text(yaml.read_text() + "qc:\n" + qc)
    return yaml


def test_defaults_and_off(tmp_path):
    qc = load_project(project_with(tmp_path, "  asr: off\n  voice_check: false\n  mos: true\n")).qc
    assert (qc.asr, qc.voice_check, qc.mos, qc.min_word_hits, qc.min_voice_similarity) == ("off", False, True, 0.3, 0.75)


@pytest.mark.parametrize("qc, field, says", [
    ("  asr: vosk\n", "qc.asr", "must be one of auto, pocketsphinx, whisper, off"),
    ("  min_voice_similarity: 2\n", "qc.min_voice_similarity", "between"),
    ("  max_missing_at_end: -1\n", "qc.max_missing_at_end", "between"),
    ("  voice_check: maybe\n", "qc.voice_check", "true or false"),
])
def test_bad_values_name_file_line_and_field(tmp_path, qc, field, says):
    yaml = project_with(tmp_path, "  max_attempts: 2\n" + qc)
    line = len(yaml.read_text().splitlines())
    with pytest.raises(InputError) as e:
        load_project(yaml)
    assert str(e.value).startswith(f"{yaml}:{line}: {field}: ") and says in str(e.value)
