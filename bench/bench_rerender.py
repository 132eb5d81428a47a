"""Benchmark: what an unchanged re-render of a one-hour book costs, through the real CLI.

    .venv/bin/python bench/bench_rerender.py                      # ~60 min of audio, 10 chapters, + edit
    .venv/bin/python bench/bench_rerender.py --minutes 3 --chapters 3 --work /tmp/rr   # a quick look

A draft-engine project (espeak-ng: no GPU, no weights) is written to ``--work``: the example
audiobook's settings (narrator + three characters, two reference voices, a seed-only voice, lexicon,
ACX profile, MP3 + M4B, VTT captions, the ACX package with credits), listening off
(``qc: {asr: off, voice_check: false}``: this measures the render, not the listener) and a manuscript
of about 160 words per minute of audio that this script makes up from a fixed word list with a fixed
seed (every run writes the same text). Then three renders, each ``dia-studio render --draft`` in a
subprocess (the real CLI: imports, project checks, the local Prefect server, the produce flow):

1. the first render (every take generated, every chapter finished, the M4B built);
2. the same project again, unchanged: every take is in the store, so nothing should be generated,
   no chapter re-finished, the M4B not rebuilt and no delivered file rewritten;
3. (unless ``--no-edit``) one paragraph of one chapter edited: only that chapter should change.

For each render: wall time, CPU seconds of the CLI and everything it started (the Prefect server,
ffmpeg, espeak-ng: ``RUSAGE_CHILDREN``), the load average, and the time split into the CLI's start
(imports, project checks), the local server's start, the flow (each task from the timestamps Prefect
prints) and the end (server stop). Before and after renders 2 and 3, every file in the delivery
folder and in the project's work folder is recorded (inode, mtime, size, sha256): a file rewritten
has a new inode or mtime, a file changed has new bytes. ``--profile`` also runs render 2 under
cProfile (Prefect runs this flow's sync tasks in the CLI's main thread) and keeps the top functions.
Results: bench/results/rerender-<date>.{json,md}.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import pstats
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "projects" / "short-audiobook"
WORDS_PER_MINUTE = 160   # espeak-ng reads 160 wpm (engines.DraftEngine); pauses and tempo 0.94 add ~10%

# ---- the project -------------------------------------------------------------------------------------
# A fixed vocabulary and a few sentence shapes; random.Random(seed) picks from them.

NOUNS = ("lamp", "harbour", "ferry", "island", "window", "stair", "ledger", "storm", "tide", "rope",
         "bell", "gull", "boat", "cliff", "lantern", "kettle", "chart", "compass", "net", "pier",
         "village", "letter", "road", "garden", "wall", "gate", "door", "table", "chair", "blanket")
ADJECTIVES = ("old", "quiet", "grey", "narrow", "bright", "cold", "heavy", "small", "patient", "wet",
              "salt-stained", "broken", "careful", "distant", "warm", "steady", "empty", "green")
VERBS = ("watched", "carried", "mended", "counted", "followed", "opened", "closed", "painted",
         "remembered", "found", "lifted", "checked", "cleaned", "crossed", "answered", "kept")
PLACES = ("below the tower", "along the shore", "by the fire", "at the top of the hill",
          "beside the harbour wall", "under the clouds", "past the old chapel", "near the pier")
TIMES = ("In the morning", "Before dawn", "After supper", "By noon", "At dusk", "Later that week",
         "On the third day", "When the wind dropped")
NAMES = ("Mara", "Tobias", "the keeper", "the ferryman", "the children", "the harbour master")
SPEAKERS = ("MARA", "TOBIAS", "KEEPER")


def _sentence(rng: random.Random) -> str:
    n1, n2 = rng.choice(NOUNS), rng.choice(NOUNS)
    a1, a2 = rng.choice(ADJECTIVES), rng.choice(ADJECTIVES)
    shape = rng.randrange(5)
    if shape == 0:
        s = f"{rng.choice(TIMES)}, {rng.choice(NAMES)} {rng.choice(VERBS)} the {a1} {n1} {rng.choice(PLACES)}"
    elif shape == 1:
        s = f"The {a1} {n1} stood {rng.choice(PLACES)}, and the {a2} {n2} waited for the tide"
    elif shape == 2:
        s = f"{rng.choice(NAMES).capitalize()} {rng.choice(VERBS)} the {n1} and {rng.choice(VERBS)} the {a2} {n2}"
    elif shape == 3:
        s = f"Nobody in Caerwyn {rng.choice(VERBS)} the {n1} as often as {rng.choice(NAMES)} did"
    else:
        article = "an" if a1[0] in "aeiou" else "a"
        s = f"There was {article} {a1} {n1} {rng.choice(PLACES)}, {a2} and {rng.choice(ADJECTIVES)}"
    return s[0].upper() + s[1:] + "."


def _paragraph(rng: random.Random, target_words: int) -> str:
    out: list[str] = []
    while sum(len(s.split()) for s in out) < target_words:
        out.append(_sentence(rng))
    return " ".join(out)


def manuscript(words: int, chapters: int, seed: int = 7) -> str:
    """About ``words`` words over ``chapters`` chapters; every fourth paragraph is a character's line."""
    rng = random.Random(seed)
    per_chapter = words // chapters
    parts = []
    for c in range(1, chapters + 1):
        parts.append(f"# Chapter {c}: The {rng.choice(ADJECTIVES).capitalize()} {rng.choice(NOUNS).capitalize()}")
        written, k = 0, 0
        while written < per_chapter:
            k += 1
            if k % 4 == 0:
                text = f"{rng.choice(SPEAKERS)}: {_paragraph(rng, rng.randint(12, 30))}"
            else:
                text = _paragraph(rng, rng.randint(45, 90))
            parts.append(text)
            written += len(text.split())
    return "\n\n".join(parts) + "\n"


