"""The sweep runner's parts that need no Ray cluster, in this process: which trial is best and which form the
front, the summary, the scheduler a spec gets, how signals stop a sweep, and the Tuner it builds. Its Optuna storage:
test_study_open.py; the driver itself: test_sweep_driver.py (in this process), the CLI and cluster tests."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from clowncar.orchestrator import tune
from clowncar.orchestrator.same_code import SameCode
from clowncar.orchestrator.search import ATTEMPT, CLOSED, NUMBER, finished_count
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.study_results import (
    best_trial,
    count_earlier,
    finished_outcomes,
    pareto_front,
    summarize,
)
from clowncar.orchestrator.suggest import DUPLICATE, UNASKED
from clowncar.version import checkout_commit

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS = "model.crawler_loops"
BASE = {"name": "s", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 8},
        "space": {LOOPS: {"choice": [1, 2, 3, 4]}}}
DIST = {LOOPS: CategoricalDistribution([1, 2, 3, 4])}


def spec(**fields: Any) -> Any:
    return spec_from_dict({**BASE, **fields})


def study_of(trials: list[tuple[int, list[float] | None, float, TrialState, dict[str, Any]]],
             directions: int = 1) -> optuna.Study:
    study = optuna.create_study(directions=["minimize"] * directions)
    for loops, values, over, state, attrs in trials:
        study.add_trial(create_trial(params={LOOPS: loops}, distributions=DIST, values=values, state=state,
                                     constraints={"artifact_bytes_over_cap": over}, user_attrs=attrs))
    return study


OK = TrialState.COMPLETE


def test_the_best_trial_is_the_best_feasible_complete_one() -> None:
    study = study_of([(1, [1.30], -1.0, OK, {NUMBER: 10}), (2, [1.10], 0.5, OK, {NUMBER: 11}),
                      (3, [1.20], 0.0, OK, {}), (4, None, -1.0, TrialState.FAIL, {}),
                      (1, [1.25], -1.0, OK, {NUMBER: 14})])
    assert best_trial(spec(), study) == {"number": 2, "objective": 1.20, "params": {LOOPS: 3},
                                         "values": [1.20]}  # no NUMBER attribute: Optuna's own number
    assert best_trial(spec(objective={"metric": "auto", "mode": "max"}), study)["number"] == 10
    assert best_trial(spec(), study_of([])) is None
    assert best_trial(spec(), study_of([(1, [1.0], 1.0, OK, {})])) is None  # only infeasible


def test_a_resumed_sweeps_progress_starts_from_its_earlier_trials_and_best() -> None:
    from clowncar.orchestrator.record import Tally

    study = study_of([(1, [1.30], -1.0, OK, {NUMBER: 0}), (2, [1.10], 0.5, OK, {NUMBER: 1}),
                      (3, [1.20], -1.0, OK, {NUMBER: 2}), (4, None, -1.0, TrialState.FAIL, {NUMBER: 3})])
    tally = Tally(total=8)
    assert count_earlier(tally, spec(), study) == 4
    assert tally.by_status == {"ok": 3, "crashed": 1}  # no `status` told with them: as the store recorded them
    assert tally.best == (1.20, 2, {LOOPS: 3})  # the infeasible 1.10: never
    assert "best objective 1.2000 (trial 2: model.crawler_loops=3)" in tally.line(1)
    fresh = Tally(total=8)
    assert count_earlier(fresh, spec(), study_of([])) == 0 and fresh.best is None


def test_the_earlier_trials_are_added_to_what_the_tally_already_counts() -> None:
    from clowncar.orchestrator.record import Tally

    study = study_of([(1, [1.30], -1.0, OK, {NUMBER: 0}), (4, None, -1.0, TrialState.FAIL, {NUMBER: 1})])
    tally = Tally(total=8, by_status={"ok": 2, "oom": 1}, gpu_seconds=5.0)
    assert count_earlier(tally, spec(), study) == 2
    assert tally.by_status == {"ok": 3, "oom": 1, "crashed": 1}  # added to, never overwritten
    assert tally.gpu_seconds == 5.0  # a CPU sweep bills no GPU time: what was counted stays


def resumed_study() -> optuna.Study:
    """A sweep's study after a driver was SIGKILLed and resumed: trial 2 was cut off (closed) and ran again as its
    attempt 1; trial 6 was cut off and waits to run again; and the outcomes a study holds with and without the
    worker's `status`."""
    study = study_of([(1, [1.30], -1.0, OK, {NUMBER: 0, "status": "ok"}),
                      (2, [1.10], 0.5, OK, {NUMBER: 1, "status": "ok"}),  # over the size cap: ok all the same
                      (3, None, -1.0, TrialState.FAIL, {NUMBER: 2, ATTEMPT: 0, CLOSED: "head died while it ran"}),
                      (4, None, -1.0, TrialState.FAIL, {NUMBER: 3, "status": "diverged"}),
                      (4, None, -1.0, TrialState.PRUNED, {NUMBER: 4}),  # stopped by ASHA
                      (1, None, -1.0, TrialState.FAIL, {NUMBER: 5}),  # Ray gave up on it: the store says crashed
                      (2, None, -1.0, TrialState.FAIL, {DUPLICATE: 0}),  # never ran
                      (2, None, -1.0, TrialState.FAIL, {NUMBER: 6, ATTEMPT: 0, CLOSED: "head died while it ran"}),
                      (3, [1.20], -1.0, OK, {NUMBER: 2, ATTEMPT: 1, "status": "ok"})])
    study.enqueue_trial({LOOPS: 2}, user_attrs={NUMBER: 6, ATTEMPT: 1})
    return study


