"""dia_core.production.folder: who owns a delivery folder, and which files a render moves aside."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dia_core.errors import InputError
from dia_core.production import folder


def project(root: Path, title: str = "Book") -> SimpleNamespace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.yaml").write_text("title: x\n")
    return SimpleNamespace(manifest_path=(root / "project.yaml").resolve(), work_dir=root / ".dia-studio",
                           title=title, manifest_label=f"{root.name}/project.yaml")


def test_claim_is_exclusive(tmp_path):
    """Two projects racing for a new folder: both looked before either claimed; one wins."""
    a, b = project(tmp_path / "a"), project(tmp_path / "b")
    out = tmp_path / "out" / "book"
    folder.check_owner(a, out)
    folder.check_owner(b, out)
    folder.claim(a, out, "2026-01-01T00:00:00Z")
    with pytest.raises(InputError, match=r"^b/project\.yaml: output folder .* belongs to another project, "
                                         r".*/a/project\.yaml; render this one into another --out folder$"):
        folder.claim(b, out, "2026-01-01T00:00:01Z")
    folder.claim(a, out, "2026-01-01T00:00:02Z")   # the owner again: fine
    assert folder.read_owner(out)["project"] == str(a.manifest_path)
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_a_moved_project_keeps_its_folder_a_copy_does_not(tmp_path):
    a = project(tmp_path / "a")
    out = tmp_path / "out" / "book"
    folder.claim(a, out, "2026-01-01T00:00:00Z")
    copy = project(tmp_path / "copy")
    copy.work_dir.mkdir(parents=True)
    (copy.work_dir / folder.PROJECT_ID_FILE).write_text((a.work_dir / folder.PROJECT_ID_FILE).read_text())
    with pytest.raises(InputError, match="belongs to another project"):   # same id, but a still exists
        folder.check_owner(copy, out)
    (tmp_path / "a" / "project.yaml").unlink()                               # a moved away: the copy is it
    folder.claim(copy, out, "2026-01-01T00:00:01Z")
    assert folder.read_owner(out)["project"] == str(copy.manifest_path)


def test_legacy_delivery_is_adopted_only_by_its_title(tmp_path):
    out = tmp_path / "out" / "book"
    out.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"title": "Old Book"}))
    with pytest.raises(InputError, match="holds a delivery of another project \\('Old Book'\\)"):
        folder.check_owner(project(tmp_path / "x", title="New Book"), out)
    folder.claim(project(tmp_path / "y", title="Old Book"), out, "2026-01-01T00:00:00Z")
    (out / folder.OWNER_FILE).write_text("{")
    with pytest.raises(InputError, match="unreadable ownership record"):
        folder.check_owner(project(tmp_path / "y", title="Old Book"), out)


def test_supersede_moves_only_pipeline_files_it_no_longer_lists(tmp_path):
    out = tmp_path / "book"
    (out / "manifests").mkdir(parents=True)
    names = ["chapter-01.mp3", "chapter-01.vtt", "chapter-02.mp3", "chapter-02.srt", "book.m4b", "old-name.m4b",
             "manifests/chapter-01.json", "manifests/chapter-02.json", "notes.txt", "chapter-1-notes.mp3",
             "manifests/readme.json", folder.OWNER_FILE]
    for n in names:
        (out / n).write_text(n)
    previous = {"chapters": [{"files": [{"path": "chapter-01.mp3"}], "manifest": "manifests/chapter-01.json"}],
                "book_files": [{"path": "old-name.m4b"}, {"path": "../outside.txt"}, {"path": "/etc/passwd"}]}
    folder.retire_manifest(out, "R1")   # nothing to retire yet
    (out / "manifest.json").write_text(json.dumps(previous))
    assert folder.retire_manifest(out, "R1") == out / ".superseded" / "R1" / "manifest.json"
    moved = folder.supersede(out, {"chapter-01.mp3", "chapter-01.vtt", "manifests/chapter-01.json"}, "R1", "book.m4b")
    aside = out / ".superseded" / "R1"
    assert sorted(p.relative_to(aside).as_posix() for p in moved) == [
        "book.m4b", "chapter-02.mp3", "chapter-02.srt", "manifests/chapter-02.json", "old-name.m4b"]
    assert all(p.read_text() == p.relative_to(aside).as_posix() for p in moved)   # moved, unchanged
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and ".superseded" not in p.parts)
    assert left == sorted(["chapter-01.mp3", "chapter-01.vtt", "manifests/chapter-01.json", "notes.txt",
                           "chapter-1-notes.mp3", "manifests/readme.json", folder.OWNER_FILE])
    # a second run in the same second never overwrites what an earlier one moved aside
    (out / "chapter-02.mp3").write_text("again")
    folder.supersede(out, {"chapter-01.mp3", "chapter-01.vtt", "manifests/chapter-01.json"}, "R1", "book.m4b")
    assert (aside / "chapter-02.mp3").read_text() == "chapter-02.mp3"
    assert (aside / "chapter-02.2.mp3").read_text() == "again"
