"""A trial actor that Ray's memory monitor killed (a host low on memory, likely on a shared node) is a trial outcome,
`oom` with one short reason, retried per `max_failures` as any lost actor is; the sweep goes on (walk 5, F13: the
whole sweep ended `failed` with a 3 KB "internal error" line, its killed trials left `running`).

Without Ray: Tune's own actor manager is handed Ray's own `OutOfMemoryError`, and the store callback and the searcher,
wired as run_sweep wires them, are driven in the order Tune calls them, with Ray Tune's Trial objects and the
error.txt Tune wrote for a real kill (`assets/ray_oom_kill_error.txt`: Ray 2.60 on loopback, the kill threshold set
just above the node's use, a 3 GB allocation once two trials ran). The same kill end to end (`sweep run`, trials
killed mid-train) was run by hand: the sweep ended 0 with both trials `oom`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from clowncar.cli import INTERNAL_ERROR_CHARS, internal_error_line
from clowncar.orchestrator.ray_oom import memory_kill, oom_kills_as_actor_deaths
from clowncar.orchestrator.record import StoreCallback, Tally
from clowncar.orchestrator.search import SweepSearch
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.study_results import finished_outcomes
from clowncar.store import open_store

optuna.logging.set_verbosity(optuna.logging.WARNING)
KILL = (Path(__file__).parent / "assets" / "ray_oom_kill_error.txt").read_text()
"""Tune's error.txt of a trial whose actor Ray 2.60's memory monitor killed (one failure, 4 KB)."""
REASON = ("killed by Ray's memory monitor: node 127.0.0.1 low on memory (3.00 of 23.54 GB used, over its kill "
          "threshold of 11.1%)")


def test_rays_words_for_a_memory_kill_become_one_short_reason() -> None:
    assert len(KILL) > 4000 and memory_kill(KILL) == REASON
    older = ("Failure # 1 (occurred at 2023-01-01_00-00-00)\nTask was killed due to the node running low on memory.\n"
             "Memory on the node (IP: 10.0.0.2, ID: 8c5a) where the task (task ID: 41, name=f, pid=548, memory "
             "used=12.18GB) was running was 21.91GB / 33.28GB (0.658192), which exceeds the memory usage threshold "
             "of 0.65. Ray killed this worker\n")  # the words of Rays before 2.56
    assert memory_kill(older) == ("killed by Ray's memory monitor: node 10.0.0.2 low on memory (21.91 of 33.28 GB "
                                  "used, over its kill threshold of 65%)")
    assert memory_kill("Failure # 1 (occurred at x)\n2 worker(s) were killed due to the node running low on "
                       "memory.\n") == "killed by Ray's memory monitor: node low on memory"
    assert memory_kill(KILL + "Failure # 2 (occurred at x)\nThe actor died unexpectedly before finishing this "
                              "task.\n") is None  # the last failure is what counts
    assert memory_kill("") is None


def _manager_with_one_live_actor(calls: list[tuple[str, Exception]]) -> tuple[Any, Any]:
    """Tune's actor manager holding one started trial actor, and a `train` task of it whose callbacks log."""
    from ray.air.execution import FixedResourceManager, ResourceRequest
    from ray.air.execution._internal.actor_manager import RayActorManager
    from ray.air.execution._internal.tracked_actor import TrackedActor
    from ray.air.execution._internal.tracked_actor_task import TrackedActorTask

    class OneCpu(FixedResourceManager):
        def __init__(self) -> None:  # Ray's own reads the runtime context, which starts a Ray (8 s): not needed
            self._total_resources, self._allow_strict_pack = {"CPU": 1.0}, False
            self._requested_resources, self._used_resources = [], []

    resources = OneCpu()
    request = ResourceRequest([{"CPU": 1}])
    resources.request_resources(request)
    manager = RayActorManager(resource_manager=resources)
    actor = TrackedActor(actor_id=0, on_error=lambda a, err: calls.append(("actor", err)))
    manager._live_actors_to_ray_actors_resources[actor] = (None, resources.acquire_resources(request))
    task = TrackedActorTask(tracked_actor=actor, on_error=lambda a, err: calls.append(("task", err)))
    return manager, task


