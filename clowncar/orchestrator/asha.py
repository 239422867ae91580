"""Tune's ASHA, with the two changes a sweep's trials need (measured on the search benchmark's live runs).

- A rung compares a value measured at the rung: the trainable reports, beside `step`, the step at which each
  ASHA metric was last measured (`train_loss_step`, `val_bpb_step`, `probe_loss_step`), and ASHA's clock is that
  step. With `step` as the clock, a report that reached the rung step before the rung's eval or probe had
  arrived (they are written after the step) was judged on the value from the previous eval, a stale one.
- A trial that has reached its last training step is never stopped: Tune's bracket also has a rung at `max_t`
  when `max_t / grace_period` is a power of the reduction factor, and `stop_last_trials=False` does not spare
  it, so a trial could be stopped after all its training and before its final evaluation: every second paid,
  no score, recorded as pruned.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from clowncar.orchestrator.rungs import clock

__all__ = ["FinishingASHA", "clock", "seed_rungs"]


class FinishingASHA(ASHAScheduler):
    """ASHA that lets a trial at (or past) its last training step finish; the last step is reported by the
    trainable as `last_step`."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        last = result.get("last_step")
        if result.get("final") or (isinstance(last, int | float) and not math.isnan(last)
                                   and result.get("step", 0) >= last):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def stored_measurements(store: Any, sweep: str, metric: str) -> dict[str, list[tuple[int, float]]]:
    """Per store trial of `sweep` (its latest attempt), the (step, value) of every measurement of an ASHA metric
    the store holds, in step order: what the trainable reported to ASHA (trainable.Relay: the training loss of
    the step rows, the raw weights' val_bpb of the eval rows, the probe loss)."""
    if metric == "train_loss":
        frame = store.steps_frame(sweep)
    elif metric == "val_bpb":
        frame = store.evals_frame(sweep)
        frame = frame[frame["weights"] != "quantized"]
    else:
        frame = store.probes_frame(sweep)
    frame = frame[frame[metric].notna()]
    out: dict[str, list[tuple[int, float]]] = {}
    for uid, step, value in zip(frame["trial_uid"].astype(str), frame["step"], frame[metric], strict=True):
        out.setdefault(uid, []).append((int(step), float(value)))
    return {uid: sorted(rows) for uid, rows in out.items()}


def seed_rungs(scheduler: Any, store: Any, sweep: str, metric: str, skip: Collection[str] = ()) -> int:
    """Give a resumed sweep's ASHA the rung values of the trials its store holds (but those in `skip`: trials
    that run again, whose new attempt records its own), so that it prunes as the uninterrupted sweep would:
    a fresh scheduler's rungs are empty, and the first trial to reach a rung after `sweep resume` was compared
    with nothing. A trial's value at a rung is its first measurement at or after the rung's step (the rung
    checks make the metric measured at every rung before the last step: rungs.measure_problem), recorded as
    Tune's bracket records a live one (the metric times the mode's sign), under the key `store:<trial uid>`.
    Returns how many trials reached a rung.

    A pruned trial's rows may run a few steps past the rung that stopped it (the stop reaches the worker at the
    trainable's next report); a later rung within those steps would count it where Tune's bracket did not."""
    (bracket,) = scheduler._brackets  # build_scheduler's ASHA has one bracket
    seeded = 0
    for uid, rows in stored_measurements(store, sweep, metric).items():
        if uid in skip:
            continue
        reached = False
        for milestone, recorded in bracket._rungs:
            value = next((v for step, v in rows if step >= milestone), None)
            if value is not None and math.isfinite(value):
                recorded[f"store:{uid}"] = scheduler._metric_op * value
                reached = True
        seeded += reached
    return seeded
