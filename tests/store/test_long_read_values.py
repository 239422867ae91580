"""The long-table readers against values written by hand, not against each other: each path (SQLite's key walk,
the portable DBAPI path) gives the inserted rows in the order of the attempts asked for, typed as DTYPES says
(NULL -> NaN / <NA>, big ints exact, labels as categoricals equal to pandas' own), whatever the batch and chunk
cuts; and each backend takes the path it should."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from clowncar.store import longread
from clowncar.store.longread import Labels, categorical, concat, read_long, tuple_columns, typed

COLUMNS = ("step", "kind", "train_loss", "tokens")
ROWS = {  # attempt_id -> its rows (step, kind, train_loss, tokens), inserted out of step order
    7: [(2, "N", 3.5, 2**53 + 1), (1, "C", None, None), (3, None, 2.25, 5)],
    3: [(1, "C", 4.0, 10)],
    9: [],
    5: [(4, "C", 1.0, None), (2, "N", math.inf, 3), (1, None, 0.5, 1), (3, "C", 1e-300, 4)],
}


@pytest.fixture
def conn() -> Any:
    engine = create_engine("sqlite://")
    with engine.connect() as c:
        c.execute(text("CREATE TABLE steps (attempt_id INTEGER, step INTEGER, kind TEXT, train_loss REAL, "
                       "tokens INTEGER, PRIMARY KEY (attempt_id, step))"))
        for attempt, rows in ROWS.items():
            for step, kind, loss, tokens in rows:
                c.execute(text("INSERT INTO steps VALUES (:a, :s, :k, :l, :t)"),
                          {"a": attempt, "s": step, "k": kind, "l": loss, "t": tokens})
        yield c
    engine.dispose()


def expected(ids: list[int]) -> tuple[list[tuple[Any, ...]], list[int]]:
    rows, pos = [], []
    for k, attempt in enumerate(ids):
        for row in sorted(ROWS[attempt]):
            rows.append(row)
            pos.append(k)
    return rows, pos


def as_rows(cols: dict[str, Any]) -> list[tuple[Any, ...]]:
    kind = categorical(cols["kind"])
    out = []
    for i in range(len(cols["step"])):
        loss = cols["train_loss"][i]
        tokens = cols["tokens"][i]
        out.append((int(cols["step"][i]), None if pd.isna(kind[i]) else kind[i],
                    None if math.isnan(loss) else float(loss), None if tokens is pd.NA else int(tokens)))
    return out


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize("ids", [[7, 3, 9, 5], [5, 3], [9], [3, 7], [5, 7, 3]])
@pytest.mark.parametrize("row_batch, id_chunk", [(1 << 18, 500), (2, 1), (3, 2)])
def test_each_path_gives_the_rows_of_the_attempts_asked_in_their_order(conn: Any, portable: bool, ids: list[int],
                                                                       row_batch: int, id_chunk: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(longread, "ROW_BATCH", row_batch)
    monkeypatch.setattr(longread, "ID_CHUNK", id_chunk)
    cols, pos = read_long(conn, "steps", COLUMNS, ("step",), ids, portable=portable)
    rows, want_pos = expected(ids)
    assert as_rows(cols) == rows and list(pos) == want_pos and pos.dtype == np.intp
    if rows:
        assert cols["step"].dtype == np.int64 and cols["train_loss"].dtype == np.float64
        assert str(cols["tokens"].dtype) == "Int64"


def test_no_rows_give_empty_object_columns(conn: Any) -> None:
    for portable in (False, True):
        cols, pos = read_long(conn, "steps", COLUMNS, ("step",), [9], portable=portable)
        assert len(pos) == 0 and pos.dtype == np.intp and all(len(categorical(v) if c == "kind" else v) == 0
                                                              for c, v in cols.items())
    cols, pos = read_long(conn, "steps", COLUMNS, ("step",), [], portable=True)
    assert pos.dtype == np.intp and {c: v.dtype for c, v in cols.items()} == dict.fromkeys(COLUMNS, np.dtype(object))


def test_sqlite_takes_its_key_walk_and_portable_or_other_backends_the_dbapi_path(
        conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []
    real_sqlite, real_fetch = longread.sqlite_columns, longread.fetch_columns
    monkeypatch.setattr(longread, "sqlite_columns", lambda *a: used.append("sqlite") or real_sqlite(*a))
    monkeypatch.setattr(longread, "fetch_columns", lambda *a: used.append("fetch") or real_fetch(*a))
    monkeypatch.setattr(longread, "copy_columns", lambda *a: pytest.fail("COPY on SQLite"))
    read_long(conn, "steps", COLUMNS, ("step",), [3])
    assert used == ["sqlite"]
    read_long(conn, "steps", COLUMNS, ("step",), [3], portable=True)
    assert used == ["sqlite", "fetch"]
    monkeypatch.setattr(conn.dialect, "name", "mysql")  # any other backend: the portable path, never COPY
    read_long(conn, "steps", COLUMNS, ("step",), [3])
    assert used == ["sqlite", "fetch", "fetch"]


def test_columns_are_typed_with_nulls_as_nan_or_na_and_ints_exact() -> None:
    ints = typed(np.array([1, None, 2**62], dtype=object), "Int64")
    assert list(ints.to_numpy(dtype=object, na_value=None)) == [1, None, 2**62] and str(ints.dtype) == "Int64"
    assert list(ints._data) == [1, 0, 2**62]  # a masked slot holds 0
    floats = typed(np.array([1.5, None], dtype=object), "float64")
    assert floats.dtype == np.float64 and floats[0] == 1.5 and math.isnan(floats[1])
    labels = np.array(["a", None], dtype=object)
    assert typed(labels, "category") is labels
    assert list(typed(np.array([3, 4], dtype=object), "int64")) == [3, 4]


def test_row_tuples_become_typed_columns_by_the_fast_loop_or_the_general_cast() -> None:
    rows = [(1, "C", 2.0, 5), (2, None, None, None), (3, "N", 1.5, 2**60)]
    out = tuple_columns(rows, COLUMNS)
    assert out["step"].dtype == np.int64 and list(out["step"]) == [1, 2, 3]
    assert out["train_loss"].dtype == np.float64 and math.isnan(out["train_loss"][1])
    assert list(out["tokens"].to_numpy(dtype=object, na_value=None)) == [5, None, 2**60]
    assert isinstance(out["kind"], Labels) and list(categorical(out["kind"]).astype(object)) == ["C", np.nan, "N"]
    full = tuple_columns([(1, "C", 2.0, 5)], COLUMNS)  # no NULL: the fast loop, a mask of zeros
    assert str(full["tokens"].dtype) == "Int64" and not full["tokens"].isna().any()
    assert full["train_loss"].dtype == np.float64
    empty = tuple_columns([], COLUMNS)
    assert {c: len(categorical(v) if c == "kind" else v) for c, v in empty.items()} == dict.fromkeys(COLUMNS, 0)


def test_labels_joined_over_batches_equal_pandas_categorical_of_the_whole_column() -> None:
    batches = [["b", None, "a"], [], ["c", "b"], [None]]
    labels = Labels.join([Labels.of(np.array(b, dtype=object)) for b in batches])
    whole = pd.Categorical([v for b in batches for v in b])
    got = labels.categorical()
    assert list(got.categories) == list(whole.categories) == ["a", "b", "c"]
    assert list(got.codes) == list(whole.codes) and got.codes.dtype == whole.codes.dtype
    empty = Labels([]).categorical()
    assert len(empty) == 0 and empty.codes.dtype == np.int8
    assert empty.categories.dtype == pd.Categorical(np.array([], dtype=object)).categories.dtype  # as the plain path
    assert list(categorical(np.array(["x", None], dtype=object)).codes) == [0, -1]


def test_concatenation_keeps_dtypes_and_one_part_as_it_is() -> None:
    one = np.array([1, 2])
    assert concat([one]) is one
    assert list(concat([np.array([1]), np.array([2, 3])])) == [1, 2, 3]
    a = pd.array([1, None], dtype="Int64")
    b = pd.array([3], dtype="Int64")
    joined = concat([a, b])
    assert str(joined.dtype) == "Int64" and list(joined.to_numpy(dtype=object, na_value=None)) == [1, None, 3]
    assert isinstance(joined, pd.api.extensions.ExtensionArray)
