"""`clowncar sweep plan SPEC`, also printed by `sweep run` before it starts: how many distinct trials the spec
makes, which of its points were merged because they would repeat another point's trial, and what it should cost.

The cost is the expected seconds of each trial that will run (`budget.trial_seconds_estimate`, else each point's
`train.max_wallclock_seconds` + 10 %) times its GPUs; with ASHA it is what the sweep takes if no trial is stopped
early, and `budget.max_gpu_hours` stops a sweep sooner when it is lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from clowncar.orchestrator.distinct import Merged
from clowncar.orchestrator.spec import POINT_KEY, SweepSpec
from clowncar.orchestrator.suggest import distinct_configs
from clowncar.words import counted

MERGED_SHOWN = 12
"""Merged points listed one by one; beyond, a count."""


@dataclass
class SweepPlan:
    name: str
    sampler: str
    points: int
    """Grid points as written (named points x space x seeds) plus the queued configs, or the enqueued points of
    another sampler."""
    distinct: int
    trials: int
    """Trials the sweep will run (distinct points, at most budget.max_trials)."""
    merged: list[Merged] = field(default_factory=list)
    trial_seconds: float = 0.0
    """Sum of the expected seconds of the trials that will run."""
    gpus: int = 0
    queued: int = 0
    """The queued configs (`enqueue`) among `points`."""
    budget: int = 0
    """budget.max_trials where it is more than `trials`, the distinct configs of a finite sampled space (the
    driver ends the sweep once each has run: suggest.DistinctAsk); else 0."""

    @property
    def gpu_hours(self) -> float:
        return self.trial_seconds * self.gpus / 3600.0


def make_plan(spec: SweepSpec) -> SweepPlan:
    if spec.sampler == "grid":
        grid, queued = spec.distinct_grid(), spec.distinct_enqueue()
        distinct = [*queued.points, *grid.points]
        merged = [*queued.merged, *grid.merged]
        points = spec.grid_size() + len(spec.enqueue)
    else:
        queued = spec.distinct_enqueue()
        distinct, merged, points = queued.points, queued.merged, len(spec.enqueue)
    trials, budget = spec.max_trials(), 0
    configs = distinct_configs(spec) if spec.sampler != "grid" else None
    if configs is not None and len(configs) < trials:  # the driver ends the sweep once every config has run
        trials, budget = len(configs), trials
        seconds = [spec.expected_trial_seconds(p) for p in configs]
    else:
        seconds = sorted((spec.expected_trial_seconds(p) for p in distinct), reverse=True)  # longest first, as run
        if trials > len(seconds):  # sampled trials beyond the enqueued ones: at the spec's expected length
            seconds += [spec.expected_trial_seconds()] * (trials - len(seconds))
    return SweepPlan(spec.name, spec.sampler, points, len(distinct), trials, merged, sum(seconds[:trials]),
                     spec.resources.gpus, len(spec.enqueue), budget)


def _params(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def _merged_lines(merged: list[Merged], named: dict[str, dict[str, Any]]) -> list[str]:
    """One line per point that runs and the points merged into it: what they share, then what differs. `named`:
    the spec's `points`, whose values a `point=NAME` stands for."""
    groups: dict[str, list[Merged]] = {}
    for m in merged:
        groups.setdefault(repr(sorted(m.same_as.items())), []).append(m)
    lines = []
    for group in groups.values():
        runs = group[0].same_as
        shared = {k: v for k, v in runs.items() if all(m.point.get(k) == v for m in group)}
        if all(m.point == runs for m in group):  # the very same point listed again (an enqueue list's repeat)
            lines.append(f"    {_params(runs) or 'the base config'}: listed {len(group) + 1} times -> runs once")
            continue
        mine = " | ".join(_params({k: v for k, v in m.point.items() if k not in shared}) or "(the defaults)"
                          for m in group)
        theirs = _params({k: v for k, v in runs.items() if k not in shared}) or "(the defaults)"
        if not shared:  # two named points: what they share is what their names stand for, else the base config
            spelled = [{**named.get(str(p.get(POINT_KEY)), {}), **p} for p in (runs, *(m.point for m in group))]
            shared = {k: v for k, v in spelled[0].items() if k != POINT_KEY and all(p.get(k) == v for p in spelled)}
        lines.append(f"    {_params(shared) or 'the base config'}: {mine} -> runs as {theirs}")
    return lines


