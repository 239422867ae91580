"""`reconcile` after a dead head, on a real Optuna study and a real store (SQLite), without Ray: finished trials
are never run again, outcomes that reached the store are told to the study, everything else is closed and queued
once more as its next attempt, and the store's running attempts become `crashed`. A head that died inside an ask:
test_resume_cut_short_asks.py. `World` (the study and store a dead head leaves): tests/orchestrator/conftest.py."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from clowncar.orchestrator.record import trial_uid
from clowncar.orchestrator.resume import reconcile
from clowncar.orchestrator.search import ATTEMPT, CLOSED, CONSTRAINT, NUMBER
from clowncar.orchestrator.suggest import DUPLICATE

KEY = "model.crawler_loops"


def test_reconcile_tells_what_finished_and_requeues_what_was_running(world: Any) -> None:
    cap = world.spec.size_cap()
    world.running(0, 1)
    world.stored(0, 0, "ok", {"q_sliding_val_bpb": 1.25, "artifact_bytes": cap + 7})
    world.running(1, 2)
    world.stored(1, 0, "diverged", {"q_sliding_val_bpb": 9.0})
    world.running(2, 3)
    world.stored(2, 0, "pruned")
    world.running(3, 4)
    world.stored(3, 0, "running")  # the head died while it trained
    world.running(4, 1)
    world.stored(4, 0, "stopped")  # stopped by the user: runs again
    world.running(5, 2, attempt=1)
    world.stored(5, 0, "ok", {"q_sliding_val_bpb": 1.0, "artifact_bytes": 5})  # an earlier attempt only
    world.running(6, 3)  # never reached the store
    done = world.study.ask()  # finished before the head died: left alone
    done.set_user_attr(NUMBER, 7)
    world.study.tell(done, 2.0)

    assert reconcile(world.study, world.store, world.spec) == {
        "told_from_store": 3, "recorded_from_disk": 0, "closed_for_rerun": 4, "dropped_unasked": 0,
        "store_attempts_closed": 1, "closed_and_requeued": 1}  # trial 3: one trial, counted in both

    ok = world.trial(0, 0)
    assert ok.state == TrialState.COMPLETE and ok.values == [1.25] and ok.user_attrs["status"] == "ok"
    assert ok.constraints == {CONSTRAINT: 7.0}  # 7 bytes over the cap: infeasible
    assert world.trial(1, 0).state == TrialState.FAIL and world.trial(1, 0).user_attrs["status"] == "diverged"
    assert world.trial(2, 0).state == TrialState.PRUNED and world.trial(2, 0).user_attrs["status"] == "pruned"
    for number, attempt, loops in [(3, 0, 4), (4, 0, 1), (5, 1, 2), (6, 0, 3)]:
        closed = world.trial(number, attempt)
        assert closed.state == TrialState.FAIL and closed.user_attrs[CLOSED] == "head died while it ran"
        again = world.trial(number, attempt + 1)  # queued once, with the same parameters
        assert again.state == TrialState.WAITING and again.system_attrs["fixed_params"] == {KEY: loops}
    assert world.attempt_status(3, 0) == "crashed"
    assert world.attempt(3, 0)["reason"] == "head died; re-run as a new attempt"
    assert world.attempt_status(0, 0) == "ok" and world.attempt_status(4, 0) == "stopped"
    assert [(t.state, t.values) for t in world.study.get_trials() if t.user_attrs.get(NUMBER) == 7] == [
        (TrialState.COMPLETE, [2.0])]  # finished before the head died: untouched, never queued again

    # A second reconcile finds nothing RUNNING: nothing is told or queued twice.
    assert reconcile(world.study, world.store, world.spec) == {
        "told_from_store": 0, "recorded_from_disk": 0, "closed_for_rerun": 0, "dropped_unasked": 0,
        "store_attempts_closed": 0, "closed_and_requeued": 0}
    assert len(world.study.get_trials(states=(TrialState.WAITING,))) == 4


def test_a_requeued_trial_that_was_running_again_keeps_its_parameters(world: Any) -> None:
    """A re-run takes its parameters from the queue (fixed_params), not from suggestions: closing it again must
    queue the same point as the next attempt."""
    world.study.enqueue_trial({KEY: 3}, user_attrs={NUMBER: 9, ATTEMPT: 2})
    t = world.study.ask()  # the queued copy starts
    assert t.user_attrs[ATTEMPT] == 2 and not world.study._storage.get_trial(t._trial_id).params
    assert reconcile(world.study, world.store, world.spec)["closed_for_rerun"] == 1
    again = world.trial(9, 3)
    assert again.state == TrialState.WAITING and again.system_attrs["fixed_params"] == {KEY: 3}


def test_an_ok_outcome_without_the_objective_is_a_failure(world: Any) -> None:
    world.running(0, 1)
    world.stored(0, 0, "ok", {"val_bpb": 1.3})  # no quantized metric: nothing to rank it by
    reconcile(world.study, world.store, world.spec)
    t = world.trial(0, 0)
    assert t.state == TrialState.FAIL and t.user_attrs["status"] == "ok"


def test_a_stored_ok_outcome_is_told_against_the_trials_own_cap_when_that_is_stricter(world: Any) -> None:
    """Walk 5, F7: the outcome told from the store on resume meets the same one cap as a live trial's: the
    trial's own quant.size_cap_bytes (from its recorded config) when stricter than the sweep's cap."""
    world.running(0, 1)
    own = {"provenance": {"config": {"quant": {"size_cap_bytes": 20_000}}}}
    world.stored(0, 0, "ok", {"q_sliding_val_bpb": 1.25, "artifact_bytes": 467_220, "over_cap": True, **own})
    reconcile(world.study, world.store, world.spec)
    assert world.spec.size_cap() == 16_000_000
    assert world.trial(0, 0).constraints == {CONSTRAINT: 467_220.0 - 20_000}


def test_two_objectives_get_the_artifact_bytes_too(make_world: Any, tmp_path: Path) -> None:
    w = make_world(tmp_path, sampler="nsga2")
    w.running(0, 1)
    w.stored(0, 0, "ok", {"q_sliding_val_bpb": 1.5, "artifact_bytes": 1234})
    w.running(1, 2)
    w.stored(1, 0, "ok", {"q_val_bpb": 1.75})  # falls back to q_val_bpb; no artifact size recorded
    reconcile(w.study, w.store, w.spec)
    assert w.trial(0, 0).values == [1.5, 1234.0]
    assert w.trial(0, 0).constraints == {CONSTRAINT: 1234.0 - w.spec.size_cap()}
    one = w.trial(1, 0)
    assert one.values[0] == 1.75 and math.isinf(one.values[1]) and one.constraints == {CONSTRAINT: 0.0}


def test_a_trial_without_clowncar_attributes_counts_as_its_own_number_and_attempt_zero(world: Any) -> None:
    bare = world.study.ask()  # neither number nor attempt recorded (a trial started outside clowncar's search)
    world.study._storage.set_trial_param(bare._trial_id, KEY, 1.0,
                                         optuna.distributions.CategoricalDistribution([1, 2, 3, 4]))
    world.stored(bare.number, 0, "ok", {"q_sliding_val_bpb": 1.5, "artifact_bytes": 1})
    numbered = world.study.ask()
    numbered.set_user_attr(NUMBER, 5)  # attempt missing: attempt 0
    world.stored(5, 0, "diverged", {})
    assert reconcile(world.study, world.store, world.spec)["told_from_store"] == 2
    assert world.study.trials[bare.number].values == [1.5]
    assert world.study.trials[numbered.number].state == TrialState.FAIL


def _finished_on_disk(runs: Path, number: int, attempt: int, result: dict[str, Any] | None) -> None:
    """A worker's files as it leaves them: its events and, when it finished, its result.json."""
    import json

    folder = runs / "trials" / "rs" / f"{number:05d}-{attempt}"
    folder.mkdir(parents=True)
    events = [{"event": "step", "step": s, "kind": "N", "train_loss": 3.0 - s / 10} for s in (1, 2, 3)]
    events.append({"event": "eval", "step": 3, "val_bpb": 1.5})
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if result is not None:
        (folder / "result.json").write_text(json.dumps(result))


