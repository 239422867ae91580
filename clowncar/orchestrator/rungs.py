"""Where ASHA may compare trials: never before the learning-rate warm-down.

ASHA stops a trial at a rung (a step count) when its metric is in the worse part of the trials that reached the
rung. Before the warm-down every trial still runs at its full learning rate, and a loss measured there ranks
configurations by their early progress: more loops and denser C-steps give an early boost that fades once the
learning rate anneals (the seed's finding 3, reference/seed_facts.md section 7), so a rung there stops the trials
that would have ended best. The rule, for every schedule of the spec:

- a constant LR (no warm-down) or the cosine schedule (it anneals from the end of its warm-up): rungs after the
  LR warm-up are fine;
- a warm-down over the last `warmdown_iters` of a step-bounded run: the first rung must not come before it;
- a wallclock warm-down: it starts `warmdown_iters` x (mean step time) before the cap, a step that depends on the
  speed of each trial and is unknown before it runs. Only the iteration limit bounds it: the warm-down has
  certainly begun by step `iterations - warmdown_iters + 1`, so the first rung must not come before that.

A spec that breaks the rule is refused with one line (docs/seed_sweeps.md, "ASHA rungs").

A rung also needs its metric measured there. ASHA's clock is the step at which the metric was last measured
(asha.py), and the worker measures each metric only on some steps while it trains (worker/train.py): the training
loss at step 1 and every `log_every` steps, the probe loss every `probe_every` steps, the raw weights' val_bpb
every `val_every` steps (0 = never: then it comes only from the final eval, after the last step, where ASHA stops
no trial). A metric never measured before the last step compares nothing, and a rung between two measurements is
judged at the next one, a step no trial of the spec names (a trial that stops before it is never compared there):
both are refused, with the steps where the metric is measured.
"""

from __future__ import annotations

import math

from clowncar.config import TrainConfig


def clock(metric: str) -> str:
    """The result key ASHA counts steps by for `metric`: the step its latest value was measured at (asha.py)."""
    return f"{metric}_step"


MEASURED_EVERY = {"train_loss": "log_every", "val_bpb": "val_every", "probe_loss": "probe_every"}
"""The train key whose multiples are the steps at which the worker measures each ASHA metric while training."""


