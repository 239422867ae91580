"""GPU-hours a sweep has used, as `sweep status` shows them and `budget.max_gpu_hours` counts them: each execution
of a trial is billed from its worker's start (its first report to the driver) to its end. The time a trial waits
for Ray (for a GPU node, before it starts or before Tune's retry of it starts) is not billed. The driver's progress
line bills the same spans (record.StoreCallback._bill)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from clowncar.orchestrator.suggest import never_ran

STARTED = "clowncar_started"
"""Trial user attr: when (epoch seconds) its worker started, from the trainable's first report. A trial is asked
before Ray has room for it and may wait there, or never start at all (a GPU no node offers): GPU-hours count from
here, not from the ask. None after a Tune retry until the retry's worker reports (`SweepSearch.retried`)."""
RETRIED_S = "clowncar_retried_seconds"
"""Trial user attr: worker seconds of its executions that died and that Tune ran again, each billed from its worker's
start to the moment Tune saw it fail; the wait for a node before the retry is not billed."""


def gpu_seconds_used(study: optuna.Study, gpus: int) -> float:
    """GPU-seconds of the study's finished trials, each from its worker's start (`STARTED`) to its end, plus its
    executions that Tune retried (`RETRIED_S`; `STARTED` None: the retry never started). A trial that never
    started is not billed: no `STARTED` and no outcome of its own (closed by a stop while it waited for
    Ray). A trial with an outcome but no `STARTED` (told before that attr existed, or whose first report never
    reached the driver) counts from its ask, as all trials used to."""
    total = 0.0
    for t in study.get_trials(deepcopy=False):
        if not (t.state.is_finished() and t.datetime_start and t.datetime_complete) or never_ran(t):
            continue
        total += float(t.user_attrs.get(RETRIED_S) or 0.0) * gpus
        started = t.user_attrs.get(STARTED)
        if started is not None:
            total += max(0.0, t.datetime_complete.timestamp() - float(started)) * gpus
        elif STARTED not in t.user_attrs and (t.state == TrialState.COMPLETE or "status" in t.user_attrs):
            total += (t.datetime_complete - t.datetime_start).total_seconds() * gpus
    return total
