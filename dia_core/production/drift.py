"""Drift report of a render: per voice and chapter, the chosen takes' similarity to the voice's
reference, speaking rate and speech level, with outliers named by chapter and segment id.

Written to ``<project>/.dia-studio/reports/``: ``qc-report.json``, ``qc-report.md`` and
``qc-report.png`` (matplotlib, Agg). An outlier is a take more than 3 robust deviations (median
absolute deviation x 1.4826) from its voice's median, or any turn below the voice similarity floor.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from statistics import median

from .. import atomic
from .jobs import Job
from .takes import Outcome

MEASURES = ("similarity", "words_per_minute", "speech_rms_db")


def _rows(job: Job, outcomes: dict[str, Outcome]) -> list[dict]:
    rows = []
    for ch in job.plan.chapters:
        for s in ch.segments:
            qc = outcomes[s.id].chosen.qc
            listen = qc.get("listen") or {}
            words = listen.get("words") or {}
            single = len({t.voice for t in s.turns}) == 1
            for t in listen.get("turns") or [{"voice": s.turns[0].voice, "similarity": None}] * single:
                rows.append({"chapter": ch.id, "segment": s.id, "voice": t["voice"], "similarity": t.get("similarity"),
                             "words_per_minute": words.get("words_per_minute") if single else None,
                             "speech_rms_db": qc["metrics"].get("speech_rms_db") if single else None})
    return rows


def _outliers(rows: list[dict], floor: float) -> list[dict]:
    found = []
    for voice in sorted({r["voice"] for r in rows}):
        mine = [r for r in rows if r["voice"] == voice]
        for m in MEASURES:
            vals = [r[m] for r in mine if r[m] is not None]
            if len(vals) < 3:
                continue
            mid = median(vals)
            mad = median(abs(v - mid) for v in vals) * 1.4826 or 1e-9
            for r in mine:
                if r[m] is not None and (abs(r[m] - mid) / mad > 3 or (m == "similarity" and r[m] < floor)):
                    found.append({"chapter": r["chapter"], "segment": r["segment"], "voice": voice, "measure": m,
                                  "value": r[m], "voice_median": round(mid, 4)})
    return found


def write_drift_report(job: Job, outcomes: dict[str, Outcome]) -> Path:
    rows = _rows(job, outcomes)
    summary = {}
    for voice in sorted({r["voice"] for r in rows}):
        for ch in dict.fromkeys(r["chapter"] for r in rows):
            sel = [r for r in rows if r["voice"] == voice and r["chapter"] == ch]
            if sel:
                summary.setdefault(voice, {})[ch] = {
                    m: (round(median(v), 4) if (v := [r[m] for r in sel if r[m] is not None]) else None) for m in MEASURES}
    outliers = _outliers(rows, job.project.qc.min_voice_similarity)
    out = job.project.work_dir / "reports"
    report = {"project": job.project.title, "listener": next(
        (o.chosen.qc.get("listen", {}).get("listener") for o in outcomes.values()), None),
        "per_voice_chapter": summary, "outliers": outliers, "takes": rows}
    png = out / "qc-report.png"
    try:   # the plot (seconds of matplotlib) is redrawn only when the rows it shows changed
        unchanged = png.is_file() and json.loads((out / "qc-report.json").read_text())["takes"] == \
            json.loads(json.dumps(rows))
    except (OSError, ValueError, KeyError, TypeError):
        unchanged = False
    atomic.write_json(out / "qc-report.json", report)
    md = [f"# Drift report: {job.project.title}", "", f"Listener: `{report['listener']}`", "",
          "| voice | chapter | similarity | words/min | speech dBFS |", "|---|---|---|---|---|"]
    for voice, chs in summary.items():
        for ch, v in chs.items():
            md.append(f"| {voice} | {ch} | {v['similarity']} | {v['words_per_minute']} | {v['speech_rms_db']} |")
    md += ["", f"Outliers: {len(outliers)}", ""] + [
        f"- {o['chapter']} segment {o['segment']} ({o['voice']}): {o['measure']} {o['value']} "
        f"(voice median {o['voice_median']})" for o in outliers]
    atomic.write_text(out / "qc-report.md", "\n".join(md) + "\n")
    if not unchanged:
        atomic.write_bytes(png, _plot(rows))
    return out / "qc-report.json"


def _plot(rows: list[dict]) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(MEASURES), 1, figsize=(9, 7), sharex=True)
    voices = sorted({r["voice"] for r in rows})
    for ax, m in zip(axes, MEASURES):
        for v in voices:
            pts = [(i, r[m]) for i, r in enumerate(rows) if r["voice"] == v and r[m] is not None]
            if pts:
                ax.plot(*zip(*pts), "o-", ms=3, label=v)
        ax.set_ylabel(m.replace("_", " "))
    labelled = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if labelled:   # with listening off only the level row has points
        labelled[0].legend(fontsize=7, ncol=min(4, len(voices)))
    axes[-1].set_xlabel("take (book order)")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
