"""A sweep spec checked against the trial config before anything runs: every searched key is a config key, every
value of every dimension is one its field accepts, and the corners of the space (every point of a small grid,
every distinct point of a large one) build; an ASHA rung before the warm-down or where its metric is not measured,
an objective no trial reports, a grid budget past its distinct trials are one line each (orchestrator/spec.py
calls `check_against_config`)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from clowncar.buildable import check_buildable
from clowncar.errors import ConfigError
from clowncar.orchestrator.rungs import measure_problem, rung_problem
from clowncar.orchestrator.spec import POINT_KEY, SEED_KEY
from clowncar.orchestrator.workers import check_objective
from clowncar.presets import preset_dict

if TYPE_CHECKING:
    from clowncar.orchestrator.spec import ParamSpec, SweepSpec

CHECKED_GRID = 64
"""A grid of at most this many points has every point checked as a whole config before the sweep starts."""


def check_against_config(spec: SweepSpec) -> None:
    """Every searched key must be a trial-config key, and the corners of the space must be valid configs."""
    if spec.preset:  # an unknown preset is the preset's error, not the overrides' (base_dict reads both)
        try:
            preset_dict(spec.preset)
        except ConfigError as err:
            raise ConfigError(f"sweep spec preset: {err}") from None
    try:
        spec.base_dict()
    except ConfigError as err:
        raise ConfigError(f"sweep spec overrides: {err}") from None
    space = spec.search_space()
    corners = [{k: p.first() for k, p in space.items()}]
    corners += [{**corners[0], POINT_KEY: name} for name in list(spec.points)[1:]]
    if spec.sampler == "grid" and spec.grid_size() <= CHECKED_GRID:
        keys = list(space)
        corners = [dict(zip(keys, combo, strict=True))
                   for combo in itertools.product(*(space[k].values or [] for k in keys))]
    _check_each_value(spec, space, corners[0])
    asha = spec.scheduler
    for params in corners:
        try:
            cfg = spec.trial_config(params)
            check_buildable(cfg)
        except ConfigError as err:
            raise ConfigError(_located(spec, params, err)) from None
        problem = (rung_problem(cfg.train, asha.grace_period, asha.max_t)
                   or measure_problem(cfg.train, asha.metric, asha.grace_period, asha.reduction_factor, asha.max_t)
                   if asha.type == "asha" else None)
        problem = problem or _ranks_problem(spec, cfg)
        if problem:
            raise ConfigError(f"sweep spec {problem}" + (f" (at the point {point_words(params)})" if params else ""))
        check_objective(spec.objective.metric, cfg, f"the space point {params}" if params else "the base config")
    _check_enqueued_values(spec, space)
    for point in spec.enqueue:
        try:
            check_buildable(spec.trial_config(point))
        except ConfigError as err:
            raise ConfigError(f"sweep spec enqueue: {err}") from None
    if spec.sampler == "grid" and spec.grid_size() > CHECKED_GRID:  # a smaller grid's points were all corners
        _check_grid_builds(spec)
    if spec.sampler == "grid" and spec.budget.max_trials:
        distinct = spec.distinct_grid()
        if spec.budget.max_trials > len(distinct.points) + len(spec.enqueue):
            raise ConfigError(f"sweep spec key 'budget.max_trials': {spec.budget.max_trials} exceeds the grid's "
                              f"{len(distinct.points)} distinct trials ({len(distinct.merged)} of its points repeat "
                              "another's trial; see `clowncar sweep plan`)")


def _ranks_problem(spec: SweepSpec, cfg: Any) -> str | None:
    """A trial of more than one GPU runs one clowncar.worker process per GPU (torchrun), and the world size must
    divide train.grad_accum: otherwise every trial would be rejected at its start."""
    gpus = spec.resources.gpus
    if (spec.worker.module != "clowncar.worker" or spec.worker.launcher != "torchrun" or gpus < 2
            or cfg.train.grad_accum % gpus == 0):
        return None
    return (f"key 'resources.gpus': a trial on {gpus} GPUs runs {gpus} processes, which must divide "
            f"train.grad_accum ({cfg.train.grad_accum}): set train.grad_accum to a multiple of {gpus}")


def point_words(params: dict[str, Any]) -> str:
    """A point of the space as a user writes it (`model.crawler_loops=1, train.seed=42`), not as a Python dict."""
    return ", ".join(f"{key}={value}" for key, value in params.items())


def check_named_switches(spec: SweepSpec) -> None:
    """ConfigError when the spec's overrides name a seed switch that no trial of the sweep can act on (a DeltaNet
    switch over a model without DeltaNet heads, and no searched key or named point that adds them): every trial
    would reset it (config_canonical), which is not what was asked. The same rule `load_config` applies to a
    trial's file; a switch that acts at some points of the space is accepted. Checked on a user's spec file, not
    on a stored one (a sweep stored before this rule still resumes)."""
    from clowncar.config import TrialConfig
    from clowncar.config_inert import READS, named_inert_switch
    from clowncar.config_load import from_dict

    named = {f"{key}.{sub}" if isinstance(value, dict) else key
             for key, value in spec.overrides.items() for sub in (value if isinstance(value, dict) else [None])}
    searched = set(spec.space) | {key for point in [*spec.points.values(), *spec.enqueue] for key in point}
    fixed = {key for key in named if key in READS and not READS[key] & searched}
    try:
        base = from_dict(spec.base_dict()).to_dict()
    except ConfigError:  # a base that only the searched values make valid: no one config to judge
        return
    problem = named_inert_switch(base, TrialConfig().to_dict(), fixed)
    if problem:
        raise ConfigError(f"sweep spec overrides: {problem}")


def _located(spec: SweepSpec, params: dict[str, Any], err: ConfigError) -> str:
    """The spec's error line for a point whose config fails: the overrides are named when the base config (preset
    and overrides, no searched value) fails the same way, a named point (`points.NAME`) when it fails so alone,
    else the space, with the point's values."""
    if not params or _base_problem(spec) == str(err):
        return f"sweep spec {'overrides' if spec.overrides else 'preset'}: {err}"
    point = params.get(POINT_KEY)
    if point in spec.points and _base_problem(spec, {POINT_KEY: point}) == str(err):  # the point fails alone
        return f"sweep spec key 'points.{point}': {err}"
    with_params = "" if str(err).startswith("unknown config key") else f" (with {params})"
    return f"sweep spec space: {err}{with_params}"


