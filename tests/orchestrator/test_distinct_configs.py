"""One trial per config (`orchestrator/suggest.py`), rule by rule with hand-computed cases: the values of each
kind of parameter, the points of a conditional space, the distance between points, which trials count as
visited, and how a sampler that insists on a config is re-asked and then moved to the nearest new one."""

from __future__ import annotations

import random
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from clowncar.orchestrator.spec import ParamSpec, spec_from_dict
from clowncar.orchestrator.suggest import (
    CLOSED,
    DUPLICATE,
    MAX_POINTS,
    NUMBER,
    RANDOM_MOVES,
    REASKS,
    UNASKED,
    DistinctAsk,
    _values,
    ask_distinct,
    finite_points,
    never_ran,
    why_never_ran,
)

LR, LOOPS = "train.matrix_lr", "model.crawler_loops"
SPACE = {LR: {"choice": [0.01, 0.02, 0.04]}, LOOPS: {"choice": [1, 2, 3]}}

DISTS = {LR: CategoricalDistribution([0.01, 0.02, 0.04]), LOOPS: CategoricalDistribution([1, 2, 3])}
"""One distribution per parameter for every trial of a study (Optuna refuses a parameter's choices changing)."""

optuna.logging.set_verbosity(optuna.logging.WARNING)


def spec_of(space: dict[str, Any] | None = None, **fields: Any) -> Any:
    data = {"name": "distinct", "preset": "tiny-cpu", "sampler": "random", "space": space or SPACE,
            "budget": {"max_trials": 9}, **fields}
    return spec_from_dict(data)


# --- the values of one parameter ----------------------------------------------------------------------------

def test_an_int_range_lists_every_step_up_to_the_point_limit() -> None:
    assert _values(ParamSpec(int=(1, 7))) == [1, 2, 3, 4, 5, 6, 7]
    assert _values(ParamSpec(int=(1, 7), step=2)) == [1, 3, 5, 7]
    assert _values(ParamSpec(int=(1, 8), step=3)) == [1, 4, 7]
    at_limit = _values(ParamSpec(int=(1, 2 * MAX_POINTS), step=2))
    assert at_limit is not None and len(at_limit) == MAX_POINTS and at_limit[-1] == 2 * MAX_POINTS - 1
    assert _values(ParamSpec(int=(1, 2 * MAX_POINTS + 2), step=2)) is None  # one point past the limit


def test_a_stepped_float_range_lists_its_grid_despite_rounding() -> None:
    tenths = _values(ParamSpec(float=(0.0, 0.3), step=0.1))  # 0.3 / 0.1 is 2.9999999999999996 in floats
    assert tenths == pytest.approx([0.0, 0.1, 0.2, 0.3]) and len(tenths) == 4
    assert _values(ParamSpec(float=(0.5, 1.5), step=0.25)) == [0.5, 0.75, 1.0, 1.25, 1.5]
    assert _values(ParamSpec(float=(2.0, 2.9), step=0.5)) == [2.0, 2.5]
    at_limit = _values(ParamSpec(float=(1.0, float(MAX_POINTS)), step=1.0))
    assert at_limit is not None and len(at_limit) == MAX_POINTS
    assert _values(ParamSpec(float=(0.0, float(MAX_POINTS)), step=1.0)) is None


def test_choices_are_their_values_and_a_continuous_range_has_none() -> None:
    assert _values(ParamSpec(choice=[3, "a", 1.5])) == [3, "a", 1.5]
    assert _values(ParamSpec(grid=[True, False])) == [True, False]
    assert _values(ParamSpec(float=(0.001, 0.1), log=True)) is None
    assert _values(ParamSpec(float=(0.0, 1.0))) is None


# --- the points of a space ----------------------------------------------------------------------------------

def test_a_conditional_parameter_is_listed_only_where_its_condition_holds() -> None:
    space = {"model.num_crawler_layers": {"choice": [0, 1, 2]},
             "model.delta_net_heads": {"choice": [0, 2], "when": {"model.num_crawler_layers": [1, 2]}},
             "model.crawler_loops": {"choice": [1, 4], "when": {"model.num_crawler_layers": 0}}}
    points = finite_points(spec_of(space))
    assert points == [
        {"model.num_crawler_layers": 0, "model.crawler_loops": 1},
        {"model.num_crawler_layers": 0, "model.crawler_loops": 4},
        {"model.num_crawler_layers": 1, "model.delta_net_heads": 0},
        {"model.num_crawler_layers": 1, "model.delta_net_heads": 2},
        {"model.num_crawler_layers": 2, "model.delta_net_heads": 0},
        {"model.num_crawler_layers": 2, "model.delta_net_heads": 2},
    ]


