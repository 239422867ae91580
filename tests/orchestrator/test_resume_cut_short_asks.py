"""`reconcile` after a head that died inside an ask (`SweepSearch.suggest`), on a real Optuna study and a real
store (SQLite), without Ray: a trial whose point was whole when the head died is queued again as its next attempt,
one cut short before that (no grid point yet, some of its parameters, a repeat whose FAIL never landed) is dropped
and asked anew, and the sweep then runs each point once within its whole budget. `World` (the study and store a
dead head leaves) is in tests/orchestrator/conftest.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from clowncar.orchestrator.resume import reconcile
from clowncar.orchestrator.search import NUMBER
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.suggest import DUPLICATE

KEY = "model.crawler_loops"


def _cut_short(search: Any, stored: str) -> None:
    """What a head SIGKILLed inside `SweepSearch.suggest` leaves in the study: a RUNNING trial whose ask stopped
    part-way. Optuna writes the trial, then the grid sampler's point (`grid_id`), then each suggested parameter
    on its own, so the kill may land before the grid point, after it, or between two parameters."""
    if stored == "no grid point yet":
        search.study._storage.create_new_trial(search.study._study_id)
        return
    t = search.study.ask()
    if stored == "one of two parameters":
        t.suggest_categorical(KEY, [1, 2, 3])  # the seed (train.seed) was never stored


def _run_to_the_end(search: Any, ran: list[dict[str, Any]]) -> None:
    """Drive a searcher as Tune does, every trial finishing ok, until it says the sweep is done."""
    from ray.tune.search import Searcher

    while (params := search.suggest(f"t{len(ran)}")) is not Searcher.FINISHED:
        ran.append(params)
        search.on_trial_complete(f"t{len(ran) - 1}", {"final": True, "status": "ok", "objective": 1.0})


@pytest.mark.parametrize("stored", ["no grid point yet", "grid point, no parameter", "one of two parameters"])
def test_a_grid_whose_head_died_mid_ask_resumes_and_runs_every_point_once(make_world: Any, tmp_path: Path,
                                                                        stored: str) -> None:
    """Before the fix the half-asked trial was queued again with the parameters it had (none, or one of two),
    and the grid sampler refused that queued trial on resume ("All parameters must be specified when using
    GridSampler with enqueue_trial"): the resume failed."""
    from clowncar.orchestrator.search import SweepSearch, finished_count

    w = make_world(tmp_path)
    spec = spec_from_dict({**w.spec.to_dict(), "seeds": [1, 2], "space": {KEY: {"grid": [1, 2, 3]}}})
    storage = optuna.storages.InMemoryStorage()
    ran: list[dict[str, Any]] = []
    head = SweepSearch(spec, storage, spec.max_trials())
    for _ in range(2):  # two trials finished before the kill
        ran.append(head.suggest(f"t{len(ran)}"))
        head.on_trial_complete(f"t{len(ran) - 1}", {"final": True, "status": "ok", "objective": 1.0})
    _cut_short(head, stored)

    reconcile(head.study, w.store, spec)
    waiting = [t.system_attrs["fixed_params"] for t in head.study.get_trials(states=(TrialState.WAITING,))]
    assert all(set(p) == {KEY, "train.seed"} for p in waiting), waiting  # whole points only
    _run_to_the_end(SweepSearch(spec, storage, spec.max_trials()), ran)

    points = sorted((p[KEY], p["train.seed"]) for p in ran)
    assert points == [(loops, seed) for loops in (1, 2, 3) for seed in (1, 2)]  # each once, none lost
    assert finished_count(head.study) == 6


def test_a_sampled_sweep_whose_head_died_mid_ask_asks_anew_and_keeps_its_whole_budget(make_world: Any,
                                                                                      tmp_path: Path) -> None:
    """A random (or TPE) trial cut short between two parameters has no whole point to run again: it is told
    FAIL, counts against nothing, and the sampler asks a whole new trial in its place."""
    from clowncar.orchestrator.search import SweepSearch, finished_count

    w = make_world(tmp_path, sampler="random")
    spec = spec_from_dict({**w.spec.to_dict(), "seeds": [1, 2], "space": {KEY: {"choice": [1, 2, 3]}},
                           "budget": {"max_trials": 4}})
    storage = optuna.storages.InMemoryStorage()
    ran: list[dict[str, Any]] = []
    head = SweepSearch(spec, storage, spec.max_trials())
    ran.append(head.suggest("t0"))
    head.on_trial_complete("t0", {"final": True, "status": "ok", "objective": 1.0})
    _cut_short(head, "one of two parameters")

    assert reconcile(head.study, w.store, spec)["dropped_unasked"] == 1
    assert not head.study.get_trials(states=(TrialState.WAITING,))  # no half point queued
    assert finished_count(head.study) == 1  # the cut trial is not charged to the budget
    _run_to_the_end(SweepSearch(spec, storage, spec.max_trials()), ran)

    assert len(ran) == 4 and all(set(p) >= {KEY, "train.seed"} for p in ran)
    assert len({(p[KEY], p["train.seed"]) for p in ran}) == 4  # distinct configs, as ever
    assert finished_count(head.study) == 4


def test_a_conditional_parameter_is_missing_from_a_cut_short_point_only_where_its_condition_holds(
        make_world: Any, tmp_path: Path) -> None:
    """A trial whose head died mid-ask is queued again only when its point is whole: a conditional parameter
    whose condition does not hold is not part of it, one whose condition holds is, and an unconditional one always
    is (however the parameters are ordered)."""
    w = make_world(tmp_path, sampler="random")
    w.spec = spec_from_dict({**w.spec.to_dict(), "space": {
        "train.cadence": {"choice": [2, 4], "when": {KEY: 2}}, KEY: {"choice": [1, 2]}}})

    def cut_short(number: int, loops: int | None) -> None:
        t = w.study.ask()
        t.set_user_attr(NUMBER, number)
        if loops is not None:
            w.study._storage.set_trial_param(t._trial_id, KEY, float([1, 2].index(loops)),
                                             optuna.distributions.CategoricalDistribution([1, 2]))

    cut_short(0, 1)  # no cadence, and none applies at 1 loop: whole
    cut_short(1, 2)  # cadence applies at 2 loops and was never stored
    cut_short(2, None)  # the loop count itself was never stored
    done = reconcile(w.study, w.store, w.spec)
    assert (done["closed_for_rerun"], done["dropped_unasked"]) == (1, 2)
    (queued,) = w.study.get_trials(states=(TrialState.WAITING,))
    assert queued.user_attrs[NUMBER] == 0 and queued.system_attrs["fixed_params"] == {KEY: 1}


def test_a_repeated_suggestion_whose_fail_never_landed_is_dropped_not_run(world: Any) -> None:
    for number, loops in [(0, 1), (1, 2)]:
        world.running(number, loops).set_user_attr(DUPLICATE, 5)  # a repeat of trial 5's config, never run
    assert reconcile(world.study, world.store, world.spec)["dropped_unasked"] == 2
    assert not world.study.get_trials(states=(TrialState.WAITING,))


def test_a_grid_trial_cut_short_after_its_grid_point_reruns_that_point_and_one_past_the_grid_is_dropped(
        world: Any) -> None:
    from clowncar.orchestrator.sampler import LongestFirstGrid

    points = LongestFirstGrid(world.spec)._all_grids
    for number, grid_id in [(0, 0), (1, len(points) - 1), (2, len(points))]:  # the last one names no point
        t = world.study.ask()
        t.set_user_attr(NUMBER, number)
        world.study._storage.set_trial_system_attr(t._trial_id, "grid_id", grid_id)
    done = reconcile(world.study, world.store, world.spec)
    assert (done["closed_for_rerun"], done["dropped_unasked"]) == (2, 1)
    queued = {t.user_attrs[NUMBER]: t.system_attrs["fixed_params"]
              for t in world.study.get_trials(states=(TrialState.WAITING,))}
    assert queued == {0: {KEY: points[0][0]}, 1: {KEY: points[-1][0]}}