def test_a_trial_that_finished_unrecorded_is_recorded_from_its_files_and_never_run_again(
        world: Any, make_world: Any, tmp_path: Path) -> None:
    """The head died after the worker wrote result.json and before the outcome reached the store: resume
    takes the outcome and the events from the trial directory, and queues nothing."""
    runs = tmp_path / "runs"
    world.running(0, 1)
    world.stored(0, 0, "running")
    world.store.add_steps(trial_uid("rs", 0), 0, [{"step": 1, "kind": "N", "train_loss": 2.9}])  # streamed
    _finished_on_disk(runs, 0, 0, {"status": "ok", "q_sliding_val_bpb": 1.25, "artifact_bytes": 100})
    world.running(1, 2)
    world.stored(1, 0, "running")
    _finished_on_disk(runs, 1, 0, None)  # killed mid-run: no result.json
    world.running(2, 3)  # finished on disk, but the store never saw it start: nothing to attach it to
    _finished_on_disk(runs, 2, 0, {"status": "ok", "q_sliding_val_bpb": 1.0, "artifact_bytes": 100})
    world.running(3, 4)
    world.stored(3, 0, "running")
    _finished_on_disk(runs, 3, 0, {"status": "diverged", "reason": "loss is nan at step 2"})
    world.running(4, 1)
    world.stored(4, 0, "running")
    _finished_on_disk(runs, 4, 0, {"status": "ok", "q_sliding_val_bpb": 0.5, "artifact_bytes": 1})
    stale = runs / "trials" / "rs" / "00004-0" / "result.json"
    before = world.attempt(4, 0)["started_at"].timestamp() - 1.5  # an older sweep's file: not this attempt's
    os.utime(stale, (before, before))
    world.running(5, 2)
    world.stored(5, 0, "stopped")  # stopped just after its worker finished: that finished work counts
    _finished_on_disk(runs, 5, 0, {"status": "ok", "q_sliding_val_bpb": 1.4, "artifact_bytes": 100})
    coarse = world.attempt(5, 0)["started_at"].timestamp() - 0.5  # a file system that keeps whole seconds
    os.utime(runs / "trials" / "rs" / "00005-0" / "result.json", (coarse, coarse))

    assert reconcile(world.study, world.store, world.spec, runs) == {
        "told_from_store": 0, "recorded_from_disk": 3, "closed_for_rerun": 3, "dropped_unasked": 0,
        "store_attempts_closed": 2, "closed_and_requeued": 2}  # trials 1 and 4: cut off, and running in the store
    ok = world.trial(0, 0)
    assert ok.state == TrialState.COMPLETE and ok.values == [1.25] and ok.user_attrs["status"] == "ok"
    assert ok.constraints == {CONSTRAINT: 100.0 - world.spec.size_cap()}
    assert (world.attempt_status(0, 0), world.attempt(0, 0)["reason"]) == ("ok", None)
    assert world.attempt(0, 0)["result"]["q_sliding_val_bpb"] == 1.25
    assert world.attempt_status(5, 0) == "ok" and world.trial(5, 0).values == [1.4]
    steps = world.store.steps_frame("rs")
    assert sorted(steps.loc[steps["trial_uid"] == trial_uid("rs", 0), "step"]) == [1, 2, 3]  # each once
    evals = world.store.evals_frame("rs")
    assert evals.loc[evals["trial_uid"] == trial_uid("rs", 0), "val_bpb"].tolist() == [1.5]
    assert (world.attempt_status(3, 0), world.attempt(3, 0)["reason"]) == ("diverged", "loss is nan at step 2")
    assert world.trial(3, 0).state == TrialState.FAIL
    assert world.attempt_status(1, 0) == "crashed"
    waiting = world.study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs[NUMBER] for t in waiting) == [1, 2, 4]
    # without the runs dir (a cluster whose trial folders are on other nodes) the same trials run again
    (tmp_path / "other").mkdir()
    other = make_world(tmp_path / "other")
    other.running(0, 1)
    other.stored(0, 0, "running")
    assert reconcile(other.study, other.store, other.spec)["closed_for_rerun"] == 1


