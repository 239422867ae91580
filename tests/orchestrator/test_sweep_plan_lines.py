"""What `clowncar sweep plan` prints (`orchestrator/sweep_plan.py`), computed in this process and checked line by
line against hand-counted plans: distinct trials, merged points grouped by the trial they repeat, and the cost."""

from __future__ import annotations

from typing import Any

import pytest

from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.suggest import trials_to_run
from clowncar.orchestrator.sweep_plan import MERGED_SHOWN, make_plan, plan_lines

LOOPS, CADENCE, WALL = "model.crawler_loops", "train.cadence", "train.max_wallclock_seconds"
MEASURED = "; the driver uses the measured trial times once trials finish"
FROM_CAP = ("  per trial: train.max_wallclock_seconds + 10 % (the training cap: evaluation, quantization and compilation "
            "come on top)" + MEASURED)
FROM_ESTIMATE = "  per trial: budget.trial_seconds_estimate" + MEASURED


def spec_of(**fields: Any) -> Any:
    return spec_from_dict({"name": "p", "preset": "tiny-cpu", **fields})


def test_a_grid_counts_its_points_merges_the_moot_ones_and_costs_the_rest_on_cpu() -> None:
    # crawler_loops 1 makes the cadence moot: (1, 3) repeats (1, 2); tiny-cpu trials are 60 s + 10 %
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [1, 2]}, CADENCE: {"grid": [2, 3]}})
    assert plan_lines(spec) == [
        "sweep p (grid): 4 grid points, 3 distinct trials",
        "  merged before the start (1 point would repeat another's trial, same config hash):",
        "    model.crawler_loops=1: train.cadence=3 -> runs as train.cadence=2",
        "  estimated: 3.3 trial-minutes on CPU (3 trials x 66 s on average, no GPU)", FROM_CAP]
    plan = make_plan(spec)
    assert (plan.points, plan.distinct, plan.trials, plan.gpus) == (4, 3, 3, 0)
    assert plan.trial_seconds == 3 * 66.0 and plan.gpu_hours == 0.0


def test_a_gpu_grid_within_a_budget_runs_its_longest_trials_and_says_what_stops_it() -> None:
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [1, 2]}, CADENCE: {"grid": [2, 3]}, WALL: {"grid": [100, 200]}},
                   budget={"max_trials": 4, "max_gpu_hours": 0.1}, resources={"gpus": 2},
                   scheduler={"type": "asha", "grace_period": 40})
    plan = make_plan(spec)
    assert (plan.points, plan.distinct, plan.trials) == (8, 6, 4)
    assert plan.trial_seconds == pytest.approx(3 * 220.0 + 110.0)  # the three 200-s trials, then a 100-s one
    assert plan.gpu_hours == plan.trial_seconds * 2 / 3600
    assert plan_lines(spec) == [
        "sweep p (grid): 8 grid points, 6 distinct trials; runs 4 (budget.max_trials)",
        "  merged before the start (2 points would repeat another's trial, same config hash):",
        "    model.crawler_loops=1, train.max_wallclock_seconds=100: train.cadence=3 -> runs as train.cadence=2",
        "    model.crawler_loops=1, train.max_wallclock_seconds=200: train.cadence=3 -> runs as train.cadence=2",
        "  estimated: 25.7 GPU-minutes (4 trials x 2 GPUs x 193 s on average; budget.max_gpu_hours 0.1 stops it "
        "sooner); ASHA may stop trials early: this is the most it takes", FROM_CAP]


def test_a_gpu_budget_above_the_cost_does_not_stop_it_sooner_but_is_named_as_the_cap_on_measured_time() -> None:
    # a week's grid whose trials take twice the training cap (evaluation on one GPU) stops at the budget: the
    # plan names it even when the estimate fits under it
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [2, 3]}}, budget={"max_trials": 2, "max_gpu_hours": 5},
                   resources={"gpus": 1})
    assert plan_lines(spec)[-2:] == ["  estimated: 2.2 GPU-minutes (2 trials x 1 GPU x 66 s on average)",
                                     FROM_CAP + "; budget.max_gpu_hours 5 stops the sweep if they add up to it"]