def _one_kind(train: Any) -> bool:
    """Whether a trial logs one step kind throughout (cadence 0: all N; 1: all C; phased: the same 0 or 1 in
    every phase), as a reference run of tests 1a and 1b must."""
    if train.cadence_phased:
        return len({train.cadence_early, train.cadence_main, train.cadence_late}) == 1 and train.cadence_early <= 1
    return train.cadence <= 1


def reference_line(spec: SweepSpec, points: list[dict[str, Any]]) -> str | None:
    """A warning when some trials that alternate C- and N-steps have no one-kind trial on their token stream:
    the report's tests 1a and 1b then correct none of them for the batches every run shares (docs/signals.md)."""
    from clowncar.analysis.reference import STREAM_COLUMNS  # the analysis's own definition of a stream

    fields = [column.split(".") for column in STREAM_COLUMNS]
    streams: list[tuple[tuple[Any, ...], bool]] = []
    for point in points:  # grid and queued points are valid configs: the spec refused any other when it loaded
        cfg = spec.trial_config(point)
        key = tuple(getattr(getattr(cfg, section), name) for section, name in fields)
        streams.append((key, _one_kind(cfg.train)))
    covered = {key for key, one in streams if one}
    alternating = [key for key, one in streams if not one]
    lacking = sum(key not in covered for key in alternating)
    if not lacking:
        return None
    return (f"  tests 1a/1b: {lacking} of the {len(alternating)} trials that alternate C- and N-steps have no "
            "cadence-0 or cadence-1 trial on their token stream (same shards, batch tokens, sequence length): "
            "the report cannot cancel the batches all runs share (docs/signals.md)")


def amount(seconds: float, unit: str) -> str:
    """A cost in hours, or minutes or seconds under an hour ('0.00 trial-hours' said nothing of a small sweep)."""
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} {unit}-hours"
    if seconds >= 60:
        return f"{seconds / 60:.1f} {unit}-minutes"
    return f"{seconds:.0f} {unit}-seconds"


def _estimate_basis(spec: SweepSpec, gpu_hours: float | None) -> str:
    """Where the per-trial seconds come from, so that a user can weigh the estimate (a researcher budgeting a
    week of GPUs read the 600 s training cap + 10 % as a prediction of whole trials, evaluation included)."""
    if spec.budget.trial_seconds_estimate:
        line = "  per trial: budget.trial_seconds_estimate"
    else:
        line = ("  per trial: train.max_wallclock_seconds + 10 % (the training cap: evaluation, quantization and "
                "compilation come on top)")
    line += "; the driver uses the measured trial times once trials finish"
    cap = spec.budget.max_gpu_hours
    if gpu_hours is not None and cap and cap >= gpu_hours:
        line += f"; budget.max_gpu_hours {cap:g} stops the sweep if they add up to it"
    return line