def test_a_space_of_exactly_the_point_limit_is_listed_and_one_larger_is_not() -> None:
    exact = {LR: {"float": [0.001, 1.0], "step": 0.001}, LOOPS: {"int": [1, 100]}}  # 1000 x 100
    points = finite_points(spec_of(exact, budget={"max_trials": 5}))
    assert points is not None and len(points) == MAX_POINTS
    larger = {LR: {"float": [0.001, 1.0], "step": 0.001}, LOOPS: {"int": [1, 101]}}
    assert finite_points(spec_of(larger, budget={"max_trials": 5})) is None
    assert finite_points(spec_of({LR: {"float": [0.01, 0.1]}})) is None


# --- distance and the nearest new point ---------------------------------------------------------------------

def test_the_distance_sums_value_ranks_and_counts_a_missing_or_unranked_value_as_one() -> None:
    space = {LOOPS: {"choice": [1, 2, 3, 4]}, "model.delta_net_heads": {"choice": [0, 2]},
             "model.num_flat_layers": {"choice": [2]}, LR: {"float": [0.01, 0.1]}}
    guard = DistinctAsk(spec_of(space))
    d = guard._distance
    assert d({LOOPS: 2}, {LOOPS: 3}) == pytest.approx(1 / 3)  # ranks 0, 1/3, 2/3, 1
    assert d({LOOPS: 1}, {LOOPS: 4}) == 1.0
    assert d({"model.delta_net_heads": 0}, {"model.delta_net_heads": 2}) == 1.0  # two values: ranks 0 and 1
    assert d({"model.num_flat_layers": 2}, {"model.num_flat_layers": 2}) == 0.0
    assert d({LOOPS: 1}, {LOOPS: 1, "model.delta_net_heads": 0}) == 1.0
    assert d({LOOPS: 1, "model.delta_net_heads": 0}, {LOOPS: 1}) == 1.0
    assert d({LR: 0.05}, {LR: 0.05}) == 0.0 and d({LR: 0.05}, {LR: 0.07}) == 1.0  # continuous: equal or not
    assert d({LOOPS: 1}, {LOOPS: 99}) == 1.0 and d({LOOPS: 99}, {LOOPS: 1}) == 1.0  # a value off the grid
    assert d({LOOPS: 2, "model.delta_net_heads": 2}, {LOOPS: 4, "model.delta_net_heads": 0}) == pytest.approx(5 / 3)
    assert d({}, {}) == 0.0
    assert d({}, {LOOPS: 1, "model.delta_net_heads": 0}) == 2.0  # each missing key counts
    assert d({LOOPS: 1}, {LOOPS: 2, "model.delta_net_heads": 0, "model.num_flat_layers": 2}) == pytest.approx(7 / 3)


def _visited_at(guard: DistinctAsk, points: list[dict[str, Any]]) -> dict[str, int]:
    return {guard.key(p): i for i, p in enumerate(points)}


def test_the_nearest_unvisited_point_is_the_closest_by_ranks() -> None:
    guard = DistinctAsk(spec_of())
    everything_but = [p for p in guard.points or [] if p != {LR: 0.04, LOOPS: 1}]
    seen = _visited_at(guard, [p for p in everything_but if p != {LR: 0.01, LOOPS: 3}])
    # two unvisited points: (0.04, 1) is 1/2 + 1/2 from (0.02, 2), (0.01, 3) is 1/2 + 1/2: a tie
    asked = {LR: 0.02, LOOPS: 2}
    for salt in range(8):
        expected = random.Random(f"0:{salt}").choice([{LR: 0.01, LOOPS: 3}, {LR: 0.04, LOOPS: 1}])
        assert guard.nearest_unvisited(asked, seen, salt=salt) == expected
    seen_more = _visited_at(guard, everything_but)
    assert guard.nearest_unvisited({LR: 0.01, LOOPS: 1}, seen_more, salt=0) == {LR: 0.04, LOOPS: 1}
    assert guard.nearest_unvisited(asked, _visited_at(guard, guard.points or []), salt=0) is None


