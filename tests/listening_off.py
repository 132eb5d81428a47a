"""Renders in tests that are not about listening switch it off explicitly (`qc: asr: off,
voice_check: false`): listening costs ~4 CPU seconds per minute of draft audio, plus loading torch
and the models in every render process (bench/results/listen-2026-12-03.md), and the Dia tests'
tiny random models speak no words to hear. The listening tests (tests/dia_core/listen/) render both
examples with it on."""
from pathlib import Path

OFF = {"asr": "off", "voice_check": "false"}


def without_listening(project_yaml: Path) -> Path:
    """Append the switches to a copied project.yaml (its last block may be `qc:`; line numbers of
    everything above are kept)."""
    text = project_yaml.read_text()
    lines = text.rstrip("\n").split("\n")
    last_top = max(i for i, ln in enumerate(lines) if ln and not ln[0].isspace() and not ln.startswith("#"))
    if lines[last_top].rstrip() == "qc:":
        add = "".join(f"  {k}: {v}\n" for k, v in OFF.items())
    else:
        assert "\nqc:" not in "\n" + text, f"{project_yaml}: qc: is not its last block"
        add = "qc:\n" + "".join(f"  {k}: {v}\n" for k, v in OFF.items())
    project_yaml.write_text(text.rstrip("\n") + "\n" + add)
    return project_yaml
