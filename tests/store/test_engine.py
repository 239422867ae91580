"""The store's engine: a URL is refused before any connection when it cannot work, SQLite is set up for one
writer at a time, a server connection that died is replaced, and every error is one line without the password."""

from __future__ import annotations

import errno
import sqlite3
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from clowncar.errors import StoreError
from clowncar.store import engine as engine_mod
from clowncar.store import open_store, resolve_url
from clowncar.store.engine import WRITE_OPTION, make_engine, parse_url, safe_url, store_error

PW = "Zq9-s3cret"
EXPECTED = "(expected e.g. sqlite:///runs/clowncar.db or postgresql+psycopg://user@host/db)"


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


# --- URLs ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "shown"), [
    ("not a url", "'not a url'"),
    ("", "''"),
    (f"postgresql+psycopg://u:{PW}@db:port/x", "'postgresql+psycopg://u:***@db:port/x'"),
])
def test_a_malformed_url_is_refused_in_one_line_with_its_password_hidden(url: str, shown: str) -> None:
    with pytest.raises(StoreError) as err:
        parse_url(url)
    assert str(err.value) == f"not a database URL: {shown} {EXPECTED}"


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://u:p@PWTAIL@db/x",
    # with a ':' after the '@' the URL does not even parse (the port would be "PWTAIL:w@db"); masked, the URL in a
    # 'not a database URL' line read like a valid one, and the user could not see what was wrong
    "postgresql+psycopg://u:p@PWTAIL:w@db/x",
    "postgresql+psycopg://u:p@PWTAIL:w@db:5432/x",
])
def test_an_unescaped_at_sign_in_the_password_is_refused_without_naming_any_part_of_it(url: str) -> None:
    with pytest.raises(StoreError) as err:
        parse_url(url)
    host = url.rsplit("@", 1)[1]
    assert str(err.value) == (f"the store URL postgresql+psycopg://u:***@{host} has an '@' in its password "
                              "(percent-encode it: '@' is %40, ':' is %3A)")
    assert "PWTAIL" not in str(err.value)


def test_a_percent_encoded_at_sign_is_a_password_like_any_other() -> None:
    url = parse_url("postgresql+psycopg://u:p%40ss@db:5432/x")
    assert (url.username, url.password, url.host, url.port, url.database) == ("u", "p@ss", "db", 5432, "x")
    assert safe_url(url) == "postgresql+psycopg://u:***@db:5432/x"


def test_safe_url_hides_the_password_of_a_parsed_url_and_of_a_string() -> None:
    raw = f"postgresql+psycopg://u:{PW}@db:5432/x?sslmode=require"
    expected = "postgresql+psycopg://u:***@db:5432/x?sslmode=require"
    assert safe_url(parse_url(raw)) == expected and safe_url(raw) == expected


def test_a_parsed_url_is_shown_with_its_database_as_typed(tmp_path: Path) -> None:
    # SQLAlchemy renders the database percent-encoded: sqlite:///:memory: read sqlite:///%3Amemory%3A
    for url in ("sqlite:///:memory:", "sqlite:////data/runs:2026/c.db", "postgresql+psycopg://u@db/a:b?sslmode=require"):
        assert safe_url(parse_url(url)) == url
    assert safe_url(parse_url(f"postgresql+psycopg://u:{PW}@db/a:b")) == "postgresql+psycopg://u:***@db/a:b"
    with pytest.raises(StoreError) as err:
        open_store("sqlite:///:memory:", create=False)
    assert str(err.value) == "no clowncar store at sqlite:///:memory:"
    missing = f"sqlite:///{tmp_path}/runs:2026/c.db"
    with pytest.raises(StoreError) as err:
        make_engine(parse_url(missing), create=False)
    assert str(err.value) == f"no store at {missing} (nothing has been written there yet)"


