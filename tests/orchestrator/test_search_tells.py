"""What the sweep's searcher (`orchestrator/search.py`) tells Optuna for each way a trial ends, its pieces and its
own state: driven directly, without Ray, on an in-memory study. A wrong tell loses a result or runs a trial twice.
(When it stops asking: test_search_budget.py.)"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from ray import cloudpickle

from clowncar.orchestrator.sampler import make_sampler
from clowncar.orchestrator.search import ATTEMPT, CONSTRAINT, SweepSearch, close_trial, finished_count, tell
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.suggest import CLOSED, NUMBER

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS = "model.crawler_loops"


def spec_of(**fields: Any) -> Any:
    data = {"name": "tells", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 4},
            "space": {LOOPS: {"choice": [1, 2, 3, 4]}}, **fields}
    return spec_from_dict(data)


def searcher(spec: Any, on_tell: Any = None) -> SweepSearch:
    return SweepSearch(spec, optuna.storages.InMemoryStorage(), spec.max_trials(), on_tell=on_tell)


def final(status: str = "ok", **fields: Any) -> dict[str, Any]:
    return {"final": True, "status": status, **fields}


# --- one tell per way a trial ends --------------------------------------------------------------------------

def test_an_ok_trial_is_complete_with_its_objective_and_its_size_constraint() -> None:
    told: list[tuple[str, str]] = []
    search = searcher(spec_of(), on_tell=lambda tid, result, outcome: told.append((tid, outcome)))
    params = search.suggest("t0")
    assert params["_cc"] == {"number": 0, "attempt": 0} and params[LOOPS] in (1, 2, 3, 4)
    search.on_trial_complete("t0", final(objective=1.25, constraint=-3.0, reason="fine"))
    [t] = search.study.trials
    assert (t.state, t.value) == (TrialState.COMPLETE, 1.25)
    assert t.constraints == {"artifact_bytes_over_cap": -3.0} and CONSTRAINT == "artifact_bytes_over_cap"
    assert t.user_attrs["status"] == "ok" and t.user_attrs["reason"] == "fine"
    assert (t.user_attrs[NUMBER], t.user_attrs[ATTEMPT]) == (0, 0)
    assert told == [("t0", "ok")] and search.tells == 1 and search.running_since == {}


@pytest.mark.parametrize(("constraint", "stored"), [(None, 0.0), ("12", 0.0), (math.nan, 0.0), (math.inf, 0.0),
                                                    (5, 5.0)])
def test_a_missing_or_unreadable_constraint_counts_as_met_at_the_cap(constraint: Any, stored: float) -> None:
    search = searcher(spec_of())
    search.suggest("t0")
    search.on_trial_complete("t0", final(objective=2.0, constraint=constraint))
    assert search.study.trials[0].constraints == {CONSTRAINT: stored}


@pytest.mark.parametrize(("result", "outcome"), [
    (final("diverged", objective=None, reason="loss is nan at step 7"), "diverged"),
    (final("ok", objective=math.nan), "ok"),
    (final("ok", objective="1.2"), "ok"),
    (final("ok"), "ok"),
    (final("oom", objective=1.0, reason="x" * 900), "oom"),
])
def test_a_trial_without_a_finite_objective_or_not_ok_is_failed_with_its_status(result: dict[str, Any],
                                                                                 outcome: str) -> None:
    told: list[str] = []
    search = searcher(spec_of(), on_tell=lambda tid, res, out: told.append(out))
    search.suggest("t0")
    search.on_trial_complete("t0", result)
    [t] = search.study.trials
    assert t.state == TrialState.FAIL and told == [outcome] and t.user_attrs["status"] == result["status"]
    assert t.user_attrs.get("reason") == (str(result["reason"])[:500] if result.get("reason") else None)


def test_nsga2_tells_the_objective_and_the_artifact_bytes() -> None:
    search = searcher(spec_of(sampler="nsga2"))
    search.suggest("t0")
    search.on_trial_complete("t0", final(objective=1.5, artifact_bytes=12_000_000, constraint=-1.0))
    search.suggest("t1")
    search.on_trial_complete("t1", final(objective=1.4, artifact_bytes=None))
    first, second = search.study.trials
    assert (first.state, first.values) == (TrialState.COMPLETE, [1.5, 12_000_000.0])
    assert second.state == TrialState.FAIL


def test_a_crash_fails_the_trial_and_an_asha_stop_prunes_it() -> None:
    told: list[str] = []
    search = searcher(spec_of(), on_tell=lambda tid, res, out: told.append(out))
    search.suggest("t0")
    search.suggest("t1")
    search.on_trial_complete("t0", None, error=True)
    search.on_trial_complete("t1", {"step": 10, "train_loss": 3.0})  # no final report: ASHA stopped it
    assert [t.state for t in search.study.trials] == [TrialState.FAIL, TrialState.PRUNED]
    assert told == ["crashed", "pruned"]


def test_a_failed_trial_is_told_with_the_outcome_its_error_says_and_a_crash_without_one() -> None:
    asked: list[str] = []
    outcomes = {"t0": ("oom", "killed by the memory monitor " + "x" * 600), "t1": ("oom", None),
                "t2": ("crashed", "worker died")}
    told: list[str] = []
    search = searcher(spec_of(), on_tell=lambda tid, res, out: told.append(out))
    search.error_outcome = lambda tid: asked.append(tid) or outcomes[tid]
    for tid in outcomes:
        search.suggest(tid)
        search.on_trial_complete(tid, None, error=True)
    assert asked == ["t0", "t1", "t2"] and told == ["oom", "oom", "crashed"]
    oom, bare, crashed = search.study.trials
    assert [t.state for t in (oom, bare, crashed)] == [TrialState.FAIL] * 3
    assert oom.user_attrs["status"] == "oom"  # as a final report's status: the study counts it so
    assert oom.user_attrs["reason"] == ("killed by the memory monitor " + "x" * 600)[:500]
    assert (bare.user_attrs["status"], bare.user_attrs["reason"]) == ("oom", "")
    assert "status" not in crashed.user_attrs and "reason" not in crashed.user_attrs  # a crash is Optuna's FAIL


def test_a_trial_the_user_stopped_is_closed_and_queued_again_as_its_next_attempt() -> None:
    told: list[str] = []
    search = searcher(spec_of(), on_tell=lambda tid, res, out: told.append(out))
    params = search.suggest("t0")
    search.stopping.set()
    search.on_trial_complete("t0", {"step": 3})
    closed, copy = search.study.trials
    assert closed.state == TrialState.FAIL and closed.user_attrs[CLOSED] == "sweep stopped"
    assert copy.state == TrialState.WAITING and copy.system_attrs["fixed_params"] == {LOOPS: params[LOOPS]}
    assert (copy.user_attrs[NUMBER], copy.user_attrs[ATTEMPT]) == (0, 1) and told == ["stopped"]
    assert finished_count(search.study) == 0  # a closed trial counts against no budget


def test_a_trial_is_told_once_however_often_tune_reports_its_end() -> None:
    told: list[str] = []
    search = searcher(spec_of(), on_tell=lambda tid, res, out: told.append(out))
    search.suggest("t0")
    search.on_trial_complete("t0", final(objective=1.0))
    search.on_trial_complete("t0", final("crashed"), error=True)
    search.on_trial_complete("never-asked", final(objective=1.0))
    assert told == ["ok"] and search.tells == 1 and search.study.trials[0].state == TrialState.COMPLETE


def test_a_re_run_keeps_its_number_and_attempt() -> None:
    search = searcher(spec_of())
    search.study.enqueue_trial({LOOPS: 3}, user_attrs={NUMBER: 7, ATTEMPT: 2})
    params = search.suggest("t0")
    assert params == {LOOPS: 3, "_cc": {"number": 7, "attempt": 2}}


# --- the pieces ---------------------------------------------------------------------------------------------

def test_each_sampler_name_makes_its_optuna_sampler() -> None:
    kinds = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler,
             "gp": optuna.samplers.GPSampler, "nsga2": optuna.samplers.NSGAIISampler}
    for name, kind in kinds.items():
        assert isinstance(make_sampler(spec_of(sampler=name)), kind)


def test_a_tell_the_grid_sampler_complains_about_after_the_fact_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    study = optuna.create_study()
    trial = study.ask({LOOPS: optuna.distributions.CategoricalDistribution([1, 2])})
    real = optuna.Study.tell

    def complaining(self: optuna.Study, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise RuntimeError("study.stop() outside an objective")

    monkeypatch.setattr(optuna.Study, "tell", complaining)
    tell(study, trial, 1.0, TrialState.COMPLETE)  # the state landed: the complaint changes nothing
    assert study.trials[0].state == TrialState.COMPLETE
    second = study.ask({LOOPS: optuna.distributions.CategoricalDistribution([1, 2])})

    def refusing(self: optuna.Study, *args: Any, **kwargs: Any) -> Any:
        raise KeyError("grid_id")

    monkeypatch.setattr(optuna.Study, "tell", refusing)
    with pytest.raises(KeyError):  # nothing landed: the error stands
        tell(study, second.number, None, TrialState.FAIL)


def test_closing_a_trial_queues_one_copy_however_often_it_is_closed() -> None:
    study = optuna.create_study()
    trial = study.ask({LOOPS: optuna.distributions.CategoricalDistribution([1, 2])})
    close_trial(study, trial._trial_id, 5, 1, {LOOPS: 2}, "head died while it ran")
    again = study.ask({LOOPS: optuna.distributions.CategoricalDistribution([1, 2])})  # takes the copy
    assert again.params == {LOOPS: 2} and again.user_attrs == {NUMBER: 5, ATTEMPT: 2}
    other = study.ask({LOOPS: optuna.distributions.CategoricalDistribution([1, 2])})
    study.enqueue_trial({LOOPS: 1}, user_attrs={NUMBER: 6, ATTEMPT: 1})
    close_trial(study, other._trial_id, 6, 0, {LOOPS: 1}, "head died while it ran")  # its copy is queued already
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs == {NUMBER: 6, ATTEMPT: 1}
    assert study.trials[0].user_attrs[CLOSED] == "head died while it ran"
    assert study.trials[0].state == TrialState.FAIL


def test_the_pickled_searcher_holds_no_storage_and_cannot_be_restored() -> None:
    search = searcher(spec_of())
    search.suggest("t0")
    state = search.__getstate__()  # what Tune's cloudpickle writes into tuner.pkl
    assert state["_storage"] is None and state["_ot_study"] is None and state["_ot_trials"] == {}
    assert state["on_tell"] is None and state["gate"] is None and state["stopping"] is None
    assert state["_sampler"] is None and state["spec"] is search.spec
    assert b"InMemoryStorage" not in cloudpickle.dumps(search)
    assert search.save("/nowhere") is None
    with pytest.raises(RuntimeError, match=r"clowncar sweep resume"):
        search.restore("/nowhere")


# --- the searched space, as Optuna sees it ------------------------------------------------------------------

def test_each_parameter_kind_reaches_optuna_with_its_range_step_and_scale() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = {"model.num_crawler_layers": {"choice": [0, 1]},
             "model.delta_net_heads": {"choice": [0, 2], "when": {"model.num_crawler_layers": 1}},
             "train.iterations": {"int": [20, 60], "step": 20},
             "train.warmdown_iters": {"int": [2, 16], "log": True},
             "train.matrix_lr": {"float": [0.01, 0.1], "log": True},
             "train.scalar_lr": {"float": [0.01, 0.05], "step": 0.01}}
    search = searcher(spec_of(space=space, budget={"max_trials": 30}))
    seen_layers = set()
    for i in range(12):
        search.suggest(f"t{i}")
    for t in search.study.trials:
        dists = t.distributions
        assert dists["train.iterations"] == IntDistribution(20, 60, step=20)
        assert dists["train.warmdown_iters"] == IntDistribution(2, 16, log=True)
        assert dists["train.matrix_lr"] == FloatDistribution(0.01, 0.1, log=True)
        assert dists["train.scalar_lr"] == FloatDistribution(0.01, 0.05, step=0.01)
        layers = t.params["model.num_crawler_layers"]
        seen_layers.add(layers)
        # the conditional parameter only where its condition holds; the parameters after it always
        assert ("model.delta_net_heads" in dists) == (layers == 1)
        if layers == 1:
            assert dists["model.delta_net_heads"] == CategoricalDistribution([0, 2])
    assert seen_layers == {0, 1}


def _sequence(spec: Any, n: int = 6) -> list[Any]:
    search = searcher(spec)
    return [search.suggest(f"t{i}")["train.matrix_lr"] for i in range(n)]


@pytest.mark.parametrize("sampler", ["random", "tpe", "gp", "nsga2"])
def test_a_sampler_draws_the_same_trials_for_the_same_seed_and_others_for_another(sampler: str) -> None:
    fields = {"sampler": sampler, "space": {"train.matrix_lr": {"float": [0.001, 0.1]}}, "budget": {"max_trials": 6}}
    first = _sequence(spec_of(**fields, sampler_seed=3))
    assert _sequence(spec_of(**fields, sampler_seed=3)) == first
    assert _sequence(spec_of(**fields, sampler_seed=4)) != first


def test_tpe_models_the_space_jointly_and_groups_a_conditional_one() -> None:
    plain = make_sampler(spec_of(sampler="tpe", budget={"max_trials": 30}))
    assert plain._multivariate is True and plain._group is False and plain._n_startup_trials == 6
    conditional = spec_of(sampler="tpe", space={"model.num_crawler_layers": {"choice": [0, 1]},
                                                "model.delta_net_heads": {"choice": [0, 2],
                                                                          "when": {"model.num_crawler_layers": 1}}})
    assert make_sampler(conditional)._group is True
    assert make_sampler(spec_of(sampler="gp", budget={"max_trials": 40}))._n_startup_trials == 8


# --- the searcher's own state -------------------------------------------------------------------------------

def test_a_searcher_opens_the_sweeps_study_in_the_given_storage() -> None:
    storage = optuna.storages.InMemoryStorage()
    search = SweepSearch(spec_of(), storage, 4)
    assert search.study.study_name == "tells" and search.study._storage is storage
    assert search.end_reason == "" and search.asked == 0 and search.tells == 0
    assert search.distinct is not None
    assert searcher(spec_of(sampler="nsga2")).distinct is None
    grid = spec_of(sampler="grid", space={LOOPS: {"grid": [1, 2]}}, budget={"max_trials": 2})
    assert searcher(grid).distinct is None


def test_asking_counts_trials_and_times_them_from_their_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clowncar.orchestrator.search.time.time", lambda: 1234.5)
    search = searcher(spec_of())
    search.suggest("t0")
    search.suggest("t1")
    assert search.asked == 2 and search.running_since == {"t0": 1234.5, "t1": 1234.5}


def test_the_tell_hook_gets_an_empty_result_for_a_trial_that_ended_without_one() -> None:
    got: list[Any] = []
    search = searcher(spec_of(), on_tell=lambda tid, result, outcome: got.append((tid, result, outcome)))
    search.suggest("t0")
    search.on_trial_complete("t0")
    assert got == [("t0", {}, "pruned")] and search.running_since == {}


def test_a_closed_re_run_keeps_its_number_and_moves_to_the_next_attempt() -> None:
    search = searcher(spec_of())
    search.study.enqueue_trial({LOOPS: 3}, user_attrs={NUMBER: 7, ATTEMPT: 2})
    search.suggest("t0")
    search.stopping.set()
    search.on_trial_complete("t0", {"step": 1})
    copy = [t for t in search.study.trials if t.state == TrialState.WAITING]
    assert [t.user_attrs for t in copy] == [{NUMBER: 7, ATTEMPT: 3}]
    assert copy[0].system_attrs["fixed_params"] == {LOOPS: 3}


def test_a_list_condition_admits_any_of_its_values() -> None:
    space = {"model.num_crawler_layers": {"choice": [0, 1, 2]},
             "model.delta_net_heads": {"choice": [0, 2], "when": {"model.num_crawler_layers": [1, 2]}}}
    search = searcher(spec_of(space=space, budget={"max_trials": 30}))
    for i in range(12):
        search.suggest(f"t{i}")
    for t in search.study.trials:
        assert ("model.delta_net_heads" in t.params) == (t.params["model.num_crawler_layers"] in (1, 2))


def test_a_queued_point_keeps_keys_the_space_does_not_search() -> None:
    search = searcher(spec_of())
    search.study.enqueue_trial({LOOPS: 3, "train.cadence": 4})
    assert search.suggest("t0") == {LOOPS: 3, "train.cadence": 4, "_cc": {"number": 0, "attempt": 0}}


@pytest.mark.parametrize(("when", "told_at_kill"), [("before", 1), ("after", 2)])
def test_a_fault_hook_kills_the_driver_just_before_or_after_the_nth_tell(monkeypatch: pytest.MonkeyPatch, when: str,
                                                                        told_at_kill: int) -> None:
    import os
    import signal

    search = searcher(spec_of())
    killed: list[tuple[int, int, int]] = []  # (pid, signal, trials told when it came)
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(
        (pid, sig, sum(t.state.is_finished() for t in search.study.trials))))
    monkeypatch.setenv("CLOWNCAR_FAULT", f"kill-{when}-tell:2")
    for i in range(3):
        search.suggest(f"t{i}")
    search.on_trial_complete("t0", final(objective=1.0))
    assert killed == []
    search.on_trial_complete("t1", final(objective=1.0))
    assert killed == [(os.getpid(), signal.SIGKILL, told_at_kill)] and search.tells == 2
    search.on_trial_complete("t2", final(objective=1.0))
    assert len(killed) == 1 and search.tells == 3


def test_the_fault_hook_kills_nothing_unless_told_that_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    from clowncar.orchestrator.search import _fault

    killed: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.delenv("CLOWNCAR_FAULT", raising=False)
    _fault("before", 1)  # no fault asked for: every real sweep
    monkeypatch.setenv("CLOWNCAR_FAULT", "kill-after-tell:2")
    _fault("before", 2)
    _fault("after", 1)
    assert killed == []
    _fault("after", 2)
    assert killed == [signal.SIGKILL]


def test_an_ask_hides_rays_slow_space_function_warning_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from ray.tune.search.optuna import optuna_search

    monkeypatch.setattr(optuna_search, "DEFINE_BY_RUN_WARN_THRESHOLD_S", -1.0)  # every space function is slow
    search = searcher(spec_of())
    space = search._space

    def space_that_warns(trial: Any) -> Any:
        warnings.warn("the space's own warning", UserWarning, stacklevel=1)
        return space(trial)

    search._space = space_that_warns
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        search.suggest("t0")
    assert [str(w.message) for w in seen] == ["the space's own warning"]


