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
"""

from __future__ import annotations

import math

from clowncar.config import TrainConfig


def clock(metric: str) -> str:
    """The result key ASHA counts steps by for `metric`: the step its latest value was measured at (asha.py)."""
    return f"{metric}_step"


def asha_rungs(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The steps of Tune's ASHA rungs (one bracket): grace_period x reduction_factor^k up to max_t."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [int(grace_period * reduction_factor**k) for k in range(count)]


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
    top = max_t or train.iterations
    first = min(grace_period, top)
    if first >= top:
        return None  # the only rung is the end of the run
    start, why = annealing_from(train)
    if first >= start:
        return None
    return (f"scheduler: ASHA's first rung (step {first}) comes before the LR anneals ({why}); a rung there "
            f"ranks configs on un-annealed loss, which favours early boosts that fade (docs/seed_sweeps.md). "
            f"Set scheduler.grace_period >= {start}, or drop the scheduler")
