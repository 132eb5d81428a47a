"""The delivery folder never holds a wrong book: a partial render rebuilds the whole book from current
chapters (or says it is incomplete), a folder belongs to one project, files a render no longer
delivers are moved aside, segments that failed QC on every attempt are counted (and fail strict),
and the catalog counts invalid projects as failures. In-process flows with the draft engine."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from dia_core.errors import InputError
from dia_core.files import file_sha256
from dia_core.production import folder, jobs
from dia_core.production import manifests as manifest_mod
from dia_core.production.options import RenderOptions

CHAPTERS = ["The first chapter is short and calm.", "The second chapter is short too.",
            "And the third one ends it."]
YAML = """\
title: {title}
author: Test Author
manuscript: book.md
seed: 3
voices:
  reader:
    seed: 5
narrator_voice: reader
delivery:
  profile: podcast
  strict: {strict}
  formats: [{formats}]
  captions: [{captions}]
qc:
  max_attempts: 1
  asr: off
  voice_check: false
{qc}"""


def make_book(root: Path, *, title="Book", chapters=CHAPTERS, formats="mp3, m4b", captions="vtt",
              strict=False, qc="") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "book.md").write_text("".join(f"# Chapter {i + 1}\n\n{text}\n\n" for i, text in enumerate(chapters)))
    (root / "project.yaml").write_text(YAML.format(title=title, formats=formats, captions=captions,
                                                   strict=str(strict).lower(), qc=qc))
    return root / "project.yaml"


def render(project: Path, out: Path, store: Path, **options):
    from flows.produce import produce

    return produce(project=str(project), return_state=True,
                   options=RenderOptions(draft=True, out_dir=str(out), store=str(store), **options))


def manifest(out: Path) -> dict:
    data = json.loads((out / "manifest.json").read_text())
    manifest_mod.validate_project_manifest(data)
    return data


def delivered(out: Path) -> set[str]:
    """Every file in the delivery folder but the superseded ones."""
    return {p.relative_to(out).as_posix() for p in out.rglob("*")
            if p.is_file() and folder.SUPERSEDED not in p.relative_to(out).parts}


def listed(data: dict) -> set[str]:
    return {f["path"] for c in data["chapters"] for f in c["files"]} | {c["manifest"] for c in data["chapters"]} \
        | {f["path"] for f in data["book_files"]}


def markers(m4b: Path) -> list[str]:
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(m4b)],
                           capture_output=True, text=True, check=True)
    return [c["tags"]["title"] for c in json.loads(probe.stdout)["chapters"]]


def superseded(out: Path) -> set[str]:
    root = out / folder.SUPERSEDED
    return {p.relative_to(root).as_posix().split("/", 1)[1] for p in root.rglob("*") if p.is_file()} \
        if root.exists() else set()


# ---- 1. a partial render rebuilds the whole book ---------------------------------------------------

def test_partial_render_rebuilds_the_whole_book_from_current_chapters(tmp_path):
    project, out, store = make_book(tmp_path / "book"), tmp_path / "out", tmp_path / "store"
    assert render(project, out, store).is_completed()
    book = out / "book"
    full = manifest(book)
    before = {p: file_sha256(book / p) for p in listed(full) if not p.endswith(".json")}   # media, captions
    reused = {p: (book / p).read_text() for p in ("manifests/chapter-01.json", "manifests/chapter-03.json")}

    state = render(project, out, store, chapters=(2,))
    assert state.is_completed(), state
    data = manifest(book)
    assert [c["id"] for c in data["chapters"]] == ["chapter-01", "chapter-02", "chapter-03"]
    assert data["complete"] is True and data["missing_chapters"] == []
    assert markers(book / "book.m4b") == ["Chapter 1", "Chapter 2", "Chapter 3"]
    # the same takes and settings: the rebuilt book is the full render's, byte for byte
    assert {p: file_sha256(book / p) for p in before} == before
    assert data["book_files"][0]["sha256"] == before["book.m4b"]
    assert {p: (book / p).read_text() for p in reused} == reused   # chapters 1 and 3 were not touched
    assert [c["start_ms"] for c in data["chapters"]] == [c["start_ms"] for c in full["chapters"]]
    # the manifest describes every file in the delivery
    assert delivered(book) == listed(data) | {"manifest.json", folder.OWNER_FILE}


def test_partial_render_of_missing_or_edited_chapters_is_marked_incomplete(tmp_path):
    project, out, store = make_book(tmp_path / "book"), tmp_path / "out", tmp_path / "store"
    book = out / "book"
    # never rendered before: chapter 2 alone is no book
    assert render(project, out, store, chapters=(2,)).is_completed()
    data = manifest(book)
    assert data["complete"] is False and data["missing_chapters"] == ["chapter-01", "chapter-03"]
    assert [c["id"] for c in data["chapters"]] == ["chapter-02"]
    assert data["book_files"] == [] and data["book"] is None and not (book / "book.m4b").exists()
    assert delivered(book) == listed(data) | {"manifest.json", folder.OWNER_FILE}

    assert render(project, out, store).is_completed()
    assert manifest(book)["complete"] is True and (book / "book.m4b").exists()
    old_m4b = file_sha256(book / "book.m4b")

    # chapter 1 edited, only chapter 2 rendered: chapter 1's files are out of date, the old book too
    (project.parent / "book.md").write_text((project.parent / "book.md").read_text().replace("calm", "quiet"))
    assert render(project, out, store, chapters=(2,)).is_completed()
    data = manifest(book)
    assert data["complete"] is False and data["missing_chapters"] == ["chapter-01"]
    assert [c["id"] for c in data["chapters"]] == ["chapter-02", "chapter-03"]
    assert not (book / "book.m4b").exists()
    assert delivered(book) == listed(data) | {"manifest.json", folder.OWNER_FILE}
    assert {"book.m4b", "chapter-01.mp3", "chapter-01.vtt", "manifests/chapter-01.json",
            "manifest.json"} <= superseded(book)
    [kept] = [p for p in (book / folder.SUPERSEDED).rglob("book.m4b")]
    assert file_sha256(kept) == old_m4b   # moved aside, not deleted


# ---- 2. one delivery folder per project ------------------------------------------------------------

def test_a_folder_of_another_project_is_refused_before_any_work(tmp_path):
    out, store = tmp_path / "out", tmp_path / "store"
    x = make_book(tmp_path / "x" / "book", title="Book X")
    y = make_book(tmp_path / "y" / "book", title="Book Y", chapters=CHAPTERS[:2])
    assert render(x, out, store).is_completed()
    before = {p: file_sha256(out / "book" / p) for p in delivered(out / "book")}

    with pytest.raises(InputError) as e:
        jobs.open_job(y, RenderOptions(draft=True, out_dir=str(out)))
    assert str(x.resolve()) in str(e.value) and str(y.resolve()) in str(e.value)   # names both projects
    assert "\n" not in str(e.value)
    state = render(y, out, store)   # the flow checks again under its lock (two renders racing)
    assert state.is_failed()
    with pytest.raises(InputError, match="belongs to another project"):
        state.result()
    assert {p: file_sha256(out / "book" / p) for p in delivered(out / "book")} == before
    assert manifest(out / "book")["title"] == "Book X"
    assert folder.read_owner(out / "book")["project"] == str(x.resolve())
    # the owner renders again as before; a moved project keeps its folder
    assert render(x, out, store).is_completed()
    moved = tmp_path / "z" / "book"
    moved.parent.mkdir()
    x.parent.rename(moved)
    assert render(moved / "project.yaml", out, store).is_completed()
    assert folder.read_owner(out / "book")["project"] == str((moved / "project.yaml").resolve())


def test_catalog_gives_same_named_projects_their_own_folders_and_counts_invalid_ones(tmp_path):
    from flows.catalog import narrate_catalog

    catalog, out, store = tmp_path / "catalog", tmp_path / "out", tmp_path / "store"
    make_book(catalog / "x" / "book", title="Book X", chapters=CHAPTERS[:1])
    make_book(catalog / "y" / "book", title="Book Y", chapters=CHAPTERS[1:2])
    bad = make_book(catalog / "bad", title="Bad", chapters=CHAPTERS[:1])
    bad.write_text(bad.read_text() + "colour: red\n")
    state = narrate_catalog(catalog=str(catalog), options=RenderOptions(draft=True, out_dir=str(out),
                                                                        store=str(store)), return_state=True)
    assert state.is_failed()
    with pytest.raises(RuntimeError, match=r"1 of 3 projects failed: .*bad/project\.yaml \(.*colour: unknown key"):
        state.result()
    assert manifest(out / "x" / "book")["title"] == "Book X"
    assert manifest(out / "y" / "book")["title"] == "Book Y"
    assert folder.read_owner(out / "y" / "book")["project"] == str((catalog / "y" / "book" / "project.yaml").resolve())

    # nothing changed: the catalog finds both deliveries where it put them, and still fails on the bad one
    bad.write_text(bad.read_text().replace("colour: red\n", ""))
    assert narrate_catalog(catalog=str(catalog), options=RenderOptions(draft=True, out_dir=str(out),
                                                                       store=str(store))) == {
        str(bad): "COMPLETED"}


# ---- 3. nothing stale stays in the delivery --------------------------------------------------------

def test_files_the_new_delivery_does_not_list_are_moved_aside(tmp_path):
    project = make_book(tmp_path / "book", formats="mp3, m4b", captions="vtt, srt")
    out, store = tmp_path / "out", tmp_path / "store"
    assert render(project, out, store).is_completed()
    book = out / "book"
    (book / "notes.txt").write_text("the producer's own file")
    (book / "chapter-01-notes.md").write_text("not a name the pipeline writes")
    old = {p: file_sha256(book / p) for p in delivered(book)}

    make_book(tmp_path / "book", chapters=CHAPTERS[:2], formats="flac", captions="vtt")   # chapter 3 deleted
    assert render(project, out, store).is_completed()
    data = manifest(book)
    assert [c["id"] for c in data["chapters"]] == ["chapter-01", "chapter-02"] and data["book_files"] == []
    assert delivered(book) == listed(data) | {"manifest.json", folder.OWNER_FILE, "notes.txt",
                                              "chapter-01-notes.md"}
    assert superseded(book) == {"book.m4b", "chapter-01.mp3", "chapter-02.mp3", "chapter-03.mp3",
                                "chapter-01.srt", "chapter-02.srt", "chapter-03.srt", "chapter-03.vtt",
                                "manifests/chapter-03.json", "manifest.json"}
    for p in (book / folder.SUPERSEDED).rglob("*"):
        rel = p.relative_to(book / folder.SUPERSEDED).as_posix().split("/", 1)
        if p.is_file() and rel[1] != "manifest.json":
            assert file_sha256(p) == old[rel[1]], rel   # moved, unchanged
    assert (book / "notes.txt").read_text() == "the producer's own file"


# ---- 4. segments that failed QC on every attempt ---------------------------------------------------

IMPOSSIBLE_QC = "  duration_ratio_min: 1.0\n  duration_ratio_max: 1.0001\n"


def test_segments_failing_qc_are_counted_and_fail_a_strict_render(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    project = make_book(tmp_path / "qcbook", chapters=CHAPTERS[:2], qc=IMPOSSIBLE_QC)
    out, store = tmp_path / "out", tmp_path / "store"
    state = render(project, out, store)
    assert state.is_completed(), state   # not strict: delivered, and said so
    book = out / "qcbook"
    data = manifest(book)
    segments = {c["id"]: [s["id"] for s in json.loads((book / c["manifest"]).read_text())["segments"]]
                for c in data["chapters"]}
    assert all(segments.values())
    for c in data["chapters"]:
        assert c["qc_failed_segments"] == segments[c["id"]] and c["qc_failed"] == len(segments[c["id"]])
    assert data["qc_failed"] == sum(len(v) for v in segments.values()) and data["passed"] is False
    with get_client(sync_client=True) as client:
        [summary] = [a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="qcbook-")),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
            if a.key.endswith("-summary")]
    assert f"{data['qc_failed']} segments failed QC on every attempt" in summary.data
    assert f"FAIL: {len(segments['chapter-01'])} delivered anyway" in summary.data

    make_book(tmp_path / "qcbook", chapters=CHAPTERS[:2], qc=IMPOSSIBLE_QC, strict=True)
    state = render(project, out, store)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"chapter-01: \d+ segment\(s\) failed QC on every attempt"):
        state.result()
    assert manifest(book)["qc_failed"] == data["qc_failed"]   # written, and says why


# ---- 6. the flow run's name --------------------------------------------------------------------------

def test_run_name_inside_the_project_folder(tmp_path, monkeypatch):
    import flows.produce as produce_mod

    project = make_book(tmp_path / "my-book")
    monkeypatch.chdir(project.parent)
    monkeypatch.setattr(produce_mod, "flow_run", SimpleNamespace(parameters={"project": "project.yaml"}))
    assert produce_mod._run_name() == "produce my-book"
