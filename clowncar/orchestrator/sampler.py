"""The sweep's Optuna sampler, as its spec names it (the grid run longest trial first), and the define-by-run
search space it samples: `SweepSearch` (search.py) asks through both."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import optuna

from clowncar.orchestrator.spec import SweepSpec
from clowncar.orchestrator.spec_domain import step_cut_unsaid
from clowncar.orchestrator.suggest import startup_trials, trial_params

if TYPE_CHECKING:
    from collections.abc import Callable


class LongestFirstGrid(optuna.samplers.GridSampler):
    """Optuna's grid sampler, with the grid run longest expected trial first (ties keep the seeded shuffle).

    Only the grid's distinct points are kept (`SweepSpec.distinct_grid`: a point that repeats another's trial, or a
    queued config's, is left out). Optuna gives trial k the k-th point of
    its shuffled grid; sorting that list (stably, by each point's
    `train.max_wallclock_seconds`) makes the sweep hand out its long trials first and keep the short ones for
    the end, where they fill the GPUs that the last long trials leave idle (longest-processing-time-first list
    scheduling). In bench_utilization's simulation that alone takes the GPU ledger's utilization from 0.875
    to 0.950. The order is a pure function of the spec and seed (and of this clowncar's canonical configs and
    trial-second estimates); which points ran is read from the trials' parameters, so a sweep resumed under a
    clowncar that orders or merges its grid otherwise still runs each point once."""

    def __init__(self, spec: SweepSpec) -> None:
        super().__init__(spec.grid(), seed=spec.sampler_seed)  # type: ignore[arg-type]
        names = self._param_names
        # Points that would repeat another point's trial (same canonical config) are left out of the grid.
        distinct = {tuple(point[n] for n in names) for point in spec.distinct_grid().points}
        self._all_grids = [p for p in self._all_grids if p in distinct]
        self._n_min_trials = len(self._all_grids)
        self._seconds = {p: spec.expected_trial_seconds(dict(zip(names, p, strict=True))) for p in self._all_grids}
        self._all_grids.sort(key=lambda point: -self._seconds[point])

    def unvisited_seconds(self, study: optuna.Study) -> list[float]:
        """Expected seconds of each grid point no trial has taken yet."""
        return [self._seconds[self._all_grids[i]] for i in self._get_unvisited_grid_ids(study)]

    def _get_unvisited_grid_ids(self, study: optuna.Study) -> list[int]:
        """Ids of the points no finished trial ran (nor, while some are left, a running one), a trial's point read
        from its parameters, not from its `grid_id`: Optuna reads the id, which names another point where the
        grid a sweep was started with differs from the one its spec makes now (another clowncar's canonical
        config merged other points, or estimated other trial seconds). By the id, a resume would run a finished
        point again and skip another. A trial whose ask was cut short (no whole point) counts by its id."""
        index = {point: i for i, point in enumerate(self._all_grids)}
        done: set[int] = set()
        running: set[int] = set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            grid_id = t.system_attrs.get("grid_id")
            if grid_id is None or not self._same_search_space(t.system_attrs["search_space"]):
                continue
            params = trial_params(t)
            whole = all(name in params for name in self._param_names)
            i = index.get(tuple(params[name] for name in self._param_names)) if whole else grid_id
            if i is not None and t.state.is_finished():
                done.add(i)
            elif i is not None and t.state == optuna.trial.TrialState.RUNNING:
                running.add(i)
        every = set(range(len(self._all_grids)))
        return sorted(every - done - running or every - done)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna gives trial k (k below the grid's size) the k-th point without asking whether a trial ran it:
        after a resume that point may be taken (see `_get_unvisited_grid_ids`), and then an untaken one is drawn."""
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs \
                or not 0 <= trial.number < self._n_min_trials:
            super().before_trial(study, trial)
            return
        left = self._get_unvisited_grid_ids(study)  # read once: every call reads all of the study's trials
        if trial.number not in left:
            left = left or list(range(len(self._all_grids)))
            study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", int(self._rng.rng.choice(left)))
            return
        super().before_trial(study, trial)


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    seed = spec.sampler_seed
    if spec.sampler == "grid":
        return LongestFirstGrid(spec)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(spec))
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    with warnings.catch_warnings():  # `group` (needed for conditional spaces) is flagged experimental: noise
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup_trials(spec),
                                          group=any(p.when for p in spec.space.values()))


def define_space(spec: SweepSpec) -> Callable[[Any], dict[str, Any] | None]:
    space = spec.search_space()

    def sample(trial: Any) -> dict[str, Any] | None:
        chosen: dict[str, Any] = {}
        for key, p in space.items():  # search_space order: a conditional param after the keys it names
            if p.when and not all(_matches(chosen.get(dep), want) for dep, want in p.when.items()):
                continue
            if p.values is not None:
                chosen[key] = trial.suggest_categorical(key, p.values)
            else:
                with step_cut_unsaid():  # a range of no whole number of steps: `sweep plan` says so
                    if p.int_range is not None:
                        chosen[key] = trial.suggest_int(key, p.int_range[0], p.int_range[1], step=int(p.step or 1),
                                                        log=p.log)
                    else:
                        lo, hi = p.float_range  # type: ignore[misc]
                        chosen[key] = trial.suggest_float(key, lo, hi, step=p.step, log=p.log)
        return None

    return sample


def _matches(value: Any, want: Any) -> bool:
    return value in want if isinstance(want, list) else value == want