def test_retry_failed_queues_the_next_attempt_of_what_crashed_or_errored_and_frees_its_budget(world: Any) -> None:
    from clowncar.orchestrator.resume import requeue_failed
    from clowncar.orchestrator.search import finished_count

    def failed(number: int, loops: int, status: str | None, result: dict[str, Any] | None = None) -> None:
        world.study.tell(world.running(number, loops), state=TrialState.FAIL)
        if status is not None:
            world.stored(number, 0, status, result)

    failed(6, 3, "crashed")  # first in the study: skipping it must not end the search
    failed(0, 1, "crashed")  # a killed worker
    failed(1, 2, "error", {"status": "error", "steps": 40})  # data broken at the time: the worker's result
    failed(2, 3, "diverged")  # would diverge again
    failed(3, 4, None)  # failed inside Ray before the store heard of it (a full disk)
    failed(4, 1, "oom")  # the worker's own out-of-memory exit: the config needs more than there is
    failed(8, 2, "rejected")  # its config refused before its first step: refused again
    world.study.tell(world.running(9, 3), state=TrialState.FAIL)  # the node ran low: may well fit next time
    world.stored(9, 0, "oom", None, "killed by Ray's memory monitor: node 127.0.0.1 low on memory (3.1 of 23.5 GB "
                                    "used, over its kill threshold of 11.1%)")
    done = world.running(5, 2)
    world.stored(5, 0, "ok", {"q_sliding_val_bpb": 1.2, "artifact_bytes": 10})
    world.study.tell(done, 1.2)
    twice = world.running(7, 4)
    twice.set_user_attr(DUPLICATE, 0)  # a repeated suggestion, told FAIL and never run: nothing to retry
    world.study.tell(twice, state=TrialState.FAIL)
    world.study.enqueue_trial({KEY: 3}, user_attrs={NUMBER: 6, ATTEMPT: 1})  # 6 is queued again already
    assert finished_count(world.study) == 8

    assert requeue_failed(world.study, world.store, world.spec) == {"requeued_failed": 4, "old_rejections_kept": 0}
    waiting = {(t.user_attrs[NUMBER], t.user_attrs[ATTEMPT]): t.system_attrs["fixed_params"]
               for t in world.study.get_trials(states=(TrialState.WAITING,))}
    assert waiting == {(0, 1): {KEY: 1}, (1, 1): {KEY: 2}, (3, 1): {KEY: 4}, (6, 1): {KEY: 3}, (9, 1): {KEY: 3}}
    assert finished_count(world.study) == 4  # diverged, oom, rejected and ok count; the queued ones' do not
    assert requeue_failed(world.study, world.store, world.spec)["requeued_failed"] == 0  # their latest wait to run


