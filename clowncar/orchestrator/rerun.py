"""`sweep rerun`: a child sweep that runs the K best feasible configs of a parent sweep over several seeds.

The child's base (preset, overrides, data, budget, resources) is the parent's spec, or a spec the user gives
(`--base`): a short proxy sweep's best configs rerun at full length, or the best configs of a sweep imported from
files, which has no spec. `--keys` carries only some of each config's keys; the rest come from the base."""

from __future__ import annotations

import hashlib
import math
import re
import statistics
from dataclasses import dataclass, field
from itertools import chain, count
from typing import Any

from clowncar.did_you_mean import hint, near_keys, nearest
from clowncar.errors import ClownCarError, ConfigError
from clowncar.orchestrator.spec import POINT_KEY, SEED_KEY, SweepSpec, spec_from_dict
from clowncar.store.frames import flatten


def feasible_results(store_url: str, sweep: str) -> list[Any] | None:
    """The finished trials of `sweep`'s Optuna study with a finite objective and no constraint broken (what a
    rerun ranks and reports); None when the sweep has no study."""
    import optuna
    from optuna.trial import TrialState

    from clowncar.orchestrator.tune import open_study

    try:
        study = optuna.load_study(study_name=sweep, storage=open_study(store_url))
    except KeyError:
        return None
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not any(c > 0 for c in t.constraints.values()) and math.isfinite(t.values[0])]


def best_configs(parent: SweepSpec, store_url: str, top: int, keys: list[str] | None = None,
                 expand: bool = False) -> list[dict[str, Any]]:
    """The parent's `top` best distinct configs (searched parameters, seed excluded) over its feasible `ok`
    trials, by their mean objective (see `pick`); with `expand` (or `keys`), a named point as its dotted keys, so
    that a base without the parent's points can run it."""
    from clowncar.orchestrator.suggest import trial_params

    feasible = feasible_results(store_url, parent.name)
    if feasible is None:
        raise ClownCarError(f"sweep '{parent.name}' has no Optuna study")
    sign = 1 if parent.objective.mode == "min" else -1
    ranked = sorted(feasible, key=lambda t: sign * t.values[0])
    params = [trial_params(t) for t in ranked]
    if expand or keys:
        params = [_expand_point(parent, p) for p in params]
    picked = pick(params, top, keys, [sign * t.values[0] for t in ranked])
    if not picked:
        raise ClownCarError(f"sweep '{parent.name}' has no feasible finished trial to rerun")
    if keys and picked == [{}]:
        raise _nothing_to_carry(parent.name, keys)
    return picked


def _nothing_to_carry(name: str, keys: list[str] | None, renames: dict[str, str] | None = None) -> ClownCarError:
    """None of `keys` is set by the best trials. A key the import reads as another (`renames`, old -> new: the
    Frugendorff CSV's model.mlp_mult is model.crawler_mlp_mult) is named with the key to ask for instead."""
    why = f"({', '.join(keys)})" if keys else "(no clowncar config key in what was imported)"
    moved = [k for k in keys or [] if k in (renames or {})]
    if keys and moved and renames:
        carried_as, instead = _carried_as(keys, renames)
        why = f"({carried_as} for this import: --keys {instead})"
    return ClownCarError(f"the best trials of sweep '{name}' set none of the keys to carry {why}")


def _renamed_key(name: str, keys: list[str], renames: dict[str, str]) -> ClownCarError:
    """Some of `keys` are carried, but one names a key the import reads as another (old -> new in `renames`)."""
    carried_as, instead = _carried_as(keys, renames)
    return ClownCarError(f"--keys: sweep '{name}' was imported, and {carried_as}: --keys {instead}")


def _carried_as(keys: list[str], renames: dict[str, str]) -> tuple[str, str]:
    """`a is carried as b, ...` for the keys the import renames, and the `--keys` value to pass instead."""
    carried_as = ", ".join(f"{k} is carried as {renames[k]}" for k in keys if k in renames)
    return carried_as, ",".join(dict.fromkeys(renames.get(k, k) for k in keys))


def _expand_point(parent: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in params.items() if k != POINT_KEY}
    return {**parent.points[params[POINT_KEY]], **rest} if POINT_KEY in params else rest


def pick(configs: list[dict[str, Any]], top: int, keys: list[str] | None, losses: list[float]
         ) -> list[dict[str, Any]]:
    """The `top` best distinct configs of `ranked_units`."""
    return [config for config, _ in ranked_units(configs, keys, losses)[:top]]


