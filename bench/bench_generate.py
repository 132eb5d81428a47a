"""Benchmark: Dia generation throughput, ours (fast path, several batch sizes) vs transformers, one run.

    GPU:   .venv/bin/python bench/bench_generate.py                      # 1.6B random bf16 weights
    CI:    .venv/bin/python bench/bench_generate.py --smoke --out /tmp/x  # CPU, tiny config, < 60 s
    CPU:   .venv/bin/python bench/bench_generate.py --cpu   # 1.6B fp32, ours vs transformers, batch 1 and 4

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
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import dia_core.dia.generate as gen  # noqa: E402
from dia_core.dia.codec import DiaCodec  # noqa: E402
from dia_core.dia.config import DiaConfig  # noqa: E402
from dia_core.dia.generate import delay_codes  # noqa: E402
from dia_core.dia.model import DiaModel  # noqa: E402
from dia_core.params import FRAME_RATE, SamplingParams  # noqa: E402
from dia_core.dia.tokenizer import encode_batch, encode_text  # noqa: E402

# The transformers row's settings (hf_row), so both engines sample alike; speed does not depend on them.
SAMPLING = SamplingParams(temperature=1.2, top_p=0.95, cfg_scale=3.0, cfg_filter_top_k=45)
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


def ours_row(model, batch: int, new_tokens: int, text_bytes: int, fast_path: str, device: str) -> dict:
    texts, seeds = texts_for(batch, text_bytes), list(range(batch))
    kw = dict(sampling=SAMPLING.replace(max_new_tokens=new_tokens), fast_path=fast_path)
    gen.release_static(model)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    t0 = time.perf_counter()
    gen.generate(model, texts, seeds, **kw)  # warm-up: compile, capture every cache bucket
    sync(device)
    warmup_s = time.perf_counter() - t0
    peak_reset(device)
    t0 = time.perf_counter()
    out = gen.generate(model, texts, seeds, **kw)
    sync(device)
    elapsed = time.perf_counter() - t0
    rows = min(new_tokens, model.config.dec_max_positions) - 1  # decoder rows per stream (no EOS)
    assert all(g.hit_limit for g in out)
    tps = batch * rows / elapsed
    return dict(engine="ours", mode=fast_path, batch=batch, rows_per_stream=rows, seconds=elapsed,
                tokens_per_s=tps, per_stream_tokens_per_s=tps / batch, realtime_factor=tps / FRAME_RATE,
                warmup_s=warmup_s, peak_gib=peak_gib(device),
                graphs=len(model._static.graphs) if model._static is not None else 0)


def recompile_check(model, batch: int, new_tokens: int, text_bytes: int, fast_path: str) -> dict:
    """After the warm-up of this batch size: other texts (same text bucket) and shorter lengths."""
    from torch._dynamo.utils import counters  # dynamo internals: only this check reads them

    static = model._static
    before = (counters["stats"]["unique_graphs"], static.captures if static else 0)
    lengths = [new_tokens - 100 * k for k in range(1, 4) if new_tokens - 100 * k >= 500] or [new_tokens]
    for k, n in enumerate(lengths):
        gen.generate(model, texts_for(batch, text_bytes - 8 * (k + 1), offset=11 * (k + 1)),
                     list(range(50, 50 + batch)), sampling=SAMPLING.replace(max_new_tokens=n), fast_path=fast_path)
    same = model._static is static
    return dict(batch=batch, segment_lengths=lengths, new_dynamo_graphs=counters["stats"]["unique_graphs"] - before[0],
                new_cuda_graph_captures=(model._static.captures - before[1]) if same else None,
                static_state_rebuilt=not same)


def parity_row(model, batch: int, text_bytes: int, fast_path: str) -> dict:
    """Greedy codes of the fast path vs the eager path on the same batch (bf16 on GPU: kernels differ,
    so exact equality is measured, not assumed)."""
    texts, seeds = texts_for(batch, text_bytes), list(range(batch))
    greedy = SAMPLING.replace(max_new_tokens=500, temperature=0.0)
    a = gen.generate(model, texts, seeds, sampling=greedy, fast_path="off")
    b = gen.generate(model, texts, seeds, sampling=greedy, fast_path=fast_path)
    equal = sum(int(torch.equal(x.codes, y.codes)) for x, y in zip(a, b))
    first = []
    for x, y in zip(a, b):
        diff = (x.codes != y.codes).any(1).nonzero()
        first.append(int(diff[0]) if len(diff) else None)
    return dict(batch=batch, streams_identical=equal, streams=batch, first_differing_frame=first)


def dac_overlap_row(model, batch: int, new_tokens: int, text_bytes: int, fast_path: str, device: str) -> dict:
    """DAC decode of a batch's codes, and two batches run back to back: serial (generate, decode,
    generate, decode) vs pipelined as the render engine runs them (batch 1's decode queued on the
    codec's side stream while batch 2 generates). On a GPU the pipelined run should approach
    2 x generate + 1 x decode; on CPU both are serial."""
    texts = [texts_for(batch, text_bytes), texts_for(batch, text_bytes, offset=5)]
    kw = dict(sampling=SAMPLING.replace(max_new_tokens=new_tokens), fast_path=fast_path)
    codec = model.codec
    gen.generate(model, texts[0], list(range(batch)), **kw)  # warm (graphs of this bucket)
    sync(device)
    t0 = time.perf_counter()
    codes = gen.generate_codes(model, texts[0], list(range(batch)), **kw)
    sync(device)
    gen_s = time.perf_counter() - t0
    codec.decode_batch(codes[:1])  # warm the codec
    t0 = time.perf_counter()
    audio = codec.decode_batch(codes)
    sync(device)
    dec_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(2):
        codec.decode_batch(gen.generate_codes(model, texts[i], list(range(batch)), **kw))
    sync(device)
    serial_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pending = codec.start_decode(gen.generate_codes(model, texts[0], list(range(batch)), **kw))
    second = gen.generate_codes(model, texts[1], list(range(batch)), **kw)
    pending.result()
    codec.start_decode(second).result()
    sync(device)
    pipelined_s = time.perf_counter() - t0
    audio_s = sum(len(a) for a in audio) / 44100
    return dict(batch=batch, generate_s=gen_s, dac_decode_s=dec_s, audio_s=audio_s,
                dac_x_realtime=audio_s / dec_s, two_batches_serial_s=serial_s, two_batches_pipelined_s=pipelined_s)


def hf_model_from(model: DiaModel, device: str, dtype: torch.dtype, share: bool = False):
    """transformers' DiaForConditionalGeneration with our model's weights. ``share``: its parameters
    ARE our model's tensors (renamed, assigned, never copied; built without weight init), so the two
    engines hold one copy of the weights (6.4 GB at 1.6B fp32); our RMSNorm weights are fp32 already."""
    # The peer and the tests' layout writer: only this measurement needs them (--no-transformers).
    from transformers import DiaConfig as HFDiaConfig, DiaForConditionalGeneration
    from transformers.initialization import no_init_weights

    from tests.tiny_models import to_transformers_layout

    hf_cfg = HFDiaConfig.from_dict(model.config.to_hf_dict("transformers"))
    with torch.device(device), (no_init_weights() if share else _nothing()):
        hf = DiaForConditionalGeneration(hf_cfg)
    if not share:
        hf.to(dtype)
    hf.eval()
    sd = to_transformers_layout({k: v for k, v in model.state_dict().items()})
    missing, unexpected = hf.load_state_dict(sd, strict=False, assign=share)
    missing = [k for k in missing if not re.search(r"rotary|inv_freq", k)]
    if missing or unexpected:
        raise RuntimeError(f"transformers weights: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return hf


def _nothing():
    import contextlib
    return contextlib.nullcontext()


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


def load_dac(smoke: bool, device: str):
    """A random DAC with descript-audio-codec's 44.1 kHz architecture (tiny in smoke mode)."""
    if smoke:
        from tests.tiny_models import write_tiny_dac  # the tests' tiny DAC, smoke mode only
        return DiaCodec.load(write_tiny_dac(Path(tempfile.mkdtemp()) / "dac.pth"), device=device)
    import dac  # descript-audio-codec: heavy, only with --dac

    torch.manual_seed(0)
    return DiaCodec(dac.DAC().to(device), checksum="random")


def results_slug(result: dict) -> str:
    """Results file names: the GPU's name (e.g. nvidia-h100-80gb-hbm3), or cpu-smoke."""
    return "cpu-smoke" if result["smoke"] else re.sub(r"[^a-z0-9]+", "-", result["device"].lower()).strip("-")


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
              f"fast path mode `{result['fast_path']}`, text ~{result['text_bytes']} bytes per segment.", "",
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
    for d in result.get("dac", []):
        lines.append(f"DAC decode (batch {d['batch']}): {d['audio_s']:.1f} s of audio in {d['dac_decode_s']:.2f} s "
                     f"({d['dac_x_realtime']:.0f}x realtime); two batches generate+decode: serial "
                     f"{d['two_batches_serial_s']:.2f} s, pipelined {d['two_batches_pipelined_s']:.2f} s "
                     f"(one generate: {d['generate_s']:.2f} s)")
    for e in result.get("errors", []):
        lines.append(f"FAILED: {e}")
    if not result.get("complete", True):
        lines += ["", "**INCOMPLETE: the run stopped before every measurement was taken.**"]
    for p in result.get("parity", []):
        lines.append(f"Greedy fast vs eager (batch {p['batch']}): {p['streams_identical']}/{p['streams']} streams "
                     f"identical; first differing frame per stream: {p['first_differing_frame']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny config, batch 1 and 4, few rows")
    ap.add_argument("--cpu", action="store_true",
                    help="side by side on CPU at full Dia-1.6B size (random fp32 weights): ours vs transformers "
                         "on the same weights and prompts, batch 1 and 4, --new-tokens decode steps (default 24)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--batch-sizes", default=None, help="comma list (default 1,8,32,64; smoke 1,4)")
    ap.add_argument("--new-tokens", type=int, default=None, help="max_new_tokens per stream (default 1024)")
    ap.add_argument("--hf-new-tokens", type=int, default=None, help="rows for transformers (default 256)")
    ap.add_argument("--text-bytes", type=int, default=200)
    ap.add_argument("--fast-path", default=None, help="fast path mode: static (default), inductor, or the "
                                                      "test backends aot_eager/eager")
    ap.add_argument("--no-transformers", action="store_true")
    ap.add_argument("--no-dac", dest="dac", action="store_false", help="skip the DAC decode / overlap measurement")
    ap.add_argument("--dac-batch", type=int, default=32, help="batch size of the DAC / overlap measurement")
    args = ap.parse_args(argv)

    smoke = args.smoke
    if args.cpu:
        return side_by_side_cpu(args)
    device = "cpu" if smoke else "cuda"
    if not smoke and not torch.cuda.is_available():
        ap.error("no CUDA device: run with --smoke (or --cpu) on CPU")
    dtype = torch.float32 if smoke else torch.bfloat16
    cfg = DiaConfig.tiny(dec_max_positions=128) if smoke else DiaConfig()
    batches = [int(b) for b in (args.batch_sizes or ("1,4" if smoke else "1,8,32,64")).split(",")]
    new_tokens = args.new_tokens or (500 if smoke else 1024)  # smoke: capped to 128 positions
    hf_tokens = args.hf_new_tokens or (64 if smoke else 256)
    fast_path = args.fast_path or "static"  # inductor: a second run (its compiles can take minutes per bucket)
    warnings.filterwarnings("ignore", message=".*exceeds the decoder.*")
    if smoke:
        torch.set_num_threads(1)

    model = build_model(cfg, device, dtype)
    if args.dac:
        model.codec = load_dac(smoke, device)
    n_params = sum(p.numel() for p in model.parameters())
    result = dict(smoke=smoke, date=dt.date.today().isoformat(), device=device_name(device), torch=torch.__version__,
                  model=f"{'tiny' if smoke else 'Dia 1.6B'} random weights ({n_params / 1e6:.1f}M params)",
                  dtype=str(dtype).removeprefix("torch."), fast_path=fast_path, text_bytes=args.text_bytes,
                  new_tokens=new_tokens, rows=[], recompile_checks=[], parity=[], dac=[], errors=[],
                  complete=False)
    slug = results_slug(result)
    mode = "" if smoke else "-" + fast_path
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{slug}-{result['date']}{mode}"

    def save() -> None:  # after every measurement: a run cut off by a time limit keeps what it measured
        hf_rows = [r for r in result["rows"] if r["engine"] == "transformers"]
        ours1 = [r for r in result["rows"] if r["engine"] == "ours" and r["batch"] == 1]
        if hf_rows and ours1:
            result["speedup_single_stream_vs_transformers"] = ours1[0]["tokens_per_s"] / hf_rows[0]["tokens_per_s"]
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(result))

    def measure(what: str, fn, into: str | None = None):
        try:
            value = fn()
        except Exception as e:  # e.g. out of memory at the largest batch: record it, go on
            result["errors"].append(f"{what}: {type(e).__name__}: {str(e)[:300]}")
            print(f"{what} failed: {type(e).__name__}: {e}", flush=True)
            if device.startswith("cuda"):
                gen.release_static(model)
                torch.cuda.empty_cache()
            value = None
        if value is not None and into:
            result[into].append(value)
        save()
        return value

    # The peer first, so a run cut off by a time limit still has the comparison.
    if not args.no_transformers:
        hf = measure("transformers weights", lambda: hf_model_from(model, device, dtype))
        if hf is not None:
            measure("transformers", lambda: hf_row(hf, cfg, 1, hf_tokens, args.text_bytes, device), "rows")
            del hf
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    for b in batches:
        row = measure(f"ours batch {b}", lambda: ours_row(model, b, new_tokens, args.text_bytes, fast_path, device),
                      "rows")
        if row:
            print(f"ours batch {b}: {row['tokens_per_s']:.1f} tokens/s", flush=True)
        if b == batches[0]:
            measure("recompile check", lambda: recompile_check(model, b, new_tokens, args.text_bytes, fast_path),
                    "recompile_checks")
    measure("parity", lambda: parity_row(model, min(8, max(batches)), args.text_bytes, fast_path), "parity")
    if args.dac:
        b = min(args.dac_batch, max(batches))
        measure("dac", lambda: dac_overlap_row(model, b, new_tokens, args.text_bytes, fast_path, device), "dac")
    gen.release_static(model)
    result["complete"] = True
    save()
    print(markdown(result))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


