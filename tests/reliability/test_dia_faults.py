"""Faults on the Dia engine path (tiny random checkpoint + tiny DAC, CPU): a kill during generation
and simulated GPU out-of-memory both end in outputs identical to a clean render."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dia_core.dia.config import DiaConfig
from tests.tiny_models import write_tiny_dac, write_tiny_dia_checkpoint

from .conftest import run_cli
from .outputs import normalized_json

NAME = "tiny-dia"


@pytest.fixture(scope="module")
def dia(tmp_path_factory, render_env):
    root = tmp_path_factory.mktemp("dia-faults")
    ckpt = write_tiny_dia_checkpoint(root / "ckpt", layout="transformers-sharded",
                                     config=DiaConfig.tiny(dec_max_positions=3072))
    dac_path = write_tiny_dac(root / "dac" / "weights.pth")
    project = root / "template" / NAME
    project.mkdir(parents=True)
    # Three segments: each paragraph alone nearly fills the 500-position budget.
    (project / "book.md").write_text("# One\n\nThe first paragraph has a few more words.\n\n"
                                     "The second paragraph is about as long too.\n\n"
                                     "And the third paragraph closes the chapter.\n")
    (project / "project.yaml").write_text(
        "title: Tiny Dia\nauthor: Tests\nmanuscript: book.md\nseed: 1\nsampling:\n  max_new_tokens: 500\n"
        "voices:\n  reader:\n    seed: 9\n    calibration_text: Hello there.\nnarrator_voice: reader\n"
        "qc:\n  max_attempts: 1\n  asr: off\n  voice_check: false\ndelivery:\n  profile: podcast\n  formats: [mp3]\n  captions: [vtt]\n")
    env = dict(render_env, OMP_NUM_THREADS="1")  # tiny models run slower with intra-op threads

    def render(tmp: Path, *extra, fault: str | None = None):
        if not (tmp / NAME).exists():
            shutil.copytree(project, tmp / NAME)
        e = dict(env, DIA_STUDIO_FAULT=fault) if fault else env
        return run_cli(["render", tmp / NAME / "project.yaml", "--out", tmp / "out", "--model", ckpt,
                        "--codec", dac_path, "--device", "cpu", "--batch-size", "2", "--no-progress", *extra],
                       e, timeout=300)

    clean = render(root / "clean")
    assert clean.rc == 0, clean
    return render, root / "clean" / "out" / NAME


def _expire_gpu_lease() -> None:
    """The killed render still holds the device's slot in the Prefect limit. A real server's lease
    service frees it 60 s later; the test server runs no such service, so do what it would do."""
    import socket

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    name = f"dia-gpu-{socket.gethostname()}-cpu"
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).active_slots == 1  # held by the dead run
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))


def _same_delivery(out: Path, reference: Path) -> None:
    for name in ("chapter-01.mp3", "chapter-01.vtt"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert normalized_json(out / "manifest.json")["chapters"][0]["files"] == \
        normalized_json(reference / "manifest.json")["chapters"][0]["files"]


def test_dia_render_killed_during_generation_resumes_identically(dia, tmp_path):
    render, reference = dia
    killed = render(tmp_path, fault="kill@batch:1")
    assert killed.rc == -9, killed
    assert not (tmp_path / "out" / NAME / "manifest.json").exists()
    _expire_gpu_lease()
    resumed = render(tmp_path)
    assert resumed.rc == 0, resumed
    _same_delivery(tmp_path / "out" / NAME, reference)


def test_dia_out_of_memory_halves_the_batch_and_completes(dia, tmp_path):
    render, reference = dia
    # Hit 1 is the calibration line; hit 2 is the first segment batch (2 of 3 takes): out of memory.
    r = render(tmp_path, fault="oom@generate:2")
    assert r.rc == 0, r
    assert "batch halved to 1" in r.stderr
    _same_delivery(tmp_path / "out" / NAME, reference)
