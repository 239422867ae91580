"""Which points of a sweep make distinct trials.

A point's trial config is canonical (clowncar/config_canonical.py), so two points that would compute the same
trial (`crawler_loops: 1` at cadence 1 and at cadence 3) have one config hash. The first point of each hash, in
the spec's product order, is the one that runs; the others are merged into it before the sweep starts. The
seed is part of the config, so seeds always stay distinct trials.

A grid sweep's queued configs (`enqueue`) run before its grid (the driver enqueues them before the grid sampler
hands out a point), so a grid point that computes a queued config's trial is merged into that config: the same
merge, with the queue first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clowncar.errors import ConfigError

if TYPE_CHECKING:
    from clowncar.orchestrator.spec import SweepSpec


@dataclass(frozen=True)
class Merged:
    point: dict[str, Any]
    """A point that would repeat another's trial ..."""
    same_as: dict[str, Any]
    """... this one's, which runs."""


@dataclass(frozen=True)
class Distinct:
    points: list[dict[str, Any]] = field(default_factory=list)
    """The points that run, in the order given."""
    merged: list[Merged] = field(default_factory=list)


class GridPoints(list):  # type: ignore[type-arg]
    """The grid's points (`grid_points`): `distinct_points` merges them after the spec's queued configs."""


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of the grid (named points, space, seeds), in the spec's product order."""
    grid = spec.grid()
    return GridPoints(dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values()))


def _key(spec: SweepSpec, point: dict[str, Any]) -> str:
    try:
        return spec.trial_config(point).content_hash()
    except ConfigError:
        return f"invalid:{sorted(point.items())!r}"


def distinct_points(spec: SweepSpec, points: list[dict[str, Any]]) -> Distinct:
    """Keep the first point of each trial config hash. A point that makes no valid config is kept as it is: its
    trial reports the error. The grid's points (`grid_points`) come after the spec's queued configs: one that
    repeats a queued config's trial is merged into that config (which runs, and is not in the result's points)."""
    out = Distinct()
    first: dict[str, dict[str, Any]] = {}
    if isinstance(points, GridPoints):
        for queued in spec.enqueue:
            first.setdefault(_key(spec, queued), queued)
    for point in points:
        key = _key(spec, point)
        if key in first:
            out.merged.append(Merged(point, first[key]))
        else:
            first[key] = point
            out.points.append(point)
    return out
