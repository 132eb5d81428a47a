"""Benchmark: minutes of GPU time per hour of finished audio, end to end through the `produce` flow.

    GPU:  .venv/bin/python bench/bench_e2e.py                      # 60 min of audio, 1.6B random weights
    CI:   .venv/bin/python bench/bench_e2e.py --smoke --out /tmp/x  # CPU, tiny config, one chapter

The example audiobook (projects/short-audiobook: narrator + three characters, two reference voices,
one seed-only voice that is calibrated, lexicon, ACX profile, MP3 + M4B) is scaled to --minutes of
planned audio: each chapter's paragraphs are repeated, every copy ending in its own numbered
sentence, so no two segments are the same (identical segments would share one take). The real
`produce` flow renders it (Prefect tasks, voice prompts, length-sorted batches, DAC decode,
stitch, loudness, MP3 and M4B export, captions, manifests) from a full-size random-weight checkpoint
written to disk in the reference layout (loaded by the production loader) and a random DAC with
descript-audio-codec's 44.1 kHz architecture. Speed does not depend on weight values, but two
things do and are pinned here:
- Random weights never choose EOS the way Dia does (channel 0's EOS logit row is zeroed), so a
  bench-only engine wrapper caps every take at its planned length (1 + prompt frames +
  est_seconds x 86.13 + 15 rows). Real takes end by EOS near that length.
- QC regeneration is off (qc.max_attempts 1): noise fails QC, and a real book's retry rate is a
  property of the real model, not of the engine. Multiply by the real retry rate to extrapolate.
- Listening is off (qc.asr off, qc.voice_check false): random weights speak no words. Its cost per
  minute of audio is measured apart (bench/bench_listen.py); add it to extrapolate.
The GPU is held for the whole flow, so GPU time = the flow's wall time (model load, reported
apart, happens once per worker). Results go to <out>/e2e-<gpu-slug>-<date>.{json,md}.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from dia_core.production import jobs  # noqa: E402
from dia_core.production.options import RenderOptions  # noqa: E402
from bench_generate import device_name, results_slug  # noqa: E402  (bench/ is this script's folder)
from dia_core.dia.config import DiaConfig  # noqa: E402
from dia_core.params import FAST_PATH_MODES, FRAME_RATE, MAX_DELAY  # noqa: E402

EXAMPLE = ROOT / "projects" / "short-audiobook"


# ---- the scaled project ------------------------------------------------------------------------------

def scale_manuscript(text: str, copies: int) -> str:
    """Repeat each chapter's paragraphs ``copies`` times; copy k > 1 of a paragraph gets " Part k."."""
    chapters = re.split(r"(?m)^(?=# )", text)
    out = []
    for chapter in chapters:
        if not chapter.strip():
            continue
        heading, _, body = chapter.partition("\n")
        paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
        parts = [heading]
        for k in range(1, copies + 1):
            parts += [p if k == 1 else f"{p} Part {k}." for p in paragraphs]
        out.append("\n\n".join(parts))
    return "\n\n".join(out) + "\n"


