"""A sweep whose driver died (SIGKILL, a lost machine) is shown as such by `sweep status` and `sweep ls`, from
the store's state alone: a sweep row marked running and a lease that expired, belongs to a dead process here, or
is missing (orchestrator/driver_state.py)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from typing import Any

from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator.driver_state import driver_line, status_of
from clowncar.orchestrator.embedded import start_time
from clowncar.orchestrator.lease import DriverLease, machine_id
from clowncar.store import open_store
from clowncar.store.lease import Claimant

SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {"model.crawler_loops": {"grid": [1, 2]}}}
ELSEWHERE = Claimant(token="dead-driver", holder="pid 4242 on head-1", machine="another-boot/pid-ns", pid=4242,
                     pid_started=1)
"""A driver on another machine: only its lease's expiry tells that it is gone."""



def running_sweep(store: Any, name: str = "s") -> None:
    """What a driver leaves when it is killed mid-trial: the sweep and one trial marked running, two steps in."""
    store.create_or_get_sweep(name, {**SPEC, "name": name})
    store.set_sweep_status(name, "running")
    uid = f"{name}/0"
    store.start_trial(name, uid, 0, 0, {"model": {"crawler_loops": 1}}, 1337, "node-a")
    store.add_steps(uid, 0, [{"step": 1, "train_loss": 5.0}, {"step": 2, "train_loss": 4.9}])


def expired_lease(store: Any, name: str = "s") -> dt.datetime:
    """`ELSEWHERE`'s lease of `name`, left to expire; returns when it expired."""
    store.acquire_lease(name, ELSEWHERE, ttl_s=0.01)
    time.sleep(0.05)
    return store.get_lease(name)["expires_at"]


def test_status_of_a_running_sweep_whose_lease_expired_says_the_driver_is_gone(url: str, capsys) -> None:
    with open_store(url) as st:
        running_sweep(st)
        expired = expired_lease(st)
    cmd.status_cmd("s", store=url)
    assert capsys.readouterr().out.splitlines() == [
        "sweep s: stalled, 1 trial",
        f"  driver: gone (pid 4242 on head-1, lease expired at {expired:%Y-%m-%d %H:%M:%S} UTC); continue it "
        "with `clowncar sweep resume s`",
        "  last seen running 1",
        "  best: none (no Optuna study, and no trial in the store records a BPB)",
        "  last seen running: trial 0 attempt 0 on node-a step 2",
    ]


def test_status_of_a_sweep_its_driver_still_holds_says_running(url: str, capsys) -> None:
    with open_store(url) as st:
        running_sweep(st)
        with DriverLease(st, "s"):
            cmd.status_cmd("s", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sweep s: running, 1 trial"
    assert lines[1].startswith("  driver: pid ") and "gone" not in lines[1]
    assert lines[2] == "  running 1"
    assert lines[-1] == "  running: trial 0 attempt 0 on node-a step 2"


def test_ls_calls_a_running_sweep_without_a_live_driver_stalled(url: str, capsys) -> None:
    with open_store(url) as st:
        for name in ("expired", "unleased", "driven", "finished"):
            running_sweep(st, name)
        expired_lease(st, "expired")
        st.acquire_lease("driven", ELSEWHERE, ttl_s=60)  # alive as far as anyone can tell from here
        st.set_sweep_status("finished", "done")
    cmd.ls_cmd(store=url)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]  # after the store and the header
    assert {row[-1]: row[0] for row in rows} == {"driven": "running", "expired": "stalled", "finished": "done",
                                                 "unleased": "stalled"}


def test_a_driver_that_died_on_this_machine_is_gone_before_its_lease_expires() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(done.pid)
    done.wait()
    orphan = {"token": "t", "holder": f"pid {done.pid} on here", "machine": machine_id(), "pid": done.pid,
              "pid_started": started, "renewed_at": dt.datetime.now(dt.UTC),
              "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)}
    assert driver_line("s", "running", orphan) == (
        f"  driver: gone (pid {done.pid} on here, its process has ended); continue it with "
        "`clowncar sweep resume s`")


def test_a_running_sweep_with_no_lease_at_all_has_no_driver() -> None:
    assert driver_line("s", "running", None) == ("  driver: gone (no driver holds its lease); continue it with "
                                                 "`clowncar sweep resume s`")


def test_only_a_sweep_marked_running_is_read_as_stalled() -> None:
    class NoLeaseRead:
        def get_lease(self, name: str) -> None:
            raise AssertionError("a sweep that is not running needs no lease read")

    for stored in ("created", "done", "failed", "stopped", "imported"):
        assert status_of(NoLeaseRead(), "s", stored) == stored


def test_the_clock_a_caller_gives_decides_whether_a_lease_still_binds(url: str) -> None:
    """A lease held elsewhere for an hour: live now, gone at a later `now` that the caller passes, and at the
    very second it expires it counts as expired."""
    from clowncar.orchestrator.driver_state import driver_lives

    with open_store(url) as st:
        running_sweep(st)
        st.acquire_lease("s", ELSEWHERE, ttl_s=3600)
        lease = st.get_lease("s")
    expires = lease["expires_at"]
    later = expires + dt.timedelta(seconds=1)
    assert driver_lives(lease) and not driver_lives(lease, later)
    assert driver_line("s", "running", lease).startswith("  driver: pid 4242 on head-1, lease renewed")
    assert driver_line("s", "running", lease, later) == (
        f"  driver: gone (pid 4242 on head-1, lease expired at {expires:%Y-%m-%d %H:%M:%S} UTC); continue it with "
        "`clowncar sweep resume s`")
    assert driver_line("s", "running", lease, expires) == driver_line("s", "running", lease, later)
