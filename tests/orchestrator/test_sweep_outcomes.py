"""A sweep whose trials crash, diverge, go over the size cap or succeed: every outcome is stored with its status
and reason, the sweep goes on, the best trial is never an infeasible one, and nothing listens off loopback."""

from __future__ import annotations

import time

import pytest


@pytest.mark.slow
def test_failed_and_infeasible_trials_are_stored_and_never_best(sweep_env, helpers) -> None:
    spec = sweep_env.spec("mixed", overrides={"model.crawler_loops": 3, "train.iterations": 4,
                                              "train.max_wallclock_seconds": 0.4, "data.dataset": "ok"},
                          space={"data.dataset": {"grid": ["ok", "crash", "diverge", "overcap"]}})
    proc = sweep_env.popen("sweep", "run", str(spec), "--num-cpus", "2", "--quiet")
    bad: list[str] = []
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:  # check every Ray listener while the sweep runs
        bad += helpers.non_loopback_listeners({proc.pid, *helpers.pids_with(str(sweep_env.ray_tmp))})
        time.sleep(1.0)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert not bad, bad

    trials = sweep_env.store().trials_frame(sweeps="mixed").set_index("config_hash")
    by_mode = {row["data.dataset"]: row for _, row in trials.iterrows()}
    assert len(trials) == 4 and set(by_mode) == {"ok", "crash", "diverge", "overcap"}
    assert by_mode["ok"]["status"] == "ok"
    assert by_mode["crash"]["status"] == "crashed" and "without result.json" in by_mode["crash"]["reason"]
    assert by_mode["diverge"]["status"] == "diverged" and by_mode["diverge"]["reason"]
    assert by_mode["overcap"]["status"] == "ok" and "over the cap" in by_mode["overcap"]["reason"]

    study = sweep_env.study("mixed")
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    over = next(t for t in study.trials if t.params.get("data.dataset") == "overcap")
    assert over.values[0] < 1.1 and max(over.constraints.values()) > 0  # better objective, but infeasible
    ok = next(t for t in study.trials if t.params.get("data.dataset") == "ok")
    assert f"best trial {ok.user_attrs['clowncar_number']}:" in out, out

    steps = sweep_env.store().steps_frame(sweeps="mixed")
    assert not steps.duplicated(["trial_uid", "attempt", "step"]).any()
    assert (steps.groupby("trial_uid").size() <= 4).all()
    pids = sweep_env.worker_pids("mixed")
    assert len(pids) == 4 and not [p for p in pids if helpers.alive(p)]

    # A child sweep reruns the best config (never the infeasible one) over two new seeds, with lineage.
    r = sweep_env.cli("sweep", "rerun", "mixed", "--top", "1", "--seeds", "5,6", "--name", "mixed-seeds",
                      "--num-cpus", "2", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    store = sweep_env.store()
    assert store.get_sweep("mixed-seeds")["parent"] == "mixed"
    child = store.trials_frame(sweeps="mixed-seeds")
    assert sorted(child["train.seed"]) == [5, 6] and set(child["data.dataset"]) == {"ok"}
    assert set(child["status"]) == {"ok"}

    r = sweep_env.cli("sweep", "status", "mixed")
    assert r.returncode == 0 and f"trial {ok.user_attrs['clowncar_number']}: objective" in r.stdout, r.stdout
    assert "crashed 1" in r.stdout and "diverged 1" in r.stdout
    r = sweep_env.cli("sweep", "ls")
    assert r.returncode == 0 and "mixed-seeds" in r.stdout and "mixed" in r.stdout

    # --retry-failed runs the crashed trial again as a new attempt (this crash is for good, so it crashes
    # again); the diverged one would diverge again and is left, and nothing that finished runs twice.
    r = sweep_env.cli("sweep", "resume", "mixed", "--retry-failed", "--num-cpus", "2", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "requeued failed 1" in r.stdout, r.stdout
    store = sweep_env.store()
    attempts = {mode: [(a["attempt"], a["status"]) for a in store.get_trial(row["trial_uid"])["attempts"]]
                for mode, row in by_mode.items()}
    assert attempts == {"ok": [(0, "ok")], "crash": [(0, "crashed"), (1, "crashed")], "diverge": [(0, "diverged")],
                        "overcap": [(0, "ok")]}
    assert len(sweep_env.worker_pids("mixed")) == 5
