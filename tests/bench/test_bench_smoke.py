"""CI smoke mode of bench/bench_generate.py: runs on CPU with the tiny config and writes the table."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_generate_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_generate.py"), "--smoke", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (js,) = tmp_path.glob("cpu-smoke-*.json")
    assert js.with_suffix(".md").is_file()
    result = json.loads(js.read_text())
    assert result["smoke"] is True
    rows = {(r["engine"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {("ours", 1), ("ours", 4), ("transformers", 1)}
    for r in rows.values():
        assert r["tokens_per_s"] > 0 and r["realtime_factor"] > 0 and r["rows_per_stream"] > 0
    assert result["recompile_checks"][0]["new_dynamo_graphs"] == 0
    assert result["parity"][0]["streams_identical"] == result["parity"][0]["streams"]
    assert "SMOKE RUN" in proc.stdout
    assert result["complete"] is True and result["errors"] == []
    (dac,) = result["dac"]
    assert dac["audio_s"] > 0 and dac["dac_decode_s"] > 0 and dac["two_batches_pipelined_s"] > 0


def test_bench_e2e_smoke(tmp_path, subprocess_env):
    """The end-to-end bench renders the example chapter through the real produce flow (tiny random
    Dia checkpoint and DAC on CPU) against the session's test server, and reports its figures."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_e2e.py"), "--smoke", "--out",
                           str(tmp_path / "results"), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=400, cwd=ROOT, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (js,) = (tmp_path / "results").glob("e2e-cpu-smoke-*.json")
    r = json.loads(js.read_text())
    assert r["smoke"] is True and "SMOKE RUN" in proc.stdout
    manifest = json.loads((tmp_path / "work" / "out" / "book" / "manifest.json").read_text())
    assert r["chapters"] == len(manifest["chapters"]) == 1
    assert r["audio_s"] == sum(c["duration_s"] for c in manifest["chapters"]) > 10
    # Every planned segment was generated (plus the seed-only voices' calibration takes).
    assert r["segments"] <= r["takes"] and r["batches"] >= -(-r["segments"] // r["batch_size"])
    assert 0 < r["engine_start_s"] < r["flow_s"]
    assert abs(r["gpu_min_per_audio_hour"] - (r["flow_s"] / 60) / (r["audio_s"] / 3600)) < 1e-9
    assert (tmp_path / "work" / "out" / "book" / "book.m4b").is_file()
