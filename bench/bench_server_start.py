"""Benchmark: how long the local Prefect server takes to answer, on a fresh database and on an existing
one, optionally with busy loops loading the CPUs (what a producer's first render waits for).

    .venv/bin/python bench/bench_server_start.py [--runs 3] [--busy 2]

Each run starts flows.server.LocalServer (the server a CLI render starts when no PREFECT_API_URL is
set) with PREFECT_HOME in a new temporary folder, waits for /api/health, stops it, then starts it
again on the now existing database. Writes bench/results/server-start-<date>.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_start(home: Path) -> float:
    """Seconds until the server answers; run in a child process so PREFECT_HOME is read fresh."""
    code = ("import sys, time\nfrom flows.server import LocalServer\ns = LocalServer()\n"
            "s.start(900, lambda m: None)\nprint(s.startup_s)\ns.stop()\n")
    env = {**os.environ, "PREFECT_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--busy", type=int, default=2, help="busy loops loading the CPUs while starting")
    args = ap.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    rows = []
    try:
        for i in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                fresh = one_start(Path(tmp))
                warm = one_start(Path(tmp))
            rows.append((i + 1, fresh, warm))
            print(f"run {i + 1}: fresh database {fresh:.1f} s, existing database {warm:.1f} s", flush=True)
    finally:
        for p in busy:
            p.kill()
    lines = [f"# Local Prefect server startup ({dt.date.today()})", "",
             f"Command: `.venv/bin/python bench/bench_server_start.py --runs {args.runs} --busy {args.busy}`",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}; "
             f"{args.busy} busy loops running during every start.", "",
             "| run | fresh database (s) | existing database (s) |", "|---|---|---|"]
    lines += [f"| {i} | {f:.1f} | {w:.1f} |" for i, f, w in rows]
    lines += ["", "Prefect's own ephemeral server waits 20 s by default "
              "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); dia-studio waits up to 300 s "
              "(DIA_STUDIO_SERVER_TIMEOUT)."]
    out = REPO / "bench" / "results" / f"server-start-{dt.date.today()}.md"
    out.write_text("\n".join(lines) + "\n")
    print(out)


if __name__ == "__main__":
    main()
