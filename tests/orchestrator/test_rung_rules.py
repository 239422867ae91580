"""Where ASHA may compare trials (`orchestrator/rungs.py`) and when it must let one finish (`asha.py`), with the
exact step each learning-rate schedule starts to anneal at and the exact decision for each kind of report."""

from __future__ import annotations

from typing import Any

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from clowncar.config import TrainConfig
from clowncar.orchestrator.asha import FinishingASHA
from clowncar.orchestrator.rungs import annealing_from, asha_rungs, clock, measure_problem, rung_problem


def train(**fields: Any) -> TrainConfig:
    return TrainConfig(**{"iterations": 40, "warmdown_iters": 10, "max_wallclock_seconds": 0, **fields})


@pytest.mark.parametrize(("fields", "start", "why"), [
    ({"lr_schedule": "cosine", "lr_warmup_steps": 5}, 6, "cosine, after the 5-step LR warm-up"),
    ({"warmdown_iters": 0, "lr_warmup_steps": 3}, 4, "constant learning rate, after the 3-step LR warm-up"),
    ({"warmdown_iters": 1}, 40, "the warm-down covers the last 1 of 40 steps"),
    ({"warmdown_iters": 10}, 31, "the warm-down covers the last 10 of 40 steps"),
    ({"warmdown_iters": 30, "lr_hold_steps": 20}, 21, "the warm-down covers the last 30 of 40 steps"),
    ({"iterations": 10, "warmdown_iters": 20}, 1, "the warm-down covers the last 20 of 10 steps"),
    ({"max_wallclock_seconds": 0.5}, 31, "a wallclock warm-down of 10 steps starts at a step that depends on the "
                                         "step time; only the iteration limit (40) places it, by step 31"),
])
def test_the_anneal_starts_where_each_schedule_says(fields: dict[str, Any], start: int, why: str) -> None:
    assert annealing_from(train(**fields)) == (start, why)


def test_a_first_rung_at_the_end_of_the_run_or_after_the_anneal_is_fine() -> None:
    cfg = train()  # anneals from step 31
    assert rung_problem(cfg, 40, None) is None  # the only rung is the last step
    assert rung_problem(cfg, 50, None) is None
    assert rung_problem(cfg, 31, None) is None
    assert rung_problem(cfg, 30, None) == (
        "scheduler: ASHA's first rung (step 30) comes before the LR anneals (the warm-down covers the last 10 of 40 "
        "steps); a rung there ranks configs on un-annealed loss, which favours early boosts that fade "
        "(docs/seed_sweeps.md). Set scheduler.grace_period >= 31, or drop the scheduler")


def test_a_max_t_below_the_anneal_is_refused_as_it_makes_a_rung_there() -> None:
    # Tune ranks trials at a rung at max_t and stops the worse (checked on tiny-cpu: grace 10, max_t 10, STOP at
    # step 10); only reaching max_t itself stops no trial (stop_last_trials=False)
    cfg = train()  # 40 steps, anneals from step 31
    assert rung_problem(cfg, 10, 10) == (
        "scheduler: ASHA's first rung (step 10) comes before the LR anneals (the warm-down covers the last 10 of 40 "
        "steps); a rung there ranks configs on un-annealed loss, which favours early boosts that fade "
        "(docs/seed_sweeps.md). Set scheduler.max_t >= 31 (or leave it out: the trials' iterations) and "
        "scheduler.grace_period >= 31, or drop the scheduler")
    assert rung_problem(cfg, 50, 20).startswith("scheduler: ASHA's first rung (step 20) comes before")
    assert rung_problem(cfg, 10, 35).endswith("Set scheduler.grace_period >= 31, or drop the scheduler")
    assert rung_problem(cfg, 31, 35) is None and rung_problem(cfg, 50, 60) is None


def test_the_rungs_are_the_grace_period_times_powers_of_the_reduction_factor() -> None:
    assert asha_rungs(10, 2, 40) == [10, 20, 40]
    assert asha_rungs(10, 3, 100) == [10, 30, 90]
    assert asha_rungs(10, 1.5, 40) == [10, 15, 23, 34]  # 22.5 and 33.75: a trial reaches them at 23 and 34
    assert clock("val_bpb") == "val_bpb_step"


def test_a_metric_the_trials_never_measure_before_their_last_step_is_refused() -> None:
    assert measure_problem(train(), "val_bpb", 10, 2, None) == (
        "scheduler: ASHA's metric val_bpb is never measured before the last step (train.val_every 0: only the "
        "final eval measures it), so its rungs at steps 10, 20 compare nothing and stop no trial. Set "
        "train.val_every to 10 (it divides every rung), or use scheduler.metric: train_loss")
    assert measure_problem(train(), "probe_loss", 31, 2, None) == (
        "scheduler: ASHA's metric probe_loss is never measured before the last step (train.probe_every 0: no probe "
        "runs), so its rung at step 31 compares nothing and stops no trial. Set train.probe_every to 31 (it divides "
        "every rung), or use scheduler.metric: train_loss")
    assert measure_problem(train(val_every=40, log_every=4), "val_bpb", 12, 2, None) == (
        "scheduler: ASHA's metric val_bpb is never measured before the last step (train.val_every 40: its first "
        "measurement would be at step 40, and the run's last step is 40), so its rungs at steps 12, 24 compare "
        "nothing and stop no trial. Set train.val_every to 12 (it divides every rung), or use scheduler.metric: "
        "train_loss")  # every 4 steps, the training loss is measured at both rungs


