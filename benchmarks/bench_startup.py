"""Trial start-up, launch -> end of the first training step, with an empty and with a warm compile cache.

    PYTHONPATH=$PWD python benchmarks/bench_startup.py                   # tiny-cpu on CPU: eager, cold, warm
    PYTHONPATH=$PWD python benchmarks/bench_startup.py --device cuda --preset clowncar \\
        --set train.train_batch_tokens=98304 --set train.grad_accum=1   # one rank's share of an 8-GPU trial

Each run is launched as the trainable launches a trial: `worker_command` (the launch wrapper, then `python -m
clowncar.worker` on a trial.json) in `worker_env` (threads, CLOWNCAR_LAUNCH_TIME, the compile cache as
TORCHINDUCTOR_CACHE_DIR), on random-token shards and a tokenizer trained on this repository's text. Three
runs: eager; compiled into an empty cache directory (cold); compiled again into that directory (warm: what
every trial after the first on a node pays). The phases are the worker's own (result.json `startup`,
clowncar/worker/startup.py). Besides wall seconds the table gives the worker's CPU seconds: its own process up
to the first step (from result.json), and user + system for the whole trial including the compile worker
processes it reaped (os.wait4), which a loaded machine inflates far less than wall time. The load average is
printed with the table: on a shared machine wall times are only comparable within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

PHASE_ROWS = (("launch", "launch -> process start"), ("imports", "imports, config, process group"),
              ("data", "data: shards, tokenizer, byte tables, val tokens"), ("model", "model build"),
              ("optimizer", "optimizers"), ("compile", "torch.compile set-up, compile warm-up steps"),
              ("first_step", "first step"))
# Every run is a short trial: start-up is measured to its first step, and what follows is kept small.
SHORT = ["train.iterations=2", "train.max_wallclock_seconds=0", "train.probe_every=0", "train.val_every=0",
         "eval.stride=0", "eval.max_tokens=16384", "quant.enabled=false"]
# tiny-cpu has no compile warm-up: give it two steps, one of each kind (cadence 2), as a real trial compiles.
TINY_CPU = ["train.warmup_steps=2", "train.cadence=2"]


def launch_trial(config: dict[str, Any], out: Path, cache: Path, cpus: int) -> dict[str, Any]:
    """Run one trial the way the trainable does; its result.json plus wall and CPU seconds of the process."""
    from clowncar.orchestrator.trainable import TrialContext, worker_command, worker_env

    out.mkdir(parents=True)
    (out / "trial.json").write_text(json.dumps({"config": config}))
    ctx = TrialContext(sweep="bench", spec={}, runs_dir=str(out.parent), size_cap=16_000_000,
                       extra_env={"TORCHINDUCTOR_CACHE_DIR": str(cache)})
    cmd = worker_command("clowncar.worker", out / "trial.json", out, 1)
    t0 = time.time()
    with (out / "worker.out").open("wb") as log:
        proc = subprocess.Popen(cmd, env=worker_env(ctx, cpus, 0), stdout=log, stderr=subprocess.STDOUT,
                                cwd=out)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it: rusage covers the worker and its reaped children
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else {}
    if proc.returncode or not result.get("startup"):
        tail = (out / "worker.out").read_text(errors="replace")[-2000:]
        raise SystemExit(f"trial in {out} failed (exit {proc.returncode}): {result.get('reason')}\n{tail}")
    return {"result": result, "wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime}


RUNS = {"eager": ["train.compile=false", "train.compile_mode=default"],  # whatever mode the others compile in
        "compile, cold cache": ["train.compile=true"], "compile, warm cache": ["train.compile=true"]}


def measure(preset: str, overrides: list[str], device: str, root: Path, cpus: int,
            data: tuple[Path, Path] | None = None, runs: tuple[str, ...] = tuple(RUNS)
            ) -> dict[str, dict[str, Any]]:
    """Eager, compile with a cold cache, compile with the warm cache (in that order, one cache directory under
    `root`): {run name: launch_trial's dict}."""
    from clowncar.config_load import load_config

    if data is None:
        from bench_worker import make_dataset

        (root / "data").mkdir(parents=True)
        data = make_dataset(root / "data", train_tokens=400_000, val_tokens=40_000)
    shards, tokenizer = data
    base = [f"data.dataset={shards}", f"data.tokenizer={tokenizer}", f"train.device={device}", *SHORT,
            *overrides]
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(runs):
        cfg = load_config(preset=preset, overrides=[*base, *RUNS[name]])
        out[name] = launch_trial(cfg.to_dict(), root / f"run{i}", root / "compile-cache", cpus)
        out[name]["compile_mode"] = cfg.train.compile_mode if cfg.train.compile else "eager"
    return out


def table(runs: dict[str, dict[str, Any]]) -> list[str]:
    names = list(runs)
    lines = ["| seconds | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    for key, label in PHASE_ROWS:
        row(label, [f"{r['result']['startup'][key]:.2f}" for r in runs.values()])
    results = [r["result"] for r in runs.values()]
    row("**start-up, launch -> end of step 1**", [f"**{r['startup_seconds']:.2f}**" for r in results])
    row("worker process CPU to end of step 1", [f"{r['startup']['cpu_seconds']:.2f}" for r in results])
    row("compiled graphs: from the cache / compiled", [
        "-" if r["result"]["startup"].get("compile_cache_hits") is None else
        f"{r['result']['startup']['compile_cache_hits']} / {r['result']['startup']['compile_cache_misses']}"
        for r in runs.values()])
    row("whole trial: wall", [f"{r['wall_s']:.2f}" for r in runs.values()])
    row("whole trial: user + sys CPU (with compile workers)", [f"{r['user_s']:.2f} + {r['sys_s']:.2f}"
                                                               for r in runs.values()])
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny-cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs the trial gets (threads)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    overrides = [*(TINY_CPU if args.preset == "tiny-cpu" else []), *args.set]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        runs = measure(args.preset, overrides, args.device, Path(tmp), args.cpus)
    load_after = os.getloadavg()
    import torch

    print(f"trial start-up: preset {args.preset} on {args.device}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, {args.cpus} for the trial; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    print("\n".join(table(runs)))
    print("reproduce: PYTHONPATH=$PWD python benchmarks/bench_startup.py " + " ".join(argv))
    if args.json:
        slim = {name: {k: v for k, v in r.items() if k != "result"} | {"startup": r["result"]["startup"],
                "startup_seconds": r["result"]["startup_seconds"]} for name, r in runs.items()}
        Path(args.json).write_text(json.dumps({"load_before": load_before, "load_after": load_after,
                                               "runs": slim}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
