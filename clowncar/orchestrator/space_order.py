"""The order a sweep's searched parameters are sampled in: every parameter after the ones its `when:` names.

A conditional parameter is decided from the values already chosen, so whatever walks the space one parameter at a
time (the define-by-run space, the listing of a finite space, a seeded random point) must reach a `when:` key
before the parameter it conditions; a spec may list them in any order. The order is stable: a space already
written that way keeps its written order, so the trials of a study begun before keep their parameters' order, and
a grid (which refuses `when:`) keeps its product order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clowncar.orchestrator.spec import ParamSpec


def sampling_order(space: dict[str, ParamSpec]) -> list[str]:
    """The keys of `space`, each after every key of the space its `when:` names, else as written. A key a
    condition names outside `space` (the named `point`) counts as already placed. ValueError (one line) when the
    conditions form a cycle."""
    placed: list[str] = []
    left = list(space)
    while left:
        # The first key (as written) whose conditions are all decided; quadratic, and a space has a few keys.
        ready = next((k for k in left if all(dep not in left for dep in space[k].when or {})), None)
        if ready is None:
            raise ValueError(f"the space's when: conditions form a cycle ({' -> '.join(_cycle(space, left))}): "
                             "none of these parameters can be sampled first")
        placed.append(ready)
        left.remove(ready)
    return placed


def _cycle(space: dict[str, ParamSpec], left: list[str]) -> list[str]:
    """One cycle among the keys `left` (each names another of them): followed from the first until a key repeats."""
    path = [left[0]]
    while True:
        nxt = next(dep for dep in space[path[-1]].when or {} if dep in left)
        if nxt in path:
            return [*path[path.index(nxt):], nxt]
        path.append(nxt)
