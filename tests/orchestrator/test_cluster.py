"""Fault tolerance on a simulated cluster: a head with 0 CPUs and two worker nodes with 8 logical GPUs each
(`ray.cluster_utils.Cluster`, loopback only), shared by the tests of this module. Sweeps run as a user runs them
(`clowncar sweep run --address ...` in a new process), so their drivers can be SIGKILLed."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clowncar.events import read_events

pytestmark = pytest.mark.slow
GPU_NODE = {"num_cpus": 2, "num_gpus": 8}


@pytest.fixture(scope="module")
def cluster(helpers) -> Iterator[Any]:
    with helpers.loopback_cluster(GPU_NODE, "rc") as c:
        yield c


def trial_dirs(env: Any, name: str) -> list[Path]:
    return sorted((env.runs / "trials" / name).glob("*-*"))


def trial_meta(env: Any, name: str) -> list[dict[str, Any]]:
    out = []
    for d in trial_dirs(env, name):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            out.append(json.loads((d / "trial.json").read_text()))
    return out


def test_eight_gpu_trials_land_one_per_node(cluster, sweep_env, helpers) -> None:
    spec = sweep_env.spec("place", resources={"gpus": 8, "cpus": 1}, max_concurrent=4,
                          overrides={"train.iterations": 6, "train.max_wallclock_seconds": 3.0},
                          space={"model.crawler_loops": {"grid": [1, 2, 3, 4]}},
                          worker={"launcher": "single"})
    r = sweep_env.cli("sweep", "run", str(spec), "--address", cluster.address, "--quiet", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    trials = sweep_env.store().trials_frame(sweeps="place")
    assert len(trials) == 4 and set(trials["status"]) == {"ok"}
    # Both nodes used. If this fails, the message shows per trial the node the GPU ledger granted and where Ray
    # ran it, and when: a grant to one node for all four, or a trial run off its granted node.
    placed = [(m.get("number"), m.get("node", "")[:12], m.get("node_id", "")[:12]) for m in trial_meta(sweep_env, "place")]
    assert trials["node"].nunique() == 2, (placed, trials[["node", "started_at", "ended_at"]].to_string())
    for _, group in trials.groupby("node"):  # never two 8-GPU trials on one node at once
        spans = sorted(zip(group["started_at"], group["ended_at"], strict=True))
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, spans
    assert {m["gpu_ids"] for m in trial_meta(sweep_env, "place")} == {"0,1,2,3,4,5,6,7"}


def test_worker_dies_with_its_trial_on_asha_stop_and_actor_kill(cluster, sweep_env, helpers) -> None:
    # ASHA: loops 1 and 3 learn slower (the contract worker's loss), so the scheduler stops them; each worker also
    # started a grandchild. A constant LR (no warm-down), so that rungs before the end are allowed
    # (orchestrator/rungs.py). Whether a trial of the first four is stopped depends on which reaches a rung first
    # (timing); sampler seed 8 orders the grid loops [2, 1, 3, 2 | 3, 1], so the two trials that start only
    # after one of the first four has ended are slow learners that meet rungs already holding both loops-2
    # trials: at least one stop does not depend on timing.
    spec = sweep_env.spec("asha", overrides={"data.dataset": "orphan", "train.iterations": 30,
                                             "train.max_wallclock_seconds": 9.0, "train.warmdown_iters": 0},
                          space={"model.crawler_loops": {"grid": [2, 1, 3]}}, sampler_seed=8,
                          seeds=[1, 2], max_concurrent=4,
                          scheduler={"type": "asha", "metric": "train_loss", "grace_period": 3,
                                     "reduction_factor": 2})
    r = sweep_env.cli("sweep", "run", str(spec), "--address", cluster.address, "--quiet", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    trials = sweep_env.store().trials_frame(sweeps="asha")
    assert "pruned" in set(trials["status"]), trials[["status", "model.crawler_loops"]]
    assert set(trials[trials["status"] == "pruned"]["model.crawler_loops"]) <= {1, 3}  # never the best learner
    asked = [t.params["model.crawler_loops"] for t in sorted(sweep_env.study("asha").trials, key=lambda t: t.number)]
    assert asked == [2, 1, 3, 2, 3, 1], asked  # the order the comment above relies on
    pids = sweep_env.worker_pids("asha")  # workers and their grandchildren
    assert len(pids) == 12
    assert helpers.wait_for(lambda: not [p for p in pids if helpers.alive(p)], 10), \
        [p for p in pids if helpers.alive(p)]

    # Actor SIGKILLed mid-trial (as by the OOM killer): Tune retries it; the old worker is gone by PID.
    spec = sweep_env.spec("actorkill", overrides={"train.iterations": 30, "train.max_wallclock_seconds": 6.0},
                          space={"model.crawler_loops": {"grid": [2]}}, max_failures=2)
    proc = sweep_env.popen("sweep", "run", str(spec), "--address", cluster.address, "--quiet")
    assert helpers.wait_for(lambda: any((d / "pid").exists() for d in trial_dirs(sweep_env, "actorkill")), 120)
    d = trial_dirs(sweep_env, "actorkill")[0]
    worker_pid = int((d / "pid").read_text())
    actor_pid = json.loads((d / "trial.json").read_text())["pid"]
    os.kill(actor_pid, signal.SIGKILL)
    assert helpers.wait_for(lambda: not helpers.alive(worker_pid), 10), "worker outlived its SIGKILLed actor"
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    trials = sweep_env.store().trials_frame(sweeps="actorkill")
    assert list(trials["status"]) == ["ok"]
    steps = sweep_env.store().steps_frame(sweeps="actorkill")
    assert len(steps) == 30 and not steps.duplicated(["trial_uid", "attempt", "step"]).any()


def _study_counts(env: Any, name: str) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(t.state.name for t in env.study(name).trials))


def test_driver_sigkill_then_resume_runs_only_unfinished_trials(cluster, sweep_env, helpers) -> None:
    spec = sweep_env.spec("resume", seeds=[1, 2], max_concurrent=2,
                          overrides={"train.iterations": 8, "train.max_wallclock_seconds": 2.0})
    addr = ("--address", cluster.address, "--quiet")
    # 1) killed just after the 2nd outcome was told to Optuna
    r = sweep_env.cli("sweep", "run", str(spec), *addr, extra={"CLOWNCAR_FAULT": "kill-after-tell:2"})
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert _study_counts(sweep_env, "resume").get("COMPLETE") == 2
    # 2) killed after the store got a final result but before Optuna was told
    r = sweep_env.cli("sweep", "resume", "resume", *addr, extra={"CLOWNCAR_FAULT": "kill-before-tell:1"})
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert "RUNNING" in _study_counts(sweep_env, "resume")
    # 3) killed in the middle of a trial (step rows already stored)
    before = {p for p in sweep_env.worker_pids("resume")}
    proc = sweep_env.popen("sweep", "resume", "resume", *addr)

    def a_new_trial_is_training() -> bool:
        return bool(set(sweep_env.worker_pids("resume")) - before)

    assert helpers.wait_for(a_new_trial_is_training, 120)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    pids = sweep_env.worker_pids("resume")
    assert helpers.wait_for(lambda: not [p for p in pids if helpers.alive(p)], 30), "worker outlived the driver"
    # 4) resume to the end
    r = sweep_env.cli("sweep", "resume", "resume", *addr)
    assert r.returncode == 0, r.stdout + r.stderr

    study = sweep_env.study("resume")
    counts = _study_counts(sweep_env, "resume")
    assert "RUNNING" not in counts and "WAITING" not in counts, counts
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    points = sorted((t.params.get("model.crawler_loops"), t.params.get("train.seed")) for t in complete)
    assert points == sorted((loops, seed) for loops in (1, 2, 3) for seed in (1, 2))  # as if never interrupted
    store = sweep_env.store()
    trials = store.trials_frame(sweeps="resume")
    assert len(trials) == 6 and set(trials["status"]) == {"ok"}
    for uid in trials["trial_uid"]:  # a trial that finished never ran again
        statuses = [a["status"] for a in store.get_trial(uid)["attempts"]]
        assert statuses.count("ok") == 1 and statuses[-1] == "ok", (uid, statuses)
    steps = store.steps_frame(sweeps="resume")
    assert not steps.duplicated(["trial_uid", "attempt", "step"]).any()
    assert (steps.groupby("trial_uid").size() == 8).all()


def test_node_killed_mid_trial_is_retried_on_the_other_node(cluster, sweep_env, helpers) -> None:
    spec = sweep_env.spec("nodekill", resources={"gpus": 8, "cpus": 1}, max_concurrent=2, max_failures=3,
                          overrides={"train.iterations": 20, "train.max_wallclock_seconds": 8.0},
                          space={"model.crawler_loops": {"grid": [1, 2, 3]}}, worker={"launcher": "single"})
    proc = sweep_env.popen("sweep", "run", str(spec), "--address", cluster.address, "--quiet")
    assert helpers.wait_for(lambda: any((d / "pid").exists() for d in trial_dirs(sweep_env, "nodekill")), 120)
    # the trial whose worker has started (with two running at once, the first folder's may not have yet)
    running = next(d for d in trial_dirs(sweep_env, "nodekill") if (d / "pid").exists())
    meta = json.loads((running / "trial.json").read_text())
    victim = next(n for n in cluster.workers if n.node_id == meta["node_id"])
    worker_pid = int((running / "pid").read_text())
    cluster.remove_node(victim, allow_graceful=False)
    assert helpers.wait_for(lambda: not helpers.alive(worker_pid), 30), "worker outlived its node"
    out = proc.communicate(timeout=400)[0]
    cluster.workers = [n for n in cluster.workers if n is not victim] + [helpers.add_worker_node(cluster, GPU_NODE, cluster.ray_tmp)]
    assert proc.returncode == 0, out
    store = sweep_env.store()
    trials = store.trials_frame(sweeps="nodekill")
    assert len(trials) == 3 and set(trials["status"]) == {"ok"}  # every trial exactly once
    steps = store.steps_frame(sweeps="nodekill")
    assert not steps.duplicated(["trial_uid", "attempt", "step"]).any()
    assert (steps.groupby("trial_uid").size() == 20).all()  # each trial's run: its latest attempt
    # The killed execution and Tune's retry are two attempts, each with its own node, rows and folder (walk 2,
    # finding 1: one attempt held the killed run's step rows and node with the retry's result).
    number = meta["number"]
    attempts = store.get_trial(f"nodekill/{number}")["attempts"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(0, "crashed"), (1, "ok")], attempts
    assert "Tune retried it as attempt 1" in attempts[0]["reason"]
    assert attempts[0]["node"].endswith(victim.node_id[:12]) and victim.node_id[:12] not in attempts[1]["node"]
    assert attempts[1]["started_at"] >= attempts[0]["ended_at"]
    retry = running.with_name(f"{number:05d}-1")
    assert json.loads((retry / "trial.json").read_text())["node_id"] != victim.node_id
    rows = store.steps_frame(sweeps="nodekill", trial_uids=f"nodekill/{number}", all_attempts=True)
    for attempt, folder in ((0, running), (1, retry)):  # the rows of each attempt are its own execution's
        written = {r["step"]: r["elapsed_ms"] for r in read_events(folder / "events.jsonl")[0] if r["event"] == "step"}
        stored = dict(zip(*(rows[rows["attempt"] == attempt][c].tolist() for c in ("step", "elapsed_ms")),
                          strict=True))
        assert stored.items() <= written.items() and (attempt == 0 or len(stored) == 20), (attempt, stored, written)
    line = f"trial {number}: its node died"
    assert line in out and "Tune runs it again as attempt 1 (retry 1 of max_failures 3)" in out, out
    assert "RpcError" not in out and "The actor " not in out, out  # Ray's text stays in ray-errors.log