def test_a_resumed_sweeps_progress_counts_each_trial_by_its_latest_attempts_outcome_as_sweep_status_does() -> None:
    """After a resume the progress line said `done 6/6 (ok 4, failed 0, ...)` where `sweep status` said `ok 6`:
    the earlier trials were one uncounted `earlier` lump. Each is now counted under the outcome of its latest
    attempt, the one the store shows: a cut-off attempt that ran again counts once, as its re-run."""
    from clowncar.orchestrator.record import Tally

    study, tally = resumed_study(), Tally(total=8)
    assert count_earlier(tally, spec(), study) == 6 == finished_count(study)
    assert tally.by_status == {"ok": 3, "diverged": 1, "pruned": 1, "crashed": 1}
    assert tally.line(1).startswith("done 6/8 (ok 3, failed 2, pruned 1, stopped 0) | running 0 | ")
    assert finished_outcomes(study_of([])) == {}


def test_a_resumed_gpu_sweeps_progress_starts_from_the_gpu_hours_its_earlier_runs_used() -> None:
    """The line said `GPU-h 0.000` at a resume's start while `sweep status` billed the earlier runs: it starts from
    their bill now, the cut-off attempt's worker time included (it ran)."""
    import datetime as dt

    from clowncar.orchestrator.billing import STARTED, gpu_seconds_used
    from clowncar.orchestrator.record import Tally

    study, end = optuna.create_study(), dt.datetime(2026, 12, 6, 11, 0, tzinfo=dt.UTC)
    for state, seconds, attrs in [(OK, 90, {NUMBER: 0, "status": "ok"}),
                                  (TrialState.FAIL, 30, {NUMBER: 1, CLOSED: "head died while it ran"})]:
        frozen = create_trial(params={LOOPS: 1}, distributions=DIST, value=1.3 if state == OK else None,
                              state=state, user_attrs={**attrs, STARTED: end.timestamp() - seconds})
        frozen.datetime_start, frozen.datetime_complete = end - dt.timedelta(seconds=600), end
        study.add_trial(frozen)
    tally = Tally(total=8, gpus=2)
    count_earlier(tally, spec(resources={"gpus": 2}), study)
    assert tally.gpu_seconds == pytest.approx(2 * 120) == gpu_seconds_used(study, 2)
    assert " | GPU-h 0.067 | " in tally.line(1)


def test_the_best_trial_of_enqueued_points_names_their_parameters() -> None:
    # a rerun's child sweep (or a named point) has no space to suggest from: its trials' whole config is the
    # enqueued point, which optuna keeps beside `params`, not in it
    study = optuna.create_study()
    study.enqueue_trial({LOOPS: 3, "train.seed": 7})
    trial = study.ask()
    trial.set_user_attr(NUMBER, 0)
    study.tell(trial, 1.25)
    assert study.trials[0].params == {}
    assert best_trial(spec(space={}), study)["params"] == {LOOPS: 3, "train.seed": 7}


