"""The values a searched parameter can take, as the sampler (sampler.py `define_space`) suggests them: a `grid` or
`choice` value, an integer of an `int` range on its step, a number of a `float` range (on its step, if any).

Two spec rules read it: a queued config (`enqueue`) that sets a searched key must set one of those values (Optuna
takes a queued value as the trial's suggestion only when its distribution contains it, and dies on a category it
does not list: `'2' not in (1,)`), and a `when:` condition must name values its parameter can take (one it never
takes would leave the conditional parameter unsampled without a word)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from clowncar.orchestrator.spec import ParamSpec


@contextlib.contextmanager
def step_cut_unsaid() -> Iterator[None]:
    """Optuna's two raw warning lines about a range that is no whole number of steps (it cuts the range to its last
    step) kept off the console: `sweep plan` names the range it samples instead (sweep_plan._cut_ranges)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not divisible by `step`")
        yield


def words(value: Any) -> str:
    """A value as its YAML reads: true/false, a quoted string, a number."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def values_words(p: ParamSpec) -> str:
    """The values a parameter takes, as the spec gives them: `choice values (1, 3)`, `int range [1, 9] with
    step 2`."""
    if p.values is not None:
        return f"{'grid' if p.grid is not None else 'choice'} values ({', '.join(words(v) for v in p.values)})"
    kind = "int" if p.int_range is not None else "float"
    lo, hi = p.int_range or p.float_range  # type: ignore[misc]
    extra = f" with step {p.step:g}" if p.step else " (log)" if p.log else ""
    return f"{kind} range [{lo}, {hi}]{extra}"


def distribution(p: ParamSpec) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution `define_space` suggests the parameter from (imported here: a spec without a queue or
    a condition never loads Optuna to be checked)."""
    import optuna

    if p.values is not None:
        return optuna.distributions.CategoricalDistribution(p.values)
    with step_cut_unsaid():  # the check says why a value past the cut is refused
        if p.int_range is not None:
            return optuna.distributions.IntDistribution(p.int_range[0], p.int_range[1], log=p.log,
                                                        step=int(p.step or 1))
        lo, hi = p.float_range  # type: ignore[misc]
        return optuna.distributions.FloatDistribution(lo, hi, log=p.log, step=p.step)


def takes(p: ParamSpec, value: Any) -> bool:
    """Whether the sampler can suggest `value` for `p`, by Optuna's own test of a fixed (queued) value: the
    category's index, or the range and step (`_contains`). A range takes numbers only: Optuna would read the
    string '3' as 3.0 and hand the trial the string."""
    if p.values is None and (isinstance(value, bool) or not isinstance(value, int | float)):
        return False
    dist = distribution(p)
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except ValueError:
        return False


def problem(key: str, p: ParamSpec, value: Any) -> str | None:
    """Why `key = value` is no value of its parameter (None: it is one)."""
    if takes(p, value):
        return None
    if p.values is not None:
        return f"{key} = {words(value)} is not one of its {values_words(p)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key} = {words(value)} is not a number (its {values_words(p)})"
    lo, hi = p.int_range or p.float_range  # type: ignore[misc]
    if not lo <= value <= hi:
        return f"{key} = {words(value)} is outside its {values_words(p)}"
    if p.int_range is not None and value != int(value):
        return f"{key} = {words(value)} is not an integer (its {values_words(p)})"
    return f"{key} = {words(value)} is not on the step of its {values_words(p)}"


def check_conditions(space: dict[str, ParamSpec], points: dict[str, Any]) -> None:
    """Every value a `when:` names must be one its parameter can take: a condition on a value never sampled would
    leave its parameter unsampled there without a word, or never sampled at all. Raises ValueError (a spec error)."""
    from clowncar.orchestrator.spec import POINT_KEY, ParamSpec

    for key, p in space.items():
        for dep, want in (p.when or {}).items():
            cond = ParamSpec(grid=list(points)) if dep == POINT_KEY else space[dep]
            wanted = want if isinstance(want, list) else [want]
            if not wanted:
                raise ValueError(f"space.{key}.when: {dep} lists no value; {key} would never be sampled")
            problems = [why for why in (problem(dep, cond, value) for value in wanted) if why]
            if problems:
                never = f"; {key} would never be sampled" if len(problems) == len(wanted) else ""
                raise ValueError(f"space.{key}.when: {problems[0]}{never}")