def test_a_sampled_sweep_costs_its_queued_points_then_the_rest_at_the_expected_length() -> None:
    spec = spec_of(sampler="random", budget={"max_trials": 5}, space={"train.matrix_lr": {"float": [0.01, 0.1]}},
                   enqueue=[{LOOPS: 1, CADENCE: 2}, {LOOPS: 1, CADENCE: 3}, {LOOPS: 2, WALL: 200}])
    plan = make_plan(spec)
    assert (plan.points, plan.distinct, plan.trials, plan.trial_seconds) == (3, 2, 5, 220.0 + 66.0 * 4)
    assert plan_lines(spec) == [
        "sweep p (random): 3 enqueued points, 2 distinct trials; runs 5 trials (budget.max_trials), the rest sampled",
        "  merged before the start (1 point would repeat another's trial, same config hash):",
        "    model.crawler_loops=1: train.cadence=3 -> runs as train.cadence=2",
        "  estimated: 8.1 trial-minutes on CPU (5 trials x 97 s on average, no GPU)", FROM_CAP]


def test_a_sweep_of_queued_points_only_says_nothing_is_sampled_or_how_much_of_the_queue_runs() -> None:
    queue = [{LOOPS: 1}, {LOOPS: 2}, {LOOPS: 3}]
    assert plan_lines(spec_of(sampler="random", budget={"max_trials": 3}, enqueue=queue))[0] == (
        "sweep p (random): 3 enqueued points, 3 distinct trials; runs 3 trials (budget.max_trials), nothing sampled")
    assert plan_lines(spec_of(sampler="random", budget={"max_trials": 2}, enqueue=queue))[0] == (
        "sweep p (random): 3 enqueued points, 3 distinct trials; runs 2 trials (budget.max_trials), only the first 2 "
        "of the queue")
    assert plan_lines(spec_of(sampler="tpe", enqueue=queue))[0] == (  # no budget: the queue is what bounds it
        "sweep p (tpe): 3 enqueued points, 3 distinct trials; runs 3 trials (every queued config; no "
        "budget.max_trials), nothing sampled")


def test_a_point_queued_twice_says_so_instead_of_an_empty_difference() -> None:
    spec = spec_of(sampler="random", budget={"max_trials": 2},
                   enqueue=[{LOOPS: 2, CADENCE: 3}, {LOOPS: 2, CADENCE: 3}, {LOOPS: 3}, {LOOPS: 2, CADENCE: 3}])
    assert plan_lines(spec)[2] == "    model.crawler_loops=2, train.cadence=3: listed 3 times -> runs once"
    mixed = spec_of(sampler="random", budget={"max_trials": 1},
                    enqueue=[{LOOPS: 1, CADENCE: 2}, {LOOPS: 1, CADENCE: 2}, {LOOPS: 1, CADENCE: 3}])
    assert plan_lines(mixed)[2] == ("    model.crawler_loops=1: train.cadence=2 | train.cadence=3 -> runs as "
                                    "train.cadence=2")  # the repeat named by what it shares with the others
    base = spec_of(sampler="random", budget={"max_trials": 2}, enqueue=[{}, {LOOPS: 3}, {}, {LOOPS: 3}])
    assert plan_lines(base)[2:4] == ["    the base config: listed 2 times -> runs once",
                                     "    model.crawler_loops=3: listed 2 times -> runs once"]  # every group has its line
    defaults = spec_of(sampler="random", budget={"max_trials": 1}, enqueue=[{LOOPS: 3, CADENCE: 1}, {LOOPS: 3}])
    assert plan_lines(defaults)[2] == "    model.crawler_loops=3: (the defaults) -> runs as train.cadence=1"


def test_points_that_share_no_value_are_labelled_by_the_base_config() -> None:
    named = spec_of(sampler="grid", points={"a": {LOOPS: 2}, "b": {CADENCE: 1}})  # tiny-cpu's loops 2, cadence 1
    assert plan_lines(named)[2] == "    the base config: point=b -> runs as point=a"
    queued = spec_of(sampler="random", budget={"max_trials": 1}, enqueue=[{}, {LOOPS: 2}])  # tiny-cpu's loops: 2
    assert plan_lines(queued)[2] == "    the base config: model.crawler_loops=2 -> runs as (the defaults)"


