"""The trainable's hold on its worker's processes and where it runs, without Ray: `kill_group` ends the worker's
whole process group, and returns (and raises nothing) for a worker that outlives SIGKILL or a group it may not
signal; `node_facts` names the host, Ray node, GPUs and placement group every report carries (Ray's runtime context
stood in for)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from clowncar.orchestrator.trainable import kill_group, node_facts

from .conftest import alive, wait_for


def test_killing_a_worker_kills_its_whole_process_group() -> None:
    child = ("import subprocess, sys, time; g = subprocess.Popen([sys.executable, '-c', 'import time; "
             "time.sleep(60)']); print(g.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert alive(grandchild)
    kill_group(proc)
    assert proc.returncode == -9
    assert wait_for(lambda: not alive(grandchild), 5)  # the worker's own children die with it
    done = subprocess.Popen(["true"], start_new_session=True)
    done.wait()
    kill_group(done)  # a group that is gone already: nothing to kill, no error


class _Unreapable:
    """A worker process that outlives SIGKILL (uninterruptible sleep in a driver, a stuck NFS read): every wait
    times out."""

    pid = 424242

    def __init__(self) -> None:
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> int:
        self.waits.append(timeout)
        raise subprocess.TimeoutExpired("worker", timeout or 0)


def test_a_worker_that_outlives_sigkill_holds_the_trials_end_for_10_s_at_most(
        monkeypatch: pytest.MonkeyPatch) -> None:
    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda pid, sig: signalled.append((pid, sig)))
    proc = _Unreapable()
    kill_group(proc)  # type: ignore[arg-type]  # returns: the trial's end (and its slot) is not held forever
    assert signalled == [(424242, signal.SIGKILL)] and proc.waits == [10]


def test_a_worker_group_that_may_not_be_signalled_is_still_waited_for_and_raises_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """kill_group runs in the trainable's `finally`: a group it may not signal (its id reused by another user's
    process) must not turn the trial's end into an error."""
    def refused(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "killpg", refused)
    proc = _Unreapable()
    kill_group(proc)  # type: ignore[arg-type]
    assert proc.waits == [10]


PG_ID = "b2c3d4e5f6a7b8c9d0e1f2a3"
IN_PG = SimpleNamespace(id=SimpleNamespace(hex=lambda: PG_ID))  # Ray's PlacementGroup: its id's hex() names it


@pytest.mark.parametrize("pg, gpus, in_pg, gpu_ids", [(None, [], "", ""), (IN_PG, [0, 3], PG_ID, "0,3")])
def test_node_facts_name_the_host_and_ray_node_the_gpus_ray_gave_and_the_placement_group(
        monkeypatch: pytest.MonkeyPatch, pg: Any, gpus: list[int], in_pg: str, gpu_ids: str) -> None:
    """What every report of a trial says about where it runs (the store's host, the GPU ledger's node, PG and GPUs),
    from Ray's runtime context: Ray itself is stood in for (its cluster tests run real actors)."""
    import ray
    import ray.util

    node = "f" * 12 + "0123456789abcdef" * 3

    class Context:
        @staticmethod
        def get_node_id() -> str:
            return node

    monkeypatch.setattr(ray, "get_runtime_context", lambda: Context())
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: list(gpus))
    monkeypatch.setattr(ray.util, "get_current_placement_group", lambda: pg)
    assert node_facts() == {"host": f"{socket.gethostname()}:{'f' * 12}", "node_id": node, "pid": os.getpid(),
                            "gpu_ids": gpu_ids, "pg": in_pg}