def asha_rungs(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The steps of Tune's ASHA rungs (one bracket), grace_period x reduction_factor^k up to max_t: each the first
    whole step that reaches the rung (Tune compares the clock with the float grace x factor^k, as here)."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [math.ceil(grace_period * reduction_factor**k) for k in range(count)]


def annealing_from(train: TrainConfig) -> tuple[int, str]:
    """The first step at which the LR is certainly annealing, and how the schedule decides it."""
    if train.lr_schedule == "cosine" or train.warmdown_iters <= 0:
        why = "cosine" if train.lr_schedule == "cosine" else "constant learning rate"
        return train.lr_warmup_steps + 1, f"{why}, after the {train.lr_warmup_steps}-step LR warm-up"
    start = max(train.iterations - train.warmdown_iters + 1, train.lr_hold_steps + 1)  # hold >= 0: step 1 at least
    if train.max_wallclock_seconds > 0:
        return start, (f"a wallclock warm-down of {train.warmdown_iters} steps starts at a step that depends on the "
                       f"step time; only the iteration limit ({train.iterations}) places it, by step {start}")
    return start, f"the warm-down covers the last {train.warmdown_iters} of {train.iterations} steps"


def rung_problem(train: TrainConfig, grace_period: int, max_t: int | None) -> str | None:
    """Why ASHA's first rung would rank trials before their warm-down, or None when it cannot."""
    first = min(grace_period, max_t or train.iterations)  # as the scheduler is built (tune.build_scheduler)
    if first >= train.iterations:
        return None  # the only rung is the run's last step, where FinishingASHA stops no trial
    start, why = annealing_from(train)
    if first >= start:
        return None
    # a max_t below the anneal caps every rung there: Tune still ranks (and stops) trials at a rung at max_t,
    # since stop_last_trials=False only spares trials from being stopped for reaching it
    fix = (f"Set scheduler.grace_period >= {start}" if not max_t or max_t >= start else
           f"Set scheduler.max_t >= {start} (or leave it out: the trials' iterations) and "
           f"scheduler.grace_period >= {start}")
    return (f"scheduler: ASHA's first rung (step {first}) comes before the LR anneals ({why}); a rung there "
            f"ranks configs on un-annealed loss, which favours early boosts that fade (docs/seed_sweeps.md). "
            f"{fix}, or drop the scheduler")


def measured(train: TrainConfig, metric: str, step: int) -> bool:
    """Whether the worker measures `metric` at `step` while it trains (worker/train.py)."""
    every = getattr(train, MEASURED_EVERY[metric])
    return (every > 0 and step % every == 0) or (metric == "train_loss" and step == 1)


def measure_problem(train: TrainConfig, metric: str, grace_period: int, reduction_factor: float,
                    max_t: int | None) -> str | None:
    """Why ASHA's rungs before the last step would not compare `metric` where it is measured, or None."""
    top = max_t or train.iterations
    first = min(grace_period, top)  # as the scheduler is built (tune.build_scheduler)
    rungs = [r for r in asha_rungs(first, reduction_factor, top) if r < train.iterations]
    bad = [r for r in rungs if not measured(train, metric, r)]
    if not bad:
        return None  # no rung before the last step (FinishingASHA stops no trial there), or all measured
    key, every = MEASURED_EVERY[metric], getattr(train, MEASURED_EVERY[metric])
    divisor = math.gcd(*rungs)
    if not any(measured(train, metric, step) for step in range(1, train.iterations)):
        why = (f"its first measurement would be at step {every}, and the run's last step is {train.iterations}"
               if every else "only the final eval measures it" if metric == "val_bpb" else "no probe runs")
        steps = ", ".join(map(str, rungs))
        return (f"scheduler: ASHA's metric {metric} is never measured before the last step (train.{key} {every}: "
                f"{why}), so its rung{'s' * (len(rungs) > 1)} at step{'s' * (len(rungs) > 1)} {steps} compare"
                f"{'s' * (len(rungs) == 1)} nothing and stop{'s' * (len(rungs) == 1)} no trial. Set train.{key} to "
                f"{divisor} (it divides every rung)"
                f"{_or_train_loss(train, metric, rungs)}")
    later = next((s for s in range(bad[0], train.iterations) if measured(train, metric, s)), None)
    judged = (f"ASHA would judge it at step {later} instead" if later else
              "ASHA would never judge it (the next measurement is the last step, where no trial is stopped)")
    return (f"scheduler: ASHA's rung at step {bad[0]} falls between the steps where {metric} is measured "
            f"({'step 1 and ' * (metric == 'train_loss')}every {every} steps, by train.{key}): {judged}. "
            f"Set {_rung_fix(train, first, top, reduction_factor, key, divisor)}")


def _rung_fix(train: TrainConfig, first: int, top: int, reduction_factor: float, key: str, divisor: int) -> str:
    """Rungs on measured steps: a first rung on a multiple of the measurement period and a whole factor keep every
    rung there, or a period that divides every rung."""
    every = getattr(train, key)
    period = f"train.{key} to {divisor} (it divides every rung)"
    grace = math.ceil(first / every) * every
    if grace > top or grace >= train.iterations:  # no such first rung before ASHA's top one and the last step
        return period
    if grace == first:  # the first rung is measured: a fractional factor puts later ones between
        fix = "scheduler.reduction_factor to a whole number (2 or 3)"
    else:
        whole = float(reduction_factor).is_integer()
        fix = (f"scheduler.grace_period to {grace} (a multiple of {every})"
               + ("" if whole else " with a whole scheduler.reduction_factor"))
    # A probe or an eval at every step costs more than the rungs save: not offered beside another fix.
    return fix if divisor == 1 and key != "log_every" else f"{fix}, or {period}"


def _or_train_loss(train: TrainConfig, metric: str, rungs: list[int]) -> str:
    """The other fix for a metric never measured mid-run: the training loss, when its rungs fall on its steps."""
    if metric == "train_loss" or not all(measured(train, "train_loss", r) for r in rungs):
        return ""
    return ", or use scheduler.metric: train_loss"
