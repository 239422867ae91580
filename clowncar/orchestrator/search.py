"""Optuna through Tune: the study in the store is the sweep's durable state.

`SweepSearch` is Tune's `OptunaSearch` with four changes, each for a measured failure
(reference/ray_tune_optuna_facts.md sections 3 and 5):
- no intermediate `report` to Optuna (pruning is ASHA's job), so a re-run trial can never hit
  `UpdateFinishedTrialError`;
- the tell is decided by the worker's outcome: ok -> COMPLETE with the artifact-bytes constraint set on the trial
  (constraints_func silently records nothing through Tune), failed -> FAIL, stopped by ASHA -> PRUNED, stopped by
  the user -> FAIL marked `clowncar_closed` with a WAITING copy enqueued, so `sweep resume` runs it again;
- every trial carries its clowncar number and attempt (`_cc` in the Tune config) so a re-run lands on the same
  store trial as a new attempt;
- a budget check before each ask: the sampler is done when the trial count or the GPU-hours would be exceeded;
- one trial per config: a suggestion that repeats a config the study has run is not run again (suggest.py).

Fault injection for the resume tests: `CLOWNCAR_FAULT=kill-before-tell:N` (or `kill-after-tell:N`) SIGKILLs the
driver just before (after) the N-th trial outcome is told to Optuna.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from clowncar.orchestrator.billing import RETRIED_S, STARTED, gpu_seconds_used
from clowncar.orchestrator.plan import HORIZON
from clowncar.orchestrator.sampler import LongestFirstGrid, define_space, make_sampler
from clowncar.orchestrator.spec import SweepSpec
from clowncar.orchestrator.suggest import (
    CLOSED,
    DISTINCT_SAMPLERS,
    NUMBER,
    DistinctAsk,
    ask_distinct,
    never_ran,
)

if TYPE_CHECKING:
    from collections.abc import Callable

ATTEMPT = "clowncar_attempt"
CONSTRAINT = "artifact_bytes_over_cap"
END_REASON = "clowncar_end_reason"
"""Study user attr: why the sampler stopped asking (max_trials or the GPU-hour budget), for `sweep status`."""
EXHAUSTED = "every distinct config of the search space has run"
BACKLOG_MAX = HORIZON
"""Most trials a sweep tells the GPU ledger it has still to ask: its plan looks no further ahead."""


def number_and_attempt(t: optuna.trial.FrozenTrial) -> tuple[int, int]:
    """The store trial an Optuna trial runs (a trial clowncar did not ask is its own number) and its attempt."""
    return int(t.user_attrs.get(NUMBER, t.number)), int(t.user_attrs.get(ATTEMPT, 0))


def latest_attempts(study: optuna.Study) -> dict[int, int]:
    """Per store trial number, its latest attempt among the study's trials, queued ones included."""
    latest: dict[int, int] = {}
    for t in study.get_trials(deepcopy=False):
        number, attempt = number_and_attempt(t)
        latest[number] = max(attempt, latest.get(number, attempt))
    return latest


def finished_count(study: optuna.Study) -> int:
    """Trials that count against the budget: finished, not closed for a re-run, and not an attempt that a later
    one of the same trial replaces (`sweep resume --retry-failed` queues those)."""
    latest, count = latest_attempts(study), 0
    for t in study.get_trials(deepcopy=False):
        number, attempt = number_and_attempt(t)
        # a trial closed for a re-run is never the latest attempt: close_trial queues the next one first
        count += t.state.is_finished() and not never_ran(t) and latest[number] == attempt
    return count


def tell(study: optuna.Study, trial: Any, values: Any, state: TrialState) -> None:
    """`study.tell`, minus the sampler's after-the-fact complaints. Optuna stores the state in a `finally` after
    `sampler.after_trial`, which GridSampler uses to call `study.stop()` (raises outside an objective function)
    and to look up a `grid_id` that an enqueued re-run does not have (KeyError). Once the state has landed those
    errors change nothing, so they are swallowed; anything that kept the state from landing is raised."""
    try:
        study.tell(trial, values, state=state)
    except (RuntimeError, KeyError):
        number = trial if isinstance(trial, int) else trial.number
        if not study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(
                study._study_id, number)).state.is_finished():
            raise


