"""A trial that Ray Tune runs again after its node died (spec `max_failures` >= 1) is two attempts, never one that
splices two executions (walk 2, finding 1): the killed execution ends `crashed` with its own rows, node and start,
the retry is the next attempt with its own; the study names the retry's attempt; GPU time is billed per execution
from each worker's start, the same in the driver's line and in `sweep status`, without the wait for a node.
The store callback and the searcher are wired as run_sweep wires them and driven in the order Tune calls them,
without Ray: a Ray Tune Trial, an in-memory study, a SQLite store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from clowncar.orchestrator.record import StoreCallback, Tally
from clowncar.orchestrator.resume import reconcile, requeue_failed
from clowncar.orchestrator.search import ATTEMPT, STARTED, SweepSearch, finished_count, gpu_seconds_used
from clowncar.orchestrator.spec import SweepSpec, spec_from_dict
from clowncar.orchestrator.suggest import NUMBER
from clowncar.orchestrator.trainable import trial_dir_of
from clowncar.store import Store, open_store

optuna.logging.set_verbosity(optuna.logging.WARNING)
NODE_LOST = ("Failure # 1 (occurred at 2026-12-06_11-03-40)\nThe actor 8011ab is unavailable: The actor is "
             "temporarily unavailable: RpcError: RPC error: Socket closed rpc_code: 14. The task may or may not have "
             "been executed on the actor.\n")


class Driver:
    """The head of a sweep with one GPU trial: the searcher, the store callback, and the Tune Trial they share."""

    def __init__(self, store: Store, error_file: Path) -> None:
        from ray.tune.experiment import Trial

        self.spec: SweepSpec = spec_from_dict({
            "name": "retry", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 2},
            "space": {"model.crawler_loops": {"choice": [1, 2, 3]}}, "resources": {"gpus": 2, "cpus": 1},
            "max_failures": 1})
        store.create_or_get_sweep("retry", self.spec.to_dict())
        self.store, self.tally = store, Tally(total=2, gpus=2)
        self.callback = StoreCallback(self.spec, store, self.tally, show=False)
        self.search = SweepSearch(self.spec, optuna.storages.InMemoryStorage(), 2, on_tell=self.callback.on_tell)
        self.callback.on_retry = self.search.retried  # as run_sweep wires them
        params = self.search.suggest("t0")

        class NodeKilledTrial(Trial):
            @property
            def error_file(self) -> str:
                return str(error_file)

        self.trial = NodeKilledTrial("clowncar_trial", config=params, trial_id="t0", stub=True)

    def report(self, host: str, steps: list[dict[str, Any]], **extra: Any) -> None:
        """One report of the trainable, with the attempt its config names (as run_trial sends it)."""
        result = {"host": host, "attempt": self.trial.config["_cc"]["attempt"],
                  "new_rows": json.dumps({"steps": steps}), **extra}
        self.search.on_trial_result("t0", result)
        self.callback.on_trial_result(1, [], self.trial, result)

    def node_dies(self) -> None:
        """Tune's _process_trial_failure with retries left: the trial is requeued, then on_trial_recover."""
        self.trial.run_metadata.num_failures += 1
        self.callback.on_trial_recover(2, [], self.trial)

    def finishes_ok(self, host: str) -> None:
        final = {"final": True, "status": "ok", "reason": "", "objective": 2.5, "feasible": True, "wall_s": 0.0,
                 "constraint": -1.0, "result_json": json.dumps({"q_val_bpb": 2.5, "steps": 3})}
        self.report(host, [], **final)
        self.search.on_trial_complete("t0", {**final, "attempt": self.trial.config["_cc"]["attempt"]})

    def optuna_trial(self) -> optuna.trial.FrozenTrial:
        (t,) = self.search.study.get_trials()
        return t


def steps(elapsed: list[int]) -> list[dict[str, Any]]:
    return [{"step": i + 1, "kind": "C", "train_loss": 5.0, "elapsed_ms": ms} for i, ms in enumerate(elapsed)]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    (tmp_path / "error.txt").write_text(NODE_LOST)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield Driver(store, tmp_path / "error.txt")
    store.close()


