"""Whether a sweep's driver still lives, as `sweep status` and `sweep ls` tell it.

A sweep's stored status is written by its driver, so a driver that dies without a word (SIGKILL, a lost machine,
a store that went away under it) leaves the sweep `running` for good. Its lease says more: a live driver renews it
every few seconds (orchestrator/lease.py), so a sweep marked running whose lease expired, whose holder is known
to be dead (same machine, process gone) or that has no lease at all has no driver. Such a sweep is shown as
`stalled` and its trials marked running as last seen so. Nothing is written: a command that only looks never
changes the store, and `sweep resume` reconciles the sweep when it takes it over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from clowncar.orchestrator.lease import holder_gone
from clowncar.store.lease import is_live

STALLED = "stalled"
"""What a sweep stored as `running` is shown as when no live driver holds its lease (never stored)."""
LAST_SEEN = "last seen running"
"""What a trial stored as running is shown as when no driver lives to run it."""


def driver_lives(lease: Mapping[str, Any] | None, now: dt.datetime | None = None) -> bool:
    """Whether `lease` (`Store.get_lease`'s row, or None) is held by a driver that may still run the sweep."""
    return is_live(lease, now, holder_gone=holder_gone)


def shown_status(stored: str, live: bool) -> str:
    """The status to show for a sweep stored as `stored` whose driver lives (`live`) or not."""
    return STALLED if stored == "running" and not live else stored


def status_of(store: Any, name: str, stored: str) -> str:
    """`shown_status` of sweep `name`, reading its lease only where it matters (a sweep marked running)."""
    if stored != "running":
        return stored
    return shown_status(stored, driver_lives(store.get_lease(name)))


def trial_label(live: bool) -> str:
    """How to name the trials the store marks running: only a live driver runs trials."""
    return "running" if live else LAST_SEEN


def driver_line(name: str, stored: str, lease: Mapping[str, Any] | None, now: dt.datetime | None = None
                ) -> str | None:
    """`sweep status`'s line on the driver: who holds the lease while one lives; for a sweep marked running
    without one, that its driver is gone and how to go on; otherwise nothing."""
    now = now or dt.datetime.now(dt.UTC)
    if lease is not None and driver_lives(lease, now):
        return (f"  driver: {lease['holder']}, lease renewed {lease['renewed_at']:%H:%M:%S}, "
                f"until {lease['expires_at']:%Y-%m-%d %H:%M:%S} UTC")
    if stored != "running":
        return None
    return f"  driver: gone ({_why_gone(lease, now)}); continue it with `clowncar sweep resume {name}`"


def _why_gone(lease: Mapping[str, Any] | None, now: dt.datetime) -> str:
    if lease is None:
        return "no driver holds its lease"
    expires = lease["expires_at"]
    if expires <= now:
        return f"{lease['holder']}, lease expired at {expires:%Y-%m-%d %H:%M:%S} UTC"
    return f"{lease['holder']}, its process has ended"  # known dead before its lease ran out: same machine
