"""A sweep's driver while the store's PostgreSQL server restarts, without Ray: the driver renews its lease as soon
as the store is back, though the lease expired in the database meanwhile, so a second driver is refused. Every
server here is this module's own (`restartable_pg`), on 127.0.0.1, stopped and started as a maintenance restart
does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from clowncar.orchestrator.lease import DriverLease
from clowncar.store import open_store
from clowncar.store.lease import LeaseHeld
from clowncar.store.pgserver import create_database, drop_database

PASSWORD = "hunter2-driver"
"""Carried in the URL (the test server trusts loopback, so it is never checked): it must show in no message."""


@pytest.fixture
def pg_url(restartable_pg: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on the module's server, its URL with a password; the server runs again after the test."""
    name = f"driver_{request.node.name[5:40]}".lower().replace("[", "_").replace("]", "").replace("-", "_")
    url = create_database(restartable_pg.url, name).replace("postgres@", f"postgres:{PASSWORD}@")
    yield url
    if not restartable_pg.running:
        restartable_pg.start()
    drop_database(restartable_pg.url, name)


def test_a_lease_that_expired_while_the_store_was_away_is_renewed_as_soon_as_it_is_back(
        pg_url: str, restartable_pg: Any) -> None:
    first, second = open_store(pg_url), open_store(pg_url)
    try:
        with DriverLease(first, "s", ttl_s=3.3, beat_s=3.0, retry_s=0.2) as lease:
            restartable_pg.stop()
            time.sleep(3.5)  # its beat at 3 s is refused, and its 3.3 s run out in the database
            restartable_pg.start()
            time.sleep(0.8)  # well before its next beat would be due (6 s): a failed beat is retried soon
            with pytest.raises(LeaseHeld), DriverLease(second, "s"):  # another driver, as `sweep resume` takes it
                pass
            assert not lease.lost.is_set()
            assert first.get_lease("s")["token"] == lease.me.token
    finally:
        first.close()
        second.close()