def test_a_tune_retry_is_the_next_attempt_with_its_own_rows_node_and_start(
        driver: Driver, capsys: pytest.CaptureFixture[str]) -> None:
    driver.report("node-a", steps([1000, 2000, 3000]))
    driver.report("node-a", steps([1000, 2000, 3000, 4000])[3:])
    driver.node_dies()
    late = {"host": "node-a", "attempt": 0, "new_rows": json.dumps({"steps": steps([1, 2, 3, 4, 5])[4:]})}
    driver.callback.on_trial_result(3, [], driver.trial, late)  # a report of the dead execution, after the retry
    number = driver.trial.config["_cc"]["number"]
    assert driver.trial.config["_cc"]["attempt"] == 1  # the config Tune starts the retry's actor with
    assert trial_dir_of(Path("runs"), "retry", number, 1).name == f"{number:05d}-1"  # its own trial folder
    driver.report("node-b", steps([700, 1400, 2100]))
    driver.finishes_ok("node-b")

    uid = f"retry/{number}"
    attempts = driver.store.get_trial(uid)["attempts"]  # type: ignore[index]
    assert [(a["attempt"], a["status"], a["node"]) for a in attempts] == [(0, "crashed", "node-a"), (1, "ok", "node-b")]
    assert attempts[0]["reason"] == (
        "its node died or stopped answering (Ray: The actor 8011ab is unavailable: The actor is temporarily "
        "unavailable: RpcError: RPC error: Socket closed rpc_code: 14. The task may or may not have been executed on "
        "the actor.); Tune retried it as attempt 1")
    assert attempts[1]["started_at"] >= attempts[0]["ended_at"] >= attempts[0]["started_at"]
    rows = driver.store.steps_frame("retry", all_attempts=True)
    by_attempt = {a: g["elapsed_ms"].tolist() for a, g in rows.groupby("attempt")}
    assert by_attempt == {0: [1000, 2000, 3000, 4000], 1: [700, 1400, 2100]}  # each execution's own rows
    assert driver.store.steps_frame("retry")["elapsed_ms"].tolist() == [700, 1400, 2100]  # the run: the retry
    row = driver.store.trials_frame("retry").iloc[0]
    assert (row["attempt"], row["attempts"], row["status"], row["node"]) == (1, 2, "ok", "node-b")
    t = driver.optuna_trial()
    assert (t.state, t.user_attrs[NUMBER], t.user_attrs[ATTEMPT]) == (TrialState.COMPLETE, number, 1)
    assert finished_count(driver.search.study) == 1  # one trial of the budget, however many executions
    assert driver.tally.by_status == {"ok": 1} and driver.tally.running == set()
    assert capsys.readouterr().out.splitlines() == [
        f"trial {number}: its node died or stopped answering; Tune runs it again as attempt 1 (retry 1 of "
        "max_failures 1)"]


def test_gpu_hours_of_a_retried_trial_agree_and_leave_out_the_wait_for_a_node(driver: Driver) -> None:
    driver.report("node-a", steps([1]))
    time.sleep(0.3)  # the first execution runs
    driver.node_dies()
    assert driver.optuna_trial().user_attrs[STARTED] is None  # the wait for a node is not billed
    time.sleep(0.8)  # no node with a free GPU
    driver.report("node-b", steps([1]))
    time.sleep(0.3)  # the retry runs
    driver.finishes_ok("node-b")
    status = gpu_seconds_used(driver.search.study, 2)
    assert status == pytest.approx(driver.tally.gpu_seconds, abs=0.1)  # `sweep status` and the driver's line
    assert status == pytest.approx(2 * 0.6, abs=0.3)  # two executions of ~0.3 s on 2 GPUs; not the 0.8 s wait


def test_a_head_that_dies_during_a_retry_resumes_the_retry_not_the_crash(driver: Driver) -> None:
    driver.report("node-a", steps([1000]))
    driver.node_dies()
    driver.report("node-b", steps([700]))  # then the head dies: the study's trial stays RUNNING
    number = driver.trial.config["_cc"]["number"]
    done = reconcile(driver.search.study, driver.store, driver.spec)
    assert done["closed_for_rerun"] == 1 and done["told_from_store"] == 0
    queued = driver.search.study.get_trials(states=(TrialState.WAITING,))
    assert [(t.user_attrs[NUMBER], t.user_attrs[ATTEMPT]) for t in queued] == [(number, 2)]
    attempts = driver.store.get_trial(f"retry/{number}")["attempts"]  # type: ignore[index]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(0, "crashed"), (1, "crashed")]
    assert attempts[1]["reason"] == "head died; re-run as a new attempt"
    assert finished_count(driver.search.study) == 0


def test_retry_failed_runs_the_attempt_after_the_retry_that_tune_gave_up_on(driver: Driver) -> None:
    driver.report("node-a", steps([1000]))
    driver.node_dies()
    driver.report("node-b", steps([700]))
    driver.search.on_trial_complete("t0", error=True)  # the retry died too: Tune gives up (no retries left)
    driver.callback.on_trial_error(3, [], driver.trial)
    number = driver.trial.config["_cc"]["number"]
    attempts = driver.store.get_trial(f"retry/{number}")["attempts"]  # type: ignore[index]
    assert [(a["attempt"], a["status"], a["node"]) for a in attempts] == [(0, "crashed", "node-a"),
                                                                          (1, "crashed", "node-b")]
    assert requeue_failed(driver.search.study, driver.store, driver.spec)["requeued_failed"] == 1
    queued = driver.search.study.get_trials(states=(TrialState.WAITING,))
    assert [(t.user_attrs[NUMBER], t.user_attrs[ATTEMPT]) for t in queued] == [(number, 2)]
