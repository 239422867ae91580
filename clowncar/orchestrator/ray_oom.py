"""A trial actor that Ray's memory monitor killed is a trial that ran out of host memory (`oom`), not a failed sweep.

Ray's raylet kills workers when the node's memory use passes its threshold (`RAY_memory_usage_threshold`, 0.95 of
the node by default): on a shared node, other people's jobs push it there. Measured with Ray 2.60 (the threshold
set just above the node's use, a 3 GB allocation by another process once two trials ran):
- a trial actor killed while it runs a task (`train`, as a trial does nearly all its life) resolves that task
  with `ray.exceptions.OutOfMemoryError`, which is neither the `RayActorError` nor the `RayTaskError` Tune's actor
  manager (`RayActorManager._actor_task_failed`) expects: it raises `RuntimeError: Caught unexpected exception:
  2 worker(s) were killed ...` (3 KB of Ray's report) out of `Tuner.fit`, the sweep ended `failed` as an
  internal error and its killed trials stayed `running`;
- one killed while it is made (its `__init__`) reaches Tune as a failed start, a trial failure, already.
Inside `oom_kills_as_actor_deaths` the first is what it is, the death of the actor (its process is gone), so Tune
retries the trial per `max_failures` or gives up on it, as for any lost actor; `memory_kill` reads Ray's text of
either into one short reason, and the store records the trial `oom`."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from typing import Any

from ray.exceptions import OutOfMemoryError, RayActorError

_KILLED = re.compile(r"killed due to the node running low on memory", re.I)
_NUMBER = r"(\d+(?:\.\d+)?)"
_USED = re.compile(rf"Memory on the node \(IP: ([^,)\s]+).*? was {_NUMBER} ?GB(?: used)? / {_NUMBER} ?GB")
_THRESHOLD = re.compile(rf"threshold of \d+B \({_NUMBER}% of|memory usage threshold of {_NUMBER}")
"""Ray 2.60's words (`... was 3.39GB used / 23.54GB limit ... exceeded threshold of 3412286464B (13.5% of ...`),
and those of Rays before 2.56 (`... was 21.91GB / 33.28GB (0.658192), which exceeds the memory usage threshold of
0.65`)."""


MEMORY_MONITOR = "killed by Ray's memory monitor:"
"""How every reason `memory_kill` writes begins: `sweep resume --retry-failed` runs such an `oom` again (the node's
memory, not the trial's own need, may be what ran out)."""


class KilledForMemory(RayActorError):
    """A trial actor whose worker process Ray's memory monitor killed during one of its tasks."""

    def __init__(self, error_msg: str = "killed due to the node running low on memory") -> None:
        super().__init__(error_msg=error_msg)


def memory_kill(text: str) -> str | None:
    """The last failure of Tune's error.txt (or any Ray text) in one short line when Ray's memory monitor killed
    the worker, e.g. `killed by Ray's memory monitor: node 127.0.0.1 low on memory (3.39 of 23.54 GB used, over
    its kill threshold of 13.5%)`; None for any other failure."""
    block = re.split(r"^Failure # \d+ \(occurred at [^)]*\)$", text, flags=re.M)[-1]
    if not _KILLED.search(block):
        return None
    used, threshold = _USED.search(block), _THRESHOLD.search(block)
    facts = []
    if used:
        facts.append(f"{used[2]} of {used[3]} GB used")
    if threshold:
        share = threshold[1] or f"{float(threshold[2]) * 100:g}"
        facts.append(f"over its kill threshold of {share}%")
    node = f"node {used[1]}" if used else "node"
    return f"{MEMORY_MONITOR} {node} low on memory" + (f" ({', '.join(facts)})" if facts else "")


@contextlib.contextmanager
def oom_kills_as_actor_deaths() -> Iterator[None]:
    """While inside, Tune's actor manager takes an actor task that failed with `OutOfMemoryError` for the death
    of that actor (`KilledForMemory`, Ray's message kept), as it takes an `ActorDiedError`; Ray's own method is put
    back on the way out. A Ray whose manager has no such method is left as it is."""
    from ray.air.execution._internal.actor_manager import RayActorManager

    failed = getattr(RayActorManager, "_actor_task_failed", None)
    if failed is None:
        yield
        return

    @functools.wraps(failed)
    def task_failed(self: Any, tracked_actor_task: Any, exception: Exception) -> None:
        if isinstance(exception, OutOfMemoryError):
            died = KilledForMemory(str(exception))
            died.__cause__ = exception
            exception = died
        failed(self, tracked_actor_task, exception)

    RayActorManager._actor_task_failed = task_failed  # type: ignore[method-assign]
    try:
        yield
    finally:
        RayActorManager._actor_task_failed = failed  # type: ignore[method-assign]
