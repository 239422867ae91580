"""What `sweep rerun` prints of its configs and seeds, and what it checks before it runs; `sweep resume` of a rerun
prints the same answer (each config's mean over the seeds), and `sweep ls` / `store ls` say what a rerun's best is.

The configs and seeds themselves are picked in `rerun.py`."""

from __future__ import annotations

import statistics
from typing import Any

from clowncar.errors import ClownCarError
from clowncar.orchestrator.rerun import ParentMatch, SeedPlan, matched_trials, parent_values, seed_values
from clowncar.orchestrator.spec import POINT_KEY, SEED_KEY, SweepSpec, spec_from_dict
from clowncar.words import counted


def _configs_text(numbers: list[int], total: int) -> str:
    if len(numbers) == total and total > 1:
        return "every config"
    return f"config{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"


def seed_note(plan: SeedPlan, configs: int) -> str | None:
    """One line on the parent's seeds: which default seed was left out and why, or which given seed repeats the
    parent's trials; None when neither."""
    if plan.left_out:
        named = "; ".join(f"{s} (the parent ran {_configs_text(c, configs)} at it)" for s, c in plan.left_out.items())
        return (f"seeds {', '.join(map(str, plan.seeds))}: left out {named}, as a config's value at its parent's "
                "seed is the one it was picked by (biased by the picking), and rerunning it would repeat that "
                "trial; --seeds sets the seeds")
    if plan.repeats:
        named = "; ".join(f"seed {s} repeats the parent's trial of {_configs_text(c, configs)}"
                          for s, c in plan.repeats.items())
        return (f"{named}: the value a config was picked by (biased by the picking), so the summary gives the mean "
                "over the other seeds beside the parent's value")
    return None


def parent_notes(store_url: str, parent: ParentMatch | None, configs: list[dict[str, Any]]) -> list[str]:
    """Per config, what the parent measured for it (' (parent mean 1.1813 sd 0.0100, n=2)'), so that a user weighs
    the pick before spending GPUs on it; where --keys carried a config the parent never ran (its other keys at
    the base's values), that; '' where the parent's trials cannot be matched (`parent` None: see seed_lines)."""
    found = parent_values(store_url, parent, configs)
    if found is None:
        return [""] * len(configs)
    never = NEVER_RAN if parent is not None and parent.keys is not None else ""
    return [f" (parent {values_text([v for _, v in got])})" if got else never for got in found]


NEVER_RAN = " (the parent never ran this config: its keys came from its top trials)"
"""A config --keys carried whose other keys, the base's, no trial of the parent ran with."""


def values_text(values: list[float]) -> str:
    """`1.1000, n=1` for one value (a single run: nothing says how lucky it was), else `mean 1.1500 sd 0.0707,
    n=2`."""
    if len(values) == 1:
        return f"{values[0]:.4f}, n=1"
    return f"mean {statistics.fmean(values):.4f} sd {statistics.stdev(values):.4f}, n={len(values)}"


def seed_lines(store_url: str, child: SweepSpec, configs: list[dict[str, Any]], parent: ParentMatch | None
               ) -> list[str]:
    """What a rerun is for: each config's mean and sd over the child's seeds, every seed's value, and the
    parent's mean for the same config (`parent`: None when its trials cannot be matched: an imported sweep, or
    configs carried onto another base). The winner's curse shows as a child mean behind the parent's."""
    mine = seed_values(store_url, child.name, configs)
    if mine is None:
        return []
    theirs = parent_values(store_url, parent, configs)
    metric = child.objective.metric
    shown = "q_sliding_val_bpb, else q_val_bpb" if metric == "auto" else metric
    lines = [f"each config over the seeds (objective {shown}; `clowncar analyze {child.name}` tests them):"]
    for i, got in enumerate(mine, start=1):
        before = theirs[i - 1] if theirs else []
        was = f"; parent {sum(v for _, v in before) / len(before):.4f} (n={len(before)})" if before else ""
        if theirs and not before and parent is not None and parent.keys is not None:
            was = "; the parent never ran this config"
        picked_at = {s for s, _ in before} - {None}
        fresh = [(s, v) for s, v in got if s not in picked_at]
        again = [(s, v) for s, v in got if s in picked_at]
        lines.append(f"  {i}. {_mean_text(fresh, 'fresh ' if again else '')}{was}{_again_text(again)}")
    return lines


