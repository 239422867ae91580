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
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from clowncar.orchestrator.rungs import clock

__all__ = ["FinishingASHA", "clock"]


class FinishingASHA(ASHAScheduler):
    """ASHA that lets a trial at (or past) its last training step finish; the last step is reported by the
    trainable as `last_step`."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        last = result.get("last_step")
        if result.get("final") or (isinstance(last, int | float) and not math.isnan(last)
                                   and result.get("step", 0) >= last):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)
