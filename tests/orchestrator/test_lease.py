"""The driver's side of the sweep lease, without Ray: the heartbeat keeps it, the end gives it back, a driver that
lost it says so once, and a dead holder on this machine is recognised by its PID and start time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clowncar.errors import StoreError
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


def _dead_holder(me: Claimant) -> Claimant:
    """A holder on this machine whose process has ended (as after a SIGKILLed driver)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(proc.pid)
    proc.wait()
    return Claimant("tok-dead", f"pid {proc.pid} on here", machine=me.machine, pid=proc.pid, pid_started=started)


def test_the_machine_id_is_the_boot_id_and_the_pid_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert machine_id() == f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    assert len(boot) == 36

    def unreadable(_: str) -> str:
        raise PermissionError("no /proc here")

    monkeypatch.setattr(os, "readlink", unreadable)
    assert machine_id() is None


def test_a_claimant_is_this_process_with_a_new_token_each_time() -> None:
    a, b = claimant(), claimant()
    assert a.token != b.token and len(a.token) == 32 and int(a.token, 16) >= 0
    assert a.holder == f"pid {os.getpid()} on {socket.gethostname()}" and a.pid == os.getpid()


def test_a_holder_with_no_machine_or_pid_is_never_taken_for_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    me = claimant()
    dead = _dead_holder(me)
    row = {"machine": dead.machine, "pid": dead.pid, "pid_started": dead.pid_started}
    assert holder_gone(row)
    assert not holder_gone({**row, "pid": None}) and not holder_gone({**row, "machine": None})
    monkeypatch.setattr("clowncar.orchestrator.lease.machine_id", lambda: None)  # no /proc: cannot tell
    assert not holder_gone(row)


def test_a_sweep_whose_holder_died_here_is_not_refused_and_is_taken_at_once(store) -> None:
    dead = _dead_holder(claimant())
    store.acquire_lease("sw", dead, ttl_s=600)
    refuse_if_driven(store, "sw")  # the lease has 10 minutes left, but its holder is known dead
    with DriverLease(store, "sw", beat_s=60) as lease:
        assert store.get_lease("sw")["token"] == lease.me.token


def test_a_refusal_names_the_sweep_and_its_live_holder(store) -> None:
    store.acquire_lease("sw", Claimant("tok-x", "pid 1 on elsewhere", machine="other"), ttl_s=600)
    with pytest.raises(LeaseHeld) as err:
        refuse_if_driven(store, "sw")
    assert str(err.value).startswith("sweep 'sw' is being run by pid 1 on elsewhere (its lease runs until ")


def test_the_heartbeat_is_a_daemon_thread_named_for_its_sweep_and_ends_with_the_lease(store) -> None:
    with DriverLease(store, "sw", beat_s=60) as lease:
        thread = lease._thread
        assert thread is not None and thread.name == "lease-sw" and thread.daemon and thread.is_alive()
    assert not thread.is_alive()


class _Store:
    """A store whose lease calls can be made to fail or hang, around a real one."""

    def __init__(self, real: Any) -> None:
        self.real, self.renewals, self.renew_errors = real, 0, 0
        self.renew_gate: threading.Event | None = None
        self.release_error: Exception | None = None

    def acquire_lease(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.acquire_lease(*args, **kwargs)

    def renew_lease(self, *args: Any) -> bool:
        self.renewals += 1
        if self.renew_gate is not None:
            self.renew_gate.wait()
        if self.renew_errors:
            self.renew_errors -= 1
            raise StoreError("database is locked")
        return self.real.renew_lease(*args)

    def release_lease(self, *args: Any) -> bool:
        if self.release_error is not None:
            raise self.release_error
        return self.real.release_lease(*args)


def test_a_database_away_for_a_few_beats_does_not_lose_the_lease(store) -> None:
    flaky = _Store(store)
    flaky.renew_errors = 3
    with DriverLease(flaky, "sw", ttl_s=60, beat_s=0.02) as lease:
        deadline = time.monotonic() + 10
        while flaky.renewals < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert flaky.renewals >= 6 and not lease.lost.is_set()
        assert lease._thread is not None and lease._thread.is_alive()


def test_an_unreachable_store_at_the_end_leaves_the_lease_to_expire(store) -> None:
    flaky = _Store(store)
    flaky.release_error = StoreError("server closed the connection")
    with DriverLease(flaky, "sw", beat_s=60):
        pass
    assert store.get_lease("sw") is not None  # not released, and no error: it expires on its own


def test_the_end_waits_for_a_hung_heartbeat_one_beat_and_five_seconds_at_most(store) -> None:
    hung = _Store(store)
    hung.renew_gate = threading.Event()
    lease = DriverLease(hung, "sw", beat_s=0.01)
    lease.__enter__()
    deadline = time.monotonic() + 10
    while hung.renewals == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    waited: list[float | None] = []
    real_thread = lease._thread
    assert real_thread is not None

    class _Timed:
        def join(self, timeout: float | None = None) -> None:
            waited.append(timeout)

    lease._thread = _Timed()  # type: ignore[assignment]
    lease.__exit__(None, None, None)
    hung.renew_gate.set()
    real_thread.join(10)
    assert waited == [0.01 + 5]
    assert store.get_lease("sw") is None


def test_ending_a_lease_that_was_never_taken_changes_nothing(store) -> None:
    store.acquire_lease("sw", Claimant("tok-x", "another driver"), ttl_s=600)
    DriverLease(store, "sw").__exit__(None, None, None)
    assert store.get_lease("sw")["token"] == "tok-x"