def plan_lines(spec: SweepSpec) -> list[str]:
    plan = make_plan(spec)
    if plan.sampler == "grid":
        queued = f" + {counted(plan.queued, 'queued config')}" if plan.queued else ""
        lines = [f"sweep {plan.name} (grid): {counted(plan.points - plan.queued, 'grid point')}{queued}, "
                 f"{counted(plan.distinct, 'distinct trial')}"]
        if plan.trials < plan.distinct:
            lines[0] += f"; runs {plan.trials} (budget.max_trials)"
    elif not plan.points:  # nothing queued: every trial is sampled
        lines = [f"sweep {plan.name} ({plan.sampler}): runs {counted(plan.trials, 'trial')} ({_why(plan, spec)}), "
                 "all sampled"]
    else:
        rest = ("the rest sampled" if plan.trials > plan.distinct else "nothing sampled" if plan.trials == plan.distinct
                else f"only the first {plan.trials} of the queue")
        lines = [f"sweep {plan.name} ({plan.sampler}): {counted(plan.points, 'enqueued point')}, "
                 f"{counted(plan.distinct, 'distinct trial')}; runs {counted(plan.trials, 'trial')} "
                 f"({_why(plan, spec)}), {rest}"]
    lines += _cut_ranges(spec)
    if plan.merged:
        lines.append(f"  merged before the start ({counted(len(plan.merged), 'point')} would repeat another's "
                     "trial, same config hash):")
        grouped = _merged_lines(plan.merged, spec.points)
        lines += grouped[:MERGED_SHOWN]
        if len(grouped) > MERGED_SHOWN:
            lines.append(f"    ... and {len(grouped) - MERGED_SHOWN} more")
    mean = plan.trial_seconds / max(plan.trials, 1)
    if plan.trials and not plan.trial_seconds:  # step-bounded trials (no wall-clock cap) and no estimate given
        # Alone: the per-trial rule (the cap + 10 %) and "the most it takes" would speak of an estimate not made.
        lines.append("  estimated: unknown: the trials have no wall-clock cap (train.max_wallclock_seconds 0) to "
                     "read a length from; set budget.trial_seconds_estimate for an estimate")
        if spec.budget.max_gpu_hours:  # the cap still holds: the driver bills the measured trial times
            lines.append(f"  budget.max_gpu_hours {spec.budget.max_gpu_hours:g} stops the sweep when the measured "
                         "trial times add up to it")
        return lines + _reference_lines(spec, plan)
    if plan.gpus:
        cost = (f"  estimated: {amount(plan.gpu_hours * 3600, 'GPU')} ({counted(plan.trials, 'trial')} x "
                f"{counted(plan.gpus, 'GPU')} x {mean:.0f} s on average")
        cap = spec.budget.max_gpu_hours
        cost += f"; budget.max_gpu_hours {cap:g} stops it sooner)" if cap and cap < plan.gpu_hours else ")"
    else:
        cost = (f"  estimated: {amount(plan.trial_seconds, 'trial')} on CPU ({counted(plan.trials, 'trial')} x "
                f"{mean:.0f} s on average, no GPU)")
    if spec.scheduler.type == "asha":
        cost += "; ASHA may stop trials early: this is the most it takes"
    lines += [cost, _estimate_basis(spec, plan.gpu_hours if plan.gpus else None)]
    return lines + _reference_lines(spec, plan)


def _cut_ranges(spec: SweepSpec) -> list[str]:
    """A stepped range that is no whole number of steps: Optuna samples it up to its last step below `high` (and
    says so only in a raw warning, which the sampler keeps off the console)."""
    lines = []
    for key, p in spec.space.items():
        bounds = p.int_range or p.float_range
        if bounds is None or not p.step:
            continue
        lo, hi = bounds
        last = lo + math.floor((hi - lo) / p.step + 1e-9) * p.step
        if not math.isclose(last, hi, rel_tol=1e-9, abs_tol=1e-12):
            lines.append(f"  space.{key}: [{lo}, {hi}] is no whole number of steps of {p.step:g}: it is sampled "
                         f"from [{lo}, {last:.10g}]")
    return lines


def _why(plan: SweepPlan, spec: SweepSpec) -> str:
    """What bounds a sampled sweep's trials: the budget, the queue (no budget given), or every distinct config of
    a finite space."""
    if not plan.budget:
        return "budget.max_trials" if spec.budget.max_trials else "every queued config; no budget.max_trials"
    where = "the queue and the space" if plan.queued else "the space"
    return f"every distinct config of {where}; budget.max_trials {plan.budget} is more"


def _reference_lines(spec: SweepSpec, plan: SweepPlan) -> list[str]:
    if plan.sampler != "grid":  # a sampler's trials are not known before they are sampled
        return []
    reference = reference_line(spec, [*spec.distinct_enqueue().points, *spec.distinct_grid().points])
    return [reference] if reference else []