def ranked_units(configs: list[dict[str, Any]], keys: list[str] | None, losses: list[float]
                 ) -> list[tuple[dict[str, Any], list[float]]]:
    """The distinct configs (the seed left out and, given `keys`, only those keys), each with its value per seed,
    lowest mean loss first: a config run at several seeds is judged by all of them, as the report's top-configs
    table judges it, not by its luckiest seed. The seed is the unit, by the report's rule
    (`analysis.seeds.seed_units`): trials of one config at one seed (an imported log's repeats) are one value,
    their mean; a trial that names no seed is its own. `losses` go with `configs` (best first in: ties keep that
    order)."""
    import pandas as pd

    from clowncar.analysis.seeds import seed_units

    kept_of: dict[str, dict[str, Any]] = {}
    rows = []
    for n, (config, loss) in enumerate(zip(configs, losses, strict=True)):
        kept = {k: v for k, v in config.items() if k != SEED_KEY and (keys is None or k in keys)}
        key = repr(sorted(kept.items()))
        kept_of.setdefault(key, kept)
        rows.append({"run_id": str(n), "config_key": key, "label": key, "seed": config.get(SEED_KEY), "bpb": loss})
    if not rows:
        return []
    units = seed_units(pd.DataFrame(rows)).groupby("config_key", sort=False)["bpb"].agg(list)
    ranked = sorted(units.items(), key=lambda kv: statistics.fmean(kv[1]))  # stable: ties keep their order
    return [(kept_of[key], values) for key, values in ranked]


def config_key(dotted: str) -> bool:
    """Whether `dotted` names a trial config field (`model.crawler_loops`); imports also keep keys with no
    clowncar field (`legacy.lr`)."""
    from clowncar.config import TrialConfig

    section, _, name = dotted.partition(".")
    field = TrialConfig.model_fields.get(section)  # every field of a trial config is a section
    return field is not None and name in field.annotation.model_fields


def all_config_keys() -> list[str]:
    from clowncar.config import TrialConfig

    return [f"{sec}.{name}" for sec, f in TrialConfig.model_fields.items() for name in f.annotation.model_fields]


def parse_keys(text: str | None) -> list[str] | None:
    """`--keys a.b,c.d` as a list of config keys; None (every key) when not given. Unknown key -> one line."""
    if text is None:
        return None
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ClownCarError("--keys needs at least one config key (model.crawler_loops, ...)")
    for key in keys:
        if not config_key(key):
            from clowncar.config import TrialConfig

            near = near_keys(TrialConfig, tuple(key.split("."))) or nearest(key, all_config_keys())
            raise ClownCarError(f"--keys: '{key}' is no config key{hint(near)}")
    return keys


@dataclass
class Imported:
    """What `imported_configs` picked: the metric it ranked by, the configs (dotted clowncar keys, best first),
    the stored keys it left out (no clowncar field: the Frugendorff CSV's single `legacy.lr`) and those it read
    as another key (`importers.RERUN_AS`), as `old -> new`."""

    metric: str
    configs: list[dict[str, Any]]
    dropped: list[str]
    renamed: list[str]
    values: list[list[float]] = field(default_factory=list)
    """Per config, its value per seed (`ranked_units`): what the ranking rests on (n=1: a single run)."""


def imported_configs(store_url: str, name: str, top: int, keys: list[str] | None) -> Imported:
    """The configs of the `top` best ok trials of a sweep imported from files, ranked by the store's score
    (`sweep status`'s best), as clowncar config keys."""
    from clowncar.store import open_store
    from clowncar.store.importers import RERUN_AS

    with open_store(store_url, create=False) as store:
        found = store.ranked_trials(name)
    if found is None:
        raise ClownCarError(f"sweep '{name}' has no ok trial with a measured BPB to rerun")
    metric, trials = found
    scores = [float(t["result"][metric]) for t in trials]
    dropped: set[str] = set()
    renamed: dict[str, str] = {}
    configs = []
    for t in trials:
        renames = RERUN_AS.get(((t["result"] or {}).get("provenance") or {}).get("format"), {})
        stored = flatten(t["config"] or {})
        renamed |= {k: renames[k] for k in stored if k in renames}
        config = _without_loops_of_no_crawler({renames.get(k, k): v for k, v in stored.items()})
        dropped |= {k for k in config if not config_key(k)}
        configs.append({k: v for k, v in config.items() if config_key(k)})
    ranked = ranked_units(configs, keys, scores)[:top]
    picked = [config for config, _ in ranked]
    if picked == [{}]:
        raise _nothing_to_carry(name, keys, renamed)
    if keys and any(k in renamed for k in keys):  # carrying the other keys alone would drop it without a word
        raise _renamed_key(name, keys, renamed)
    return Imported(metric, picked, sorted(dropped), sorted(f"{k} -> {v}" for k, v in renamed.items()),
                    [values for _, values in ranked])