def _mean_text(got: list[tuple[Any, float]], fresh: str) -> str:
    """`mean 1.6000 sd 0.1414 (n=2: 1: 1.5000, 2: 1.7000)` over `got`'s seeds; `fresh` names them when the parent's
    seed is left out."""
    values = [v for _, v in got]
    if not values:
        return f"no finished {fresh}seed"
    sd = f" sd {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    seeds = ", ".join(f"{s}: {v:.4f}" for s, v in got)
    over = f" over the {fresh}seeds" if fresh else ""
    return f"mean {sum(values) / len(values):.4f}{sd}{over} (n={len(values)}: {seeds})"


def _again_text(again: list[tuple[Any, float]]) -> str:
    """What the rerun measured at the parent's own seed(s), and why it is not in the mean."""
    if not again:
        return ""
    seeds = ", ".join(f"{s}: {v:.4f}" for s, v in again)
    return f"; the parent's seed, at which the config was picked, left out of the mean: {seeds}"


def refuse_taken(store_url: str, name: str) -> None:
    """The child's name is another sweep's: one line, before a dry run's plan as before a run (which `start.prepare`
    would refuse with the same words, after the plan). A sweep whose start failed before any trial is no sweep yet:
    a run takes its name over, as `prepare` does."""
    import optuna

    from clowncar.orchestrator.start import never_started, taken_line
    from clowncar.orchestrator.tune import open_study
    from clowncar.store import open_store

    with open_store(store_url, create=False) as store:
        existing = store.get_sweep(name)
        storage = open_study(store_url)
        studies = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if (not existing and name not in studies) or never_started(name, store, storage, studies):
            return
    raise ClownCarError(taken_line(name, existing, "give this rerun another name with --name"))


def parent_seconds(store_url: str, parent: ParentMatch | None, configs: list[dict[str, Any]]
                   ) -> tuple[float, int] | None:
    """The mean wall-clock seconds of the parent's finished trials of `configs`, and how many there are: what a
    trial of the child, the same configs on the same base, takes. None where the parent's trials cannot be
    matched (`parent` None: another base, an imported parent) or none has both times."""
    found = matched_trials(store_url, parent.name, configs, parent.keys, parent.points, parent.spec) if parent else None
    walls = [(t.datetime_complete - t.datetime_start).total_seconds() for got in found or [] for _, t in got
             if t.datetime_start and t.datetime_complete]
    walls = [w for w in walls if w > 0]  # a trial told to the study at once (an enqueued value) took no time
    return (statistics.fmean(walls), len(walls)) if walls else None


def with_measured_seconds(spec: SweepSpec, measured: tuple[float, int] | None) -> SweepSpec:
    """The child, its `budget.trial_seconds_estimate` the parent's measured time (`parent_seconds`), so that its
    plan and its driver (GPU-hour budget, ETA before a trial ends) start from it rather than the wall-clock cap."""
    if measured is None:
        return spec
    data = spec.to_dict()
    seconds = max(round(measured[0], 1), 0.1)  # the spec wants more than 0
    return spec_from_dict({**data, "budget": {**data["budget"], "trial_seconds_estimate": seconds}})


def estimate_lines(spec: SweepSpec, measured: tuple[float, int] | None) -> list[str]:
    """The plan's lines after its first (merged points, the estimated cost and its basis), the basis naming the
    parent's trials where the estimate is their measured time."""
    from clowncar.orchestrator.sweep_plan import plan_lines

    lines = plan_lines(spec)[1:]
    if measured is not None:
        said = (f"{measured[0]:.1f} s, the mean wall-clock time of the parent's "
                f"{counted(measured[1], 'finished trial')} of these configs")
        lines = [line.replace("budget.trial_seconds_estimate", said, 1) if line.startswith("  per trial: ")
                 else line for line in lines]
    return lines


