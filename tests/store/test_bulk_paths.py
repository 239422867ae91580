"""Which write path each backend takes, and that every path stores the same rows: SQLite and PostgreSQL write
each batch in one statement (ON CONFLICT; step rows by one prepared INSERT on SQLite and by COPY on PostgreSQL),
any other database through the portable check-then-insert path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from clowncar.store import Store, bulk
from clowncar.store import schema as s

T0 = 1_780_000_000.0


def _start(store: Store) -> None:
    store.create_or_get_sweep("sw", {})
    store.start_trial("sw", "t0", 0, 0, {"model": {"crawler_loops": 2}}, 1, "node", started_at=T0)


@pytest.fixture
def statements(store: Store) -> Iterator[list[tuple[str, bool]]]:
    """Every statement SQLAlchemy sends (text, executemany) while the test runs."""
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        seen.append((" ".join(statement.split()), executemany))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(store.engine, "before_cursor_execute", record)


def _touching(seen: list[tuple[str, bool]], table: str) -> list[tuple[str, bool]]:
    return [(st, many) for st, many in seen if table in st and not st.startswith("SELECT clowncar_attempts.id")]


def test_step_rows_go_in_one_statement_on_sqlite_and_by_copy_on_postgresql(store: Store,
                                                                            statements: list) -> None:
    _start(store)
    statements.clear()
    store.add_steps("t0", 0, [{"step": k, "train_loss": 1.0 / k} for k in range(1, 6)])
    store.add_steps("t0", 0, [{"step": 3, "train_loss": 9.0}, {"step": 6, "train_loss": 0.5}])
    touching = _touching(statements, "clowncar_steps")
    if store.engine.dialect.name == "sqlite":
        assert touching == [("INSERT INTO clowncar_steps (attempt_id, step, kind, train_loss, lr_scale, phase, "
                             "elapsed_ms, tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", True)] * 2
    else:  # COPY runs on psycopg's own cursor, below SQLAlchemy: no INSERT of step rows goes through it
        assert touching == []
    frame = store.steps_frame()
    assert frame["step"].tolist() == [1, 2, 3, 4, 5, 6] and frame["train_loss"].tolist()[2] == pytest.approx(1 / 3)


def test_other_rows_go_in_one_on_conflict_statement(store: Store, statements: list) -> None:
    _start(store)
    statements.clear()
    store.add_evals("t0", 0, [{"step": 1, "val_bpb": 2.0}, {"step": 2, "val_bpb": 1.9}])
    store.add_artifact("t0", 0, "runs/t0/model.ptz", 1_000, 10, "ab" * 32)
    store.add_artifact("t0", 0, "runs/t0/model.ptz", 2_000, 20, "cd" * 32)
    evals = _touching(statements, "clowncar_evals")
    arts = _touching(statements, "clowncar_artifacts")
    assert len(evals) == 1 and evals[0][0].startswith("INSERT INTO clowncar_evals")
    assert evals[0][0].endswith("ON CONFLICT DO NOTHING")
    assert len(arts) == 2 and all(a.startswith("INSERT INTO clowncar_artifacts") and
                                  "ON CONFLICT (attempt_id, path) DO UPDATE SET" in a for a, _ in arts)
    assert store.artifacts_frame()["size_bytes"].tolist() == [2_000]


def test_the_portable_path_writes_step_rows_like_the_fast_paths(store: Store, statements: list,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "_dialect_insert", lambda conn, table: None)
    monkeypatch.setattr(bulk, "_bulk_path", lambda conn: None)
    _start(store)
    statements.clear()
    for _ in range(2):
        store.add_steps("t0", 0, [{"step": k, "kind": "C" if k % 2 else "N", "train_loss": 1.0 / k,
                                   "tokens": 64 * k} for k in range(1, 902)])
    store.add_steps("t0", 0, [{"step": 5, "train_loss": 9.0}, {"step": 950, "train_loss": 0.25}])
    frame = store.steps_frame()
    assert frame["step"].tolist() == [*range(1, 902), 950] and frame["train_loss"].iloc[4] == pytest.approx(0.2)
    assert frame["kind"].iloc[0] == "C" and frame["tokens"].iloc[900] == 64 * 901
    selects = [st for st, _ in _touching(statements, "clowncar_steps") if st.startswith("SELECT")]
    assert len(selects) == 3 + 3 + 1  # keys checked 400 at a time: 901 keys in 3 chunks, twice, then 2 keys


def test_bulk_writes_into_two_tables_in_one_session(store: Store) -> None:
    _start(store)
    with store.engine.begin() as conn:
        aid = conn.execute(sa.select(s.attempts.c.id)).scalar_one()
        bulk.bulk_insert_ignore(conn, s.steps, ["attempt_id", "step", "train_loss"], [(aid, 1, 2.5), (aid, 2, 2.4)])
        bulk.bulk_insert_ignore(conn, s.evals, ["attempt_id", "step", "mode", "weights", "val_bpb"],
                                [(aid, 2, "standard", "raw", 1.5)])
        bulk.bulk_insert_ignore(conn, s.steps, ["attempt_id", "step", "train_loss"], [(aid, 2, 9.9), (aid, 3, 2.3)])
        bulk.bulk_insert_ignore(conn, s.steps, ["attempt_id", "step", "train_loss"], [])
    assert store.steps_frame()["train_loss"].tolist() == [2.5, 2.4, 2.3]
    assert store.evals_frame()["val_bpb"].tolist() == [1.5]


def test_chunks_cover_a_sequence_once_in_order() -> None:
    assert bulk._chunks([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]
    assert bulk._chunks([0, 1], 2) == [[0, 1]] and bulk._chunks([], 3) == []


@pytest.mark.parametrize(("name", "driver", "path"), [
    ("sqlite", "pysqlite", "sqlite"), ("postgresql", "psycopg", "copy"),
    ("postgresql", "psycopg2", None),  # COPY here is psycopg 3's API: psycopg2 gets insert_ignore's statements
    ("mysql", "mysqldb", None), ("oracle", "psycopg", None),
])
def test_the_fast_path_is_chosen_by_database_and_driver(name: str, driver: str, path: str | None) -> None:
    from types import SimpleNamespace

    conn = SimpleNamespace(dialect=SimpleNamespace(name=name, driver=driver))  # what _bulk_path reads of a connection
    assert bulk._bulk_path(conn) == path  # type: ignore[arg-type]
