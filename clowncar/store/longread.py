"""Reading the long tables (steps, evals, probes) as typed numpy / pandas columns, fast, on every backend.

A sweep's step table runs to millions of rows, so these readers skip SQLAlchemy's row objects and talk to the
DBAPI connection under it:

- SQLite: one query per attempt on the primary key (`WHERE attempt_id = ?`, which walks the key in order: no
  sort, and no `attempt_id` column to convert: each row's attempt is known from the per-attempt counts), and
  each column built straight from the fetched tuples with `np.fromiter` (a C loop per column) in batches of
  rows, so the Python tuples never all live at once.
- PostgreSQL through psycopg: `COPY (...) TO STDOUT` as CSV (the server formats the floats exactly) read by
  pandas' C parser.
- Any other driver: `fetchall`, one 2-D object array, one cast per column.

Every path gives the same columns with the dtypes of `DTYPES` and the same values (NULL -> NaN / <NA>).
pandas and numpy are imported inside the functions so that opening a store for writing stays light.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection

DTYPES = {"step": "int64", "kind": "category", "train_loss": "float64", "lr_scale": "float64",
          "phase": "category", "elapsed_ms": "float64", "tokens": "Int64", "mode": "category", "weights": "category",
          "val_loss": "float64", "val_bpb": "float64", "tokens_scored": "Int64", "bytes_scored": "Int64",
          "probe_loss": "float64", "seq": "int64", "name": "category", "quant": "category", "eval_ms": "float64",
          "line": "Int64", "repeats": "category"}
"""Column types of the long tables, the same on every backend and pandas version: nullable Int64 where a count
may be missing, categoricals for the short labels (missing ones are NaN)."""

ID_CHUNK = 500
"""Attempt ids per `IN (...)` query on the backends that read several attempts per query."""
ROW_BATCH = 1 << 18
"""SQLite rows turned into columns at a time: bounds the memory held by Python row tuples (~80 MB of them)."""

Columns = dict[str, Any]


def read_long(conn: Connection, table: str, columns: Sequence[str], order: Sequence[str],
              ids: Sequence[int], portable: bool = False) -> tuple[Columns, Any]:
    """The rows of the attempts `ids` as {column: array} (label columns as object arrays or `Labels`:
    `categorical` turns them into categoricals) and, for each row, the position of its attempt in `ids`. Rows
    are ordered by that position, then by `order` (the table's key after attempt_id, which the SQLite path
    relies on). `portable` takes the plain DBAPI path whatever the backend: the reference that the fast paths
    are tested against."""
    import numpy as np
    import pandas as pd

    if conn.dialect.name == "sqlite" and not portable:
        cols, counts = sqlite_columns(conn, table, columns, order, ids)
        return cols, np.repeat(np.arange(len(ids), dtype=np.intp), counts)
    fast_pg = conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and not portable
    read = copy_columns if fast_pg else fetch_columns
    chunks = [read(conn, query(table, columns, order, ids[k:k + ID_CHUNK]), columns)
              for k in range(0, len(ids), ID_CHUNK)]
    chunks = [c for c in chunks if len(c["attempt_id"])]
    if not chunks:
        return {c: np.array([], dtype=object) for c in columns}, np.array([], dtype=np.intp)
    cols = {c: concat([ch[c] for ch in chunks]) for c in ("attempt_id", *columns)}
    pos = pd.Index(ids).get_indexer(cols.pop("attempt_id"))
    if (np.diff(pos) < 0).any():
        perm = np.argsort(pos, kind="stable")  # rows of one attempt stay in their SQL (key) order
        cols, pos = {c: v[perm] for c, v in cols.items()}, pos[perm]
    if fast_pg:
        cols = {c: Labels.of(v) if DTYPES[c] == "category" else v for c, v in cols.items()}
    return cols, pos


def query(table: str, columns: Sequence[str], order: Sequence[str], ids: Sequence[int]) -> str:
    """SELECT attempt_id and `columns` of several attempts, in attempt then key order (ids are our own ints)."""
    id_list = ", ".join(str(int(i)) for i in ids)
    return (f"SELECT attempt_id, {', '.join(columns)} FROM {table} WHERE attempt_id IN ({id_list}) "
            f"ORDER BY attempt_id, {', '.join(order)}")


def sqlite_query(table: str, columns: Sequence[str], order: Sequence[str]) -> str:
    """One attempt's rows in key order. `order` is the primary key after attempt_id, so SQLite walks the key
    and sorts nothing (EXPLAIN QUERY PLAN: SEARCH ... USING PRIMARY KEY / INDEX, no TEMP B-TREE)."""
    return f"SELECT {', '.join(columns)} FROM {table} WHERE attempt_id = ? ORDER BY {', '.join(order)}"


def sqlite_columns(conn: Connection, table: str, columns: Sequence[str], order: Sequence[str],
                   ids: Sequence[int]) -> tuple[Columns, Any]:
    """SQLite: (columns, rows per attempt), one query per attempt (no attempt_id column to convert). Label
    columns come back as `Labels` (codes per batch), not as millions of strings."""
    import numpy as np

    sql = sqlite_query(table, columns, order)
    counts = np.zeros(len(ids), dtype=np.int64)
    parts: list[Columns] = []
    rows: list[tuple[Any, ...]] = []
    cur = conn.connection.cursor()
    try:
        for k, attempt_id in enumerate(ids):
            cur.execute(sql, (int(attempt_id),))
            while got := cur.fetchmany(ROW_BATCH - len(rows)):
                counts[k] += len(got)
                rows += got
                if len(rows) >= ROW_BATCH:
                    parts.append(tuple_columns(rows, columns))
                    rows = []
    finally:
        cur.close()
    if rows or not parts:
        parts.append(tuple_columns(rows, columns))
    out = {c: Labels.join([p[c] for p in parts]) if DTYPES[c] == "category" else concat([p[c] for p in parts])
           for c in columns}
    return out, counts


def tuple_columns(rows: list[tuple[Any, ...]], columns: Sequence[str]) -> Columns:
    """Row tuples as one typed array per column: `np.fromiter` straight into int64 / float64 (NULL -> NaN)
    when every value fits, else the general cast of `typed`."""
    import numpy as np
    import pandas as pd

    out: Columns = {}
    for i, c in enumerate(columns):
        dtype, values = DTYPES[c], map(itemgetter(i), rows)
        if dtype in ("int64", "float64", "Int64"):
            try:
                arr = np.fromiter(values, dtype="int64" if dtype == "Int64" else dtype, count=len(rows))
            except (TypeError, ValueError, OverflowError):  # a NULL in an integer column, or a stray type
                values = map(itemgetter(i), rows)
            else:
                out[c] = pd.arrays.IntegerArray(arr, np.zeros(len(arr), dtype=bool)) if dtype == "Int64" else arr
                continue
        labels = np.fromiter(values, dtype=object, count=len(rows))
        out[c] = Labels.of(labels) if dtype == "category" else typed(labels, dtype)
    return out


def copy_columns(conn: Connection, sql: str, columns: Sequence[str]) -> Columns:
    """PostgreSQL via psycopg: COPY ... TO STDOUT as CSV (the server formats floats exactly, shortest form) and
    pandas' C parser reads it."""
    import numpy as np
    import pandas as pd

    cols = ("attempt_id", *columns)
    types = {"attempt_id": "int64", **{c: DTYPES[c] for c in columns}}
    buf = io.BytesIO()
    cur = conn.connection.driver_connection.cursor()
    try:
        with cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buf.write(block)
    finally:
        cur.close()
    if not buf.getbuffer().nbytes:
        return {c: np.array([], dtype=object) for c in cols}
    buf.seek(0)
    frame = pd.read_csv(buf, names=list(cols), header=None, keep_default_na=False, na_values=[""],
                        dtype={c: ("object" if t == "category" else t) for c, t in types.items()})
    return {c: frame[c].to_numpy(dtype=object) if types[c] == "category" else frame[c].array for c in cols}


