"""End to end with the real worker: `clowncar demo` builds the demo data and runs a sweep of real tiny-cpu
trials (training, quantization, sliding-window eval) on embedded Ray, recorded in the SQLite store, and writes
the signal report for it."""

from __future__ import annotations

import hashlib
import math
import os
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_real_tiny_cpu_trials_into_the_store(sweep_env, helpers) -> None:
    spec = sweep_env.spec("real", overrides={"data.dataset": "demo_sp1024", "train.iterations": 6,
                                             "train.max_wallclock_seconds": 20,
                                             "eval.max_tokens": 4096},
                          space={"model.crawler_loops": {"grid": [1, 2]}}, worker={"module": "clowncar.worker"})
    r = sweep_env.cli("demo", "--spec", str(spec), "--name", "real", "--num-cpus", "2", "--quiet", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "best trial" in r.stdout and "demo data built" in r.stdout
    report = next(Path(w) for w in r.stdout.split() if w.endswith("report.html"))
    assert report.is_file() and (report.parent / "report.json").is_file()  # the demo ends with the signal report
    assert "live dashboard on the same store: " in r.stdout and " dashboard --store sqlite:///" in r.stdout
    store = sweep_env.store()
    trials = store.trials_frame(sweeps="real")
    assert len(trials) == 2 and set(trials["status"]) == {"ok"}, trials[["status", "reason"]]
    for _, row in trials.iterrows():
        assert math.isfinite(row["q_sliding_val_bpb"]) and 0 < row["q_sliding_val_bpb"] < 12
        assert row["artifact_bytes"] > 0 and row["steps"] == 6
    steps = store.steps_frame(sweeps="real")
    assert (steps.groupby("trial_uid").size() == 6).all()
    assert not store.evals_frame(sweeps="real").empty
    assert sorted(trials["model.crawler_loops"]) == [1, 2]
    # each trial's model.ptz is in the artifacts table: where it is, its size and the digest of its bytes
    arts = store.artifacts_frame("real").set_index("trial_uid")
    assert sorted(arts.index) == sorted(trials["trial_uid"])
    for _, row in trials.iterrows():
        art = arts.loc[row["trial_uid"]]
        path = Path(art["path"])
        assert path.name == "model.ptz" and path.is_file()
        assert art["size_bytes"] == path.stat().st_size == row["artifact_file_bytes"]
        assert art["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def _pgid(pid: int) -> int | None:
    try:  # field 5 of /proc/PID/stat, after the parenthesised command name
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def _group_alive(pgid: int) -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _pgid(int(d.name)) == pgid]


def test_asha_stops_kill_the_real_workers_groups_and_a_killed_worker_is_recorded_crashed(sweep_env,
                                                                                        helpers) -> None:
    """Six real tiny-cpu trials under ASHA (three with zero learning rates, whose loss never falls, so some
    trial is always behind at a rung). The test SIGKILLs the first worker mid-training, as the OOM killer would.
    Every worker seen is watched by its process group: none is left once the sweep ends."""
    r = sweep_env.cli("data", "demo", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    name = "realasha"
    spec = sweep_env.spec(name, overrides={"data.dataset": "demo_sp1024", "train.iterations": 30,
                                           "train.max_wallclock_seconds": 120, "eval.max_tokens": 4096,
                                           "train.scalar_lr": 0.0, "train.tied_embed_lr": 0.0,
                                           # a constant LR: ASHA refuses rungs before a warm-down (rungs.py)
                                           "train.warmdown_iters": 0},
                          space={"train.matrix_lr": {"grid": [0.04, 0.0]}}, seeds=[1, 2, 3], max_concurrent=2,
                          scheduler={"type": "asha", "metric": "train_loss", "grace_period": 10,
                                     "reduction_factor": 2},
                          worker={"module": "clowncar.worker"})
    proc = sweep_env.popen("sweep", "run", str(spec), "--num-cpus", "2", "--quiet")
    marker = str(sweep_env.runs / "trials" / name)
    groups: dict[int, int] = {}  # worker pid -> its process group
    victim: Path | None = None
    deadline = time.time() + 900
    while proc.poll() is None and time.time() < deadline:
        for pid in helpers.pids_with(marker):
            # one reading of the command line: a worker that ends between two readings has none the second time
            line = helpers.cmdline(pid) or ""
            named = [a for a in line.split() if marker in a]
            if "clowncar.worker" in line and named and (g := _pgid(pid)) is not None:
                groups.setdefault(pid, g)
                trial_dir = Path(marker) / named[0].removeprefix(marker + "/").split("/")[0]
                events = trial_dir / "events.jsonl"
                if victim is not None or not events.is_file():
                    continue
                # training, and well before the first rung (step 10): a kill after the rung's report could meet
                # ASHA's stop of the same trial, which Tune records as pruned (seen in CI with a rung at step 4)
                if 2 <= events.read_text().count('"event":"step"') <= 6:
                    victim = trial_dir
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    assert victim is not None and len(groups) >= 6, (victim, groups)
    assert helpers.wait_for(lambda: not [g for g in set(groups.values()) if _group_alive(g)], 20), \
        {g: _group_alive(g) for g in set(groups.values())}

    trials = sweep_env.store().trials_frame(sweeps=name)
    assert len(trials) == 6, trials[["status", "reason"]]
    killed = trials[trials["trial_uid"] == f"{name}/{int(victim.name.split('-')[0])}"]
    assert list(killed["status"]) == ["crashed"], trials[["trial_uid", "status", "reason"]]
    assert "killed by signal 9 without result.json" in killed["reason"].iloc[0]
    pruned = trials[trials["status"] == "pruned"]
    assert len(pruned) >= 1, trials[["status", "train.matrix_lr", "reason"]]
    assert "stopped early by ASHA" in set(pruned["reason"])
    assert set(trials["status"]) <= {"ok", "pruned", "crashed"}
