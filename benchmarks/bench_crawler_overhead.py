"""Crawler overhead: forward+backward tokens/s of CrawlerGPT vs a plain GPT of the same width and effective
depth (flat + crawler x loops), measured side by side in one run. On CUDA, also the `clowncar` preset at
seq 2048 with torch.compile.

Target (issue 3): GPT tokens/s / CrawlerGPT tokens/s <= 1.15 (the loops cost their FLOPs and no more).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clowncar.config_load import load_config
from clowncar.config_model import ModelConfig
from clowncar.model import build_model, count_params


def step_seconds(model: torch.nn.Module, tokens: torch.Tensor, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = model(tokens[:, :-1], tokens[:, 1:])
    loss.backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def side_by_side(models: dict[str, torch.nn.Module], tokens: torch.Tensor, reps: int, warmup: int,
                 device: str) -> dict[str, float]:
    """Median tokens/s per model; the models take turns so that machine load hits them alike."""
    for _ in range(warmup):
        for m in models.values():
            step_seconds(m, tokens, device)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(reps):
        for name, m in models.items():
            times[name].append(step_seconds(m, tokens, device))
    n_tok = tokens[:, :-1].numel()
    return {name: n_tok / sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--flat", type=int, default=4)
    ap.add_argument("--crawler", type=int, default=1)
    ap.add_argument("--loops", type=int, default=4)
    ap.add_argument("--inst-dim", type=int, default=16)
    ap.add_argument("--mlp-mult", type=float, default=3.0)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--no-preset", action="store_true", help="skip the clowncar preset measurement on CUDA")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (1 by default: on a shared, loaded machine more threads mostly spin)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device
    torch.manual_seed(0)
    common = {"vocab_size": 1024, "model_dim": args.dim, "num_heads": args.heads,
              "num_kv_heads": max(1, args.heads // 2), "mlp_mult": args.mlp_mult,
              "crawler_mlp_mult": args.mlp_mult}
    depth = args.flat + args.crawler * args.loops
    cfgs = {
        f"GPT {depth}L": ModelConfig(arch="gpt", num_layers=depth, **common),
        f"Crawler {args.flat}F+{args.crawler}Cx{args.loops}": ModelConfig(
            arch="crawler", num_flat_layers=args.flat, num_crawler_layers=args.crawler,
            crawler_loops=args.loops, inst_dim=args.inst_dim, **common),
    }
    models = {name: build_model(c).to(dev) for name, c in cfgs.items()}
    run_models = {n: torch.compile(m) if args.compile else m for n, m in models.items()}
    tokens = torch.randint(0, 1024, (args.batch, args.seq + 1), device=dev)
    tps = side_by_side(run_models, tokens, args.reps, args.warmup, dev)

    name_dev = torch.cuda.get_device_name() if dev == "cuda" else platform.processor() or platform.machine()
    print(f"# forward+backward, d={args.dim}, batch {args.batch} x seq {args.seq}, median of {args.reps}, "
          f"{'compiled' if args.compile else 'eager'}, {'bf16 autocast' if dev == 'cuda' else 'fp32'}")
    print(f"# device: {dev} ({name_dev}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'model':<22} | {'params':>10} | {'tokens/s':>10}")
    print("-" * 48)
    for name, m in models.items():
        print(f"{name:<22} | {count_params(m):>10,} | {tps[name]:>10,.0f}")
    gpt, crawler = tps.values()
    print(f"ratio GPT / Crawler tokens/s: {gpt / crawler:.3f} (target <= 1.15)")

    if dev == "cuda" and not args.no_preset:
        cfg = load_config(preset="clowncar")
        model = torch.compile(build_model(cfg).cuda())
        toks = torch.randint(0, cfg.model.vocab_size, (8, 2049), device=dev)
        (rate,) = side_by_side({"clowncar": model}, toks, args.reps, 2, dev).values()
        print(f"clowncar preset, seq 2048, batch 8, compiled, bf16 autocast: {rate:,.0f} tokens/s fwd+bwd")
    print(f"# reproduce: python {shlex.join(['benchmarks/bench_crawler_overhead.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
