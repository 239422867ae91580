"""One GPU's share of a trial's training: which fast kernels load, step time, tokens/s, peak memory and MFU.

    python benchmarks/gpu_trial.py                                # `clowncar` preset, random tokens, 20 steps
    python benchmarks/gpu_trial.py --shards /data/datasets/fineweb10B_sp1024
    python benchmarks/gpu_trial.py --preset tiny-cpu --device cpu --steps 3 --no-compile   # same path on CPU

The model comes from `clowncar.model.build_model` and trains as the worker trains it: bf16 autocast on CUDA,
fp32 master weights, `torch.compile` when the config says so, the worker's optimizers (Muon + AdamW) when
`clowncar.worker` is installed (else fused AdamW, and the table says so). One step is `--accum` micro-batches
of the per-GPU micro-batch of the config on 8 GPUs (train_batch_tokens / (train_seq_len x grad_accum) tokens)
followed by the optimizer step; every step fires the crawler loops (a C-step) unless `--n-step`.

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
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

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
    from clowncar.model import param_groups

    try:
        from clowncar.worker.optim import build_optimizers  # the worker's Muon + AdamW, when installed
    except ImportError:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        return [opt], "AdamW (clowncar.worker not installed: no Muon Newton-Schulz cost in these figures)"
    return build_optimizers(param_groups(model), cfg.train, device), "Muon + AdamW (clowncar.worker.optim)"


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


def run(args: argparse.Namespace) -> dict[str, Any]:
    from clowncar.config import load_config
    from clowncar.model import build_model, resolve_model_dim

    cfg = load_config(preset=args.preset, overrides=list(args.set))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t = cfg.train
    seq_len = t.train_seq_len
    seqs = args.micro_batch or max(1, t.train_batch_tokens // (seq_len * t.grad_accum))
    torch.manual_seed(t.seed)
    model = build_model(cfg)
    census = matmul_census(model, crawl=not args.n_step)
    model = model.to(device)
    optimizers, opt_label = make_optimizers(model, cfg, device)
    compiled = t.compile and not args.no_compile
    fwd = torch.compile(model) if compiled else model
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    next_batch = batch_source(args, cfg.model.vocab_size, seqs, seq_len, device)

    def step() -> float:
        loss_sum = torch.zeros((), device=device)
        for _ in range(args.accum):
            x, y = next_batch()
            with amp:
                loss = fwd(x, y, crawl=not args.n_step)
            (loss / args.accum).backward()
            loss_sum += loss.detach()  # no host sync between micro-batches, as in the worker
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return float(loss_sum) / args.accum  # one sync per step: the step's time is complete

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(args.warmup):  # compilation and autotuning happen here
        step()
    sync()
    warmup_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
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
        "preset": args.preset, "overrides": list(args.set), "device": _device_name(device),
        "torch": torch.__version__, "compile": compiled, "optimizer": opt_label, "kernels": kernel_report(),
        "data": f"shards {args.shards}" if args.shards else "random tokens",
        "params": sum(p.numel() for p in model.parameters()), "model_dim": resolve_model_dim(cfg.model),
        "census": asdict(census), "seq_len": seq_len, "micro_batch_seqs": seqs, "accum": args.accum,
        "crawl": not args.n_step, "warmup_steps": args.warmup, "warmup_s": warmup_s, "steps": args.steps,
        "step_ms_median": step_s * 1e3, "step_ms_min": min(times) * 1e3, "step_ms_max": max(times) * 1e3,
        "tokens_per_step": tokens_per_step, "tokens_per_s": tok_s,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "flops_per_token": flops_tok, "model_tflops_per_s": flops_tok * tok_s / 1e12,
        "peak_tflops": peak, "mfu": flops_tok * tok_s / (peak * 1e12) if peak else None,
        "final_loss": losses[-1],
    }


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def print_table(r: dict[str, Any], argv: list[str]) -> None:
    c = r["census"]
    print(f"clowncar gpu_trial: preset {r['preset']} on {r['device']}, torch {r['torch']}, "
          f"compile {'on' if r['compile'] else 'off'}, {r['data']}")
    for name, state in r["kernels"].items():
        print(f"  {name}: {state}")
    print(f"  model: {r['params']:,} params, width {r['model_dim']}, {c['attn_calls']} attention calls per "
          f"forward, {c['n_used']:,} matmul params per token; optimizer: {r['optimizer']}")
    print(f"  step: {r['accum']} x {r['micro_batch_seqs']} seqs x {r['seq_len']} tokens = "
          f"{r['tokens_per_step']:,} tokens, {'C' if r['crawl'] else 'N'}-steps; warm-up {r['warmup_steps']} "
          f"steps in {r['warmup_s']:.1f} s")
    mem = f"{r['peak_mem_gib']:.2f} GiB" if r["peak_mem_gib"] is not None else "n/a (CPU)"
    mfu = f"{100 * r['mfu']:.1f} % of {r['peak_tflops']:.0f} TFLOP/s" if r["mfu"] is not None else "n/a"
    rows = [("step time (median)", f"{r['step_ms_median']:.1f} ms (min {r['step_ms_min']:.1f}, "
                                   f"max {r['step_ms_max']:.1f}, {r['steps']} steps)"),
            ("tokens/s", f"{r['tokens_per_s']:,.0f}"), ("peak memory", mem),
            ("FLOPs/token (6N + attention)", f"{r['flops_per_token'] / 1e6:,.1f} MFLOP"),
            ("model FLOP/s", f"{r['model_tflops_per_s']:.3g} TFLOP/s"), ("MFU", mfu),
            ("final loss", f"{r['final_loss']:.4f}")]
    print("| metric | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")
    print("reproduce: python benchmarks/gpu_trial.py " + " ".join(argv))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="clowncar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--accum", type=int, default=1, help="micro-batches per step")
    p.add_argument("--micro-batch", type=int, default=0, help="sequences per micro-batch (default: the "
                   "config's per-GPU micro-batch on 8 GPUs)")
    p.add_argument("--n-step", action="store_true", help="time N-steps (shared block once), not C-steps")
    p.add_argument("--no-compile", action="store_true", help="eager even when the config compiles")
    p.add_argument("--shards", default=None, help="train on this shard directory instead of random tokens")
    p.add_argument("--train-glob", default="fineweb_train_*.bin")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the device, for MFU")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.accum < 1 or args.micro_batch < 0:
        p.error("--steps and --accum must be >= 1, --warmup and --micro-batch >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from clowncar.errors import ClownCarError

    try:
        result = run(args)
    except ClownCarError as exc:
        print(f"gpu_trial: error: {exc}", file=sys.stderr)
        return 2
    print_table(result, argv)
    if args.json:
        tmp = Path(args.json).with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
