"""The model checksum without the weights: hub LFS metadata, the cache's blob names, a memo of local
file hashes; always equal to what the loaded model reports."""
from __future__ import annotations

import hashlib
import os
import shutil
from types import SimpleNamespace

import pytest

from dia_core.dia import identity
from dia_core.dia.checkpoint import checkpoint_checksum
from dia_core.dia.identity import checkpoint_identity
from tests.tiny_models import write_tiny_dia_checkpoint

REPO = "someone/tiny-dia"


def _no_reading(monkeypatch):
    monkeypatch.setattr(identity, "file_sha256", lambda path: pytest.fail(f"read {path}"))


def _blob_cache(tmp_path, layout):
    """A hub cache as huggingface_hub writes it: snapshot files link to blobs named by their sha256."""
    src = write_tiny_dia_checkpoint(tmp_path / "src", layout)
    storage = tmp_path / "hub" / ("models--" + REPO.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (storage / "blobs").mkdir(parents=True)
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in src.iterdir():
        blob = storage / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copy(f, blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / f.name)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    return src


@pytest.mark.parametrize("layout", ["reference", "transformers-sharded"])
def test_offline_repo_id_from_blob_names(tmp_path, monkeypatch, layout):
    src = _blob_cache(tmp_path, layout)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = checkpoint_checksum(src)   # what the loaded model reports (tested in test_checkpoint)
    _no_reading(monkeypatch)
    assert checkpoint_identity(REPO) == expected


def test_online_repo_id_from_hub_metadata(tmp_path, monkeypatch):
    src = write_tiny_dia_checkpoint(tmp_path / "src", "transformers-sharded")
    siblings = [SimpleNamespace(rfilename=f.name, lfs=SimpleNamespace(sha256=hashlib.sha256(f.read_bytes()).hexdigest())
                                if f.suffix == ".safetensors" else None) for f in src.iterdir()]
    siblings.append(SimpleNamespace(rfilename="README.md", lfs=None))
    calls = []

    def model_info(self, repo, revision=None, files_metadata=False):
        calls.append((repo, revision, files_metadata))
        return SimpleNamespace(siblings=siblings)

    import huggingface_hub
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    expected = checkpoint_checksum(src)
    _no_reading(monkeypatch)
    assert checkpoint_identity(REPO, revision="abc") == expected
    assert calls == [(REPO, "abc", True)]


def test_local_checkpoint_hashed_once_then_remembered(tmp_path, monkeypatch):
    ckpt = write_tiny_dia_checkpoint(tmp_path / "ckpt", "reference")
    memo = tmp_path / "store"
    first = checkpoint_identity(ckpt, memo)
    assert first == hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    assert (memo / identity.MEMO_NAME).is_file()
    real = identity.file_sha256
    _no_reading(monkeypatch)
    assert checkpoint_identity(str(ckpt), memo) == first     # another process: only stats
    # A rewritten file (new size/mtime) is hashed again.
    monkeypatch.setattr(identity, "file_sha256", real)
    write_tiny_dia_checkpoint(ckpt, "reference", seed=5)
    os.utime(ckpt / "model.safetensors", ns=(1, 1))
    second = checkpoint_identity(ckpt, memo)
    assert second != first
    assert second == hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
