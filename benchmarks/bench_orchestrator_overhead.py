"""Per-trial overhead of clowncar's orchestration vs bare Ray Tune, side by side in one run.

Three measurements on the same machine, same concurrency (2), same actor reuse (on, as clowncar runs):
1. the worker process's own start-up: the contract worker (benchmarks/contract_worker.py) launched alone through
   the launch wrapper, exiting at once with a valid result.json;
2. `clowncar sweep run` of 100 such trials (random sampler, Optuna study in a SQLite store, store callback);
3. bare Ray Tune: 100 function trials that report once and return, OptunaSearch on a SQLite RDBStorage.
Times are Tuner.fit() wall seconds / trials (Ray start-up excluded for both). Target:
clowncar s/trial - worker start-up < 1.5 x bare Tune s/trial.

Reproduce: PYTHONPATH=$PWD python benchmarks/bench_orchestrator_overhead.py [--trials 100] [--no-reuse-too]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"


def worker_startup(tmp: Path, reps: int = 10) -> float:
    from clowncar.config_load import load_config

    cfg = load_config(preset="tiny-cpu", overrides=["train.iterations=1", "train.max_wallclock_seconds=0",
                                                    "data.dataset=ok"])
    (tmp / "trial.json").write_text(json.dumps({"config": cfg.to_dict()}))
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}"}
    times = []
    for i in range(reps):
        out = tmp / f"w{i}"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "clowncar.orchestrator.launch", "contract_worker",
                        str(tmp / "trial.json"), "--out", str(out)], check=True, env=env)
        times.append(time.perf_counter() - t0)
        assert (out / "result.json").exists()
    return sorted(times)[len(times) // 2]


def clowncar_run(tmp: Path, trials: int) -> float:
    spec = {"name": "overhead", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": trials},
            "overrides": {"data.dataset": "ok", "train.iterations": 1, "train.max_wallclock_seconds": 0},
            "space": {"train.matrix_lr": {"float": [0.001, 0.1], "log": True}},
            "max_concurrent": 2, "resources": {"cpus": 1},
            "worker": {"module": "contract_worker"}}  # registered by HERE's entry point, on PYTHONPATH below
    path = tmp / "overhead.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]), "CLOWNCAR_RUNS_DIR": str(tmp / "runs"),
           "CLOWNCAR_STORE": f"sqlite:///{tmp / 'store.db'}"}
    r = subprocess.run([sys.executable, "-m", "clowncar", "sweep", "run", str(path), "--num-cpus", "2", "--quiet"],
                       capture_output=True, text=True, env=env, cwd=tmp)
    if r.returncode != 0:
        sys.exit(f"clowncar sweep failed:\n{r.stdout}\n{r.stderr}")
    m = re.search(r"ran (\d+) trials in ([\d.]+)s", r.stdout)
    assert m and int(m.group(1)) == trials, r.stdout
    return float(m.group(2))


BARE = textwrap.dedent("""
    import os, sys, time
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    import optuna, ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch
    trials, reuse, url = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    def trainable(config):
        tune.report({"objective": config["lr"] ** 2})
    search = OptunaSearch(space={"lr": optuna.distributions.FloatDistribution(0.001, 0.1, log=True)},
                          metric="objective", mode="min", sampler=optuna.samplers.RandomSampler(seed=0),
                          study_name="bare", storage=optuna.storages.RDBStorage(url))
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                       tune_config=tune.TuneConfig(search_alg=search, num_samples=trials, max_concurrent_trials=2,
                                                   reuse_actors=reuse),
                       run_config=tune.RunConfig(storage_path=sys.argv[4], verbose=0))
    t0 = time.time()
    grid = tuner.fit()
    print("FIT", time.time() - t0, len(grid))
""")


def bare_tune(tmp: Path, trials: int, reuse: bool) -> float:
    tag = "reuse" if reuse else "noreuse"
    r = subprocess.run([sys.executable, "-c", BARE, str(trials), "1" if reuse else "0",
                        f"sqlite:///{tmp / f'bare-{tag}.db'}", str(tmp / f"tune-{tag}")],
                       capture_output=True, text=True)
    m = re.search(r"FIT ([\d.]+) (\d+)", r.stdout)
    if not m:
        sys.exit(f"bare Tune failed:\n{r.stdout}\n{r.stderr}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--no-reuse-too", action="store_true", help="also time bare Tune without actor reuse")
    args = ap.parse_args()
    n = args.trials
    with tempfile.TemporaryDirectory(prefix="ccbench") as d:
        tmp = Path(d)
        startup = worker_startup(tmp)
        cc = clowncar_run(tmp, n) / n
        bare = bare_tune(tmp, n, reuse=True) / n
        rows = [("worker start-up alone (median of 10)", startup),
                (f"clowncar sweep run, {n} trials, reuse_actors=True", cc),
                (f"bare Ray Tune + OptunaSearch, {n} trials, reuse_actors=True", bare)]
        if args.no_reuse_too:
            rows.append((f"bare Ray Tune + OptunaSearch, {n} trials, reuse_actors=False",
                         bare_tune(tmp, n, reuse=False) / n))
    print(f"\n{'measurement':<62} {'s/trial':>8}")
    for name, value in rows:
        print(f"{name:<62} {value:>8.3f}")
    ratio = (cc - startup) / bare
    print(f"\n(clowncar - worker start-up) / bare Tune = {ratio:.2f}x  (target < 1.5x: "
          f"{'met' if ratio < 1.5 else 'NOT met'})")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("reproduce: PYTHONPATH=$PWD python benchmarks/bench_orchestrator_overhead.py --trials "
          f"{n}{' --no-reuse-too' if args.no_reuse_too else ''}")


if __name__ == "__main__":
    main()
