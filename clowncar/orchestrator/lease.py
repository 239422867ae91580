"""One driver per sweep: the driver's side of the store's lease (`clowncar.store.lease`).

`run_sweep` holds `DriverLease` for as long as it drives a sweep (`sweep run`, `resume`, `rerun`, and the
submitted job that runs `sweep run` on the head); a second driver of the same sweep is refused with one line
naming the holder and when its lease ends. A heartbeat thread renews the lease every HEARTBEAT_S seconds; a
driver that stops renewing (SIGKILL, a dead machine) loses it after LEASE_TTL_S. On the holder's own machine a
dead holder is recognised at once (its PID no longer runs the process that took the lease), so `sweep resume`
right after a SIGKILL does not wait for the lease to expire.

A store outage longer than LEASE_TTL_S (a running sweep waits out CLOWNCAR_STORE_RETRY_SECONDS) lets the lease expire
in the database; the heartbeat tries every RENEW_RETRY_S while the store is away, so the lease is renewed about a
second after it is back. A second driver is not made to wait out a lease that expired just now: nothing in the row
tells a holder held up by the outage from a dead one, and a grace period would be a longer LEASE_TTL_S for every dead
holder on another machine. A second driver that takes the lease in that second wins; the first finds its renewal
refused and starts no more trials (`lost`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clowncar.errors import StoreError
from clowncar.orchestrator.embedded import start_time
from clowncar.store.lease import Claimant, LeaseHeld, is_live

LEASE_TTL_S = 60.0
"""How long a lease outlives its last heartbeat: a SIGKILLed driver on another machine blocks its sweep this long."""
HEARTBEAT_S = 10.0
"""How often a driver renews its lease (several renewals fit in one LEASE_TTL_S, so a slow database is no loss)."""
RENEW_RETRY_S = 1.0
"""How soon a renewal that failed (the store away: its server restarting) is tried again. A sweep rides out an outage
longer than LEASE_TTL_S (CLOWNCAR_STORE_RETRY_SECONDS, 120 s by default), and its lease expires in the database
meanwhile: trying every second, not every HEARTBEAT_S, renews it within about a second of the store's return, before
a second driver is likely to take it. One that does take it in that second wins; this driver then stops (`lost`)."""


def machine_id() -> str | None:
    """This kernel's boot id and this process's PID namespace: where two equal ids mean the same PIDs."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{pidns}"


def claimant() -> Claimant:
    """This process as a lease holder (a new token per driver run)."""
    pid = os.getpid()
    return Claimant(token=uuid.uuid4().hex, holder=f"pid {pid} on {socket.gethostname()}", machine=machine_id(),
                    pid=pid, pid_started=start_time(pid))


def held_here(lease: Mapping[str, Any]) -> bool:
    """True when the lease's holder ran on this machine (same boot and PID namespace), under a PID recorded."""
    mine = machine_id()
    return mine is not None and lease.get("machine") == mine and lease.get("pid") is not None


def holder_gone(lease: Mapping[str, Any]) -> bool:
    """True when the lease's holder ran on this machine and its process is gone (or the PID is reused)."""
    return held_here(lease) and start_time(int(lease["pid"])) != lease.get("pid_started")


def refuse_if_driven(store: Any, sweep: str) -> None:
    """Raise `LeaseHeld` (one line, exit 2) when a live driver holds `sweep`."""
    lease = store.get_lease(sweep)
    if is_live(lease, holder_gone=holder_gone):
        raise LeaseHeld(sweep, lease or {})


class DriverLease:
    """`with DriverLease(store, sweep):` holds the sweep's lease, renewed in the background, released at the end.

    When a renewal finds that another driver has taken the lease (this one went LEASE_TTL_S without a
    heartbeat reaching the store), `lost` is set and `on_lost` is called once: the driver then starts no more
    trials and leaves the sweep's state to the new holder."""

    def __init__(self, store: Any, sweep: str, ttl_s: float = LEASE_TTL_S, beat_s: float = HEARTBEAT_S,
                 on_lost: Callable[[], None] | None = None, retry_s: float = RENEW_RETRY_S) -> None:
        self.store, self.sweep, self.ttl_s, self.beat_s, self.on_lost = store, sweep, ttl_s, beat_s, on_lost
        self.retry_s = min(retry_s, beat_s)
        self.me = claimant()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DriverLease:
        self.store.acquire_lease(self.sweep, self.me, self.ttl_s, holder_gone=holder_gone)
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.sweep}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        wait = self.beat_s
        while not self._stop.wait(wait):
            try:
                if self.store.renew_lease(self.sweep, self.me.token, self.ttl_s):
                    wait = self.beat_s
                    continue
            except StoreError:  # the database is away for a moment: try again soon, so that a lease that expired
                wait = self.retry_s  # meanwhile is renewed as soon as the database is back (RENEW_RETRY_S)
                continue
            self.lost.set()
            print(f"clowncar: warning: sweep {self.sweep}: another driver took over its lease (no heartbeat "
                  f"reached the store for {self.ttl_s:.0f} s); this driver starts no more trials",
                  file=sys.stderr, flush=True)
            if self.on_lost is not None:
                self.on_lost()
            return

    def stop_renewing(self) -> None:
        """No more heartbeats (a driver about to end at once gives its lease up itself)."""
        self._stop.set()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.beat_s + 5)
        if not self.lost.is_set():
            with contextlib.suppress(Exception):  # unreachable store: the lease expires on its own
                self.store.release_lease(self.sweep, self.me.token)
