"""A sweep's driver whose Ray head stops answering ends with one clowncar line, before Ray's C++ ends it.

Ray's core worker in the driver gives its GCS (on the head) RAY_gcs_rpc_server_reconnect_timeout_s (60 s by default)
to answer again after a call failed, then logs `Failed to connect to GCS within 60 seconds ... The program will
terminate.` and ends the process at once (`_Exit(1)`: no Python clean-up, no clowncar line; walk 2, finding 5, with
the head's gcs_server and raylet SIGKILLed). Here the driver keeps Ray's patience as the user set it, and acts on
it first: its core worker is made with a limit RAY_MARGIN_S longer (the variable set for `ray.init`'s connect only:
Ray's own processes, which copy this process's environment when embedded Ray starts them, keep the user's), and a
thread that opens a TCP connection to the GCS every PROBE_S seconds ends the sweep when none was accepted for the
user's limit: one line (`lost_line`), the sweep's lease given up so that `sweep resume` can take it at once, exit 1.
The sweep stays `running` in the store, as a SIGKILLed driver leaves it (`sweep status` says `stalled`); its trials
in flight are reconciled by `sweep resume`, and those that finished on a worker meanwhile are recorded then.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from clowncar.errors import EXIT_FAILED
from clowncar.interrupts import each_ray_connect_in

RAY_LIMIT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
RAY_DEFAULT_S = 60.0
"""Ray 2.60's default for RAY_LIMIT_ENV (ray_config_def.h)."""
RAY_MARGIN_S = 30
"""How much longer than the user's limit the driver's core worker waits for its GCS: time for our line and exit."""
PROBE_S = 1.0


def limit_s() -> float:
    """How long the head may be away before the sweep ends: RAY_LIMIT_ENV as the user set it, else Ray's default."""
    try:
        value = float(os.environ.get(RAY_LIMIT_ENV, ""))
    except ValueError:
        return RAY_DEFAULT_S
    return value if value > 0 else RAY_DEFAULT_S


@contextlib.contextmanager
def _variable_set(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def ray_patience_raised() -> Iterator[None]:
    """Around `ray.init`: every GCS client of the driver gets the user's limit plus RAY_MARGIN_S. Ray's config in
    this process (RayConfig) reads RAY_LIMIT_ENV each time it is initialized, and a GCS client takes the value it
    holds when the client is made: the driver's first one is made before `connect` (measured: with the variable
    raised for `connect` alone, that client still ended the process at the user's limit), so the config is read
    again here with the variable raised, and once more by `connect`, which makes the core worker, with it raised as
    well. The variable itself is back as it was outside those two moments: embedded Ray's processes, which
    `ray.init` starts in between, copy the user's."""
    import ray._private.worker as ray_worker

    if getattr(ray_worker, "connect", None) is None:  # a Ray without `connect`: its own limit, and the watch may come second
        yield
        return
    raised = str(int(limit_s()) + RAY_MARGIN_S)
    with contextlib.suppress(ImportError, AttributeError), _variable_set(RAY_LIMIT_ENV, raised):
        from ray._raylet import Config

        Config.initialize("")

    with each_ray_connect_in(lambda: _variable_set(RAY_LIMIT_ENV, raised)):
        yield


def answers(target: tuple[str, int], timeout: float = 2.0) -> bool:
    """True when something accepts a TCP connection at `target` (the GCS's port)."""
    try:
        with socket.create_connection(target, timeout=timeout):
            return True
    except OSError:
        return False


class HeadWatch:
    """Calls `on_lost(seconds)` once, from its own thread, when `target` accepted no connection for `limit`
    seconds (counted from the last one it accepted)."""

    def __init__(self, target: tuple[str, int], limit: float, on_lost: Callable[[float], None],
                 every: float = PROBE_S) -> None:
        self.target, self.limit, self.on_lost, self.every = target, limit, on_lost, every
        self.embedded = False
        """The head is embedded Ray's, which `ray.shutdown` stops."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="head-watch", daemon=True)

    def start(self) -> HeadWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.every):
            if answers(self.target, timeout=min(2.0, self.limit / 2)):
                last_ok = time.monotonic()
                continue
            away = time.monotonic() - last_ok
            if away >= self.limit and not self._stop.is_set():
                self.on_lost(away)
                return


def lost_line(sweep: str, address: str, limit: float) -> str:
    """The one line a sweep's driver ends with when its head stopped answering (`address`: as the user gave it,
    '' for embedded Ray)."""
    head = f"the Ray head at {address}" if address else "the embedded Ray head (its GCS)"
    again = f"clowncar sweep resume {sweep}" + (" --address HOST:PORT" if address else "")
    return (f"sweep {sweep}: {head} stopped answering ({limit:g} s without its GCS); the trials that finished are "
            f"stored; once a head is back, `{again}` continues the sweep")


_watches: list[HeadWatch] = []


def watch_head(sweep: str, address: str, lease: Any) -> None:
    """Start watching the GCS this driver is connected to (after `ray.init`); `stop_watching` ends it."""
    import ray

    try:
        gcs = str(ray.get_runtime_context().gcs_address)
    except Exception:  # no address to watch: Ray's own limit ends a driver whose head is gone
        return
    host, _, port = gcs.rpartition(":")
    if not host or not port.isdigit():
        return
    limit = limit_s()
    shown = address if address and address != "local" else ""
    shown = gcs if shown == "auto" else shown
    watch = HeadWatch((host.strip("[]"), int(port)), limit, functools.partial(_end_driver, sweep, shown, limit, lease))
    watch.embedded = not shown
    _watches.append(watch.start())


def stop_watching(embedded_only: bool = False) -> None:
    """Stop the watch (`embedded_only`: only the watch of embedded Ray's head, before `ray.shutdown` stops it; a
    cluster's head that dies while the driver shuts down still ends it with the line, not Ray's C++)."""
    for watch in [w for w in _watches if w.embedded or not embedded_only]:
        watch.stop()
        _watches.remove(watch)


def _end_driver(sweep: str, address: str, limit: float, lease: Any, away: float) -> None:
    """The head is gone: one line, the lease given up (at most a few seconds: the store may be away too), exit 1,
    now. Not through the main thread: it waits on Ray, which no longer answers, and Ray's shutdown would too."""
    from clowncar.orchestrator import native_stderr
    from clowncar.redact import redact_text

    with contextlib.suppress(Exception):
        sys.stdout.flush()
    print(f"clowncar: error: {redact_text(lost_line(sweep, address, limit))}", file=sys.stderr, flush=True)
    if lease is not None:
        releasing = threading.Thread(target=_release, args=(lease,), daemon=True)
        releasing.start()
        releasing.join(timeout=5)
    with contextlib.suppress(Exception):
        native_stderr.restore(wait_s=1.0)
    os._exit(EXIT_FAILED)


def _release(lease: Any) -> None:
    with contextlib.suppress(Exception):
        lease.stop_renewing()
        lease.store.release_lease(lease.sweep, lease.me.token)
