"""Counts in console lines: `1 trial`, `2 trials`."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """`n` and `noun`, plural unless `n` is 1 (nouns that take an `s`: trial, file, shard, config, seed)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
