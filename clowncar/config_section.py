"""The base of every trial-config section (`clowncar.config`, `clowncar.config_model`): unknown keys are errors,
assignments are validated, and true/false is never read as a number."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_flag_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads true as 1 for an int field: `train.seed=true` would run seed 1 without a word
        if _takes_bool(cls.model_fields[str(info.field_name)].annotation):
            return value
        return no_flag_for_a_number(value)


def no_flag_for_a_number(value: Any) -> Any:
    """`value`, unless it is true/false where a number goes (config sections, sweep specs' numbers)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not {str(value).lower()}")
    return value


def _takes_bool(annotation: Any) -> bool:
    """Whether a field typed `annotation` holds true/false: bool, Any, a union with one, or Literal[True, ...]."""
    if annotation is bool or annotation is Any or isinstance(annotation, bool):
        return True
    if isinstance(annotation, str | int | float):  # another Literal value
        return False
    return any(_takes_bool(arg) for arg in typing.get_args(annotation))
