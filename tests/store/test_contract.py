"""The store's contract, run against SQLite and PostgreSQL alike (the `store` fixture is parametrized)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sqlalchemy import select

from clowncar.config import TrialConfig
from clowncar.errors import StoreError
from clowncar.store import schema as s
from clowncar.store.store import config_hash

CFG = TrialConfig().to_dict()


def _start(store, uid="t0", number=0, attempt=0, sweep="sw", config=None, seed=1337):
    store.create_or_get_sweep(sweep, {"space": {"model.crawler_loops": [2, 3]}})
    store.start_trial(sweep, uid, number, attempt, config or CFG, seed, "node-a")


def test_create_or_get_sweep_returns_the_same_id_and_keeps_the_first_spec(store):
    first = store.create_or_get_sweep("sw", {"a": 1})
    assert store.create_or_get_sweep("sw", {"a": 2}) == first
    assert store.get_sweep("sw")["spec"] == {"a": 1}
    rerun = store.create_or_get_sweep("sw-rerun", {}, parent="sw")
    assert rerun != first and store.get_sweep("sw-rerun")["parent"] == "sw"
    with pytest.raises(StoreError, match="no sweep named 'nope'"):
        store.create_or_get_sweep("x", {}, parent="nope")


def test_starting_an_attempt_twice_leaves_one_running_attempt(store):
    _start(store)
    _start(store)
    assert store.trial_states("sw") == {"t0": (0, "running")}
    info = store.get_trial("t0")
    assert len(info["attempts"]) == 1 and info["config_hash"] == TrialConfig().content_hash()


def test_step_rows_written_twice_or_overlapping_leave_one_copy(store, step_rows):
    _start(store)
    store.add_steps("t0", 0, step_rows(1, 100))
    store.add_steps("t0", 0, step_rows(1, 100))
    store.add_steps("t0", 0, step_rows(51, 150))
    frame = store.steps_frame()
    assert list(frame["step"]) == list(range(1, 151))
    assert store.max_step("t0", 0) == 150


def test_step_values_round_trip_exactly_and_missing_values_stay_missing(store, step_rows):
    _start(store)
    rows = step_rows(1, 20)
    rows.append({"step": 21, "train_loss": None})  # an event without kind, lr, phase, elapsed or tokens
    store.add_steps("t0", 0, rows)
    frame = store.steps_frame("sw")
    assert list(frame.columns) == ["sweep", "trial_uid", "attempt", "step", "kind", "train_loss", "lr_scale",
                                   "phase", "elapsed_ms", "tokens"]
    for row, want in zip(frame.to_dict("records"), rows[:20], strict=False):
        for key in ("step", "kind", "train_loss", "lr_scale", "phase", "elapsed_ms", "tokens"):
            assert row[key] == want[key], key
    last = frame.iloc[-1]
    assert last["step"] == 21 and math.isnan(last["train_loss"]) and pd.isna(last["kind"])
    assert last["tokens"] is pd.NA and pd.isna(last["phase"])
    assert str(frame["tokens"].dtype) == "Int64" and str(frame["sweep"].dtype) == "category"
    assert list(frame["kind"].cat.categories) == ["C", "N"]


def test_named_evals_keep_their_order_mode_and_source_line_and_are_idempotent(store):
    _start(store)
    rows = [{"seq": 0, "name": "final_int6_roundtrip_exact", "mode": "standard", "weights": "quantized",
             "quant": "int6", "step": 7096, "val_loss": 1.93592275, "val_bpb": 1.1465625, "line": 78},
            {"seq": 1, "name": "final_int8_zlib_roundtrip_exact", "mode": "sliding", "weights": "quantized",
             "quant": "int6", "step": 7096, "val_loss": 1.89576235, "val_bpb": 1.12278022, "eval_ms": 73133.0,
             "line": 81, "repeats": "final_int6_sliding_window_exact"},
            {"seq": 2, "name": "legal_ttt_exact", "mode": "ttt", "step": 7096, "val_bpb": 1.11922988}]
    store.add_named_evals("t0", 0, rows)
    store.add_named_evals("t0", 0, rows)
    named = store.named_evals_frame("sw")
    assert list(named.columns) == ["sweep", "trial_uid", "attempt", "seq", "name", "mode", "weights", "quant",
                                   "step", "val_loss", "val_bpb", "eval_ms", "line", "repeats"]
    assert named["seq"].tolist() == [0, 1, 2] and named["val_bpb"].tolist() == [1.1465625, 1.12278022, 1.11922988]
    assert named["mode"].tolist() == ["standard", "sliding", "ttt"] and named["weights"].iloc[2] == "quantized"
    assert named["line"].tolist()[:2] == [78, 81] and named["line"].iloc[2] is pd.NA
    assert named["repeats"].iloc[1] == "final_int6_sliding_window_exact" and pd.isna(named["quant"].iloc[2])
    assert [e["name"] for e in store.get_trial("t0")["attempts"][0]["named_evals"]] == [r["name"] for r in rows]


def test_evals_and_probes_are_idempotent_and_get_their_defaults(store):
    _start(store)
    ev = [{"event": "eval", "step": 100, "val_loss": 2.5, "val_bpb": 1.4, "tokens_scored": 4096,
           "bytes_scored": 10_000_000_000}, {"step": 100, "val_bpb": 1.38, "mode": "sliding", "weights": "ema"}]
    store.add_evals("t0", 0, ev)
    store.add_evals("t0", 0, ev)
    store.add_probes("t0", 0, [{"step": 5, "probe_loss": 3.0, "mode": "N"}] * 2)
    evals = store.evals_frame()
    assert len(evals) == 2
    assert set(zip(evals["mode"], evals["weights"], strict=True)) == {("standard", "raw"), ("sliding", "ema")}
    assert evals["bytes_scored"].max() == 10_000_000_000
    probes = store.probes_frame("sw")
    assert probes[["step", "mode", "probe_loss"]].values.tolist() == [[5, "N", 3.0]]


def test_finish_trial_keeps_the_latest_outcome_and_every_number_as_a_metric_row(store):
    _start(store)
    store.finish_trial("t0", 0, "error", "first", {"status": "error", "val_bpb": None})
    result = {"status": "ok", "reason": None, "val_bpb": 1.21, "q_val_bpb": 1.23, "steps": 500, "over_cap": True,
              "quant_schemes": {"flat": "int8"}, "provenance": {"git_commit": "abc123", "host": "h1"}}
    store.finish_trial("t0", 0, "ok", None, result)
    assert store.get_trial("t0")["attempts"][0]["result"] == result
    with store.engine.connect() as conn:
        metrics = dict(conn.execute(select(s.metrics.c.name, s.metrics.c.value)).all())
    assert metrics == {"val_bpb": 1.21, "q_val_bpb": 1.23, "steps": 500.0, "over_cap": 1.0}
    with pytest.raises(StoreError, match="trial status must be one of"):
        store.finish_trial("t0", 0, "great", None, None)
    with pytest.raises(StoreError, match="never started"):
        store.finish_trial("t0", 7, "ok", None, None)


def test_trials_frame_has_config_columns_metrics_and_filters(store):
    store.create_or_get_sweep("other", {})
    for n, loops in enumerate([2, 3, 4]):
        cfg = TrialConfig().model_copy(deep=True)
        cfg.model.crawler_loops = loops
        _start(store, f"t{n}", n, config=cfg.to_dict(), seed=n)
        store.finish_trial(f"t{n}", 0, "ok" if n < 2 else "diverged", None,
                           {"status": "ok", "val_bpb": 1.0 + n / 10, "provenance": {"git_commit": "abc"}})
    store.start_trial("other", "o0", 0, 0, {"model": {"crawler_loops": 9}}, None, None)
    frame = store.trials_frame("sw")
    assert list(frame.columns[:13]) == ["sweep", "trial_uid", "number", "attempt", "attempts", "status", "reason",
                                        "seed", "config_hash", "node", "started_at", "ended_at", "source"]
    assert list(frame["model.crawler_loops"]) == [2, 3, 4]
    assert list(frame["val_bpb"]) == [1.0, 1.1, 1.2]
    assert set(frame["provenance.git_commit"]) == {"abc"}
    assert str(frame["started_at"].dt.tz) == "UTC"
    assert "train.cadence" in frame.columns and (frame["source"] == "run").all()
    assert list(store.trials_frame(status="diverged")["trial_uid"]) == ["t2"]
    assert list(store.trials_frame(where={"model.crawler_loops": [3, 9]})["trial_uid"]) == ["o0", "t1"]
    assert len(store.trials_frame(["sw", "other"], status=["ok", "running"])) == 3
    with pytest.raises(StoreError, match=r"no trial column 'model\.nope'"):
        store.trials_frame(where={"model.nope": 1})


def test_a_retry_counts_in_trials_frame_and_steps_frame_reads_its_attempt(store, step_rows):
    _start(store)
    store.add_steps("t0", 0, step_rows(1, 30))
    store.finish_trial("t0", 0, "crashed", "node lost", None)
    _start(store, attempt=1)
    store.add_steps("t0", 1, step_rows(1, 10))
    store.finish_trial("t0", 1, "ok", None, {"val_bpb": 1.5})
    row = store.trials_frame().iloc[0]
    assert (row["attempt"], row["attempts"], row["status"], row["val_bpb"]) == (1, 2, "ok", 1.5)
    assert len(store.steps_frame()) == 10
    both = store.steps_frame(trial_uids="t0", all_attempts=True)
    assert both.groupby("attempt").size().to_dict() == {0: 30, 1: 10}
    assert store.trial_states("sw") == {"t0": (1, "ok")}


def test_the_best_trial_is_found_among_scores_of_one_eval_mode(store):
    results = [{"q_val_bpb": 1.22}, {"q_val_bpb": 1.20}, {"q_sliding_val_bpb": 1.16}]  # the last: another eval
    for n, result in enumerate(results):
        _start(store, f"t{n}", n)
        store.finish_trial(f"t{n}", 0, "ok", None, result)
    assert store.sweep_summary("sw")["best"]["trial_uid"] == "t1"  # never a sliding value beating standard ones
    assert tuple(store.sweeps_frame().iloc[0][["best_bpb", "best_metric"]]) == (1.20, "q_val_bpb")


def test_a_uid_cannot_move_to_another_sweep_or_change_its_config(store):
    _start(store)
    store.create_or_get_sweep("b", {})
    with pytest.raises(StoreError, match="already belongs to another sweep"):
        store.start_trial("b", "t0", 0, 0, CFG, 1337, None)
    with pytest.raises(StoreError, match="is stored with config"):
        store.start_trial("sw", "t0", 0, 1, {"model": {"crawler_loops": 1}}, 1337, None)
    with pytest.raises(StoreError, match="no sweep named 'zzz'"):
        store.start_trial("zzz", "t9", 0, 0, CFG, 1, None)


def test_a_failed_transaction_leaves_nothing(store, step_rows):
    with pytest.raises(RuntimeError), store.transaction():
        store.create_or_get_sweep("gone", {}, source="import")
        store.start_trial("gone", "g0", 0, 0, {}, None, None)
        store.add_steps("g0", 0, step_rows(1, 50))
        raise RuntimeError("parser failed half way")
    assert store.sweeps_frame().empty and store.get_trial("g0") is None
    _start(store, uid="g0")  # the attempt id cached inside the rolled-back transaction is not reused
    store.add_steps("g0", 0, step_rows(1, 5))
    assert len(store.steps_frame()) == 5


def test_sweep_summary_and_sweeps_frame_count_trials_and_find_the_best(store, step_rows):
    for n, (status, q) in enumerate([("ok", 1.30), ("ok", 1.25), ("oom", None)]):
        _start(store, f"t{n}", n)
        store.finish_trial(f"t{n}", 0, status, None, {"val_bpb": 1.2, "q_val_bpb": q})
    _start(store, "t3", 3)
    store.add_steps("t3", 0, step_rows(1, 42))
    store.set_sweep_status("sw", "running")
    summary = store.sweep_summary("sw")
    assert summary["by_status"] == {"ok": 2, "oom": 1, "running": 1} and summary["trials"] == 4
    assert summary["best"]["trial_uid"] == "t1" and summary["best"]["score"] == 1.25
    assert [(r["trial_uid"], r["last_step"]) for r in summary["running"]] == [("t3", 42)]
    row = store.sweeps_frame().iloc[0]
    assert (row["status"], row["trials"], row["ok"], row["running"], row["failed"], row["best_bpb"]) == \
        ("running", 4, 2, 1, 1, 1.25)
    assert store.close_running("sw") == 1
    assert store.trial_states("sw")["t3"] == (0, "crashed")
    with pytest.raises(StoreError, match="sweep status must be one of"):
        store.set_sweep_status("sw", "exploded")


def test_artifacts_are_updated_in_place(store):
    _start(store)
    store.add_artifact("t0", 0, "runs/t0/model.ptz", 15_000_000, 48_000, "ab" * 32)
    store.add_artifact("t0", 0, "runs/t0/model.ptz", 15_000_123, 48_000, "cd" * 32)
    frame = store.artifacts_frame("sw")
    assert frame[["path", "size_bytes", "sha256"]].values.tolist() == [["runs/t0/model.ptz", 15_000_123, "cd" * 32]]


def test_optuna_keeps_its_own_tables_in_the_same_database(store, store_url):
    import optuna  # a dependency of clowncar: never skipped

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from clowncar.store import optuna_engine_kwargs

    storage = optuna.storages.RDBStorage(store_url, engine_kwargs=optuna_engine_kwargs(store_url))
    study = optuna.create_study(study_name="sw", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    _start(store)
    assert len(optuna.load_study(study_name="sw", storage=store_url).trials) == 2
    assert len(store.trials_frame()) == 1


def test_values_json_cannot_hold_are_stored_as_none_or_text(store):
    from pathlib import Path

    store.create_or_get_sweep("sw", {"data": Path("/data/x"), "grid": (1, 2)})
    store.start_trial("sw", "t0", 0, 0, CFG, 1, None)
    store.finish_trial("t0", 0, "diverged", "nan loss", {"val_loss": float("nan"), "q_val_bpb": float("inf"),
                                                         "steps": 7})
    assert store.get_sweep("sw")["spec"] == {"data": "/data/x", "grid": [1, 2]}
    assert store.get_trial("t0")["attempts"][0]["result"] == {"val_loss": None, "q_val_bpb": None, "steps": 7}


def test_a_plain_postgresql_url_means_psycopg_3(monkeypatch, tmp_path):
    from clowncar.store import resolve_url

    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("CLOWNCAR_STORE", raising=False)
    assert resolve_url() == f"sqlite:///{tmp_path / 'runs' / 'clowncar.db'}"
    from clowncar.store import open_store

    with open_store() as st:  # nothing configured: a SQLite file under the runs dir, directory created
        assert st.url.endswith("runs/clowncar.db")
    assert (tmp_path / "runs" / "clowncar.db").exists()


# -- driver leases ------------------------------------------------------------------------------------------------

def test_a_lease_has_one_holder_until_it_is_released(store):
    from clowncar.store.lease import Claimant, LeaseHeld

    a, b = Claimant("tok-a", "pid 11 on node-a", "m1", 11, 500), Claimant("tok-b", "pid 22 on node-b", "m2", 22, 7)
    first = store.acquire_lease("sw", a, ttl_s=60)  # before the sweep exists: a driver leases, then creates
    assert first["holder"] == "pid 11 on node-a" and store.get_sweep("sw") is None
    with pytest.raises(LeaseHeld, match=r"sweep 'sw' is being run by pid 11 on node-a \(its lease runs until "
                                        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC") as held:
        store.acquire_lease("sw", b, ttl_s=60)
    assert held.value.exit_code == 2
    assert store.renew_lease("sw", "tok-a", 60) and not store.renew_lease("sw", "tok-b", 60)
    again = store.acquire_lease("sw", a, ttl_s=60)  # the holder may take it again (its acquired time is kept)
    assert again["acquired_at"] == first["acquired_at"]
    lease = store.get_lease("sw")
    assert (lease["token"], lease["pid"], lease["pid_started"], lease["machine"]) == ("tok-a", 11, 500, "m1")
    assert lease["expires_at"] > lease["renewed_at"] >= lease["acquired_at"]
    assert not store.release_lease("sw", "tok-b") and store.release_lease("sw", "tok-a")
    assert store.get_lease("sw") is None
    assert store.acquire_lease("sw", b, ttl_s=60)["holder"] == "pid 22 on node-b"
    assert store.acquire_lease("other", a, ttl_s=60)  # leases are per sweep


def test_an_expired_lease_or_a_dead_holder_is_taken_over(store):
    import time

    from clowncar.store.lease import Claimant, LeaseHeld, is_live

    a, b, c = (Claimant(f"tok-{x}", f"driver {x}", pid=n) for n, x in enumerate("abc"))
    store.acquire_lease("sw", a, ttl_s=0.5)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("sw", b, ttl_s=60)
    time.sleep(0.6)  # a stopped renewing (SIGKILLed, its machine gone): the lease expires on its own
    assert not is_live(store.get_lease("sw"))
    store.acquire_lease("sw", b, ttl_s=60)
    assert not store.renew_lease("sw", "tok-a", 60)  # the old holder learns that it lost the lease
    with pytest.raises(LeaseHeld):
        store.acquire_lease("sw", c, ttl_s=60, holder_gone=lambda row: row["pid"] == 99)
    store.acquire_lease("sw", c, ttl_s=60, holder_gone=lambda row: row["pid"] == 1)  # b's process is known dead
    assert store.get_lease("sw")["token"] == "tok-c"


def _race_for_lease(stores: list, sweep: str) -> tuple[list[int], list[int], list[str]]:
    """Every store asks for the lease of `sweep` at the same moment (one thread each)."""
    import threading

    from clowncar.store.lease import Claimant, LeaseHeld

    barrier, won, refused, errors = threading.Barrier(len(stores)), [], [], []

    def ask(i: int) -> None:
        barrier.wait()
        try:
            stores[i].acquire_lease(sweep, Claimant(f"tok-{i}", f"driver {i}"), ttl_s=60)
            won.append(i)
        except LeaseHeld:
            refused.append(i)
        except Exception as err:  # any other failure fails the test, with its text
            errors.append(repr(err))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, refused, errors


def test_drivers_asking_at_the_same_moment_get_one_lease(store_url):
    import time

    from clowncar.store import open_store
    from clowncar.store.lease import Claimant

    stores = [open_store(store_url) for _ in range(6)]
    stores[0].acquire_lease("expired", Claimant("tok-old", "a dead driver"), ttl_s=0.01)
    time.sleep(0.05)
    for sweep in ("fresh", "expired"):  # no row yet (insert race), and a row to claim (update race)
        won, refused, errors = _race_for_lease(stores, sweep)
        assert not errors and len(won) == 1 and len(refused) == len(stores) - 1, (sweep, won, refused, errors)
        assert stores[0].get_lease(sweep)["token"] == f"tok-{won[0]}"
    for st in stores:
        st.close()


def test_a_failed_sweep_says_why_and_one_that_never_ran_a_trial_can_start_over(store):
    store.create_or_get_sweep("sw", {"v": 1})
    store.set_sweep_status("sw", "failed", "Ray did not start: NotADirectoryError")
    assert (store.get_sweep("sw")["status"], store.get_sweep("sw")["reason"]) == \
        ("failed", "Ray did not start: NotADirectoryError")
    store.restart_sweep("sw", {"v": 2})
    sweep = store.get_sweep("sw")
    assert (sweep["status"], sweep["reason"], sweep["spec"]) == ("created", None, {"v": 2})
    _start(store)
    store.set_sweep_status("sw", "running")
    assert store.get_sweep("sw")["reason"] is None
    with pytest.raises(StoreError, match="has trials: it cannot start over"):
        store.restart_sweep("sw", {"v": 3})


def _imported(store, step_rows, uid="log-1", sweep="imp", source="import"):
    """A trial stored as `clowncar import` stores one: attempt 0, its rows, its outcome."""
    store.create_or_get_sweep(sweep, {"imported": True}, source=source)
    store.start_trial(sweep, uid, 0, 0, {"model": {"num_layers": 9}}, 1337, None, started_at=1.7e9)
    store.add_steps(uid, 0, step_rows(1, 20))
    store.add_evals(uid, 0, [{"step": 20, "val_loss": 2.5, "val_bpb": 1.5}])
    store.add_named_evals(uid, 0, [{"seq": 0, "name": "final_int8_zlib_roundtrip_exact", "step": 20,
                                    "val_bpb": 1.25}])
    store.finish_trial(uid, 0, "ok", "imported from a.log", {"artifact_bytes": 15_000_000, "eval_seconds": 896.4},
                       ended_at=1.7e9)


def test_an_imported_trial_is_read_back_and_replaced_whole_in_one_transaction(store, step_rows):
    from clowncar.store.imported import TrialReading

    _imported(store, step_rows)
    old = store.imported_reading("log-1")
    assert (old.config, old.seed, old.status, old.result["eval_seconds"]) == ({"model": {"num_layers": 9}}, 1337,
                                                                             "ok", 896.4)
    assert [r["step"] for r in old.steps] == list(range(1, 21)) and old.steps[0]["kind"] == "C"
    assert old.evals[0]["weights"] == "raw" and old.named_evals[0]["weights"] == "quantized"
    new = TrialReading(config={"model": {"num_layers": 11}}, seed=42, status="ok", reason="imported from b.log",
                       result={"artifact_bytes": 16_638_468, "eval_seconds": 491.4}, steps=step_rows(1, 5),
                       evals=[], named_evals=[{"seq": 0, "name": "legal_ttt_exact", "mode": "ttt", "step": 5,
                                               "val_bpb": 1.11, "repeats": "ttt_sliding"}])
    store.replace_imported_trial("log-1", new)
    got = store.imported_reading("log-1")
    assert (got.config, got.seed, got.reason, got.result) == (new.config, 42, "imported from b.log", new.result)
    assert [r["step"] for r in got.steps] == [1, 2, 3, 4, 5] and got.evals == []
    assert [(r["name"], r["repeats"]) for r in got.named_evals] == [("legal_ttt_exact", "ttt_sliding")]
    info = store.get_trial("log-1")
    assert info["sweep"] == "imp" and info["config_hash"] == config_hash(new.config) and len(info["attempts"]) == 1
    with store.engine.connect() as conn:
        assert dict(conn.execute(select(s.metrics.c.name, s.metrics.c.value)).all()) == {
            "artifact_bytes": 16_638_468.0, "eval_seconds": 491.4}
    # a replacement that fails half way (a named eval without a name, after the step rows went in) leaves the
    # trial as it was
    broken = TrialReading(config={}, seed=None, status="ok", reason=None, result={"eval_seconds": 1.0},
                          steps=step_rows(1, 50), named_evals=[{"seq": 0, "name": None, "step": 1}])
    with pytest.raises(StoreError):
        store.replace_imported_trial("log-1", broken)
    assert store.imported_reading("log-1") == got


def test_a_trial_clowncar_ran_is_neither_read_nor_replaced_as_an_imported_one(store, step_rows):
    from clowncar.store.imported import TrialReading

    _imported(store, step_rows, uid="ran-0", sweep="ran", source="run")
    before = store.get_trial("ran-0")
    assert store.imported_reading("ran-0") is None and store.imported_reading("absent") is None
    new = TrialReading(config={}, seed=None, status="ok", reason=None, result={"eval_seconds": 1.0})
    for uid in ("ran-0", "absent"):
        with pytest.raises(StoreError, match="not an imported trial"):
            store.replace_imported_trial(uid, new)
    assert store.get_trial("ran-0") == before and len(store.steps_frame("ran")) == 20


def test_an_imported_trials_rows_read_back_as_the_stores_columns_in_key_order(store, step_rows):
    """Rows written out of key order come back in it, each a dict of exactly the store's columns (as TrialReading
    says), with no attempt_id."""
    from clowncar.store.store import EVAL_COLUMNS, NAMED_EVAL_COLUMNS, STEP_COLUMNS

    store.create_or_get_sweep("imp", {"imported": True}, source="import")
    store.start_trial("imp", "log-1", 0, 0, {}, None, None, started_at=1.7e9)
    store.add_steps("log-1", 0, step_rows(7, 9) + step_rows(1, 3))
    store.add_evals("log-1", 0, [{"step": 9, "val_bpb": 1.4}, {"step": 3, "val_bpb": 1.6}])
    store.add_named_evals("log-1", 0, [{"seq": 1, "name": "b", "step": 9, "val_bpb": 1.2},
                                        {"seq": 0, "name": "a", "step": 9, "val_bpb": 1.3}])
    got = store.imported_reading("log-1")
    assert [r["step"] for r in got.steps] == [1, 2, 3, 7, 8, 9] and [r["step"] for r in got.evals] == [3, 9]
    assert [r["name"] for r in got.named_evals] == ["a", "b"]
    assert {tuple(r) for r in got.steps} == {STEP_COLUMNS} and {tuple(r) for r in got.evals} == {EVAL_COLUMNS}
    assert {tuple(r) for r in got.named_evals} == {NAMED_EVAL_COLUMNS}


def test_a_trial_clowncar_ran_again_after_a_failure_is_not_an_imported_one(store, step_rows):
    """Its two attempts (0 and the retry 1) are one trial, which the re-read neither reads nor replaces."""
    from clowncar.store.imported import TrialReading

    _imported(store, step_rows, uid="ran-0", sweep="ran", source="run")
    store.start_trial("ran", "ran-0", 0, 1, {"model": {"num_layers": 9}}, 1337, None)
    assert store.imported_reading("ran-0") is None
    with pytest.raises(StoreError, match="not an imported trial"):
        store.replace_imported_trial("ran-0", TrialReading(config={}, seed=None, status="ok", reason=None,
                                                           result={}))


def test_imported_trials_are_found_by_a_metric_value_and_trials_clowncar_ran_are_not(store, step_rows):
    _imported(store, step_rows, uid="log-1", sweep="imp")
    _imported(store, step_rows, uid="log-2", sweep="imp2")
    _imported(store, step_rows, uid="ran-0", sweep="ran", source="run")
    store.start_trial("imp", "log-3", 1, 0, {}, None, None)  # no outcome yet: no metric rows
    found = store.imported_with_metric("eval_seconds", 896.4)
    assert [(uid, sweep) for uid, sweep, _ in found] == [("log-1", "imp"), ("log-2", "imp2")]
    assert found[0][2] == {"artifact_bytes": 15_000_000, "eval_seconds": 896.4}
    assert store.imported_with_metric("eval_seconds", 896.5) == []
    assert store.imported_with_metric("artifact_bytes", 15_000_000) == found