def close_trial(study: optuna.Study, trial_id: int, number: int, attempt: int, params: dict[str, Any],
                reason: str) -> None:
    """Mark a RUNNING Optuna trial FAIL/closed and enqueue a copy as attempt+1 (unless one is already queued)."""
    waiting = [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
               if t.user_attrs.get(NUMBER) == number]
    if not waiting:  # enqueue first: a crash between the two steps leaves a RUNNING trial, closed next time
        study.enqueue_trial(params, user_attrs={NUMBER: number, ATTEMPT: attempt + 1}, skip_if_exists=False)
    study._storage.set_trial_user_attr(trial_id, CLOSED, reason)
    study._storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _fault(when: str, count: int) -> None:
    if os.environ.get("CLOWNCAR_FAULT") == f"kill-{when}-tell:{count}":
        os.kill(os.getpid(), signal.SIGKILL)


class SweepSearch(OptunaSearch):
    def __init__(self, spec: SweepSpec, storage: optuna.storages.BaseStorage, max_trials: int,
                 on_tell: Callable[[str, dict[str, Any], str], None] | None = None) -> None:
        metrics = spec.metrics()
        mode: Any = [spec.objective.mode, "min"] if len(metrics) > 1 else spec.objective.mode
        super().__init__(space=define_space(spec), metric=metrics if len(metrics) > 1 else metrics[0], mode=mode,
                         sampler=make_sampler(spec), study_name=spec.name, storage=storage)
        self.spec, self.max_trials, self.on_tell = spec, max_trials, on_tell
        self.stopping = threading.Event()
        self.asked = self.tells = 0
        self.end_reason = ""
        self.running_since: dict[str, float] = {}
        self.started: dict[str, float] = {}
        """Tune trial id -> when its worker first reported (`STARTED`, recorded on the Optuna trial too)."""
        self.retried_s: dict[str, float] = {}
        """Tune trial id -> worker seconds of its executions Tune retried (`RETRIED_S`)."""
        self.attempts: dict[str, int] = {}
        """Tune trial id -> the attempt of Tune's latest retry of it (`retried`); none before a retry."""
        self.gate: Any = None
        """A `ledger.Gate` when GPU trials are admitted by the cluster's GPU ledger (set by run_sweep)."""
        self.error_outcome: Callable[[str], tuple[str, str | None]] | None = None
        """Tune trial id -> (status, reason) of a trial Tune gave up on: the store callback's, which says `oom` when
        Ray's memory monitor killed it; `crashed` without one."""
        self._held: tuple[str, dict[str, Any], tuple[float, ...]] | None = None
        self.distinct = DistinctAsk(spec) if spec.sampler in DISTINCT_SAMPLERS else None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher into its experiment directory (tuner.pkl), a cache we never restore from
        # (resume.py). The storage, the study and its trials carry the store's URL and its password; the sampler
        # may hold a lock (Optuna 5.1's NSGA-II does, which fails the pickle): all left out.
        return {**self.__dict__, "stopping": None, "on_tell": None, "gate": None, "_storage": None,
                "_ot_study": None, "_ot_trials": {}, "_sampler": None}

    def save(self, checkpoint_path: str) -> None:
        return None  # the study in the store is the state; nothing to snapshot (and nothing stale to restore)

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("clowncar sweeps resume from the Optuna study (clowncar sweep resume), not Tune state")

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    # -- budget ----------------------------------------------------------------------------------------------
    def _expected_s(self) -> float:
        walls = [(t.datetime_complete - t.datetime_start).total_seconds()
                 for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.datetime_start and t.datetime_complete]
        return sum(walls) / len(walls) if walls else self.spec.expected_trial_seconds()

    def budget_left(self) -> bool:
        """Whether one more trial may start; when not, `end_reason` says why (stored on the study)."""
        if self.stopping.is_set():
            return False
        done = finished_count(self.study)
        if done + len(self.running_since) >= self.max_trials:
            counts = f"{done} finished, {len(self.running_since)} running"
            # no budget given: a grid (or a queue) runs each of its distinct configs once, which is what ended it
            self._end(f"max_trials reached: {counts}, budget {self.max_trials}" if self.spec.budget.max_trials else
                      f"all {self.max_trials} distinct trials started: {counts}")
            return False
        if self.distinct is not None and self.distinct.exhausted(self.study):
            self._end(EXHAUSTED)
            return False
        cap = self.spec.budget.max_gpu_hours
        gpus = self.spec.resources.gpus
        if cap is None or gpus == 0:
            return True
        expected = self._expected_s()
        used = gpu_seconds_used(self.study, gpus)
        committed = used + self._in_flight_s(expected, time.time()) * gpus
        if committed + expected * gpus <= cap * 3600:
            return True
        self._end(f"GPU-hour budget reached: {used / 3600:.4f} of {cap:g} GPU-hours used "
                  f"({committed / 3600:.4f} committed); the next trial needs ~{expected * gpus / 3600:.4f}")
        return False

    def _in_flight_s(self, expected: float, now: float) -> float:
        """Seconds (per GPU) the trials asked and not yet told will be billed, as far as can be told now. Billing
        starts at a trial's worker start (`STARTED`): a started trial commits its time since then, at least the
        expected trial time. One not started (handed to Tune and waiting for Ray's room, or held at the GPU
        ledger's gate) has used nothing, and its wait, however long, is never billed; it commits the expected
        trial time only. That share is committed all the same because the trial was asked: unless the sweep is
        stopped it will run and be billed, and a cap that left it out would ask trials it cannot pay for."""
        return sum((max(expected, now - self.started[tid]) if tid in self.started else expected)
                   + self.retried_s.get(tid, 0.0) for tid in self.running_since)

    def backlog_seconds(self) -> tuple[float, ...]:
        """Expected seconds of each trial this sweep has still to ask (after the running ones), in the order it
        will ask them: for a grid, its unvisited points' (longest first, up to the trial budget); otherwise the
        trials left in the budget at the expected trial duration (at most BACKLOG_MAX). The GPU ledger plans them."""
        left = min(BACKLOG_MAX, max(0, self.max_trials - finished_count(self.study) - len(self.running_since)))
        sampler = self.study.sampler
        if isinstance(sampler, LongestFirstGrid):
            return tuple(sorted(sampler.unvisited_seconds(self.study), reverse=True)[:left])
        return (self._expected_s(),) * left

    def _end(self, reason: str) -> None:
        self.end_reason = reason
        self.study.set_user_attr(END_REASON, reason)

    # -- Searcher --------------------------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.gate is None:
            params = self._ask(trial_id) if self.budget_left() else None
            return Searcher.FINISHED if params is None else params
        # With the GPU ledger the trial is asked first (its expected duration comes from its parameters), then
        # held here until the ledger admits it; Tune calls again with a fresh id, which takes the held trial over.
        if self._held is None:
            asked = self._ask(trial_id) if self.budget_left() else None
            if asked is None:
                return Searcher.FINISHED
            self._held = (trial_id, asked, self.backlog_seconds())
        first_id, params, backlog = self._held
        node = self.gate.admit(trial_id, first_id, self.spec.expected_trial_seconds(params), backlog)
        if node is None:
            return None
        self._held = None
        if first_id != trial_id:
            self._ot_trials[trial_id] = self._ot_trials.pop(first_id)
            self.running_since[trial_id] = self.running_since.pop(first_id)
        return {**params, "_cc": {**params["_cc"], "node": node}}

    def _ask_once(self, trial_id: str) -> tuple[optuna.Trial, dict[str, Any]]:
        self._ot_trials.pop(trial_id, None)  # a repeat was told FAIL: Tune's OptunaSearch asks anew
        with warnings.catch_warnings():
            # Optuna samples lazily, inside the define-by-run space function, so a GP fit (seconds on CPU) makes
            # Ray warn that the *space function* is slow and to move training into the trainable: not actionable.
            warnings.filterwarnings("ignore", message="Define-by-run function passed in the `space`")
            params = super().suggest(trial_id)
        ot = self._ot_trials[trial_id]
        return ot, {**params, **self._fixed(ot)}  # enqueued keys the space may not suggest

    def _ask(self, trial_id: str) -> dict[str, Any] | None:
        """The next trial's parameters (with `_cc`), or None when every config of a finite space has run."""
        if self.distinct is None:
            ot, params = self._ask_once(trial_id)
        else:
            got = ask_distinct(self.study, lambda: self._ask_once(trial_id), self.distinct,
                               lambda t: tell(self.study, t, None, TrialState.FAIL))
            if got is None:
                self._ot_trials.pop(trial_id, None)
                self._end(EXHAUSTED)
                return None
            ot, params = got
        number, attempt = int(ot.user_attrs.get(NUMBER, ot.number)), int(ot.user_attrs.get(ATTEMPT, 0))
        ot.set_user_attr(NUMBER, number)
        ot.set_user_attr(ATTEMPT, attempt)
        self.running_since[trial_id] = time.time()
        self.asked += 1
        return {**params, "_cc": {"number": number, "attempt": attempt}}

    def _fixed(self, ot: optuna.Trial) -> dict[str, Any]:
        """Enqueued parameters (optuna 5 keeps them in the trial's system attrs, not on `Trial`)."""
        return dict(self.study._storage.get_trial_system_attrs(ot._trial_id).get("fixed_params", {}))

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # Intermediate values go to ASHA and the store, never to the Optuna trial; the ledger learns where the
        # trial really runs (a retried trial may have moved).
        retry = self.attempts.get(trial_id)
        if retry is not None and int(result.get("attempt", retry)) != retry:
            return  # a late report of an execution Tune has retried since
        if self.gate is not None and result.get("node_id"):
            self.gate.confirm(trial_id, str(result["node_id"]), str(result.get("pg") or ""))
        if trial_id not in self.started and trial_id in self._ot_trials:  # its first report: the worker started
            self.started[trial_id] = time.time()
            self._ot_trials[trial_id].set_user_attr(STARTED, self.started[trial_id])

    def retried(self, trial_id: str, attempt: int) -> None:
        """Tune runs the trial again after its actor or node died (the store callback's on_trial_recover): the
        Optuna trial names the retry's attempt, so a head that dies now resumes that one (not the crashed one);
        the execution that died is billed from its worker's start to now; the retry's bill starts at its own
        first report, so the wait for a node in between is not billed."""
        ot = self._ot_trials.get(trial_id)
        if ot is None:
            return
        self.attempts[trial_id] = attempt
        ot.set_user_attr(ATTEMPT, attempt)
        started = self.started.pop(trial_id, None)
        if started is not None:
            self.retried_s[trial_id] = self.retried_s.get(trial_id, 0.0) + max(0.0, time.time() - started)
            ot.set_user_attr(RETRIED_S, self.retried_s[trial_id])
            ot.set_user_attr(STARTED, None)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self.running_since.pop(trial_id, None)
        if self.gate is not None:
            self.gate.release(trial_id)
        ot = self._ot_trials[trial_id]
        self._completed_trials.add(trial_id)  # first: a second call for this trial must never tell again
        self.tells += 1
        _fault("before", self.tells)
        outcome = self._tell(ot, result or {}, error, trial_id)
        _fault("after", self.tells)
        if self.on_tell:
            self.on_tell(trial_id, result or {}, outcome)

    def _tell(self, ot: optuna.Trial, result: dict[str, Any], error: bool, trial_id: str) -> str:
        study = self.study
        if result.get("final"):
            status = str(result.get("status"))
            ot.set_user_attr("status", status)
            if result.get("reason"):
                ot.set_user_attr("reason", str(result["reason"])[:500])
            values = [result.get(m) for m in self.spec.metrics()]
            ok = status == "ok" and all(isinstance(v, int | float) and math.isfinite(v) for v in values)
            if ok:
                c = result.get("constraint")
                ot.set_constraint(CONSTRAINT, float(c) if isinstance(c, int | float) and math.isfinite(c) else 0.0)
                tell(study, ot, values if len(values) > 1 else values[0], TrialState.COMPLETE)
                return status
            tell(study, ot, None, TrialState.FAIL)
            return status
        if error:
            status, reason = self.error_outcome(trial_id) if self.error_outcome else ("crashed", None)
            if status != "crashed":  # told with its status, as a final report's: the study counts it so
                ot.set_user_attr("status", status)
                ot.set_user_attr("reason", (reason or "")[:500])
            tell(study, ot, None, TrialState.FAIL)
            return status
        if self.stopping.is_set():
            close_trial(study, ot._trial_id, int(ot.user_attrs.get(NUMBER, ot.number)),
                        int(ot.user_attrs.get(ATTEMPT, 0)), {**self._fixed(ot), **ot.params},
                        "sweep stopped")
            return "stopped"
        tell(study, ot, None, TrialState.PRUNED)
        return "pruned"
