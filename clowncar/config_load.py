"""Reading a trial config: a preset, then a YAML/JSON file (or a trial's own record), then dotted overrides,
validated into a `TrialConfig`; a value pydantic refuses becomes one `ConfigError` line that names the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from clowncar.config import TrialConfig
from clowncar.did_you_mean import hint, near_keys
from clowncar.errors import ConfigError
from clowncar.overrides import apply_overrides, deep_merge
from clowncar.strict_yaml import read_mapping


def _field_path(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The part of a pydantic error location that names config keys: a union's branch (`int`, `literal['auto']`)
    is pydantic's, not a key a user could write."""
    model: Any = TrialConfig
    path: list[str] = []
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not isinstance(part, str) or fields is None or part not in fields:
            break
        path.append(part)
        model = fields[part].annotation
    return tuple(path)  # empty for the config as a whole (a check across sections)


def _error_line(err: ValidationError) -> str:
    errors = err.errors()
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        value = first.get("input")
        if isinstance(value, dict) and value:  # an unknown section: name the first key inside it too
            key = f"{key}.{next(iter(value))}"
        return f"unknown config key '{key}'" + hint(near_keys(TrialConfig, first["loc"]))
    path = _field_path(first["loc"])
    key = ".".join(path)
    if first["type"] == "model_type":  # `model:` left empty, or a number where a section goes
        got = first.get("input")
        return f"config section '{key}' must be a mapping of keys, got {'null' if got is None else repr(got)}"
    # a value no branch of a union takes (`model_dim: 1e3` is neither an integer nor 'auto'): every branch's reason
    msgs = [e["msg"].removeprefix("Value error, ") for e in errors if _field_path(e["loc"]) == path]
    msg = "; or ".join(dict.fromkeys(msgs))
    if len(msgs) > 1 and "input" in first:
        msg += f" (got {first['input']!r})"
    return f"config key '{key}': {msg}" if key else msg


def from_dict(data: dict[str, Any]) -> TrialConfig:
    try:
        return TrialConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_error_line(err)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """`read_mapping`, with a hint when the missing file is a preset's name (`config show clowncar-seed`)."""
    from clowncar.presets import PRESETS

    if str(path) in PRESETS and not Path(path).exists():
        raise ConfigError(f"cannot read {path}: no such file (did you mean --preset {path}?)")
    return read_mapping(path)


SECTIONS = tuple(TrialConfig.model_fields)
"""data, model, train, quant, eval: every config a trial record holds has each of them (`to_dict()` wrote it)."""
NOT_A_RECORD = ("a trial record (trial.json, result.json, `config show --json`) holds a whole config (every section: "
                f"{', '.join(SECTIONS)}) and no preset or section beside it")


def embedded_config(data: dict[str, Any]) -> dict[str, Any] | None:
    """The config a trial record holds: an orchestrator trial.json's `config` (`config show --json`'s too), a
    trial's result.json's `provenance.config` (so `trial run t1/result.json --set train.seed=42` reruns that trial
    with another seed). Each holds a whole config (`to_dict()`, every section) and none of a config file's keys
    beside it: anything else is a config file, read (and refused) key by key."""
    if any(key in data for key in ("preset", *SECTIONS)):
        return None
    recorded = data["provenance"].get("config") if isinstance(data.get("provenance"), dict) else None
    for config in (data.get("config"), recorded):
        if isinstance(config, dict) and all(isinstance(config.get(s), dict) for s in SECTIONS):
            return config
    return None


def load_config(path: str | Path | None = None, preset: str | None = None,
                overrides: list[str] | dict[str, Any] | None = None) -> TrialConfig:
    """Preset, then file, then overrides. A file may name its own base with a top-level `preset:` key; a file
    that names another base than `preset` is refused (neither would be the config the other asked for), and so is
    a preset beside a trial record (`embedded_config`), whose config is whole: only overrides change it."""
    from clowncar.presets import preset_dict

    data = read_config_file(path) if path is not None else {}
    if (embedded := embedded_config(data)) is not None:  # a trial's own record: its config whole
        if preset:
            raise ConfigError(f"--preset {preset} with {path}: a trial record holds its whole config, which a preset "
                              "cannot change; drop --preset (change keys with --set)")
        cfg = from_dict(apply_overrides(embedded, overrides or []))
        _refuse_named_inert_switch(cfg, apply_overrides({}, overrides or []))  # its own were checked when it ran
        return cfg
    for key in ("config", "provenance"):  # a record's key in a config file, or a record cut short (a result.json
        if key in data:  # whose config lacks a section): said so, not as the first result field it meets
            raise ConfigError(f"unknown config key '{key}': {NOT_A_RECORD}")
    file_preset = data.pop("preset", None)
    if file_preset is not None and not isinstance(file_preset, str):
        raise ConfigError(f"{path}: preset must be a name, not {type(file_preset).__name__}")
    if preset and file_preset and preset != file_preset:
        raise ConfigError(f"--preset {preset} conflicts with {path}'s `preset: {file_preset}`: give the base once "
                          "(drop --preset, or the file's preset line)")
    base = preset_dict(preset or file_preset) if (preset or file_preset) else {}
    cfg = from_dict(apply_overrides(deep_merge(base, data), overrides or []))
    _refuse_named_inert_switch(cfg, apply_overrides(data, overrides or []))
    return cfg


def _refuse_named_inert_switch(cfg: TrialConfig, named: dict[str, Any]) -> None:
    """ConfigError when the file or an override (`named`, as nested sections) sets a seed switch that cannot act
    on the model (a DeltaNet switch without DeltaNet heads...). One that only the preset set is left to the
    canonical form, so that a preset's ablation (`clowncar-ii-seed` with `model.delta_net_heads=0`) still runs."""
    from clowncar.config_inert import named_inert_switch

    keys = {f"{section}.{key}" for section, values in named.items() if isinstance(values, dict) for key in values}
    if problem := named_inert_switch(cfg.to_dict(), TrialConfig().to_dict(), keys):
        raise ConfigError(problem)
