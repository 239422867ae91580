"""One GPU's share of a trial's training, side by side in one run: eager, torch.compile and compile + CUDA
graphs, with fp32 and bf16 parameters: ms/step, tokens/s, peak memory, MFU, the loss curve against eager; and
the trial's start-up (launch -> first step) with a cold and a warm compile cache.

    python benchmarks/gpu_trial.py --startup                 # `clowncar` preset, random tokens, 20 steps
    python benchmarks/gpu_trial.py --modes default,reduce-overhead --dtypes fp32
    python benchmarks/gpu_trial.py --shards /data/datasets/fineweb10B_sp1024
    python benchmarks/gpu_trial.py --preset tiny-cpu --device cpu --steps 3 --modes eager   # CPU, same path

Each variant (a compile mode `--modes`: eager or a `train.compile_mode`, times a `model.param_dtype`
`--dtypes`) builds the model from the same seed and trains it on the same batches as the worker trains it:
bf16 autocast on CUDA, the worker's optimizers (Muon + AdamW) over the groups the config trains (`untrained`),
the worker's compile plan (`clowncar.worker.compiled`: CUDA-graph steps marked per micro-batch, first
gradients cloned out of the graph pool). One step is `--accum` micro-batches of the per-GPU micro-batch of the
config on 8 GPUs (train_batch_tokens / (train_seq_len x grad_accum) tokens) followed by the optimizer step;
every step fires the crawler loops (a C-step) unless `--n-step`. A variant that fails is reported with its
error; the others still run. `vs compile` is the variant's ms/step over the plain-compile ms/step at the same
dtype (the issue's bar for CUDA graphs: <= 0.85); `loss vs eager` the largest relative difference of its
per-step losses from eager's at the same dtype, over the warm-up and timed steps. `--startup` adds
benchmarks/bench_startup.py's three trials (eager, cold cache, warm cache) of the same preset at one rank's
share of an 8-GPU batch, compiled in the fastest mode asked for.

FLOPs per trained token, forward + backward:

    6 x N_used  +  12 x T x sum(d_attn over attention calls)

N_used counts the matmul parameters one token passes through in a forward pass: every nn.Linear weight times
the number of times it runs (measured with forward hooks, so a shared crawler block that runs `crawler_loops`
times counts that many times: crawler loops are effective depth), plus the tied output head (vocab x width).
Embedding tables are looked up, not multiplied, and do not count. A multiply-add is 2 FLOPs and the backward
pass costs twice the forward (gradients of inputs and of weights): 2 x 3 = 6. Attention adds Q K^T and A V,
2 x 2 x T x d_attn per token and call in the forward, times 3: 12 T d_attn, with d_attn = heads x head dim and
the calls counted by hooks (flat layers + crawler layers x loops); the full T x T is counted, as PaLM's MFU
and PyTorch's FlopCounterMode do, not halved for the causal mask. Not counted: norms, rotary, softmax, other
elementwise work, DeltaNet's chunk products and the optimizer. MFU = FLOPs/token x tokens/s / the device's
dense bf16 peak (H100 SXM and H200: 989 TFLOP/s; `--peak-tflops` for other devices).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benchmarks"):  # clowncar, and bench_startup for --startup
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "H800": 989.0, "GH200": 989.0,
                    "A100": 312.0, "L40S": 362.0}


@dataclass
class Census:
    """Per-token matmul work of one forward pass, measured with hooks."""
    n_used: int            # matmul parameters a token passes through (linears x calls + tied head)
    attn_calls: int        # attention layer applications per forward (effective attention depth)
    attn_dim_sum: int      # sum of heads x head_dim over those calls

    def flops_per_token(self, seq_len: int) -> float:
        return 6.0 * self.n_used + 12.0 * seq_len * self.attn_dim_sum


def kernel_report() -> dict[str, str]:
    """Version of each GPU kernel package, or why it is missing. Never raises."""
    out: dict[str, str] = {}
    for label, module in (("flash-attn", "flash_attn"), ("flash-linear-attention", "fla"),
                          ("fla delta-rule kernel", "fla.ops.delta_rule")):
        try:
            mod = importlib.import_module(module)
            out[label] = f"ok {getattr(mod, '__version__', '')}".strip()
        except Exception as exc:  # ImportError, or a CUDA/Triton error raised while importing
            out[label] = f"missing ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return out


def matmul_census(model: nn.Module, seq_len: int = 64, crawl: bool = True) -> Census:
    """Run one forward of `seq_len` random tokens on a CPU copy of the model and count per-token matmul work."""
    from clowncar.model.layers import CausalSelfAttention

    probe = _cpu_copy(model)
    totals = {"linear": 0.0, "calls": 0, "attn": 0}
    tokens = seq_len

    def on_linear(mod: nn.Linear, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
        rows = inputs[0].numel() // mod.in_features
        totals["linear"] += mod.in_features * mod.out_features * rows / tokens

    def on_attention(mod: CausalSelfAttention, _in: Any, _out: Any) -> None:
        totals["calls"] += 1
        totals["attn"] += mod.num_heads * mod.head_dim

    hooks = [m.register_forward_hook(on_linear) for m in probe.modules() if isinstance(m, nn.Linear)]
    hooks += [m.register_forward_hook(on_attention) for m in probe.modules() if isinstance(m, CausalSelfAttention)]
    vocab = probe.tok_emb.weight.shape[0]
    with torch.no_grad():
        probe(torch.randint(0, vocab, (1, seq_len)), crawl=crawl)
    for h in hooks:
        h.remove()
    head = probe.tok_emb.weight.numel()  # tied output head: logits = x @ tok_emb.weight^T
    return Census(round(totals["linear"]) + head, totals["calls"], totals["attn"])


def _cpu_copy(model: nn.Module) -> nn.Module:
    import copy
    return copy.deepcopy(model).to("cpu").float()


def make_optimizers(model: nn.Module, cfg: Any, device: torch.device) -> tuple[list[torch.optim.Optimizer], str]:
    from clowncar.model import param_groups, untrained

    try:
        from clowncar.worker.optim import build_optimizers  # the worker's Muon + AdamW, when installed
    except ImportError:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        return [opt], "AdamW (clowncar.worker not installed: no Muon Newton-Schulz cost in these figures)"
    # The groups the config trains: the seed presets keep their flow instructions out of every optimizer.
    return (build_optimizers(param_groups(model, untrained(cfg)), cfg.train, device),
            "Muon + AdamW (clowncar.worker.optim)")


def batch_source(args: argparse.Namespace, vocab: int, seqs: int, seq_len: int, device: torch.device):
    """A function returning (x, y) for one micro-batch: real shard tokens when --shards, else random tokens."""
    n = seqs * seq_len + 1
    if args.shards:
        from clowncar.data.shards import list_shards
        from clowncar.data.stream import TokenStream

        files = list_shards(Path(args.shards), args.train_glob)
        stream = TokenStream(files)

        def real() -> tuple[torch.Tensor, torch.Tensor]:
            buf = torch.from_numpy(stream.take(n).astype("int64")).to(device, non_blocking=True)
            return buf[:-1].view(seqs, seq_len), buf[1:].view(seqs, seq_len)
        return real
    gen = torch.Generator(device=device).manual_seed(1337)

    def rand() -> tuple[torch.Tensor, torch.Tensor]:
        buf = torch.randint(0, vocab, (n,), device=device, generator=gen)
        return buf[:-1].view(seqs, seq_len), buf[1:].view(seqs, seq_len)
    return rand


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():  # "H100 PCIe" is checked before "H100"
        if key in name:
            return value
    return None



def variant_config(args: argparse.Namespace, mode: str, dtype: str) -> Any:
    from clowncar.config_load import load_config

    compile_sets = ["train.compile=false"] if mode == "eager" else ["train.compile=true",
                                                                     f"train.compile_mode={mode}"]
    return load_config(preset=args.preset, overrides=[*args.set, f"model.param_dtype={dtype}", *compile_sets])


def run_variant(args: argparse.Namespace, mode: str, dtype: str, device: torch.device, census: Census
                ) -> dict[str, Any]:
    """Train `--warmup` + `--steps` steps of one variant; its figures (no exception handling here)."""
    from torch._dynamo.utils import counters

    from clowncar.model import build_model
    from clowncar.worker.compiled import compile_plan, keep_grads_out_of_graph_pool

    cfg = variant_config(args, mode, dtype)
    t = cfg.train
    seq_len = t.train_seq_len
    seqs = args.micro_batch or max(1, t.train_batch_tokens // (seq_len * t.grad_accum))
    torch._dynamo.reset()  # also drops the CUDA graph trees of the variant before
    gc.collect()  # the previous variant's model and gradients (gradient hooks make reference cycles)
    counters.clear()
    torch.manual_seed(t.seed)
    model = build_model(cfg).to(device)
    optimizers, opt_label = make_optimizers(model, cfg, device)
    plan = compile_plan(t, device)
    fwd = plan.compile(model)
    if plan.cuda_graphs:
        keep_grads_out_of_graph_pool(model)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
           else torch.autocast("cpu", enabled=False))
    next_batch = batch_source(args, cfg.model.vocab_size, seqs, seq_len, device)

    def step() -> float:
        loss_sum = torch.zeros((), device=device)
        for _ in range(args.accum):
            x, y = next_batch()
            plan.begin_step()
            with amp:
                loss = fwd(x, y, crawl=not args.n_step)
            (loss / args.accum).backward()
            loss_sum += loss.detach()  # no host sync between micro-batches, as in the worker
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return float(loss_sum) / args.accum  # one sync per step: the step's time is complete

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    losses = [step() for _ in range(args.warmup)]  # compiling, autotuning, CUDA graph recording happen here
    sync()
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        s0 = time.perf_counter()
        losses.append(step())
        sync()
        times.append(time.perf_counter() - s0)
    step_s = statistics.median(times)
    tokens_per_step = args.accum * seqs * seq_len
    tok_s = tokens_per_step / step_s
    flops_tok = census.flops_per_token(seq_len)
    peak = peak_tflops(device, args.peak_tflops)
    return {
        "mode": mode, "param_dtype": dtype, "compiled_as": plan.label, "optimizer": opt_label,
        "cudagraph_skips": int(counters["inductor"]["cudagraph_skips"]), "seq_len": seq_len,
        "micro_batch_seqs": seqs, "accum": args.accum, "warmup_steps": args.warmup, "warmup_s": warmup_s,
        "steps": args.steps, "step_ms_median": step_s * 1e3, "step_ms_min": min(times) * 1e3,
        "step_ms_max": max(times) * 1e3, "tokens_per_step": tokens_per_step, "tokens_per_s": tok_s,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "flops_per_token": flops_tok, "model_tflops_per_s": flops_tok * tok_s / 1e12, "peak_tflops": peak,
        "mfu": flops_tok * tok_s / (peak * 1e12) if peak else None, "losses": losses,
        "final_loss": losses[-1],
    }


def compare(variants: list[dict[str, Any]]) -> None:
    """Add `vs_compile` (ms/step over plain compile's) and `loss_vs_eager` (largest relative loss difference
    from eager's, step by step) to every variant that ran, against the variant of the same dtype."""
    ok = {(v["mode"], v["param_dtype"]): v for v in variants if "error" not in v}
    for v in ok.values():
        plain, eager = ok.get(("default", v["param_dtype"])), ok.get(("eager", v["param_dtype"]))
        v["vs_compile"] = v["step_ms_median"] / plain["step_ms_median"] if plain else None
        pairs = zip(v["losses"], eager["losses"], strict=True) if eager else None
        v["loss_vs_eager"] = max(abs(a - b) / abs(b) for a, b in pairs) if pairs else None


def run(args: argparse.Namespace, progress: Any = print) -> dict[str, Any]:
    from clowncar.model import build_model, resolve_model_dim

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = variant_config(args, "eager", "fp32")
    model = build_model(cfg)
    census = matmul_census(model, crawl=not args.n_step)
    out: dict[str, Any] = {
        "preset": args.preset, "overrides": list(args.set), "device": _device_name(device),
        "torch": torch.__version__, "kernels": kernel_report(), "crawl": not args.n_step,
        "data": f"shards {args.shards}" if args.shards else "random tokens", "census": asdict(census),
        "params": sum(p.numel() for p in model.parameters()), "model_dim": resolve_model_dim(cfg.model),
        "variants": [],
    }
    for dtype in args.dtypes:
        for mode in args.modes:
            try:
                v = run_variant(args, mode, dtype, device, census)
            except Exception as exc:  # one failing variant (a compile error, OOM) must not lose the others
                v = {"mode": mode, "param_dtype": dtype, "error": f"{type(exc).__name__}: {_first_line(exc)}"}
            out["variants"].append(v)
            progress(_variant_line(v))
            _write_json(args.json, out)
    compare(out["variants"])
    if args.startup:
        out["startup"] = startup_runs(args, cfg)
        _write_json(args.json, out)
    return out


def startup_runs(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    """Three real trials through the trainable's launch path (benchmarks/bench_startup.py), at one rank's
    share of an 8-GPU batch, compiled in the fastest mode asked for."""
    import tempfile

    from bench_startup import measure

    t = cfg.train
    fastest = [m for m in args.modes if m != "eager"][-1:] or ["default"]
    sets = [*args.set, f"train.train_batch_tokens={max(t.train_seq_len, t.train_batch_tokens // 8)}",
            f"train.grad_accum={max(1, t.grad_accum // 8)}", f"train.compile_mode={fastest[0]}",
            f"eval.max_tokens={8 * t.train_seq_len}"]  # bench_startup makes it a short trial
    with tempfile.TemporaryDirectory(prefix="gpu_trial_startup_") as tmp:
        runs = measure(args.preset, sets, args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
                       Path(tmp), args.startup_cpus)
    return {name: {"startup_seconds": r["result"]["startup_seconds"], "startup": r["result"]["startup"],
                   "wall_s": r["wall_s"], "user_s": r["user_s"], "sys_s": r["sys_s"]}
            for name, r in runs.items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


def _write_json(path: str | None, data: dict[str, Any]) -> None:
    """Written after every variant, so a run cut short by a time limit keeps what it measured."""
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _label(v: dict[str, Any]) -> str:
    mode = {"eager": "eager", "default": "compile", "reduce-overhead": "compile + CUDA graphs"}.get(v["mode"],
                                                                                                   v["mode"])
    return f"{mode}, {v['param_dtype']}"


def _variant_line(v: dict[str, Any]) -> str:
    if "error" in v:
        return f"  {_label(v)}: failed: {v['error']}"
    return (f"  {_label(v)}: {v['step_ms_median']:.1f} ms/step, {v['tokens_per_s']:,.0f} tok/s, warm-up "
            f"{v['warmup_s']:.1f} s ({v['compiled_as']})")


def print_table(r: dict[str, Any], argv: list[str]) -> None:
    c = r["census"]
    print(f"clowncar gpu_trial: preset {r['preset']} on {r['device']}, torch {r['torch']}, {r['data']}")
    for name, state in r["kernels"].items():
        print(f"  {name}: {state}")
    first = next((v for v in r["variants"] if "error" not in v), None)
    print(f"  model: {r['params']:,} params, width {r['model_dim']}, {c['attn_calls']} attention calls per "
          f"forward, {c['n_used']:,} matmul params per token; optimizer: {first and first['optimizer']}")
    if first:
        print(f"  step: {first['accum']} x {first['micro_batch_seqs']} seqs x {first['seq_len']} tokens = "
              f"{first['tokens_per_step']:,} tokens, {'C' if r['crawl'] else 'N'}-steps; "
              f"{first['warmup_steps']} warm-up + {first['steps']} timed steps per variant; FLOPs/token (6N + "
              f"attention) "
              f"{first['flops_per_token'] / 1e6:,.1f} M")
    cols = r["variants"]

    def cell(v: dict[str, Any], key: str) -> str:
        if "error" in v:
            return "failed" if key == "step_ms_median" else ""
        value = v.get(key)
        if value is None:
            return "n/a"
        return {"step_ms_median": f"{value:.1f}", "tokens_per_s": f"{value:,.0f}",
                "peak_mem_gib": f"{value:.2f}", "mfu": f"{100 * value:.1f} %", "warmup_s": f"{value:.1f}",
                "vs_compile": f"{value:.3f}x",
                "loss_vs_eager": f"{value:.2e}", "final_loss": f"{value:.4f}",
                "cudagraph_skips": str(value)}[key]

    rows = (("ms/step (median)", "step_ms_median"), ("tokens/s", "tokens_per_s"),
            ("peak memory GiB", "peak_mem_gib"), ("MFU", "mfu"), ("vs compile (ms/step ratio)", "vs_compile"),
            ("loss vs eager (max rel.)", "loss_vs_eager"), ("final loss", "final_loss"),
            ("warm-up s (compile)", "warmup_s"), ("CUDA graph skips", "cudagraph_skips"))
    print("| metric | " + " | ".join(_label(v) for v in cols) + " |\n| --- |" + " ---: |" * len(cols))
    for label, key in rows:
        print(f"| {label} | " + " | ".join(cell(v, key) for v in cols) + " |")
    for v in cols:
        if "error" in v:
            print(f"  {_label(v)} failed: {v['error']}")
    if r.get("startup"):
        from bench_startup import PHASE_ROWS

        runs = r["startup"]
        print("\nstart-up, launch -> end of step 1 (s) | " + " | ".join(runs) + " |")
        print("| --- |" + " ---: |" * len(runs))
        for key, label in PHASE_ROWS:
            print(f"| {label} | " + " | ".join(f"{x['startup'][key]:.2f}" for x in runs.values()) + " |")
        print("| **total** | " + " | ".join(f"**{x['startup_seconds']:.2f}**" for x in runs.values()) + " |")
    print("reproduce: python benchmarks/gpu_trial.py " + " ".join(argv))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="clowncar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--modes", default="eager,default,reduce-overhead",
                   help="comma list: eager and/or train.compile_mode values")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma list of model.param_dtype values")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--accum", type=int, default=1, help="micro-batches per step")
    p.add_argument("--micro-batch", type=int, default=0, help="sequences per micro-batch (default: the "
                   "config's per-GPU micro-batch on 8 GPUs)")
    p.add_argument("--n-step", action="store_true", help="time N-steps (shared block once), not C-steps")
    p.add_argument("--no-compile", action="store_true", help="the same as --modes eager")
    p.add_argument("--startup", action="store_true", help="also time trial start-up, cold and warm cache")
    p.add_argument("--startup-cpus", type=int, default=8, help="CPUs (threads) of the start-up trials")
    p.add_argument("--shards", default=None, help="train on this shard directory instead of random tokens")
    p.add_argument("--train-glob", default="fineweb_train_*.bin")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the device, for MFU")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.accum < 1 or args.micro_batch < 0:
        p.error("--steps and --accum must be >= 1, --warmup and --micro-batch >= 0")
    args.modes = ["eager"] if args.no_compile else [m.strip() for m in args.modes.split(",") if m.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    known = ("eager", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    if not args.modes or any(m not in known for m in args.modes):
        p.error(f"--modes takes a comma list of {', '.join(known)}")
    if not args.dtypes or any(d not in ("fp32", "bf16") for d in args.dtypes):
        p.error("--dtypes takes a comma list of fp32, bf16")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from clowncar.errors import ClownCarError

    try:
        result = run(args, progress=lambda line: print(line, flush=True))
    except ClownCarError as exc:
        print(f"gpu_trial: error: {exc}", file=sys.stderr)
        return 2
    print_table(result, argv)
    _write_json(args.json, result)
    return 0 if any("error" not in v for v in result["variants"]) else 1


if __name__ == "__main__":
    sys.exit(main())
