"""Benchmark: Dia generation throughput, ours (fast path, several batch sizes) vs transformers, one run.

    GPU:   .venv/bin/python bench/bench_generate.py                      # 1.6B random bf16 weights
    CI:    .venv/bin/python bench/bench_generate.py --smoke --out /tmp/x  # CPU, tiny config, < 60 s

Weights are random (speed does not depend on their values); channel 0's EOS logit row is zeroed so
no stream stops early and every stream decodes exactly max_new_tokens - 1 rows. tokens/s counts
decoder rows (one 9-code frame = one token, as the reference's 192 tokens/s does) summed over the
batch, measured on a second run after a warm-up run with the same shapes (compile, CUDA graph
capture and autotuning excluded; the warm-up time is reported). Realtime factor = tokens/s / 86.13.
The CFG rows (2 decoder rows per stream) are included in every figure. Results go to
<out>/<gpu-slug>-<YYYY-MM-DD>.{json,md} (smoke: cpu-smoke-<date>) and the table is printed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import dia_core.generate as gen  # noqa: E402
from dia_core.config import DiaConfig  # noqa: E402
from dia_core.generate import delay_codes  # noqa: E402
from dia_core.model import DiaModel  # noqa: E402
from dia_core.params import FRAME_RATE  # noqa: E402
from dia_core.tokenizer import encode_batch, encode_text  # noqa: E402

WORDS = ("the lighthouse stood alone at the edge of the harbour and every night its lamp turned slowly over "
         "the dark water while the keeper wrote letters she never sent").split()


def texts_for(batch: int, nbytes: int, offset: int = 0) -> list[str]:
    """Distinct [S1]/[S2] texts of about nbytes bytes (varied by a few words, same text bucket)."""
    out = []
    for i in range(batch):
        words, k = [], i + offset
        while len(" ".join(words)) < nbytes - 12 - (i % 4) * 3:
            words.append(WORDS[k % len(WORDS)])
            k += 7
        out.append(f"[S{1 + i % 2}] " + " ".join(words) + ".")
    return out


def build_model(cfg: DiaConfig, device: str, dtype: torch.dtype) -> DiaModel:
    torch.manual_seed(0)
    with torch.device(device):
        model = DiaModel(cfg)
    model.to_device(device, dtype).eval()
    with torch.no_grad():
        model.decoder.logits_dense.weight[cfg.eos_id].zero_()  # channel 0's EOS logit: never the argmax
    return model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def ours_row(model, batch: int, new_tokens: int, text_bytes: int, compile, device: str) -> dict:
    texts, seeds = texts_for(batch, text_bytes), list(range(batch))
    kw = dict(max_new_tokens=new_tokens, compile=compile)
    gen.release_static(model)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    t0 = time.perf_counter()
    model.generate(texts, seeds, **kw)  # warm-up: compile, capture every cache bucket
    sync(device)
    warmup_s = time.perf_counter() - t0
    peak_reset(device)
    t0 = time.perf_counter()
    out = model.generate(texts, seeds, **kw)
    sync(device)
    elapsed = time.perf_counter() - t0
    rows = min(new_tokens, model.config.dec_max_positions) - 1  # decoder rows per stream (no EOS)
    assert all(g.hit_limit for g in out)
    tps = batch * rows / elapsed
    return dict(engine="ours", mode=str(compile), batch=batch, rows_per_stream=rows, seconds=elapsed,
                tokens_per_s=tps, per_stream_tokens_per_s=tps / batch, realtime_factor=tps / FRAME_RATE,
                warmup_s=warmup_s, peak_gib=peak_gib(device),
                graphs=len(model._static.graphs) if model._static is not None else 0)


def recompile_check(model, batch: int, new_tokens: int, text_bytes: int, compile) -> dict:
    """After the warm-up of this batch size: other texts (same text bucket) and shorter lengths."""
    from torch._dynamo.utils import counters

    static = model._static
    before = (counters["stats"]["unique_graphs"], static.captures if static else 0)
    lengths = [new_tokens - 100 * k for k in range(1, 4) if new_tokens - 100 * k >= 500] or [new_tokens]
    for k, n in enumerate(lengths):
        model.generate(texts_for(batch, text_bytes - 8 * (k + 1), offset=11 * (k + 1)), list(range(50, 50 + batch)),
                       max_new_tokens=n, compile=compile)
    same = model._static is static
    return dict(batch=batch, segment_lengths=lengths, new_dynamo_graphs=counters["stats"]["unique_graphs"] - before[0],
                new_cuda_graph_captures=(model._static.captures - before[1]) if same else None,
                static_state_rebuilt=not same)


def parity_row(model, batch: int, text_bytes: int, compile) -> dict:
    """Greedy codes of the fast path vs the eager path on the same batch (bf16 on GPU: kernels differ,
    so exact equality is measured, not assumed)."""
    texts, seeds = texts_for(batch, text_bytes), list(range(batch))
    a = model.generate(texts, seeds, max_new_tokens=500, temperature=0.0, compile=False)
    b = model.generate(texts, seeds, max_new_tokens=500, temperature=0.0, compile=compile)
    equal = sum(int(torch.equal(x.codes, y.codes)) for x, y in zip(a, b))
    first = []
    for x, y in zip(a, b):
        diff = (x.codes != y.codes).any(1).nonzero()
        first.append(int(diff[0]) if len(diff) else None)
    return dict(batch=batch, streams_identical=equal, streams=batch, first_differing_frame=first)


def hf_model_from(model: DiaModel, device: str, dtype: torch.dtype):
    from transformers import DiaConfig as HFDiaConfig, DiaForConditionalGeneration

    from tests.tiny_models import to_transformers_layout

    hf_cfg = HFDiaConfig.from_dict(model.config.to_hf_dict("transformers"))
    with torch.device(device):
        hf = DiaForConditionalGeneration(hf_cfg)
    hf.to(dtype).eval()
    sd = to_transformers_layout({k: v for k, v in model.state_dict().items()})
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not re.search(r"rotary|inv_freq", k)]
    if missing or unexpected:
        raise RuntimeError(f"transformers weights: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return hf


def hf_row(hf, cfg: DiaConfig, batch: int, new_tokens: int, text_bytes: int, device: str) -> dict:
    texts = texts_for(batch, text_bytes)
    text = encode_batch([encode_text(t) for t in texts]).to(device)
    prefill = delay_codes(torch.full((1, 9), cfg.bos_id), cfg.delay_pattern, cfg.bos_id, cfg.pad_id)
    prefill = prefill[None].repeat(batch, 1, 1).to(device)

    def run(n):
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            return hf.generate(input_ids=text, attention_mask=(text != 0).long(), decoder_input_ids=prefill,
                               decoder_attention_mask=torch.ones(prefill.shape[:2], dtype=torch.long, device=device),
                               do_sample=True, temperature=1.2, top_p=0.95, guidance_scale=3.0, top_k=45,
                               max_new_tokens=n)

    t0 = time.perf_counter()
    run(8)
    sync(device)
    warmup_s = time.perf_counter() - t0
    peak_reset(device)
    t0 = time.perf_counter()
    out = run(new_tokens)
    sync(device)
    elapsed = time.perf_counter() - t0
    # Rows after BOS in its output. With the processor prefill this includes the 15 delay rows it
    # forces; counting them is in the peer's favour (an upper bound on its decode steps).
    rows = int(out.shape[1]) - 1
    tps = batch * rows / elapsed
    return dict(engine="transformers", mode="generate (eager)", batch=batch, rows_per_stream=rows, seconds=elapsed,
                tokens_per_s=tps, per_stream_tokens_per_s=tps / batch, realtime_factor=tps / FRAME_RATE,
                warmup_s=warmup_s, peak_gib=peak_gib(device), graphs=0)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def markdown(result: dict) -> str:
    lines = [f"# Dia generation benchmark: {result['device']} ({result['date']})", ""]
    if result["smoke"]:
        lines += ["**SMOKE RUN: tiny config on CPU. These figures are NOT performance figures; they only show "
                  "that the benchmark runs.**", ""]
    lines += [f"Model: {result['model']}, dtype {result['dtype']}, torch {result['torch']}, "
              f"fast path mode `{result['compile']}`, text ~{result['text_bytes']} bytes per segment.", "",
              "| engine | mode | batch | rows/stream | s | tokens/s | per stream | x realtime | warm-up s | peak GiB |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "n/a"
        lines.append(f"| {r['engine']} | {r['mode']} | {r['batch']} | {r['rows_per_stream']} | {r['seconds']:.2f} | "
                     f"{r['tokens_per_s']:.1f} | {r['per_stream_tokens_per_s']:.1f} | {r['realtime_factor']:.2f} | "
                     f"{r['warmup_s']:.1f} | {peak} |")
    s = result.get("speedup_single_stream_vs_transformers")
    if s is not None:
        lines += ["", f"Single stream, ours / transformers: {s:.2f}x"]
    for rc in result.get("recompile_checks", []):
        lines.append(f"Recompilation after warm-up (batch {rc['batch']}, lengths {rc['segment_lengths']}): "
                     f"{rc['new_dynamo_graphs']} new dynamo graphs, {rc['new_cuda_graph_captures']} new CUDA graph "
                     f"captures, state rebuilt: {rc['static_state_rebuilt']}")
    for p in result.get("parity", []):
        lines.append(f"Greedy fast vs eager (batch {p['batch']}): {p['streams_identical']}/{p['streams']} streams "
                     f"identical; first differing frame per stream: {p['first_differing_frame']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny config, batch 1 and 4, few rows")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--batch-sizes", default=None, help="comma list (default 1,8,32,64; smoke 1,4)")
    ap.add_argument("--new-tokens", type=int, default=None, help="max_new_tokens per stream (default 1024)")
    ap.add_argument("--hf-new-tokens", type=int, default=None, help="rows for transformers (default 256)")
    ap.add_argument("--text-bytes", type=int, default=200)
    ap.add_argument("--compile", default=None, help="fast path mode: inductor (default on GPU), static, eager, ...")
    ap.add_argument("--no-transformers", action="store_true")
    args = ap.parse_args(argv)

    smoke = args.smoke
    device = "cpu" if smoke else "cuda"
    if not smoke and not torch.cuda.is_available():
        ap.error("no CUDA device: run with --smoke on CPU")
    dtype = torch.float32 if smoke else torch.bfloat16
    cfg = DiaConfig.tiny(dec_max_positions=128) if smoke else DiaConfig()
    batches = [int(b) for b in (args.batch_sizes or ("1,4" if smoke else "1,8,32,64")).split(",")]
    new_tokens = args.new_tokens or (500 if smoke else 1024)  # smoke: capped to 128 positions
    hf_tokens = args.hf_new_tokens or (64 if smoke else 256)
    compile = args.compile or ("static" if smoke else "inductor")
    compile = True if compile == "inductor" else compile
    warnings.filterwarnings("ignore", message=".*exceeds the decoder.*")
    if smoke:
        torch.set_num_threads(1)

    model = build_model(cfg, device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    result = dict(smoke=smoke, date=dt.date.today().isoformat(), device=device_name(device), torch=torch.__version__,
                  model=f"{'tiny' if smoke else 'Dia 1.6B'} random weights ({n_params / 1e6:.1f}M params)",
                  dtype=str(dtype).removeprefix("torch."), compile=str(compile), text_bytes=args.text_bytes,
                  new_tokens=new_tokens, rows=[], recompile_checks=[], parity=[])
    for b in batches:
        row = ours_row(model, b, new_tokens, args.text_bytes, compile, device)
        result["rows"].append(row)
        print(f"ours batch {b}: {row['tokens_per_s']:.1f} tokens/s", flush=True)
        if b == batches[0]:
            result["recompile_checks"].append(recompile_check(model, b, new_tokens, args.text_bytes, compile))
    result["parity"].append(parity_row(model, min(8, max(batches)), args.text_bytes, compile))
    gen.release_static(model)
    if not args.no_transformers:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        hf = hf_model_from(model, device, dtype)
        del model
        result["rows"].append(hf_row(hf, cfg, 1, hf_tokens, args.text_bytes, device))
        ours1 = [r for r in result["rows"] if r["engine"] == "ours" and r["batch"] == 1]
        if ours1:
            result["speedup_single_stream_vs_transformers"] = ours1[0]["tokens_per_s"] / result["rows"][-1]["tokens_per_s"]

    slug = "cpu-smoke" if smoke else re.sub(r"[^a-z0-9]+", "-", result["device"].lower()).strip("-")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{slug}-{result['date']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    stem.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
