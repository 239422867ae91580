"""Starting a sweep (`orchestrator/start.py`) without Ray: what `prepare` refuses before it writes, which sweeps
count as never started and start over, and how a failure between the start and the first trial is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from clowncar.errors import ClownCarError, ConfigError
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.start import (
    RESTARTABLE,
    StartFailed,
    failed_start_marked,
    never_started,
    one_line,
    prepare,
)
from clowncar.orchestrator.tune import open_study
from clowncar.store import open_store

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPEC = {"name": "sw", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 2},
        "space": {"model.crawler_loops": {"choice": [1, 2]}}}


@pytest.fixture
def opened(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    storage = open_study(url)
    yield store, storage
    storage.remove_session()
    store.close()


def _studies(storage: Any) -> set[str]:
    return {s.study_name for s in optuna.get_all_study_summaries(storage)}


def _queue(storage: Any, name: str, *states: str) -> optuna.Study:
    """A study with one queued point, and one trial in each of `states` ("complete", "running")."""
    study = optuna.create_study(study_name=name, storage=storage)
    study.enqueue_trial({"model.crawler_loops": 1})
    for state in states:
        trial = study.ask()
        if state == "complete":
            study.tell(trial, 1.0)
    return study


# --- one line -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("err", "line"), [
    (RuntimeError("Ray did not start\nmore detail"), "RuntimeError: Ray did not start"),
    (ValueError("  \n  padded first line  "), "ValueError: padded first line"),
    (KeyError(), "KeyError"),
    (OSError("   "), "OSError"),
    (RuntimeError("cannot reach postgresql://u:hunter2@db/x"), "RuntimeError: cannot reach postgresql://u:***@db/x"),
    # Ray Tune's TuneError carries the trial's traceback: the reason is the exception that ended it
    (RuntimeError("Traceback (most recent call last):\n  File \"x.py\", line 1\nOverflowError: int too large\n"),
     "RuntimeError: OverflowError: int too large"),
])
def test_a_failure_is_stored_as_its_type_and_first_line_with_secrets_masked(err: BaseException, line: str) -> None:
    assert one_line(err) == line


def test_a_failure_line_is_cut_at_a_thousand_characters() -> None:
    line = one_line(RuntimeError("x" * 5000))
    assert line == "RuntimeError: " + "x" * (1000 - len("RuntimeError: "))


# --- never started ------------------------------------------------------------------------------------------

def test_a_sweep_is_never_started_until_it_has_a_trial_or_a_later_status(opened: Any) -> None:
    store, storage = opened
    assert RESTARTABLE == ("created", "running", "failed")
    assert not never_started("sw", store, storage, set())  # no such sweep
    store.create_or_get_sweep("sw", SPEC)
    for status in RESTARTABLE:
        store.set_sweep_status("sw", status)
        assert never_started("sw", store, storage, set())
    for status in ("done", "stopped"):
        store.set_sweep_status("sw", status)
        assert not never_started("sw", store, storage, set())
    store.set_sweep_status("sw", "failed")
    store.start_trial("sw", "sw-0000", 0, 0, {"model": {"crawler_loops": 1}}, seed=1, node="n")
    assert not never_started("sw", store, storage, set())


def test_a_study_with_only_queued_points_is_never_started_and_one_with_a_trial_is(opened: Any) -> None:
    store, storage = opened
    store.create_or_get_sweep("a", SPEC)
    _queue(storage, "a")
    assert never_started("a", store, storage, _studies(storage))
    store.create_or_get_sweep("b", SPEC)
    _queue(storage, "b", "running")
    assert not never_started("b", store, storage, _studies(storage))
    store.create_or_get_sweep("c", SPEC)
    _queue(storage, "c", "complete")
    assert not never_started("c", store, storage, _studies(storage))


# --- prepare ------------------------------------------------------------------------------------------------

def test_a_new_sweep_is_created_and_nothing_is_reconciled(opened: Any) -> None:
    store, storage = opened
    spec = spec_from_dict(SPEC)
    assert prepare(spec, store, storage, resume=False) == {}
    sweep = store.get_sweep("sw")
    assert sweep["status"] == "created" and sweep["spec"] == spec.to_dict()


def test_a_sweep_whose_start_failed_starts_over_with_its_queued_points_dropped(opened: Any) -> None:
    store, storage = opened
    store.create_or_get_sweep("sw", {**SPEC, "old": True})
    store.set_sweep_status("sw", "failed", "Ray did not start")
    _queue(storage, "sw")
    spec = spec_from_dict(SPEC)
    assert prepare(spec, store, storage, resume=False) == {}
    sweep = store.get_sweep("sw")
    assert (sweep["status"], sweep["reason"]) == ("created", None) and "old" not in sweep["spec"]
    assert "sw" not in _studies(storage)  # the run makes it anew and queues its points again


def test_a_sweep_that_ran_is_not_started_again(opened: Any) -> None:
    """A resume of a sweep that is done starts nothing: the line says it is done, as `sweep rerun`'s does."""
    store, storage = opened
    store.create_or_get_sweep("sw", SPEC)
    _queue(storage, "sw", "complete")
    store.set_sweep_status("sw", "done")
    with pytest.raises(ClownCarError) as err:
        prepare(spec_from_dict(SPEC), store, storage, resume=False)
    assert str(err.value) == ("sweep 'sw' already exists (done: `clowncar sweep status sw`); pick another name "
                              "(--name)")
    assert store.get_sweep("sw")["status"] == "done" and "sw" in _studies(storage)


