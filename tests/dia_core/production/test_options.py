"""Options sent to runs on other workers carry absolute paths (they start in another directory)."""
from __future__ import annotations

from pathlib import Path

from dia_core.production.options import RenderOptions


def test_for_other_hosts_makes_local_paths_absolute_and_keeps_repo_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "ckpt").mkdir(parents=True)
    (tmp_path / "models" / "dac.pth").write_bytes(b"x")
    local = RenderOptions(out_dir="out", store="store", model="models/ckpt", codec="models/dac.pth",
                          batch_size=2).for_other_hosts()
    assert local.out_dir == str(tmp_path / "out") and local.store == str(tmp_path / "store")
    assert local.model == str(tmp_path / "models" / "ckpt") and local.codec == str(tmp_path / "models" / "dac.pth")
    assert local.batch_size == 2 and all(Path(p).is_absolute() for p in (local.out_dir, local.store))
    hub = RenderOptions(model="nari-labs/Dia-1.6B-0626").for_other_hosts()
    assert hub.model == "nari-labs/Dia-1.6B-0626" and hub.out_dir is None and hub.store is None
