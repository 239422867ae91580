"""The sweep's Optuna storage (`tune.open_study`): the store's own database, one line without the password when it
cannot be used (and whether that is worth waiting for), the race of two sweeps creating its tables on a new
database, the engine options per backend, and the lock file that serializes SQLite's table creation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from clowncar.errors import StoreError
from clowncar.orchestrator import study_storage, tune


def test_the_study_storage_opens_the_stores_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    storage = tune.open_study(url)
    optuna.create_study(study_name="x", storage=storage)
    assert [s.study_name for s in optuna.get_all_study_summaries(tune.open_study(url))] == ["x"]
    assert not (tmp_path / "store.db.optuna-lock").read_text()  # the lock file stays empty


def test_an_unusable_storage_is_one_line_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as err:
        tune.open_study("postgresql+psycopg://u:s3cret@127.0.0.1:1/db?connect_timeout=1")
    assert str(err.value).startswith("optuna storage at postgresql+psycopg://u:***@127.0.0.1:1/db")
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)
    assert err.value.transient is True  # a server that does not answer may be restarting: worth waiting for


def test_a_storage_that_fails_for_good_says_so_so_that_nobody_waits_for_it(monkeypatch) -> None:
    def bad(url: str, engine_kwargs: dict[str, Any]) -> Any:
        raise ValueError("Could not parse SQLAlchemy URL")

    monkeypatch.setattr(study_storage, "RetryingRDBStorage", bad)
    with pytest.raises(StoreError) as err:
        tune.open_study("postgresql+psycopg://u@h/db")
    assert err.value.transient is False


def test_the_loser_of_a_table_creation_race_waits_and_retries(monkeypatch, tmp_path: Path) -> None:
    attempts: list[int] = []
    real = study_storage.RetryingRDBStorage
    sleeps: list[float] = []

    def racing(url: str, engine_kwargs: dict[str, Any]) -> Any:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError('relation "studies" already exists')
        return real(url, engine_kwargs=engine_kwargs)

    monkeypatch.setattr(study_storage, "RetryingRDBStorage", racing)
    monkeypatch.setattr(tune.time, "sleep", sleeps.append)
    tune.open_study(f"sqlite:///{tmp_path / 's.db'}")
    assert len(attempts) == 3 and sleeps == [1, 2]


def test_a_race_that_never_ends_gives_up_after_six_tries(monkeypatch, tmp_path: Path) -> None:
    class IntegrityError(Exception):
        pass

    calls: list[int] = []
    monkeypatch.setattr(study_storage, "RetryingRDBStorage", lambda url, engine_kwargs: calls.append(1) or (
        _ for _ in ()).throw(IntegrityError("duplicate key")))
    monkeypatch.setattr(tune.time, "sleep", lambda s: None)
    with pytest.raises(StoreError, match="duplicate key"):
        tune.open_study(f"sqlite:///{tmp_path / 's.db'}")
    assert len(calls) == 6


def test_sqlite_gets_a_busy_timeout_and_servers_a_pre_ping_and_a_connect_timeout(monkeypatch, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(study_storage, "RetryingRDBStorage", lambda url, engine_kwargs: seen.append(engine_kwargs))
    tune.open_study(f"sqlite:///{tmp_path / 's.db'}")
    tune.open_study("postgresql+psycopg://u@h/db")
    tune.open_study("mysql+pymysql://u@h/db")
    # a server's restart leaves dead connections in the pool: pinged and replaced at checkout, as the store's are
    assert seen == [{"connect_args": {"timeout": 60}},
                    {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}, {"pool_pre_ping": True}]


def test_the_sqlite_lock_sits_beside_the_database(tmp_path: Path) -> None:
    import fcntl

    db = tmp_path / "deep" / "c.db"
    with tune._sqlite_lock(f"sqlite:///{db}"):
        lock = tmp_path / "deep" / "c.db.optuna-lock"
        with lock.open("a") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while inside
    with lock.open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and released after
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql://u@h/db"):
        with tune._sqlite_lock(url):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    query = f"sqlite:///{db}?password=hunter2&timeout=5"  # the same file, and no secret in a file name
    with tune._sqlite_lock(query), lock.open("a") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert sorted(p.name for p in db.parent.iterdir()) == ["c.db.optuna-lock"]