def test_a_tie_is_broken_by_the_sweeps_seed_and_the_salt() -> None:
    guard = DistinctAsk(spec_of(sampler_seed=7))
    tied = [{LR: 0.02, LOOPS: 1}, {LR: 0.02, LOOPS: 3}, {LR: 0.01, LOOPS: 2}, {LR: 0.04, LOOPS: 2}]
    seen = _visited_at(guard, [{LR: 0.02, LOOPS: 2}])
    picks = {salt: guard.nearest_unvisited({LR: 0.02, LOOPS: 2}, seen, salt=salt) for salt in range(12)}
    order = [p for p in guard.points or [] if p in tied]  # the candidates in the space's order
    assert picks == {salt: random.Random(f"7:{salt}").choice(order) for salt in range(12)}
    assert len({repr(p) for p in picks.values()}) > 1


def test_a_continuous_space_has_no_nearest_point_and_is_never_exhausted() -> None:
    guard = DistinctAsk(spec_of({LR: {"float": [0.01, 0.1]}}))
    assert guard.points is None
    assert guard.nearest_unvisited({LR: 0.05}, {}, salt=0) is None
    assert not guard.exhausted(optuna.create_study())


# --- the key of a config ------------------------------------------------------------------------------------

def test_the_key_is_the_canonical_config_hash_or_the_parameters_when_they_make_no_config() -> None:
    spec = spec_of()
    guard = DistinctAsk(spec)
    params = {LR: 0.02, LOOPS: 2}
    assert guard.key(params) == spec.trial_config(params).content_hash()
    assert guard.key(dict(reversed(params.items()))) == guard.key(params)
    bad = {LOOPS: -3}
    assert guard.key(bad) == "invalid:[('model.crawler_loops', -3)]"
    assert guard.key(bad) == "invalid:[('model.crawler_loops', -3)]"  # cached, the same


# --- visited trials -----------------------------------------------------------------------------------------

def _study() -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))


def _run(study: optuna.Study, params: dict[str, Any], state: TrialState = TrialState.COMPLETE,
         **attrs: Any) -> optuna.trial.Trial:
    study.enqueue_trial(params)
    trial = study.ask({k: DISTS[k] for k in params})
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if state == TrialState.COMPLETE:
        study.tell(trial, 1.0)
    elif state != TrialState.RUNNING:
        study.tell(trial, state=state)
    return trial


def test_visited_counts_run_running_and_queued_trials_and_skips_repeats_and_closed_ones() -> None:
    guard = DistinctAsk(spec_of())
    study = _study()
    a, b, c = ({LR: lr, LOOPS: 1} for lr in (0.01, 0.02, 0.04))
    d, e = {LR: 0.01, LOOPS: 2}, {LR: 0.01, LOOPS: 3}
    _run(study, a)  # 0
    _run(study, b, TrialState.FAIL, **{DUPLICATE: 0})  # 1: a repeat told FAIL
    _run(study, c, TrialState.FAIL, **{CLOSED: True})  # 2: stopped by the user; its copy is queued
    _run(study, d, TrialState.PRUNED, **{NUMBER: 11})  # 3: a re-run of clowncar trial 11
    _run(study, e, TrialState.RUNNING)  # 4
    study.enqueue_trial(c)  # 5: the closed trial's copy, waiting
    expected = {guard.key(a): 0, guard.key(d): 11, guard.key(e): 4, guard.key(c): 5}
    assert guard.visited(study) == expected
    assert guard.visited(study) == expected  # the second time from the finished trials' cached keys
    assert guard.visited(study, but=4) == {k: v for k, v in expected.items() if v != 4}


def test_a_trial_told_fail_before_it_ran_is_a_duplicate_or_unasked_and_any_other_is_neither() -> None:
    study = _study()
    _run(study, {LOOPS: 1}, TrialState.FAIL, **{DUPLICATE: 0})  # a repeat (its earlier trial was trial 0)
    _run(study, {LOOPS: 2}, TrialState.FAIL, **{UNASKED: True})  # an ask a dead head cut short
    _run(study, {LOOPS: 3}, TrialState.FAIL)  # a trial that ran and failed
    _run(study, {LOOPS: 1}, TrialState.FAIL, **{DUPLICATE: 0, UNASKED: True})  # a repeat is named as one first
    trials = study.get_trials(deepcopy=False)
    assert [why_never_ran(t) for t in trials] == ["DUPLICATE", "UNASKED", None, "DUPLICATE"]
    assert [never_ran(t) for t in trials] == [True, True, False, True]