def test_a_sqlite_path_under_the_home_folder_is_expanded_for_every_opener(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_url("sqlite:///~/runs/c.db") == _sqlite(tmp_path / "runs" / "c.db")
    assert resolve_url(" sqlite:////abs/c.db ") == "sqlite:////abs/c.db"
    assert resolve_url("sqlite:///rel/~c.db") == "sqlite:///rel/~c.db"
    engine = make_engine(parse_url(resolve_url("sqlite:///~/runs/c.db")), create=True)
    engine.dispose()
    assert (tmp_path / "runs" / "c.db").is_file() and not Path("~").exists()


def test_optuna_opens_the_same_database_as_the_store_for_a_home_path(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.orchestrator.tune import open_study

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    storage = open_study("sqlite:///~/runs/c.db")
    storage.remove_session()
    tables = {r[0] for r in sqlite3.connect(tmp_path / "runs" / "c.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "studies" in tables and not (tmp_path / "~").exists()


# --- error lines --------------------------------------------------------------------------------------------

class _DriverError(Exception):
    pass


class _Wrapped(Exception):
    """As SQLAlchemy wraps a driver's exception: its own text, the driver's in `orig`."""

    def __init__(self, orig: BaseException | None) -> None:
        super().__init__("(wrapped) SQLAlchemy's own text")
        self.orig = orig


@pytest.mark.parametrize(("err", "line"), [
    (_Wrapped(_DriverError(f"\n  \n  connection failed: {PW} rejected  \nDETAIL: {PW}\n")),
     "connection failed: *** rejected"),
    (_Wrapped(_DriverError("")), "_DriverError"),
    (_Wrapped(None), "(wrapped) SQLAlchemy's own text"),
    (_DriverError("   \n"), "_DriverError"),
    (_DriverError("reached postgresql://other:hunter2@h/db instead"), "reached postgresql://other:***@h/db instead"),
])
def test_a_store_error_is_the_first_line_of_the_drivers_message_with_every_password_masked(
        err: BaseException, line: str) -> None:
    url = parse_url(f"postgresql+psycopg://u:{PW}@db/x")
    assert str(store_error(err, url, "cannot open store")) == f"cannot open store postgresql+psycopg://u:***@db/x: {line}"


def test_a_store_error_for_a_url_without_a_password_keeps_the_message() -> None:
    err = store_error(_DriverError("no such table: x"), parse_url("sqlite:///a.db"), "cannot read")
    assert str(err) == "cannot read sqlite:///a.db: no such table: x"


# --- SQLite -------------------------------------------------------------------------------------------------

def test_a_missing_sqlite_store_is_not_created_by_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "none.db"
    with pytest.raises(StoreError) as err:
        make_engine(parse_url(_sqlite(path)), create=False)
    assert str(err.value) == f"no store at {_sqlite(path)} (nothing has been written there yet)"
    assert not (tmp_path / "sub").exists()


def test_an_empty_file_is_not_a_store_for_a_reader_and_stays_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError) as err:
        make_engine(parse_url(_sqlite(path)), create=False)
    assert str(err.value) == f"no store at {_sqlite(path)} (the file is empty)"
    assert path.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    make_engine(parse_url(_sqlite(path)), create=True).dispose()  # a writer may start a database there


def test_a_writer_creates_the_folders_of_a_new_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.db"
    engine = make_engine(parse_url(_sqlite(path)), create=True)
    engine.dispose()
    assert path.is_file()


def test_an_existing_store_opens_for_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    engine = make_engine(parse_url(_sqlite(path)), create=False)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
    engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:",
                                 "sqlite:///file:cc_engine_mem?mode=memory&cache=shared&uri=true"])
def test_in_memory_and_uri_databases_are_not_checked_as_files(url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_engine(parse_url(url), create=False).dispose()
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_a_store_folder_should_be_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("a file\n")
    with pytest.raises(StoreError) as err:
        make_engine(parse_url(_sqlite(tmp_path / "f.txt" / "x.db")), create=True)
    assert str(err.value) == (f"cannot create the store directory {tmp_path / 'f.txt'}: it (or a folder above it) "
                              "exists and is not a directory")


@pytest.mark.parametrize(("raised", "reason"), [
    (OSError(errno.EACCES, "Permission denied"), "Permission denied"),
    (OSError("quota exceeded"), "quota exceeded"),
])
def test_a_store_folder_that_cannot_be_made_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     raised: OSError, reason: str) -> None:
    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(StoreError) as err:
        make_engine(parse_url(_sqlite(tmp_path / "new" / "x.db")), create=True)
    assert str(err.value) == f"cannot create the store directory {tmp_path / 'new'}: {reason}"


def test_a_sqlite_path_that_cannot_be_opened_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as err:  # a directory exists where the file should be
        make_engine(parse_url(_sqlite(tmp_path)), create=True)
    assert str(err.value) == f"cannot open store {_sqlite(tmp_path)}: unable to open database file"


def test_every_sqlite_connection_gets_wal_the_busy_wait_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(parse_url(_sqlite(tmp_path / "c.db")), create=True)
    with engine.connect() as conn:
        pragmas = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                   for name in ("busy_timeout", "journal_mode", "synchronous", "foreign_keys")}
    engine.dispose()
    assert pragmas == {"busy_timeout": 60_000, "journal_mode": "wal", "synchronous": 1, "foreign_keys": 1}