def test_named_points_that_set_the_same_values_are_labelled_by_them_not_by_the_base_config() -> None:
    alike = spec_of(sampler="grid", points={"a": {LOOPS: 3, CADENCE: 2}, "b": {LOOPS: 3, CADENCE: 2}, "c": {LOOPS: 1}})
    assert plan_lines(alike)[2] == "    model.crawler_loops=3, train.cadence=2: point=b -> runs as point=a"


def test_points_merged_into_one_trial_share_a_line_and_a_long_list_is_cut() -> None:
    one = spec_of(sampler="grid", space={LOOPS: {"grid": [1]}, CADENCE: {"grid": [2, 3, 4]}})
    assert plan_lines(one)[2] == "    model.crawler_loops=1: train.cadence=3 | train.cadence=4 -> runs as train.cadence=2"
    lrs = [round(0.01 + 0.001 * i, 3) for i in range(MERGED_SHOWN + 2)]
    many = spec_of(sampler="grid", space={LOOPS: {"grid": [1]}, CADENCE: {"grid": [2, 3]}, "train.matrix_lr": {"grid": lrs}})
    lines = plan_lines(many)
    assert lines[1].startswith(f"  merged before the start ({MERGED_SHOWN + 2} points")
    assert lines[2] == "    model.crawler_loops=1, train.matrix_lr=0.01: train.cadence=3 -> runs as train.cadence=2"
    assert lines[2 + MERGED_SHOWN] == "    ... and 2 more" and len(lines) == MERGED_SHOWN + 5


def test_a_plan_without_merges_or_a_budget_cut_is_three_lines() -> None:
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [2, 3]}})
    assert plan_lines(spec) == ["sweep p (grid): 2 grid points, 2 distinct trials",
                                "  estimated: 2.2 trial-minutes on CPU (2 trials x 66 s on average, no GPU)",
                                FROM_CAP]
    assert make_plan(spec_of(sampler="random", budget={"max_trials": 3},
                             space={"train.matrix_lr": {"float": [0.01, 0.1]}})).trial_seconds == 3 * 66.0


def test_a_grid_with_queued_points_counts_both_and_one_trial_is_its_own_mean() -> None:
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [2, 3]}}, enqueue=[{LOOPS: 3, WALL: 30}])
    plan = make_plan(spec)
    assert (plan.points, plan.distinct, plan.trials) == (3, 3, 3)
    single = spec_of(sampler="grid", space={LOOPS: {"grid": [2]}}, budget={"max_trials": 1,
                                                                        "trial_seconds_estimate": 90})
    assert plan_lines(single)[-2:] == ["  estimated: 1.5 trial-minutes on CPU (1 trial x 90 s on average, no GPU)",
                                       FROM_ESTIMATE]


def test_a_gpu_budget_equal_to_the_cost_does_not_stop_it_sooner() -> None:
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [2]}}, resources={"gpus": 1},
                   budget={"max_trials": 1, "max_gpu_hours": 0.01, "trial_seconds_estimate": 36})
    assert make_plan(spec).gpu_hours == 0.01
    assert plan_lines(spec)[-2:] == ["  estimated: 36 GPU-seconds (1 trial x 1 GPU x 36 s on average)",
                                     FROM_ESTIMATE + "; budget.max_gpu_hours 0.01 stops the sweep if they add up to it"]


def test_exactly_as_many_merged_lines_as_are_shown_need_no_count() -> None:
    lrs = [round(0.01 + 0.001 * i, 3) for i in range(MERGED_SHOWN)]
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [1]}, CADENCE: {"grid": [2, 3]}, "train.matrix_lr": {"grid": lrs}})
    lines = plan_lines(spec)
    assert len(lines) == MERGED_SHOWN + 4 and not any(line.startswith("    ... and") for line in lines)


