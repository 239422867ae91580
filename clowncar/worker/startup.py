"""Where a trial's start-up goes: launch -> first training step, phase by phase.

Every second between a trial's launch and its first step is accelerator time nobody trains with (for a
175-trial sweep on 8-GPU nodes, 10 s per trial is about 4 GPU-hours). The worker times its phases and writes
them to result.json (`startup_seconds`, `startup`) and events.jsonl (a `startup` event):

| phase | from -> to |
| --- | --- |
| `launch` | the launcher's clock when it started the worker (`CLOWNCAR_LAUNCH_TIME`, set by the trainable) -> this process's start (0 when the launch time is unknown) |
| `imports` | process start -> the trial begins: interpreter, torch and clowncar imports, config, process group |
| `data` | shard lists, tokenizer, byte tables, validation tokens, the vocabulary check |
| `model` | build, move to the device, broadcast |
| `optimizer` | optimizers built |
| `compile` | torch.compile's set-up (it imports dynamo and inductor) and the compile warm-up steps, weights restored (without warm-up steps compiling happens in the first step) |
| `first_step` | the first training step |

`cpu_seconds` is this process's CPU time (user + system) over the same span; inductor's compile workers are
other processes and not in it. With compile on, `compile_cache_hits` / `compile_cache_misses` count the graphs
(FX graphs and AOTAutograd graphs) found in / missing from the on-disk compile cache up to the first step.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

LAUNCH_TIME_ENV = "CLOWNCAR_LAUNCH_TIME"
PHASES = ("launch", "imports", "data", "model", "optimizer", "compile", "first_step")
MAX_LAUNCH_LAG_S = 3600.0
"""A launch time further back than this is not this process's launch (a variable left in a shell)."""


def process_start_time() -> float | None:
    """Unix time at which this process started (Linux /proc, 10 ms resolution), or None where unknown."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in clock ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (uptime - started_after_boot)


def launch_time(process_start: float, env: dict[str, str] | None = None) -> float | None:
    """The launcher's time stamp when it is plausible for this process, else None."""
    raw = (os.environ if env is None else env).get(LAUNCH_TIME_ENV, "")
    try:
        launched = float(raw)
    except ValueError:
        return None
    # The clock stamp is taken just before the fork, /proc's start time is rounded to a tick: allow 50 ms.
    return launched if -0.05 <= process_start - launched <= MAX_LAUNCH_LAG_S else None


class StartupClock:
    """Marks the end of each start-up phase; `fields()` is what result.json and the event carry."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        now = time.time()
        started = process_start_time()
        self.process_start = started if started is not None and started <= now else now
        self.launched = launch_time(self.process_start, env)
        self.phases: dict[str, float] = {"launch": max(0.0, self.process_start - self.launched)
                                         if self.launched is not None else 0.0}
        self.last = self.process_start
        self.mark("imports")

    def mark(self, phase: str) -> None:
        """`phase` ended now (each phase at most once; the first mark of a name counts)."""
        if phase not in PHASES:
            raise ValueError(f"unknown start-up phase {phase}")
        now = time.time()
        self.phases.setdefault(phase, max(0.0, now - self.last))
        self.last = now

    @property
    def done(self) -> bool:
        return "first_step" in self.phases

    def fields(self, **extra: Any) -> dict[str, Any]:
        if clash := set(extra) & {*PHASES, "cpu_seconds", "from"}:
            raise ValueError(f"start-up fields {sorted(clash)} would hide a phase")
        phases = {name: round(self.phases.get(name, 0.0), 4) for name in PHASES}
        return {"startup_seconds": round(sum(phases.values()), 4),
                "startup": {**phases, "cpu_seconds": round(time.process_time(), 4),
                            "from": "launch" if self.launched is not None else "process start", **extra}}
