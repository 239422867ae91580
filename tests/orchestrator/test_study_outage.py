"""The Optuna study's storage while its PostgreSQL server restarts (`study_storage.RetryingRDBStorage`): an ask and
a tell made in the restart wait for the server and land once; an ask or a tell whose COMMIT landed but whose reply
was lost is not made twice; a server away longer than the window ends in one line without the password."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import psycopg
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from clowncar.errors import StoreError
from clowncar.orchestrator.tune import open_study
from clowncar.store.pgserver import create_database, drop_database

PASSWORD = "hunter2-study"


@pytest.fixture
def pg_study(restartable_pg: Any, request: pytest.FixtureRequest) -> Iterator[tuple[optuna.Study, Any]]:
    """A study in a fresh database of the module's server, its URL carrying a password: (study, server)."""
    name = f"study_{request.node.name[5:40]}"
    url = create_database(restartable_pg.url, name).replace("postgres@", f"postgres:{PASSWORD}@")
    storage = open_study(url)
    yield optuna.create_study(study_name="s", storage=storage), restartable_pg
    storage.engine.dispose()
    if not restartable_pg.running:
        restartable_pg.start()
    drop_database(restartable_pg.url, name)


def failed_connections(study: optuna.Study) -> list[int]:
    """How many times the study's engine met a database error (each try that the server refused)."""
    errors = [0]
    event.listen(study._storage._backend.engine, "handle_error", lambda ctx: errors.__setitem__(0, errors[0] + 1))
    return errors


def test_an_ask_and_a_tell_made_while_the_server_restarts_land_once(pg_study: tuple[optuna.Study, Any]) -> None:
    study, server = pg_study
    first = study.ask()
    study._storage._backend.retry_seconds = 60
    errors = failed_connections(study)
    server.stop()
    out: dict[str, Any] = {}

    def tell_then_ask() -> None:
        try:
            study.tell(first, 1.5)
            out["next"] = study.ask().number
        except Exception as err:
            out["error"] = err

    thread = threading.Thread(target=tell_then_ask, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while errors[0] < 2 and time.monotonic() < deadline:  # refused at least twice: it waits for the server
        time.sleep(0.05)
    assert errors[0] >= 2 and thread.is_alive()
    server.start()
    thread.join(timeout=60)
    assert not thread.is_alive() and out == {"next": 1}
    trials = optuna.load_study(study_name="s", storage=open_study(str(study._storage._backend.url))).trials
    assert [(t.number, t.state, t.value) for t in trials] == [(0, TrialState.COMPLETE, 1.5),
                                                              (1, TrialState.RUNNING, None)]


def lost_reply(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """RDBStorage.`name` whose first call commits and then fails as if the reply to COMMIT never arrived."""
    calls, real = [0], getattr(RDBStorage, name)

    def once(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        value = real(self, *args, **kwargs)
        if calls[0] == 1:
            try:
                raise OperationalError("COMMIT", {}, psycopg.errors.AdminShutdown(
                    "terminating connection due to administrator command"))
            except OperationalError as err:  # as Optuna raises it (its _create_scoped_session)
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from err
        return value

    monkeypatch.setattr(RDBStorage, name, once)
    return calls


@pytest.fixture
def sqlite_study(tmp_path: Path) -> optuna.Study:
    storage = open_study(f"sqlite:///{tmp_path / 'study.db'}")
    storage.retry_seconds = 30
    return optuna.create_study(study_name="s", storage=storage)


def test_an_ask_whose_reply_was_lost_does_not_create_a_second_trial(sqlite_study: optuna.Study,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls = lost_reply(monkeypatch, "_create_new_trial")
    trial = sqlite_study.ask()
    assert calls[0] == 1  # the trial it made is found, not made again
    assert trial.number == 0 and [t.number for t in sqlite_study.trials] == [0]


def test_an_enqueued_trial_whose_reply_was_lost_is_queued_once(sqlite_study: optuna.Study,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = lost_reply(monkeypatch, "_create_new_trial")
    sqlite_study.enqueue_trial({"x": 1.0})
    assert calls[0] == 1
    assert [(t.number, t.state) for t in sqlite_study.trials] == [(0, TrialState.WAITING)]


def test_a_tell_whose_reply_was_lost_is_not_told_again(sqlite_study: optuna.Study,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    trial = sqlite_study.ask()
    calls = lost_reply(monkeypatch, "set_trial_state_values")
    sqlite_study.tell(trial, 2.5)  # a repeat would raise: the trial is already finished
    assert calls[0] == 1
    assert [(t.state, t.value) for t in sqlite_study.trials] == [(TrialState.COMPLETE, 2.5)]


def test_an_error_that_another_try_cannot_cure_is_raised_at_once(sqlite_study: optuna.Study,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    trial = sqlite_study.ask()
    sqlite_study.tell(trial, 1.0)
    calls, real = [0], RDBStorage.set_trial_user_attr

    def counted(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RDBStorage, "set_trial_user_attr", counted)
    with pytest.raises(RuntimeError, match="has already finished"):  # Optuna's UpdateFinishedTrialError
        sqlite_study._storage.set_trial_user_attr(trial._trial_id, "k", 1)
    assert calls[0] == 1


def test_a_study_away_longer_than_the_window_fails_in_one_line_without_the_password(
        pg_study: tuple[optuna.Study, Any]) -> None:
    study, server = pg_study
    study._storage._backend.retry_seconds = 1.5
    errors = failed_connections(study)
    server.stop()
    with pytest.raises(StoreError) as failed:
        study.ask()
    message = str(failed.value)
    assert errors[0] >= 2  # it did retry before it gave up
    assert "\n" not in message and PASSWORD not in message
    assert message.startswith(f"optuna storage failed at postgresql+psycopg://postgres:***@127.0.0.1:{server.port}/")
    assert "Connection refused" in message and message.endswith("(still failing after 1.5 s of retries)")
