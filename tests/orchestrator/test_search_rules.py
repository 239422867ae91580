"""The search rules that bench_search.py measured (benchmarks/README.md, "search"): one trial per config, a
start-up phase sized to the budget, ASHA that compares values measured at the rung and never stops a trial at its
last step. All without Ray: the searcher and the scheduler are driven directly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from clowncar.orchestrator.sampler import make_sampler
from clowncar.orchestrator.search import SweepSearch, finished_count
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.suggest import DUPLICATE, DistinctAsk, finite_points, startup_trials

SPACE = {"train.matrix_lr": {"choice": [0.01, 0.02, 0.04]}, "model.crawler_loops": {"choice": [1, 2, 3]}}


def spec_of(**fields: Any) -> Any:
    data = {"name": "rules", "preset": "tiny-cpu", "sampler": "random", "space": SPACE,
            "overrides": {"train.max_wallclock_seconds": 0}, "budget": {"max_trials": 9}, **fields}
    return spec_from_dict(data)


def searcher(spec: Any) -> SweepSearch:
    return SweepSearch(spec, optuna.storages.InMemoryStorage(), spec.max_trials())


def complete(search: SweepSearch, trial_id: str, value: float) -> None:
    search.on_trial_complete(trial_id, {"final": True, "status": "ok", "objective": value, "constraint": -1.0})


def config_of(params: dict[str, Any]) -> tuple[Any, ...]:
    return params["train.matrix_lr"], params["model.crawler_loops"]


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_each_config_of_a_finite_space_runs_once_then_the_search_ends(sampler: str) -> None:
    spec = spec_of(sampler=sampler, budget={"max_trials": 20}, startup_trials=3)
    search = searcher(spec)
    seen = []
    for i in range(20):
        params = search.suggest(f"t{i}")
        if params == "FINISHED":
            break
        seen.append(config_of(params))
        complete(search, f"t{i}", 3.0 - 0.1 * params["model.crawler_loops"])
    assert sorted(seen) == sorted(config_of(p) for p in finite_points(spec))  # all 9, each once
    assert search.end_reason == "every distinct config of the search space has run"
    assert finished_count(search.study) == 9  # the repeats told FAIL count against no budget
    repeats = [t for t in search.study.trials if t.user_attrs.get(DUPLICATE) is not None]
    assert all(t.state == TrialState.FAIL for t in repeats)


def test_a_sampler_that_insists_on_a_config_gets_the_nearest_unvisited_one() -> None:
    spec = spec_of()
    guard = DistinctAsk(spec)
    study = optuna.create_study()
    study.enqueue_trial({"train.matrix_lr": 0.02, "model.crawler_loops": 2})
    trial = study.ask()
    trial.suggest_categorical("train.matrix_lr", [0.01, 0.02, 0.04])
    trial.suggest_categorical("model.crawler_loops", [1, 2, 3])
    study.tell(trial, 1.0)
    visited = guard.visited(study)
    near = guard.nearest_unvisited({"train.matrix_lr": 0.02, "model.crawler_loops": 2}, visited, salt=1)
    # one step away in exactly one parameter (value ranks): lr 0.01 / 0.04 at 2 loops, or 1 / 3 loops at 0.02
    assert near in [{"train.matrix_lr": 0.01, "model.crawler_loops": 2},
                    {"train.matrix_lr": 0.04, "model.crawler_loops": 2},
                    {"train.matrix_lr": 0.02, "model.crawler_loops": 1},
                    {"train.matrix_lr": 0.02, "model.crawler_loops": 3}]
    assert guard.nearest_unvisited({"train.matrix_lr": 0.02, "model.crawler_loops": 2}, visited, salt=1) == near


def test_a_closed_trial_rerun_and_other_seeds_are_not_repeats() -> None:
    spec = spec_of(seeds=[1, 2])
    search = searcher(spec)
    first = search.suggest("a")
    params = {k: v for k, v in first.items() if k != "_cc"}
    search.stopping.set()  # the sweep was stopped while "a" ran: closed, re-queued as its next attempt
    search.on_trial_complete("a", None)
    search.stopping.clear()
    again = search.suggest("b")
    assert {k: v for k, v in again.items() if k != "_cc"} == params and again["_cc"]["attempt"] == 1
    guard = DistinctAsk(spec)
    other_seed = {**params, "train.seed": 3 - params["train.seed"]}
    assert guard.key(other_seed) != guard.key(params)


def test_moot_parameters_do_not_make_a_config_new() -> None:
    # one loop: the cadence changes nothing (canonical configs), so cadence 2 after cadence 1 is a repeat
    spec = spec_of(space={"model.crawler_loops": {"choice": [1]}, "train.cadence": {"choice": [1, 2]}})
    guard = DistinctAsk(spec)
    assert guard.key({"model.crawler_loops": 1, "train.cadence": 1}) == \
        guard.key({"model.crawler_loops": 1, "train.cadence": 2})


def test_continuous_spaces_are_never_exhausted() -> None:
    spec = spec_of(space={"train.matrix_lr": {"float": [0.01, 0.1], "log": True}})
    assert finite_points(spec) is None
    conditional = spec_of(space={"model.crawler_loops": {"choice": [1, 2]},
                                 "train.cadence": {"choice": [2, 4], "when": {"model.crawler_loops": 2}}})
    assert finite_points(conditional) == [{"model.crawler_loops": 1}, {"model.crawler_loops": 2, "train.cadence": 2},
                                          {"model.crawler_loops": 2, "train.cadence": 4}]


@pytest.mark.parametrize("budget, expected", [(9, 3), (16, 3), (20, 4), (40, 8), (200, 10)])
def test_tpe_startup_trials_are_a_fifth_of_the_budget_between_3_and_10(budget: int, expected: int) -> None:
    spec = spec_of(sampler="tpe", budget={"max_trials": budget})
    assert startup_trials(spec) == expected
    assert make_sampler(spec)._n_startup_trials == expected
    assert make_sampler(spec_of(sampler="tpe", startup_trials=7))._n_startup_trials == 7


# -- ASHA ----------------------------------------------------------------------------------------------------------

def asha_spec(metric: str = "train_loss") -> Any:
    # val_bpb measured every 5 steps (tiny-cpu measures it only at the end, where no rung may be)
    return spec_of(overrides={"train.max_wallclock_seconds": 0, "train.iterations": 40, "train.warmdown_iters": 40,
                              "train.val_every": 5},
                   scheduler={"type": "asha", "metric": metric, "grace_period": 10, "reduction_factor": 2})


def report(step: int, metric: str, value: float, at: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"step": step, metric: value, f"{metric}_step": step if at is None else at, "last_step": 40, **extra}


def test_asha_never_stops_a_trial_at_its_last_step() -> None:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from clowncar.orchestrator.tune import build_scheduler

    spec = asha_spec()
    ours = build_scheduler(spec, None)
    # Tune's own ASHA with the same settings: its bracket has a rung at max_t = 40, the last training step
    tunes = ASHAScheduler(time_attr="train_loss_step", metric="train_loss", mode="min", max_t=40, grace_period=10,
                          reduction_factor=2, stop_last_trials=False)
    decisions = {}
    for name, scheduler in (("ours", ours), ("tune", tunes)):
        trials = [Trial("t", stub=True) for _ in range(3)]
        for t in trials:
            scheduler.on_trial_add(None, t)
        for t, loss in zip(trials, (2.0, 1.0), strict=False):
            assert scheduler.on_trial_result(None, t, report(40, "train_loss", loss)) == TrialScheduler.CONTINUE
        decisions[name] = scheduler.on_trial_result(None, trials[2], report(40, "train_loss", 3.0))
    assert decisions == {"ours": TrialScheduler.CONTINUE, "tune": TrialScheduler.STOP}


def test_asha_compares_trials_at_a_rung_on_values_measured_there() -> None:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from clowncar.orchestrator.tune import build_scheduler

    scheduler = build_scheduler(asha_spec("val_bpb"), None)
    a, b = Trial("t", stub=True), Trial("t", stub=True)
    scheduler.on_trial_add(None, a)
    scheduler.on_trial_add(None, b)
    assert scheduler.on_trial_result(None, a, report(10, "val_bpb", 2.0)) == TrialScheduler.CONTINUE
    # b reached step 10, but its latest eval is from step 5 (the step-10 eval is still running): no decision yet
    assert scheduler.on_trial_result(None, b, report(10, "val_bpb", 3.0, at=5)) == TrialScheduler.CONTINUE
    # the step-10 eval arrives: b is judged on it
    assert scheduler.on_trial_result(None, b, report(11, "val_bpb", 2.5, at=10)) == TrialScheduler.STOP


def test_relay_reports_the_step_each_asha_metric_was_measured_at(tmp_path: Path) -> None:
    from clowncar.orchestrator.trainable import Relay

    events = tmp_path / "events.jsonl"
    rows = [{"event": "step", "step": s, "kind": "C", "train_loss": 5.0 - s / 10} for s in range(1, 11)]
    rows.insert(8, {"event": "eval", "step": 8, "mode": "standard", "weights": "raw", "val_bpb": 2.5})
    rows.insert(5, {"event": "probe", "step": 4, "probe_loss": 4.5, "mode": "C"})
    rows.append({"event": "eval", "step": 10, "mode": "standard", "weights": "quantized", "val_bpb": 9.0})
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    relay = Relay(events, last_step=10)
    out = relay.report(relay.poll())
    assert (out["step"], out["train_loss_step"], out["val_bpb_step"], out["probe_loss_step"]) == (10, 10, 8, 4)
    assert out["val_bpb"] == 2.5 and out["probe_loss"] == 4.5 and out["last_step"] == 10  # quantized eval ignored
    assert math.isclose(out["train_loss"], 4.0)


def test_a_resumed_asha_starts_with_the_rung_values_of_the_trials_the_store_holds(tmp_path: Path) -> None:
    """`sweep resume` built a fresh ASHA: the first trial at a rung after it was compared with nothing and ran to
    the end, though the trials stored before the interruption would have stopped it (sweep a4: ok 3, pruned 1
    resumed, ok 2, pruned 2 uninterrupted)."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from clowncar.orchestrator.record import trial_uid
    from clowncar.orchestrator.search import ATTEMPT, NUMBER
    from clowncar.orchestrator.tune import build_scheduler
    from clowncar.store import open_store

    spec = spec_from_dict({
        "name": "a4", "preset": "tiny-cpu", "sampler": "grid",
        "overrides": {"train.iterations": 30, "train.warmdown_iters": 20, "train.max_wallclock_seconds": 0,
                      "train.probe_every": 5},
        "space": {"train.matrix_lr": {"grid": [0.05, 0.001, 0.04, 0.0005]}},
        "scheduler": {"type": "asha", "metric": "probe_loss", "grace_period": 15, "reduction_factor": 2}})
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    store.create_or_get_sweep("a4", spec.model_dump())
    # (number, status, probe loss at steps 5, 10, ...): an ok trial, a pruned one whose rows run past its rung,
    # and one stopped by the interrupt after its rung, queued to run again
    for number, status, losses in ((0, "ok", (4.0, 3.0, 2.0, 1.9, 1.8, 1.7)), (1, "pruned", (4.0, 3.5, 3.0, 2.9)),
                                   (2, "stopped", (4.0, 2.0, 1.0, 0.9))):
        uid = trial_uid("a4", number)
        store.start_trial("a4", uid, number, 0, {"train": {"number": number}}, None, "n0")
        store.add_probes(uid, 0, [{"step": 5 * (i + 1), "mode": "C", "probe_loss": v} for i, v in enumerate(losses)])
        store.finish_trial(uid, 0, status, None, None)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    study.enqueue_trial({"train.matrix_lr": 0.04}, user_attrs={NUMBER: 2, ATTEMPT: 1})

    def at_rung(scheduler: Any, loss: float) -> str:
        trial = Trial("t", stub=True)
        scheduler.on_trial_add(None, trial)
        return scheduler.on_trial_result(None, trial, {"step": 15, "probe_loss": loss, "probe_loss_step": 15,
                                                       "last_step": 30})

    resumed = build_scheduler(spec, None, store, study)
    # rung 15 holds the ok trial's 2.0 and the pruned one's 3.0 (cutoff 2.5), not the 1.0 of the trial that runs
    # again (its new attempt records its own): with it, the cutoff would be 2.0 and 2.2 stopped
    assert at_rung(resumed, 2.6) == TrialScheduler.STOP
    assert at_rung(resumed, 2.2) == TrialScheduler.CONTINUE
    assert at_rung(build_scheduler(spec, None), 2.6) == TrialScheduler.CONTINUE  # a new sweep: nothing to compare
    rungs = dict(resumed._brackets[0]._rungs)
    assert rungs[30] == {"store:a4/0": -1.7}  # only the ok trial reached the last rung
