"""Budgets and samplers through `clowncar sweep run` on embedded Ray with the contract worker: a GPU-hour budget
starts no trial that would exceed it, `max_trials` is exact under concurrency, both end with the reason in the
store and `sweep status`, and resume starts nothing more; the gp sampler (Optuna 5's GPSampler, torch + scipy)
runs past its random start-up trials; nsga2 optimizes BPB and artifact bytes together and reports the feasible
Pareto front, never an infeasible trial as best."""

from __future__ import annotations

from typing import Any

import pytest

from clowncar.orchestrator.search import STARTED

pytestmark = pytest.mark.slow


def _complete(env: Any, name: str) -> list[Any]:
    """The study's trials that ran (a repeated suggestion is told FAIL and never runs: suggest.py)."""
    trials = sorted((t for t in env.study(name).trials if t.user_attrs.get("clowncar_duplicate_of") is None),
                    key=lambda t: t.number)
    assert {t.state.name for t in trials} == {"COMPLETE"}, [t.state.name for t in trials]
    return trials


def _resume_starts_nothing(env: Any, name: str, reason: str, *extra: str) -> str:
    """`sweep resume` of an ended sweep runs nothing; `sweep status` says why it ended. Returns the status."""
    before = len(env.study(name).trials)
    r = env.cli("sweep", "resume", name, "--num-cpus", "2", "--quiet", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ended: {reason}" in r.stdout and "ran " not in r.stdout, r.stdout
    assert len(env.study(name).trials) == before
    status = env.cli("sweep", "status", name)
    assert status.returncode == 0 and f"ended: {reason}" in status.stdout and ": done," in status.stdout, status.stdout
    return status.stdout


def test_gpu_hour_budget_never_starts_a_trial_that_would_exceed_it(sweep_env) -> None:
    cap_s, estimate = 5.0, 2.0  # GPU-seconds; ~1 s trials on 1 logical GPU: a few fit, far fewer than max_trials
    # 8 configs: the search ends on the GPU hours, not because every config has run (one trial per config)
    spec = sweep_env.spec("gpubudget", sampler="random", space={"model.crawler_loops": {"int": [1, 8]}},
                          resources={"gpus": 1}, max_concurrent=1,
                          overrides={"train.iterations": 4, "train.max_wallclock_seconds": 1.0},
                          budget={"max_trials": 10, "max_gpu_hours": cap_s / 3600,
                                  "trial_seconds_estimate": estimate})
    r = sweep_env.cli("sweep", "run", str(spec), "--num-cpus", "2", "--num-gpus", "1", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ended: GPU-hour budget reached" in r.stdout, r.stdout

    trials = _complete(sweep_env, "gpubudget")
    assert 1 <= len(trials) < 10
    used, walls = 0.0, []
    for t in trials:  # one at a time: each was started only if what was used plus what it should take fit the cap
        expected = sum(walls) / len(walls) if walls else estimate  # a trial's wall from its ask: the estimate
        assert used + expected <= cap_s + 1e-6, (used, expected, walls)
        walls.append((t.datetime_complete - t.datetime_start).total_seconds())
        used += t.datetime_complete.timestamp() - t.user_attrs[STARTED]  # billed from its worker's start
    assert used + sum(walls) / len(walls) > cap_s, (used, walls)  # and the next one would not have fit
    frame = sweep_env.store().trials_frame(sweeps="gpubudget")
    assert len(frame) == len(trials) and set(frame["status"]) == {"ok"}
    status = _resume_starts_nothing(sweep_env, "gpubudget", "GPU-hour budget reached", "--num-gpus", "1")
    assert f"GPU-hours used: {used / 3600:.4f} of {cap_s / 3600:g}" in status, status


def test_gp_sampler_runs_exactly_max_trials_past_its_startup_trials(sweep_env) -> None:
    # GPSampler samples at random for its start-up trials (3 for a 12-trial budget, suggest.startup_trials), then
    # fits a Gaussian process (torch) for every later trial, so the GP path runs.
    spec = sweep_env.spec("gp", sampler="gp", budget={"max_trials": 12}, max_concurrent=2,
                          overrides={"train.iterations": 2, "train.max_wallclock_seconds": 0.1},
                          space={"model.crawler_loops": {"int": [1, 4]},
                                 "train.matrix_lr": {"float": [0.01, 0.1], "log": True}})
    r = sweep_env.cli("sweep", "run", str(spec), "--num-cpus", "2", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "optuna trials complete 12" in r.stdout, r.stdout
    assert "ended: max_trials reached: 12 finished, 0 running" in r.stdout, r.stdout
    assert "Define-by-run" not in r.stderr, r.stderr  # the GP fit's time is not blamed on the search space
    trials = _complete(sweep_env, "gp")
    assert len(trials) == 12  # not one more, although two were running when the budget was reached
    for t in trials:
        assert 1 <= t.params["model.crawler_loops"] <= 4 and 0.01 <= t.params["train.matrix_lr"] <= 0.1
    frame = sweep_env.store().trials_frame(sweeps="gp")
    assert len(frame) == 12 and set(frame["status"]) == {"ok"}
    best = min(trials, key=lambda t: t.values[0])
    assert f"best trial {best.user_attrs['clowncar_number']}: quantized BPB {best.values[0]:.6f}" in r.stdout
    _resume_starts_nothing(sweep_env, "gp", "max_trials reached")


def test_a_random_search_runs_each_config_once_and_ends_when_all_have_run(sweep_env) -> None:
    spec = sweep_env.spec("once", sampler="random", budget={"max_trials": 6}, max_concurrent=2,
                          overrides={"train.iterations": 2, "train.max_wallclock_seconds": 0.1},
                          space={"model.crawler_loops": {"choice": [1, 2, 3]}})
    r = sweep_env.cli("sweep", "run", str(spec), "--num-cpus", "2", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ended: every distinct config of the search space has run" in r.stdout, r.stdout
    assert r.stderr == "", r.stderr  # a sweep that went well says nothing on stderr, Tune's warnings included
    trials = _complete(sweep_env, "once")
    assert sorted(t.params["model.crawler_loops"] for t in trials) == [1, 2, 3]
    frame = sweep_env.store().trials_frame(sweeps="once")
    assert len(frame) == 3 and set(frame["status"]) == {"ok"}  # repeats never reached the store
    _resume_starts_nothing(sweep_env, "once", "every distinct config of the search space has run")


def _feasible_front(trials: list[Any]) -> set[int]:
    ok = [t for t in trials if max(t.constraints.values()) <= 0]
    return {t.user_attrs["clowncar_number"] for t in ok
            if not any(all(a <= b for a, b in zip(o.values, t.values, strict=True)) and o.values != t.values
                       for o in ok)}


def test_nsga2_reports_the_feasible_pareto_front_of_bpb_and_bytes(sweep_env) -> None:
    # Every (loops, ok|overcap) point first, then NSGA-II's own picks. The contract worker makes loops 1 the
    # smallest artifact and loops 2 the best BPB; `overcap` scores better still but is twice the size cap.
    points = [{"model.crawler_loops": n, "data.dataset": mode} for mode in ("ok", "overcap") for n in (1, 2, 3)]
    spec = sweep_env.spec("pareto", sampler="nsga2", enqueue=points, budget={"max_trials": 9}, max_concurrent=2,
                          overrides={"train.iterations": 2, "train.max_wallclock_seconds": 0.1},
                          space={"model.crawler_loops": {"choice": [1, 2, 3]},
                                 "data.dataset": {"choice": ["ok", "overcap"]}})
    r = sweep_env.cli("sweep", "run", str(spec), "--num-cpus", "2", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr

    study = sweep_env.study("pareto")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    trials = _complete(sweep_env, "pareto")
    assert len(trials) == 9 and all(len(t.values) == 2 for t in trials)
    for t in trials:  # both values told, and the size cap told as a constraint
        over = t.params["data.dataset"] == "overcap"
        assert (max(t.constraints.values()) > 0) == over
    front = _feasible_front(trials)
    by_point = {(t.params["model.crawler_loops"], t.params["data.dataset"]): t.user_attrs["clowncar_number"]
                for t in trials[:6]}
    assert {by_point[(1, "ok")], by_point[(2, "ok")]} <= front
    assert not front & {by_point[(n, "overcap")] for n in (1, 2, 3)}

    def front_lines(text: str) -> set[int]:
        return {int(line.split("trial ")[1].split(":")[0]) for line in text.splitlines()
                if line.strip().startswith("trial ") and " B (" in line}

    assert front_lines(r.stdout) == front, r.stdout
    best_feasible = min((t for t in trials if max(t.constraints.values()) <= 0), key=lambda t: t.values[0])
    best_overall = min(trials, key=lambda t: t.values[0])
    assert best_overall.params["data.dataset"] == "overcap"  # the trap: better BPB, over the cap
    assert f"best trial {best_feasible.user_attrs['clowncar_number']}:" in r.stdout, r.stdout
    status = sweep_env.cli("sweep", "status", "pareto")
    assert status.returncode == 0 and front_lines(status.stdout) == front, status.stdout
    assert f"trial {best_feasible.user_attrs['clowncar_number']}: objective" in status.stdout

    frame = sweep_env.store().trials_frame(sweeps="pareto")  # the store has both values of every trial
    assert len(frame) == 9 and frame["artifact_bytes"].notna().all() and frame["q_sliding_val_bpb"].notna().all()
