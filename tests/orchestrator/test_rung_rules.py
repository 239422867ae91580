"""Where ASHA may compare trials (`orchestrator/rungs.py`) and when it must let one finish (`asha.py`), with the
exact step each learning-rate schedule starts to anneal at and the exact decision for each kind of report."""

from __future__ import annotations

from typing import Any

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from clowncar.config import TrainConfig
from clowncar.orchestrator.asha import FinishingASHA
from clowncar.orchestrator.rungs import annealing_from, asha_rungs, clock, rung_problem


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
    assert rung_problem(cfg, 10, 10) is None  # max_t 10: the rung is the end of what ASHA sees
    assert rung_problem(cfg, 31, None) is None
    assert rung_problem(cfg, 30, None) == (
        "scheduler: ASHA's first rung (step 30) comes before the LR anneals (the warm-down covers the last 10 of 40 "
        "steps); a rung there ranks configs on un-annealed loss, which favours early boosts that fade "
        "(docs/seed_sweeps.md). Set scheduler.grace_period >= 31, or drop the scheduler")


def test_the_rungs_are_the_grace_period_times_powers_of_the_reduction_factor() -> None:
    assert asha_rungs(10, 2, 40) == [10, 20, 40]
    assert asha_rungs(10, 3, 100) == [10, 30, 90]
    assert clock("val_bpb") == "val_bpb_step"


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
