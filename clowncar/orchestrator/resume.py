"""Continue a sweep after its head (driver) died: the Optuna study and the store are the truth, Tune's own
experiment directory is not used (its snapshots lag the study by up to 10 s, and restoring from one re-runs
trials Optuna already finished: reference/ray_tune_optuna_facts.md section 3).

Rules:
- a trial finished in the study is never run again;
- a trial left RUNNING in the study whose final outcome already reached the store (the head died between the
  store write and the tell) is told that outcome now;
- every other RUNNING trial was running when the head died: it is closed (FAIL, `clowncar_closed`) and a WAITING
  copy is enqueued as the next attempt of the same store trial, so the sampler is not misled and it re-runs;
- ... unless the head died while asking for it: Optuna stores the trial, then the grid sampler's point, then each
  parameter on its own, so it may hold only some of its parameters. A copy queued with those is refused by the
  grid sampler on resume. A grid trial gets its whole grid point back from its `grid_id`; any other (a sampled
  one, or a grid trial killed before it had a point) never ran and has no point to run again: it is told FAIL,
  marked `clowncar_unasked` (charged to nothing), and the sampler asks anew in its place;
- a RUNNING trial whose worker wrote its result.json before the head died (found in the trial directory, when
  that is on this machine: always with embedded Ray) is recorded from its files, events and result, and told:
  finished work is not run again;
- store attempts still `running` are closed as `crashed` (the re-run is a new attempt, the one that counts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from clowncar.errors import EXIT_BAD_INPUT
from clowncar.orchestrator.record import trial_uid
from clowncar.orchestrator.sampler import LongestFirstGrid
from clowncar.orchestrator.search import (
    ATTEMPT,
    CONSTRAINT,
    NUMBER,
    close_trial,
    latest_attempts,
    number_and_attempt,
    tell,
)
from clowncar.orchestrator.spec import SweepSpec
from clowncar.orchestrator.suggest import DUPLICATE, UNASKED, _matches, never_ran, trial_params
from clowncar.orchestrator.trainable import objective_value, size_verdict

FINAL = ("ok", "diverged", "oom", "error", "rejected", "crashed", "pruned", "stopped")


def _stored_attempt(store: Any, uid: str, attempt: int) -> tuple[str, str | None, dict[str, Any] | None] | None:
    """(status, reason, result) of the attempt when the store holds its final outcome."""
    trial = store.get_trial(uid)
    if not trial:
        return None
    for a in trial.get("attempts", []):
        if a.get("attempt") == attempt and a.get("status") in FINAL:
            res = a.get("result")
            return a["status"], a.get("reason"), (json.loads(res) if isinstance(res, str) else res)
    return None


def _stored_outcome(store: Any, uid: str, attempt: int) -> tuple[str, dict[str, Any] | None] | None:
    stored = _stored_attempt(store, uid, attempt)
    return None if stored is None else (stored[0], stored[2])


def _tell_stored(study: optuna.Study, spec: SweepSpec, t: optuna.trial.FrozenTrial, status: str,
                 result: dict[str, Any] | None) -> None:
    trial = optuna.trial.Trial(study, t._trial_id)
    trial.set_user_attr("status", status)
    res = result or {}
    value = objective_value(res, spec.objective.metric) if status == "ok" else None
    if value is None:
        state = TrialState.PRUNED if status == "pruned" else TrialState.FAIL
        tell(study, t.number, None, state)
        return
    art = res.get("artifact_bytes")
    size = size_verdict(res, spec.constraint.max_artifact_bytes, spec.size_cap())
    trial.set_constraint(CONSTRAINT, size.constraint if math.isfinite(size.constraint) else 0.0)
    values: list[float] = [value]
    if len(spec.metrics()) > 1:
        values.append(float(art) if isinstance(art, int | float) else math.inf)
    tell(study, t.number, values if len(values) > 1 else values[0], TrialState.COMPLETE)


def _record_from_disk(store: Any, spec: SweepSpec, runs_dir: Path | None, number: int, attempt: int
                      ) -> tuple[str, dict[str, Any] | None] | None:
    """The outcome of an attempt whose worker finished (its result.json is written last, atomically) but whose
    head died, or was stopped, before recording it: its events and outcome go into the store now, as the head
    would have put them. None when there is no such file here, or the store never saw the attempt start."""
    from clowncar.events import EVENTS_FILE, RESULT_FILE, read_result
    from clowncar.orchestrator.trainable import Relay, TrialContext, final_report, outcome, trial_dir_of

    if runs_dir is None:
        return None
    folder = trial_dir_of(runs_dir, spec.name, number, attempt)
    result = read_result(folder / RESULT_FILE)
    if result is None:
        return None
    uid = trial_uid(spec.name, number)
    attempts = (store.get_trial(uid) or {"attempts": []})["attempts"]
    started = next((a["started_at"] for a in attempts if a["attempt"] == attempt), None)
    # a folder of the same name from before this attempt (another store's sweep of that name) is not its result;
    # the second of margin is for file systems with coarse modification times
    if started is None or (folder / RESULT_FILE).stat().st_mtime < started.timestamp() - 1.0:
        return None
    status, reason = outcome(0, result, "")  # the worker's exit code went with the head: its verdict stands
    ctx = TrialContext(sweep=spec.name, spec=spec.to_dict(), runs_dir=str(runs_dir), size_cap=spec.size_cap())
    final = final_report(ctx, status, reason, result, 0.0)
    rows = Relay(folder / EVENTS_FILE).poll()
    store.add_steps(uid, attempt, rows["steps"])
    store.add_evals(uid, attempt, rows["evals"])
    store.add_probes(uid, attempt, rows["probes"])
    stored = json.loads(final["result_json"])  # with the sweep's size verdict, as the head would store it
    store.finish_trial(uid, attempt, final["status"], final["reason"] or None, stored)
    return final["status"], stored


RETRIED = ("crashed", "error")
"""Outcomes that `--retry-failed` runs again: the worker crashed or failed, or the trial failed before the store
heard of it (inside Ray: a full disk, a file where its folder belongs); and an `oom` that Ray's memory monitor
caused (`ray_oom.MEMORY_MONITOR`: the node ran low, on a shared node often because of other jobs). A diverged
trial, one that ran out of memory by itself (the worker's own out-of-memory exit), or a `rejected` one (its config
or data refused before its first step; also one an older clowncar stored as `error` or `crashed`:
`rejected_as_error`), would end the same way again."""


def worth_retrying(status: str, reason: str | None) -> bool:
    from clowncar.orchestrator.ray_oom import MEMORY_MONITOR

    return status in RETRIED or (status == "oom" and (reason or "").startswith(MEMORY_MONITOR))


BAD_INPUT_TYPES = ("ClownCarError: ", "ConfigError: ", "DataError: ")
"""How the worker words bad input that stopped a trial (`type(err).__name__: err`, worker/run.py)."""
OLD_REFUSAL_CRASH = f"worker exit code {EXIT_BAD_INPUT} without result.json: "
"""How a trainable before the `rejected` status worded a worker that refused its input before writing a result."""


def rejected_as_error(status: str, reason: str | None, result: dict[str, Any] | None) -> bool:
    """Whether an attempt stored as `error` or `crashed` is a rejection (its config or data refused before its
    first step) recorded before the `rejected` status existed. As `error`, such a store holds one in either of two
    forms, and no other `error`, then or now, takes either:
    - the spec could not build the trial's config: the trainable stored `error` with no result at all (every
      other `error` comes with the worker's result.json);
    - the worker refused it: its result has no step count (the worker sets it to 0 as its training loop starts,
      and a ClownCarError before that is exactly what it calls a rejection) and its reason is a ClownCarError's
      `Type: message` (any other exception is worded with its own type's name).
    And one stored as `crashed`: a worker that exited with the bad-input code (2) before writing result.json,
    with its stderr as the reason, is what today's trainable records as `rejected` (`trainable.outcome`).
    Today's code records all three as `rejected`."""
    if status == "crashed":
        return result is None and (reason or "").startswith(OLD_REFUSAL_CRASH)
    if status != "error":
        return False
    if result is None:
        return True
    return result.get("steps") is None and (reason or "").startswith(BAD_INPUT_TYPES)


def requeue_failed(study: optuna.Study, store: Any, spec: SweepSpec) -> dict[str, int]:
    """Queue the next attempt of every trial whose latest attempt failed in a way worth another try (RETRIED),
    with its parameters; the failed attempt then no longer counts against the budget (`finished_count`).
    Returns how many were queued, and how many `error` attempts were left as they ended because they are
    rejections an older clowncar stored as errors (`rejected_as_error`)."""
    latest, done = latest_attempts(study), {"requeued_failed": 0, "old_rejections_kept": 0}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        number, attempt = number_and_attempt(t)
        # a trial closed for a re-run has its next attempt queued already: it is not the latest
        if never_ran(t) or latest[number] != attempt:
            continue
        stored = _stored_attempt(store, trial_uid(spec.name, number), attempt)
        if stored is not None and not worth_retrying(stored[0], stored[1]):
            continue
        if stored is not None and rejected_as_error(*stored):
            done["old_rejections_kept"] += 1
            continue
        study.enqueue_trial(trial_params(t), user_attrs={NUMBER: number, ATTEMPT: attempt + 1})
        done["requeued_failed"] += 1
    return done


def told_if_finished(study: optuna.Study, store: Any, spec: SweepSpec, t: optuna.trial.FrozenTrial) -> bool:
    """Tell a RUNNING trial the final outcome the store already holds for its attempt (True): its driver died, or
    was stopped, between the store's write and the study's tell. False when the store has none, or `stopped`."""
    number, attempt = number_and_attempt(t)
    stored = _stored_outcome(store, trial_uid(spec.name, number), attempt)
    if not stored or stored[0] == "stopped":
        return False
    _tell_stored(study, spec, t, *stored)
    return True


def recorded_from_disk(study: optuna.Study, store: Any, spec: SweepSpec, runs_dir: Path | None,
                       t: optuna.trial.FrozenTrial) -> bool:
    """Record and tell a RUNNING trial whose worker finished but whose outcome never reached the store (True): its
    driver died, or was stopped, after the worker wrote result.json (`_record_from_disk`)."""
    found = _record_from_disk(store, spec, runs_dir, *number_and_attempt(t))
    if found:
        _tell_stored(study, spec, t, *found)
    return found is not None


def reconcile(study: optuna.Study, store: Any, spec: SweepSpec, runs_dir: Path | None = None) -> dict[str, int]:
    """Bring the study and the store into agreement after a dead head (`runs_dir`: where this machine's trial
    directories are, to find attempts that finished unrecorded). Returns what it did; `closed_and_requeued`
    counts the trials in both `closed_for_rerun` and `store_attempts_closed` (one attempt that the study and the
    store both held as running), so that a line can say them once."""
    done = {"told_from_store": 0, "recorded_from_disk": 0, "closed_for_rerun": 0, "dropped_unasked": 0,
            "store_attempts_closed": 0, "closed_and_requeued": 0}
    requeued: list[tuple[str, int]] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if told_if_finished(study, store, spec, t):
            done["told_from_store"] += 1
            continue
        if recorded_from_disk(study, store, spec, runs_dir, t):  # stopped just after it finished, too
            done["recorded_from_disk"] += 1
        elif close_for_rerun(study, spec, t, "head died while it ran"):
            done["closed_for_rerun"] += 1
            number, attempt = number_and_attempt(t)
            requeued.append((trial_uid(spec.name, number), attempt))
        else:
            done["dropped_unasked"] += 1
    if requeued:  # which of them the store holds as running too: closed below
        states = store.trial_states(spec.name)
        done["closed_and_requeued"] = sum(states.get(uid) == (attempt, "running") for uid, attempt in requeued)
    done["store_attempts_closed"] = store.close_running(spec.name, "crashed", "head died; re-run as a new attempt")
    return done


def whole_point(spec: SweepSpec, t: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The trial's parameters when they make a whole point of the search space (the grid point stored on a grid
    trial completes what its ask left unstored), else None: its ask was cut short and nothing knows the rest."""
    params = trial_params(t)
    if not _missing(spec, params):
        return params
    grid_id = t.system_attrs.get("grid_id")
    if spec.sampler != "grid" or not isinstance(grid_id, int):
        return None
    # The grid's order is a pure function of the spec and seed (LongestFirstGrid), so the id names the same point
    # it named for the dead head.
    grid = LongestFirstGrid(spec)
    if not 0 <= grid_id < len(grid._all_grids):
        return None
    return {**dict(zip(grid._param_names, grid._all_grids[grid_id], strict=True)), **params}


def _missing(spec: SweepSpec, params: dict[str, Any]) -> list[str]:
    """Searched parameters the point lacks; a conditional one only where its condition holds (as define_space)."""
    missing = []
    for key, p in spec.search_space().items():
        if p.when and not all(_matches(params.get(dep), want) for dep, want in p.when.items()):
            continue
        if key not in params:
            missing.append(key)
    return missing


def close_for_rerun(study: optuna.Study, spec: SweepSpec, t: optuna.trial.FrozenTrial, reason: str) -> bool:
    """Close a RUNNING trial whose head is gone: its whole point is queued as its next attempt (True); a trial
    with no whole point (its ask was cut short) or a repeat whose FAIL never landed never ran, and is told FAIL
    and marked UNASKED, so that neither the budget nor the distinct-config check counts it (False)."""
    params = None if t.user_attrs.get(DUPLICATE) is not None else whole_point(spec, t)
    if params is None:
        # A grid trial that gets here has no grid_id, so the grid still hands its point out; UNASKED before the
        # state: a crash between the two leaves it RUNNING, and the next resume drops it again.
        study._storage.set_trial_user_attr(t._trial_id, UNASKED, reason)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        return False
    number, attempt = number_and_attempt(t)
    close_trial(study, t._trial_id, number, attempt, params, reason)
    return True
