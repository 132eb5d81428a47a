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
    assert len(after) == len(unique)
    assert len({r["run"] for r in after if r["run"] != before[0]["run"]}) == 1
    # The six takes from the killed run were reused, not regenerated.
    assert sorted(r["key"] for r in before) == sorted(r["key"] for r in after if r["run"] == before[0]["run"])
    assert _delivered(out / "short-audiobook") == _delivered(rendered["out"])


def test_editing_one_paragraph_regenerates_only_its_segments(rendered, tmp_path, subprocess_env):
    import shutil

    project_dir = tmp_path / "short-audiobook"
    shutil.copytree(rendered["project"].parent, project_dir, ignore=shutil.ignore_patterns(".dia-studio"))
    project = project_dir / "project.yaml"
    store = tmp_path / "store"
    shutil.copytree(rendered["store"], store)
    manuscript = next(project_dir.glob("*.md"))
    text = manuscript.read_text()
    old = "She read it twice by the window."
    assert old in text
    manuscript.write_text(text.replace(old, "She read it three times by the window."))

    def plan_ids():
        plan = json.loads(subprocess.run([sys.executable, "-m", "flows.cli", "plan", str(project), "--json"],
                                         cwd=REPO, capture_output=True, text=True, check=True).stdout)
        return {s["id"] for c in plan["chapters"] for s in c["segments"]}

    original = {r["segment_id"] for r in _store_records(rendered["store"]) if r["kind"] == "segment"}
    changed = plan_ids() - original
    assert 1 <= len(changed) <= 2  # only the edited paragraph's segments are new
    keys_before = {r["key"] for r in _store_records(store)}
    result = _render(project, tmp_path / "out", store, subprocess_env)
    assert result.returncode == 0, result.stderr[-2000:]
    new = [r for r in _store_records(store) if r["key"] not in keys_before]
    assert {r["segment_id"] for r in new} == changed
