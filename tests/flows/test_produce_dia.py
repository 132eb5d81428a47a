"""The Dia engine path end to end through the `produce` flow: a tiny random-weight checkpoint in the
reference layout and a tiny DAC (real 512 hop, 9 codebooks), on CPU. The audio is noise (random
weights); what is tested is that the real loading, prompting, generation, decode and delivery path
runs and records what it did."""
from __future__ import annotations

import builtins
import hashlib
import json
from pathlib import Path

import pytest

from dia_core.dia.config import DiaConfig
from dia_core.production.options import RenderOptions
from tests.tiny_models import single_thread, write_tiny_dac, write_tiny_dia_checkpoint


@pytest.fixture(scope="module")
def tiny_render(tmp_path_factory):
    """The tiny book rendered once with the tiny Dia checkpoint (reference layout) on CPU."""
    from flows.produce import produce

    tmp_path = tmp_path_factory.mktemp("tiny-dia")
    ckpt = write_tiny_dia_checkpoint(tmp_path / "ckpt", layout="reference",
                                     config=DiaConfig.tiny(dec_max_positions=3072))
    dac_path = write_tiny_dac(tmp_path / "dac" / "weights.pth")
    root = tmp_path / "tiny-book"
    root.mkdir()
    (root / "book.md").write_text("# One\n\nA short first line.\n\nAnd a second.\n")
    (root / "project.yaml").write_text(
        "title: Tiny Book\nauthor: Tests\nmanuscript: book.md\nseed: 1\n"
        "sampling:\n  max_new_tokens: 500\n"
        "voices:\n  reader:\n    seed: 9\n    calibration_text: Hello there.\n"
        "narrator_voice: reader\nqc:\n  max_attempts: 1\n  asr: off\n  voice_check: false\n"
        "delivery:\n  profile: podcast\n  formats: [wav]\n  captions: [vtt]\n")
    out, store = tmp_path / "out", tmp_path / "store"
    with single_thread():
        options = RenderOptions(out_dir=str(out), store=str(store), model=str(ckpt), codec=str(dac_path),
                                device="cpu")
        state = produce(project=str(root / "project.yaml"), options=options, return_state=True)
    return {"state": state, "ckpt": ckpt, "root": root, "out": out, "store": store, "options": options}


def test_produce_with_tiny_dia_checkpoint(tiny_render):
    state, ckpt, root, out, store = (tiny_render[k] for k in ("state", "ckpt", "root", "out", "store"))
    assert state.is_completed(), state

    manifest = json.loads((out / "tiny-book" / "manifest.json").read_text())
    assert manifest["model"]["engine"] == "dia" and manifest["model"]["id"] == str(ckpt)
    assert len(manifest["model"]["checksum"]) == 64
    chapter = json.loads((out / "tiny-book" / manifest["chapters"][0]["manifest"]).read_text())
    assert len(chapter["segments"]) >= 1
    records = [json.loads(p.read_text()) for p in store.rglob("take.json")]
    assert {r["kind"] for r in records} == {"segment", "calibration"}
    # The calibrated prompt stays inside the frames the planner reserved for it.
    from dia_core.script.project import load_project, prompt_frames_for
    import soundfile as sf
    project = load_project(root / "project.yaml")
    [voice_wav] = (root / ".dia-studio" / "voices").glob("reader-*.wav")
    assert sf.info(voice_wav).frames <= prompt_frames_for(project.voices["reader"]) * 512
    assert (out / "tiny-book" / "chapter-01.wav").stat().st_size > 44100

    # Generation took the device's slot through a Prefect global concurrency limit of 1.
    import socket

    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(f"dia-gpu-{socket.gethostname()}-cpu")
    assert limit.limit == 1 and limit.active and limit.active_slots == 0


def test_rerender_of_unchanged_project_loads_no_weights(tiny_render, monkeypatch):
    """A re-render whose takes are all in the store (a new process: no engine cached) knows the model's
    checksum from the store's memo of the checkpoint's file hashes: it builds no model, loads no
    codec and opens no file of the checkpoint."""
    from dia_core.dia import checkpoint
    from dia_core.dia.codec import DiaCodec
    from dia_core.dia.model import DiaModel
    from dia_core.production import jobs
    from flows import produce as produce_module

    ckpt = Path(tiny_render["ckpt"]).resolve()
    weights = {p.resolve() for p in ckpt.iterdir()}
    opened, built = [], []
    real_open = builtins.open

    def watching_open(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).resolve() in weights:
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(jobs, "_ENGINES", {})   # as in a new process
    monkeypatch.setattr(produce_module, "_JOBS", {})
    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(checkpoint, "read_tensors", lambda files: built.append("read_tensors"))
    monkeypatch.setattr(DiaModel, "from_pretrained", classmethod(lambda cls, *a, **k: built.append("model")))
    monkeypatch.setattr(DiaCodec, "load", classmethod(lambda cls, *a, **k: built.append("codec")))
    before = {p: p.stat().st_mtime_ns for p in Path(tiny_render["store"]).rglob("take.json")}

    with single_thread():
        state = produce_module.produce(project=str(tiny_render["root"] / "project.yaml"),
                                       options=tiny_render["options"], return_state=True)
    assert state.is_completed(), state
    assert built == [] and opened == []
    assert {p: p.stat().st_mtime_ns for p in Path(tiny_render["store"]).rglob("take.json")} == before
    manifest = json.loads((tiny_render["out"] / "tiny-book" / "manifest.json").read_text())
    # the checksum a loaded model reports: the single weight file's sha256
    assert manifest["model"]["checksum"] == hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