def test_a_queued_or_running_trial_is_read_again_as_its_parameters_grow() -> None:
    space = {LOOPS: {"choice": [1, 2]}, LR: {"choice": [0.01, 0.04]}}  # neither is the preset's 0.02
    guard = DistinctAsk(spec_of(space))
    study = _study()
    study.enqueue_trial({LOOPS: 1})  # a partial point (the preset runs 2 loops): the sampler fills in the rest
    assert guard.visited(study) == {guard.key({LOOPS: 1}): 0}
    trial = study.ask()  # running, its queued value not suggested yet: still counted
    assert guard.visited(study) == {guard.key({LOOPS: 1}): 0}
    trial.suggest_categorical(LOOPS, [1, 2])
    assert guard.visited(study) == {guard.key({LOOPS: 1}): 0}
    lr = trial.suggest_categorical(LR, [0.01, 0.04])
    assert guard.key({LOOPS: 1, LR: lr}) != guard.key({LOOPS: 1})
    assert guard.visited(study) == {guard.key({LOOPS: 1, LR: lr}): 0}
    study.tell(trial, 1.0)
    assert guard.visited(study) == {guard.key({LOOPS: 1, LR: lr}): 0}


def test_a_finite_space_is_exhausted_once_every_point_has_run_or_runs() -> None:
    guard = DistinctAsk(spec_of({LOOPS: {"choice": [1, 2]}}))
    study = _study()
    _run(study, {LOOPS: 1})
    assert not guard.exhausted(study)
    _run(study, {LOOPS: 2}, TrialState.RUNNING)
    assert guard.exhausted(study)


def test_a_finite_space_is_not_exhausted_while_a_queued_trial_waits_to_be_asked() -> None:
    guard = DistinctAsk(spec_of({LOOPS: {"choice": [1, 2]}}))
    study = _study()
    _run(study, {LOOPS: 1})
    study.enqueue_trial({LOOPS: 2})  # the last point, queued: it counts as visited, yet it has still to run
    assert not guard.exhausted(study)
    study.tell(study.ask({LOOPS: DISTS[LOOPS]}), 1.0)  # Optuna hands out the queued trial first: it ran
    assert guard.exhausted(study)


# --- asking until a config is new ---------------------------------------------------------------------------

def _insistent(study: optuna.Study, params: dict[str, Any], asked: list[int]) -> Any:
    """A sampler that suggests `params` every time, except that a queued trial goes first (as Optuna's do)."""
    def ask() -> tuple[Any, dict[str, Any]]:
        if not any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False)):
            study.enqueue_trial(params)
        trial = study.ask(DISTS)
        asked.append(trial.number)
        return trial, dict(trial.params)

    return ask


def test_a_new_config_is_run_at_the_first_ask() -> None:
    guard = DistinctAsk(spec_of())
    study = _study()
    asked: list[int] = []
    trial, params = ask_distinct(study, _insistent(study, {LR: 0.02, LOOPS: 2}, asked), guard,
                                 lambda t: study.tell(t, state=TrialState.FAIL))
    assert params == {LR: 0.02, LOOPS: 2} and asked == [trial.number] == [0]


def test_a_repeat_is_failed_and_re_asked_then_the_nearest_new_config_runs() -> None:
    guard = DistinctAsk(spec_of(sampler_seed=3))
    study = _study()
    insisted = {LR: 0.02, LOOPS: 2}
    _run(study, insisted)  # trial 0 ran it
    asked: list[int] = []
    trial, params = ask_distinct(study, _insistent(study, insisted, asked), guard,
                                 lambda t: study.tell(t, state=TrialState.FAIL))
    repeats = asked[:-1]
    assert len(repeats) == REASKS + 1 and asked[-1] == trial.number
    for number in repeats:
        t = study.trials[number]
        assert t.state == TrialState.FAIL and t.user_attrs[DUPLICATE] == 0 and t.params == insisted
    nearest = guard.nearest_unvisited(insisted, {guard.key(insisted): 0}, salt=repeats[-1])
    assert params == nearest and params != insisted


