"""DeltaNet speed: our chunked PyTorch delta rule vs the per-token recurrent reference (and FLA on CUDA).

Prints a table of milliseconds per call and the speed-up, plus the command that reproduces it.
Target (issue 3): the chunked path at least 20x faster than the reference at T = 2048 on CPU.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clowncar.model.deltanet import delta_rule_chunked, delta_rule_recurrent, fla_chunk_delta_rule


def timed(fn: Callable[[], torch.Tensor], reps: int, device: str) -> float:
    """Median milliseconds per call over `reps` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 2048])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    args = ap.parse_args()
    torch.manual_seed(0)
    fla = fla_chunk_delta_rule() if args.device == "cuda" else None

    print(f"# DeltaNet delta rule, {'fwd+bwd' if args.backward else 'forward'}, B={args.batch} "
          f"H={args.heads} D={args.head_dim} chunk={args.chunk}, fp32 torch paths"
          f"{', FLA in bf16' if fla else ''}")
    print(f"# device: {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    header = f"{'T':>6} | {'recurrent ms':>12} | {'chunked ms':>10} | {'speed-up':>8}"
    print(header + (f" | {'fla bf16 ms':>11}" if fla else ""))
    print("-" * len(header) + ("-" * 14 if fla else ""))
    for T in args.lengths:
        B, H, D = args.batch, args.heads, args.head_dim
        q = torch.randn(B, T, H, D, device=args.device)
        k = F.normalize(torch.randn(B, T, H, D, device=args.device), dim=-1)
        v = torch.randn(B, T, H, D, device=args.device)
        beta = torch.rand(B, T, H, device=args.device)
        inputs = [t.requires_grad_(args.backward) for t in (q, k, v, beta)]

        def run(f: Callable[..., torch.Tensor], xs: list[torch.Tensor] = inputs) -> Callable[[], torch.Tensor]:
            def call() -> torch.Tensor:
                with torch.set_grad_enabled(args.backward):
                    o = f(*xs)
                    if args.backward:
                        o.sum().backward()
                return o
            return call

        rec = timed(run(delta_rule_recurrent), args.reps, args.device)
        chk = timed(run(lambda *xs: delta_rule_chunked(*xs, chunk_size=args.chunk)), args.reps, args.device)
        row = f"{T:>6} | {rec:>12.1f} | {chk:>10.2f} | {rec / chk:>7.1f}x"
        if fla:
            half = [t.detach().bfloat16().requires_grad_(args.backward) for t in inputs]
            ms = timed(run(lambda *xs: fla(q=xs[0], k=xs[1], v=xs[2], beta=xs[3])[0], half), args.reps, args.device)
            row += f" | {ms:>11.3f}"
        print(row)
    print(f"# reproduce: python {shlex.join(['benchmarks/bench_deltanet.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
