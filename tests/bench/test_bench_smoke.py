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
