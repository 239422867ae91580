"""GPU utilization of clowncar sweeps on a simulated cluster: 4 nodes x 8 logical GPUs (ray.cluster_utils, loopback).

Two sweeps share the cluster at once (as two users' sweeps would): 48 one-GPU trials (30..90 s) and 16 eight-GPU
trials (30..70 s) at --scale 1, each a contract worker that sleeps its trial's duration, through the real
`clowncar sweep run` path. Busy GPU-seconds = sum(sleep x GPUs); utilization = busy / (32 GPUs x wall), wall from
the first trial's start to the last trial's end (from the store). Run once per placement policy, side by side:
`ray` (Ray places each trial as it comes) and `ledger` (clowncar's GPU ledger: orchestrator/placement.py).

Next to each measurement: the bound no scheduler beats (makespan >= max(busy / 32, longest trial)); what a
clairvoyant scheduler reaches (list scheduling with every duration known, best of many orders: the workload's own
ceiling, 0.986 here: all 1-GPU trials first, then the whole-node ones, each longest first); and the ledger's own
policy replayed in an event simulation with zero per-trial overhead (clowncar's grid hands out the longest trials
first; Optuna's plain grid order, random, for comparison), alone and with Tune's actor cache, which keeps one
finished trial's actor, and its GPUs, while its sweep waits for the ledger. That separates what the policy costs,
what its interplay with Tune costs and what this machine's overhead costs. The lost GPU-seconds are split three
ways: GPUs free on a node while the trial about to use them was being started (ledger answer, Tune's loop, a new
trial actor: ~20 s for 8 at once on 2 cores), GPUs held by a trial whose worker was starting or reporting, and GPUs
idle with nothing waiting (the policy's drains and the tail). Target: utilization >= 0.95.

Reproduce: PYTHONPATH=$PWD python benchmarks/bench_utilization.py [--scale 2] [--placement both|ledger|ray] [--keep DIR]
(--scale 2, trials of 60..180 s, is what the figures in orchestrator/placement.py were measured at: ~11 min a
placement on 2 cores.)
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
NODES, GPUS = 4, 8


def workload(scale: float) -> dict[int, list[float]]:
    return {1: [round((30 + 60 * i / 47) * scale, 2) for i in range(48)],
            8: [round((30 + 40 * i / 15) * scale, 2) for i in range(16)]}


def spec(name: str, gpus: int, durations: list[float], concurrent: int, placement: str) -> dict[str, Any]:
    return {"name": name, "preset": "tiny-cpu", "sampler": "grid",
            "overrides": {"data.dataset": "ok", "train.iterations": 3},
            "space": {"train.max_wallclock_seconds": {"grid": durations}},
            "resources": {"gpus": gpus, "cpus": 1, "placement": placement}, "max_concurrent": concurrent,
            "worker": {"module": "contract_worker", "launcher": "single"}}  # registered by HERE on PYTHONPATH


def trials_of(work: dict[int, list[float]]) -> list[tuple[int, float]]:
    """The workload as (GPUs, seconds) per trial."""
    return [(g, d) for g, ds in work.items() for d in ds]


def busy_gpu_s(work: dict[int, list[float]]) -> float:
    return sum(g * d for g, d in trials_of(work))


def utilization(work: dict[int, list[float]], makespan: float) -> float:
    return busy_gpu_s(work) / (NODES * GPUS * makespan)


def best_makespan(work: dict[int, list[float]]) -> float:
    """No schedule beats this: the GPUs' total work spread perfectly, or the longest trial."""
    return max(busy_gpu_s(work) / (NODES * GPUS), max(max(ds) for ds in work.values()))


