"""A grid sweep hands out its longest trials first (by each point's declared wall-clock budget), keeps Optuna's
seeded shuffle among equally long ones, and gives the same order every time it is rebuilt (what resume needs)."""

from __future__ import annotations

from typing import Any

import optuna

from clowncar.orchestrator.sampler import LongestFirstGrid, define_space
from clowncar.orchestrator.search import tell
from clowncar.orchestrator.spec import SweepSpec, spec_from_dict

WALLS = [1.0, 3.0, 2.0]


def _spec(seed: int = 0, **extra: Any) -> SweepSpec:
    return spec_from_dict({"name": "order", "preset": "tiny-cpu", "sampler": "grid", "sampler_seed": seed,
                           "space": {"train.max_wallclock_seconds": {"grid": WALLS},
                                     "model.crawler_loops": {"grid": [1, 2, 3]}}, **extra})


def _asked(spec: SweepSpec, sampler: optuna.samplers.BaseSampler) -> list[tuple[float, int]]:
    study = optuna.create_study(sampler=sampler)
    space = define_space(spec)
    order = []
    for _ in range(spec.grid_size()):
        trial = study.ask()
        space(trial)
        order.append((trial.params["train.max_wallclock_seconds"], trial.params["model.crawler_loops"]))
        tell(study, trial, 0.0, optuna.trial.TrialState.COMPLETE)  # the grid sampler stops the study at the end
    return order


def test_grid_runs_longest_declared_trials_first_and_every_point_once() -> None:
    order = _asked(_spec(), LongestFirstGrid(_spec()))
    assert [w for w, _ in order] == sorted((w for w in WALLS for _ in range(3)), reverse=True)
    assert sorted(order) == sorted((w, loops) for w in WALLS for loops in (1, 2, 3))


def test_grid_order_is_the_same_when_rebuilt_and_seeded_among_equal_trials() -> None:
    assert LongestFirstGrid(_spec(seed=7))._all_grids == LongestFirstGrid(_spec(seed=7))._all_grids
    ties = {seed: [loops for _, loops in _asked(_spec(seed), LongestFirstGrid(_spec(seed)))] for seed in range(8)}
    assert len({tuple(v) for v in ties.values()}) > 1  # the seed still shuffles points of equal length


def test_grid_of_equal_trials_keeps_optunas_own_order() -> None:
    spec = _spec(seed=3, budget={"trial_seconds_estimate": 60})  # one estimate for all: nothing to sort by
    plain = optuna.samplers.GridSampler(spec.grid(), seed=3)  # type: ignore[arg-type]
    assert _asked(spec, LongestFirstGrid(spec)) == _asked(spec, plain)


def _seconds(spec: SweepSpec) -> list[float]:
    """Each grid point's expected duration (three points per wall-clock budget)."""
    return [spec.expected_trial_seconds({"train.max_wallclock_seconds": w}) for w in WALLS for _ in range(3)]


def test_unvisited_seconds_leave_out_the_points_already_asked() -> None:
    spec = _spec()
    sampler = LongestFirstGrid(spec)
    study = optuna.create_study(sampler=sampler)
    expected = sorted(_seconds(spec))
    assert sorted(sampler.unvisited_seconds(study)) == expected
    space = define_space(spec)
    for _ in range(2):  # the two asked trials (the longest: running, then finished) are no longer to come
        trial = study.ask()
        space(trial)
    tell(study, trial, 0.0, optuna.trial.TrialState.COMPLETE)
    assert sorted(sampler.unvisited_seconds(study)) == expected[:-2]


def test_sweep_backlog_is_the_grid_left_longest_first_within_the_trial_budget() -> None:
    from clowncar.orchestrator.search import SweepSearch

    spec = _spec(resources={"gpus": 2})
    search = SweepSearch(spec, optuna.storages.InMemoryStorage(), max_trials=5)
    seconds = sorted(_seconds(spec), reverse=True)
    assert search.backlog_seconds() == tuple(seconds[:5])  # the five longest points: the budget's five trials
    search.suggest("t0")  # no gate: asked at once, and running
    assert search.backlog_seconds() == tuple(seconds[1:5])


def test_a_grid_point_that_a_queued_config_computes_is_left_out_of_the_grid() -> None:
    # the queued config runs first (it is enqueued before the grid is asked): its grid twin (cadence is moot at
    # loops 1) would run its trial again
    spec = _spec(enqueue=[{"train.max_wallclock_seconds": 3.0, "model.crawler_loops": 1, "train.cadence": 3}])
    sampler = LongestFirstGrid(spec)
    names = sampler._param_names
    points = [dict(zip(names, p, strict=True)) for p in sampler._all_grids]
    assert len(points) == 8 and {"train.max_wallclock_seconds": 3.0, "model.crawler_loops": 1} not in points
    assert spec.distinct_grid().merged[-1].same_as == spec.enqueue[0]
