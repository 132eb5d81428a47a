"""The Dia engine path end to end through the `produce` flow: a tiny random-weight checkpoint in the
reference layout and a tiny DAC (real 512 hop, 9 codebooks), on CPU. The audio is noise (random
weights); what is tested is that the real loading, prompting, generation, decode and delivery path
runs and records what it did."""
from __future__ import annotations

import json

from dia_core.dia.config import DiaConfig
from dia_core.production.options import RenderOptions
from tests.tiny_models import single_thread, write_tiny_dac, write_tiny_dia_checkpoint


def test_produce_with_tiny_dia_checkpoint(tmp_path):
    from flows.produce import produce

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