def test_retry_failed_leaves_the_rejections_an_older_clowncar_stored_as_errors(world: Any) -> None:
    """Before the `rejected` status a refusal before the first step was stored as `error` (in two forms) or
    `crashed` (the worker's bad-input exit without a result), the forms `rejected_as_error` names; every other
    error or crash runs again."""
    from clowncar.orchestrator.resume import requeue_failed
    from clowncar.orchestrator.status_lines import resume_line

    def errored(number: int, reason: str, result: dict[str, Any] | None) -> None:
        world.study.tell(world.running(number, 1 + number % 4), state=TrialState.FAIL)
        world.stored(number, 0, "error", result, reason)

    # the trainable: the spec could not build the point's config, so no worker ran and no result came back
    errored(0, "model.model_dim 96 must be a multiple of 2 x model.num_heads (64)", None)
    # the worker: bad input before its training loop began (no step count), worded `Type: message`
    errored(1, "ConfigError: model.vocab_size 64 is below the tokenizer's 320", {"status": "error", "steps": None})
    errored(2, "DataError: no training shards match data/x/fineweb_train_*.bin", {"status": "error"})
    # errors worth another try: bad input met after the first step, any other exception before it
    errored(3, "DataError: shard fineweb_train_000003.bin is truncated", {"status": "error", "steps": 500})
    errored(4, "RuntimeError: CUDA error: an illegal memory access was encountered",
            {"status": "error", "steps": None})
    errored(5, "result.json has no value for objective 'auto'", {"status": "ok", "steps": 200})

    def crashed(number: int, reason: str) -> None:
        world.study.tell(world.running(number, 1 + number % 4), state=TrialState.FAIL)
        world.stored(number, 0, "crashed", None, reason)

    # the trainable: a worker that exited with the bad-input code before writing result.json (now `rejected`)
    crashed(6, "worker exit code 2 without result.json: clowncar: error: model.num_heads 3 does not divide 64")
    # crashes worth another try: another exit code, a signal
    crashed(7, "worker exit code 1 without result.json: Traceback (most recent call last):")
    crashed(8, "worker killed by signal 9 without result.json")

    done = requeue_failed(world.study, world.store, world.spec)
    assert done == {"requeued_failed": 5, "old_rejections_kept": 4}
    waiting = world.study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs[NUMBER] for t in waiting) == [3, 4, 5, 7, 8]
    assert resume_line(done) == ("resume: requeued failed 5; 4 trials refused before their first step (stored as "
                                 "error or crashed by an older clowncar) not retried")