def side_by_side_cpu(args) -> int:
    """--cpu: both engines on one copy of full-size random fp32 weights, same prompts, same number of
    decode steps with CFG (each step runs 2 x batch decoder rows), batch 1 and 4. Ours runs in the
    render's CPU mode (eager, fast path off, as production uses on CPU unless told otherwise)."""
    device, dtype = "cpu", torch.float32
    steps = args.new_tokens or 24
    batches = [int(b) for b in (args.batch_sizes or "1,4").split(",")]
    fast_path = args.fast_path or "off"
    warnings.filterwarnings("ignore", message=".*exceeds the decoder.*")
    cfg = DiaConfig()
    t0 = time.perf_counter()
    model = build_model(cfg, device, dtype)
    build_s = time.perf_counter() - t0
    hf = hf_model_from(model, device, dtype, share=True)
    shared = {p.data_ptr() for p in hf.parameters()} & {p.data_ptr() for p in model.parameters()}
    n_params = sum(p.numel() for p in model.parameters())
    result = dict(smoke=False, date=dt.date.today().isoformat(), device=device_name(device), torch=torch.__version__,
                  model=f"Dia 1.6B random weights ({n_params / 1e6:.1f}M params)", dtype="float32",
                  fast_path=fast_path, text_bytes=args.text_bytes, new_tokens=steps + 1, rows=[], errors=[],
                  build_s=build_s, shared_weight_tensors=len(shared), complete=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"generate-cpu-{result['date']}"
    for b in batches:
        # ours: max_new_tokens = steps + 1 gives `steps` decode rows per stream (BOS counts as one);
        # transformers: max_new_tokens = steps rows after its BOS row.
        for name, fn in (("ours", lambda: ours_row(model, b, steps + 1, args.text_bytes, fast_path, device)),
                         ("transformers", lambda: hf_row(hf, cfg, b, steps, args.text_bytes, device))):
            try:
                row = fn()
            except Exception as e:
                result["errors"].append(f"{name} batch {b}: {type(e).__name__}: {str(e)[:300]}")
                continue
            result["rows"].append(row)
            print(f"{name} batch {b}: {row['rows_per_stream']} rows/stream in {row['seconds']:.1f} s, "
                  f"{row['tokens_per_s']:.2f} tokens/s", flush=True)
            stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    ratios = {}
    for b in batches:
        by = {r["engine"]: r for r in result["rows"] if r["batch"] == b}
        if len(by) == 2:
            ratios[str(b)] = by["ours"]["tokens_per_s"] / by["transformers"]["tokens_per_s"]
    result["ratio_ours_to_transformers"] = ratios
    result["complete"] = not result["errors"]
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result) + "\n" + "\n".join(
        f"Batch {b}: ours / transformers = {r:.2f}x tokens/s" for b, r in ratios.items()) + "\n"
    print(md)
    print(f"wrote {stem}.json (the .md is written by hand from it, with the command and the machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