def _base_problem(spec: SweepSpec, params: dict[str, Any] | None = None) -> str | None:
    """The error of the base config (preset and overrides) with only `params` set, or None when it builds."""
    try:
        check_buildable(spec.trial_config(params or {}))
    except ConfigError as err:
        return str(err)
    return None


def _check_grid_builds(spec: SweepSpec) -> None:
    """Every distinct point of a large grid must build: a config that cannot (a param_budget below the smallest
    model) would only be rejected by its trial. A point whose config is invalid in itself stays its trial's to
    report, as before (distinct.py)."""
    for point in spec.distinct_grid().points:
        try:
            cfg = spec.trial_config(point)
        except ConfigError:
            continue
        try:
            check_buildable(cfg)
        except ConfigError as err:
            raise ConfigError(_located(spec, point, err)) from None


def _check_enqueued_values(spec: SweepSpec, space: dict[str, ParamSpec]) -> None:
    """A queued config's value of a searched key (a space parameter, the `seeds:` dimension) must be one that
    parameter can take: Optuna's categorical suggestion dies on a value its choices lack (`'2' not in (1,)`, when
    the trial starts), and its ranges only warn. Other keys are overrides of the queued config; an unknown `point`
    is the queued config's build error (`sweep spec enqueue: unknown point`, which `sweep rerun` words as its own)."""
    from clowncar.orchestrator.spec_domain import problem, takes, words

    for i, point in enumerate(spec.enqueue):
        for key, value in point.items():
            if key not in space or key == POINT_KEY or takes(space[key], value):
                continue
            if key == SEED_KEY and spec.seeds:
                why = f"{key} = {words(value)} is not one of the spec's seeds ({', '.join(map(str, spec.seeds))})"
            else:
                why = problem(key, space[key], value)
            raise ConfigError(f"sweep spec key 'enqueue.{i}': {why}")


def _check_each_value(spec: SweepSpec, space: dict[str, ParamSpec], first: dict[str, Any]) -> None:
    """Every value of every dimension (both ends of a range), the others at their first: a value its own field
    refuses (a seed past 64 bits, a negative cadence) is refused here, not when its trial fails. A value that
    only clashes with another key's (heads vs kv heads) stays the trial's to report: another point may fit it."""
    for key, p in space.items():
        ends = p.values if p.values is not None else list(p.int_range or p.float_range or ())
        for value in ends:
            try:
                spec.trial_config({**first, key: value})
            except ConfigError as err:
                if not str(err).startswith(f"config key '{key}'"):
                    continue
                if key == SEED_KEY and spec.seeds:  # the dimension of `seeds:`, not of the space
                    raise ConfigError(f"sweep spec seeds: {err} (seed {value})") from None
                raise ConfigError(f"sweep spec space: {err} (with {{{key!r}: {value!r}}})") from None