REFERENCE_WARNING = ("  tests 1a/1b: {} of the {} trials that alternate C- and N-steps have no cadence-0 or cadence-1 "
                     "trial on their token stream (same shards, batch tokens, sequence length): the report cannot "
                     "cancel the batches all runs share (docs/signals.md)")


def test_a_grid_whose_alternating_trials_have_no_one_kind_trial_on_their_stream_is_warned_about() -> None:
    lines = plan_lines(spec_of(sampler="grid", space={LOOPS: {"grid": [2, 3]}, CADENCE: {"grid": [2, 4]}}))
    assert lines[-1] == REFERENCE_WARNING.format(4, 4)


@pytest.mark.parametrize("space", [
    {LOOPS: {"grid": [2, 3]}, CADENCE: {"grid": [1, 2, 4]}},  # cadence 1: all C-steps
    {LOOPS: {"grid": [2, 3]}, CADENCE: {"grid": [0, 2]}},  # cadence 0: all N-steps
    {LOOPS: {"grid": [1, 2]}, CADENCE: {"grid": [2, 3]}},  # one loop: the cadence is moot and runs as 1
    {LOOPS: {"grid": [2, 3]}},  # the preset's cadence 1: nothing alternates
])
def test_a_grid_with_a_one_kind_trial_on_every_stream_is_not_warned_about(space: dict[str, Any]) -> None:
    assert not any("1a/1b" in line for line in plan_lines(spec_of(sampler="grid", space=space)))


def test_the_one_kind_trial_must_read_the_same_stream() -> None:
    batch = "train.train_batch_tokens"
    spec = spec_of(sampler="grid", overrides={CADENCE: 2}, space={LOOPS: {"grid": [2]}, batch: {"grid": [512, 1024]}},
                   enqueue=[{LOOPS: 2, CADENCE: 1, batch: 512}])  # a queued value is one of its grid's: 1 overrides
    assert plan_lines(spec)[-1] == REFERENCE_WARNING.format(1, 2)
    phased = spec_of(sampler="grid", space={LOOPS: {"grid": [2]}, CADENCE: {"grid": [2]}},
                     enqueue=[{LOOPS: 2, "train.cadence_phased": True, "train.cadence_early": 1,
                               "train.cadence_main": 1, "train.cadence_late": 1}])
    assert not any("1a/1b" in line for line in plan_lines(phased))  # phased, but 1 in every phase
    mixed = spec_of(sampler="grid", space={LOOPS: {"grid": [2]}, CADENCE: {"grid": [2]}},
                    enqueue=[{LOOPS: 2, "train.cadence_phased": True, "train.cadence_early": 1,
                              "train.cadence_main": 0, "train.cadence_late": 1}])
    assert plan_lines(mixed)[-1] == REFERENCE_WARNING.format(2, 2)  # 1 then 0: it alternates, between phases
    twos = spec_of(sampler="grid", space={LOOPS: {"grid": [2]}, CADENCE: {"grid": [2]}},
                   enqueue=[{LOOPS: 2, "train.cadence_phased": True, "train.cadence_early": 2,
                             "train.cadence_main": 2, "train.cadence_late": 2}])
    assert plan_lines(twos)[-1] == REFERENCE_WARNING.format(2, 2)  # phased at 2 throughout alternates too


def test_a_sampled_sweep_is_not_judged_before_its_trials_are_sampled() -> None:
    spec = spec_of(sampler="random", budget={"max_trials": 2}, enqueue=[{LOOPS: 2, CADENCE: 2}])
    assert not any("1a/1b" in line for line in plan_lines(spec))


def test_a_gpu_sweep_of_many_hours_is_costed_in_gpu_hours_to_the_hundredth() -> None:
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [2, 3]}}, budget={"trial_seconds_estimate": 36000},
                   resources={"gpus": 2})
    assert plan_lines(spec)[1] == "  estimated: 40.00 GPU-hours (2 trials x 2 GPUs x 36000 s on average)"


