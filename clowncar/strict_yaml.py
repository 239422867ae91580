"""Reading config and spec files: YAML 1.2 booleans, duplicate keys and deep nesting refused, a size cap, and
one-line `ConfigError`s for anything that is not a mapping of sections."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from clowncar.errors import ConfigError


class _Yaml12Loader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 booleans: only true/false are booleans, so `xsa: off` stays the string 'off'; and
    no YAML 1.1 octal, binary or base-60 numbers (below)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

# Numbers: YAML 1.1's forms that YAML 1.2 reads otherwise are left strings, for the config's own fields to parse or
# refuse: a leading 0 made `seed: 0042` octal (34), `1:30` base 60 (90) and `0b101` binary. What still resolves
# (decimal and 0x integers, dotted floats, .inf/.nan, `_` separators as before) is a subset of YAML 1.1's, so
# `yaml.safe_dump` (1.1) still quotes every string that would read back as a number.
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag not in _NUMBERS]
    for key, resolvers in _Yaml12Loader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"), list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


MAX_YAML_DEPTH = 64
"""Configs and specs nest a few levels; anything deeper is rejected before it can exhaust the stack."""
MAX_CONFIG_BYTES = 16 << 20
"""Configs and specs are a few KB; a larger file is refused instead of read whole into memory."""


class _StrictYamlLoader(_Yaml12Loader):
    """The config loader: YAML 1.2 booleans, and a duplicate key or nesting deeper than MAX_YAML_DEPTH is an error
    (plain YAML keeps the last of two equal keys silently, so a typo'd copy would quietly win)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key_node.value}'",
                                                            key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_load(text: str) -> Any:
    """Parse YAML safely (no code execution) with YAML 1.2 booleans; duplicate keys and deep nesting are errors."""
    return yaml.load(text, Loader=_StrictYamlLoader)


def _where(err: yaml.YAMLError) -> str:
    """Where the parser stopped: the line and the problem, or for a character YAML never allows (a control
    character, which has no line mark) the character and its position in the text."""
    mark = getattr(err, "problem_mark", None)
    if mark is not None:
        return f" (line {mark.line + 1}: {err.problem})"  # type: ignore[attr-defined]
    if isinstance(err, yaml.reader.ReaderError):
        return f" (character 0x{err.character:02x} at position {err.position} is not allowed)"
    return ""


CONFIG_HOLDING = "a mapping of config sections"


def read_mapping(path: str | Path, holding: str = CONFIG_HOLDING) -> dict[str, Any]:
    """Read a YAML or JSON file that must hold a mapping (`holding` says which, in the error of a file that holds
    something else); one-line errors for anything else."""
    p = Path(path)
    try:
        # Opened without blocking, so a FIFO nobody writes to opens at once (and then reads empty) instead of
        # waiting for a writer forever; read blocking, so a pipe still being written (`--config <(...)`) is read
        # whole.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            os.set_blocking(fd, True)
            raw = f.read(MAX_CONFIG_BYTES + 1)
            mode = os.fstat(fd).st_mode
    except OSError as err:
        raise ConfigError(f"cannot read {p}: {err.strerror or err}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p} is larger than {MAX_CONFIG_BYTES >> 20} MiB: not a config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{p} is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})") from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{p} is not valid YAML{_where(err)}") from None
    if data is None and stat.S_ISCHR(mode) and not raw:  # /dev/null: no config, on purpose (every default)
        return {}
    if data is None:  # a truncated or clobbered file must not run a sweep on every default
        why = ("is a FIFO nobody writes to" if stat.S_ISFIFO(mode) and not raw else "is empty" if not text.strip()
               else "holds only comments or null")
        hint = " (write {} for every default)" if holding == CONFIG_HOLDING else ""
        raise ConfigError(f"{p} {why}: it must hold {holding}{hint}")
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold {holding}, not {type(data).__name__}")
    return data
