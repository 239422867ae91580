"""DeltaNet speed: our chunked PyTorch delta rule vs the per-token recurrent reference (and FLA on CUDA).

Prints a table of milliseconds per call and the speed-up, plus the command that reproduces it.
Target (issue 3): the chunked path at least 20x faster than the reference at T = 2048 on CPU.

On CPU it first applies the worker's malloc settings (clowncar/worker/heap.py), as a trial does: without them
the multi-MB buffers of each call are page-faulted in again whenever the heap was trimmed in between, and the
chunked path runs in a slow mode about twice as slow. `--system-malloc` leaves glibc's defaults, to see that.
"""

from __future__ import annotations

import argparse
import importlib.util
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
from clowncar.worker.heap import keep_freed_memory


def timed(fns: dict[str, Callable[[], torch.Tensor]], reps: int, device: str) -> dict[str, float]:
    """Median milliseconds per call of each function over `reps` rounds, after one warm-up call each.

    The functions take turns within every round, so a slow spell on a shared machine hits all of them alike
    instead of whichever happened to be running."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for name, fn in fns.items():
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 2048])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=32, help="chunk size of the PyTorch path (the model default is 32)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    ap.add_argument("--threads", type=int, nargs="+", default=[1],
                    help="CPU thread counts to run the table at (default 1: on a shared, loaded machine more "
                         "threads mostly spin; try e.g. --threads 1 2 on an idle one)")
    ap.add_argument("--other", type=Path, metavar="FILE",
                    help="also time delta_rule_chunked from another copy of deltanet.py in the same rounds, e.g. "
                         "the version on main: git show main:clowncar/model/deltanet.py > /tmp/old_deltanet.py")
    ap.add_argument("--system-malloc", action="store_true",
                    help="keep glibc's default malloc settings instead of the worker's (clowncar/worker/heap.py)")
    args = ap.parse_args()
    if args.other and not args.other.is_file():
        ap.error(f"--other: no such file: {args.other}")
    if args.device == "cpu" and not args.system_malloc:
        kept = keep_freed_memory()
        print(f"# malloc: {'freed memory kept in the process (worker setting)' if kept else 'settings not applied'}")
    elif args.device == "cpu":
        print("# malloc: glibc defaults (--system-malloc)")
    other = load_other(args.other) if args.other else None
    for threads in dict.fromkeys(args.threads):  # each count once, in the order given
        torch.set_num_threads(threads)
        table(args, other)
    print(f"# reproduce: python {shlex.join(['benchmarks/bench_deltanet.py', *sys.argv[1:]])}")


def table(args: argparse.Namespace, other: Callable[..., torch.Tensor] | None) -> None:
    torch.manual_seed(0)
    fla = fla_chunk_delta_rule() if args.device == "cuda" else None

    print(f"# DeltaNet delta rule, {'fwd+bwd' if args.backward else 'forward'}, B={args.batch} "
          f"H={args.heads} D={args.head_dim} chunk={args.chunk}, fp32 torch paths"
          f"{', FLA in bf16' if fla else ''}")
    print(f"# device: {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    header = f"{'T':>6} | {'recurrent ms':>12} | {'chunked ms':>10} | {'speed-up':>8}"
    extra = (f" | {'fla bf16 ms':>11}" if fla else "") + (f" | {'other ms':>8} | {'other x':>7}" if other else "")
    print(header + extra)
    print("-" * len(header + extra))
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

        fns = {"recurrent": run(delta_rule_recurrent),
               "chunked": run(lambda *xs: delta_rule_chunked(*xs, chunk_size=args.chunk))}
        if other:
            fns["other"] = run(lambda *xs: other(*xs, chunk_size=args.chunk))
        if fla:
            half = [t.detach().bfloat16().requires_grad_(args.backward) for t in inputs]
            fns["fla"] = run(lambda *xs: fla(q=xs[0], k=xs[1], v=xs[2], beta=xs[3])[0], half)
        ms = timed(fns, args.reps, args.device)
        row = f"{T:>6} | {ms['recurrent']:>12.1f} | {ms['chunked']:>10.2f} | {ms['recurrent'] / ms['chunked']:>7.1f}x"
        row += f" | {ms['fla']:>11.3f}" if fla else ""
        row += f" | {ms['other']:>8.2f} | {ms['recurrent'] / ms['other']:>6.1f}x" if other else ""
        print(row)


def load_other(path: Path) -> Callable[..., torch.Tensor]:
    """delta_rule_chunked of another deltanet.py, loaded under its own module name beside ours."""
    spec = importlib.util.spec_from_file_location("other_deltanet", path)
    if spec is None or spec.loader is None:
        sys.exit(f"--other: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(f"# other: delta_rule_chunked from {path}")
    return module.delta_rule_chunked


if __name__ == "__main__":
    main()