def make_project(work: Path, minutes: float, chapters: list[int] | None = None) -> tuple[Path, int]:
    """Copy the example into work/book scaled to about ``minutes`` of planned audio (the whole book);
    with ``chapters``, the project's own `chapters:` selection makes those chapters the book (a
    --chapters render of a book would deliver it incomplete, without an M4B)."""
    from dia_core.script.planner import plan_project
    from dia_core.script.project import load_project

    book = work / "book"
    if book.exists():
        shutil.rmtree(book)
    shutil.copytree(EXAMPLE, book, ignore=shutil.ignore_patterns(".dia-studio"))
    manifest = yaml.safe_load((book / "project.yaml").read_text())
    manifest["qc"] = {"max_attempts": 1, "asr": "off", "voice_check": False}
    manifest.setdefault("delivery", {})["strict"] = False
    (book / "project.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    source = (EXAMPLE / manifest["manuscript"]).read_text()
    base_s = sum(c.est_seconds for c in plan_project(load_project(book / "project.yaml")).chapters)
    copies = max(1, math.ceil(minutes * 60 / base_s))
    (book / manifest["manuscript"]).write_text(scale_manuscript(source, copies))
    if chapters:
        manifest["chapters"] = ",".join(map(str, chapters))   # "1,3" (a YAML list fails to load today)
        (book / "project.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return book / "project.yaml", copies


# ---- weights -------------------------------------------------------------------------------------------

def write_checkpoint(directory: Path, config: DiaConfig, device: str) -> Path:
    """Random weights (the model's own init) saved like the released checkpoint: reference layout,
    config.json + model.safetensors, fp32. Channel 0's EOS logit row is zeroed (see the docstring)."""
    from safetensors.torch import save_file

    from dia_core.dia.model import DiaModel
    from tests.tiny_models import to_reference_layout

    if (directory / "model.safetensors").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with torch.device(device):
        model = DiaModel(config)
    with torch.no_grad():
        model.decoder.logits_dense.weight[config.eos_id].zero_()
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    del model
    (directory / "config.json").write_text(json.dumps(config.to_hf_dict("reference"), indent=2))
    tmp = directory / "model.safetensors.tmp"
    save_file(to_reference_layout(sd, config), str(tmp))
    tmp.rename(directory / "model.safetensors")
    return directory


def write_dac(path: Path, smoke: bool) -> Path:
    """A random DAC: descript-audio-codec's 44.1 kHz architecture (its defaults), or the tests' tiny one."""
    if path.is_file():
        return path
    if smoke:
        from tests.tiny_models import write_tiny_dac
        return write_tiny_dac(path)
    import dac

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    dac.DAC().save(str(path), package=False)
    return path


# ---- the engine wrapper ------------------------------------------------------------------------------------

class PlannedLengthEngine:
    """Bench only: caps each take at its planned length (random weights never end a take) and
    times the engine's calls. Everything else is the production DiaEngine."""

    def __init__(self, inner, est_seconds: dict[str, float], chars_per_second: float = 14.0):
        self.inner, self.est_seconds, self.cps = inner, est_seconds, chars_per_second
        for name in ("name", "version", "model_id", "checksum", "default_batch_size", "fast_path", "model", "device"):
            setattr(self, name, getattr(inner, name))
        self.start_s = self.collect_s = 0.0
        self.batches = self.takes = self.rows = 0

    def _rows(self, request, prompts) -> int:
        voices = [request.slots[s] for s in ("S1", "S2") if request.slots.get(s)]
        paths = [prompts[v].audio_path for v in voices if v in prompts and prompts[v].audio_path]
        prompt_frames = sum(int(self.inner.model.codec.encode_file(p).shape[0]) for p in paths)
        est = self.est_seconds.get(request.text, len(request.text) / self.cps)
        return max(500, min(3072, 1 + prompt_frames + math.ceil(est * FRAME_RATE) + MAX_DELAY))

    def start(self, requests, prompts):
        capped = [dataclasses.replace(r, sampling=r.sampling.replace(max_new_tokens=self._rows(r, prompts)))
                  for r in requests]
        t0 = time.perf_counter()
        pending = self.inner.start(capped, prompts)
        self.start_s += time.perf_counter() - t0
        self.batches += 1
        self.takes += len(requests)
        self.rows += sum(r.sampling.max_new_tokens for r in capped)
        return _TimedPending(pending, self)

    def generate(self, requests, prompts):
        return self.start(requests, prompts).result()


class _TimedPending:
    def __init__(self, pending, engine):
        self.pending, self.engine = pending, engine

    def result(self):
        t0 = time.perf_counter()
        takes = self.pending.result()
        self.engine.collect_s += time.perf_counter() - t0
        return takes


# ---- the run -------------------------------------------------------------------------------------------

def run(args) -> dict:
    smoke = args.smoke
    device = "cpu" if smoke else (args.device or "cuda")
    if not smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --smoke on CPU")
    if smoke:
        torch.set_num_threads(1)
    work = Path(args.work or tempfile.mkdtemp(prefix="dia-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    config = DiaConfig.tiny(dec_max_positions=3072) if smoke else DiaConfig()

    t0 = time.perf_counter()
    ckpt = write_checkpoint(work / ("ckpt-tiny" if smoke else "ckpt"), config, device)
    dac_path = write_dac(work / ("dac-tiny.pth" if smoke else "dac-44khz-random.pth"), smoke)
    weights_s = time.perf_counter() - t0
    chapters = [int(c) for c in args.chapters.split(",")] if args.chapters else None
    project_path, copies = make_project(work, args.minutes, chapters)
    mode = args.fast_path or ("off" if smoke else "static")
    options = RenderOptions(out_dir=str(work / "out"), model=str(ckpt), codec=str(dac_path),
                            store=str(work / "store"), device=device, batch_size=args.batch_size,
                            fast_path=mode)
    shutil.rmtree(work / "out", ignore_errors=True)
    shutil.rmtree(work / "store", ignore_errors=True)
    shutil.rmtree(project_path.parent / ".dia-studio", ignore_errors=True)
    job = jobs.open_job(project_path, options)
    est = {s.text: s.est_seconds for s in job.plan.segments}

    # Model load: once per worker process, reported apart from the flow.
    t0 = time.perf_counter()
    engine = jobs.load_engine(job.project, options)
    engine.model  # the engine builds its model lazily; load it here, inside the timing
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    wrapped = PlannedLengthEngine(engine, est)
    for key, value in list(jobs._ENGINES.items()):  # the flow's load_engine finds the wrapper
        if value is engine:
            jobs._ENGINES[key] = wrapped

    from prefect.client.orchestration import get_client

    from flows.produce import produce

    with get_client(sync_client=True) as client:  # start (or reach) the API before timing
        client.hello()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    state = produce(project=str(project_path), options=options, return_state=True)
    flow_s = time.perf_counter() - t0
    if not state.is_completed():
        raise SystemExit(f"produce flow did not complete: {state}")
    manifest = json.loads((Path(options.out_dir) / "book" / "manifest.json").read_text())
    audio_s = sum(c["duration_s"] for c in manifest["chapters"])
    planned_s = sum(est.values())
    return dict(
        smoke=smoke, date=dt.date.today().isoformat(), device=device_name(device), torch=torch.__version__,
        model=f"{'tiny' if smoke else 'Dia 1.6B'} random weights "
              f"({sum(p.numel() for p in engine.model.parameters()) / 1e6:.1f}M params), "
              f"dtype {str(engine.model.dtype).removeprefix('torch.')}",
        fast_path=mode, batch_size=args.batch_size or engine.default_batch_size, copies=copies,
        chapters=len(manifest["chapters"]), segments=len(job.plan.segments), planned_audio_s=planned_s,
        audio_s=audio_s, weights_written_s=weights_s, model_load_s=load_s, flow_s=flow_s,
        engine_start_s=wrapped.start_s, engine_collect_s=wrapped.collect_s,
        other_s=flow_s - wrapped.start_s - wrapped.collect_s, batches=wrapped.batches, takes=wrapped.takes,
        decoder_rows=wrapped.rows,
        gpu_min_per_audio_hour=(flow_s / 60) / (audio_s / 3600),
        gpu_min_per_audio_hour_incl_load=((flow_s + load_s) / 60) / (audio_s / 3600),
        peak_gib=torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None,
        work=str(work))


def markdown(r: dict) -> str:
    lines = [f"# End-to-end render benchmark: {r['device']} ({r['date']})", ""]
    if r["smoke"]:
        lines += ["**SMOKE RUN: tiny config on CPU. These figures are NOT performance figures; they only show "
                  "that the benchmark runs.**", ""]
    peak = f"{r['peak_gib']:.1f} GiB" if r["peak_gib"] is not None else "n/a"
    lines += [f"{r['model']}, torch {r['torch']}, fast path `{r['fast_path']}`, batch size {r['batch_size']}.",
              f"Project: projects/short-audiobook scaled x{r['copies']} ({r['chapters']} chapters, "
              f"{r['segments']} segments, {r['planned_audio_s'] / 60:.1f} min planned), QC retries off, "
              "takes capped at their planned length.", "",
              "| measure | value |", "|---|---:|",
              f"| finished audio (chapters) | {r['audio_s'] / 60:.2f} min |",
              f"| flow wall time (GPU held) | {r['flow_s']:.1f} s |",
              f"| - in engine.start (generation + queuing DAC) | {r['engine_start_s']:.1f} s |",
              f"| - in collecting decoded audio | {r['engine_collect_s']:.1f} s |",
              f"| - everything else (flow, voices, store, QC, stitch, loudness, export, M4B, manifests) | "
              f"{r['other_s']:.1f} s |",
              f"| batches / takes / decoder rows | {r['batches']} / {r['takes']} / {r['decoder_rows']} |",
              f"| model load (once per worker) | {r['model_load_s']:.1f} s |",
              f"| peak GPU memory | {peak} |",
              f"| **GPU minutes per hour of finished audio** | **{r['gpu_min_per_audio_hour']:.2f}** |",
              f"| same, counting the model load | {r['gpu_min_per_audio_hour_incl_load']:.2f} |"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny config, chapter 1 only, no repetition")
    ap.add_argument("--minutes", type=float, default=None, help="planned audio to render (default 60; smoke 0)")
    ap.add_argument("--chapters", default=None, help="comma list of chapters (default all; smoke 1)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 64 on GPU, 4 in smoke")
    ap.add_argument("--fast-path", choices=FAST_PATH_MODES, default=None,
                    help="Dia decode mode (default static on GPU, off in smoke)")
    ap.add_argument("--device", default=None, help="default cuda")
    ap.add_argument("--work", default=None, help="folder for weights, project, store and outputs (kept; "
                                                 "weights are reused by the next run)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    if args.minutes is None:
        args.minutes = 0 if args.smoke else 60
    if args.chapters is None and args.smoke:
        args.chapters = "1"
    if args.batch_size is None:
        args.batch_size = 4 if args.smoke else 64
    warnings.filterwarnings("ignore", message=".*exceeds the decoder.*")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

    result = run(args)
    slug = results_slug(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"e2e-{slug}-{result['date']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    stem.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
