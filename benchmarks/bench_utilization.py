"""GPU utilization of clowncar sweeps on a simulated cluster: 4 nodes x 8 logical GPUs (ray.cluster_utils, loopback).

Two sweeps share the cluster at once (as two users' sweeps would): 48 one-GPU trials and 16 eight-GPU trials, each
a contract worker that sleeps a different duration. Busy GPU-seconds = sum(sleep x GPUs); utilization =
busy / (32 GPUs x wall), wall from the first trial's start to the last trial's end (from the store). Also checks
that no node ever held more than 8 GPUs of trials at once. Target: utilization >= 0.95.

Reproduce: PYTHONPATH=$PWD python benchmarks/bench_utilization.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
NODES, GPUS = 4, 8


def spec(name: str, gpus: int, durations: list[float], concurrent: int) -> dict:
    return {"name": name, "preset": "tiny-cpu", "sampler": "grid",
            "overrides": {"data.dataset": "ok", "train.iterations": 3},
            "space": {"train.max_wallclock_seconds": {"grid": durations}},
            "resources": {"gpus": gpus, "cpus": 1}, "max_concurrent": concurrent,
            "worker": {"module": "contract_worker", "pythonpath": [str(HERE)], "launcher": "single"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every sleep by this")
    args = ap.parse_args()
    ray_tmp = tempfile.mkdtemp(prefix="ru", dir="/tmp")
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TMPDIR": ray_tmp})
    from ray.cluster_utils import Cluster

    from clowncar.store import open_store

    one = [round((30 + 60 * i / 47) * args.scale, 2) for i in range(48)]   # 30..90 s
    eight = [round((30 + 40 * i / 15) * args.scale, 2) for i in range(16)]  # 30..70 s
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    for _ in range(NODES):
        cluster.add_node(num_cpus=GPUS, num_gpus=GPUS)
    cluster.wait_for_nodes()
    with tempfile.TemporaryDirectory(prefix="ccutil") as d:
        tmp = Path(d)
        url = f"sqlite:///{tmp / 'store.db'}"
        env = {**os.environ, "PYTHONPATH": str(REPO), "CLOWNCAR_RUNS_DIR": str(tmp / "runs"), "CLOWNCAR_STORE": url}
        procs = []
        for s in (spec("util-1gpu", 1, one, NODES * GPUS), spec("util-8gpu", 8, eight, NODES)):
            path = tmp / f"{s['name']}.yaml"
            path.write_text(yaml.safe_dump(s))
            procs.append(subprocess.Popen([sys.executable, "-m", "clowncar", "sweep", "run", str(path), "--address",
                                           cluster.address, "--quiet"], env=env, cwd=tmp, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
        t0 = time.time()
        outs = [p.communicate()[0] for p in procs]
        if any(p.returncode for p in procs):
            sys.exit("a sweep failed:\n" + "\n".join(outs))
        frame = open_store(url).trials_frame(sweeps=["util-1gpu", "util-8gpu"])
        cluster.shutdown()
    frame["gpus"] = frame["sweep"].map({"util-1gpu": 1, "util-8gpu": 8})
    start, end = frame["started_at"].min(), frame["ended_at"].max()
    wall = (end - start).total_seconds()
    busy = float((frame["train.max_wallclock_seconds"] * frame["gpus"]).sum())
    held = float(((frame["ended_at"] - frame["started_at"]).dt.total_seconds() * frame["gpus"]).sum())
    events = sorted([(r.started_at, r.gpus, r.node) for r in frame.itertuples()] +
                    [(r.ended_at, -r.gpus, r.node) for r in frame.itertuples()], key=lambda e: (e[0], e[1]))
    per_node: dict[str, int] = {}
    peak = 0
    for _, delta, node in events:
        per_node[node] = per_node.get(node, 0) + delta
        peak = max(peak, per_node[node])
    print(f"\n{'quantity':<52} {'value':>10}")
    rows = [("trials (1-GPU + 8-GPU)", f"{(frame.gpus == 1).sum()} + {(frame.gpus == 8).sum()}"),
            ("statuses", ",".join(sorted(set(frame["status"])))),
            ("GPUs (4 nodes x 8)", NODES * GPUS), ("wall, first start to last end (s)", f"{wall:.1f}"),
            ("busy GPU-s (sleep x GPUs)", f"{busy:.0f}"), ("held GPU-s (trial start..end x GPUs)", f"{held:.0f}"),
            ("utilization busy / (GPUs x wall)", f"{busy / (NODES * GPUS * wall):.3f}"),
            ("held / (GPUs x wall)", f"{held / (NODES * GPUS * wall):.3f}"),
            ("most GPUs held on one node at once", peak),
            ("sweeps' own runtime (s)", f"{time.time() - t0:.1f}")]
    for name, value in rows:
        print(f"{name:<52} {value!s:>10}")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"reproduce: PYTHONPATH=$PWD python benchmarks/bench_utilization.py --scale {args.scale}")
    for pid_dir in Path("/proc").iterdir():  # Ray leftovers of this run, by PID
        if pid_dir.name.isdigit():
            try:
                if ray_tmp in (pid_dir / "cmdline").read_bytes().decode(errors="replace"):
                    os.kill(int(pid_dir.name), 9)
            except (OSError, ProcessLookupError):
                continue


if __name__ == "__main__":
    main()