def test_a_study_of_that_name_without_a_store_sweep_is_taken_too(opened: Any) -> None:
    store, storage = opened
    _queue(storage, "sw", "complete")
    with pytest.raises(ClownCarError, match=r"^sweep 'sw' already exists"):
        prepare(spec_from_dict(SPEC), store, storage, resume=False)
    assert store.get_sweep("sw") is None


def test_a_sweep_with_trials_but_status_created_is_taken(opened: Any) -> None:
    store, storage = opened
    store.create_or_get_sweep("sw", SPEC)
    store.start_trial("sw", "sw-0000", 0, 0, {"model": {"crawler_loops": 1}}, seed=1, node="n")
    store.set_sweep_status("sw", "running")
    with pytest.raises(ClownCarError, match=r"^sweep 'sw' already exists"):
        prepare(spec_from_dict(SPEC), store, storage, resume=False)


def test_a_resume_needs_a_study_and_reconciles_it(opened: Any) -> None:
    store, storage = opened
    with pytest.raises(ClownCarError) as err:
        prepare(spec_from_dict(SPEC), store, storage, resume=True)
    assert str(err.value) == "sweep 'sw' has no Optuna study to resume" and store.get_sweep("sw") is None
    _queue(storage, "another", "running")  # the study of another sweep in the same storage
    store.create_or_get_sweep("sw", SPEC)
    store.set_sweep_status("sw", "failed")
    _queue(storage, "sw")  # never started, but a resume is asked for: it is reconciled, not restarted
    done = prepare(spec_from_dict(SPEC), store, storage, resume=True)
    assert done == {"told_from_store": 0, "recorded_from_disk": 0, "closed_for_rerun": 0, "dropped_unasked": 0,
                    "store_attempts_closed": 0, "closed_and_requeued": 0}
    retried = prepare(spec_from_dict(SPEC), store, storage, resume=True, retry_failed=True)
    # asked for: its counts are said, even when nothing failed
    assert retried == {**done, "requeued_failed": 0, "old_rejections_kept": 0}
    study = optuna.load_study(study_name="sw", storage=storage)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # failed inside Ray: the store never heard of it
    retried = prepare(spec_from_dict(SPEC), store, storage, resume=True, retry_failed=True)
    assert retried == {**done, "requeued_failed": 1, "old_rejections_kept": 0}
    assert store.get_sweep("sw")["status"] == "failed" and "sw" in _studies(storage)


def test_a_rerun_records_the_sweep_it_repeats(opened: Any) -> None:
    store, storage = opened
    store.create_or_get_sweep("first", SPEC)
    prepare(spec_from_dict({**SPEC, "name": "again", "parent": "first"}), store, storage, resume=False)
    assert store.get_sweep("again")["parent"] == "first"


# --- a failed start -----------------------------------------------------------------------------------------

def _fail_inside(store: Any, err: BaseException) -> BaseException:
    with pytest.raises(BaseException) as caught, failed_start_marked(store, "sw"):
        raise err
    return caught.value


def test_a_failure_before_the_first_trial_marks_the_sweep_failed_and_says_how_to_go_on(opened: Any) -> None:
    store, _ = opened
    store.create_or_get_sweep("sw", SPEC)
    raised = _fail_inside(store, RuntimeError("Ray did not start: token=abc123\nstack"))
    reason = "RuntimeError: Ray did not start: token=***"
    assert isinstance(raised, StartFailed) and raised.exit_code == 1
    assert str(raised) == (f"sweep sw did not start: {reason}; it is marked failed, and the same command starts "
                           "it again")
    assert isinstance(raised.__cause__, RuntimeError)
    assert (store.get_sweep("sw")["status"], store.get_sweep("sw")["reason"]) == ("failed", reason)