def make_project(work: Path, minutes: float, chapters: int) -> Path:
    book = work / "book"
    if book.exists():
        shutil.rmtree(book)
    book.mkdir(parents=True)
    shutil.copytree(EXAMPLE / "voices", book / "voices")
    shutil.copy2(EXAMPLE / "cover.png", book / "cover.png")
    data = yaml.safe_load((EXAMPLE / "project.yaml").read_text())
    data.pop("chapters", None)
    data["manuscript"] = "manuscript.md"
    data["title"] = "The Keeper's Long Year"
    data["qc"] = {"max_attempts": 3, "asr": "off", "voice_check": False}
    (book / "project.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (book / "manuscript.md").write_text(manuscript(round(minutes * WORDS_PER_MINUTE), chapters))
    return book / "project.yaml"


def edit_one_paragraph(project: Path, chapter: int) -> str:
    """Append one sentence to the second paragraph of ``chapter`` (1-based); returns the chapter id."""
    path = project.parent / "manuscript.md"
    blocks = path.read_text().split("\n\n")
    heads = [i for i, b in enumerate(blocks) if b.startswith("# ")]
    i = heads[chapter - 1] + 2
    blocks[i] = blocks[i].rstrip() + " The bell rang once more, and then the harbour was still."
    path.write_text("\n\n".join(blocks))
    return f"chapter-{chapter:02d}"


# ---- measuring one render ------------------------------------------------------------------------------

PREFECT_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \| \w+ +\| (.*)$")


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def render(project: Path, label: str, profile: Path | None = None) -> dict:
    """Run the CLI once; stderr lines are stamped as they arrive (Prefect's lines carry their own)."""
    cmd = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []),
           "-m", "flows.cli", "render", str(project), "--draft"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    load_before, cpu_before = os.getloadavg(), _cpu_children()
    started = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stderr:
            lines.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read)
    reader.start()
    rc = proc.wait()
    reader.join()
    ended = time.time()
    cpu = _cpu_children() - cpu_before
    if rc != 0:
        sys.stderr.write("\n".join(line for _, line in lines[-30:]) + "\n")
        raise SystemExit(f"{label}: the render exited {rc}")
    result = {"label": label, "command": " ".join(["dia-studio", *cmd[cmd.index("render"):]]),
              "wall_s": round(ended - started, 2), "cpu_s": round(cpu, 2),
              "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()], "profiled": profile is not None}
    result |= phases(lines, started, ended)
    return result


def phases(lines: list[tuple[float, str]], started: float, ended: float) -> dict:
    """CLI start -> "starting the local Prefect server" -> "Beginning flow run" -> the flow's
    "Finished in state" -> exit; each task from the previous task's end to its own (in-process tasks
    run one after another)."""
    day = dt.datetime.fromtimestamp(started)
    stamped = []
    for arrived, line in lines:
        m = PREFECT_LINE.match(line)
        if m:
            h, mi, s, ms, msg = m.groups()
            t = day.replace(hour=int(h), minute=int(mi), second=int(s), microsecond=int(ms) * 1000).timestamp()
            stamped.append((t, msg))
    server_at = next((t for t, line in lines if line.startswith("starting the local Prefect server")), None)
    begin = next((t for t, m in stamped if "Beginning flow run" in m), None)
    end = next((t for t, m in stamped if m.startswith("Flow run") and "Finished in state" in m), None)
    tasks, previous = [], begin
    for t, msg in stamped:
        m = re.match(r"Task run '(.*)' - Finished in state (\w+)", msg)
        if m and previous is not None:
            name = re.sub(r"-[0-9a-f]{3}$", "", m.group(1))
            tasks.append({"task": name, "s": round(t - previous, 2), "state": m.group(2)})
            previous = t
    notes = [msg for _, msg in stamped if any(k in msg for k in ("takes generated", "reused:", "generating",
                                                                  "incomplete"))]
    out = {"tasks": tasks, "log": notes}
    if server_at and begin and end:
        out |= {"cli_start_s": round(server_at - started, 2), "server_start_s": round(begin - server_at, 2),
                "flow_s": round(end - begin, 2), "cli_end_s": round(ended - end, 2)}
    generated = [int(m.group(1)) for _, msg in stamped for m in [re.search(r"(\d+) takes generated", msg)] if m]
    reused = [msg.split("reused:", 1)[1].strip().split(", ") for _, msg in stamped if "reused:" in msg]
    out["takes_generated"] = sum(generated)
    out["chapters_reused"] = reused[0] if reused else []
    return out


# ---- what a render wrote -----------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, dict]:
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            files[p.relative_to(root).as_posix()] = {"inode": st.st_ino, "mtime_ns": st.st_mtime_ns,
                                                     "bytes": st.st_size, "sha256": h.hexdigest()}
    return files


def compare(before: dict, after: dict) -> dict:
    rewritten = [p for p in before if p in after and (before[p]["inode"], before[p]["mtime_ns"])
                 != (after[p]["inode"], after[p]["mtime_ns"])]
    return {"files": len(after),
            "rewritten": rewritten,   # a new inode or mtime (replaced or written in place)
            "changed": [p for p in rewritten if before[p]["sha256"] != after[p]["sha256"]],
            "added": [p for p in after if p not in before],
            "removed": [p for p in before if p not in after]}


def changes(project: Path, before: tuple[dict, dict]) -> tuple[dict, tuple[dict, dict]]:
    out, work = project.parent / "out", project.parent / ".dia-studio"
    now = snapshot(out), snapshot(work)
    skip = re.compile(r"^(prefect|logs)/")   # the Prefect database and the run logs change on every run
    work_before = {k: v for k, v in before[1].items() if not skip.match(k)}
    work_after = {k: v for k, v in now[1].items() if not skip.match(k)}
    return {"delivery": compare(before[0], now[0]), "work": compare(work_before, work_after)}, now


def audio_seconds(project: Path) -> float:
    data = json.loads((project.parent / "out" / "manifest.json").read_text())
    return round(sum(c["duration_s"] for c in data["chapters"]), 1)


def top_functions(profile: Path, n: int = 20) -> dict[str, list[dict]]:
    """This repository's functions by cumulative time (where the render spends it), and every
    function by own time (what the time is made of)."""
    stats = pstats.Stats(str(profile))
    rows = []
    for (file, line, fn), (_, calls, tottime, cumtime, _) in stats.stats.items():
        ours = file.startswith(str(ROOT))
        name = f"{Path(file).relative_to(ROOT).as_posix() if ours else Path(file).name}:{line}({fn})"
        rows.append({"function": name, "ours": ours, "calls": calls,
                     "tottime_s": round(tottime, 2), "cumtime_s": round(cumtime, 2)})
    return {"ours_by_cumtime": sorted((r for r in rows if r["ours"]), key=lambda r: -r["cumtime_s"])[:n],
            "all_by_tottime": sorted(rows, key=lambda r: -r["tottime_s"])[:n]}


# ---- report ------------------------------------------------------------------------------------------------

BOOK_FILES = {"manifest.json", "book.m4b", "acx/acx-report.json", "acx/acx-report.md"}


def verdicts(r: dict, chapters: int) -> list[str]:
    """What the issue expects of an unchanged re-render (nothing generated, no chapter re-finished, no
    delivered file rewritten but manifest.json) and of a one-paragraph edit (only that chapter's files,
    the ACX package's copy of it, the book's files)."""
    c = r.get("changes")
    if not c:
        return []
    rewritten = c["delivery"]["rewritten"]
    if "edited_chapter" in r:
        ch = r["edited_chapter"]
        own = {f"{ch}.mp3", f"{ch}.vtt", f"manifests/{ch}.json"} | BOOK_FILES
        others = [f for f in rewritten if f not in own and not re.fullmatch(rf"acx/\d\d-{ch}(-part-\d+)?\.mp3", f)]
        return [f"- takes generated: {r['takes_generated']}; chapters reused: {len(r['chapters_reused'])} of "
                f"{chapters} (expected {chapters - 1}); delivered files rewritten that are not {ch}'s or the "
                f"book's: {others or 'none'}"]
    others = [f for f in rewritten if f != "manifest.json"]
    return [f"- takes generated: {r['takes_generated']} (expected 0); chapters reused: "
            f"{len(r['chapters_reused'])} of {chapters}; delivered files rewritten other than manifest.json: "
            f"{others or 'none'}"]


def _render_row(r: dict) -> str:
    return (f"| {r['label']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r.get('cli_start_s', '?')} | "
            f"{r.get('server_start_s', '?')} | {r.get('flow_s', '?')} | {r.get('cli_end_s', '?')} | "
            f"{r['takes_generated']} | {len(r['chapters_reused'])} | "
            f"{' '.join(map(str, r['load_before']))} -> {' '.join(map(str, r['load_after']))} |")


def report(results: dict, path_md: Path) -> None:
    lines = [f"# Unchanged re-render of a one-hour book ({results['date']})", "",
             f"Command: `{results['command']}`  ",
             f"Machine: {results['machine']}  ",
             f"Project: {results['project']}", "",
             "| render | wall s | CPU s | CLI start s | server start s | flow s | CLI end s | takes generated "
             "| chapters reused | load avg before -> after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    lines += [_render_row(r) for r in results["renders"]]
    lines += ["", "CPU s: the CLI and everything it started (Prefect server, ffmpeg, espeak-ng), user + system. "
              "CLI start: process start to \"starting the local Prefect server\" (imports, project checks); "
              "server start: to the flow's first line; CLI end: the flow's last line to exit (server stop).", ""]
    for r in results["renders"]:
        lines += [f"## {r['label']}: tasks", "", "| task | s |", "|---|---:|"]
        lines += [f"| {t['task']} | {t['s']} |" for t in r["tasks"]]
        lines.append("")
        if r.get("changes"):
            lines += verdicts(r, results.get("chapters", 0))
            for where in ("delivery", "work"):
                c = r["changes"][where]
                lines.append(f"- {where} folder ({c['files']} files): rewritten {len(c['rewritten'])}"
                             f" {c['rewritten']}; bytes changed {len(c['changed'])}; added {c['added']}; "
                             f"removed {c['removed']}")
            lines.append("")
    if results.get("profile"):
        for key, title in (("ours_by_cumtime", "this repository's functions by cumulative time"),
                           ("all_by_tottime", "all functions by own time")):
            lines += [f"## cProfile of the unchanged re-render (CLI process, main thread): {title}", "",
                      "| function | calls | tottime s | cumtime s |", "|---|---:|---:|---:|"]
            lines += [f"| `{p['function']}` | {p['calls']} | {p['tottime_s']} | {p['cumtime_s']} |"
                      for p in results["profile"][key]]
            lines.append("")
    lines += results.get("notes", [])
    path_md.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="audio to aim at (160 words a minute)")
    ap.add_argument("--chapters", type=int, default=10)
    ap.add_argument("--work", default="/tmp/bench-rerender", help="the project is written to WORK/book")
    ap.add_argument("--edit-chapter", type=int, default=5, help="chapter whose paragraph the third render edits")
    ap.add_argument("--no-edit", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also run the unchanged re-render under cProfile")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--name", default="rerender")
    args = ap.parse_args()

    work = Path(args.work)
    project = make_project(work, args.minutes, args.chapters)
    words = len((project.parent / "manuscript.md").read_text().split())
    date = dt.date.today().isoformat()
    results = {"date": date, "command": "python bench/bench_rerender.py " + " ".join(sys.argv[1:]),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), no GPU, Python "
                          f"{platform.python_version()}",
               "project": f"{args.chapters} chapters, {words} words, draft engine, acx, mp3 + m4b, vtt, "
                          "ACX package with credits, listening off",
               "chapters": args.chapters, "renders": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{args.name}-{date}.json", out / f"{args.name}-{date}.md"

    def save(r: dict) -> None:
        results["renders"].append(r)
        print(f"{r['label']}: {r['wall_s']} s wall, {r['cpu_s']} CPU s, flow {r.get('flow_s')} s, "
              f"{r['takes_generated']} takes generated, reused {len(r['chapters_reused'])} chapters", flush=True)
        json_path.write_text(json.dumps(results, indent=2))
        report(results, md_path)

    first = render(project, "1 first render")
    results["audio_s"] = audio_seconds(project)
    results["project"] += f", {results['audio_s'] / 60:.1f} min of audio"
    save(first)
    state = snapshot(project.parent / "out"), snapshot(project.parent / ".dia-studio")
    second = render(project, "2 unchanged re-render")
    second["changes"], state = changes(project, state)
    save(second)
    if args.profile:
        prof = work / "rerender.prof"
        third = render(project, "2b unchanged re-render under cProfile", profile=prof)
        third["changes"], state = changes(project, state)
        results["profile"] = top_functions(prof)
        save(third)
    if not args.no_edit:
        chapter = edit_one_paragraph(project, args.edit_chapter)
        edited = render(project, f"3 one paragraph of {chapter} edited")
        edited["changes"], state = changes(project, state)
        edited["edited_chapter"] = chapter
        save(edited)
    print(md_path)


if __name__ == "__main__":
    main()
