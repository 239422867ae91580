"""The results store: one database for every sweep, trial attempt, step row, eval, probe and artifact.

`open_store(url)` returns a `Store`. SQLite (the default, a file under the runs dir, WAL + busy timeout) for one
machine, PostgreSQL (`postgresql+psycopg://user@host/db`) for a cluster; any SQLAlchemy URL works. Our tables are
prefixed `clowncar_`, so Optuna's RDBStorage can keep its own tables in the same database. Only the head (or a
one-process CLI) writes. Every write is idempotent; reads come back as pandas DataFrames.

This module imports nothing heavy: SQLAlchemy is loaded by `open_store`, pandas by the frame readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clowncar.errors import StoreError

if TYPE_CHECKING:
    from clowncar.store.store import Store

SCHEMA_VERSION = 4
"""The schema version this code writes. Older databases are upgraded on open; newer ones are refused."""

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "open_store", "optuna_engine_kwargs", "resolve_url"]


def resolve_url(url: str | None = None) -> str:
    """The store URL to use: `url`, else the settings' (`CLOWNCAR_STORE`, else SQLite under the runs dir).

    `postgresql://` and `postgres://` mean psycopg 3 (`postgresql+psycopg://`), the driver clowncar ships with;
    a SQLite path that starts with `~` is expanded (SQLite itself would look for a folder named `~`). Hand the
    same string to Optuna's RDBStorage so that both open the same database the same way."""
    if url is None:
        from clowncar.settings import load_settings

        url = load_settings().store_url
    url = url.strip()
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    if url.startswith("sqlite:///~"):
        from pathlib import Path

        return "sqlite:///" + str(Path(url[len("sqlite:///"):]).expanduser())
    return url


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open (and create or upgrade) the results store at SQLAlchemy `url`.

    `url=None` uses `clowncar.settings.load_settings().store_url` (`CLOWNCAR_STORE`, else
    `sqlite:///<runs dir>/clowncar.db`; the directory is created). A database written by an older schema
    version is migrated forward in one transaction; a newer one, an unreachable server, a bad URL or a
    missing driver raise a one-line `StoreError` (the URL is shown with its password hidden).
    `create=False` refuses to create a new database (for read-only commands such as `store ls`)."""
    from clowncar.store.store import Store

    return Store.open(url, create=create)


def optuna_engine_kwargs(url: str) -> dict[str, object]:
    """`engine_kwargs` for `optuna.storages.RDBStorage(url, engine_kwargs=...)` sharing the store's database.

    On SQLite, Optuna's connections must wait for our writers (WAL allows one at a time) instead of failing at
    once with "database is locked"; elsewhere, dead pooled connections are replaced."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def __getattr__(name: str) -> object:
    if name == "Store":
        from clowncar.store.store import Store

        return Store
    raise AttributeError(name)