def test_a_sampled_sweep_with_nothing_queued_says_only_that_every_trial_is_sampled() -> None:
    spec = spec_of(sampler="random", budget={"max_trials": 4}, space={LOOPS: {"int": [1, 8]}})
    assert plan_lines(spec)[0] == "sweep p (random): runs 4 trials (budget.max_trials), all sampled"


@pytest.mark.parametrize(("seconds", "shown"), [(12.4, "12 trial-seconds"), (59.4, "59 trial-seconds"),
                                                (60.0, "1.0 trial-minutes"), (3599.0, "60.0 trial-minutes"),
                                                (3600.0, "1.00 trial-hours"), (9000.0, "2.50 trial-hours"),
                                                (360000.0, "100.00 trial-hours")])
def test_a_cost_under_an_hour_is_said_in_minutes_or_seconds(seconds: float, shown: str) -> None:
    from clowncar.orchestrator.sweep_plan import amount

    assert amount(seconds, "trial") == shown


def test_trials_without_a_wall_clock_cap_or_an_estimate_have_an_unknown_cost() -> None:
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [1, 2]}}, overrides={WALL: 0})
    assert plan_lines(spec)[1] == ("  estimated: unknown: the trials have no wall-clock cap (train.max_wallclock_seconds "
                                   "0) to read a length from; set budget.trial_seconds_estimate for an estimate")
    timed = spec_of(sampler="grid", space={LOOPS: {"grid": [1, 2]}}, overrides={WALL: 0},
                    budget={"trial_seconds_estimate": 30})
    assert plan_lines(timed)[1] == "  estimated: 1.0 trial-minutes on CPU (2 trials x 30 s on average, no GPU)"


UNKNOWN = ("  estimated: unknown: the trials have no wall-clock cap (train.max_wallclock_seconds 0) to read a length "
           "from; set budget.trial_seconds_estimate for an estimate")


def test_an_unknown_cost_is_said_alone_without_the_per_trial_rule_or_the_asha_clause() -> None:
    # the README's one-trial recipe, with ASHA: nothing after the unknown estimate speaks of one
    asha = {"type": "asha", "grace_period": 40}
    one = spec_of(sampler="grid", seeds=[1337], overrides={WALL: 0}, scheduler=asha)
    assert plan_lines(one) == ["sweep p (grid): 1 grid point, 1 distinct trial", UNKNOWN]
    # a GPU-hour cap still stops the sweep, on the measured times
    capped = spec_of(sampler="grid", space={LOOPS: {"grid": [2, 3]}}, overrides={WALL: 0}, resources={"gpus": 1},
                     budget={"max_gpu_hours": 2.5})
    assert plan_lines(capped) == ["sweep p (grid): 2 grid points, 2 distinct trials", UNKNOWN,
                                  "  budget.max_gpu_hours 2.5 stops the sweep when the measured trial times add up "
                                  "to it"]


def test_a_queued_config_that_repeats_a_grid_point_is_merged_with_it_and_the_queue_is_not_called_grid_points() -> None:
    # loops 1 makes the cadence moot: both queued configs compute the grid point loops=1's trial
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [1, 2]}}, enqueue=[{LOOPS: 1}, {LOOPS: 1, CADENCE: 4}])
    plan = make_plan(spec)
    assert (plan.points, plan.distinct, plan.trials) == (4, 2, 2)
    assert spec.max_trials() == 2
    lines = plan_lines(spec)
    assert lines[0] == "sweep p (grid): 2 grid points + 2 queued configs, 2 distinct trials"
    assert lines[1] == "  merged before the start (2 points would repeat another's trial, same config hash):"
    assert lines[2] == "    model.crawler_loops=1: train.cadence=4 | (the defaults) -> runs as (the defaults)"
    assert "2 trials x 66 s" in lines[3]


