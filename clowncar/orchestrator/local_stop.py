"""`clowncar sweep stop NAME` without `--address`: stop the sweep's driver through its lease.

A sweep run here (`sweep run`, `resume`, `rerun`, embedded Ray or `--address auto`) has no Ray job to stop; its
driver holds the sweep's lease (orchestrator/lease.py), whose row names the driver's machine, PID and the PID's
start time. When that driver runs on this machine (same boot and PID namespace) and its PID still runs the process
that took the lease, it is sent SIGINT, exactly what Ctrl-C in its terminal sends: the driver closes its running
trials for `sweep resume`, releases the lease and ends with exit code 130. This command waits up to STOP_WAIT_S
for the lease to be released, then says what happened in one line.

A driver on another machine cannot be signalled from here: one line (exit 2) names it and how it stops. A sweep
with no live driver has nothing to stop: one line, exit 0, as stopping what has already stopped is done. A sweep
submitted as a Ray job stops with `--address http://HEAD:8265` (`submit.stop`), which this does not replace.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from clowncar.errors import EXIT_FAILED, ClownCarError

STOP_WAIT_S = 60.0
"""How long `sweep stop` waits for the driver to close its trials and release the lease (a driver on a busy
machine takes seconds: Ray's trials end, the store is written)."""
POLL_S = 0.25


class StopTimedOut(ClownCarError):
    """The driver was signalled but still held the lease when the wait ended: a failed command, exit 1."""

    exit_code = EXIT_FAILED


def stop_local(name: str, url: str, wait_s: float | None = None) -> str:
    """Send SIGINT to the live driver of sweep `name` on this machine and wait (`wait_s`, default STOP_WAIT_S)
    for it to release the lease; the line to print. ClownCarError (exit 2) when the sweep is unknown or its
    driver runs elsewhere; StopTimedOut (exit 1) when it still holds the lease after the wait."""
    from clowncar.orchestrator.lease import held_here, holder_gone
    from clowncar.store import open_store
    from clowncar.store.lease import is_live

    with open_store(url, create=False) as store:
        if store.get_sweep(name) is None:
            raise ClownCarError(f"no sweep named '{name}' in {store.url}{store.no_sweep_hint(name)}")
        lease = store.get_lease(name)
        if not is_live(lease, holder_gone=holder_gone):
            return (f"sweep {name}: no live driver holds it, so there is nothing to stop (a sweep submitted as a Ray "
                    f"job that has not started yet stops with `clowncar sweep stop {name} --address http://HEAD:8265`)")
        assert lease is not None  # is_live says so
        if not held_here(lease):
            raise ClownCarError(f"sweep {name} is being run by {lease['holder']}, not on this machine: stop it with "
                                f"Ctrl-C there, or, for a sweep submitted as a Ray job, `clowncar sweep stop {name} "
                                "--address http://HEAD:8265`")
        pid, wait_s = int(lease["pid"]), STOP_WAIT_S if wait_s is None else wait_s
        _interrupt(name, pid)
        if _released(store, name, lease, wait_s):
            return (f"stopped sweep {name}: its driver (pid {pid}) got Ctrl-C (SIGINT), closed its running trials "
                    f"and ended; continue it with `clowncar sweep resume {name}`")
    raise StopTimedOut(f"sweep {name}: its driver (pid {pid}) got Ctrl-C (SIGINT) but still holds the sweep after "
                       f"{wait_s:g} s; `clowncar sweep status {name}` says when it has ended, and `kill -INT {pid}` "
                       "again cuts its clean-up short")


def _interrupt(name: str, pid: int) -> None:
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:  # it ended between the lease read and now: nothing left to stop
        pass
    except PermissionError:
        raise ClownCarError(f"sweep {name}: its driver (pid {pid}) runs as another user, whom this user may not "
                            "signal; stop it with Ctrl-C where it runs, or as that user") from None


def _released(store: Any, name: str, lease: Mapping[str, Any], wait_s: float) -> bool:
    """Whether the driver that held `lease` let it go (released, expired, or its process gone) within `wait_s`."""
    from clowncar.orchestrator.lease import holder_gone
    from clowncar.store.lease import is_live

    deadline = time.monotonic() + wait_s
    while True:
        now = store.get_lease(name)
        if not is_live(now, holder_gone=holder_gone) or (now or {}).get("token") != lease["token"]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
