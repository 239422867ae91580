"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class ClownCarError(Exception):
    """Bad input or an unusable environment: shown to the user as one line, never as a traceback."""

    exit_code = 2


class ConfigError(ClownCarError):
    """A trial config or sweep spec that cannot be used (unknown key, impossible shape, bad value)."""


class DataError(ClownCarError):
    """Missing, corrupt or unusable data: shards, tokenizer, corpus."""


class StoreError(ClownCarError):
    """The results store cannot be reached or refuses the operation."""
