"""Which points of a sweep make distinct trials.

A point's trial config is canonical (clowncar/config_canonical.py), so two points that would compute the same
trial (`crawler_loops: 1` at cadence 1 and at cadence 3) have one config hash. The first point of each hash, in
the spec's product order, is the one that runs; the others are merged into it before the sweep starts. The
seed is part of the config, so seeds always stay distinct trials.
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


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of the grid (named points, space, seeds), in the spec's product order."""
    grid = spec.grid()
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def distinct_points(spec: SweepSpec, points: list[dict[str, Any]]) -> Distinct:
    """Keep the first point of each trial config hash. A point that makes no valid config is kept as it is: its
    trial reports the error."""
    out = Distinct()
    first: dict[str, dict[str, Any]] = {}
    for point in points:
        try:
            key = spec.trial_config(point).content_hash()
        except ConfigError:
            key = f"invalid:{sorted(point.items())!r}"
        if key in first:
            out.merged.append(Merged(point, first[key]))
        else:
            first[key] = point
            out.points.append(point)
    return out