def test_bad_input_keeps_its_own_message_and_code_and_still_marks_the_sweep(opened: Any) -> None:
    store, _ = opened
    store.create_or_get_sweep("sw", SPEC)
    bad = ConfigError("unknown key 'model.nope' (password=s3cret in the URL)")
    raised = _fail_inside(store, bad)
    assert raised is bad
    assert store.get_sweep("sw")["reason"] == "unknown key 'model.nope' (password=*** in the URL)"


def test_a_start_failure_from_inside_is_said_once_more_with_the_sweep(opened: Any) -> None:
    store, _ = opened
    store.create_or_get_sweep("sw", SPEC)
    raised = _fail_inside(store, StartFailed("the GPU ledger is unreachable"))
    assert isinstance(raised, StartFailed)
    assert str(raised).startswith("sweep sw did not start: the GPU ledger is unreachable; it is marked failed")


def test_an_interrupt_while_starting_is_recorded_and_goes_on(opened: Any) -> None:
    store, _ = opened
    store.create_or_get_sweep("sw", SPEC)
    raised = _fail_inside(store, KeyboardInterrupt())
    assert isinstance(raised, KeyboardInterrupt)
    assert store.get_sweep("sw")["reason"] == "interrupted while starting"


def test_a_failure_before_the_sweep_exists_is_still_one_start_failure(opened: Any) -> None:
    store, _ = opened
    raised = _fail_inside(store, RuntimeError("no Ray"))  # no sweep row to mark: that is not a second error
    assert isinstance(raised, StartFailed) and "RuntimeError: no Ray" in str(raised)
    assert store.get_sweep("sw") is None


def test_a_block_that_succeeds_leaves_the_sweep_as_it_was(opened: Any) -> None:
    store, _ = opened
    store.create_or_get_sweep("sw", SPEC)
    with failed_start_marked(store, "sw"):
        pass
    assert store.get_sweep("sw")["status"] == "created"


def test_a_resume_looks_in_the_runs_dir_for_what_finished_unrecorded(opened: Any, tmp_path: Path) -> None:
    import json

    from clowncar.orchestrator.record import trial_uid

    store, storage = opened
    store.create_or_get_sweep("sw", SPEC)
    _queue(storage, "sw", "running")  # trial 0 ran when the head died
    store.start_trial("sw", trial_uid("sw", 0), 0, 0, {"model": {"crawler_loops": 1}}, None, "n0")
    folder = tmp_path / "runs" / "trials" / "sw" / "00000-0"
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text(json.dumps({"event": "step", "step": 1, "kind": "N", "train_loss": 3.0}))
    (folder / "result.json").write_text(json.dumps({"status": "ok", "q_sliding_val_bpb": 1.3, "artifact_bytes": 9}))
    done = prepare(spec_from_dict(SPEC), store, storage, resume=True, runs_dir=tmp_path / "runs")
    assert (done["recorded_from_disk"], done["closed_for_rerun"]) == (1, 0)
    assert store.get_trial(trial_uid("sw", 0))["attempts"][0]["status"] == "ok"


def test_a_rerun_child_that_exists_is_told_to_take_another_name_with_its_option(opened: Any) -> None:
    store, storage = opened
    child = {**SPEC, "parent": "p"}
    store.create_or_get_sweep("p", SPEC)
    store.create_or_get_sweep("sw", child, parent="p")
    _queue(storage, "sw", "complete")
    store.set_sweep_status("sw", "stopped")
    with pytest.raises(ClownCarError) as err:
        prepare(spec_from_dict(child), store, storage, resume=False)
    assert str(err.value) == ("sweep 'sw' already exists; continue it with `clowncar sweep resume sw` or give this "
                              "rerun another name with --name")


def test_an_imported_sweeps_name_is_refused_without_advising_a_resume(opened: Any) -> None:
    """`sweep resume` refuses an imported sweep (no spec to resume): the only way on is another name."""
    store, storage = opened
    store.create_or_get_sweep("sw", {}, source="import")
    store.set_sweep_status("sw", "imported")
    with pytest.raises(ClownCarError) as err:
        prepare(spec_from_dict(SPEC), store, storage, resume=False)
    assert (str(err.value), err.value.exit_code) == (
        "sweep 'sw' already exists (imported: `clowncar sweep status sw`); pick another name (--name)", 2)