def test_a_trial_actor_killed_mid_task_is_a_dead_actor_to_tune_not_an_unexpected_exception() -> None:
    from ray.air.execution._internal.actor_manager import RayActorManager
    from ray.exceptions import OutOfMemoryError, RayActorError

    rays_own = RayActorManager._actor_task_failed
    message = KILL.split("\n", 1)[1]
    calls: list[tuple[str, Exception]] = []
    manager, task = _manager_with_one_live_actor(calls)
    with pytest.raises(RuntimeError, match="Caught unexpected exception: 2 worker"):  # Ray's own handling
        manager._actor_task_failed(task, OutOfMemoryError(message))
    calls.clear()
    manager, task = _manager_with_one_live_actor(calls)
    with oom_kills_as_actor_deaths():
        manager._actor_task_failed(task, OutOfMemoryError(message))
    assert [who for who, _ in calls] == ["actor", "task"]  # as for an ActorDiedError: Tune retries or gives up
    assert all(isinstance(err, RayActorError) and str(err) == message for _, err in calls)
    assert isinstance(calls[0][1].__cause__, OutOfMemoryError)
    assert not manager.live_actors and not manager._resource_manager._used_resources  # its CPU is free again
    assert RayActorManager._actor_task_failed is rays_own  # put back on the way out


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[Any, ...]]:
    """The sweep's searcher and store callback, wired as run_sweep wires them, and the Tune Trial they share."""
    from ray.tune.experiment import Trial

    spec = spec_from_dict({"name": "mem", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 2},
                           "space": {"model.crawler_loops": {"choice": [1, 2, 3]}}, "max_failures": 1})
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    store.create_or_get_sweep("mem", spec.to_dict())
    tally = Tally(total=2)
    callback = StoreCallback(spec, store, tally, show=False, runs_dir=tmp_path / "runs")
    search = SweepSearch(spec, optuna.storages.InMemoryStorage(), 2, on_tell=callback.on_tell)
    callback.on_retry = search.retried
    search.error_outcome = callback.error_outcome
    error_file = tmp_path / "error.txt"

    class KilledTrial(Trial):
        @property
        def error_file(self) -> str:
            return str(error_file)

    trial = KilledTrial("clowncar_trial", config=search.suggest("t0"), trial_id="t0", stub=True)
    yield search, callback, trial, error_file, store, tally
    store.close()


def _report(search: Any, callback: Any, trial: Any) -> None:
    result = {"host": "node-a", "attempt": trial.config["_cc"]["attempt"],
              "new_rows": json.dumps({"steps": [{"step": 1, "kind": "C", "train_loss": 5.0, "elapsed_ms": 10}]})}
    search.on_trial_result("t0", result)
    callback.on_trial_result(1, [], trial, result)


def test_a_trial_rays_memory_monitor_killed_is_retried_then_stored_oom_with_one_short_reason(
        wired: tuple[Any, ...], capsys: pytest.CaptureFixture[str]) -> None:
    search, callback, trial, error_file, store, tally = wired
    number = trial.config["_cc"]["number"]
    _report(search, callback, trial)
    error_file.write_text(KILL)
    trial.run_metadata.num_failures += 1
    callback.on_trial_recover(2, [], trial)  # Tune's retry, max_failures 1
    _report(search, callback, trial)
    error_file.write_text(KILL + KILL.replace("Failure # 1", "Failure # 2"))
    search.on_trial_complete("t0", error=True)  # Tune gives up: the searcher first, then the callbacks
    callback.on_trial_error(3, [], trial)

    attempts = store.get_trial(f"mem/{number}")["attempts"]
    assert [(a["attempt"], a["status"], a["reason"]) for a in attempts] == [
        (0, "oom", f"{REASON}; Tune retried it as attempt 1"), (1, "oom", REASON)]
    (t,) = search.study.get_trials()
    assert (t.state, t.user_attrs["status"], t.user_attrs["reason"]) == (TrialState.FAIL, "oom", REASON)
    assert finished_outcomes(search.study) == {"oom": 1}  # as `sweep status` and a resume's line count it
    assert tally.by_status == {"oom": 1} and not tally.running
    trials = Path(callback.runs_dir) / "trials" / "mem"
    assert capsys.readouterr().out.splitlines() == [
        f"trial {number}: {REASON}; Tune runs it again as attempt 1 (retry 1 of max_failures 1); Ray's error: "
        f"{trials / 'ray-errors.log'}",
        f"trial {number} oom: {REASON}; Ray's full error: {trials / f'{number:05d}-1' / 'ray_error.txt'}"]


def test_any_other_failure_tune_gives_up_on_stays_crashed(wired: tuple[Any, ...]) -> None:
    search, callback, trial, error_file, store, tally = wired
    _report(search, callback, trial)
    error_file.write_text("Failure # 1 (occurred at x)\nThe actor died unexpectedly before finishing this task.\n")
    search.on_trial_complete("t0", error=True)
    callback.on_trial_error(2, [], trial)
    (t,) = search.study.get_trials()
    assert t.state == TrialState.FAIL and "status" not in t.user_attrs
    assert finished_outcomes(search.study) == {"crashed": 1} and tally.by_status == {"crashed": 1}
    (attempt,) = store.get_trial(f"mem/{trial.config['_cc']['number']}")["attempts"]
    assert (attempt["status"], attempt["reason"]) == ("crashed", "The actor died unexpectedly before finishing this "
                                                                  "task.")


def test_a_bugs_line_is_short_however_long_its_message() -> None:
    line = internal_error_line(RuntimeError(f"Caught unexpected exception: {KILL.split(chr(10), 1)[1]}"))
    assert line.startswith("internal error: RuntimeError: Caught unexpected exception: 2 worker(s) were killed")
    assert line.endswith("more characters) (set CLOWNCAR_DEBUG=1 for the traceback)") and "\n" not in line
    assert len(line) < INTERNAL_ERROR_CHARS + 100
    assert internal_error_line(ValueError("boom")) == "internal error: ValueError: boom (set CLOWNCAR_DEBUG=1 for " \
                                                      "the traceback)"
