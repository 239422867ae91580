"""Replay a search on a logged grid, without training: the benchmark engine of bench_search.py.

Every grid trial (a config at a seed) is in the store with its final score, its own recorded seconds (training,
evaluation, quantization) and its intermediate values (train loss per step, probe loss, evals). A replayed
search asks the orchestrator's own sampler (`make_sampler`, `define_space`, the one-trial-per-config rule of
`suggest.py`) for configs, and "runs" each by reading the logged trial: it reaches each ASHA rung after its
logged training seconds to that step (times a random factor, so results arrive in different orders), ASHA
decides as Tune's bracket decides (same cutoff, same rung bookkeeping, rungs from `rungs.asha_rungs` below the
last step as `asha.FinishingASHA` keeps them), and Optuna is told COMPLETE or PRUNED as `SweepSearch` tells it.

Cost: trial-seconds, the sum over the search's trials of training + eval + quantization seconds (a pruned
trial: its training seconds up to the rung that stopped it), plus the rerun of the search's top 3 configs at
the other seed. The pick is the rerun config with the best 2-seed mean; it succeeds when its 2-seed mean is
within one pooled seed-sd of the grid's best 2-seed mean.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METRICS = ("train_loss", "probe_loss", "val_bpb")


@dataclass(frozen=True)
class Run:
    """One logged grid trial."""

    config: tuple[Any, ...]
    seed: int
    final: float
    cost: float
    train_at: dict[int, float]
    """step -> training seconds spent by the end of that step"""
    values: dict[str, dict[int, float]]
    """metric -> step -> value measured at that step"""
    wall: float = math.nan
    """the trial's wall-clock seconds, start to end (start-up, probes and intermediate evals included)"""
    startup: float = 0.0
    """the part of `wall` before training: wall - trial-seconds - intermediate evals and probes"""
    eval_each: float = 0.0
    """seconds of one eval (half the final raw + quantized evaluation)"""

    def wall_until(self, step: int) -> float:
        """Wall-clock seconds of a trial stopped after `step`: start-up, training, the evals made by then."""
        evals = sum(1 for s in self.values.get("val_bpb", {}) if s <= step)
        return self.startup + self.train_at[step] + evals * self.eval_each

    def observed(self, metric: str, step: int) -> tuple[int, float] | None:
        """The first measurement of `metric` at or after `step` (what ASHA's metric clock sees at a rung)."""
        steps = [s for s in self.values.get(metric, {}) if s >= step]
        if not steps:
            return None
        s = min(steps)
        return s, self.values[metric][s]


@dataclass
class Grid:
    params: list[str]
    seeds: list[int]
    runs: dict[tuple[tuple[Any, ...], int], Run]

    @property
    def configs(self) -> list[tuple[Any, ...]]:
        return sorted({c for c, _ in self.runs})

    def complete(self) -> bool:
        return all((c, s) in self.runs for c in self.configs for s in self.seeds)

    def mean(self, config: tuple[Any, ...]) -> float:
        return statistics.fmean(self.runs[config, s].final for s in self.seeds)

    @property
    def best(self) -> tuple[tuple[Any, ...], float]:
        c = min(self.configs, key=self.mean)
        return c, self.mean(c)

    def pooled_sd(self) -> tuple[float, int]:
        """The seed sd pooled over configs (residual of final ~ config) and its degrees of freedom."""
        ss, df = 0.0, 0
        for c in self.configs:
            v = [self.runs[c, s].final for s in self.seeds]
            m = statistics.fmean(v)
            ss += sum((x - m) ** 2 for x in v)
            df += len(v) - 1
        return math.sqrt(ss / df), df

    def total_cost(self) -> float:
        return sum(r.cost for r in self.runs.values())

    def total_wall(self) -> float:
        return sum(r.wall for r in self.runs.values())

    def near_best(self, margin: float) -> list[tuple[Any, ...]]:
        best = self.best[1]
        return [c for c in self.configs if self.mean(c) - best <= margin + 1e-12]

    def rank_correlation(self, metric: str, step: int) -> float | None:
        """Spearman's rho over every grid trial between its `metric` at `step` and its final score."""
        from scipy.stats import spearmanr

        pairs = [(o[1], r.final) for r in self.runs.values() if (o := r.observed(metric, step)) and o[0] == step]
        if len(pairs) < 4:
            return None
        return float(spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic)

    def steps_logged(self, metric: str) -> list[int]:
        return sorted(set.intersection(*(set(r.values.get(metric, {})) for r in self.runs.values())))


