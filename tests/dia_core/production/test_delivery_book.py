"""delivery.export_book checks the M4B it writes; the verdict lands in the project manifest and the summary."""
import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dia_core.audio import dynamics, profiles
from dia_core.production import delivery, jobs
from dia_core.production.options import RenderOptions
from dia_core import audiofile as io
from dia_core.production import manifests as manifest

from tests.dia_core.audio.conftest import SR, speechlike

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def job(tmp_path):
    """The example audiobook with a cover, planned but not rendered (short synthetic masters instead)."""
    root = tmp_path / "book"
    shutil.copytree(ROOT / "projects" / "short-audiobook", root, ignore=shutil.ignore_patterns(".dia-studio", "out"))
    assert "cover: cover.png" in (root / "project.yaml").read_text()   # the example's 2400 px cover
    return jobs.open_job(root / "project.yaml", RenderOptions(
        draft=True, out_dir=str(tmp_path / "out"), store=str(tmp_path / "store")))


def _chapters(job, tmp_path) -> list[dict]:
    settings = job.project.delivery
    out = []
    for i, ch in enumerate(job.plan.chapters):
        x = speechlike(2.0 + i * 0.5, seed=i, lead=0.7, trail=1.5)
        x = x + np.random.default_rng(i).standard_normal(len(x)).astype(np.float32) * np.float32(io.undb(-72))
        y, _ = dynamics.finish(x, settings)
        y = (y * np.float32(io.undb(-1.0))).astype(np.float32)
        master = io.write_wav_float(y, tmp_path / "masters" / f"{ch.id}.wav")
        check = profiles.check_audio(y, settings)
        out.append({"id": ch.id, "title": ch.title, "manifest": f"manifests/{ch.id}.json", "files": [],
                    "duration_s": round(len(y) / SR, 3), "measurements": check.measurements.to_dict(),
                    "limits": check.limits, "passed": check.passed, "failures": check.failures,
                    "qc_failed": 0, "qc_failed_segments": [], "segments": 3, "master": str(master)})
    return out


def test_book_check_lands_in_the_manifest_and_the_summary(job, tmp_path):
    from flows.produce import _summary

    chapters = _chapters(job, tmp_path)
    assert all(c["passed"] for c in chapters)
    book = delivery.export_book(job, chapters)
    check = book["check"]
    assert check["passed"], check["failures"]
    assert json.loads(json.dumps(check)) == check                    # plain JSON (a Prefect task result)
    assert check["container"]["cover"] is True and check["container"]["chapter_markers"] == len(chapters)
    assert check["container"]["tags"] == {"title": job.project.title, "artist": job.project.author}
    assert [c["title"] for c in check["chapters"]] == [c["title"] for c in chapters]
    assert [(c["start_ms"], c["end_ms"]) for c in check["chapters"]] == \
        [(m["start_ms"], m["end_ms"]) for m in book["chapters"]]

    path = delivery.write_project_manifest(job, chapters, book, manifest.utc_now())
    data = json.loads(path.read_text())
    manifest.validate_project_manifest(data)
    assert data["book"]["path"] == "book.m4b" and data["book_files"][0]["path"] == "book.m4b"
    assert data["book"]["check"] == check and data["passed"] is True
    line = [x for x in _summary(job, chapters, book).splitlines() if x.startswith("Book:")]
    assert len(line) == 1 and "M4B check: pass" in line[0]

    # a failing book check fails the project even when every chapter file passed
    bad = copy.deepcopy(book)
    bad["check"]["passed"] = False
    bad["check"]["failures"] = ["chapter 1 (Chapter One: The Letter): sample_peak_dbfs -2.50 above -3"]
    data = json.loads(delivery.write_project_manifest(job, chapters, bad, manifest.utc_now()).read_text())
    assert data["passed"] is False and data["book"]["check"]["passed"] is False
    assert "M4B check: FAIL: chapter 1 (Chapter One: The Letter): sample_peak_dbfs -2.50 above -3" \
        in _summary(job, chapters, bad)

    # no M4B in the formats: no book, no book check
    data = json.loads(delivery.write_project_manifest(job, chapters, None, manifest.utc_now()).read_text())
    manifest.validate_project_manifest(data)
    assert data["book"] is None and data["book_files"] == [] and data["passed"] is True
