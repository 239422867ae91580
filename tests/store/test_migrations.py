"""Schema versions: a version-1 database (tests/store/assets/store_v1.db, made by make_v1_db.py) is upgraded
in place and keeps its data; a newer database is refused; a failed upgrade changes nothing."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select

from clowncar.errors import StoreError
from clowncar.store import SCHEMA_VERSION, migrations, open_store
from clowncar.store import schema as s

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture
def v1_db(tmp_path: Path) -> Path:
    dst = tmp_path / "old.db"
    shutil.copy(ASSETS / "store_v1.db", dst)
    return dst


def _layout(url: str) -> dict:
    engine = create_engine(url)
    insp = inspect(engine)
    out = {t: (sorted(c["name"] for c in insp.get_columns(t)), sorted(insp.get_pk_constraint(t)["constrained_columns"]),
               sorted(i["name"] for i in insp.get_indexes(t)))
           for t in insp.get_table_names()}
    engine.dispose()
    return out


def test_the_committed_v1_file_is_what_the_script_builds(tmp_path):
    spec = importlib.util.spec_from_file_location("make_v1_db", ASSETS / "make_v1_db.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(tmp_path / "fresh.db")
    dump = lambda p: list(sqlite3.connect(p).iterdump())  # noqa: E731
    assert dump(tmp_path / "fresh.db") == dump(ASSETS / "store_v1.db")


def test_a_version_1_store_is_upgraded_and_keeps_its_data(v1_db, tmp_path):
    url = f"sqlite:///{v1_db}"
    with open_store(url) as st:
        assert st.schema_found == 1
        with st.engine.connect() as conn:
            assert conn.execute(select(s.schema_table.c.version)).scalar() == SCHEMA_VERSION == 4
            metrics = {(a, n): v for a, n, v in conn.execute(select(s.metrics))}
        sweeps = st.sweeps_frame()
        assert sweeps[["name", "status", "source", "trials", "ok", "failed"]].values.tolist() == \
            [["v1-sweep", "done", "run", 2, 1, 1]]
        trials = st.trials_frame()
        assert list(trials["val_bpb"].fillna(-1)) == [2.157078, -1]
        assert list(trials["model.crawler_loops"]) == [2, 3] and list(trials["status"]) == ["ok", "diverged"]
        assert trials["provenance.git_commit"].iloc[0] == "0123abcd"
        assert metrics[(1, "val_bpb")] == 2.157078 and metrics[(1, "over_cap")] == 0.0
        assert metrics[(2, "steps")] == 7.0 and (2, "val_bpb") not in metrics  # None is no number
        steps = st.steps_frame()
        assert len(steps) == 47 and steps["train_loss"].iloc[0] == 7.0
        assert st.artifacts_frame()["size_bytes"].tolist() == [15_000_000]
        st.add_probes("v1-sweep-0000", 0, [{"step": 40, "mode": "C", "probe_loss": 3.1}])  # a v2-only table
        assert len(st.probes_frame()) == 1
        st.create_or_get_sweep("v2-rerun", {}, parent="v1-sweep")
    fresh = tmp_path / "fresh.db"
    open_store(f"sqlite:///{fresh}").close()
    assert _layout(url) == _layout(f"sqlite:///{fresh}")  # upgraded == created new
    with open_store(url) as st:
        assert st.schema_found == 4 and st.get_sweep("v2-rerun")["parent"] == "v1-sweep"


def _store_of_version(v1_db: Path, monkeypatch: pytest.MonkeyPatch, version: int) -> sqlite3.Connection:
    """Upgrade the version-1 file with the migrations of `version` (what that release's code did), and hand back
    a connection to look at the file before this code opens it."""
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", version)
    open_store(f"sqlite:///{v1_db}").close()
    monkeypatch.undo()
    db = sqlite3.connect(v1_db)
    assert db.execute("SELECT version FROM clowncar_schema").fetchone() == (version,)
    return db


def test_a_version_2_store_gains_the_named_evals_table_and_keeps_its_data(v1_db, monkeypatch):
    url = f"sqlite:///{v1_db}"
    db = _store_of_version(v1_db, monkeypatch, 2)
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'clowncar_named_evals'").fetchone() == (0,)
    db.close()
    with open_store(url) as st:  # this code: 2 -> 3 creates the table, and nothing else changes
        assert st.schema_found == 2
        assert len(st.steps_frame()) == 47 and st.named_evals_frame().empty
        st.add_named_evals("v1-sweep-0000", 0, [{"seq": 0, "name": "final_int6_sliding_window_exact",
                                                 "mode": "sliding", "weights": "quantized", "quant": "int6",
                                                 "step": 40, "val_loss": 1.9, "val_bpb": 1.12, "line": 81}])
        named = st.named_evals_frame()
        assert named[["name", "mode", "quant", "line"]].values.tolist() == \
            [["final_int6_sliding_window_exact", "sliding", "int6", 81]]


def test_a_version_3_store_gains_leases_and_sweep_reasons_and_keeps_its_data(v1_db, monkeypatch):
    from clowncar.store.lease import Claimant

    url = f"sqlite:///{v1_db}"
    db = _store_of_version(v1_db, monkeypatch, 3)
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'clowncar_leases'").fetchone() == (0,)
    assert "reason" not in [row[1] for row in db.execute("PRAGMA table_info(clowncar_sweeps)")]
    db.close()
    with open_store(url) as st:  # this code: 3 -> 4 adds the leases table and sweeps' reason
        assert st.schema_found == 3 and len(st.steps_frame()) == 47
        st.set_sweep_status("v1-sweep", "failed", "Ray did not start")
        assert st.get_sweep("v1-sweep")["reason"] == "Ray did not start"
        assert st.acquire_lease("v1-sweep", Claimant(token="t1", holder="test"), ttl_s=30)["token"] == "t1"


def test_a_failed_upgrade_leaves_the_old_database_as_it_was(v1_db, monkeypatch):
    def broken(conn):
        migrations._migrate_1_to_2(conn)
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(migrations.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError):
        open_store(f"sqlite:///{v1_db}")
    db = sqlite3.connect(v1_db)
    assert db.execute("SELECT version FROM clowncar_schema").fetchone() == (1,)
    assert "source" not in [r[1] for r in db.execute("PRAGMA table_info(clowncar_sweeps)")]
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'clowncar_metrics'").fetchone() == (0,)


def test_a_store_newer_than_the_code_is_refused_with_one_line(v1_db, run_cli):
    db = sqlite3.connect(v1_db)
    db.execute("UPDATE clowncar_schema SET version = 9")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 9, newer than this clowncar understands"):
        open_store(f"sqlite:///{v1_db}")
    proc = run_cli("store", "ls", "--store", f"sqlite:///{v1_db}")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "newer than this clowncar" in proc.stderr


def test_foreign_clowncar_tables_without_a_version_are_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "odd.db")
    db.execute("CREATE TABLE clowncar_sweeps (id INTEGER)")
    db.commit()
    with pytest.raises(StoreError, match="no schema version"):
        open_store(f"sqlite:///{tmp_path / 'odd.db'}")


def test_a_database_without_clowncar_tables_is_not_a_store_to_a_reader(tmp_path):
    db = sqlite3.connect(tmp_path / "other.db")
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    with pytest.raises(StoreError) as err:
        open_store(f"sqlite:///{tmp_path / 'other.db'}", create=False)
    assert str(err.value) == f"no clowncar store at sqlite:///{tmp_path / 'other.db'}"


def test_another_applications_database_is_not_made_a_store_and_optunas_tables_may_share_one(tmp_path):
    db = sqlite3.connect(tmp_path / "other.db")
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    url = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(StoreError) as err:
        open_store(url)
    assert str(err.value) == (f"the database at {url} holds another application's tables (notes): give clowncar an "
                              "empty database or a new file")
    assert set(inspect(create_engine(url)).get_table_names()) == {"notes"}  # nothing added
    import optuna

    study_url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=study_url, study_name="s")  # Optuna's tables first, as a dashboard may leave them
    open_store(study_url).close()
    assert s.schema_table.name in inspect(create_engine(study_url)).get_table_names()
    assert set(inspect(create_engine(study_url)).get_table_names()) - {t for t in s.metadata.tables} <= \
        migrations.OPTUNA_TABLES


@pytest.mark.parametrize(("tables", "shown"), [(["a", "b"], "a, b"), (list("abcde"), "a, b, c, d, e"),
                                               (list("abcdef"), "a, b, c, d, e, ...")])
def test_another_applications_tables_are_named_up_to_five(tmp_path, tables, shown):
    db = sqlite3.connect(tmp_path / "other.db")
    for name in tables:
        db.execute(f"CREATE TABLE {name} (x)")
    db.commit()
    with pytest.raises(StoreError) as err:
        open_store(f"sqlite:///{tmp_path / 'other.db'}")
    assert f"holds another application's tables ({shown}): give clowncar" in str(err.value)


def test_an_empty_schema_table_and_unversioned_tables_are_named_exactly(tmp_path):
    db = sqlite3.connect(tmp_path / "a.db")
    db.execute("CREATE TABLE clowncar_schema (id INTEGER PRIMARY KEY, version INTEGER, updated_at TEXT)")
    db.commit()
    with pytest.raises(StoreError) as err:
        open_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert str(err.value) == "the store's clowncar_schema table is empty: not a clowncar store"
    db = sqlite3.connect(tmp_path / "b.db")
    db.execute("CREATE TABLE clowncar_trials (id INTEGER)")
    db.execute("CREATE TABLE clowncar_sweeps (id INTEGER)")
    db.execute("CREATE TABLE optuna_like (id INTEGER)")
    db.commit()
    with pytest.raises(StoreError) as err:
        open_store(f"sqlite:///{tmp_path / 'b.db'}")
    assert str(err.value) == "the database has clowncar tables (clowncar_sweeps, clowncar_trials) but no schema version"


def _seconds_from_now(stamp: dt.datetime) -> float:
    """How far a stored time is from now, reading a naive one (SQLite drops the zone) as UTC."""
    utc = stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp
    return abs((utc - dt.datetime.now(dt.UTC)).total_seconds())


def _schema_rows(url):
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(s.schema_table))]
    engine.dispose()
    return rows


def test_a_new_store_records_its_version_once_with_the_utc_time(store_url, eastern_clock):
    open_store(store_url).close()
    [(row_id, version, updated_at)] = _schema_rows(store_url)
    assert (row_id, version) == (1, SCHEMA_VERSION)
    assert _seconds_from_now(updated_at) < 120
    with open_store(store_url) as st:  # and reads it back
        assert st.schema_found == SCHEMA_VERSION


def test_an_upgrade_stamps_the_schema_row_with_the_utc_time(v1_db, eastern_clock):
    url = f"sqlite:///{v1_db}"
    open_store(url).close()
    [(row_id, version, updated_at)] = _schema_rows(url)
    assert (row_id, version) == (1, SCHEMA_VERSION)
    assert _seconds_from_now(updated_at) < 120


@pytest.mark.postgres
def test_opening_a_postgresql_store_waits_for_another_opener_to_finish(pg_admin_url):
    import threading

    from sqlalchemy import text

    from clowncar.store.pgserver import create_database, drop_database

    name = f"t{os.getpid()}_migrate_lock"
    url = create_database(pg_admin_url, name)
    holder = create_engine(url)
    opened = threading.Event()
    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7340120)"))  # as another process setting the schema up
            worker = threading.Thread(target=lambda: (open_store(url).close(), opened.set()), daemon=True)
            worker.start()
            assert not opened.wait(1.5)  # it waits for the lock
            conn.execute(text("SELECT pg_advisory_unlock(7340120)"))
            assert opened.wait(30)
            worker.join(30)
    finally:
        holder.dispose()
        drop_database(pg_admin_url, name)


@pytest.mark.postgres
def test_a_postgresql_database_shared_with_other_tables_becomes_a_store_beside_them(pg_admin_url):
    from sqlalchemy import text

    from clowncar.store.pgserver import create_database, drop_database

    name = f"t{os.getpid()}_shared"
    url = create_database(pg_admin_url, name)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE team_notes (x integer)"))
        open_store(url).close()
        names = set(inspect(engine).get_table_names())
        assert "team_notes" in names and s.schema_table.name in names
    finally:
        engine.dispose()
        drop_database(pg_admin_url, name)
