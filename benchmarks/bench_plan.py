"""What one pass of the GPU ledger's planner costs (orchestrator/plan.py), from the benchmark's cluster to large ones.

The ledger is one Ray actor; every driver's request waits for its pass, and a driver whose call takes over 10 s
falls back to Ray's own placement. A plan is kept while nothing it was made from changes, so a pass is paid once
per grant, release or new request, not per poll. Each row: sweeps of 1, 8 and (from the third on) 2 GPUs per
trial, each with `trials` queued trials of 60..180 s, on `nodes` x 8 GPUs half busy; median seconds of
`best_plan` over `reps` runs.

Reproduce: PYTHONPATH=$PWD python benchmarks/bench_plan.py [--reps 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from itertools import permutations

from clowncar.orchestrator.plan import MAX_ORDERS, Queue, Running, best_plan

CASES = [(2, 64, 4), (2, 512, 4), (3, 175, 16), (4, 512, 16), (6, 512, 64)]
"""(sweeps, queued trials per sweep, nodes): the benchmark's two sweeps, a Frugendorff grid, BACKLOG_MAX."""


def case(sweeps: int, trials: int, nodes: int, seed: int = 0) -> tuple[dict[str, int], list[Running], list[Queue]]:
    rng = random.Random(seed)
    gpus = [1, 8, 2, 4, 1, 2][:sweeps]
    names = {f"n{i}": 8 for i in range(nodes)}
    running = [(n, 4, rng.uniform(10, 180), "other") for n in names]
    queues = [Queue(f"s{i}", g, tuple(sorted((rng.uniform(60, 180) for _ in range(trials)), reverse=True)))
              for i, g in enumerate(gpus)]
    return names, running, queues


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    print(f"{'sweeps':>6} {'trials/sweep':>12} {'nodes':>6} {'plans/pass':>10} {'s/pass':>8}")
    for sweeps, trials, nodes in CASES:
        names, running, queues = case(sweeps, trials, nodes)
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            best_plan(names, running, queues, 0.0, start_s=2.0)
            times.append(time.perf_counter() - t0)
        plans = 2 * (len(list(permutations(range(sweeps)))) if sweeps <= MAX_ORDERS else 2)
        print(f"{sweeps:>6} {trials:>12} {nodes:>6} {plans:>10} {statistics.median(times):>8.3f}")
    print(f"reproduce: PYTHONPATH=$PWD python benchmarks/bench_plan.py --reps {args.reps}")


if __name__ == "__main__":
    main()
