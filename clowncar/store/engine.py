"""Engines for the store: URL parsing, SQLite pragmas, and one-line errors that never show a password."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SAWarning, SQLAlchemyError

from clowncar.errors import StoreError
from clowncar.redact import redact_text, redact_url

SQLITE_BUSY_MS = 60_000
"""How long a SQLite writer waits for another one before giving up (WAL allows one writer at a time)."""

_SQLITE_IGNORED = r"Query string argument\(s\) "
"""How SQLAlchemy's warning about a SQLite URL's query argument that pysqlite would ignore begins."""

WRITE_OPTION = "clowncar_write"
"""Execution option marking a connection whose transactions write (SQLite takes the write lock up front)."""


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        if _netloc(url).count("@") > 1:  # masked, user:p@ss:w@host reads like a valid URL: name the cause
            raise StoreError(_AT_IN_PASSWORD.format(safe_text(url))) from None
        raise StoreError(f"not a database URL: {safe_text(url)!r} (expected e.g. sqlite:///runs/clowncar.db "
                         "or postgresql+psycopg://user@host/db)") from None
    if parsed.host and "@" in parsed.host:
        # user:p@ss@host splits at the first '@': the driver would try to resolve 'ss@host' and print it, half
        # of the password, in its error. Refuse it before any connection, without naming any part of it.
        raise StoreError(_AT_IN_PASSWORD.format(safe_text(url)))
    return parsed


_AT_IN_PASSWORD = "the store URL {} has an '@' in its password (percent-encode it: '@' is %40, ':' is %3A)"


def _netloc(url: str) -> str:
    """The part of a URL between '://' and the next '/' (where user, password and host are)."""
    _, sep, rest = url.partition("://")
    return rest.split("/", 1)[0] if sep else ""


def safe_url(url: URL | str) -> str:
    """The URL as text with its password (userinfo or query form) replaced by *** (`clowncar.redact`), its
    database as typed."""
    if isinstance(url, str):
        return redact_url(url)
    # str() of a URL hides its userinfo password and percent-encodes its database (sqlite:///:memory: would read
    # sqlite:///%3Amemory%3A, a path with a ':' %3A): the database is put back as typed, and redact_text masks a
    # password in the query (rendered percent-encoded, one token)
    text = str(url)
    if url.database:
        head, sep, query = text.partition("?")  # a '?' of the database is encoded: the first one is the query's
        rendered = "/" + quote(url.database, safe=" +/")
        if head.endswith(rendered):
            text = head[: -len(rendered)] + "/" + url.database + sep + query
    return redact_text(text)


def safe_text(text: str) -> str:
    """Free text with every password masked (`clowncar.redact`), for URLs that did not even parse."""
    return redact_text(text)


def _first_line(err: BaseException, password: str | None) -> str:
    orig = getattr(err, "orig", None) or err
    lines = [ln.strip() for ln in str(orig).strip().splitlines() if ln.strip()]
    line = lines[0] if lines else type(orig).__name__
    if password:
        line = line.replace(password, "***")
    return redact_text(line)


def store_error(err: BaseException, url: URL, doing: str) -> StoreError:
    """A one-line StoreError for a database failure, naming the store with its password hidden. It keeps whether
    the failure was transient (`retry.is_transient`: the server away for a moment), which its text alone cannot
    say, for the retries of a running sweep."""
    from clowncar.store.retry import is_transient

    out = StoreError(f"{doing} {safe_url(url)}: {_first_line(err, url.password)}")
    out.transient = is_transient(err)  # type: ignore[attr-defined]
    return out


def _sqlite_setup(engine: Engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE for writing transactions.

    pysqlite's own transaction handling starts a deferred transaction and upgrades it to a write lock on the
    first write; under WAL that upgrade fails at once with "database is locked" (no busy wait) when another
    connection wrote in between. Taking the write lock at BEGIN makes a second writer wait its turn instead;
    readers keep plain deferred transactions and never block anyone."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _make_store_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a directory of the path should be
        raise StoreError(f"cannot create the store directory {directory}: it (or a folder above it) exists and "
                         "is not a directory") from None
    except OSError as err:
        raise StoreError(f"cannot create the store directory {directory}: {err.strerror or err}") from None


def make_engine(url: URL, create: bool) -> Engine:
    """An engine for `url`; SQLite's directory is created (when `create`), other servers are pinged."""
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        db = url.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            path = Path(db)  # what SQLite opens: `~` is expanded by resolve_url, never by SQLite
            if not path.exists():
                if not create:
                    raise StoreError(f"no store at {safe_url(url)} (nothing has been written there yet)")
                _make_store_dir(path.parent)
            elif not create and path.is_file() and path.stat().st_size == 0:
                # SQLite would take an empty file for an empty database and write its header (WAL) into it.
                raise StoreError(f"no store at {safe_url(url)} (the file is empty)")
    else:
        kwargs["pool_pre_ping"] = True
        if url.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():
            # pysqlite ignores a query argument it does not know (SQLite URI arguments without uri=true) with a
            # two-line SAWarning: refused here like every other URL that cannot work as written
            warnings.filterwarnings("error", category=SAWarning, message=_SQLITE_IGNORED)
            engine = create_engine(url, **kwargs)
    except SAWarning as err:
        names = re.sub(_SQLITE_IGNORED + r"(.*?) are not accepted.*", r"\1", str(err), flags=re.DOTALL)
        raise StoreError(f"cannot use store URL {safe_url(url)}: query argument(s) {names} are not accepted by "
                         "the pysqlite driver (SQLite URI arguments need uri=true in the URL)") from None
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as err:
        hint = " (PostgreSQL needs: pip install 'clowncar[postgres]')" if url.get_backend_name() == "postgresql" else ""
        raise StoreError(f"{store_error(err, url, 'no database driver for')}{hint}") from None
    except (ArgumentError, SQLAlchemyError, TypeError, ValueError) as err:  # e.g. ?timeout=abc for SQLite
        raise store_error(err, url, "cannot use store URL") from None
    if url.get_backend_name() == "sqlite":
        _sqlite_setup(engine)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as err:
        engine.dispose()
        raise store_error(err, url, "cannot open store") from None
    return engine
