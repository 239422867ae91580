"""Schedules of a trial: the LR multiplier (warm-up, wallclock-driven warm-down), Muon's momentum warm-up and
the crawler cadence (which steps fire the crawler loops: C-steps, and which run the shared block once:
N-steps). All are pure functions of the step and the training time, so tests can pin them exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

from clowncar.config import TrainConfig


@dataclass(frozen=True)
class LRPoint:
    scale: float
    phase: str  # warmup | main | warmdown
    set_by: str | None = None
    """In the warm-down, the limit that set the multiplier: `wallclock` (the cap and the mean step time so far)
    or `iterations`. A run records it for its first warm-down step (result.json `warmdown_set_by`)."""


def lr_scale(train: TrainConfig, step: int, elapsed_ms: float) -> LRPoint:
    """LR multiplier for 1-based `step`, with `elapsed_ms` of training time spent on the `step - 1` steps before.

    Warm-up: linear from 1/lr_warmup_steps to 1 over the first lr_warmup_steps steps.
    Warm-down (the Parameter Golf reference): with a wallclock cap, it lasts `warmdown_iters x mean step time`
    and falls linearly to zero exactly at the cap (`remaining_ms / warmdown_ms`). Whichever limit comes first
    wins, so the iteration limit gets its own linear warm-down over the last `warmdown_iters` steps. No
    warm-down before step `lr_hold_steps + 1`. `lr_schedule: cosine` replaces all of this (`cosine_scale`)."""
    if train.lr_warmup_steps and step <= train.lr_warmup_steps:
        return LRPoint(step / train.lr_warmup_steps, "warmup")
    if train.lr_schedule == "cosine":
        return cosine_scale(train, step)
    if train.warmdown_iters <= 0 or step <= train.lr_hold_steps:
        return LRPoint(1.0, "main")
    # Iteration limit: step `iterations` is the last one and trains at 1/warmdown_iters.
    scale, set_by = (train.iterations - step + 1) / train.warmdown_iters, "iterations"
    cap_ms = wallclock_cap_ms(train)
    if cap_ms > 0:
        done = step - 1
        if done > 0:  # the mean step time is unknown before the first step: no warm-down yet
            warmdown_ms = train.warmdown_iters * elapsed_ms / done
            by_clock = max(cap_ms - elapsed_ms, 0.0) / max(warmdown_ms, 1e-9)
            if by_clock < scale:
                scale, set_by = by_clock, "wallclock"
    if scale >= 1.0:
        return LRPoint(1.0, "main")
    return LRPoint(max(scale, 0.0), "warmdown", set_by)


def cosine_scale(train: TrainConfig, step: int) -> LRPoint:
    """The seed's small trainers' schedule after the warm-up: lr_min_ratio + (1 - lr_min_ratio) x half a cosine
    from 1 at the end of the warm-up to lr_min_ratio at `iterations`. The wallclock cap only truncates it."""
    span = max(train.iterations - train.lr_warmup_steps, 1)
    progress = min(max(step - train.lr_warmup_steps, 0) / span, 1.0)
    floor = train.lr_min_ratio
    scale = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return LRPoint(scale, "main", None) if progress == 0 else LRPoint(scale, "warmdown", "iterations")


def wallclock_cap_ms(train: TrainConfig) -> float:
    """Training-time budget in ms (0 = no cap): the wallclock cap less the time reserved for quantization."""
    if train.max_wallclock_seconds <= 0:
        return 0.0
    return max(train.max_wallclock_seconds - train.reserve_seconds, 0.0) * 1000.0


def muon_momentum(train: TrainConfig, step: int) -> float:
    """Linear warm-up from muon_momentum_warmup_start to muon_momentum over muon_momentum_warmup_steps."""
    if train.muon_momentum_warmup_steps <= 0:
        return train.muon_momentum
    frac = min((step - 1) / train.muon_momentum_warmup_steps, 1.0)
    return (1.0 - frac) * train.muon_momentum_warmup_start + frac * train.muon_momentum


def cadence_for(train: TrainConfig, lr: LRPoint) -> int:
    """The cadence in force: fixed, or (cadence_phased) chosen by the LR multiplier as the seed's H100 script
    did: early while the multiplier is above 0.5, main above 0.2, late below."""
    if not train.cadence_phased:
        return train.cadence
    if lr.scale > 0.5:
        return train.cadence_early
    if lr.scale > 0.2:
        return train.cadence_main
    return train.cadence_late


def is_crawl_step(step: int, cadence: int, offset: int = 0) -> bool:
    """C-step or N-step for 1-based `step`: cadence 0 never crawls, 1 always, c crawls once every c steps
    (on the steps where (step - 1) mod c == offset mod c)."""
    if cadence <= 0:
        return False
    return (step - 1) % cadence == offset % cadence