def simulate(work: dict[int, list[float]], seed: int, longest_first: bool = True, tune_cache: bool = False,
             drop_idle: bool = True, order: str = "plan", start_s: float = 0.0) -> float:
    """The ledger's policy (GpuBook) with zero overhead: each sweep keeps one request open, as a driver does, and
    hands out its trials longest first (as clowncar's grid does) or in a random order (Optuna's plain grid).

    With `tune_cache`, Tune's actor reuse is replayed too: a sweep whose next trial is not granted yet keeps one
    finished trial's actor, and its GPUs, until that trial is granted (reused if on the same node, dropped
    otherwise; Tune's `may_keep_one`), and the ledger sees those GPUs as held until then (released lease, live
    placement group); with `drop_idle` (as clowncar does) the sweep drops that actor as soon as the ledger says
    its node is reserved for another sweep's trial. With `start_s`, each trial that needs a new actor (not a
    hand-over) begins only after the ones before it have started, start_s each, as on the 2-core machine."""
    from clowncar.orchestrator.placement import GpuBook

    rng = random.Random(seed)
    book = GpuBook(ttl_s=1e12, order=order)
    book.set_nodes({f"n{i}": GPUS for i in range(NODES)})
    sweeps: list[dict[str, Any]] = []
    for gpus, durations in work.items():
        order = list(durations)
        rng.shuffle(order)
        if longest_first:
            order.sort()  # popped from the end
        sweeps.append({"gpus": gpus, "todo": order, "cap": NODES * GPUS // gpus, "running": 0, "want": None,
                       "kept": None})
    alive: set[str] = set()  # placement groups Ray still holds (tune_cache only)

    def gone(pg: str) -> bool:
        return pg not in alive

    now, ends, count, starter = 0.0, [], 0, 0.0
    while True:
        moved = True
        while moved:
            moved = False
            for i, s in enumerate(sweeps):
                if s["want"] is None and s["todo"] and s["running"] < s["cap"]:
                    count += 1
                    s["want"] = (f"t{count}", s["todo"].pop())
                if not s["want"]:
                    continue
                key, seconds = s["want"]
                node = book.request(str(i), key, s["gpus"], seconds * 1.1, now, gone=gone,
                                    backlog=[x * 1.1 for x in reversed(s["todo"])], limit=s["cap"])
                if node is None:
                    continue
                if tune_cache:  # the kept actor is reused here or dropped; either way its old group goes
                    alive.discard(s["kept"] or "")
                    alive.add(key)
                    s["kept"] = None
                begin = now
                if start_s and not book.leases[key].warm:  # new actors start one after another, start_s each
                    starter = begin = max(now, starter) + start_s  # (one machine's CPUs start them all)
                heapq.heappush(ends, (begin, 0, key, i, node))  # its first report
                heapq.heappush(ends, (begin + seconds, 1, key, i, node))
                s["running"], s["want"], moved = s["running"] + 1, None, True
            if tune_cache and drop_idle:  # the ledger's answer to a waiting sweep: drop the idle actor
                for i, s in enumerate(sweeps):
                    if s["kept"] and s["want"] and book.idle_blocks(str(i)):
                        alive.discard(s["kept"])
                        s["kept"], moved = None, True
        if not ends:
            break
        now, kind, key, i, node = heapq.heappop(ends)
        if kind == 0:
            book.confirm(key, node, key if tune_cache else "", now=now)
            continue
        book.release(key, now)
        s = sweeps[i]
        s["running"] -= 1
        if tune_cache and s["kept"] is None and (s["todo"] or s["want"]):
            s["kept"] = key
        else:
            alive.discard(key)
    return utilization(work, now)


def random_workloads(count: int, seed: int = 1) -> list[dict[int, list[float]]]:
    """Two-sweep workloads unlike the benchmark's own: 16..64 one-GPU trials of 60..180 s and 6..24 eight-GPU
    trials of 60..140 s, counts and lengths drawn at random, so a policy is not judged on one workload."""
    rng = random.Random(seed)
    return [{1: [round(rng.uniform(60, 180), 1) for _ in range(rng.randint(16, 64))],
             8: [round(rng.uniform(60, 140), 1) for _ in range(rng.randint(6, 24))]} for _ in range(count)]