def test_a_tie_keeps_the_first_trial() -> None:
    study = study_of([(1, [1.2], -1.0, OK, {NUMBER: 0}), (2, [1.2], -1.0, OK, {NUMBER: 1})])
    assert best_trial(spec(), study)["number"] == 0
    assert best_trial(spec(objective={"metric": "auto", "mode": "max"}), study)["number"] == 0


def test_the_front_holds_feasible_nondominated_trials_ordered_by_objective() -> None:
    nsga = spec(sampler="nsga2")
    study = study_of([(1, [1.30, 8e6], -1.0, OK, {NUMBER: 20}), (2, [1.20, 9e6], -1.0, OK, {NUMBER: 21}),
                      (3, [1.25, 9.5e6], -1.0, OK, {NUMBER: 22}),  # dominated by trial 21
                      (4, [1.10, 7e6], 1.0, OK, {NUMBER: 23})], directions=2)  # would dominate, but over the cap
    assert pareto_front(nsga, study) == [{"number": 21, "values": [1.20, 9e6], "params": {LOOPS: 2}},
                                         {"number": 20, "values": [1.30, 8e6], "params": {LOOPS: 1}}]
    assert pareto_front(spec(), study_of([(1, [1.0], -1.0, OK, {})])) == []  # one objective: no front


def test_the_summary_counts_states_duplicates_and_asks_cut_short() -> None:
    study = study_of([(1, [1.3], -1.0, OK, {NUMBER: 0}), (2, None, -1.0, TrialState.FAIL, {DUPLICATE: 0}),
                      (3, None, -1.0, TrialState.FAIL, {}), (4, None, -1.0, TrialState.PRUNED, {}),
                      (4, None, -1.0, TrialState.FAIL, {UNASKED: True})])
    out = summarize(spec(), study, {"closed_running": 1}, 4)
    assert out == {"sweep": "s", "asked_this_run": 4,
                   "optuna_states": {"COMPLETE": 1, "DUPLICATE": 1, "FAIL": 1, "PRUNED": 1, "UNASKED": 1},
                   "reconciled": {"closed_running": 1}, "best": best_trial(spec(), study), "pareto": [],
                   "metric": "auto"}


def test_the_summary_counts_an_attempt_its_trials_next_attempt_replaced_as_replaced_not_failed() -> None:
    """The end of a resumed sweep said `optuna trials complete 6, fail 2` of six trials that all ended ok: the two
    FAILs were attempts its driver's death cut off, each run again."""
    states = summarize(spec(), resumed_study(), {}, 1)["optuna_states"]
    assert states == {"COMPLETE": 3, "REPLACED": 2, "FAIL": 2, "PRUNED": 1, "DUPLICATE": 1, "WAITING": 1}


def test_a_spec_without_asha_gets_tunes_fifo_scheduler() -> None:
    from ray.tune.schedulers import FIFOScheduler

    from clowncar.orchestrator.ledger import GatedFIFO

    assert type(tune.build_scheduler(spec(), None)) is FIFOScheduler

    class Gate:
        on_idle_blocks = None

    gate = Gate()
    gated = tune.build_scheduler(spec(), gate)
    assert type(gated) is GatedFIFO and gate.on_idle_blocks == gated.drop_idle_actors


def test_asha_gets_the_specs_rungs_and_spares_the_last_steps() -> None:
    from clowncar.orchestrator.asha import FinishingASHA
    from clowncar.orchestrator.ledger import GatedASHA

    s = spec(scheduler={"type": "asha", "metric": "val_bpb", "grace_period": 32, "reduction_factor": 3,
                        "max_t": 38}, overrides={"train.val_every": 16})  # val_bpb measured at the rung
    asha = tune.build_scheduler(s, None)
    assert type(asha) is FinishingASHA
    assert (asha._time_attr, asha._metric, asha._mode, asha._max_t, asha._reduction_factor) == (
        "val_bpb_step", "val_bpb", "min", 38, 3)
    assert asha._brackets[0]._rungs[-1][0] == 32 and asha._stop_last_trials is False  # first rung at the grace

    class Gate:
        on_idle_blocks = None

    assert type(tune.build_scheduler(s, Gate())) is GatedASHA