def test_a_pooled_sqlite_connection_serves_another_thread(tmp_path: Path) -> None:
    engine = make_engine(parse_url(_sqlite(tmp_path / "c.db")), create=True)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            with engine.connect() as conn:  # the pool hands back the connection the main thread made
                conn.exec_driver_sql("SELECT 1")
        except BaseException as err:  # handed to the main thread
            errors.append(err)

    worker = threading.Thread(target=read)
    worker.start()
    worker.join()
    engine.dispose()
    assert errors == []


def _other_writer(path: Path) -> str:
    """What a second process sees when it tries to write now, without waiting."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return "wrote"
    except sqlite3.OperationalError as err:
        return str(err)
    finally:
        other.close()


def _engine_with_a_table(path: Path) -> Any:
    """A store engine on a new SQLite file holding one empty table `t`."""
    engine = make_engine(parse_url(_sqlite(path)), create=True)
    with engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("CREATE TABLE t (x)")
    return engine


def test_a_writing_transaction_takes_the_write_lock_at_begin_and_a_reading_one_does_not(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    engine = _engine_with_a_table(path)
    with engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("SELECT count(*) FROM t")
        assert _other_writer(path) == "wrote"
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        assert _other_writer(path) == "database is locked"  # before any statement of ours
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with engine.connect() as conn:  # committed by leaving the block
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
    engine.dispose()


def test_a_rolled_back_transaction_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    engine = _engine_with_a_table(path)
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
        trans = conn.begin()
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        trans.rollback()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone() == (0,)
    engine.dispose()


# --- drivers and servers ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "message"), [
    (f"mysql://u:{PW}@127.0.0.1/db", "no database driver for mysql://u:***@127.0.0.1/db: No module named 'MySQLdb'"),
    (f"postgresql+nosuch://u:{PW}@127.0.0.1/db",
     "no database driver for postgresql+nosuch://u:***@127.0.0.1/db: Can't load plugin: "
     "sqlalchemy.dialects:postgresql.nosuch (PostgreSQL needs: pip install 'clowncar[postgres]')"),
])
def test_a_missing_driver_is_named_and_postgresql_says_how_to_install_it(url: str, message: str) -> None:
    with pytest.raises(StoreError) as err:
        make_engine(parse_url(url), create=True)
    assert str(err.value) == message


@pytest.mark.parametrize(("query", "reason"), [
    ("timeout=abc", "could not convert string to float: 'abc'"),
    ("check_same_thread=maybe", "String is not true/false: 'maybe'"),
])
def test_a_driver_argument_that_cannot_be_read_is_a_one_line_error(tmp_path: Path, query: str, reason: str) -> None:
    url = f"{_sqlite(tmp_path / 'c.db')}?{query}"
    with pytest.raises(StoreError) as err:
        make_engine(parse_url(url), create=True)
    assert str(err.value) == f"cannot use store URL {url}: {reason}"


@pytest.mark.parametrize(("query", "names"), [("foo=1", "'foo'"), ("foo=1&mode=ro&timeout=5", "'foo', 'mode'")])
def test_a_sqlite_query_argument_the_driver_would_ignore_is_refused_in_one_line(tmp_path: Path, query: str,
                                                                                names: str) -> None:
    # SQLAlchemy warned (two raw lines on stderr, twice under `dashboard`) and went on without it
    url = f"{_sqlite(tmp_path / 'c.db')}?{query}"
    with warnings.catch_warnings(record=True) as seen, pytest.raises(StoreError) as err:
        warnings.simplefilter("always")
        make_engine(parse_url(url), create=True)
    assert not seen, [str(w.message) for w in seen]
    assert str(err.value) == (f"cannot use store URL {url}: query argument(s) {names} are not accepted by the "
                              "pysqlite driver (SQLite URI arguments need uri=true in the URL)")
    make_engine(parse_url(f"{_sqlite(tmp_path / 'c.db')}?timeout=5"), create=True).dispose()  # its own: kept


def test_an_unreachable_server_is_one_line_and_names_no_password(monkeypatch: pytest.MonkeyPatch,
                                                                 closed_port: int) -> None:
    port = closed_port
    made: list[Any] = []
    real = engine_mod.create_engine

    def record(url: Any, **kwargs: Any) -> Any:
        made.append((kwargs, real(url, **kwargs)))
        return made[-1][1]

    monkeypatch.setattr(engine_mod, "create_engine", record)
    with pytest.raises(StoreError) as err:
        make_engine(parse_url(f"postgresql+psycopg://u:{PW}@127.0.0.1:{port}/db"), create=True)
    assert str(err.value).startswith(f"cannot open store postgresql+psycopg://u:***@127.0.0.1:{port}/db: ")
    assert "Connection refused" in str(err.value) and "\n" not in str(err.value) and PW not in str(err.value)
    kwargs, engine = made[0]
    assert kwargs == {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    assert engine.pool.checkedin() == 0  # disposed: no pool is left holding anything


@pytest.mark.postgres
def test_a_server_connection_that_died_is_replaced_before_use(pg_admin_url: str) -> None:
    engine = make_engine(parse_url(pg_admin_url), create=False)
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = make_engine(parse_url(pg_admin_url), create=False)
    with killer.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one() is True
    killer.dispose()
    with engine.connect() as conn:  # the pooled connection is dead: the ping finds it and connects anew
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    engine.dispose()


def test_the_userinfo_checked_for_a_second_at_sign_is_the_part_before_the_first_slash() -> None:
    netloc = engine_mod._netloc
    assert netloc("postgresql://u:p@h:5432/db/x@y") == "u:p@h:5432"  # an '@' of the path is not the password's
    assert netloc("postgresql://u@h/db?next=a://b@c") == "u@h"  # nor one after a second '://'
    assert netloc("postgresql://u:p @h/db") == "u:p @h"
    assert netloc("no scheme at all") == ""


def test_a_database_with_a_blank_and_a_colon_is_shown_as_typed() -> None:
    assert safe_url(parse_url("sqlite:////tmp/my runs/a:b.db")) == "sqlite:////tmp/my runs/a:b.db"


def test_a_store_error_keeps_whether_the_failure_was_transient() -> None:
    from sqlalchemy.exc import OperationalError

    url = parse_url("postgresql+psycopg://u:pw@127.0.0.1:1/db")
    away = OperationalError("connect", {}, Exception("connection refused"))
    away.connection_invalidated = True
    assert store_error(away, url, "cannot open").transient is True
    assert store_error(ValueError("bad"), url, "cannot open").transient is False