def test_a_rung_between_two_measurements_is_refused_with_the_steps_where_they_are() -> None:
    assert measure_problem(train(probe_every=5), "probe_loss", 33, 2, None) == (
        "scheduler: ASHA's rung at step 33 falls between the steps where probe_loss is measured (every 5 steps, by "
        "train.probe_every): ASHA would judge it at step 35 instead. Set scheduler.grace_period to 35 (a multiple "
        "of 5), or train.probe_every to 33 (it divides every rung)")
    assert measure_problem(train(log_every=10), "train_loss", 5, 2, None) == (
        "scheduler: ASHA's rung at step 5 falls between the steps where train_loss is measured (step 1 and every 10 "
        "steps, by train.log_every): ASHA would judge it at step 10 instead. Set scheduler.grace_period to 10 (a "
        "multiple of 10), or train.log_every to 5 (it divides every rung)")
    # rungs 10, 15, 23, 34: the first ones measured, 23 not; the factor is what puts it between
    assert measure_problem(train(probe_every=5), "probe_loss", 10, 1.5, None).endswith(
        "rung at step 23 falls between the steps where probe_loss is measured (every 5 steps, by train.probe_every): "
        "ASHA would judge it at step 25 instead. Set scheduler.reduction_factor to a whole number (2 or 3)")
    assert measure_problem(train(val_every=20), "val_bpb", 10, 2, None).endswith(
        "rung at step 10 falls between the steps where val_bpb is measured (every 20 steps, by train.val_every): "
        "ASHA would judge it at step 20 instead. Set scheduler.grace_period to 20 (a multiple of 20), or "
        "train.val_every to 10 (it divides every rung)")
    assert measure_problem(train(log_every=50), "train_loss", 5, 2, None).endswith(
        "ASHA would never judge it (the next measurement is the last step, where no trial is stopped). Set "
        "train.log_every to 5 (it divides every rung)")


def test_rungs_on_measured_steps_or_none_before_the_last_step_are_fine() -> None:
    assert measure_problem(train(), "train_loss", 3, 2, None) is None  # log_every 1: every step
    assert measure_problem(train(log_every=7), "train_loss", 1, 7, None) is None  # step 1 and 7
    assert measure_problem(train(probe_every=5), "probe_loss", 35, 2, None) is None
    assert measure_problem(train(val_every=16), "val_bpb", 32, 3, 38) is None
    assert measure_problem(train(), "val_bpb", 40, 2, None) is None  # the only rung is the last step
    assert measure_problem(train(), "val_bpb", 50, 2, 60) is None  # past it


def _scheduler() -> FinishingASHA:
    return FinishingASHA(time_attr="train_loss_step", metric="train_loss", mode="min", max_t=40, grace_period=10,
                         reduction_factor=2, stop_last_trials=False)


def _with_two_better_trials(scheduler: FinishingASHA) -> Trial:
    """Two trials reported low losses at the first rung; the third, returned, has yet to report."""
    trials = [Trial("t", stub=True) for _ in range(3)]
    for t in trials:
        scheduler.on_trial_add(None, t)
    for t, loss in zip(trials, (1.5, 1.0), strict=False):  # each better than those before it
        assert scheduler.on_trial_result(None, t, {"step": 10, "train_loss": loss, "train_loss_step": 10,
                                                   "last_step": 40}) == TrialScheduler.CONTINUE
    return trials[2]


def test_a_bad_trial_at_a_rung_is_stopped() -> None:
    scheduler = _scheduler()
    worst = _with_two_better_trials(scheduler)
    assert scheduler.on_trial_result(None, worst, {"step": 10, "train_loss": 3.0, "train_loss_step": 10,
                                                   "last_step": 40}) == TrialScheduler.STOP


@pytest.mark.parametrize("result", [
    {"final": True, "step": 10, "train_loss": 3.0, "train_loss_step": 10, "last_step": 40},
    {"step": 40, "train_loss": 3.0, "train_loss_step": 10, "last_step": 40},
    {"step": 41, "train_loss": 3.0, "train_loss_step": 10, "last_step": 40},
])
def test_a_final_report_or_one_at_the_last_step_always_continues(result: dict[str, Any]) -> None:
    scheduler = _scheduler()
    worst = _with_two_better_trials(scheduler)
    assert scheduler.on_trial_result(None, worst, result) == TrialScheduler.CONTINUE


@pytest.mark.parametrize("last", [1, float("nan"), None, "40"])
def test_a_report_without_a_step_or_a_usable_last_step_is_asha_s_to_judge(last: Any) -> None:
    scheduler = _scheduler()
    worst = _with_two_better_trials(scheduler)
    result = {"train_loss": 3.0, "train_loss_step": 10, "last_step": last}  # no "step": it counts as step 0
    assert scheduler.on_trial_result(None, worst, result) == TrialScheduler.STOP