def test_asha_without_max_t_stops_at_the_trials_iterations_and_never_rungs_past_them() -> None:
    s = spec(scheduler={"type": "asha", "grace_period": 10_000})
    iterations = s.trial_config({}).train.iterations
    asha = tune.build_scheduler(s, None)
    assert asha._max_t == iterations and asha._time_attr == "train_loss_step"
    assert all(r[0] <= iterations for r in asha._brackets[0]._rungs)  # grace capped at max_t


def test_ctrl_c_and_sigterm_set_the_stop_flag_and_interrupt(monkeypatch) -> None:
    flag = threading.Event()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with tune._stop_on_signals(flag):
        handler = signal.getsignal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGINT) is handler
        with pytest.raises(KeyboardInterrupt):
            handler(signal.SIGTERM, None)
        assert flag.is_set()
    assert {s: signal.getsignal(s) for s in before} == before


def test_off_the_main_thread_signals_are_left_alone() -> None:
    flag = threading.Event()
    seen: list[Any] = []

    def body() -> None:
        with tune._stop_on_signals(flag):
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [before]


class FakeTune:
    """The parts of `ray.tune` that _tuner calls, recording what it is given."""

    def __init__(self) -> None:
        self.made: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.made.setdefault(name, []).append((args, kwargs))
            return (name, args, kwargs)

        return record


def test_the_tuner_gets_one_bundle_per_trial_the_searcher_and_the_store_callback(tmp_path: Path) -> None:
    fake = FakeTune()
    s = spec(max_concurrent=3, max_failures=2, resources={"cpus": 2, "gpus": 0})

    class Searcher:
        gate = None

    searcher, callback = Searcher(), object()
    context = lambda **kw: ("ctx", kw)  # noqa: E731
    tuner = tune._tuner(s, tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path / "runs"), searcher, callback,
                        5, fake, "run_trial", context)
    assert tuner[0] == "Tuner"
    (bundle_args, _), = fake.made["PlacementGroupFactory"]
    assert bundle_args == ([{"CPU": 2, "GPU": 0}],)
    (params_args, params_kw), = fake.made["with_parameters"]
    assert params_args == ("run_trial",)
    assert params_kw["ctx"] == ("ctx", {"sweep": "s", "spec": s.to_dict(), "runs_dir": str(tmp_path / "runs"),
                                        "size_cap": s.size_cap()})
    (_, tc_kw), = fake.made["TuneConfig"]
    assert tc_kw["search_alg"] is searcher and tc_kw["num_samples"] == 5 and tc_kw["max_concurrent_trials"] == 3
    assert tc_kw["reuse_actors"] is True
    (_, rc_kw), = fake.made["RunConfig"]
    assert rc_kw["name"] == "s" and rc_kw["storage_path"] == str(tmp_path / "runs" / "tune")
    store_callback, same_code = rc_kw["callbacks"]
    assert store_callback is callback and rc_kw["verbose"] == 0 and rc_kw["log_to_file"] is False
    assert isinstance(same_code, SameCode) and same_code.driver == checkout_commit()  # read as the sweep starts
    (_, fc_kw), = fake.made["FailureConfig"]
    assert fc_kw == {"max_failures": 2}
    assert searcher.gate is None  # a CPU sweep has no GPU ledger


@pytest.mark.parametrize(("gpus", "placement", "gated"), [(1, "ledger", True), (2, "ledger", True), (2, "ray", False),
                                                          (0, "ledger", False)])
def test_gpu_trials_are_admitted_by_the_ledger_unless_ray_places_them(tmp_path: Path, monkeypatch, gpus: int,
                                                                      placement: str, gated: bool) -> None:
    import functools

    from clowncar.orchestrator import ledger

    gates: list[tuple] = []

    class Gate:
        on_idle_blocks = None

        def __init__(self, n: int, limit: int) -> None:
            gates.append((n, limit))

        def close(self) -> None:
            pass

    monkeypatch.setattr(ledger, "Gate", Gate)
    fake = FakeTune()
    s = spec(max_concurrent=2, resources={"cpus": 3, "gpus": gpus, "placement": placement})

    class Searcher:
        gate = None

    searcher = Searcher()
    tune._tuner(s, tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path), searcher, object(), 4, fake, "rt",
                lambda **kw: kw)
    (wr_args, _), = fake.made["with_resources"]
    (_, tc_kw), = fake.made["TuneConfig"]
    if gated:
        assert gates == [(gpus, 2)] and isinstance(searcher.gate, Gate)
        resources = wr_args[1]
        assert isinstance(resources, functools.partial) and resources.func is ledger.trial_resources
        assert resources.args == (3, gpus)
        assert type(tc_kw["scheduler"]) is ledger.GatedFIFO and searcher.gate.on_idle_blocks is not None
    else:
        assert gates == [] and searcher.gate is None
        assert wr_args[1] == ("PlacementGroupFactory", ([{"CPU": 3, "GPU": gpus}],), {})
        assert type(tc_kw["scheduler"]).__name__ == "FIFOScheduler"
    assert wr_args[0] == ("with_parameters", ("rt",), {"ctx": {"sweep": "s", "spec": s.to_dict(),
                                                               "runs_dir": str(tmp_path), "size_cap": s.size_cap()}})
    (tuner_args, _), = fake.made["Tuner"]
    assert tuner_args == (("with_resources", wr_args, {}),)