def _without_loops_of_no_crawler(config: dict[str, Any]) -> dict[str, Any]:
    """A flat control imported as '0 crawler layers x 0 loops' (the micro-crawler log's 6-flat run): loops of a
    crawler block that does not exist mean nothing, and clowncar's config wants at least one, so the rerun
    leaves them at its default (the stored trial keeps what its log said)."""
    if config.get("model.num_crawler_layers") == 0 and config.get("model.crawler_loops") == 0:
        return {k: v for k, v in config.items() if k != "model.crawler_loops"}
    return config


def default_child_name(parent: str, top: int) -> str:
    """`PARENT-rerun-topK`, made a valid sweep name where the parent's is none (an imported record's name has
    blanks, or runs past 64 characters with the suffix): other characters become '_', and a name too long keeps
    its start and a short hash of the whole, so that two long names that start alike still differ."""
    from clowncar.orchestrator.spec import NAME_RE

    suffix = f"-rerun-top{top}"
    if NAME_RE.match(parent + suffix):
        return parent + suffix
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", parent).lstrip("_.-") or "sweep"
    if len(clean) + len(suffix) > 64:
        tag = "-" + hashlib.sha256(parent.encode()).hexdigest()[:8]
        clean = clean[:64 - len(suffix) - len(tag)] + tag
    return clean + suffix


ENQUEUE_ERROR = "sweep spec enqueue: "
"""How `spec_from_dict` begins the error of a queued point that does not build."""


def child_spec(base: SweepSpec, parent: str, configs: list[dict[str, Any]], seeds: list[int], top: int,
               name: str | None) -> SweepSpec:
    """The child sweep: `base` (the parent's spec or the user's) queueing each config under each seed, and
    nothing else: its space and seeds go, and its named points unless a config picks one (a point left in the
    space would be sampled for a queued config that has none)."""
    if not seeds:
        raise ClownCarError("--seeds needs at least one seed")
    points = [{**c, SEED_KEY: s} for c in configs for s in seeds]
    data = base.to_dict()
    data.update(name=name or default_child_name(parent, top), parent=parent, space={}, seeds=[],
                points=data["points"] if any(POINT_KEY in c for c in configs) else {},
                sampler="random", enqueue=points, scheduler={"type": "none"},
                budget={**data["budget"], "max_trials": len(points)})
    try:
        return spec_from_dict(data)
    except ConfigError as err:
        problem = str(err)
        if not problem.startswith(ENQUEUE_ERROR):
            raise
        # the queued configs are the parent's, not the user's: say so, and what to change (--keys or --base)
        raise ConfigError(f"a config carried from sweep '{parent}' does not build on this base "
                          f"({problem.removeprefix(ENQUEUE_ERROR)}): carry fewer keys with --keys, or give --base a "
                          "spec that fits them") from None


@dataclass(frozen=True)
class ParentMatch:
    """How the parent's trials are read as the configs a rerun carries (as `best_configs` made them): its name,
    the keys carried (`--keys`; None: all), with keys its named points spelled out, and its spec, whose
    config gives the seed of a trial whose point names none (a sweep without `seeds` runs the preset's)."""
    name: str
    keys: list[str] | None = None
    points: dict[str, dict[str, Any]] | None = None
    spec: SweepSpec | None = field(default=None, compare=False)


def _seed_reader(spec: SweepSpec | None) -> Any:
    """The seed a trial of `spec` ran at, from its point: the point's seed, else its named point's, else the base
    config's `train.seed`; None where unknown (no spec)."""
    base = (spec.base_dict().get("train") or {}).get("seed") if spec is not None else None
    named = spec.points if spec is not None else {}

    def seed_of(point: dict[str, Any]) -> Any:
        if SEED_KEY in point:
            return point[SEED_KEY]
        return named.get(point.get(POINT_KEY), {}).get(SEED_KEY, base)

    return seed_of


def seed_values(store_url: str, sweep: str, configs: list[dict[str, Any]], keys: list[str] | None = None,
                points: dict[str, dict[str, Any]] | None = None, spec: SweepSpec | None = None
                ) -> list[list[tuple[Any, float]]] | None:
    """Per config, the (seed, objective) of each feasible finished trial of `sweep` that ran that config; None
    when the sweep has no Optuna study. Without `keys` a config is a whole point, as `pick` reads it (named point
    spelled out with `points`, the seed left out), and a trial matches the config equal to its point. With
    `keys` a config carries only those keys and the child runs the base's values for the rest, so a trial matches
    only where its whole config is the child's (`same_config`): a trial whose other keys differ from the base ran
    another config, neither a seed of this one nor a value of it. That needs the parent's `spec` (its base):
    None without one. A point that names no seed ran at `spec`'s (None without a spec)."""
    found = matched_trials(store_url, sweep, configs, keys, points, spec)
    return None if found is None else [[(seed, t.values[0]) for seed, t in got] for got in found]


