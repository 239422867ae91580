"""The value types of a sweep spec's fields: a number that refuses true/false (pydantic would read them as 1/0),
and one parameter value (or a `when:` list of them) that names a list, a mapping or null where it stands instead
of at a member of the union no spec has (`grid.0.bool`)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator

from clowncar.config_section import no_flag_for_a_number

Scalar = bool | int | float | str


Int = Annotated[int, BeforeValidator(no_flag_for_a_number)]
"""Every integer of a spec: true/false is refused, not read as 1/0."""
Float = Annotated[float, BeforeValidator(no_flag_for_a_number)]
"""Every float of a spec: true/false is refused, not read as 1.0/0.0."""


def _what(value: Any) -> str:
    """What a value that is not one value is, as its YAML reads: a list, a mapping, null."""
    if value is None:
        return "null"
    return {list: "a list", tuple: "a list", dict: "a mapping"}.get(type(value), f"a {type(value).__name__}")


def _one_value(value: Any) -> Any:
    # checked before the union: a list, null or .inf would otherwise be named at the union's first member, a key
    # no spec has (`grid.0.bool: Input should be a valid boolean`)
    if not isinstance(value, bool | int | float | str):
        raise ValueError(f"expected a number, string or bool, not {_what(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Input should be a finite number")
    return value


def _values(value: Any) -> Any:
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            try:
                _one_value(item)
            except ValueError as err:
                raise ValueError(f"item {i}: {err}") from None
    elif isinstance(value, bool | int | float | str):
        _one_value(value)
    else:
        raise ValueError(f"expected a value or a list of values, not {_what(value)}")
    return value


Value = Annotated[Scalar, BeforeValidator(_one_value)]
"""One value of a parameter, a point or a queued config; a list, a mapping or null is refused where it stands."""
Values = Annotated[Scalar | list[Scalar], BeforeValidator(_values)]
"""A `when:` condition: one value or a list of them."""