def fetch_columns(conn: Connection, sql: str, columns: Sequence[str]) -> Columns:
    """Any other DBAPI driver: fetchall, one 2-D object array (a C loop), then one cast per column."""
    import numpy as np

    cols = ("attempt_id", *columns)
    types = {"attempt_id": "int64", **{c: DTYPES[c] for c in columns}}
    cur = conn.connection.cursor()
    try:
        cur.execute(sql)
        rows = cur.fetchall()
    finally:
        cur.close()
    if not rows:
        return {c: np.array([], dtype=object) for c in cols}
    grid = np.array(rows, dtype=object)
    del rows
    return {c: typed(grid[:, i], types[c]) for i, c in enumerate(cols)}


def typed(values: Any, dtype: str) -> Any:
    """An object column from the driver as `dtype` (None -> NaN / <NA>; ints stay exact; labels stay objects)."""
    import numpy as np
    import pandas as pd

    if dtype == "category":
        return values
    if dtype == "Int64":
        mask = pd.isna(values)
        return pd.arrays.IntegerArray(np.where(mask, 0, values).astype(np.int64), mask)
    return values.astype(dtype)


class Labels:
    """A label column as factorized batches: per batch the codes and the distinct values (`pd.factorize`,
    None -> -1), joined into one categorical at the end without ever holding all the strings at once."""

    def __init__(self, parts: list[tuple[Any, Any]]) -> None:
        self.parts = parts

    @classmethod
    def of(cls, values: Any) -> Labels:
        import pandas as pd

        return cls([pd.factorize(values)])

    @classmethod
    def join(cls, many: list[Labels]) -> Labels:
        return cls([p for labels in many for p in labels.parts])

    def categorical(self) -> Any:
        """The same as `pd.Categorical(all values)` (categories sorted as pandas sorts them, None -> NaN):
        only the few distinct values are sorted, the codes are remapped with a lookup table."""
        import numpy as np
        import pandas as pd

        distinct = pd.unique(np.concatenate([u for _, u in self.parts] or [np.array([], dtype=object)]))
        small = pd.Categorical(distinct)  # categories and their dtype exactly as from the full column
        lookup = pd.Index(distinct)
        codes = []
        for part_codes, uniques in self.parts:
            table = np.append(small.codes[lookup.get_indexer(uniques)], -1)  # code -1 (None) -> table[-1] = -1
            codes.append(table[part_codes])
        joined = np.concatenate(codes) if codes else np.array([], dtype=np.int8)
        return pd.Categorical.from_codes(joined, dtype=small.dtype)


def categorical(values: Any) -> Any:
    """A label column as a categorical: `Labels` from the fast paths, `pd.Categorical` of an object array from
    the portable one (the reference the tests hold `Labels` to)."""
    import pandas as pd

    return values.categorical() if isinstance(values, Labels) else pd.Categorical(values)


def concat(parts: list[Any]) -> Any:
    import numpy as np
    import pandas as pd

    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return pd.array(pd.concat([pd.Series(p) for p in parts], ignore_index=True))
