"""Names near a mistyped one, for the hint after an error: `unknown config key 'train.seq_len' (did you mean
train.train_seq_len?)`. A user who knows the seed's names (`seq_len`, `iters`, `batch_tokens`) types a part of
ours, so a field that holds the typed name as whole words comes first; then spelling slips (difflib)."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from typing import Any

CUTOFF = 0.6
SHOWN = 3


def nearest(name: str, choices: Iterable[str], shown: int = SHOWN) -> list[str]:
    """Up to `shown` choices other than `name`: those holding it as whole `_`-separated words (the shortest
    first), then the closest spellings."""
    options = list(choices)
    words = f"_{name}_"
    holding = sorted((c for c in options if name and words in f"_{c}_"), key=len)
    close = difflib.get_close_matches(name, options, n=shown, cutoff=CUTOFF)
    out: list[str] = []
    for c in [*holding, *close]:
        if c not in out and c != name:
            out.append(c)
    return out[:shown]


def near_model_keys(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Keys near the unknown last part of `loc` among the fields (by their YAML names) of the pydantic model
    that holds it, found by walking `loc` from `model` through nested models and the values of dicts."""
    node: Any = model
    parts = list(loc[:-1])
    while parts:
        origin = typing.get_origin(node)
        if origin is dict:
            node, _ = typing.get_args(node)[1], parts.pop(0)
        elif hasattr(node, "model_fields") and parts[0] in _field_names(node):
            node = _field_names(node)[parts.pop(0)]
        else:
            return []
    return nearest(str(loc[-1]), _field_names(node)) if hasattr(node, "model_fields") else []


def near_keys(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """`near_model_keys` as whole dotted keys (`budget.max_trials`): the hint for pydantic's `extra_forbidden`
    error at `loc`, for a trial config as for a sweep spec."""
    return [".".join([*map(str, loc[:-1]), k]) for k in near_model_keys(model, loc)]


def _field_names(model: Any) -> dict[str, Any]:
    return {f.alias or name: f.annotation for name, f in model.model_fields.items()}


def hint(near: list[str]) -> str:
    """' (did you mean a, b?)' or nothing."""
    return f" (did you mean {', '.join(near)}?)" if near else ""
