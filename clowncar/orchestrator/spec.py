"""Sweep specs: what to vary, how to sample it, what to optimise, and what a trial may use.

A spec is YAML (`sweeps/*.yaml`) validated by pydantic; every problem is one line naming the key, like the trial
config. Parameters are dotted trial-config keys (`model.crawler_loops`); a `when:` parameter is sampled after the
ones it names, wherever it is listed. Example (tests/orchestrator/test_spec.py loads it):

    name: search
    preset: tiny-cpu
    overrides: {train.iterations: 30}
    points:                    # named configs, one more dimension of the space (`point`)
      wide: {model.model_dim: 96}
      deep: {model.num_flat_layers: 4}
    space:
      model.crawler_loops: {grid: [1, 2, 3]}
      train.matrix_lr: {float: [0.005, 0.05], log: true}
      train.cadence: {choice: [2, 4], when: {model.crawler_loops: [2, 3]}}
    seeds: [1337, 42]
    sampler: tpe               # grid | random | tpe | gp | nsga2 (grid: grid/choice values only, no when:)
    objective: {metric: auto, mode: min}
    constraint: {max_artifact_bytes: 16000000}
    resources: {gpus: 0, cpus: 1}   # placement: ledger (default) | ray, for GPU trials
    max_concurrent: 2
    scheduler: {type: none}    # or {type: asha, metric: train_loss, grace_period: 10, reduction_factor: 2}
    max_failures: 1
    budget: {max_trials: 6, max_gpu_hours: null}

A trial's config is the canonical form of its point (clowncar/config_canonical.py), so grid points that would
compute the same trial have one config hash; the grid runs each such trial once (`sweep plan` lists the merged
points). Seeds are part of the config: every seed stays its own trial.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from clowncar.config import TrialConfig
from clowncar.config_canonical import canonical
from clowncar.config_load import from_dict
from clowncar.data.paths import file_kind
from clowncar.did_you_mean import hint, near_keys
from clowncar.errors import ConfigError
from clowncar.orchestrator.distinct import Distinct, distinct_points, grid_points
from clowncar.orchestrator.space_order import sampling_order
from clowncar.orchestrator.spec_domain import check_conditions
from clowncar.orchestrator.spec_values import Float, Int, Scalar, Value, Values
from clowncar.orchestrator.workers import check_worker
from clowncar.overrides import apply_overrides, deep_merge
from clowncar.strict_yaml import read_mapping

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
AUTO_OBJECTIVE = ("q_sliding_val_bpb", "q_val_bpb")
"""`objective.metric: auto`: post-quant sliding-window BPB, or post-quant BPB when the sliding eval is off."""
SEED_KEY = "train.seed"
POINT_KEY = "point"
"""The parameter that picks one of the spec's named `points` (a bare word: config keys are dotted)."""
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class ParamSpec(_Strict):
    """One searched parameter: exactly one of `grid`, `choice`, `int`, `float`."""

    grid: list[Value] | None = None
    """Explicit values, every one tried (grid sampler) or sampled as categories (other samplers)."""
    choice: list[Value] | None = None
    int_range: tuple[Int, Int] | None = Field(None, alias="int")
    float_range: tuple[Float, Float] | None = Field(None, alias="float")
    log: bool = False
    step: Float | None = Field(None, gt=0)
    when: dict[str, Values] | None = None
    """Only sample this parameter when the named parameters have these values (conditional spaces)."""

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpec:
        kinds = [k for k in ("grid", "choice", "int_range", "float_range") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of grid, choice, int, float")
        values = self.grid if self.grid is not None else self.choice
        if values is not None and (not values or len(values) != len({repr(v) for v in values})):
            raise ValueError("needs at least one value and no repeats")
        bounds = self.int_range or self.float_range
        if bounds is not None:
            lo, hi = bounds
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise ValueError(f"range [{lo}, {hi}] must be finite with low <= high")
            if self.log and lo <= 0:
                raise ValueError("a log range needs low > 0")
            if self.log and self.step:
                raise ValueError("log and step cannot be combined")
            if self.int_range is not None and self.step is not None and not float(self.step).is_integer():
                raise ValueError(f"an int range takes a whole step, not {self.step:g}")
        elif self.log or self.step:
            raise ValueError("log and step apply to int and float ranges only")
        return self

    @property
    def values(self) -> list[Scalar] | None:
        return self.grid if self.grid is not None else self.choice

    def first(self) -> Scalar:
        if self.values is not None:
            return self.values[0]
        return (self.int_range or self.float_range)[0]  # type: ignore[index]


class Objective(_Strict):
    metric: str = "auto"
    """A numeric key of result.json; `auto` = q_sliding_val_bpb, falling back to q_val_bpb."""
    mode: Literal["min", "max"] = "min"


class Constraint(_Strict):
    max_artifact_bytes: Int | None = Field(None, ge=1)
    """Artifact bytes (compressed model + code) must stay at or under this. Each trial is held to one cap: the
    stricter of this and its own quant.size_cap_bytes (None: its own alone); see trainable.size_verdict."""


class Resources(_Strict):
    gpus: Int = Field(0, ge=0, le=64)
    cpus: Float = Field(1, gt=0, le=1024)
    placement: Literal["ledger", "ray"] = "ledger"
    """GPU trials: `ledger` = admitted by the cluster's GPU ledger (whole-node trials first, small trials packed
    node by node; orchestrator/placement.py); `ray` = Ray places each trial as it comes."""


class Scheduler(_Strict):
    """ASHA on training steps. Its first rung must not come before the LR warm-down, and every rung before the last
    step must fall on a step where `metric` is measured (orchestrator/rungs.py)."""

    type: Literal["none", "asha"] = "none"
    metric: Literal["train_loss", "val_bpb", "probe_loss"] = "train_loss"
    grace_period: Int = Field(10, ge=1)
    reduction_factor: Float = Field(2, gt=1)
    max_t: Int | None = Field(None, ge=1)
    """Training steps at which ASHA's top rung sits; None uses train.iterations."""


class Budget(_Strict):
    max_trials: Int | None = Field(None, ge=1, le=100_000)
    """None: the grid size for the grid sampler, else required."""
    max_gpu_hours: Float | None = Field(None, gt=0)
    trial_seconds_estimate: Float | None = Field(None, gt=0)
    """Expected seconds per trial before any finished (default: train.max_wallclock_seconds + 10 %)."""


class WorkerSpec(_Strict):
    module: str = Field("clowncar.worker", pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
    """The program each trial runs (`python -m MODULE trial.json --out DIR`): `clowncar.worker` or a module
    registered as an entry point of the group `clowncar.workers` (orchestrator/workers.py); tests register a tiny
    one."""
    pythonpath: list[str] = Field(default_factory=list)
    """Must stay empty (kept so that specs stored before it was refused still load): see orchestrator/workers.py."""
    launcher: Literal["torchrun", "single"] = "torchrun"
    """Trials with several GPUs: one torchrun rank per GPU, or `single` (one process drives them all)."""
    stall_seconds: Float = Field(1800.0, ge=0)
    """A worker that writes no event for this long is killed and its trial recorded `crashed` (a hung collective
    on a GPU node never ends by itself, and holds its GPUs); 0 = never. The longest silences of a healthy trial
    are its compilation before step 1 and its final evaluation."""


class SweepSpec(_Strict):
    _base: dict[str, Any] | None = PrivateAttr(None)
    _distinct_grid: Distinct | None = PrivateAttr(None)
    _distinct_enqueue: Distinct | None = PrivateAttr(None)

    name: str
    description: str = ""
    preset: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    points: dict[str, dict[str, Value]] = Field(default_factory=dict)
    """Named configs (dotted keys over the base), tried as one more dimension of the space (`point`): layouts
    that are no product of values, such as the seed's eight micro-crawler configs."""
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    seeds: list[Int] = Field(default_factory=list)
    sampler: Literal["grid", "random", "tpe", "gp", "nsga2"] = "tpe"
    """The default is tpe, or grid for a spec with no space and no points (its one config, per seed)."""
    sampler_seed: Int = 0
    startup_trials: Int | None = Field(None, ge=1, le=100_000)
    """TPE and GP: random trials before the model takes over; None = a fifth of the trial budget, 3 to 10
    (orchestrator/suggest.py)."""
    objective: Objective = Field(default_factory=Objective)
    constraint: Constraint = Field(default_factory=Constraint)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: Int = Field(1, ge=1, le=4096)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    max_failures: Int = Field(1, ge=0, le=100)
    budget: Budget = Field(default_factory=Budget)
    worker: WorkerSpec = Field(default_factory=WorkerSpec)
    parent: str | None = None
    """Set by `sweep rerun`: the sweep whose best configs this one reruns."""
    enqueue: list[dict[str, Value]] = Field(default_factory=list)
    """Configs to run first (dotted keys), e.g. the K best of a parent sweep times seeds."""

    @model_validator(mode="after")
    def _coherent(self) -> SweepSpec:
        if not (self.space or self.points or self.enqueue) and "sampler" not in self.model_fields_set:
            # Nothing to search: the spec is one config (once per seed), which only the grid runs without a
            # trial budget; no other sampler would ask anything different.
            self.sampler = "grid"
        if not NAME_RE.match(self.name):
            raise ValueError(f"name '{self.name}' must be 1-64 letters, digits, '_', '-', '.'")
        if SEED_KEY in self.space and self.seeds:
            raise ValueError(f"give seeds either as 'seeds' or as space.{SEED_KEY}, not both")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds repeat")
        if self.budget.max_gpu_hours is not None and self.resources.gpus == 0:
            # A CPU trial uses no GPU-hours: the cap would never stop anything, which is not what was asked.
            raise ValueError("budget.max_gpu_hours needs resources.gpus > 0 (CPU trials use no GPU-hours); "
                             "cap a CPU sweep with budget.max_trials")
        for name, point in self.points.items():
            if not NAME_RE.match(name):
                raise ValueError(f"points: name '{name}' must be 1-64 letters, digits, '_', '-', '.'")
            both = sorted(set(point) & set(self.space))
            if both:
                raise ValueError(f"points.{name} sets {both[0]}, which the space also sets")
            if SEED_KEY in point:  # with seeds or not: a seed is its own parameter (`train.seed`), so that what
                # reads the trials tells one config's seeds apart from other configs (a point is a config)
                raise ValueError(f"points.{name} sets {SEED_KEY}: give seeds as `seeds:` (every point runs at "
                                 "each), not in a point")
        searched = set(self.space) | ({POINT_KEY} if self.points else set())
        for key, p in self.space.items():
            for dep in (p.when or {}):
                if dep not in searched or dep == key:
                    raise ValueError(f"space.{key}.when names '{dep}', which is not another searched parameter")
        sampling_order(self.space)  # a cycle of conditions: one line
        check_conditions(self.space, self.points)
        if self.sampler == "grid":
            for key, p in self.space.items():
                if p.values is None or p.when:
                    raise ValueError(f"space.{key}: the grid sampler needs explicit values (grid/choice), "
                                     "unconditional")
            if self.budget.max_trials and self.budget.max_trials > self.grid_size():
                raise ValueError(f"budget.max_trials ({self.budget.max_trials}) exceeds the grid size "
                                 f"({self.grid_size()})")
        elif self.budget.max_trials is None and not self.enqueue:
            raise ValueError(f"budget.max_trials is required for the {self.sampler} sampler{self._budget_hint()}")
        return self

    def _budget_hint(self) -> str:
        """What a spec refused for its missing trial budget most likely meant: a spec with nothing to search is
        one config; one whose every parameter lists `grid:` values, with no sampler written, is a grid that ran
        into the tpe default (a user who wrote `grid:` did not choose tpe)."""
        if not (self.space or self.points):
            return ("; a spec without a space or points is one config (per seed): leave out `sampler` or give "
                    "`sampler: grid` to run it once")
        if "sampler" not in self.model_fields_set and all(p.grid is not None and not p.when
                                                          for p in self.space.values()):
            return "; `sampler` defaults to tpe: write `sampler: grid` to run the grid"
        return ""

    # -- derived ---------------------------------------------------------------------------------------------
    def search_space(self) -> dict[str, ParamSpec]:
        """The space with the named points first (`point`) and seeds as one more categorical dimension
        (`train.seed`), each parameter after those its `when:` names (space_order.py), else as written."""
        space = {POINT_KEY: ParamSpec(grid=list(self.points))} if self.points else {}
        space.update((key, self.space[key]) for key in sampling_order(self.space))
        if self.seeds:
            space[SEED_KEY] = ParamSpec(grid=list(self.seeds))
        return space

    def grid(self) -> dict[str, list[Scalar]]:
        return {k: list(p.values or []) for k, p in self.search_space().items()}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())  # an empty space: one trial

    def max_trials(self) -> int:
        if self.budget.max_trials:
            return self.budget.max_trials
        if self.sampler == "grid":
            return len(self.distinct_grid().points) + len(self.distinct_enqueue().points)
        return len(self.distinct_enqueue().points)

    def distinct_grid(self) -> Distinct:
        """The grid's points (empty for other samplers) that make distinct trials, in product order, and the
        merged ones (computed once per spec)."""
        if self._distinct_grid is None:
            self._distinct_grid = distinct_points(self, grid_points(self) if self.sampler == "grid" else [])
        return self._distinct_grid

    def distinct_enqueue(self) -> Distinct:
        if self._distinct_enqueue is None:
            self._distinct_enqueue = distinct_points(self, list(self.enqueue))
        return self._distinct_enqueue

    def metrics(self) -> list[str]:
        """Objective names told to Optuna: `objective`, plus `artifact_bytes` for nsga2."""
        return ["objective", "artifact_bytes"] if self.sampler == "nsga2" else ["objective"]

    def base_dict(self) -> dict[str, Any]:
        from clowncar.presets import preset_dict

        base = preset_dict(self.preset) if self.preset else TrialConfig().to_dict()
        nested = {k: v for k, v in self.overrides.items() if isinstance(v, dict)}
        dotted = {k: v for k, v in self.overrides.items() if not isinstance(v, dict)}
        return apply_overrides(deep_merge(base, nested), dotted)

    def trial_config(self, params: dict[str, Any]) -> TrialConfig:
        """The full trial config for one set of sampled parameters (dotted keys, and `point`): the named point's
        keys over the base, then the other parameters, in canonical form (moot fields at fixed values)."""
        values = {k: v for k, v in params.items() if not k.startswith("_")}
        base = self._base if self._base is not None else self.base_dict()
        self._base = base
        if POINT_KEY in values:
            name = values.pop(POINT_KEY)
            if name not in self.points:
                raise ConfigError(f"unknown point '{name}' (the spec's points: {', '.join(self.points)})")
            base = apply_overrides(base, dict(self.points[name]))
        return canonical(from_dict(apply_overrides(base, values)))

    def size_cap(self) -> int:
        """The sweep-wide cap: the constraint, else the base config's quant.size_cap_bytes. A trial's own cap can
        be stricter (trainable.size_verdict)."""
        if self.constraint.max_artifact_bytes:
            return self.constraint.max_artifact_bytes
        return self.trial_config({}).quant.size_cap_bytes

    def expected_trial_seconds(self, params: dict[str, Any] | None = None) -> float:
        """How long a trial (with these sampled parameters) should take: the budget's estimate, else its
        `train.max_wallclock_seconds` + 10 %; 0 (unknown) for parameters that make no valid config, which the
        trial itself reports. Used by the GPU-hour budget, the GPU ledger and the grid order."""
        if self.budget.trial_seconds_estimate:
            return self.budget.trial_seconds_estimate
        try:
            return self.trial_config(params or {}).train.max_wallclock_seconds * 1.1
        except Exception:
            return 0.0

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _error_line(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"sweep spec: unknown key '{key}'" + hint(near_keys(SweepSpec, first["loc"]))
    msg = first["msg"].removeprefix("Value error, ")
    return f"sweep spec key '{key}': {msg}" if key else f"sweep spec: {msg}"


def spec_from_dict(data: Any) -> SweepSpec:
    from clowncar.orchestrator.spec_checks import check_against_config  # it imports this module

    if not isinstance(data, dict):
        raise ConfigError(f"sweep spec must be a mapping, not {type(data).__name__}")
    try:
        spec = SweepSpec.model_validate(data)
        check_worker(spec.worker)
        check_against_config(spec)
    except ValidationError as err:
        raise ConfigError(_error_line(err)) from None
    except (TypeError, ValueError, RecursionError) as err:  # odd inputs pydantic lets through, overrides nested
        # past Python's recursion limit (a YAML file stops at 64 levels; a dict handed in does not)
        raise ConfigError(f"sweep spec: {str(err).splitlines()[0][:200]}") from None
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ConfigError(f"sweep spec {p} not found") from None
        raise ConfigError(f"cannot read sweep spec {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):  # a directory, or a FIFO that would block the read
        raise ConfigError(f"{p} is {file_kind(mode)}, not a sweep spec file (YAML)")
    data = read_mapping(p, holding="a sweep spec (a mapping of keys such as name, preset, space)")
    if data.get("seeds") == []:  # the model cannot tell it from no seeds given (a stored spec holds seeds: [])
        raise ConfigError(f"sweep spec {p}: seeds: [] lists no seed; leave it out to use the config's train.seed")
    from clowncar.orchestrator.spec_checks import check_named_switches

    try:
        spec = spec_from_dict(data)
    except ConfigError as err:
        if _trial_config_keys(data):
            raise ConfigError(f"{err}; {p} looks like a trial config: use `clowncar trial run {p} --out DIR` "
                              "(or `clowncar config show`)") from None
        raise
    check_named_switches(spec)
    return spec


def _trial_config_keys(data: dict[str, Any]) -> bool:
    """Whether a file's keys are a trial config's (sections, maybe a `preset:`), with one section at least."""
    sections = set(data) - {"preset"}
    return bool(sections) and sections <= set(TrialConfig.model_fields)


def with_spec_hint(err: ConfigError, path: Path | None) -> ConfigError:
    """`err` of reading `path` as a trial config, with a pointer to `sweep run` when every key of the file is a
    sweep spec's and none a config section's. Said by the commands (`trial run`, `config show`), not by
    `load_config`: a trial imports the config module, and every module it imports counts in its artifact's bytes."""
    try:
        keys = set(read_mapping(path)) - {"preset"} if path is not None else set()
    except ConfigError:
        return err
    if keys and keys <= set(SweepSpec.model_fields) and not keys & set(TrialConfig.model_fields):
        return ConfigError(f"{err}; {path} looks like a sweep spec: use `clowncar sweep run {path}` (or "
                           "`clowncar sweep plan`)")
    return err