def order_replay(count: int) -> dict[str, tuple[float, float]]:
    """Each order of waiting requests the ledger knows (placement.ORDERS) replayed without overhead over `count`
    random workloads: (mean, worst) utilization."""
    from clowncar.orchestrator.placement import ORDERS

    works = random_workloads(count)
    out = {}
    for order in ORDERS:
        utils = [simulate(work, 0, order=order) for work in works]
        out[order] = (sum(utils) / len(utils), min(utils))
    return out


def list_schedule(order: list[tuple[int, float]]) -> float:
    """Makespan of list scheduling: trials in `order` start as soon as they fit (a later one may pass one that does
    not fit yet), each on the node it fills most."""
    free, pending, running, now, end = [GPUS] * NODES, list(order), [], 0.0, 0.0
    while pending:
        for i, (gpus, seconds) in enumerate(pending):
            fits = [n for n in range(NODES) if free[n] >= gpus]
            if fits:
                node = min(fits, key=lambda n: free[n])
                free[node] -= gpus
                heapq.heappush(running, (now + seconds, node, gpus))
                end = max(end, now + seconds)
                del pending[i]
                break
        else:  # nothing fits: wait for the next trial to end
            now, node, gpus = heapq.heappop(running)
            free[node] += gpus
    return end


def offline_best(work: dict[int, list[float]], orders: int, seed: int = 0) -> float:
    """A reachable reference for this workload: list scheduling with every duration known in advance, the best over
    the classic orders (longest first, whole-node trials first, most GPU-seconds first, 1-GPU trials first, each
    longest first) and `orders` random ones.
    Not an optimum (the problem is NP-hard): what a clairvoyant scheduler reaches, so the gap between it and the
    ledger's replay is what scheduling online, one request per sweep, costs."""
    jobs = trials_of(work)
    rng = random.Random(seed)
    candidates = [sorted(jobs, key=lambda j: -j[1]), sorted(jobs, key=lambda j: (-j[0], -j[1])),
                  sorted(jobs, key=lambda j: -j[0] * j[1]), sorted(jobs, key=lambda j: (j[0], -j[1]))]
    for _ in range(orders):
        candidates.append(rng.sample(jobs, len(jobs)))
    return utilization(work, min(list_schedule(o) for o in candidates))


