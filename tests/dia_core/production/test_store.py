import numpy as np

from dia_core.files import canonical_hash
from dia_core.production.store import SegmentStore


def test_roundtrip_and_missing(tmp_path):
    store = SegmentStore(tmp_path)
    key = canonical_hash({"text": "[S1] hi", "seed": 1})
    assert store.get(key) is None
    audio = np.linspace(-0.5, 0.5, 4410, dtype=np.float32)
    take = store.put(key, audio, {"seed": 1, "hit_limit": False})
    again = store.get(key)
    assert again is not None and again.record["seed"] == 1
    np.testing.assert_array_equal(again.load_audio(), audio)  # float32 kept bit-exact
    assert take.record["samples"] == 4410


def test_canonical_hash_ignores_key_order_but_not_values():
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_corrupt_or_truncated_entries_are_discarded(tmp_path):
    store = SegmentStore(tmp_path)
    audio = np.ones(1000, np.float32) * 0.1
    take = store.put("ab" * 32, audio, {})
    data = take.audio_path.read_bytes()
    take.audio_path.write_bytes(data[: len(data) // 2])  # truncated
    assert store.get("ab" * 32) is None
    assert not take.audio_path.exists()  # removed so it is regenerated, never stitched

    take = store.put("cd" * 32, audio, {})
    raw = bytearray(take.audio_path.read_bytes())
    raw[-1] ^= 0xFF  # one flipped byte
    take.audio_path.write_bytes(bytes(raw))
    assert store.get("cd" * 32) is None


def test_entry_without_record_counts_as_missing(tmp_path):
    store = SegmentStore(tmp_path)
    take = store.put("ef" * 32, np.zeros(10, np.float32), {})
    take.audio_path.with_name("take.json").unlink()  # killed between the two writes
    assert store.get("ef" * 32) is None


def test_qc_verdict_is_kept_as_a_note_and_keyed_by_what_it_depends_on(tmp_path, monkeypatch):
    from dataclasses import replace
    from types import SimpleNamespace

    from dia_core.production import store as store_mod
    from dia_core.production.takes import qc_take
    from dia_core.settings import QCSettings

    sr = 44100
    t = np.arange(int(2.0 * sr)) / sr
    audio = np.concatenate([np.zeros(sr // 10), 0.2 * np.sin(2 * np.pi * 150 * t), np.zeros(sr // 10)])
    store = SegmentStore(tmp_path)
    take = store.put("ab" * 32, audio.astype(np.float32), {"hit_limit": False})
    segment, qc = SimpleNamespace(est_seconds=2.0), QCSettings()
    first = qc_take(take, segment, qc, store)
    loads = []
    real = store_mod.StoredTake.load_audio
    monkeypatch.setattr(store_mod.StoredTake, "load_audio", lambda self: loads.append(1) or real(self))
    assert qc_take(store.get(take.key), segment, qc, store) == first and loads == []   # read, not measured
    qc_take(take, SimpleNamespace(est_seconds=9.0), qc, store)                      # other expectation
    qc_take(take, segment, replace(qc, max_attempts=qc.max_attempts + 1), store)    # other settings
    assert len(loads) == 2
    assert qc_take(take, segment, qc) == first                                      # no store: measured
