"""The driver's side of the sweep lease, without Ray: the heartbeat keeps it, the end gives it back, a driver that
lost it says so once, and a dead holder on this machine is recognised by its PID and start time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from clowncar.orchestrator.embedded import start_time
from clowncar.orchestrator.lease import DriverLease, claimant, holder_gone, machine_id, refuse_if_driven
from clowncar.store import open_store
from clowncar.store.lease import Claimant, LeaseHeld


@pytest.fixture
def store(tmp_path: Path):
    st = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield st
    st.close()


def test_the_heartbeat_keeps_the_lease_and_the_end_gives_it_back(store) -> None:
    with DriverLease(store, "sw", ttl_s=1.5, beat_s=0.1) as lease:
        first = store.get_lease("sw")
        time.sleep(1.8)  # longer than the lease: only the heartbeat keeps it
        kept = store.get_lease("sw")
        assert kept["token"] == lease.me.token and kept["renewed_at"] > first["renewed_at"]
        with pytest.raises(LeaseHeld):
            refuse_if_driven(store, "sw")
        assert not lease.lost.is_set()
    assert store.get_lease("sw") is None
    refuse_if_driven(store, "sw")  # nobody drives it now


def test_a_driver_that_lost_its_lease_says_so_once_and_leaves_it_to_the_new_holder(store, capsys) -> None:
    calls: list[str] = []
    with DriverLease(store, "sw", ttl_s=60, beat_s=0.1, on_lost=lambda: calls.append("lost")) as lease:
        # Another driver takes over (as after this one went a whole lease without a heartbeat).
        store.acquire_lease("sw", Claimant("tok-new", "the new driver"), 60, holder_gone=lambda row: True)
        assert lease.lost.wait(5)
        time.sleep(0.3)
    assert calls == ["lost"]
    assert "another driver took over its lease" in capsys.readouterr().err
    assert store.get_lease("sw")["token"] == "tok-new"  # not released by the driver that lost it


def test_a_dead_holder_on_this_machine_is_known_by_its_pid_and_start_time() -> None:
    me = claimant()
    row = {"machine": me.machine, "pid": me.pid, "pid_started": me.pid_started}
    assert me.machine == machine_id() and me.pid_started == start_time(me.pid)
    assert not holder_gone(row)  # this process: alive
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(dead.pid)
    dead.wait()
    assert started is not None and holder_gone({**row, "pid": dead.pid, "pid_started": started})
    assert holder_gone({**row, "pid_started": (me.pid_started or 0) + 1})  # the PID was reused by another process
    assert not holder_gone({**row, "machine": "another-host", "pid": dead.pid})  # elsewhere: wait for expiry
