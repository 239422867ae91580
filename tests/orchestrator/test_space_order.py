"""A conditional parameter (`when:`) works whatever order the spec lists the space in: the space is walked with
every parameter after the keys its condition names (orchestrator/space_order.py), a space already in that order
keeps its written order, and a cycle of conditions is one line (exit 2). Without Ray: Optuna in memory."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
import yaml

from clowncar.errors import ConfigError
from clowncar.orchestrator.sampler import define_space
from clowncar.orchestrator.search import SweepSearch
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.suggest import DistinctAsk, finite_points

LOOPS, CADENCE = "model.crawler_loops", "train.cadence"
KEY_FIRST = {LOOPS: {"choice": [1, 2, 3]}, CADENCE: {"choice": [2, 4], "when": {LOOPS: 2}}}
CONDITION_FIRST = {CADENCE: KEY_FIRST[CADENCE], LOOPS: KEY_FIRST[LOOPS]}


def spec_of(space: dict[str, Any], **fields: Any) -> Any:
    return spec_from_dict({"name": "order", "preset": "tiny-cpu", "sampler": "random", "space": space,
                           "overrides": {"train.max_wallclock_seconds": 0}, "budget": {"max_trials": 20},
                           **fields})


def holds(params: dict[str, Any]) -> bool:
    """Whether the cadence was sampled exactly where its condition holds."""
    return (CADENCE in params) == (params[LOOPS] == 2)


@pytest.mark.parametrize("space", [KEY_FIRST, CONDITION_FIRST], ids=["key-first", "condition-first"])
def test_a_conditional_parameter_is_sampled_exactly_when_its_condition_holds_in_either_order(
        space: dict[str, Any]) -> None:
    spec = spec_of(space)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    sampled = []
    for _ in range(20):
        trial = study.ask()
        define_space(spec)(trial)
        sampled.append(dict(trial.params))
        study.tell(trial, 0.0)
    assert all(holds(params) for params in sampled), sampled
    assert {params.get(CADENCE) for params in sampled} == {None, 2, 4}


@pytest.mark.parametrize("space", [KEY_FIRST, CONDITION_FIRST], ids=["key-first", "condition-first"])
def test_the_search_runs_every_point_of_a_conditional_space_in_either_order(space: dict[str, Any]) -> None:
    """The searcher (random sampler, one trial per distinct config) asks each of the four points once, the
    cadence only at two loops, then ends."""
    search = SweepSearch(spec_of(space), optuna.storages.InMemoryStorage(), 20)
    asked = []
    for i in range(20):
        params = search.suggest(f"t{i}")
        if params == "FINISHED":
            break
        asked.append({k: v for k, v in params.items() if k != "_cc"})
        search.on_trial_complete(f"t{i}", {"final": True, "status": "ok", "objective": 1.0, "constraint": -1.0})
    assert all(holds(params) for params in asked), asked
    assert sorted((p[LOOPS], p.get(CADENCE, 0)) for p in asked) == [(1, 0), (2, 2), (2, 4), (3, 0)]


def test_a_finite_conditional_space_lists_the_same_points_in_either_order() -> None:
    written, reversed_ = spec_of(KEY_FIRST), spec_of(CONDITION_FIRST)
    assert finite_points(written) == finite_points(reversed_) == [
        {LOOPS: 1}, {LOOPS: 2, CADENCE: 2}, {LOOPS: 2, CADENCE: 4}, {LOOPS: 3}]
    for salt in range(12):  # the seeded random point a sampler stuck on one config is moved to
        assert holds(DistinctAsk(reversed_).random_point(salt))


def test_a_space_already_in_condition_order_keeps_its_written_order() -> None:
    """Existing studies sample their parameters in the order they always did; only what must move moves."""
    lr = {"train.matrix_lr": {"float": [0.01, 0.1], "log": True}}
    assert list(spec_of({**KEY_FIRST, **lr}).search_space()) == [LOOPS, CADENCE, "train.matrix_lr"]
    assert list(spec_of({CADENCE: KEY_FIRST[CADENCE], **lr, LOOPS: KEY_FIRST[LOOPS]}).search_space()) == [
        "train.matrix_lr", LOOPS, CADENCE]
    grid = spec_of({"train.matrix_lr": {"grid": [0.01, 0.02]}, LOOPS: {"grid": [1, 2]}}, sampler="grid",
                   seeds=[1, 2], budget={})
    assert list(grid.grid()) == ["train.matrix_lr", LOOPS, "train.seed"]


CYCLE = {CADENCE: {"choice": [2, 4], "when": {LOOPS: 2}}, LOOPS: {"choice": [1, 2], "when": {CADENCE: 2}}}


@pytest.mark.parametrize(("space", "expected"), [
    (CYCLE, "when: conditions form a cycle (train.cadence -> model.crawler_loops -> train.cadence): none of these "
            "parameters can be sampled first"),
    ({**KEY_FIRST, LOOPS: {"choice": [1, 2], "when": {LOOPS: 2}}}, "names 'model.crawler_loops', which is not "
                                                                   "another searched parameter"),
], ids=["two-keys", "itself"])
def test_a_cycle_of_conditions_is_refused_in_one_line(space: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        spec_of(space)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_the_cli_refuses_a_cycle_of_conditions_with_exit_2(sweep_env: Any) -> None:
    path = sweep_env.tmp / "cycle.yaml"
    path.write_text(yaml.safe_dump({"name": "cycle", "preset": "tiny-cpu", "sampler": "random", "space": CYCLE,
                                    "budget": {"max_trials": 4}}))
    r = sweep_env.cli("sweep", "plan", str(path), timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "form a cycle" in r.stderr, r.stderr