def test_a_finite_sampled_space_runs_its_distinct_configs_when_the_budget_is_more() -> None:
    # the driver ends such a sweep once every distinct config has run (suggest.DistinctAsk)
    conditional = spec_of(sampler="tpe", space={LOOPS: {"choice": [1, 2]},
                                                CADENCE: {"choice": [2, 4], "when": {LOOPS: [2]}}},
                          budget={"max_trials": 4, "trial_seconds_estimate": 10})
    assert make_plan(conditional).trials == 3
    assert plan_lines(conditional)[:2] == [
        "sweep p (tpe): runs 3 trials (every distinct config of the space; budget.max_trials 4 is more), all sampled",
        "  estimated: 30 trial-seconds on CPU (3 trials x 10 s on average, no GPU)"]
    # two named points that compute one trial (cadence is moot at loops 1): one config
    points = spec_of(sampler="random", points={"a": {LOOPS: 1, CADENCE: 2}, "b": {LOOPS: 1, CADENCE: 4}},
                     space={"train.matrix_lr": {"choice": [0.02]}}, budget={"max_trials": 3})
    assert make_plan(points).trials == 1
    assert plan_lines(points)[0] == ("sweep p (random): runs 1 trial (every distinct config of the space; "
                                     "budget.max_trials 3 is more), all sampled")
    seeds = spec_of(sampler="random", space={LOOPS: {"choice": [1, 2]}}, seeds=[1, 2], budget={"max_trials": 9})
    assert make_plan(seeds).trials == 4  # each seed is a trial of its own
    for spec in (conditional, points, seeds):  # the driver's progress line counts down from the same number
        assert trials_to_run(spec) == make_plan(spec).trials


def test_a_finite_space_with_a_queue_counts_the_queued_configs_off_the_space_too() -> None:
    # {loops 1, a 30 s cap} is no point of the space; {loops 2} is one
    spec = spec_of(sampler="random", space={LOOPS: {"choice": [1, 2]}}, enqueue=[{LOOPS: 1, WALL: 30}, {LOOPS: 2}],
                   budget={"max_trials": 5, "trial_seconds_estimate": 10})
    assert (make_plan(spec).trials, make_plan(spec).trial_seconds) == (3, 30.0)
    assert plan_lines(spec)[0] == (
        "sweep p (random): 2 enqueued points, 2 distinct trials; runs 3 trials (every distinct config of the queue "
        "and the space; budget.max_trials 5 is more), the rest sampled")


@pytest.mark.parametrize("fields", [
    {"sampler": "random", "space": {"train.matrix_lr": {"float": [0.01, 0.1]}}},  # continuous: never exhausted
    {"sampler": "nsga2", "space": {LOOPS: {"choice": [1, 2]}}},  # asks without DistinctAsk: may repeat a config
    {"sampler": "random", "space": {LOOPS: {"choice": [1, 2, 3, 4, 5]}}},  # as many configs as the budget
])
def test_a_space_the_budget_does_not_outlast_keeps_the_budget_line(fields: dict[str, Any]) -> None:
    spec = spec_of(budget={"max_trials": 5}, **fields)
    assert make_plan(spec).trials == trials_to_run(spec) == 5
    assert plan_lines(spec)[0].endswith("runs 5 trials (budget.max_trials), all sampled")


def test_a_range_of_no_whole_number_of_steps_is_named_with_the_range_it_is_sampled_from() -> None:
    """Optuna samples such a range only up to its last step below `high`, and says so only in a raw two-line
    warning: the plan names it, and sampling keeps the warning off the driver's console."""
    import warnings

    import optuna

    from clowncar.orchestrator.sampler import define_space

    spec = spec_of(sampler="random", budget={"max_trials": 2},
                   space={LOOPS: {"int": [1, 10], "step": 2}, "train.matrix_lr": {"float": [0.01, 0.05], "step": 0.03},
                          CADENCE: {"int": [1, 5], "step": 2}, "train.muon_momentum": {"float": [0.6, 0.9], "step": 0.1}})
    assert plan_lines(spec)[1:3] == [
        f"  space.{LOOPS}: [1, 10] is no whole number of steps of 2: it is sampled from [1, 9]",
        "  space.train.matrix_lr: [0.01, 0.05] is no whole number of steps of 0.03: it is sampled from [0.01, 0.04]"]
    assert not plan_lines(spec)[3].startswith("  space.")  # [1, 5] at 2 and [0.6, 0.9] at 0.1 are whole
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        define_space(spec)(study.ask())