def test_the_search_ends_when_the_sampler_insists_and_every_config_has_run() -> None:
    guard = DistinctAsk(spec_of({LOOPS: {"choice": [1, 2]}}))
    study = _study()
    _run(study, {LOOPS: 1})
    _run(study, {LOOPS: 2})
    asked: list[int] = []

    def ask() -> tuple[Any, dict[str, Any]]:
        study.enqueue_trial({LOOPS: 1})
        trial = study.ask({LOOPS: DISTS[LOOPS]})
        asked.append(trial.number)
        return trial, dict(trial.params)

    assert ask_distinct(study, ask, guard, lambda t: study.tell(t, state=TrialState.FAIL)) is None
    assert len(asked) == REASKS + 1


def test_a_random_point_of_a_continuous_space_is_seeded_and_inside_every_range() -> None:
    space = {LR: {"float": [0.01, 0.1], "log": True}, LOOPS: {"int": [1, 4]},
             "train.scalar_lr": {"float": [0.5, 1.0], "step": 1e-7},  # 5,000,001 steps: too many to list
             "model.inst_dim": {"choice": [8, 16], "when": {LOOPS: [2, 3, 4]}}}
    guard = DistinctAsk(spec_of(space, sampler_seed=5))
    assert guard.points is None
    points = [guard.random_point(salt) for salt in range(200)]
    assert points[:3] == [guard.random_point(salt) for salt in range(3)]  # the sweep's seed and the salt decide
    assert all(0.01 <= p[LR] <= 0.1 and p[LOOPS] in (1, 2, 3, 4) and 0.5 <= p["train.scalar_lr"] <= 1.0
               for p in points)
    assert all(("model.inst_dim" in p) == (p[LOOPS] != 1) for p in points)  # only where its condition holds
    assert all(abs(p["train.scalar_lr"] / 1e-7 - round(p["train.scalar_lr"] / 1e-7)) < 1e-3 for p in points)
    lrs = sorted(p[LR] for p in points)
    assert lrs[100] < 0.05  # log-uniform: the median is near sqrt(0.01 x 0.1) = 0.032, not 0.055
    assert {p[LOOPS] for p in points} == {1, 2, 3, 4}


