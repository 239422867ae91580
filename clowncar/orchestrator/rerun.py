"""`sweep rerun`: a child sweep that runs the K best feasible configs of a parent sweep over several seeds."""

from __future__ import annotations

import math
from typing import Any

from clowncar.errors import ClownCarError
from clowncar.orchestrator.spec import SEED_KEY, SweepSpec, spec_from_dict


def best_configs(parent: SweepSpec, store_url: str, top: int) -> list[dict[str, Any]]:
    """The parent's searched parameters of its `top` best feasible `ok` trials (seed excluded, distinct)."""
    import optuna
    from optuna.trial import TrialState

    from clowncar.orchestrator.suggest import trial_params
    from clowncar.orchestrator.tune import open_study

    storage = open_study(store_url)
    try:
        study = optuna.load_study(study_name=parent.name, storage=storage)
    except KeyError:
        raise ClownCarError(f"sweep '{parent.name}' has no Optuna study") from None
    sign = 1 if parent.objective.mode == "min" else -1
    ranked = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                     if not any(c > 0 for c in t.constraints.values()) and math.isfinite(t.values[0])),
                    key=lambda t: sign * t.values[0])
    picked: list[dict[str, Any]] = []
    for t in ranked:
        params = {k: v for k, v in trial_params(t).items() if k != SEED_KEY}
        if params not in picked:
            picked.append(params)
        if len(picked) == top:
            break
    if not picked:
        raise ClownCarError(f"sweep '{parent.name}' has no feasible finished trial to rerun")
    return picked


def child_spec(parent: SweepSpec, store_url: str, top: int, seeds: list[int], name: str | None) -> SweepSpec:
    if not seeds:
        raise ClownCarError("--seeds needs at least one seed")
    configs = best_configs(parent, store_url, top)
    points = [{**c, SEED_KEY: s} for c in configs for s in seeds]
    data = parent.to_dict()
    data.update(name=name or f"{parent.name}-rerun-top{top}", parent=parent.name, space={}, seeds=[],
                sampler="random", enqueue=points, scheduler={"type": "none"},
                budget={**data["budget"], "max_trials": len(points)})
    return spec_from_dict(data)
