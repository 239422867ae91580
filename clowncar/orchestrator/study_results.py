"""What a sweep's Optuna study says it has done: each finished trial's outcome (by its latest attempt), the best
feasible trial, the Pareto front of a multi-objective sweep, the summary `sweep run` prints, and where a resumed
sweep's progress line starts. Read through Optuna's API only, so `sweep status` reads the same as the driver."""

from __future__ import annotations

from typing import Any

from clowncar.orchestrator.spec import SweepSpec


def count_earlier(tally: Any, spec: SweepSpec, study: Any) -> int:
    """Start the progress line of a resumed sweep from what it had done, counted as `sweep status` counts the
    store's trials: each trial (clowncar number) by its latest attempt, here those that have finished, each under
    that attempt's outcome (`finished_outcomes`); its best so far (not only the best of this run's trials); and the
    GPU-hours its earlier runs used, as `sweep status` bills them. Returns how many: the trials that count against
    its budget."""
    from clowncar.orchestrator.billing import gpu_seconds_used

    outcomes = finished_outcomes(study)
    for status, n in outcomes.items():
        tally.by_status[status] = tally.by_status.get(status, 0) + n
    tally.gpu_seconds += gpu_seconds_used(study, spec.resources.gpus)
    best = best_trial(spec, study)
    if best is not None:
        tally.best = (best["objective"], best["number"], best["params"])
    return sum(outcomes.values())


OUTCOME_OF_STATE = {"COMPLETE": "ok", "PRUNED": "pruned", "FAIL": "crashed"}
"""The store's outcome of a finished Optuna trial that carries no `status` of its own: stopped by ASHA (pruned),
or failed in Ray before any final report (the store callback records that `crashed`)."""


def finished_outcomes(study: Any) -> dict[str, int]:
    """Outcome -> how many of the sweep's trials ended so, one per clowncar trial number: its latest attempt,
    where that has finished (the trials `search.finished_count` counts). An attempt closed because its driver
    ended (or the sweep stopped) and queued again is not its trial's latest, nor one that --retry-failed queued
    again: the trial counts once, by the attempt that replaced it. The outcome is the one the store holds for that
    attempt (the `status` the searcher or resume told with it)."""
    from collections import Counter

    from clowncar.orchestrator.search import latest_attempts, number_and_attempt
    from clowncar.orchestrator.suggest import never_ran

    latest, outcomes = latest_attempts(study), Counter[str]()
    for t in study.get_trials(deepcopy=False):
        number, attempt = number_and_attempt(t)
        if t.state.is_finished() and not never_ran(t) and latest[number] == attempt:
            outcomes[str(t.user_attrs.get("status") or OUTCOME_OF_STATE[t.state.name])] += 1
    return dict(outcomes)


def best_trial(spec: SweepSpec, study: Any) -> dict[str, Any] | None:
    """The best feasible COMPLETE trial (never one over the size cap)."""
    from optuna.trial import TrialState

    from clowncar.orchestrator.search import NUMBER
    from clowncar.orchestrator.suggest import trial_params

    sign = 1 if spec.objective.mode == "min" else -1
    best = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if any(c > 0 for c in t.constraints.values()):
            continue
        value = t.values[0]
        if best is None or sign * value < sign * best["objective"]:
            best = {"number": t.user_attrs.get(NUMBER, t.number), "objective": value, "params": trial_params(t),
                    "values": list(t.values)}
    return best


def pareto_front(spec: SweepSpec, study: Any) -> list[dict[str, Any]]:
    """Multi-objective sweeps (nsga2: objective and artifact bytes): the feasible non-dominated trials."""
    from clowncar.orchestrator.search import NUMBER
    from clowncar.orchestrator.suggest import trial_params

    if len(spec.metrics()) < 2:
        return []
    # Optuna 5's best_trials already leaves out trials with a violated constraint; checked again here because
    # an infeasible trial must never be reported, whatever the Optuna version.
    front = [t for t in study.best_trials if not any(c > 0 for c in t.constraints.values())]
    return sorted(({"number": t.user_attrs.get(NUMBER, t.number), "values": list(t.values),
                    "params": trial_params(t)} for t in front), key=lambda r: r["values"])


def summarize(spec: SweepSpec, study: Any, reconciled: dict[str, int], asked: int) -> dict[str, Any]:
    from collections import Counter

    from clowncar.orchestrator.search import latest_attempts, number_and_attempt
    from clowncar.orchestrator.suggest import why_never_ran

    latest = latest_attempts(study)

    def kind(t: Any) -> str:
        # a repeated suggestion or an ask cut short (told FAIL, never run) is counted as what it is, and so is an
        # attempt a later attempt of its trial replaced (closed by a driver's end or a stop, or retried): Optuna
        # calls it FAIL, though its trial may well have ended ok
        number, attempt = number_and_attempt(t)
        return why_never_ran(t) or ("REPLACED" if latest[number] > attempt else t.state.name)

    states = Counter(kind(t) for t in study.get_trials(deepcopy=False))
    return {"sweep": spec.name, "asked_this_run": asked, "optuna_states": dict(states), "reconciled": reconciled,
            "best": best_trial(spec, study), "pareto": pareto_front(spec, study), "metric": spec.objective.metric}
