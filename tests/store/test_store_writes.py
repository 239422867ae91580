"""The store's write path, on SQLite and PostgreSQL alike: what JSON values become, timestamps off a UTC clock, the
attempt-id cache across threads and transactions, the importers' lookup of stored uids, and the messages of bad
writes."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

import clowncar.store.bulk as bulk
import clowncar.store.store as store_module
from clowncar.errors import StoreError
from clowncar.store import Store, open_store
from clowncar.store import schema as s
from clowncar.store.migrations import SCHEMA_VERSION
from clowncar.store.store import jsonable

T0 = 1_780_000_000.0
CFG = {"model": {"crawler_loops": 2}}


def _start(store: Store, uid: str = "t0", sweep: str = "sw", number: int = 0) -> None:
    store.create_or_get_sweep(sweep, {})
    store.start_trial(sweep, uid, number, 0, CFG, 1, "node", started_at=T0)


def _steps(*steps: int) -> list[dict[str, float]]:
    return [{"step": k, "train_loss": 1.0 / k} for k in steps]


def test_json_values_become_plain_json_numpy_scalars_their_numbers_and_paths_their_text(store: Store) -> None:
    value = {"f32": np.float32(1.5), "i64": np.int64(3), "nan": np.float64("nan"), "inf": float("inf"),
             "flag": np.bool_(True), "path": Path("runs/t0"), "pair": (1, 2), 7: [np.float64(0.25)]}
    want = {"f32": 1.5, "i64": 3, "nan": None, "inf": None, "flag": True, "path": "runs/t0", "pair": [1, 2],
            "7": [0.25]}
    assert jsonable(value) == want and type(jsonable(np.int64(3))) is int
    _start(store)
    store.finish_trial("t0", 0, "ok", None, value)
    assert store.get_trial("t0")["attempts"][0]["result"] == want


def test_timestamps_are_utc_whatever_the_machines_time_zone(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # 5 h behind UTC in December
    time.tzset()
    try:
        before = pd.Timestamp.now(tz="UTC")
        _start(store)
        store.finish_trial("t0", 0, "ok", None, {"val_bpb": 1.0}, ended_at=T0 + 5)
        row = store.trials_frame().iloc[0]
        assert row["started_at"] == pd.Timestamp(T0, unit="s", tz="UTC")
        assert row["ended_at"] == pd.Timestamp(T0 + 5, unit="s", tz="UTC")
        created = pd.Timestamp(store.get_sweep("sw")["created_at"])
        assert before - pd.Timedelta(seconds=5) <= created <= pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=5)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_thread_that_never_wrote_reads_an_attempt_and_the_id_it_cached_is_used_for_writes(store: Store,
                                                                                          store_url: str) -> None:
    _start(store)
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(store.max_step("t0", 0)))
    reader.start()
    reader.join()
    assert got == [0]
    fresh = open_store(store_url)  # a second store object on the same database: its id cache is empty
    try:
        assert fresh.max_step("t0", 0) == 0  # a read outside any transaction caches the attempt id
        assert fresh.add_steps("t0", 0, _steps(1, 2, 3)) == 3
        assert fresh.max_step("t0", 0) == 3 and len(fresh.steps_frame()) == 3
    finally:
        fresh.close()


def test_one_transaction_writes_to_several_attempts(store: Store) -> None:
    with store.transaction():
        _start(store, "t0")
        _start(store, "t1", number=1)
        store.add_steps("t0", 0, _steps(1, 2))
        store.add_steps("t1", 0, _steps(1, 2, 3))
        store.add_steps("t0", 0, _steps(3))
    assert store.steps_frame().groupby("trial_uid", observed=True).size().to_dict() == {"t0": 3, "t1": 3}


def test_an_attempt_id_seen_in_a_rolled_back_transaction_is_never_used_again(store: Store) -> None:
    store.create_or_get_sweep("sw", {})
    with pytest.raises(RuntimeError), store.transaction():
        _start(store, "t0")
        store.add_steps("t0", 0, _steps(1))  # the attempt id of t0 is looked up (and cached) here
        raise RuntimeError("the importer failed")
    _start(store, "t1", number=1)  # SQLite hands the rolled-back id to this attempt
    _start(store, "t0")
    store.add_steps("t0", 0, _steps(1, 2))
    assert store.steps_frame()["trial_uid"].astype(str).tolist() == ["t0", "t0"]


def test_add_steps_and_the_row_writers_return_the_rows_offered(store: Store) -> None:
    _start(store)
    assert store.add_steps("t0", 0, _steps(1, 2)) == 2
    assert store.add_steps("t0", 0, _steps(2, 3)) == 2  # offered, not new: step 2 was there
    assert store.add_steps("t0", 0, []) == 0
    assert store.add_evals("t0", 0, [{"step": 1, "val_bpb": 2.0}]) == 1
    assert store.max_step("t0", 0) == 3


def test_trial_sweeps_finds_stored_uids_across_its_500_uid_chunks(store: Store) -> None:
    uids = [f"u{k}" for k in range(1202)]
    for k, sweep in ((0, "a"), (499, "b"), (500, "a"), (1001, "b"), (1201, "a")):
        _start(store, uids[k], sweep, number=k)
    assert store.trial_sweeps(uids) == {"u0": "a", "u499": "b", "u500": "a", "u1001": "b", "u1201": "a"}
    assert store.trial_sweeps(iter(["u500", "nope"])) == {"u500": "a"} and store.trial_sweeps([]) == {}


def test_restarting_a_sweep_replaces_its_spec_and_moves_updated_at(store: Store) -> None:
    store.create_or_get_sweep("sw", {"space": {"a": [1]}})
    store.set_sweep_status("sw", "failed", "no GPUs")
    before = store.get_sweep("sw")
    time.sleep(0.01)
    store.restart_sweep("sw", {"space": {"a": [2]}})
    after = store.get_sweep("sw")
    assert (after["spec"], after["status"], after["reason"]) == ({"space": {"a": [2]}}, "created", None)
    assert after["updated_at"] > before["updated_at"] and after["created_at"] == before["created_at"]


def test_bad_writes_say_what_was_wrong_and_where(store: Store) -> None:
    url = str(store.url)
    cases = [
        (lambda: store.create_or_get_sweep("sw", {}, source="ci"), "sweep source must be one of run, import, not 'ci'"),
        (lambda: store.create_or_get_sweep("", {}), "a sweep needs a name"),
        (lambda: store.set_sweep_status("nope", "done"), f"no sweep named 'nope' in {url}"),
        (lambda: store.set_sweep_status("sw", "great"),
         "sweep status must be one of created, running, done, failed, stopped, imported, not 'great'"),
        (lambda: store.add_steps("t9", 0, _steps(1)), f"trial 't9' attempt 0 was never started in {url}"),
    ]
    for call, message in cases:
        with pytest.raises(StoreError) as err:
            call()
        assert str(err.value) == message


def test_a_database_without_our_tables_is_named_in_the_error_and_an_empty_one_made_a_store(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:  # a database, but not ours
        conn.execute("CREATE TABLE notes (x INTEGER)")
    url = f"sqlite:///{path}"
    with pytest.raises(StoreError) as err:
        open_store(url, create=False)
    assert str(err.value) == f"no clowncar store at {url}"
    with pytest.raises(StoreError, match="holds another application's tables"):  # test_migrations.py has the rest
        open_store(url, create=True)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE notes")
    for create in (True, False):  # made at the current version, then found at it
        opened = open_store(url, create=create)
        assert opened.schema_found == SCHEMA_VERSION
        opened.close()


def test_close_running_ends_only_this_sweeps_running_attempts(store: Store) -> None:
    _start(store, "a0", "a")
    _start(store, "a1", "a", number=1)
    store.finish_trial("a1", 0, "ok", "fine", {"val_bpb": 1.0})
    _start(store, "b0", "b")
    before = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=5)
    assert store.close_running("a") == 1 and store.close_running("a") == 0
    rows = store.trials_frame().set_index("trial_uid")
    assert (rows.loc["a0", "status"], rows.loc["a0", "reason"]) == ("crashed", "head restarted")
    assert rows.loc["a0", "ended_at"] >= before
    assert (rows.loc["a1", "status"], rows.loc["a1", "reason"]) == ("ok", "fine")  # an ended attempt stays
    assert rows.loc["b0", "status"] == "running" and pd.isna(rows.loc["b0", "ended_at"])
    assert store.close_running("b", "stopped", "sweep stopped") == 1
    assert store.trial_states("b") == {"b0": (0, "stopped")}
    assert store.get_trial("b0")["attempts"][0]["reason"] == "sweep stopped"
    with pytest.raises(StoreError) as err:
        store.close_running("b", "gone")
    assert str(err.value) == ("trial status must be one of ok, diverged, oom, error, rejected, crashed, stopped, "
                              "pruned, running, not 'gone'")


def test_finishing_an_attempt_replaces_its_metric_rows_and_no_others(store: Store) -> None:
    _start(store, "t0")
    _start(store, "t1", number=1)
    store.finish_trial("t0", 0, "ok", None, {"val_bpb": 1.5, "steps": 10})
    store.finish_trial("t1", 0, "ok", None, {"val_bpb": 1.25})
    store.finish_trial("t1", 0, "ok", None, {"val_bpb": 1.2})
    with store.engine.connect() as conn:
        rows = sorted(conn.execute(select(s.metrics.c.name, s.metrics.c.value)).all())
    assert rows == [("steps", 10.0), ("val_bpb", 1.2), ("val_bpb", 1.5)]
    with pytest.raises(StoreError) as err:
        store.finish_trial("t0", 0, "great", None, None)
    assert str(err.value) == ("trial status must be one of ok, diverged, oom, error, rejected, crashed, stopped, "
                              "pruned, running, not 'great'")


def test_probe_and_named_eval_rows_get_their_default_labels(store: Store) -> None:
    _start(store)
    store.add_probes("t0", 0, [{"step": 4, "probe_loss": 2.0}])
    store.add_named_evals("t0", 0, [{"seq": 0, "name": "final", "step": 9, "val_bpb": 1.2}])
    assert store.probes_frame()["mode"].astype(str).tolist() == ["C"]
    named = store.named_evals_frame()
    assert (str(named["mode"][0]), str(named["weights"][0])) == ("standard", "quantized")


def test_step_rows_past_one_chunk_all_land(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_STEP_CHUNK", 2)
    _start(store)
    assert store.add_steps("t0", 0, _steps(1, 2, 3, 4, 5)) == 5
    assert store.steps_frame()["step"].tolist() == [1, 2, 3, 4, 5]


def test_store_open_makes_a_store_unless_told_not_to(tmp_path: Path) -> None:
    opened = Store.open(f"sqlite:///{tmp_path / 'made.db'}")
    opened.close()
    assert (tmp_path / "made.db").is_file()


def test_a_row_the_database_refuses_is_a_one_line_error_naming_the_store(store: Store) -> None:
    _start(store)
    with pytest.raises(StoreError) as err:
        store.add_named_evals("t0", 0, [{"seq": 0, "name": "final", "val_bpb": 1.2}])  # no step: NOT NULL
    message = str(err.value)
    assert message.startswith(f"store write failed at {store.url}: ") and "step" in message and "\n" not in message
    assert store.named_evals_frame().empty  # nothing half-written


def test_the_portable_insert_path_stores_what_the_dialect_paths_store(store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # the path for databases other than SQLite and PostgreSQL (check the keys, then insert): run on this one by
    # hiding its dialect's ON CONFLICT construct
    monkeypatch.setattr(bulk, "_dialect_insert", lambda conn, table: None)
    for _ in range(2):  # every write twice: the second one changes nothing, or updates in place
        _start(store)
        store.add_evals("t0", 0, [{"step": k, "val_bpb": 1.0 + k / 1000} for k in range(1, 901)])  # 3 chunks of 400
        store.add_evals("t0", 0, [{"step": 5, "val_bpb": 9.9}, {"step": 1000, "val_bpb": 2.5},
                                  {"step": 1000, "val_bpb": 3.5}])  # a stored key, a key twice in one call
        store.add_artifact("t0", 0, "runs/t0/model.ptz", 1_000, 10, "ab" * 32)
    store.add_artifact("t0", 0, "runs/t0/model.ptz", 2_000, 20, "cd" * 32)
    evals = store.evals_frame()
    assert evals["step"].tolist() == [*range(1, 901), 1000] and evals.loc[4, "val_bpb"] == 1.005
    assert evals["val_bpb"].iloc[-1] == 2.5  # the first of the two
    art = store.artifacts_frame()
    assert art[["path", "size_bytes", "code_bytes", "sha256"]].values.tolist() == [
        ["runs/t0/model.ptz", 2_000, 20, "cd" * 32]]
    assert len(store.trials_frame()) == 1 and store.trials_frame()["attempts"].tolist() == [1]