def test_a_random_point_of_an_int_range_too_large_to_list_takes_every_step_and_nothing_else(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the point limit at 3, ranges of 5 values are drawn from rather than listed (the stepped one ends off
    its grid: 10 is not a step from 1); a parameter whose condition fails is left out and the ones after it are
    still drawn."""
    monkeypatch.setattr("clowncar.orchestrator.suggest.MAX_POINTS", 3)
    space = {LOOPS: {"int": [1, 10], "step": 2}, "model.inst_dim": {"choice": [8, 16], "when": {LOOPS: [3, 5]}},
             "train.warmdown_iters": {"int": [0, 4]}}
    guard = DistinctAsk(spec_of(space, sampler_seed=4))
    assert guard.points is None
    points = [guard.random_point(salt) for salt in range(200)]
    assert {p[LOOPS] for p in points} == {1, 3, 5, 7, 9}
    assert {p["train.warmdown_iters"] for p in points} == {0, 1, 2, 3, 4}
    assert all(("model.inst_dim" in p) == (p[LOOPS] in (3, 5)) for p in points)


def test_a_random_point_of_a_stepped_float_range_is_the_unstepped_draw_rounded_to_the_step() -> None:
    step = 0.001  # 1,000,001 values: too many to list
    plain = DistinctAsk(spec_of({"train.scalar_lr": {"float": [1.0, 1001.0]}}, sampler_seed=6))
    stepped = DistinctAsk(spec_of({"train.scalar_lr": {"float": [1.0, 1001.0], "step": step}}, sampler_seed=6))
    assert plain.points is None and stepped.points is None
    drawn = [plain.random_point(salt)["train.scalar_lr"] for salt in range(200)]
    on_grid = [stepped.random_point(salt)["train.scalar_lr"] for salt in range(200)]
    assert all(abs(g - d) <= step / 2 + 1e-9 for g, d in zip(on_grid, drawn, strict=True))
    assert all(abs((g - 1.0) / step - round((g - 1.0) / step)) < 1e-6 for g in on_grid)
    assert 300 < sorted(drawn)[100] < 700  # uniform, not log-uniform: the median is near 501, not 32


def test_a_continuous_range_of_one_value_ends_an_insisting_ask_after_the_random_moves() -> None:
    """Every random point of [0.02, 0.02] repeats the trial that ran it: the ask stops after REASKS re-asks and
    then RANDOM_MOVES random points, no more and no fewer."""
    from optuna.distributions import FloatDistribution

    guard = DistinctAsk(spec_of({LR: {"float": [0.02, 0.02]}}, sampler_seed=1))
    study = _study()
    dists = {LR: FloatDistribution(0.02, 0.02)}
    study.enqueue_trial({LR: 0.02})
    study.tell(study.ask(dists), 1.0)  # trial 0 ran the only config
    asked: list[int] = []

    def ask() -> tuple[Any, dict[str, Any]]:
        trial = study.ask(dists)  # a queued random point first, as Optuna does
        asked.append(trial.number)
        return trial, dict(trial.params)

    assert ask_distinct(study, ask, guard, lambda t: study.tell(t, state=TrialState.FAIL)) is None
    assert len(asked) == REASKS + RANDOM_MOVES + 1


def test_a_random_move_that_repeats_a_trial_is_asked_and_failed_and_the_next_seeded_move_runs() -> None:
    """With the learning rate off at one loop, a random move can repeat the one-loop trial: it is queued and told
    FAIL like any repeat (not skipped for the sampler's own next suggestion), and the next seeded move runs."""
    space = {LOOPS: {"choice": [1, 2]}, LR: {"float": [0.01, 0.04], "when": {LOOPS: 2}}}
    guard = DistinctAsk(spec_of(space, sampler_seed=4))
    assert guard.random_point(REASKS + 1) == {LOOPS: 1} and guard.random_point(REASKS + 2)[LOOPS] == 2
    study = _study()
    _run(study, {LOOPS: 1})  # trial 0
    asked: list[int] = []

    def ask() -> tuple[Any, dict[str, Any]]:  # insists on one loop, then would suggest a new point of its own
        if not any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False)):
            study.enqueue_trial({LOOPS: 1} if len(asked) <= REASKS else {LOOPS: 2, LR: 0.02})
        trial = study.ask()
        if trial.suggest_categorical(LOOPS, [1, 2, 3]) == 2:  # the choices of `_run`'s trial 0
            trial.suggest_float(LR, 0.01, 0.04)
        asked.append(trial.number)
        return trial, dict(trial.params)

    got = ask_distinct(study, ask, guard, lambda t: study.tell(t, state=TrialState.FAIL))
    assert got is not None and got[1] == guard.random_point(REASKS + 2)
    assert asked == list(range(1, REASKS + 4))
    assert study.trials[REASKS + 2].params == {LOOPS: 1} and study.trials[REASKS + 2].user_attrs[DUPLICATE] == 0


def test_a_sampler_that_insists_in_a_continuous_space_is_moved_to_a_random_point_not_ended() -> None:
    """A GP at the bound of its range suggests one config again and again; the space is not exhausted."""
    from optuna.distributions import FloatDistribution, IntDistribution

    guard = DistinctAsk(spec_of({LOOPS: {"int": [1, 3]}, LR: {"float": [0.01, 0.04]}}, sampler_seed=2))
    study = _study()
    dists = {LR: FloatDistribution(0.01, 0.04), LOOPS: IntDistribution(1, 3)}
    insisted = {LR: 0.02, LOOPS: 2}
    study.enqueue_trial(insisted)
    study.tell(study.ask(dists), 1.0)  # trial 0 ran it
    asked: list[int] = []

    def ask() -> tuple[Any, dict[str, Any]]:  # `_insistent` over this space's distributions
        if not any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False)):
            study.enqueue_trial(insisted)
        trial = study.ask(dists)
        asked.append(trial.number)
        return trial, dict(trial.params)

    got = ask_distinct(study, ask, guard, lambda t: study.tell(t, state=TrialState.FAIL))
    assert got is not None, "the search ended although a continuous space can never be exhausted"
    trial, params = got
    assert params == guard.random_point(salt=asked[-2]) != insisted and asked[-1] == trial.number
    assert len(asked) == REASKS + 2 and RANDOM_MOVES > 0
