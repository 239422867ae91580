"""A sweep's driver and `sweep stop` while the store's PostgreSQL server restarts, without Ray: the driver renews its
lease as soon as the store is back, though the lease expired in the database meanwhile, so a second driver is
refused; `sweep stop` does not wait for a store that is away, and says so in one line without the password. Every
server here is this module's own (`restartable_pg`), on 127.0.0.1, stopped and started as a maintenance restart
does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna
import pytest

from clowncar.errors import EXIT_BAD_INPUT, ClownCarError, StoreError
from clowncar.orchestrator import tune
from clowncar.orchestrator.lease import DriverLease
from clowncar.orchestrator.submit import close_after_stop
from clowncar.redact import redact_url
from clowncar.store import open_store
from clowncar.store.lease import LeaseHeld
from clowncar.store.pgserver import create_database, drop_database

SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {"model.crawler_loops": {"grid": [1, 2]}}}
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


@pytest.fixture
def stopped_sweep(pg_url: str) -> str:
    """A sweep `s` with its study and one trial running in the store, as a `sweep stop` finds it."""
    with open_store(pg_url) as store:
        store.create_or_get_sweep("s", SPEC)
        store.start_trial("s", "s/0", 0, 0, {"model": {"loops": 1}}, 1, "node-a")
    optuna.create_study(study_name="s", storage=tune.open_study(pg_url))
    return pg_url


def away_when(where: str, server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stops before the store opens, before the study opens, or once the study is open (its calls
    fail then, as Optuna's StorageInternalError)."""
    if where == "before the store opens":
        server.stop()
        return
    real: Callable[[str], Any] = tune.open_study

    def open_study(url: str) -> Any:
        if where == "before the study opens":
            server.stop()
        storage = real(url)
        server.stop()
        return storage

    monkeypatch.setattr(tune, "open_study", open_study)


@pytest.mark.parametrize("where", ["before the store opens", "before the study opens", "once the study is open"])
def test_stop_with_the_store_away_says_so_in_one_line_without_waiting_for_it(
        stopped_sweep: str, restartable_pg: Any, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    away_when(where, restartable_pg, monkeypatch)
    started = time.monotonic()
    with pytest.raises(StoreError) as failed:
        close_after_stop("s", stopped_sweep, 1)
    assert time.monotonic() - started < 15  # refused at once: no retry window for a one-shot command
    message = str(failed.value)
    assert failed.value.exit_code == EXIT_BAD_INPUT
    assert "\n" not in message and PASSWORD not in message
    assert message.startswith("stopped 1 job(s) of sweep s, but the store did not answer (")
    assert f"postgres:***@127.0.0.1:{restartable_pg.port}/" in message and "Connection refused" in message
    assert message.endswith("its trials may still be marked running; once the store is back, run this command "
                            "again, or `clowncar sweep resume s`, which closes them")
    monkeypatch.undo()
    restartable_pg.start()
    assert close_after_stop("s", stopped_sweep, 1) == 1  # the same command, once the store is back
    with open_store(stopped_sweep) as store:
        assert store.trials_frame()["status"].tolist() == ["stopped"]
        assert store.get_sweep("s")["status"] == "stopped"


def test_stop_raises_a_store_failure_that_another_try_cannot_cure_as_before(stopped_sweep: str) -> None:
    with pytest.raises(ClownCarError) as failed:
        close_after_stop("nope", stopped_sweep, 1)
    # the store named as `sweep status` names it, its password masked (walk 6, F20)
    assert str(failed.value) == f"no sweep named 'nope' in {redact_url(stopped_sweep)}"
    assert PASSWORD not in str(failed.value) and "job(s)" not in str(failed.value)