def measure(work: dict[int, list[float]], placement: str, keep: Path | None = None) -> dict[str, Any]:
    ray_tmp = tempfile.mkdtemp(prefix="ru", dir="/tmp")
    path = os.pathsep.join([str(REPO), str(HERE)])  # the nodes' trials import the registered contract worker
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TMPDIR": ray_tmp, "PYTHONPATH": path})
    from ray.cluster_utils import Cluster

    from clowncar.store import open_store

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    for _ in range(NODES):
        cluster.add_node(num_cpus=GPUS, num_gpus=GPUS)
    cluster.wait_for_nodes()
    names = {1: f"util-1gpu-{placement}", 8: f"util-8gpu-{placement}"}
    try:
        with tempfile.TemporaryDirectory(prefix="ccutil") as d:
            tmp = Path(d)
            url = f"sqlite:///{tmp / 'store.db'}"
            env = {**os.environ, "CLOWNCAR_RUNS_DIR": str(tmp / "runs"),
                   "CLOWNCAR_STORE": url}
            procs = []
            for gpus, durations in work.items():
                s = spec(names[gpus], gpus, durations, NODES * GPUS // gpus, placement)
                path = tmp / f"{s['name']}.yaml"
                path.write_text(yaml.safe_dump(s))
                procs.append(subprocess.Popen([sys.executable, "-m", "clowncar", "sweep", "run", str(path),
                                               "--address", cluster.address, "--quiet"], env=env, cwd=tmp,
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            t0 = time.time()
            outs = [p.communicate()[0] for p in procs]
            if any(p.returncode for p in procs):
                sys.exit("a sweep failed:\n" + "\n".join(outs))
            frame = open_store(url).trials_frame(sweeps=list(names.values()))
            if keep is not None:  # the store and the trials' folders, for a closer look afterwards
                shutil.copytree(tmp, keep / placement, dirs_exist_ok=True)
    finally:
        cluster.shutdown()
        reap(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    frame["gpus"] = frame["sweep"].map({v: k for k, v in names.items()})
    wall = (frame["ended_at"].max() - frame["started_at"].min()).total_seconds()
    busy = float((frame["train.max_wallclock_seconds"] * frame["gpus"]).sum())
    held = float(((frame["ended_at"] - frame["started_at"]).dt.total_seconds() * frame["gpus"]).sum())
    start = frame["started_at"].min()
    done = {g: (frame[frame.gpus == g]["ended_at"].max() - start).total_seconds() for g in (1, 8)}
    waits = start_waits(frame)
    return {"wall": wall, "busy": busy, "held": held, "util": busy / (NODES * GPUS * wall), "waits": waits,
            "gpus": frame["gpus"],
            "wait_gpu_s": float((waits * frame["gpus"]).sum()),
            "held_util": held / (NODES * GPUS * wall), "peak": peak_per_node(frame), "done": done,
            "statuses": ",".join(sorted(set(frame["status"]))), "n": len(frame), "runtime": time.time() - t0}


def start_waits(frame: Any) -> Any:
    """Per trial: seconds its GPUs sat free on its node right before it started (the ledger's answer, Tune's
    loop, a new trial actor where none could be reused): what starting a trial costs on this machine."""
    import pandas as pd

    first = frame.started_at.min()
    waits = []
    for r in frame.itertuples():
        others = frame[(frame.node == r.node) & (frame.index != r.Index)]
        bounds = {x for x in [*others.started_at, *others.ended_at] if first <= x < r.started_at} | {first}
        free_since = r.started_at
        for x in sorted(bounds, reverse=True):  # usage is constant on [x, free_since): walk back while it fits
            used = int(others[(others.started_at <= x) & (others.ended_at > x)].gpus.sum())
            if GPUS - used < r.gpus:
                break
            free_since = x
        waits.append((r.started_at - free_since).total_seconds())
    return pd.Series(waits, index=frame.index)


def peak_per_node(frame: Any) -> int:
    """Most GPUs held by trials on one node at once (must never exceed 8)."""
    events = sorted([(r.started_at, r.gpus, r.node) for r in frame.itertuples()] +
                    [(r.ended_at, -r.gpus, r.node) for r in frame.itertuples()], key=lambda e: (e[0], e[1]))
    per_node: dict[str, int] = {}
    peak = 0
    for _, delta, node in events:
        per_node[node] = per_node.get(node, 0) + delta
        peak = max(peak, per_node[node])
    return peak


def reap(ray_tmp: str) -> None:
    """Ray leftovers of one run, by PID (their command lines name its temp dir)."""
    for pid_dir in Path("/proc").iterdir():
        if pid_dir.name.isdigit():
            try:
                if ray_tmp in (pid_dir / "cmdline").read_bytes().decode(errors="replace"):
                    os.kill(int(pid_dir.name), 9)
            except (OSError, ProcessLookupError):
                continue


def wait_cell(r: dict[str, Any], gpus: int) -> str:
    waits = r["waits"][r["gpus"] == gpus]
    return f"{waits.mean():.1f} / {waits.max():.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=2.0, help="multiply every sleep by this (1 = 30..90 s)")
    ap.add_argument("--placement", choices=("both", "ledger", "ray"), default="both")
    ap.add_argument("--keep", type=Path, help="copy each run's store and trial folders under this folder")
    ap.add_argument("--seeds", type=int, default=20, help="sampler orders replayed in the policy simulation")
    ap.add_argument("--orders", type=int, default=2000, help="random orders tried by the clairvoyant reference")
    ap.add_argument("--workloads", type=int, default=40, help="random workloads, ledger orders' replay")
    args = ap.parse_args()
    work = workload(args.scale)
    busy, bound = busy_gpu_s(work), best_makespan(work)
    sims = [simulate(work, seed) for seed in range(args.seeds)]
    cached = [simulate(work, seed, tune_cache=True) for seed in range(args.seeds)]
    kept = [simulate(work, seed, tune_cache=True, drop_idle=False) for seed in range(args.seeds)]
    plain = [simulate(work, seed, longest_first=False) for seed in range(args.seeds)]
    print(f"workload: {len(work[1])} x 1 GPU ({min(work[1])}..{max(work[1])} s) + {len(work[8])} x 8 GPUs "
          f"({min(work[8])}..{max(work[8])} s) = {busy:.0f} busy GPU-s on {NODES} x {GPUS} GPUs")
    print(f"best possible: makespan >= {bound:.1f} s -> utilization <= {utilization(work, bound):.3f}")
    print(f"clairvoyant list scheduling (every duration known in advance, best of {args.orders} orders + 4 "
          f"classic ones): utilization {offline_best(work, args.orders):.3f}")
    print(f"ledger policy simulated without overhead, clowncar's grid (longest first): utilization "
          f"{sum(sims) / len(sims):.3f}; plus Tune's actor cache, the idle actor dropped when another sweep "
          f"waits for its node (clowncar): {sum(cached) / len(cached):.3f}, or kept until its own sweep's next "
          f"trial starts (before the drop): {sum(kept) / len(kept):.3f}; Optuna's plain grid (random order, "
          f"{args.seeds} seeds): mean "
          f"{sum(plain) / len(plain):.3f}, min {min(plain):.3f}, max {max(plain):.3f}")
    replay = order_replay(args.workloads)
    print(f"ledger orders replayed without overhead over {args.workloads} random two-sweep workloads, mean (worst): "
          + ", ".join(f"{order} {mean:.3f} ({worst:.3f})" for order, (mean, worst) in replay.items()))
    results = {}
    for placement in (("ray", "ledger") if args.placement == "both" else (args.placement,)):
        results[placement] = measure(work, placement, args.keep)
        print(f"measured {placement}: {results[placement]['runtime']:.0f} s, load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rows = [("trials, statuses", lambda r: f"{r['n']} {r['statuses']}"),
            ("wall, first start to last end (s)", lambda r: f"{r['wall']:.1f}"),
            ("1-GPU sweep done at (s)", lambda r: f"{r['done'][1]:.1f}"),
            ("8-GPU sweep done at (s)", lambda r: f"{r['done'][8]:.1f}"),
            ("busy GPU-s (sleep x GPUs)", lambda r: f"{r['busy']:.0f}"),
            ("utilization busy / (GPUs x wall)", lambda r: f"{r['util']:.3f}"),
            ("held / (GPUs x wall) (trial start..end)", lambda r: f"{r['held_util']:.3f}"),
            ("best possible utilization (bound)", lambda r: f"{utilization(work, bound):.3f}"),
            ("start wait, 1-GPU trials: mean / max (s)", lambda r: wait_cell(r, 1)),
            ("start wait, 8-GPU trials: mean / max (s)", lambda r: wait_cell(r, 8)),
            ("idle GPU-s: trial about to start", lambda r: f"{r['wait_gpu_s']:.0f}"),
            ("idle GPU-s: in trials (worker start, end)", lambda r: f"{r['held'] - r['busy']:.0f}"),
            ("idle GPU-s: nothing waiting (policy, tail)",
             lambda r: f"{NODES * GPUS * r['wall'] - r['held'] - r['wait_gpu_s']:.0f}"),
            ("most GPUs held on one node at once", lambda r: str(r["peak"]))]
    print(f"\n{'quantity':<44}" + "".join(f"{p:>12}" for p in results))
    for name, cell in rows:
        print(f"{name:<44}" + "".join(f"{cell(r):>12}" for r in results.values()))
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"reproduce: PYTHONPATH=$PWD python benchmarks/bench_utilization.py --scale {args.scale} "
          f"--placement {args.placement}")


if __name__ == "__main__":
    main()
