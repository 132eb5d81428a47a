"""End to end through the real `produce` flow with the draft engine: outputs, manifests, artifacts,
resume after kill -9, and re-rendering only what an edit touched."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dia_core.files import file_sha256
from dia_core.production import folder
from dia_core.production import manifests as manifest_mod
from dia_core.production.options import RenderOptions
from tests.listening_off import without_listening

REPO = Path(__file__).resolve().parents[2]


def _delivered(out: Path) -> dict[str, str]:
    """sha256 of every delivered media/caption file (manifests carry timestamps; compared apart)."""
    return {p.name: file_sha256(p) for p in sorted(out.iterdir())
            if p.suffix in (".mp3", ".flac", ".wav", ".m4b", ".vtt", ".srt")}


def _store_records(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in store.rglob("take.json")]


def _render(project: Path, out: Path, store: Path, env: dict, *extra: str, fault: str | None = None):
    env = dict(env)
    if fault:
        env["DIA_STUDIO_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "flows.cli", "render", str(project), "--draft",
                           "--out", str(out), "--store", str(store), "--no-progress", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, prefect_api):
    """The podcast example rendered once in-process through the flow."""
    import shutil

    from flows.produce import produce

    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(REPO / "projects" / "short-audiobook", root / "short-audiobook",
                    ignore=shutil.ignore_patterns(".dia-studio", "out"))
    project = without_listening(root / "short-audiobook" / "project.yaml")
    options = RenderOptions(draft=True, out_dir=str(root / "out"), store=str(root / "store"))
    state = produce(project=str(project), options=options, return_state=True)
    return {"state": state, "project": project, "out": root / "out" / "short-audiobook",
            "store": root / "store"}


def test_produce_delivers_chapters_book_captions_and_manifests(rendered):
    assert rendered["state"].is_completed(), rendered["state"]
    out = rendered["out"]
    data = json.loads((out / "manifest.json").read_text())
    manifest_mod.validate_project_manifest(data)
    assert data["complete"] is True and data["model"]["engine"] == "draft-espeak-ng"
    assert [c["id"] for c in data["chapters"]] == ["chapter-01", "chapter-02", "chapter-03"]
    for c in data["chapters"]:
        chapter = json.loads((out / c["manifest"]).read_text())
        manifest_mod.validate_chapter_manifest(chapter)
        assert chapter["segments"] and all(s["qc"]["passed"] for s in chapter["segments"])
        for f in c["files"]:
            assert file_sha256(out / f["path"]) == f["sha256"]
        assert c["passed"], c["failures"]  # the acx profile holds on the encoded MP3
    assert (out / "short-audiobook.m4b").exists()
    assert file_sha256(out / "short-audiobook.m4b") == data["book_files"][0]["sha256"]
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json",
                            str(out / "short-audiobook.m4b")], capture_output=True, text=True, check=True)
    chapters = json.loads(probe.stdout)["chapters"]
    assert [c["tags"]["title"] for c in chapters] == [c["title"] for c in data["chapters"]]
    for marker, c in zip(chapters, data["chapters"]):
        assert abs(float(marker["start_time"]) * 1000 - c["start_ms"]) <= 20


def test_audiobook_example_delivers_an_acx_package_that_passes_every_row(rendered):
    """The example (profile acx): credits in the narrator's voice, one MP3 per chapter, a retail
    sample, and an ACX report in which every row and the cover pass."""
    from mutagen.id3 import ID3

    out = rendered["out"]
    report = json.loads((out / "acx" / "acx-report.json").read_text())
    names = [r["file"] for r in report["files"]]
    assert names == ["00-opening-credits.mp3", "01-chapter-01.mp3", "02-chapter-02.mp3", "03-chapter-03.mp3",
                     "04-closing-credits.mp3", "retail-sample.mp3"]
    assert report["passed"], [(r["file"], r["reasons"]) for r in report["files"] if not r["passed"]]
    assert report["cover"]["passed"] and report["cover"]["width"] == 2400
    for r in report["files"]:
        assert (r["bitrate_kbps"], r["bitrate_mode"], r["sample_rate"], r["channels"]) == (192, "CBR", 44100, 1)
        assert -23 <= r["rms_db"] <= -18 and r["peak_dbfs"] <= -3 and r["noise_floor_db"] <= -60
    sample = report["files"][-1]
    assert 60 <= sample["duration_s"] <= 300 and sample["measured"] == "package"
    credits = json.loads((out / "credits" / "manifests" / "opening-credits.json").read_text())
    assert [s["display_text"] for s in credits["segments"]] == [
        "[S1] This is The Keeper of Caerwyn, written by Ione Marsh, narrated by Dia Studio Ensemble."]
    assert "Kair-win" in credits["segments"][0]["text"]   # the lexicon applies to the credits too
    assert {v for s in credits["segments"] for v in s["voices"].values() if v} == {"narrator"}
    closing = json.loads((out / "credits" / "manifests" / "closing-credits.json").read_text())
    assert closing["segments"][0]["display_text"] == "[S1] The end of The Keeper of Caerwyn."
    id3 = ID3(out / "acx" / "02-chapter-02.mp3")
    assert str(id3["TIT2"]) == "Chapter Two: The Keeper's Log" and str(id3["TRCK"]) == "3/5"
    assert str(id3["TPE1"]) == "Ione Marsh" and id3.getall("APIC")
    assert (out / "acx" / "acx-report.md").read_text().count("| pass |") == 6
    chapter = ID3(out / "chapter-01.mp3")   # the delivered chapters are tagged too
    assert str(chapter["TALB"]) == "The Keeper of Caerwyn" and str(chapter["TRCK"]) == "1/3"
    # manifest.json is written after the package and lists it: the folder holds exactly what it lists
    data = json.loads((out / "manifest.json").read_text())
    published = {f["path"]: f["sha256"] for f in data["published_files"]}
    assert "acx/acx-report.json" in published and "credits/opening-credits.mp3" in published
    assert all(file_sha256(out / p) == h for p, h in published.items())
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*")
               if p.is_file() and ".superseded" not in p.parts and p.name != ".dia-studio-owner.json"}
    assert on_disk == folder.listed_files(data) | {"manifest.json"}


def test_artifacts_and_task_names_are_visible_in_prefect(rendered):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    flow_run_id = rendered["state"].state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(like_="short-audiobook-")),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        # keys: <folder>-<8 hex of the project's path>-<what>, so same-named projects keep apart
        tag = hashlib.sha256(str(rendered["project"].resolve()).encode()).hexdigest()[:8]
        by_key = {a.key.removeprefix(f"short-audiobook-{tag}-"): a for a in artifacts}
        assert by_key["progress"].type == "progress"
        assert float(by_key["progress"].data) == 100.0
        for cid in ("chapter-01", "chapter-02", "chapter-03"):
            table = by_key[cid]
            assert table.type == "table" and "segment" in table.data
        summary = by_key["summary"]
        assert summary.type == "markdown" and "acx" in summary.data and "chapter-01" in summary.data
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        names = {t.name for t in task_runs}
        assert 'chapter-01 "Chapter One: The Letter"' in names


def test_resume_after_kill_generates_only_what_is_missing(rendered, tmp_path, subprocess_env):
    import shutil

    project_dir = tmp_path / "short-audiobook"
    shutil.copytree(rendered["project"].parent, project_dir, ignore=shutil.ignore_patterns(".dia-studio"))
    project = project_dir / "project.yaml"
    out, store = tmp_path / "out", tmp_path / "store"
    killed = _render(project, out, store, subprocess_env, "--batch-size", "3", fault="kill@batch:2")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / "short-audiobook" / "manifest.json").exists()
    before = [r for r in _store_records(store) if r["kind"] == "segment"]
    assert len(before) == 6  # two batches of 3 finished before the kill

    resumed = _render(project, out, store, subprocess_env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = [r for r in _store_records(store) if r["kind"] == "segment"]
    plan = json.loads(subprocess.run([sys.executable, "-m", "flows.cli", "plan", str(project), "--json"],
                                     cwd=REPO, capture_output=True, text=True, check=True).stdout)
    unique = {s["id"] for c in plan["chapters"] for s in c["segments"]}
    # + the opening and closing credits the acx profile renders after the book (not in the plan)
    from dia_core.production.publishing import plan_credits
    from dia_core.script.project import load_project
    unique |= {s.id for s in plan_credits(load_project(project)).segments}
    assert len(after) == len(unique)
    assert len({r["run"] for r in after if r["run"] != before[0]["run"]}) == 1
    # The six takes from the killed run were reused, not regenerated.
    assert sorted(r["key"] for r in before) == sorted(r["key"] for r in after if r["run"] == before[0]["run"])
    assert _delivered(out / "short-audiobook") == _delivered(rendered["out"])


# ---- re-renders finish only what changed (these run last: they re-render the module's project) ----

@pytest.fixture
def finishing_spy(monkeypatch):
    """Counts chapter stitches (one per chapter finished) and M4B builds in this process."""
    from dia_core.audio import m4b, stitch

    calls = {"stitch": 0, "m4b": 0}

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(stitch, "stitch_chapter", counted("stitch", stitch.stitch_chapter))
    monkeypatch.setattr(m4b, "export_m4b_checked", counted("m4b", m4b.export_m4b_checked))
    return calls


def _rerender(rendered) -> tuple[object, float]:
    import time

    from flows.produce import produce

    options = RenderOptions(draft=True, out_dir=str(rendered["out"].parent), store=str(rendered["store"]))
    t0 = time.perf_counter()
    state = produce(project=str(rendered["project"]), options=options, return_state=True)
    return state, time.perf_counter() - t0


def _stamps(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and ".superseded" not in p.parts and p.name != "manifest.json"}


def test_noop_rerender_finishes_nothing(rendered, finishing_spy):
    out = rendered["out"]
    delivered, stamps = _delivered(out), _stamps(out)
    state, seconds = _rerender(rendered)
    assert state.is_completed(), state
    assert finishing_spy == {"stitch": 0, "m4b": 0}
    assert _stamps(out) == stamps and _delivered(out) == delivered   # not one file rewritten
    data = json.loads((out / "manifest.json").read_text())
    assert data["complete"] is True and [c["id"] for c in data["chapters"]] == ["chapter-01", "chapter-02",
                                                                                "chapter-03"]
    assert file_sha256(out / "short-audiobook.m4b") == data["book_files"][0]["sha256"]
    print(f"no-op re-render in process: {seconds:.1f} s")


def test_editing_one_paragraph_regenerates_its_segments_and_refinishes_its_chapter_and_the_book(
        rendered, finishing_spy):
    out = rendered["out"]
    manuscript = rendered["project"].parent / "manuscript.md"
    text = manuscript.read_text()
    old = "She read it twice by the window."   # chapter one
    assert old in text
    manuscript.write_text(text.replace(old, "She read it twice by the open window."))
    from dia_core.script.planner import plan_project
    from dia_core.script.project import load_project

    plan = plan_project(load_project(rendered["project"]))
    original = {r["segment_id"] for r in _store_records(rendered["store"]) if r["kind"] == "segment"}
    edited = {s.id for c in plan.chapters for s in c.segments} - original
    assert 1 <= len(edited) <= 2  # only the edited paragraph's segments are new
    keys_before = {r["key"] for r in _store_records(rendered["store"])}
    stamps = _stamps(out)
    state, _ = _rerender(rendered)
    assert state.is_completed(), state
    new = [r for r in _store_records(rendered["store"]) if r["key"] not in keys_before]
    assert {r["segment_id"] for r in new} == edited   # only its segments were generated
    assert finishing_spy == {"stitch": 1, "m4b": 1}
    changed = {name for name, t in _stamps(out).items() if stamps.get(name) != t}
    # and the ACX package's copy of chapter 1, the retail sample cut from it, and the report's rows
    assert changed == {"chapter-01.mp3", "chapter-01.vtt", "manifests/chapter-01.json", "short-audiobook.m4b",
                       "acx/01-chapter-01.mp3", "acx/retail-sample.mp3", "acx/acx-report.json",
                       "acx/acx-report.md"}