def load_grid(store_url: str, sweep: str, params: list[str], objective: str) -> Grid:
    """The grid's ok trials, their seconds and their intermediate values, from the store."""
    from clowncar.store import open_store

    with open_store(store_url, create=False) as st:
        trials = st.trials_frame(sweeps=[sweep], status="ok")
        steps, probes, evals = (st.steps_frame(sweeps=[sweep]), st.probes_frame(sweeps=[sweep]),
                                st.evals_frame(sweeps=[sweep]))
    evals = evals[(evals["weights"] == "raw") & (evals["mode"] == "standard")]
    by_uid: dict[str, dict[str, dict[int, float]]] = {}
    for frame, col in ((steps, "train_loss"), (probes, "probe_loss"), (evals, "val_bpb")):
        for uid, step, v in zip(frame["trial_uid"], frame["step"], frame[col], strict=True):
            by_uid.setdefault(str(uid), {}).setdefault(col, {})[int(step)] = float(v)
    train_at: dict[str, dict[int, float]] = {}
    for uid, step, ms in zip(steps["trial_uid"], steps["step"], steps["elapsed_ms"], strict=True):
        train_at.setdefault(str(uid), {})[int(step)] = float(ms) / 1000.0
    runs = {}
    for _, t in trials.iterrows():
        uid = str(t["trial_uid"])
        config = tuple(_plain(t[p]) for p in params)
        seed = int(t["train.seed"])
        cost = float(t["train_seconds"]) + float(t["eval_seconds"]) + float(t.get("quant_seconds") or 0.0)
        values = by_uid.get(uid, {})
        wall = (t["ended_at"] - t["started_at"]).total_seconds()
        eval_each = float(t["eval_seconds"]) / 2
        startup = max(0.0, wall - cost - eval_each * len(values.get("val_bpb", {})))
        runs[config, seed] = Run(config, seed, float(t[objective]), cost, train_at.get(uid, {}), values, wall,
                                 startup, eval_each)
    seeds = sorted({s for _, s in runs})
    return Grid(params, seeds, runs)


def _plain(v: Any) -> Any:
    """A config value as the spec writes it (numpy scalars to Python; 2.0 stays a float, 2 an int)."""
    if hasattr(v, "item"):
        v = v.item()
    return v


# -- ASHA, as Tune's bracket decides ------------------------------------------------------------------------------


class Bracket:
    """Tune's `_Bracket` (one bracket, stop_last_trials=False) in plain Python: at the largest rung a report has
    reached and not yet recorded, a trial whose reward is below the (1 - 1/rf) percentile of the rewards recorded
    there stops. Reward = -value (mode min)."""

    def __init__(self, rungs: list[int], rf: float) -> None:
        self.rf = rf
        self.rungs = sorted(rungs, reverse=True)
        self.recorded: dict[int, dict[int, float]] = {r: {} for r in rungs}

    def stop(self, trial: int, step: int, value: float) -> bool:
        reward = -value
        for milestone in self.rungs:
            rec = self.recorded[milestone]
            if step >= milestone and trial in rec:
                return False
            if step < milestone or trial in rec:
                continue
            cutoff = np.nanpercentile(list(rec.values()), (1 - 1 / self.rf) * 100) if rec else None
            rec[trial] = reward
            return cutoff is not None and bool(reward < cutoff)
        return False


@dataclass(frozen=True)
class Asha:
    metric: str = "probe_loss"
    grace: int = 12
    rf: float = 2.0

    def rungs(self, last_step: int) -> list[int]:
        """The rungs FinishingASHA can stop a trial at: Tune's, below the last training step."""
        from clowncar.orchestrator.rungs import asha_rungs

        return [r for r in asha_rungs(self.grace, self.rf, last_step) if r < last_step]

    def label(self) -> str:
        return f"ASHA {self.metric} grace {self.grace} rf {self.rf:g}"


@dataclass(frozen=True)
class Method:
    name: str
    sampler: str
    asha: Asha | None = None
    startup: int | None = None
    """TPE start-up trials; None = the orchestrator's rule (suggest.startup_trials)."""
    distinct: bool = True
    """The orchestrator's one-trial-per-config rule; False = Optuna's suggestions as they come."""


@dataclass
class Outcome:
    pick: tuple[Any, ...] | None
    gap: float
    success: bool
    cost: float
    trials: int
    pruned: int
    repeats: int
    """suggestions that repeated a config (run again without the distinct rule, replaced with it)"""
    wall: float = math.nan
    """the same search's cost in wall-clock seconds per trial (start-up included): a sensitivity check"""


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    kind: str = field(compare=False)
    trial: Any = field(compare=False)
    step: int = field(compare=False, default=0)


def search_spec(base: dict[str, Any], method: Method, budget: int, rep: int, seed: int) -> Any:
    """The spec a live run of `method` would use: the grid's, one seed, the method's sampler and scheduler."""
    from clowncar.orchestrator.spec import spec_from_dict

    data = {k: v for k, v in base.items() if k not in ("seeds", "description")}
    data.update(name=f"replay-{rep}", sampler=method.sampler, sampler_seed=rep,
                overrides={**base["overrides"], "train.seed": seed}, budget={"max_trials": budget})
    if method.startup is not None:
        data["startup_trials"] = method.startup
    if method.asha is not None:
        data["scheduler"] = {"type": "asha", "metric": method.asha.metric, "grace_period": method.asha.grace,
                             "reduction_factor": method.asha.rf}
    return spec_from_dict(data)


