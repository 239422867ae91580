"""The start-up clock in this process, on a clock the test sets: a launcher's stamp counts only when it is
plausible for this process (50 ms before its start to an hour after), each phase is the time since the previous
mark (the first mark of a name counts), and the fields sum the phases and say where they count from."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from clowncar.worker import startup
from clowncar.worker.startup import LAUNCH_TIME_ENV, PHASES, StartupClock, launch_time, process_start_time


@pytest.mark.parametrize("stamp, start, expected", [
    ("100.0", 100.0, 100.0), ("100.05", 100.0, 100.05), ("100.06", 100.0, None),  # the stamp a tick after start
    ("100.0", 3700.0, 100.0), ("100.0", 3700.5, None),  # an hour back at most
    ("0.0", -0.05, 0.0),  # 50 ms exactly (the same double on both sides)
    ("", 100.0, None), ("soon", 100.0, None), ("nan", 100.0, None),
])
def test_a_launch_stamp_counts_only_when_plausible(stamp: str, start: float, expected: float | None) -> None:
    assert launch_time(start, {LAUNCH_TIME_ENV: stamp}) == expected
    assert launch_time(start, {}) is None


def test_without_an_env_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LAUNCH_TIME_ENV, "50.0")
    assert launch_time(60.0) == 50.0
    monkeypatch.delenv(LAUNCH_TIME_ENV)
    assert launch_time(60.0) is None


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(1000.0)
    monkeypatch.setattr(startup.time, "time", c)
    monkeypatch.setattr(startup.time, "process_time", lambda: 1.23456)
    monkeypatch.setattr(startup, "process_start_time", lambda: 990.0)
    return c


def test_each_phase_is_the_time_since_the_last_mark(clock: Clock) -> None:
    sc = StartupClock({LAUNCH_TIME_ENV: "987.5"})
    assert sc.phases == {"launch": 2.5, "imports": 10.0} and not sc.done
    clock.now = 1001.25
    sc.mark("data")
    clock.now = 1001.5
    sc.mark("data")  # a second mark of a name: the first counts, the clock moves on
    clock.now = 1004.0
    sc.mark("model")
    clock.now = 1004.00004
    sc.mark("first_step")
    assert sc.done
    fields = sc.fields(compile_mode="default")
    assert fields["startup"] == {"launch": 2.5, "imports": 10.0, "data": 1.25, "model": 2.5, "optimizer": 0.0,
                                 "compile": 0.0, "first_step": 0.0, "cpu_seconds": 1.2346, "from": "launch",
                                 "compile_mode": "default"}
    assert fields["startup_seconds"] == 16.25
    assert list(fields["startup"])[:len(PHASES)] == list(PHASES)


def test_without_a_plausible_stamp_it_counts_from_the_process_start(clock: Clock,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sc = StartupClock({LAUNCH_TIME_ENV: "-5000.0"})  # more than an hour early: a stamp left in a shell
    assert sc.phases["launch"] == 0.0 and sc.fields()["startup"]["from"] == "process start"
    monkeypatch.setattr(startup, "process_start_time", lambda: None)  # /proc unreadable: start now
    assert StartupClock({}).phases == {"launch": 0.0, "imports": 0.0}
    monkeypatch.setattr(startup, "process_start_time", lambda: 2000.0)  # a start after now: now
    assert StartupClock({}).process_start == 1000.0
    monkeypatch.setattr(startup, "process_start_time", lambda: 990.0)
    late = StartupClock({LAUNCH_TIME_ENV: "990.04"})  # the stamp just after the rounded start: no negative launch
    assert late.phases["launch"] == 0.0 and late.launched == 990.04


def test_unknown_phases_and_fields_that_would_hide_one_are_refused(clock: Clock) -> None:
    sc = StartupClock({})
    with pytest.raises(ValueError, match="unknown start-up phase warmup"):
        sc.mark("warmup")
    for name in ("data", "cpu_seconds", "from"):
        with pytest.raises(ValueError) as err:
            sc.fields(**{name: 1})
        assert str(err.value) == f"start-up fields {[name]} would hide a phase"


def test_the_process_start_is_read_from_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    started = process_start_time()
    assert started is not None and time.time() - 24 * 3600 < started <= time.time()
    script = "import time; from clowncar.worker.startup import process_start_time as p; print(time.time() - p())"
    age = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                               timeout=60).stdout)
    assert 0.0 <= age < 30.0  # a new process: started moments ago (10 ms ticks; imports take a second or two)
    import clowncar

    # A process whose name holds ")" (the stat line is "pid (name) state ..."): the fields after the last ")".
    renamed = ("import ctypes, time; ctypes.CDLL(None).prctl(15, b'odd) name', 0, 0, 0)\n"
               "from clowncar.worker.startup import process_start_time as p; print(time.time() - p())")
    env = {**os.environ, "PYTHONPATH": str(Path(clowncar.__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", renamed], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 0.0 <= float(proc.stdout) < 30.0
    real = Path.read_text

    def unreadable(self: Path, *a: Any, **kw: Any) -> str:
        if str(self).startswith("/proc"):
            raise PermissionError(13, "denied")
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", unreadable)
    assert process_start_time() is None
