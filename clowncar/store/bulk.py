"""Dialect-aware inserts: ON CONFLICT constructs for SQLite and PostgreSQL, a COPY path for bulk step rows on
PostgreSQL (psycopg 3), and a portable fallback for any other database SQLAlchemy speaks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, and_, insert, select, tuple_, update


def _dialect_insert(conn: Connection, table: Table) -> Any:
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return None
    return dialect_insert(table)


def _key_cols(table: Table, keys: Sequence[str] | None) -> list[str]:
    return list(keys) if keys else [c.name for c in table.primary_key.columns]


def insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                  keys: Sequence[str] | None = None) -> None:
    """Insert rows; a row whose key (the primary key, or `keys`) exists is left alone."""
    if not rows:
        return
    stmt = _dialect_insert(conn, table)
    if stmt is not None:
        key_cols = _key_cols(table, keys) if keys else None
        conn.execute(stmt.on_conflict_do_nothing(index_elements=key_cols), list(rows))
        return
    key_cols = _key_cols(table, keys)  # portable path: one writer at a time (the head), so check then insert
    wanted = {tuple(r[k] for k in key_cols) for r in rows}
    have = set()
    cols = [table.c[k] for k in key_cols]
    for chunk in _chunks(sorted(wanted, key=repr), 400):
        have |= {tuple(r) for r in conn.execute(select(*cols).where(tuple_(*cols).in_(chunk)))}
    fresh: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for r in rows:
        key = tuple(r[k] for k in key_cols)
        if key not in have and key not in fresh:
            fresh[key] = r
    if fresh:
        conn.execute(insert(table), list(fresh.values()))


def upsert(conn: Connection, table: Table, row: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Insert a row, or update its non-key columns when the key exists (the latest write wins)."""
    stmt = _dialect_insert(conn, table)
    changes = {k: v for k, v in row.items() if k not in keys}
    if stmt is not None:
        stmt = stmt.values(**row)
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys),
                                                set_={k: stmt.excluded[k] for k in changes}))
        return
    cond = and_(*[table.c[k] == row[k] for k in keys])
    if conn.execute(update(table).where(cond).values(**changes)).rowcount == 0:
        conn.execute(insert(table).values(**row))


def _chunks(seq: Sequence[Any], n: int) -> list[Sequence[Any]]:
    return [seq[i:i + n] for i in range(0, len(seq), n)]


def _bulk_path(conn: Connection) -> str | None:
    """The fast path `bulk_insert_ignore` takes: "sqlite" (one prepared INSERT ... ON CONFLICT DO NOTHING,
    executed many times), "copy" (PostgreSQL through psycopg 3), or None (portable: check the keys, insert)."""
    if conn.dialect.name == "sqlite":
        return "sqlite"
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        return "copy"
    return None


def bulk_insert_ignore(conn: Connection, table: Table, columns: Sequence[str],
                       tuples: Sequence[tuple[Any, ...]]) -> None:
    """Many rows as tuples (in `columns` order), duplicates of existing keys ignored. The fast path for
    step rows: one prepared statement executed many times on SQLite, COPY into a staging table then one
    INSERT ... SELECT ... ON CONFLICT DO NOTHING on PostgreSQL with psycopg 3."""
    if not tuples:
        return
    path = _bulk_path(conn)
    cols = ", ".join(columns)
    if path == "sqlite":
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                             list(tuples))
        return
    if path == "copy":
        stage = f"_stage_{table.name}"
        cur = conn.connection.driver_connection.cursor()
        try:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                        f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
                for row in tuples:
                    copy.write_row(row)
            cur.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT DO NOTHING")
            cur.execute(f"DELETE FROM {stage}")  # cheaper than TRUNCATE for one batch; commit empties it too
        finally:
            cur.close()
        return
    insert_ignore(conn, table, [dict(zip(columns, t, strict=True)) for t in tuples])
