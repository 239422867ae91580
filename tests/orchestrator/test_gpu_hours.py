"""GPU-hours are billed from a trial's worker start, never for a trial that waited for Ray and never started: a
GPU sweep on embedded Ray with no GPU was billed for its whole silent wait (walk finding 2), which also ate into
`budget.max_gpu_hours`. Driven on the searcher without Ray."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from clowncar.orchestrator.search import ATTEMPT, STARTED, SweepSearch, gpu_seconds_used
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.suggest import NUMBER

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS = "model.crawler_loops"


def gpu_searcher() -> SweepSearch:
    spec = spec_from_dict({"name": "g", "preset": "tiny-cpu", "sampler": "random", "resources": {"gpus": 2},
                           "budget": {"max_trials": 4}, "space": {LOOPS: {"choice": [1, 2, 3, 4]}}})
    return SweepSearch(spec, optuna.storages.InMemoryStorage(), spec.max_trials())


def test_a_trial_stopped_while_it_waited_for_ray_is_not_billed() -> None:
    search = gpu_searcher()
    assert search.suggest("t0") is not None
    time.sleep(0.05)  # asked, waiting for a GPU no node offers
    search.stopping.set()  # Ctrl-C: Tune stops the trial that never started
    search.on_trial_complete("t0")
    (trial,) = [t for t in search.study.get_trials() if t.state == TrialState.FAIL]
    assert (trial.datetime_complete - trial.datetime_start).total_seconds() >= 0.05
    assert gpu_seconds_used(search.study, 2) == 0.0


def test_a_trial_is_billed_from_its_first_report_not_from_its_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    search = gpu_searcher()
    assert search.suggest("t0") is not None
    asked = search.study.get_trials()[0].datetime_start.timestamp()
    clock = iter([asked + 100.0, asked + 500.0])  # the worker starts 100 s after the ask; a later report
    monkeypatch.setattr("clowncar.orchestrator.search.time.time", lambda: next(clock))
    search.on_trial_result("t0", {"worker_pid": 1})
    search.on_trial_result("t0", {"step": 5})  # not its start: the first report's time is kept
    monkeypatch.undo()
    started = search.study.get_trials()[0].user_attrs[STARTED]
    assert started == asked + 100.0
    search.on_trial_complete("t0", {"final": True, "status": "crashed", "reason": "x"})
    ended = search.study.get_trials()[0].datetime_complete.timestamp()
    assert gpu_seconds_used(search.study, 2) == pytest.approx(max(0.0, ended - started) * 2)


def test_a_rerun_attempt_is_billed_from_its_first_report_and_a_retry_from_its_own() -> None:
    search = gpu_searcher()
    search.study.enqueue_trial({LOOPS: 2}, user_attrs={NUMBER: 5, ATTEMPT: 1})
    assert search.suggest("t0")["_cc"] == {"number": 5, "attempt": 1}  # a `sweep resume` re-run
    search.on_trial_result("t0", {"attempt": 1, "worker_pid": 1})
    first = search.study.get_trials()[0].user_attrs[STARTED]
    assert first is not None
    search.retried("t0", 2)  # its node died: Tune runs it again as attempt 2
    search.on_trial_result("t0", {"attempt": 1, "step": 9})  # a late report of the dead execution
    assert search.study.get_trials()[0].user_attrs[STARTED] is None
    search.on_trial_result("t0", {"attempt": 2, "worker_pid": 2})
    assert search.study.get_trials()[0].user_attrs[STARTED] > first


def test_the_executions_tune_retried_stay_committed_while_the_trial_runs_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU-hour cap counts a trial in flight as its current execution (from its own worker start, at least the
    expected time) plus every execution of it that died before (from its worker start to the retry): two
    executions of 0.5 s and 3 s commit 3.5 s beside the current one. A trial whose node died before its first
    report has nothing to add."""
    from clowncar.orchestrator.search import RETRIED_S

    search = gpu_searcher()
    assert search.suggest("t0") is not None and search.suggest("t1") is not None
    now = [1000.0]
    monkeypatch.setattr("clowncar.orchestrator.search.time.time", lambda: now[0])

    def at(t: float) -> None:
        now[0] = 1000.0 + t

    search.on_trial_result("t0", {"attempt": 0, "worker_pid": 1})
    at(0.5)
    search.retried("t0", 1)
    search.retried("t1", 1)  # its node died before it reported: never started, nothing billed
    at(10.0)
    search.on_trial_result("t0", {"worker_pid": 2})  # a report that names no attempt is the current execution's
    at(13.0)
    search.retried("t0", 2)
    at(20.0)
    assert search._in_flight_s(10.0, now[0]) == pytest.approx((10.0 + 3.5) + 10.0)
    search.on_trial_result("t0", {"attempt": 2, "worker_pid": 3})
    at(60.0)
    assert search._in_flight_s(10.0, now[0]) == pytest.approx((40.0 + 3.5) + 10.0)
    monkeypatch.undo()
    t0, t1 = search.study.get_trials()[:2]
    assert (t0.user_attrs[ATTEMPT], t0.user_attrs[RETRIED_S]) == (2, pytest.approx(3.5))
    assert t1.user_attrs[ATTEMPT] == 1 and RETRIED_S not in t1.user_attrs


def test_sweep_status_bills_the_finished_trials_and_not_one_still_running_before_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`sweep status` during a sweep: trial 0's worker started and is still running, trial 1 has finished. Only
    trial 1 is billed (a running trial has no end yet), and trial 0 does not stop the count of the ones after it."""
    search = gpu_searcher()
    assert search.suggest("t0") is not None and search.suggest("t1") is not None
    an_hour_ago = time.time() - 3600.0
    monkeypatch.setattr("clowncar.orchestrator.search.time.time", lambda: an_hour_ago)
    search.on_trial_result("t0", {"worker_pid": 1})
    search.on_trial_result("t1", {"worker_pid": 2})
    monkeypatch.undo()
    search.on_trial_complete("t1", {"final": True, "status": "ok", "q_val_bpb": 2.3})
    running, done = search.study.get_trials()[:2]
    assert running.state == TrialState.RUNNING and running.user_attrs[STARTED] == an_hour_ago
    billed = (done.datetime_complete.timestamp() - an_hour_ago) * 2
    assert billed >= 7200.0 and gpu_seconds_used(search.study, 2) == pytest.approx(billed)