def test_only_the_latest_attempt_of_a_trial_counts_whatever_the_order_the_study_holds_them_in(world: Any) -> None:
    from clowncar.orchestrator.search import finished_count, latest_attempts

    later = world.study.ask()  # attempt 1 of trial 5 comes first in the study
    later.set_user_attr(NUMBER, 5)
    later.set_user_attr(ATTEMPT, 1)
    world.study.tell(later, 1.0)
    first = world.study.ask()  # attempt 0 of trial 5: no attempt attribute means attempt 0
    first.set_user_attr(NUMBER, 5)
    world.study.tell(first, state=TrialState.FAIL)
    assert latest_attempts(world.study) == {5: 1}
    assert finished_count(world.study) == 1


def test_a_sweep_stopped_between_a_trials_store_record_and_its_tell_keeps_that_trial_finished(world: Any) -> None:
    """SIGTERM or Ctrl-C as the last trial ends can stop the driver after the store callback recorded the trial's
    final result and before the searcher told the study. `close_stopped` (the stop's clean-up) tells the study what
    the store holds instead of queueing the trial again, so `sweep resume` does not run it a second time (it did:
    attempts ok, ok; 1 SIGTERM in 1 sent as the result was stored). A trial still running when the stop came is
    closed and queued, as before."""
    from clowncar.orchestrator.submit import close_stopped

    # close_stopped opens the study in the store's database, as the CLI does
    world.study = optuna.create_study(study_name="rs", storage=world.url,
                                      directions=["minimize"] * len(world.spec.metrics()))
    world.running(0, 1)
    world.stored(0, 0, "ok", {"q_sliding_val_bpb": 1.25, "artifact_bytes": 5})
    world.running(1, 2)
    world.stored(1, 0, "running")

    assert close_stopped("rs", world.url) == 1
    finished = world.trial(0, 0)
    assert finished.state == TrialState.COMPLETE and finished.values == [1.25]
    assert [t.number for t in world.study.get_trials() if t.user_attrs.get(NUMBER) == 0] == [finished.number]
    assert world.trial(1, 0).state == TrialState.FAIL and world.trial(1, 1).state == TrialState.WAITING
    assert world.attempt_status(0, 0) == "ok" and world.attempt_status(1, 0) == "stopped"
    assert world.store.get_sweep("rs")["status"] == "stopped"
    assert reconcile(world.study, world.store, world.spec)["told_from_store"] == 0  # resume: nothing left of it


def test_a_sweep_stopped_after_a_worker_wrote_its_result_records_that_trial_and_never_runs_it_again(
        world: Any, tmp_path: Path) -> None:
    """A stop can land after a worker wrote result.json and before its final report reached the driver: the
    trial finished. `close_stopped` with the driver's runs dir records it from its files (as resume does after a
    dead head) instead of queueing it, so `sweep resume` does not train it a second time."""
    from clowncar.orchestrator.submit import close_stopped

    world.study = optuna.create_study(study_name="rs", storage=world.url,
                                      directions=["minimize"] * len(world.spec.metrics()))
    runs = tmp_path / "runs"
    world.running(0, 1)
    world.stored(0, 0, "running")
    _finished_on_disk(runs, 0, 0, {"status": "ok", "q_sliding_val_bpb": 1.25, "artifact_bytes": 100})
    world.running(1, 2)
    world.stored(1, 0, "running")
    _finished_on_disk(runs, 1, 0, None)  # stopped mid-run: no result.json

    assert close_stopped("rs", world.url, runs) == 1
    assert world.trial(0, 0).state == TrialState.COMPLETE and world.trial(0, 0).values == [1.25]
    assert world.attempt_status(0, 0) == "ok" and len(world.store.steps_frame(sweeps="rs")) == 3
    assert not [t for t in world.study.get_trials() if t.user_attrs.get(NUMBER) == 0 and t.user_attrs.get(ATTEMPT)]
    assert world.trial(1, 0).state == TrialState.FAIL and world.trial(1, 1).state == TrialState.WAITING
    assert world.attempt_status(1, 0) == "stopped"


def test_only_an_error_or_a_crash_can_be_an_old_rejection() -> None:
    from clowncar.orchestrator.resume import rejected_as_error

    for status in ("ok", "diverged", "oom", "pruned", "stopped", "rejected"):
        assert not rejected_as_error(status, None, None)
        assert not rejected_as_error(status, "ConfigError: model.vocab_size 64 is too small", {"status": status})
    assert rejected_as_error("error", None, None)