def test_the_front_uses_optunas_number_without_ours_and_keeps_a_trial_at_the_cap() -> None:
    nsga = spec(sampler="nsga2")
    study = study_of([(1, [1.30, 8e6], 0.0, OK, {}), (2, [1.20, 9e6], 0.5, OK, {})], directions=2)
    assert pareto_front(nsga, study) == [{"number": 0, "values": [1.30, 8e6], "params": {LOOPS: 1}}]


def test_the_summary_of_a_two_objective_sweep_holds_its_front() -> None:
    nsga = spec(sampler="nsga2")
    study = study_of([(1, [1.30, 8e6], -1.0, OK, {NUMBER: 0})], directions=2)
    assert summarize(nsga, study, {}, 1)["pareto"] == [{"number": 0, "values": [1.30, 8e6],
                                                       "params": {LOOPS: 1}}]


def _without_our_filter(logger: Any) -> tuple[list[Any], list[Any]]:
    """The logger's filters as they are, and as they are left for the test: without the filter an earlier sweep
    run in this process installed (it stays for the process's life), so that the test sees its own."""
    saved = list(logger.filters)
    logger.filters[:] = [f for f in saved if not isinstance(f, tune._NoResultFilesWarning)]
    return saved, list(logger.filters)


def test_tunes_warning_about_the_result_files_it_was_told_not_to_write_is_dropped(caplog) -> None:
    """The sweep turns Tune's result-file loggers off; Tune then warns at the end of every fit, a line per trial,
    that each trial lacks those files. That one warning is dropped, once however often a sweep starts, and every
    other warning of the same logger still reaches the user."""
    import logging

    analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    saved, before = _without_our_filter(analysis)
    try:
        tune._quiet_missing_result_files()
        tune._quiet_missing_result_files()
        assert len(analysis.filters) == len(before) + 1
        with caplog.at_level(logging.WARNING, logger=analysis.name):
            analysis.warning("Failed to fetch metrics for %d trial(s):\n- run_trial_1: FileNotFoundError()", 6)
            analysis.warning("No trial data passed in during `ExperimentAnalysis` initialization")
            analysis.warning("Could not fetch metrics: Failed to fetch metrics for 2 trial(s)")
        assert [r.getMessage() for r in caplog.records] == [
            "No trial data passed in during `ExperimentAnalysis` initialization",
            "Could not fetch metrics: Failed to fetch metrics for 2 trial(s)"]
    finally:
        analysis.filters[:] = saved


@pytest.mark.parametrize(("setting", "quiet"), [(None, True), ("1", True), ("0", False)])
def test_the_warning_stays_when_the_user_keeps_tunes_result_files(monkeypatch, tmp_path: Path, setting: str | None,
                                                                  quiet: bool) -> None:
    import logging

    analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    saved, before = _without_our_filter(analysis)
    if setting is None:
        monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    else:
        monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", setting)
    for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_SIGINT_HANDLER"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # run_sweep sets them: restored after the test

    class Refused(Exception):
        pass

    def refuse(url: str) -> None:
        raise Refused(url)

    monkeypatch.setattr("clowncar.store.open_store", refuse)
    try:
        with pytest.raises(Refused):
            tune.run_sweep(spec(), tune.RunOptions(store_url="sqlite:///x.db", runs_dir=tmp_path))
        added = [f for f in analysis.filters if f not in before]
        assert len(added) == (1 if quiet else 0)
    finally:
        analysis.filters[:] = saved