def imported_notes(metric: str, values: list[list[float]]) -> list[str]:
    """Per config of an imported sweep, what its ranking rests on: ' (q_val_bpb 2.1953, n=1)' for a single run,
    the mean and sd over seeds for a config run several times."""
    return [f" ({metric} {values_text(got)})" if got else "" for got in values]


def child_configs(spec: SweepSpec) -> list[dict[str, Any]]:
    """A rerun child's configs, best first, from its queued points (each config under each seed)."""
    configs: list[dict[str, Any]] = []
    for point in spec.enqueue:
        config = {k: v for k, v in point.items() if k != SEED_KEY}
        if config not in configs:
            configs.append(config)
    return configs


def child_seed_lines(store_url: str, child: SweepSpec) -> list[str]:
    """`seed_lines` for a rerun child that `sweep resume` ran to its end (or `sweep status` shows), as `sweep
    rerun` prints them; none for a sweep that is no rerun. Its
    parent's trials match its configs where it ran on the parent's own base (no --base of another spec), with
    the keys it carried (its configs' keys; a named point's name where it carried one)."""
    from clowncar.store import open_store

    if not child.parent:
        return []
    configs = child_configs(child)
    with open_store(store_url, create=False) as store:
        parent_row = store.get_sweep(child.parent)
    matched = None
    if parent_row and parent_row["source"] != "import":
        from clowncar.orchestrator.stored_sweep import spec_of

        parent = spec_of(parent_row)
        if parent.base_dict() == child.base_dict():
            if any(POINT_KEY in c for c in configs):
                matched = ParentMatch(parent.name, None, None, parent)
            else:
                keys = sorted({k for c in configs for k in c})
                matched = ParentMatch(parent.name, keys, parent.points, parent)
    return seed_lines(store_url, child, configs, matched)


def child_best_note(parents: list[Any]) -> str | None:
    """Under a listing of sweeps (`parents`: each one's parent, None where it has none): a rerun child's best_bpb
    is its luckiest single run, not the mean over seeds it was run for; say where that is."""
    if not any(isinstance(p, str) and p for p in parents):
        return None
    return ("note: a rerun's best_bpb (a sweep with a parent) is its best single run, not a mean over seeds: "
            "`clowncar sweep status NAME` gives each config's mean")


def seed_list(seeds: str | None) -> list[int] | None:
    """`--seeds` as integers; None when not given (the rerun picks seeds the parent did not run)."""
    if seeds is None:
        return None
    try:
        given = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ClownCarError(f"--seeds must be comma-separated integers, not '{seeds}'") from None
    lo, hi = seed_bounds()
    for seed in given:  # refused here, not later as a carried config that does not build on the base
        if not lo <= seed <= hi:
            shown = "2^63-1" if hi == 2**63 - 1 else str(hi)
            raise ClownCarError(f"--seeds: {seed} is not a seed ({lo} to {shown})")
    again = sorted({s for s in given if given.count(s) > 1})
    if again:  # as a spec's `seeds` are: a seed twice is one trial asked for twice
        raise ClownCarError(f"--seeds repeats {', '.join(map(str, again))}")
    if not given:
        raise ClownCarError("--seeds needs at least one seed")
    return given


def seed_bounds() -> tuple[int, int]:
    """The smallest and largest seed `train.seed` takes, read from the config's own field."""
    from clowncar.config import TrainConfig

    meta = TrainConfig.model_fields["seed"].metadata  # pydantic's Ge and Le
    lo = next(m.ge for m in meta if getattr(m, "ge", None) is not None)
    hi = next(m.le for m in meta if getattr(m, "le", None) is not None)
    return int(lo), int(hi)
