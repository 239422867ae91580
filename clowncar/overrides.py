"""Dotted overrides (`model.crawler_loops=3`) and deep merges on nested config dicts, before any validation:
how a preset, a file, a sweep's base and a trial's point combine into one dict for `clowncar.config_load.from_dict`."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from clowncar.errors import ConfigError
from clowncar.strict_yaml import yaml_load


def parse_override(text: str) -> tuple[list[str], Any]:
    """`model.crawler_loops=3` -> (['model', 'crawler_loops'], 3). Values are parsed as YAML scalars."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    items = ([parse_override(o) for o in overrides] if isinstance(overrides, list)
             else [(k.split("."), v) for k, v in overrides.items()])
    for path, value in items:
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"unknown config key '{'.'.join(path)}'")
            node = child
        node[path[-1]] = value
    return out


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
