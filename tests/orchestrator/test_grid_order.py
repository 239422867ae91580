"""A grid sweep hands out its longest trials first (by each point's declared wall-clock budget), keeps Optuna's
seeded shuffle among equally long ones, and gives the same order every time it is rebuilt (what resume needs)."""

from __future__ import annotations

from typing import Any

import optuna

from clowncar.orchestrator.sampler import LongestFirstGrid, define_space
from clowncar.orchestrator.search import tell
from clowncar.orchestrator.spec import SweepSpec, spec_from_dict

LOOPS = "model.crawler_loops"

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


def test_a_grid_planned_with_a_point_more_runs_each_point_once_after_a_resume() -> None:
    """A sweep started before a grid point that repeats a queued config left the grid (f22dcb8), or under a
    clowncar whose canonical config or trial-second estimates differ, holds grid ids of another list: here old id 0
    ran loops=1 (the queued config's twin) and old id 1 ran loops=4, while today's grid (loops 4, 3, 2) reads id 1
    as loops=3. The points left are read from the trials' parameters: exactly loops=3 and loops=2, and a new trial
    whose number names a point that ran draws one of those instead."""
    spec = spec_from_dict({"name": "old", "preset": "tiny-cpu", "sampler": "grid", "enqueue": [{LOOPS: 1}],
                           "space": {LOOPS: {"grid": [1, 2, 3, 4]}}})
    grid = LongestFirstGrid(spec)
    today = [dict(zip(grid._param_names, p, strict=True))[LOOPS] for p in grid._all_grids]
    assert sorted(today) == [2, 3, 4]  # loops=1 is the queued config's: not in the grid
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=grid)
    dist = optuna.distributions.CategoricalDistribution([1, 2, 3, 4])
    for old_id, loops in ((0, 1), (1, today[0])):  # the old list: [1, today[0], ...]
        study.add_trial(optuna.trial.create_trial(params={LOOPS: loops}, distributions={LOOPS: dist}, value=2.0,
                                                  system_attrs={"grid_id": old_id,
                                                                "search_space": grid._search_space}))
    assert grid._get_unvisited_grid_ids(study) == [1, 2]  # by the ids: [2], today[0] run twice, today[1] never
    assert sorted(grid.unvisited_seconds(study)) == sorted(grid._seconds[p] for p in grid._all_grids[1:])
    ran = []
    for _ in range(2):  # trial 2 takes id 2 by its number (untaken); trial 3 draws the one left
        t = study.ask()
        ran.append(t.suggest_categorical(LOOPS, [1, 2, 3, 4]))
        tell(study, t, 1.0, optuna.trial.TrialState.COMPLETE)
    assert sorted(ran) == sorted(today[1:])


def test_a_trial_whose_number_names_a_point_that_ran_is_given_an_untaken_one() -> None:
    """Optuna gives trial k the k-th point: trial 0 ran id 1's point (under id 2, another list's id), so trial 1
    would run it again; it draws an untaken point instead, and the three trials run the three points."""
    spec = spec_from_dict({"name": "g", "preset": "tiny-cpu", "sampler": "grid", "space": {LOOPS: {"grid": [1, 2, 3]}}})
    grid = LongestFirstGrid(spec)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=grid)
    dist = optuna.distributions.CategoricalDistribution([1, 2, 3])
    point1 = dict(zip(grid._param_names, grid._all_grids[1], strict=True))[LOOPS]
    study.add_trial(optuna.trial.create_trial(params={LOOPS: point1}, distributions={LOOPS: dist}, value=1.0,
                                              system_attrs={"grid_id": 2, "search_space": grid._search_space}))
    ran = [point1]
    for number in (1, 2):
        t = study.ask()
        assert t.number == number
        ran.append(t.suggest_categorical(LOOPS, [1, 2, 3]))
        tell(study, t, 1.0, optuna.trial.TrialState.COMPLETE)
    assert sorted(ran) == [1, 2, 3]


def _grid_study(points: list[int]) -> tuple[LongestFirstGrid, optuna.Study, list[int]]:
    spec = spec_from_dict({"name": "g", "preset": "tiny-cpu", "sampler": "grid", "space": {LOOPS: {"grid": points}}})
    grid = LongestFirstGrid(spec)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=grid)
    return grid, study, [dict(zip(grid._param_names, p, strict=True))[LOOPS] for p in grid._all_grids]


def _stored(study: optuna.Study, grid: LongestFirstGrid, state: optuna.trial.TrialState, loops: int | None,
            grid_id: int) -> int:
    """A trial written straight into the storage (as a resumed driver finds them): its number."""
    dist = optuna.distributions.CategoricalDistribution([1, 2, 3])
    trial = optuna.trial.create_trial(state=state, params={LOOPS: loops} if loops is not None else {},
                                      distributions={LOOPS: dist} if loops is not None else {},
                                      value=1.0 if state == optuna.trial.TrialState.COMPLETE else None,
                                      system_attrs={"grid_id": grid_id, "search_space": grid._search_space})
    return study._storage.get_trial_number_from_id(study._storage.create_new_trial(study._study_id, trial))


def test_a_running_point_is_handed_out_again_only_when_every_other_point_has_run() -> None:
    grid, study, loops = _grid_study([1, 2, 3])
    _stored(study, grid, optuna.trial.TrialState.COMPLETE, loops[0], 0)
    _stored(study, grid, optuna.trial.TrialState.RUNNING, loops[1], 1)
    assert grid._get_unvisited_grid_ids(study) == [2]
    _stored(study, grid, optuna.trial.TrialState.FAIL, loops[2], 2)  # a failed trial ran its point too
    assert grid._get_unvisited_grid_ids(study) == [1]  # the running one, not the finished ones


def test_a_waiting_trial_has_not_taken_its_point() -> None:
    grid, study, loops = _grid_study([1, 2, 3])
    _stored(study, grid, optuna.trial.TrialState.WAITING, loops[0], 0)
    assert grid._get_unvisited_grid_ids(study) == [0, 1, 2]


def test_a_trial_that_holds_a_grid_id_keeps_it_where_another_trial_ran_that_point() -> None:
    """Optuna hands a WAITING trial to the next ask: one that already holds a grid id (Optuna's heartbeat retry
    writes the failed trial's) keeps it, though trial 0 ran that point (under another list's id)."""
    grid, study, loops = _grid_study([1, 2, 3])
    _stored(study, grid, optuna.trial.TrialState.COMPLETE, loops[1], 2)
    _stored(study, grid, optuna.trial.TrialState.WAITING, None, 1)
    t = study.ask()
    assert (t.number, study._storage.get_trial_system_attrs(t._trial_id)["grid_id"]) == (1, 1)
    assert t.suggest_categorical(LOOPS, [1, 2, 3]) == loops[1]


def test_an_enqueued_config_is_never_given_a_grid_point_though_its_number_names_one_that_ran() -> None:
    grid, study, loops = _grid_study([1, 2, 3])
    _stored(study, grid, optuna.trial.TrialState.COMPLETE, loops[1], 2)  # trial 0 ran point 1, under id 2
    study.enqueue_trial({LOOPS: loops[0]})
    t = study.ask()  # trial 1, whose number names point 1
    attrs = study._storage.get_trial_system_attrs(t._trial_id)
    assert t.number == 1 and "grid_id" not in attrs and attrs["fixed_params"] == {LOOPS: loops[0]}
