"""Fakes for the tests of `sweep submit` and `sweep stop` in this process (test_submit_steps.py,
test_submit_stop.py): the sweep they submit, a clock that moves only when the module under test sleeps, and the job
server's client handed to it."""

from __future__ import annotations

from typing import Any

import pytest

from clowncar.orchestrator import submit as submit_mod

SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {"model.crawler_loops": {"grid": [1, 2]}}}
JOB = "clowncar-s-1"
ADDRESS = "http://head:8265"


class Clock:
    """time.time and time.sleep for the module under test: time passes only in sleep."""

    def __init__(self) -> None:
        self.start = self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    @property
    def waited(self) -> float:
        return self.now - self.start


def use_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A `Clock` as the submit module's `time` for this test."""
    clock = Clock()
    monkeypatch.setattr(submit_mod, "time", clock)
    return clock


def serve(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    """`server` as the job client the submit module makes for ADDRESS."""
    def client(address: str) -> Any:
        assert address == ADDRESS
        return server

    monkeypatch.setattr(submit_mod, "_client", client)
