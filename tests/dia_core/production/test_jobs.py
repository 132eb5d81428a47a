"""The GPU lock names the physical device: workers pinned to different GPUs with
CUDA_VISIBLE_DEVICES (each sees cuda:0) do not wait for each other; two on the same GPU do."""
from __future__ import annotations

import pytest
from filelock import Timeout

from dia_core.production.jobs import device_identity, gpu_lock


@pytest.mark.parametrize("visible, device, expected", [
    (None, "cuda:0", "cuda-0"), (None, "cuda", "cuda-0"), (None, "cuda:1", "cuda-1"), (None, "cpu", "cpu"),
    ("2,3", "cuda:0", "cuda-2"), ("2,3", "cuda", "cuda-2"), ("2,3", "cuda:1", "cuda-3"),
    ("GPU-8f2e/ab", "cuda:0", "cuda-GPU-8f2e-ab"),   # a UUID entry, made file-name safe
])
def test_device_identity_follows_cuda_visible_devices(monkeypatch, visible, device, expected):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert device_identity(device) == expected


def test_workers_on_different_gpus_hold_different_locks(monkeypatch, tmp_path):
    monkeypatch.setenv("DIA_STUDIO_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    first = gpu_lock("cuda:0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    other_gpu = gpu_lock("cuda:0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    same_as_first = gpu_lock("cuda:1")
    assert first.lock_file != other_gpu.lock_file and first.lock_file == same_as_first.lock_file
    with first:
        other_gpu.acquire(timeout=0)          # another GPU: free
        other_gpu.release()
        with pytest.raises(Timeout):          # the same GPU under another index: taken
            same_as_first.acquire(timeout=0)
