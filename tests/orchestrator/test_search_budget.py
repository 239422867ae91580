"""When the sweep's searcher (`orchestrator/search.py`) stops asking: its trial budget, its GPU-hour budget (what
each finished, running or merely asked trial is billed or committed), a space that has run every config, a stop;
and the backlog the GPU ledger plans from what is left. Driven directly, without Ray, on an in-memory study; each
end says why, in the words `sweep status` shows. (What it tells Optuna as trials end: test_search_tells.py.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from clowncar.orchestrator.search import END_REASON, STARTED, SweepSearch, finished_count, gpu_seconds_used
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.suggest import DUPLICATE

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS = "model.crawler_loops"


def spec_of(**fields: Any) -> Any:
    data = {"name": "budget", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 4},
            "space": {LOOPS: {"choice": [1, 2, 3, 4]}}, **fields}
    return spec_from_dict(data)


def searcher(spec: Any) -> SweepSearch:
    return SweepSearch(spec, optuna.storages.InMemoryStorage(), spec.max_trials())


def final(status: str = "ok", **fields: Any) -> dict[str, Any]:
    return {"final": True, "status": status, **fields}


def test_the_trial_budget_counts_finished_and_running_trials_and_says_so() -> None:
    search = searcher(spec_of(budget={"max_trials": 2}))
    search.suggest("t0")
    search.on_trial_complete("t0", final(objective=1.0))
    assert search.suggest("t1") != Searcher.FINISHED
    assert search.suggest("t2") == Searcher.FINISHED
    assert search.end_reason == "max_trials reached: 1 finished, 1 running, budget 2"
    assert search.study.user_attrs[END_REASON] == search.end_reason


def test_a_grid_without_a_budget_ends_when_its_distinct_trials_have_started_and_says_that() -> None:
    spec = spec_of(sampler="grid", space={LOOPS: {"grid": [1, 2]}}, budget={})
    search = searcher(spec)
    search.suggest("t0")
    search.on_trial_complete("t0", final(objective=1.0))
    assert search.suggest("t1") != Searcher.FINISHED
    assert search.suggest("t2") == Searcher.FINISHED
    assert search.end_reason == "all 2 distinct trials started: 1 finished, 1 running"  # no max_trials was given


def test_a_stopping_sweep_asks_nothing_more() -> None:
    search = searcher(spec_of())
    search.stopping.set()
    assert search.suggest("t0") == Searcher.FINISHED and search.study.trials == []


def test_an_exhausted_space_ends_the_search_with_its_reason() -> None:
    search = searcher(spec_of(space={LOOPS: {"choice": [1, 2]}}))
    for i in range(2):
        search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", final(objective=1.0))
    assert not search.budget_left() and search.end_reason == "every distinct config of the search space has run"
    assert search.backlog_seconds() == (search._expected_s(),) * 2  # the trial budget's view: 4 - 2


def test_an_ask_on_a_space_already_run_ends_the_search_and_keeps_no_trial_for_tune() -> None:
    search = searcher(spec_of(space={LOOPS: {"choice": [1, 2]}}))
    for i in range(2):
        search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", final(objective=1.0))
    assert search._ask("t2") is None
    assert "t2" not in search._ot_trials and search.end_reason == "every distinct config of the search space has run"
    assert all(t.state == TrialState.FAIL for t in search.study.trials[2:])  # the repeats it was offered


def _finished(study: optuna.Study, seconds: float, state: TrialState = TrialState.COMPLETE,
              **attrs: Any) -> None:
    frozen = optuna.trial.create_trial(
        params={LOOPS: 1}, distributions={LOOPS: optuna.distributions.CategoricalDistribution([1, 2, 3, 4])},
        value=1.0 if state == TrialState.COMPLETE else None, state=state, user_attrs=attrs)
    frozen.datetime_start = dt.datetime(2026, 12, 1, 12, 0, 0)
    frozen.datetime_complete = frozen.datetime_start + dt.timedelta(seconds=seconds)
    study.add_trial(frozen)


def test_gpu_seconds_count_every_finished_trial_but_told_repeats() -> None:
    study = optuna.create_study()
    _finished(study, 100)
    _finished(study, 50, TrialState.FAIL, status="error")  # a failed trial with its outcome: it ran
    _finished(study, 70, TrialState.FAIL, **{DUPLICATE: 0})
    assert gpu_seconds_used(study, 4) == pytest.approx(600.0)
    assert finished_count(study) == 2


def test_trials_told_before_the_start_was_recorded_count_from_their_ask() -> None:
    study = optuna.create_study()
    _finished(study, 100)  # a result: it ran
    _finished(study, 50, TrialState.FAIL, status="crashed")  # an outcome of its own: it ran
    _finished(study, 70, TrialState.FAIL)  # closed with no outcome and no start: it never ran
    _finished(study, 30, TrialState.FAIL, **{STARTED: dt.datetime(2026, 12, 1, 12, 0, 10).timestamp()})
    assert gpu_seconds_used(study, 4) == pytest.approx((100 + 50 + 20) * 4)


def test_the_gpu_hour_budget_stops_before_a_trial_that_would_pass_it(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(resources={"gpus": 2}, budget={"max_trials": 100, "max_gpu_hours": 0.5})
    search = searcher(spec)
    _finished(search.study, 360)  # 720 GPU-seconds used; trials take 360 s: each needs 720 more of the 1800
    assert search.budget_left()
    monkeypatch.setattr("clowncar.orchestrator.search.time.time", lambda: 1000.0)
    search.running_since = {"a": 990.0}  # asked, not started: 720 committed to it (it is expected to take 360 s)
    assert not search.budget_left()
    assert search.end_reason == ("GPU-hour budget reached: 0.2000 of 0.5 GPU-hours used (0.4000 committed); "
                                 "the next trial needs ~0.2000")
    search.running_since, search.started = {"a": 590.0}, {"a": 600.0}  # its worker started 400 s ago: longer
    # than expected, so it counts as is (from its start, not its ask)
    assert not search.budget_left()
    assert "(0.4222 committed)" in search.end_reason


def test_a_gpu_budget_may_be_spent_exactly_and_binds_one_gpu_trials_too() -> None:
    exact = searcher(spec_of(resources={"gpus": 2}, budget={"max_trials": 100, "max_gpu_hours": 0.5}))
    _finished(exact.study, 450)  # 900 GPU-seconds used; the next needs 900: 1800 is the whole budget
    assert exact.budget_left()
    one = searcher(spec_of(resources={"gpus": 1}, budget={"max_trials": 100, "max_gpu_hours": 0.1}))
    _finished(one.study, 300)  # 300 used + 300 next > 360
    assert not one.budget_left() and one.end_reason.startswith("GPU-hour budget reached: 0.0833 of 0.1 GPU-hours")


def test_a_gpu_budget_a_quarter_second_short_refuses_the_trial() -> None:
    search = searcher(spec_of(resources={"gpus": 2}, budget={"max_trials": 100, "max_gpu_hours": 0.5}))
    _finished(search.study, 450.125)  # 900.25 used + 900.25 next = 1800.5 > 1800
    assert not search.budget_left()


def test_a_cpu_sweep_or_one_without_a_gpu_cap_is_bounded_by_trials_only() -> None:
    assert searcher(spec_of()).budget_left()
    assert searcher(spec_of(resources={"gpus": 1})).budget_left()


def test_the_expected_trial_time_is_the_mean_of_completed_trials_only() -> None:
    search = searcher(spec_of())
    _finished(search.study, 30)
    _finished(search.study, 50)
    _finished(search.study, 999, TrialState.FAIL)
    assert search._expected_s() == pytest.approx(40.0)


def test_the_backlog_is_the_trials_left_at_their_expected_time() -> None:
    search = searcher(spec_of(budget={"max_trials": 3}))
    assert search.backlog_seconds() == (pytest.approx(66.0),) * 3  # tiny-cpu: 60 s cap + 10 %
    _finished(search.study, 30)
    search.suggest("t0")
    assert search.backlog_seconds() == (30.0,)  # one finished, one running: one left, at the measured mean


def test_the_backlog_is_empty_once_the_budget_is_spent() -> None:
    search = searcher(spec_of(budget={"max_trials": 1}))
    search.suggest("t0")
    assert search.backlog_seconds() == ()
