"""Driver leases: at most one live driver per sweep, recorded in `clowncar_leases` (schema version 3).

A driver (`sweep run`, `resume`, `rerun`, a submitted job) takes its sweep's lease before it touches the sweep,
renews it while it runs (a heartbeat) and deletes it when it ends. A lease whose holder stopped renewing it
expires, so a driver that was SIGKILLed, or whose machine died, blocks the sweep for at most the lease's time;
a caller that can tell the holder is dead (same machine, process gone) may take it at once (`holder_gone`).

Taking a lease is one transaction on both backends: the row is inserted if missing (ON CONFLICT DO NOTHING),
then read under a row lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite's writing transactions begin with BEGIN
IMMEDIATE, which already serializes them), then claimed or refused. Times are the writers' UTC clocks: hosts
whose clocks disagree by more than a few seconds shorten or lengthen a dead holder's lease by that much.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from clowncar.errors import StoreError
from clowncar.store import schema as s
from clowncar.store.bulk import insert_ignore
from clowncar.store.retry import retried_read

_NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Claimant:
    """Who asks for a lease: a random `token` per driver run, a `holder` text for people, and where its
    process lives (`machine`, `pid`, `pid_started`; None where unknown)."""

    token: str
    holder: str
    machine: str | None = None
    pid: int | None = None
    pid_started: int | None = None


class LeaseHeld(StoreError):
    """Another live driver holds the sweep's lease (exit code 2, like every refusal of bad input)."""

    def __init__(self, sweep: str, lease: Mapping[str, Any]) -> None:
        self.sweep, self.lease = sweep, dict(lease)
        until = _aware(lease["expires_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(f"sweep '{sweep}' is being run by {lease['holder']} (its lease runs until {until} and "
                         f"is renewed while that driver lives); wait for it to end, or stop it first: `clowncar sweep "
                         f"stop {sweep}` on its machine, or with --address http://HEAD:8265 for a submitted sweep")


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in ("acquired_at", "renewed_at", "expires_at"):
        out[key] = _aware(out[key])
    return out


def is_live(lease: Mapping[str, Any] | None, now: dt.datetime | None = None,
            holder_gone: Callable[[Mapping[str, Any]], bool] | None = None) -> bool:
    """Whether `lease` (a `get_lease` row) still binds: claimed, not expired, and its holder not known dead."""
    if not lease or not lease.get("token"):
        return False
    now = now or dt.datetime.now(dt.UTC)
    if _aware(lease["expires_at"]) <= now:
        return False
    return not (holder_gone and holder_gone(lease))


class LeaseOps:
    """The lease half of `Store` (mixed in; uses its `_write` / `_read` transactions)."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]

    def acquire_lease(self, sweep: str, who: Claimant, ttl_s: float,
                      holder_gone: Callable[[Mapping[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Take (or renew, for the same token) the lease of `sweep` for `ttl_s` seconds; returns the lease row.

        A lease held by another token that has not expired is refused with `LeaseHeld`, unless `holder_gone`
        says its holder is dead. Works before the sweep exists (the lease names it, it does not point at it)."""
        if ttl_s <= 0:
            raise StoreError(f"a lease needs a positive duration, not {ttl_s}")
        with self._write() as conn:
            now = dt.datetime.now(dt.UTC)
            insert_ignore(conn, s.leases, [{"sweep": sweep, "token": "", "holder": "", "acquired_at": _NEVER,
                                            "renewed_at": _NEVER, "expires_at": _NEVER}])
            row = _row(conn.execute(select(s.leases).where(s.leases.c.sweep == sweep).with_for_update()).one())
            if row["token"] != who.token and is_live(row, now, holder_gone):
                raise LeaseHeld(sweep, row)
            values = {"token": who.token, "holder": who.holder, "machine": who.machine, "pid": who.pid,
                      "pid_started": who.pid_started, "renewed_at": now,
                      "expires_at": now + dt.timedelta(seconds=ttl_s)}
            if row["token"] != who.token:
                values["acquired_at"] = now
            conn.execute(update(s.leases).where(s.leases.c.sweep == sweep).values(**values))
            return {**row, **values}

    def renew_lease(self, sweep: str, token: str, ttl_s: float) -> bool:
        """Extend the lease by `ttl_s` from now; False when `token` no longer holds it (it expired and another
        driver took it, or it was released)."""
        with self._write() as conn:
            now = dt.datetime.now(dt.UTC)
            res = conn.execute(update(s.leases).where(s.leases.c.sweep == sweep, s.leases.c.token == token)
                               .values(renewed_at=now, expires_at=now + dt.timedelta(seconds=ttl_s)))
            return bool(res.rowcount)

    def release_lease(self, sweep: str, token: str) -> bool:
        """Give the lease up (only the holder's token can); True when it was held by `token`."""
        with self._write() as conn:
            res = conn.execute(delete(s.leases).where(s.leases.c.sweep == sweep, s.leases.c.token == token))
            return bool(res.rowcount)

    @retried_read
    def get_lease(self, sweep: str) -> dict[str, Any] | None:
        """The lease row of `sweep` ({sweep, token, holder, machine, pid, pid_started, acquired_at, renewed_at,
        expires_at}, times aware UTC), live or expired, or None when no driver holds or held it."""
        with self._read() as conn:
            row = conn.execute(select(s.leases).where(s.leases.c.sweep == sweep)).one_or_none()
        return _row(row) if row is not None and row.token else None
