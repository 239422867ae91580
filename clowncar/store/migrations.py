"""Schema versions and forward migrations of the `clowncar_` tables.

`clowncar_schema` holds one row with the version the database was written by. Opening a store:
- no `clowncar_` tables yet: create the current schema and record SCHEMA_VERSION;
- an older version: run each migration `v -> v+1` in order, all in the opener's transaction (so a failed
  upgrade leaves the database as it was; SQLite and PostgreSQL both have transactional DDL);
- a newer version: refuse with a one-line StoreError (old code must not write a newer layout).

History:
- 1: sweeps, trials, attempts, steps, evals, artifacts.
- 2: sweeps gain `source` (run | import) and `parent_id` (the sweep a rerun repeats); new `clowncar_probes`
  (fixed-batch probe losses) and `clowncar_metrics` (every number of result.json as a row, backfilled from
  the stored results).
- 3: new `clowncar_named_evals` (every final / eval line of an imported log as its own metric, with its eval
  mode, weights, quant scheme and source line). A migration step of its own: it only creates that table.
- 4: sweeps gain `reason` (why a sweep failed); new `clowncar_leases` (the one live driver of each sweep:
  `clowncar.store.lease`). A step of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, insert, inspect, select, text, update

from clowncar.errors import StoreError
from clowncar.store import SCHEMA_VERSION
from clowncar.store import schema as s


def numeric_metrics(result: Any) -> dict[str, float]:
    """Every top-level number of a result.json dict (bools as 0/1), for the metric rows."""
    if not isinstance(result, dict):
        return {}
    out: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, int | float):  # bool is an int: over_cap becomes 0/1
            out[key] = float(value)
    return out


def _migrate_1_to_2(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE clowncar_sweeps ADD COLUMN source VARCHAR(10) NOT NULL DEFAULT 'run'"))
    conn.execute(text("ALTER TABLE clowncar_sweeps ADD COLUMN parent_id INTEGER "
                      "REFERENCES clowncar_sweeps (id)"))
    for table in s.V2_TABLES:
        table.create(conn)
    rows = []
    for attempt_id, result in conn.execute(select(s.attempts.c.id, s.attempts.c.result)):
        rows += [{"attempt_id": attempt_id, "name": k, "value": v} for k, v in numeric_metrics(result).items()]
    if rows:
        conn.execute(insert(s.metrics), rows)


def _migrate_2_to_3(conn: Connection) -> None:
    for table in s.V3_TABLES:
        table.create(conn)


def _migrate_3_to_4(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE clowncar_sweeps ADD COLUMN reason TEXT"))
    for table in s.V4_TABLES:
        table.create(conn)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3,
                                                       3: _migrate_3_to_4}
"""MIGRATIONS[v] upgrades a version-v database to version v+1."""


OPTUNA_TABLES = frozenset({
    "alembic_version", "studies", "study_directions", "study_system_attributes", "study_user_attributes",
    "trial_heartbeats", "trial_intermediate_values", "trial_params", "trial_system_attributes",
    "trial_user_attributes", "trial_values", "trials", "version_info"})
"""Optuna's own tables (its RDB storage, optuna 3-5): they share the store's database, so a database holding only
them may become a store."""


def _lock(conn: Connection) -> None:
    """Serialize schema set-up between processes opening the same database at once."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7340120)"))
    # SQLite: the caller's transaction already began with BEGIN IMMEDIATE (the write lock).


def read_version(conn: Connection) -> int | None:
    """The stored schema version, or None when the database has no clowncar tables."""
    names = set(inspect(conn).get_table_names())
    if s.schema_table.name in names:
        version = conn.execute(select(s.schema_table.c.version).where(s.schema_table.c.id == 1)).scalar()
        if version is None:
            raise StoreError("the store's clowncar_schema table is empty: not a clowncar store")
        return int(version)
    ours = sorted(n for n in names if n.startswith("clowncar_"))
    if ours:
        raise StoreError(f"the database has clowncar tables ({', '.join(ours)}) but no schema version")
    return None


def ensure_schema(conn: Connection, create: bool, where: str) -> int:
    """Create or upgrade the schema inside `conn`'s (writing) transaction; returns the version found."""
    _lock(conn)
    found = usable_version(conn, create, where)
    now = dt.datetime.now(dt.UTC)
    if found is None:
        s.metadata.create_all(conn)
        conn.execute(insert(s.schema_table).values(id=1, version=SCHEMA_VERSION, updated_at=now))
        return SCHEMA_VERSION
    version = found
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
    if version != found:
        conn.execute(update(s.schema_table).where(s.schema_table.c.id == 1)
                     .values(version=version, updated_at=now))
    return found


def usable_version(conn: Connection, create: bool, where: str) -> int | None:
    """The schema version of the database on `conn`, or None when it has no clowncar tables yet and may be given
    them (`create`); a one-line StoreError for a database this clowncar must not open. It only reads, so
    `clowncar doctor` asks it too and never says ok for a database every store command refuses."""
    found = read_version(conn)
    if found is None:
        if not create:
            raise StoreError(f"no clowncar store at {where}")
        # A SQLite file with another application's tables is that application's database (a mistyped --store):
        # ours would be a mess to take out again, and a new file costs nothing. A PostgreSQL database is often
        # shared by design, so there the tables are added beside the others.
        foreign = sorted(set(inspect(conn).get_table_names()) - OPTUNA_TABLES) if conn.dialect.name == "sqlite" else []
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise StoreError(f"the database at {where} holds another application's tables ({shown}): give clowncar "
                             "an empty database or a new file")
        return None
    if found > SCHEMA_VERSION:
        raise StoreError(f"the store at {where} has schema version {found}, newer than this clowncar "
                         f"understands ({SCHEMA_VERSION}); upgrade clowncar")
    return found