def replay(grid: Grid, base: dict[str, Any], method: Method, budget: int, rep: int, concurrency: int = 2,
           top: int = 3, jitter: float = 0.15, seed: int | None = None) -> Outcome:
    """One replayed search (see the module docstring): sampler seed `rep`; the search runs at `seed` (default:
    one of the grid's seeds drawn by `rep`) and the top configs are rerun at the other."""
    import optuna
    from optuna.trial import TrialState

    from clowncar.orchestrator.sampler import define_space, make_sampler
    from clowncar.orchestrator.search import tell
    from clowncar.orchestrator.suggest import DistinctAsk, ask_distinct

    rng = random.Random(f"replay:{rep}")
    drawn = rng.choice(grid.seeds)
    seed = drawn if seed is None else seed
    other = next(s for s in grid.seeds if s != seed)
    spec = search_spec(base, method, budget, rep, seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=make_sampler(spec))
    space = define_space(spec)
    guard = DistinctAsk(spec) if method.distinct else None
    last_step = spec.trial_config({}).train.iterations
    rungs = method.asha.rungs(last_step) if method.asha else []
    bracket = Bracket(rungs, method.asha.rf) if method.asha else None

    def ask() -> tuple[Any, dict[str, Any]]:
        t = study.ask()
        space(t)
        return t, dict(t.params)

    events: list[_Event] = []
    seq, now, cost, wall, asked, pruned, repeats, free = 0, 0.0, 0.0, 0.0, 0, 0, 0, concurrency
    seen: set[tuple[Any, ...]] = set()
    exhausted = False
    while True:
        while free > 0 and asked < budget and not exhausted:
            got = (ask_distinct(study, ask, guard, lambda t: tell(study, t, None, TrialState.FAIL))
                   if guard is not None else ask())
            if got is None:
                exhausted = True
                break
            trial, params = got
            config = tuple(params[p] for p in grid.params)
            repeats += config in seen
            seen.add(config)
            run = grid.runs[config, seed]
            pace = math.exp(rng.gauss(0.0, jitter))  # this trial's speed: results arrive in varied orders
            for r in rungs:
                obs = run.observed(method.asha.metric, r) if method.asha else None
                if obs is not None and obs[0] < last_step:
                    heapq.heappush(events, _Event(now + run.train_at[obs[0]] * pace, seq, "rung", (trial, run),
                                                  obs[0]))
                    seq += 1
            heapq.heappush(events, _Event(now + run.cost * pace, seq, "final", (trial, run)))
            seq += 1
            asked += 1
            free -= 1
        if not events:
            break
        ev = heapq.heappop(events)
        trial, run = ev.trial
        if study._storage.get_trial(trial._trial_id).state.is_finished():
            continue  # pruned earlier: its later events never happen
        now = ev.time
        if ev.kind == "rung":
            assert bracket is not None and method.asha is not None
            if bracket.stop(trial.number, ev.step, run.values[method.asha.metric][ev.step]):
                tell(study, trial, None, TrialState.PRUNED)
                cost += run.train_at[ev.step]
                wall += run.wall_until(ev.step)
                pruned += 1
                free += 1
            continue
        tell(study, trial, run.final, TrialState.COMPLETE)
        cost += run.cost
        wall += run.wall
        free += 1
    return _pick(grid, study, seed, other, cost, wall, asked, pruned, repeats, top)


def _pick(grid: Grid, study: Any, seed: int, other: int, cost: float, wall: float, asked: int, pruned: int,
          repeats: int, top: int) -> Outcome:
    """Rerun the search's `top` configs at the other seed; the pick has the best 2-seed mean."""
    from optuna.trial import TrialState

    best: dict[tuple[Any, ...], float] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        config = tuple(t.params[p] for p in grid.params)
        best[config] = min(best.get(config, math.inf), float(t.value))
    finalists = sorted(best, key=best.__getitem__)[:top]
    cost += sum(grid.runs[c, other].cost for c in finalists)
    wall += sum(grid.runs[c, other].wall for c in finalists)
    if not finalists:
        return Outcome(None, math.inf, False, cost, asked, pruned, repeats, wall)
    pick = min(finalists, key=lambda c: grid.runs[c, seed].final + grid.runs[c, other].final)
    gap = grid.mean(pick) - grid.best[1]
    sd, _ = grid.pooled_sd()
    return Outcome(pick, gap, gap <= sd + 1e-12, cost, asked, pruned, repeats, wall)


def summarize(grid: Grid, outcomes: list[Outcome]) -> dict[str, float]:
    """Share of runs within one seed-sd of the grid's best, median cost as a share of the grid, and more."""
    total = grid.total_cost()
    shares = [o.cost / total for o in outcomes]
    walls = [o.wall / grid.total_wall() for o in outcomes]
    return {"runs": len(outcomes), "success": sum(o.success for o in outcomes) / len(outcomes),
            "median_cost": statistics.median(shares), "max_cost": max(shares),
            "median_wall": statistics.median(walls),
            "median_gap": statistics.median(o.gap for o in outcomes),
            "trials": statistics.fmean(o.trials for o in outcomes),
            "pruned": statistics.fmean(o.pruned for o in outcomes),
            "repeats": statistics.fmean(o.repeats for o in outcomes)}