def matched_trials(store_url: str, sweep: str, configs: list[dict[str, Any]], keys: list[str] | None = None,
                   points: dict[str, dict[str, Any]] | None = None, spec: SweepSpec | None = None
                   ) -> list[list[tuple[Any, Any]]] | None:
    """`seed_values`'s (seed, trial) pairs: the Optuna trials themselves."""
    from clowncar.orchestrator.suggest import trial_params

    if keys is not None and spec is None:  # the rest of a carried config is the base's, and the base is unknown
        return None
    feasible = feasible_results(store_url, sweep)
    if feasible is None:
        return None
    seed_of = _seed_reader(spec)
    wanted = [same_config(spec, c) for c in configs] if keys is not None and spec is not None else []
    found: list[list[tuple[Any, Any]]] = [[] for _ in configs]
    for t in feasible:
        raw = trial_params(t)
        if wanted:
            ran = same_config(spec, raw)
            match = next((i for i, c in enumerate(wanted) if c is not None and c == ran), None)
        else:
            point = raw
            if points and POINT_KEY in point:
                point = {**points[point[POINT_KEY]], **{k: v for k, v in point.items() if k != POINT_KEY}}
            read = {k: v for k, v in point.items() if k != SEED_KEY}
            match = next((i for i, c in enumerate(configs) if c == read), None)
        if match is not None:
            found[match].append((seed_of(raw), t))
    return found


def same_config(spec: SweepSpec | None, point: dict[str, Any]) -> str | None:
    """What makes two points of `spec` the same config, the seed aside: the content hash of the trial config the
    point runs on `spec`'s base (`SweepSpec.trial_config`: named point spelled out, in canonical form, so that a
    moot key does not tell two configs apart, as a sweep's merged points are told). None where the point builds
    no config (it then matches nothing)."""
    from clowncar.store.store import config_hash

    if spec is None:
        return None
    try:
        data = spec.trial_config({k: v for k, v in point.items() if k != SEED_KEY}).to_dict()
    except (ClownCarError, ValueError):
        return None
    data["train"].pop("seed", None)
    return config_hash(data)


def parent_values(store_url: str, parent: ParentMatch | None, configs: list[dict[str, Any]]
                   ) -> list[list[tuple[Any, float]]] | None:
    return (seed_values(store_url, parent.name, configs, parent.keys, parent.points, parent.spec) if parent
            else None)


SEEDS_PER_RERUN = 3
"""How many seeds a rerun runs by default: the usual bar for a record is the mean of 3 runs."""
SEED_ORDER = (1337, 42, 2025, 314, 999, 7)
"""The default seeds, in the order they are taken, then 1, 2, 3, ...: the first SEEDS_PER_RERUN at which the
parent ran none of the configs. 1337 is every preset's train.seed, so a preset's sweep reruns at 42, 2025, 314."""


@dataclass(frozen=True)
class SeedPlan:
    """The rerun's seeds. `left_out`: default seeds skipped because the parent ran configs at them; `repeats`: a
    seed given with --seeds at which the parent ran configs; both map the seed to those configs (1 = the best)."""
    seeds: list[int]
    left_out: dict[Any, list[int]]
    repeats: dict[Any, list[int]]


def parent_seeds(store_url: str, parent: ParentMatch | None, configs: list[dict[str, Any]]) -> list[set[Any]]:
    """Per config, the seeds at which the parent ran it (empty where its trials cannot be matched)."""
    found = parent_values(store_url, parent, configs)
    return [{s for s, _ in got} - {None} for got in found] if found is not None else [set() for _ in configs]


def plan_seeds(ran: list[set[Any]], given: list[int] | None) -> SeedPlan:
    """The seeds to rerun `ran`'s configs at. Given seeds are kept as given (a seed at which the parent ran a
    config is a repeat of that trial: named, and left out of the summary's mean); by default, the first
    SEEDS_PER_RERUN seeds of SEED_ORDER, then 1, 2, ..., at which the parent ran none of the configs. A config's
    value at the seed it ran at in the parent is the value it was picked by, biased by the picking (the winner's
    curse), and the same seed on the same base repeats that trial, so a rerun that wants fresh evidence skips it.
    One list for every config, so that the configs stay paired by seed."""
    def at(seed: Any) -> list[int]:
        return [i for i, seeds in enumerate(ran, start=1) if seed in seeds]

    if given is not None:
        return SeedPlan(list(given), {}, {s: at(s) for s in given if at(s)})
    seeds: list[int] = []
    left_out: dict[Any, list[int]] = {}
    for seed in chain(SEED_ORDER, count(1)):  # an endless supply: the loop ends when enough are fresh
        if len(seeds) == SEEDS_PER_RERUN:
            break
        if seed in seeds or seed in left_out:  # 7 is in SEED_ORDER and in the count
            continue
        if at(seed):
            left_out[seed] = at(seed)
        else:
            seeds.append(seed)
    return SeedPlan(seeds, left_out, {})
