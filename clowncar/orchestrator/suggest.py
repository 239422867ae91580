"""What the sampler may ask for: one trial per configuration, and how many random trials before TPE models.

A sampled space of categorical (or stepped) parameters is finite, and TPE and the random sampler both suggest
points they have already tried: on the 36-point space of benchmarks/bench_search.py, a 16-trial random search
repeats a point in most runs, and TPE, once it has a favourite, suggests it again and again. Each repeat costs a
full trial and teaches nothing (training is deterministic for a config and seed). So before a trial suggested
in a TPE, random or GP sweep runs, `ask_distinct` compares its canonical config (the seed included: seeds stay
distinct trials) with every trial the study has run, is running or has queued:
- a new config runs;
- a repeat is told FAIL at once, marked `clowncar_duplicate_of` (it never reaches Tune, the store or the budget),
  and the sampler is asked again, up to REASKS times (a random sampler then almost always finds a new point);
- when the sampler insists (TPE around its favourite), the nearest unvisited point of the space runs instead:
  nearest in value ranks, summed over parameters, ties broken by a seeded draw. That keeps the search where the
  sampler wants it and moves it one step, which is what a repeat was asking for;
- when every point has run, the search is over.
Spaces with a continuous parameter are never exhausted: there a sampler that insists (a GP at a bound of its
range) is moved to a seeded random point of the space instead, and the search goes on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from clowncar.errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from clowncar.orchestrator.spec import ParamSpec, SweepSpec

DISTINCT_SAMPLERS = ("tpe", "random", "gp")
"""Samplers held to one trial per config (`ask_distinct`). The grid holds distinct points already; NSGA-II's
offspring are left as its genetic operators make them."""
DUPLICATE = "clowncar_duplicate_of"
"""User attr of a suggestion that repeated an earlier trial's config: the earlier trial's number."""
REASKS = 3
RANDOM_MOVES = 20
"""In a space that cannot be listed, random points tried after the re-asks before the ask gives up (a random
point of a continuous range repeating a trial's config is all but impossible: this only bounds the loop)."""
MAX_POINTS = 100_000
"""Spaces with more points than this are treated as continuous (no nearest-point fallback)."""
CLOSED = "clowncar_closed"  # search.CLOSED (search.py imports this module)
NUMBER = "clowncar_number"
UNASKED = "clowncar_unasked"
"""User attr of a trial whose ask a dead head cut short (resume.py): told FAIL, it never ran and has no whole
point to run again; like a repeat, it reaches neither Tune, the store nor the budget."""


def never_ran(t: optuna.trial.FrozenTrial) -> bool:
    """A trial told FAIL before it could run: a repeated suggestion, or an ask cut short by a dead head."""
    return why_never_ran(t) is not None


def why_never_ran(t: optuna.trial.FrozenTrial) -> str | None:
    """`DUPLICATE` (a repeated suggestion) or `UNASKED` (an ask cut short by a dead head) for a trial told FAIL
    before it could run, else None: how the sweep's summary counts it."""
    if t.user_attrs.get(DUPLICATE) is not None:
        return "DUPLICATE"
    return "UNASKED" if t.user_attrs.get(UNASKED) is not None else None


def trial_params(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's whole point: the enqueued parameters (named points, reruns, re-queued trials), which optuna 5
    keeps in the system attrs and never copies into `params` unless the space suggests them too, and the
    sampled ones."""
    return {**t.system_attrs.get("fixed_params", {}), **t.params}


def startup_trials(spec: SweepSpec) -> int:
    """Random trials before TPE (or GP) models the space: the spec's `startup_trials`, else a fifth of the
    trial budget, between 3 and Optuna's default 10. Optuna's fixed 10 is most of a small budget: on the
    36-point benchmark grid a 14-trial TPE search with 10 start-up trials is a random search with 4 guided
    trials at the end (benchmarks/README.md, "search")."""
    if spec.startup_trials is not None:
        return spec.startup_trials
    return min(10, max(3, round(spec.max_trials() / 5)))


def _values(p: ParamSpec) -> list[Any] | None:
    """Every value a parameter can take, or None when it is continuous (or has too many values)."""
    if p.values is not None:
        return list(p.values)
    if p.int_range is not None:
        lo, hi = p.int_range
        step = int(p.step or 1)
        return None if (hi - lo) // step + 1 > MAX_POINTS else list(range(lo, hi + 1, step))
    if p.float_range is not None and p.step:
        lo, hi = p.float_range
        n = math.floor((hi - lo) / p.step + 1e-9) + 1
        return None if n > MAX_POINTS else [lo + i * p.step for i in range(n)]
    return None


def finite_points(spec: SweepSpec) -> list[dict[str, Any]] | None:
    """Every point of the searched space (conditional parameters only where their condition holds), or None
    when a parameter is continuous or the space is too large to list."""
    space = spec.search_space()
    values = {k: _values(p) for k, p in space.items()}
    if any(v is None for v in values.values()):
        return None
    if math.prod(len(v) for v in values.values() if v) > MAX_POINTS:
        return None
    points: list[dict[str, Any]] = [{}]
    for key, p in space.items():  # search_space order: a conditional parameter after the keys it names
        grown = []
        for point in points:
            if p.when and not all(_matches(point.get(dep), want) for dep, want in p.when.items()):
                grown.append(point)
            else:
                grown.extend({**point, key: v} for v in values[key] or [])
        points = grown
    return points


def _matches(value: Any, want: Any) -> bool:
    return value in want if isinstance(want, list) else value == want


class DistinctAsk:
    """Keeps one sweep from running one config twice (see the module docstring)."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.points = finite_points(spec)
        self._ranks = {k: {repr(v): i / max(1, len(vals) - 1) for i, v in enumerate(vals)}
                       for k, vals in ((k, _values(p) or []) for k, p in spec.search_space().items())}
        self._keys: dict[int, str] = {}
        self._hashes: dict[str, str] = {}

    def key(self, params: dict[str, Any]) -> str:
        """The trial's canonical config hash (the seed included), or the parameters when they make no config."""
        text = repr(sorted(params.items()))
        if text not in self._hashes:
            try:
                self._hashes[text] = self.spec.trial_config(params).content_hash()
            except ConfigError:
                self._hashes[text] = "invalid:" + text
        return self._hashes[text]

    def visited(self, study: optuna.Study, but: int | None = None) -> dict[str, int]:
        """Config key -> trial number of every trial that ran, runs or waits (duplicates and closed trials,
        whose re-run is queued as a copy, left out)."""
        out: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            if t.number == but or never_ran(t) or t.user_attrs.get(CLOSED):
                continue
            if t.state == TrialState.WAITING:
                params = dict(t.system_attrs.get("fixed_params", {}))
            elif t.number in self._keys:
                out.setdefault(self._keys[t.number], int(t.user_attrs.get(NUMBER, t.number)))
                continue
            else:
                params = trial_params(t)
            key = self.key(params)
            if t.state != TrialState.WAITING and t.state != TrialState.RUNNING:
                self._keys[t.number] = key  # finished trials never change
            out.setdefault(key, int(t.user_attrs.get(NUMBER, t.number)))
        return out

    def exhausted(self, study: optuna.Study) -> bool:
        """Whether every point of a finite space has run or is running, and no queued trial waits to be asked: a
        queued config may lie off the space's points (a spec's `enqueue`, a rerun's configs), and a trial queued
        again after a crash repeats a point that counts as visited."""
        if self.points is None or study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return False
        visited = self.visited(study)
        return all(self.key(point) in visited for point in self.points)

    def nearest_unvisited(self, params: dict[str, Any], visited: dict[str, int], salt: int
                          ) -> dict[str, Any] | None:
        """The unvisited point of the space closest to `params` (value ranks, summed), ties by a seeded draw."""
        if self.points is None:
            return None
        best: list[dict[str, Any]] = []
        best_d = math.inf
        for point in self.points:
            if self.key(point) in visited:
                continue
            d = self._distance(params, point)
            if d < best_d - 1e-12:
                best, best_d = [point], d
            elif abs(d - best_d) <= 1e-12:
                best.append(point)
        if not best:
            return None
        return random.Random(f"{self.spec.sampler_seed}:{salt}").choice(best)

    def random_point(self, salt: int) -> dict[str, Any]:
        """A seeded random point of the space (conditional parameters only where their condition holds): where a
        space cannot be listed, what a sampler that insists on one config is moved to."""
        rng = random.Random(f"{self.spec.sampler_seed}:{salt}")
        point: dict[str, Any] = {}
        for key, p in self.spec.search_space().items():
            if p.when and not all(_matches(point.get(dep), want) for dep, want in p.when.items()):
                continue
            values = _values(p)
            if values is not None:
                point[key] = rng.choice(values)
            elif p.int_range is not None:  # too many values to list
                lo, hi = p.int_range
                step = int(p.step or 1)
                point[key] = lo + step * rng.randrange((hi - lo) // step + 1)
            else:
                lo, hi = p.float_range  # type: ignore[misc]
                value = math.exp(rng.uniform(math.log(lo), math.log(hi))) if p.log else rng.uniform(lo, hi)
                value = lo + round((value - lo) / p.step) * p.step if p.step else value
                point[key] = min(hi, max(lo, value))  # exp(log(hi)) may land a rounding error past hi
        return point

    def _distance(self, a: dict[str, Any], b: dict[str, Any]) -> float:
        d = 0.0
        for k in set(a) | set(b):
            if k not in a or k not in b:
                d += 1.0
            else:
                ranks = self._ranks[k]  # a key both points have is a searched parameter (b is a space point)
                ra, rb = ranks.get(repr(a[k])), ranks.get(repr(b[k]))
                d += abs(ra - rb) if ra is not None and rb is not None else float(a[k] != b[k])
        return d


def distinct_configs(spec: SweepSpec) -> list[dict[str, Any]] | None:
    """Every config a sweep whose sampler asks through `DistinctAsk` can run before its space is exhausted: its
    queued configs (`enqueue`, which may lie off the space), then the points of its finite space, one per
    canonical config (`DistinctAsk.key`, the seed included). None when the space is continuous or too large to
    list, or the sampler does not ask through `DistinctAsk`: there the trial budget alone ends the sweep."""
    if spec.sampler not in DISTINCT_SAMPLERS:
        return None
    guard = DistinctAsk(spec)
    if guard.points is None:
        return None
    first: dict[str, dict[str, Any]] = {}
    for point in [*spec.enqueue, *guard.points]:
        first.setdefault(guard.key(point), point)
    return list(first.values())


def trials_to_run(spec: SweepSpec) -> int:
    """The trials a sweep runs: its budget (or queue, or grid), or fewer where a finite space runs out of distinct
    configs first (what `sweep plan` says and the progress line counts down from)."""
    configs = distinct_configs(spec)
    return min(spec.max_trials(), len(configs)) if configs is not None else spec.max_trials()


Ask = Callable[[], tuple[Any, dict[str, Any]]]
"""Asks the sampler for one trial: (the Optuna trial, its parameters with enqueued ones included)."""


def ask_distinct(study: optuna.Study, ask: Ask, guard: DistinctAsk,
                 tell_fail: Callable[[Any], None]) -> tuple[Any, dict[str, Any]] | None:
    """Ask until the trial's config is new; None when every point of a finite space has run.

    `tell_fail(trial)` tells a repeated suggestion FAIL (it is marked DUPLICATE first)."""
    repeats = 0
    while True:
        trial, params = ask()
        visited = guard.visited(study, but=trial.number)
        earlier = visited.get(guard.key(params))
        if earlier is None:
            return trial, params
        trial.set_user_attr(DUPLICATE, earlier)
        tell_fail(trial)
        repeats += 1
        if repeats <= REASKS:
            continue
        alternative = guard.nearest_unvisited(params, visited, salt=trial.number)
        if alternative is None and guard.points is None and repeats <= REASKS + RANDOM_MOVES:
            alternative = guard.random_point(salt=trial.number)  # a continuous space: never exhausted
        if alternative is None:
            return None
        study.enqueue_trial(alternative, skip_if_exists=False)
