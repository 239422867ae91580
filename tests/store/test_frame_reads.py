"""What the store's read methods hand back, on SQLite and PostgreSQL alike: the long tables' filters (sweep, trial,
attempt), their order and their empty shape; `trials_frame`, `sweeps_frame`, `sweep_summary`, `get_trial` and
`artifacts_frame` field by field; the best-score rule."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from clowncar.errors import StoreError
from clowncar.store import Store
from clowncar.store.frames import BASE_TRIAL_COLUMNS, aware
from clowncar.store.longread import DTYPES
from clowncar.store.store import EVAL_COLUMNS, NAMED_EVAL_COLUMNS, PROBE_COLUMNS, STEP_COLUMNS, config_hash


def _step(step: int) -> dict[str, Any]:
    return {"step": step, "kind": "C", "train_loss": 3.0 + step / 8, "lr_scale": 1.0, "phase": "main",
            "elapsed_ms": 10.0 * step, "tokens": 64 * step}


def _eval(step: int) -> dict[str, Any]:
    return {"step": step, "val_loss": 2.0 + step / 8, "val_bpb": 1.0 + step / 8, "tokens_scored": 10,
            "bytes_scored": 40}


def _probe(step: int) -> dict[str, Any]:
    return {"step": step, "mode": "C", "probe_loss": 2.5 + step / 8}


def _named(step: int) -> dict[str, Any]:
    return {"seq": step, "name": f"final_{step}", "step": step, "val_bpb": 1.0 + step / 8}


# read method, write method, row maker, columns, the per-attempt order column
LONG = {"steps": ("steps_frame", "add_steps", _step, STEP_COLUMNS, "step"),
        "evals": ("evals_frame", "add_evals", _eval, EVAL_COLUMNS, "step"),
        "probes": ("probes_frame", "add_probes", _probe, PROBE_COLUMNS, "step"),
        "named_evals": ("named_evals_frame", "add_named_evals", _named, NAMED_EVAL_COLUMNS, "seq")}


def _fill(store: Store, write: str, make: Callable[[int], dict[str, Any]]) -> None:
    """Sweeps `b` (made first) and `a`. In `b` two trials share the number 0 (`b/1` written first: the uid
    orders them). In `a`, trial number 0 has the uid `a/z` and number 1 `a/b` (uid order is the reverse of number
    order), and `a/z` has two attempts, the second one written first. Every attempt's rows are written last key
    first: nothing comes back in the order it went in."""
    plan = [("b", "b/1", 0, 0, (7,)), ("b", "b/0", 0, 0, (1, 2)), ("a", "a/b", 1, 0, (1, 2, 3)),
            ("a", "a/z", 0, 1, (5, 6)), ("a", "a/z", 0, 0, (1, 2, 3, 4))]
    for sweep, uid, number, attempt, keys in plan:
        store.create_or_get_sweep(sweep, {})
        store.start_trial(sweep, uid, number, attempt, {"model": {"crawler_loops": 2}}, 1, "node")
        getattr(store, write)(uid, attempt, [make(k) for k in reversed(keys)])


def _keys(frame: pd.DataFrame, key: str) -> list[tuple[str, str, int, int]]:
    return [(str(r.sweep), str(r.trial_uid), int(r.attempt), int(getattr(r, key))) for r in frame.itertuples()]


@pytest.mark.parametrize("table", list(LONG))
def test_long_reads_keep_latest_attempts_in_sweep_then_trial_number_then_key_order(store: Store, table: str) -> None:
    read, write, make, _, key = LONG[table]
    _fill(store, write, make)
    assert _keys(getattr(store, read)(), key) == [
        ("a", "a/z", 1, 5), ("a", "a/z", 1, 6), ("a", "a/b", 0, 1), ("a", "a/b", 0, 2), ("a", "a/b", 0, 3),
        ("b", "b/0", 0, 1), ("b", "b/0", 0, 2), ("b", "b/1", 0, 7)]
    assert [a["attempt"] for a in store.get_trial("a/z")["attempts"]] == [0, 1]


@pytest.mark.parametrize("table", list(LONG))
def test_long_reads_filter_by_sweep_by_trial_and_read_every_attempt_when_asked(store: Store, table: str) -> None:
    read, write, make, _, key = LONG[table]
    _fill(store, write, make)
    frame = getattr(store, read)
    assert _keys(frame("b"), key) == [("b", "b/0", 0, 1), ("b", "b/0", 0, 2), ("b", "b/1", 0, 7)]
    assert _keys(frame(["b", "nope"]), key) == _keys(frame("b"), key)
    assert _keys(frame(trial_uids="a/b"), key) == [("a", "a/b", 0, 1), ("a", "a/b", 0, 2), ("a", "a/b", 0, 3)]
    assert _keys(frame("b", trial_uids=["a/b"]), key) == []  # both filters apply
    assert _keys(frame(trial_uids="a/z", all_attempts=True), key) == [
        ("a", "a/z", 0, 1), ("a", "a/z", 0, 2), ("a", "a/z", 0, 3), ("a", "a/z", 0, 4), ("a", "a/z", 1, 5),
        ("a", "a/z", 1, 6)]
    assert len(frame(all_attempts=True)) == 1 + 2 + 3 + 2 + 4
    assert frame("a")["sweep"].cat.categories.tolist() == ["a"]
    assert frame("a")["trial_uid"].cat.categories.tolist() == ["a/z", "a/b"]  # in trial order


@pytest.mark.parametrize("table", list(LONG))
def test_an_empty_long_read_has_the_columns_and_dtypes_of_a_full_one(store: Store, table: str) -> None:
    read, write, make, columns, _ = LONG[table]
    _fill(store, write, make)
    full, empty = getattr(store, read)(), getattr(store, read)("nope")
    assert empty.empty and list(empty.columns) == ["sweep", "trial_uid", "attempt", *columns] == list(full.columns)
    for col in columns:
        assert str(empty[col].dtype) == DTYPES[col] == str(full[col].dtype), col
    for frame in (empty, full):
        assert str(frame["sweep"].dtype) == str(frame["trial_uid"].dtype) == "category"
        assert str(frame["attempt"].dtype) == "int64"


def test_aware_makes_every_datetime_utc_and_leaves_other_values_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite hands back naive datetimes that are UTC: on a machine whose clock is not UTC, reading them as local
    # time would shift every timestamp of the store
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        naive = dt.datetime(2026, 12, 4, 17, 0, 0)
        plus_two = dt.datetime(2026, 12, 4, 19, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        assert aware(naive) == dt.datetime(2026, 12, 4, 17, 0, 0, tzinfo=dt.UTC) and aware(naive).tzinfo is dt.UTC
        assert aware(plus_two).tzinfo is dt.UTC and aware(plus_two).hour == 17  # converted, not relabelled
        assert aware("2026-12-04") == "2026-12-04" and aware(None) is None
    finally:
        monkeypatch.undo()
        time.tzset()


T0 = 1_780_000_000.0  # unix seconds: every time the world below records is T0 + a few seconds
CFG = {"model": {"crawler_loops": 2}, "train": {"seed": 7}}


def _plain(values: Any) -> list[Any]:
    """Missing values as None (pandas 3's string columns hold NaN for a missing text)."""
    return [None if pd.isna(v) else v for v in values]


def _at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + seconds, unit="s", tz="UTC")


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 + seconds, dt.UTC)


def _world(store: Store) -> None:
    """Sweep `base` (running): trials numbered 0 (two: `base/c` and `base/y`, which the uid orders), 1 to 5;
    `base/y` ok on its second attempt, `base/run` running its second attempt, `base/idle` running without a step,
    `base/busy` running, `base/div` diverged; `base/c` alone has a (lower) sliding score. Sweep `rerun` (an
    import, parent `base`): two ok trials scored standard only, tied. Sweep `alpha` (made last, named first): one
    ok trial without any score."""
    store.create_or_get_sweep("base", {"space": {"model.crawler_loops": [2]}})
    store.create_or_get_sweep("rerun", {}, parent="base", source="import")
    for uid, number, seed in (("base/x", 1, 11), ("base/y", 0, 12), ("base/c", 0, 13), ("base/run", 2, 14),
                              ("base/div", 3, 15), ("base/idle", 4, 16), ("base/busy", 5, 17)):
        store.start_trial("base", uid, number, 0, CFG, seed, f"node-{seed}", started_at=T0 + seed)
    store.finish_trial("base/x", 0, "ok", None, {
        "val_bpb": 1.28, "q_val_bpb": 1.30,
        "provenance": {"git_commit": "abc", "config_hash": "f00", "config": CFG, "versions": {"torch": "2.13"}}},
        ended_at=T0 + 100)
    store.add_steps("base/y", 0, [_step(k) for k in (1, 2)])
    store.finish_trial("base/y", 0, "crashed", "node lost", None, ended_at=T0 + 50)
    store.start_trial("base", "base/y", 0, 1, CFG, 12, "node-b", started_at=T0 + 60)
    store.add_steps("base/y", 1, [_step(k) for k in (1, 2, 3)])
    store.add_evals("base/y", 1, [_eval(3)])
    store.add_probes("base/y", 1, [_probe(1), _probe(2)])
    store.add_named_evals("base/y", 1, [_named(k) for k in (2, 1, 0)])
    store.finish_trial("base/y", 1, "ok", None, {"val_bpb": 1.20, "q_val_bpb": 1.25}, ended_at=T0 + 160)
    store.finish_trial("base/c", 0, "ok", None, {"val_bpb": 1.10, "q_val_bpb": 1.27, "q_sliding_val_bpb": 1.05},
                       ended_at=T0 + 90)
    store.add_steps("base/run", 0, [_step(k) for k in range(1, 10)])
    store.finish_trial("base/run", 0, "crashed", "node lost", None, ended_at=T0 + 70)
    store.start_trial("base", "base/run", 2, 1, CFG, 14, "node-r", started_at=T0 + 80)
    store.add_steps("base/run", 1, [_step(k) for k in (1, 2, 3)])
    store.add_steps("base/busy", 0, [_step(k) for k in range(1, 6)])
    store.finish_trial("base/div", 0, "diverged", "loss 9.1 > 6.9 at step 40",
                       {"status": "diverged", "reason": "what the worker wrote", "steps": 40})
    store.set_sweep_status("base", "running")
    for n in (0, 1):
        store.start_trial("rerun", f"rerun/{n}", n, 0, CFG, None, None, started_at=T0)
        store.finish_trial(f"rerun/{n}", 0, "ok", None, {"val_bpb": 1.4, "provenance": "n/a"})
    store.add_artifact("base/x", 0, "runs/x/model.ptz", 9_000_000, 100_000, "ab" * 32)
    store.add_artifact("base/y", 1, "runs/y/model.ptz", 9_100_000, 100_001, "cd" * 32)
    store.add_artifact("base/y", 0, "runs/y0/ckpt.pt", 9_200_000, None, None, kind="checkpoint")
    store.add_artifact("rerun/0", 0, "runs/r0/model.ptz", 8_000_000, 1)
    store.create_or_get_sweep("alpha", {})
    store.start_trial("alpha", "alpha/0", 0, 0, CFG, 1, None, started_at=T0)
    store.finish_trial("alpha/0", 0, "ok", None, {"steps": 5, "provenance": {"config": "sp1024.yaml", "seed": 1}})


BASE_ORDER = ["base/c", "base/y", "base/x", "base/run", "base/div", "base/idle", "base/busy"]


def test_trials_frame_gives_each_trials_latest_attempt_field_by_field(store: Store) -> None:
    _world(store)
    frame = store.trials_frame("base")
    assert list(frame.columns) == [*BASE_TRIAL_COLUMNS, "val_bpb", "q_val_bpb", "q_sliding_val_bpb", "steps",
                                   "provenance.git_commit", "provenance.versions.torch", "model.crawler_loops",
                                   "train.seed"]
    assert frame["trial_uid"].tolist() == BASE_ORDER
    assert frame["sweep"].tolist() == ["base"] * 7 and frame["number"].tolist() == [0, 0, 1, 2, 3, 4, 5]
    assert frame["attempt"].tolist() == [0, 1, 0, 1, 0, 0, 0] and frame["attempts"].tolist() == [1, 2, 1, 2, 1, 1, 1]
    assert frame["status"].tolist() == ["ok", "ok", "ok", "running", "diverged", "running", "running"]
    # the attempt's reason, never a "reason" inside the result
    assert _plain(frame["reason"]) == [None, None, None, None, "loss 9.1 > 6.9 at step 40", None, None]
    assert frame["seed"].tolist() == [13, 12, 11, 14, 15, 16, 17]
    assert set(frame["config_hash"]) == {config_hash(CFG)}
    assert frame["node"].tolist() == ["node-13", "node-b", "node-11", "node-r", "node-15", "node-16", "node-17"]
    assert frame["started_at"].tolist() == [_at(13), _at(60), _at(11), _at(80), _at(15), _at(16), _at(17)]
    assert frame["ended_at"].tolist()[:3] == [_at(90), _at(160), _at(100)]
    assert frame["ended_at"][[3, 5, 6]].isna().all() and frame["ended_at"][[4]].notna().all()
    assert (frame["source"] == "run").all() and store.trials_frame("rerun")["source"].tolist() == ["import"] * 2
    assert frame["q_val_bpb"].tolist()[1:3] == [1.25, 1.30] and frame.loc[4, "steps"] == 40
    assert frame["model.crawler_loops"].tolist() == [2] * 7 and frame["train.seed"].tolist() == [7] * 7
    assert "provenance" not in store.trials_frame("rerun").columns  # a provenance that is not a mapping: dropped
    alpha = store.trials_frame("alpha")  # the provenance's config is the trial's own: never a column of its own
    assert "provenance.config" not in alpha.columns and alpha["provenance.seed"].tolist() == [1]
    everything = store.trials_frame()["trial_uid"].tolist()  # sweeps by name, then trial number
    assert everything == ["alpha/0", *BASE_ORDER, "rerun/0", "rerun/1"]
    assert store.trials_frame(where={"number": 0})["trial_uid"].tolist() == ["alpha/0", "base/c", "base/y", "rerun/0"]
    nothing = store.trials_frame("nope")
    assert nothing.empty and list(nothing.columns) == list(BASE_TRIAL_COLUMNS)


def test_nested_provenance_is_read_as_dotted_columns_and_lists_are_left_out(store: Store) -> None:
    # the worker writes the shards' and tokenizer's digests under provenance.data: the report's data table and its
    # changed-shards caution read them as columns (walk 5, F16)
    store.create_or_get_sweep("nest", {})
    store.start_trial("nest", "nest/0", 0, 0, CFG, 1, None, started_at=T0)
    data = {"train": {"shards": 3, "tokens": 1277743, "digest": "8713fdd703e2b461"},
            "val": {"shards": 1, "tokens": 78150, "digest": "f46f2dc770de204c"}, "tokenizer": {"sha256": "98de"}}
    store.finish_trial("nest/0", 0, "ok", None, {"steps": 5, "provenance": {"data": data, "torch": "2.13.0+cpu",
                                                                             "hosts": ["a", "b"]}})
    row = store.trials_frame("nest").iloc[0]
    assert row["provenance.data.tokenizer.sha256"] == "98de" and row["provenance.data.val.tokens"] == 78150
    assert row["provenance.data.train.digest"] == "8713fdd703e2b461" and row["provenance.torch"] == "2.13.0+cpu"
    assert not any(c.startswith("provenance.hosts") for c in row.index)


def test_an_unknown_where_column_names_itself_and_the_columns_there_are(store: Store) -> None:
    _world(store)
    with pytest.raises(StoreError) as err:
        store.trials_frame(where={"model.nope": 1})
    assert str(err.value) == ("no trial column 'model.nope' to filter on (columns are the config keys such as "
                              "model.crawler_loops, the result metrics and the trial fields)")


def test_sweeps_frame_and_get_sweep_describe_every_sweep(store: Store) -> None:
    _world(store)
    frame = store.sweeps_frame()
    assert list(frame.columns) == ["name", "status", "source", "parent", "created_at", "updated_at", "trials", "ok",
                                   "running", "failed", "pruned", "stopped", "best_bpb", "best_metric",
                                   "unranked_headlines", "over_cap"]
    assert frame["name"].tolist() == ["alpha", "base", "rerun"]
    alpha, base, rerun = (dict(zip(frame.columns, _plain(frame.iloc[k]), strict=True)) for k in range(3))
    keys = ("name", "status", "source", "parent", "trials", "ok", "running", "failed", "pruned", "stopped",
            "best_bpb", "best_metric")
    assert {k: base[k] for k in keys} == {"name": "base", "status": "running", "source": "run", "parent": None,
                                          "trials": 7, "ok": 3, "running": 3, "failed": 1, "pruned": 0, "stopped": 0,
                                          "best_bpb": 1.25, "best_metric": "q_val_bpb"}
    # 1.25: q_val_bpb, which all three ok trials have; base/c's lower sliding score is alone of its kind
    assert {k: rerun[k] for k in keys} == {"name": "rerun", "status": "created", "source": "import", "parent": "base",
                                           "trials": 2, "ok": 2, "running": 0, "failed": 0, "pruned": 0,
                                           "stopped": 0, "best_bpb": 1.4, "best_metric": "val_bpb"}
    assert {k: alpha[k] for k in keys} == {"name": "alpha", "status": "created", "source": "run", "parent": None,
                                           "trials": 1, "ok": 1, "running": 0, "failed": 0, "pruned": 0,
                                           "stopped": 0, "best_bpb": None, "best_metric": None}
    for col in ("created_at", "updated_at"):
        assert str(frame[col].dt.tz) == "UTC" and frame[col].notna().all(), col
    assert frame["updated_at"][1] > frame["created_at"][1]  # base's status was set after it was made
    sweep = store.get_sweep("rerun")
    assert set(sweep) == {"id", "name", "spec", "status", "reason", "source", "parent", "created_at", "updated_at"}
    assert (sweep["name"], sweep["parent"], sweep["source"], sweep["spec"]) == ("rerun", "base", "import", {})
    assert sweep["created_at"].tzinfo is dt.UTC and sweep["created_at"] == frame["created_at"][2]
    assert store.get_sweep("base")["parent"] is None and store.get_sweep("nope") is None


def test_sweep_summary_counts_finds_the_best_and_the_last_step_of_each_running_attempt(store: Store) -> None:
    _world(store)
    summary = store.sweep_summary("base")
    assert {k: summary[k] for k in ("name", "status", "reason", "source", "parent", "trials")} == \
        {"name": "base", "status": "running", "reason": None, "source": "run", "parent": None, "trials": 7}
    assert summary["created_at"] == store.get_sweep("base")["created_at"] and summary["created_at"].tzinfo is dt.UTC
    assert summary["by_status"] == {"ok": 3, "running": 3, "diverged": 1}
    assert summary["best"] == {"trial_uid": "base/y", "number": 0, "score": 1.25, "metric": "q_val_bpb",
                               "val_bpb": 1.20, "q_val_bpb": 1.25}
    assert summary["running"] == [  # base/run's running attempt is its second: 3 steps, not the first one's 9
        {"trial_uid": "base/run", "number": 2, "attempt": 1, "node": "node-r", "started_at": _utc(80), "last_step": 3},
        {"trial_uid": "base/idle", "number": 4, "attempt": 0, "node": "node-16", "started_at": _utc(16),
         "last_step": 0},
        {"trial_uid": "base/busy", "number": 5, "attempt": 0, "node": "node-17", "started_at": _utc(17),
         "last_step": 5}]
    rerun = store.sweep_summary("rerun")
    assert rerun["best"]["trial_uid"] == "rerun/0" and rerun["best"]["score"] == 1.4  # a tie: the first trial
    assert rerun["running"] == [] and rerun["parent"] == "base" and rerun["source"] == "import"
    assert store.sweep_summary("alpha")["best"] is None  # ok, but no score of any kind
    with pytest.raises(StoreError, match=r"no sweep named 'nope' in \S+$"):
        store.sweep_summary("nope")
    with pytest.raises(StoreError, match=r"no sweep named 'rerun2' in \S+ \(did you mean rerun\?\)$"):
        store.sweep_summary("rerun2")


def test_ranked_trials_orders_the_ok_trials_by_the_score_most_of_them_measured(store: Store) -> None:
    _world(store)
    metric, trials = store.ranked_trials("base")
    # q_val_bpb: measured by all three ok trials (base/c's lower sliding score is not like with like)
    assert metric == "q_val_bpb" and [t["trial_uid"] for t in trials] == ["base/y", "base/c", "base/x"]
    assert trials[0]["config"] == CFG and trials[0]["result"]["q_val_bpb"] == 1.25 and trials[0]["attempt"] == 1
    metric, trials = store.ranked_trials("rerun")
    assert metric == "val_bpb" and [t["trial_uid"] for t in trials] == ["rerun/0", "rerun/1"]  # a tie: store order
    assert store.ranked_trials("alpha") is None and store.ranked_trials("nope") is None


def test_get_trial_lists_every_attempt_with_its_row_counts_and_files(store: Store) -> None:
    _world(store)
    trial = store.get_trial("base/y")
    assert set(trial) == {"trial_uid", "sweep", "number", "config", "config_hash", "seed", "created_at", "attempts"}
    assert (trial["trial_uid"], trial["sweep"], trial["number"], trial["seed"]) == ("base/y", "base", 0, 12)
    assert trial["config"] == CFG and trial["config_hash"] == config_hash(CFG)
    assert trial["created_at"] == _utc(12)
    first, second = trial["attempts"]
    assert set(first) == {"attempt", "status", "reason", "node", "started_at", "ended_at", "result", "steps",
                          "evals", "probes", "named_evals", "artifacts"}
    assert (first["attempt"], first["status"], first["reason"], first["node"], first["result"]) == \
        (0, "crashed", "node lost", "node-12", None)
    assert (first["started_at"], first["ended_at"]) == (_utc(12), _utc(50))
    assert (first["steps"], first["evals"], first["probes"], first["named_evals"]) == (2, 0, 0, [])
    assert [(a["kind"], a["path"], a["size_bytes"]) for a in first["artifacts"]] == \
        [("checkpoint", "runs/y0/ckpt.pt", 9_200_000)]
    assert (second["attempt"], second["status"], second["node"], second["result"]) == \
        (1, "ok", "node-b", {"val_bpb": 1.20, "q_val_bpb": 1.25})
    assert (second["steps"], second["evals"], second["probes"]) == (3, 1, 2)
    assert [e["name"] for e in second["named_evals"]] == ["final_0", "final_1", "final_2"]  # seq order
    assert "attempt_id" not in second["named_evals"][0]
    art = second["artifacts"][0]
    assert set(art) == {"path", "kind", "size_bytes", "code_bytes", "sha256", "created_at"}
    assert (art["code_bytes"], art["sha256"]) == (100_001, "cd" * 32) and art["created_at"].tzinfo is dt.UTC
    assert store.get_trial("base/none") is None


def test_artifacts_frame_lists_files_in_sweep_trial_number_and_attempt_order(store: Store) -> None:
    _world(store)
    frame = store.artifacts_frame()
    assert list(frame.columns) == ["sweep", "trial_uid", "attempt", "kind", "path", "size_bytes", "code_bytes",
                                   "sha256", "created_at"]
    assert frame[["sweep", "trial_uid", "attempt", "kind", "path"]].values.tolist() == [
        ["base", "base/y", 0, "checkpoint", "runs/y0/ckpt.pt"], ["base", "base/y", 1, "model", "runs/y/model.ptz"],
        ["base", "base/x", 0, "model", "runs/x/model.ptz"], ["rerun", "rerun/0", 0, "model", "runs/r0/model.ptz"]]
    assert frame["size_bytes"].tolist() == [9_200_000, 9_100_000, 9_000_000, 8_000_000]
    assert frame["code_bytes"].tolist()[1:] == [100_001, 100_000, 1] and pd.isna(frame["code_bytes"][0])
    assert _plain(frame["sha256"]) == [None, "cd" * 32, "ab" * 32, None]
    assert frame["created_at"].notna().all()
    assert store.artifacts_frame("alpha").empty and list(store.artifacts_frame(["alpha"]).columns) == \
        list(frame.columns)
    assert len(store.artifacts_frame(["base", "rerun"])) == 4 and len(store.artifacts_frame("rerun")) == 1


def _capped(store: Store) -> None:
    """Sweep `cap`: trial 0 has the lower BPB but broke its size cap (stored `over_cap: true`, as the sweep driver
    stores a trial Optuna was told is infeasible), trial 1 is within it; sweep `allover`: its one ok trial is over."""
    store.create_or_get_sweep("cap", {"constraint": {"max_artifact_bytes": 470_000}})
    for uid, number, bpb, over in (("cap/0", 0, 2.3399421, True), ("cap/1", 1, 2.355475, False)):
        store.start_trial("cap", uid, number, 0, CFG, 1337, None, started_at=T0)
        result = {"val_bpb": bpb, "q_sliding_val_bpb": bpb, "artifact_bytes": 480_000 if over else 460_000,
                  "headline_bpb": bpb - 0.1}
        if over:
            result |= {"over_cap": True, "size_cap_applied": 470_000}
        store.finish_trial(uid, 0, "ok", "artifact 480000 bytes over the cap of 470000" if over else None, result)
    store.create_or_get_sweep("allover", {})
    store.start_trial("allover", "allover/0", 0, 0, CFG, 1, None, started_at=T0)
    store.finish_trial("allover/0", 0, "ok", None, {"val_bpb": 2.0, "over_cap": True, "headline_bpb": 1.9})


def test_an_over_cap_trial_is_never_a_sweeps_best_in_sweeps_frame_sweep_summary_or_ranked_trials(
        store: Store) -> None:
    _capped(store)
    frame = store.sweeps_frame().set_index("name")
    assert (frame.loc["cap", "best_bpb"], frame.loc["cap", "best_metric"]) == (2.355475, "q_sliding_val_bpb")
    best = store.sweep_summary("cap")["best"]
    assert (best["trial_uid"], best["number"], best["score"]) == ("cap/1", 1, 2.355475)
    metric, trials = store.ranked_trials("cap")  # what `sweep rerun` of an imported sweep picks from
    assert metric == "q_sliding_val_bpb" and [t["trial_uid"] for t in trials] == ["cap/1"]
    # every ok trial is still listed where a listing asks for all (`store ls SWEEP`'s headline columns)
    assert [t["trial_uid"] for t in store.ranked_trials("cap", feasible_only=False)[1]] == ["cap/0", "cap/1"]
    # no feasible trial: no best, though its over-cap trial's unranked headline is still counted
    assert pd.isna(frame.loc["allover", "best_bpb"]) and pd.isna(frame.loc["allover", "best_metric"])
    assert frame.loc["allover", "unranked_headlines"] == 1 and frame.loc["cap", "unranked_headlines"] == 2
    assert (frame.loc["allover", "over_cap"], frame.loc["cap", "over_cap"]) == (1, 1)
    assert store.sweep_summary("allover")["best"] is None


def test_an_imported_record_over_the_challenge_cap_is_never_best_though_it_stores_no_over_cap(store: Store) -> None:
    """An imported record says only its artifact_bytes: 16,000,001 bytes is over the challenge's cap (not
    submittable), 16,000,000 is at it; a config that sets its own larger cap holds its trial to that one."""
    store.create_or_get_sweep("records", {}, source="import")
    sizes = (("records/0", 1.10, 16_000_001, CFG), ("records/1", 1.12, 16_000_000, CFG),
             ("records/2", 1.05, 18_000_000, {**CFG, "quant": {"size_cap_bytes": 20_000_000}}),
             ("records/3", 1.00, 21_000_000, {**CFG, "quant": {"size_cap_bytes": 20_000_000}}))
    for number, (uid, bpb, size, cfg) in enumerate(sizes):
        store.start_trial("records", uid, number, 0, cfg, 1337, None, started_at=T0)
        store.finish_trial(uid, 0, "ok", None, {"val_bpb": bpb, "artifact_bytes": size})
    assert [t["trial_uid"] for t in store.ranked_trials("records")[1]] == ["records/2", "records/1"]
    assert store.sweep_summary("records")["best"]["trial_uid"] == "records/2"
    assert store.sweeps_frame().set_index("name").loc["records", "best_bpb"] == 1.05
    assert store.sweeps_frame().set_index("name").loc["records", "over_cap"] == 2


def test_a_trial_is_held_to_the_cap_its_sweep_applied_then_its_configs_then_the_challenges() -> None:
    """size_cap reads result.size_cap_applied first, then config quant.size_cap_bytes, then 16,000,000; a cap must be
    a positive number (1 byte is one; 0, negative, true or text is none), and a trial with no readable result or
    config is held to the challenge's cap. feasible: an ok trial at its cap is feasible, one byte over is not."""
    from clowncar.store.frames import CHALLENGE_CAP_BYTES, feasible, size_cap

    def trial(result: Any, config: Any = None, status: str = "ok") -> dict[str, Any]:
        return {"status": status, "result": result, "config": config}

    own = {"quant": {"size_cap_bytes": 20_000_000}}
    assert size_cap(trial({"size_cap_applied": 1_000}, own)) == 1_000
    assert size_cap(trial({"artifact_bytes": 5}, own)) == 20_000_000
    assert feasible(trial({"artifact_bytes": 1_000, "size_cap_applied": 1_000}, own))
    assert not feasible(trial({"artifact_bytes": 1_001, "size_cap_applied": 1_000}, own))
    assert size_cap(trial({"size_cap_applied": 1})) == 1
    assert not feasible(trial({"artifact_bytes": 2, "size_cap_applied": 1}))
    for no_cap in (0, -5, True, "1000", None):
        assert size_cap(trial({"size_cap_applied": no_cap}, {"quant": {"size_cap_bytes": no_cap}})) == 16_000_000
    assert size_cap(trial(None, None)) == size_cap(trial("text", ["quant"])) == CHALLENGE_CAP_BYTES == 16_000_000


def test_only_an_ok_trial_is_feasible_and_one_that_stored_no_result_broke_no_cap() -> None:
    from clowncar.store.frames import feasible

    assert not feasible({"status": "failed", "result": {"val_bpb": 1.0}, "config": {}})
    assert not feasible({"status": "running", "result": None, "config": {}})
    assert feasible({"status": "ok", "result": None, "config": {}})
    assert not feasible({"status": "ok", "result": {"over_cap": True}, "config": {}})


def test_a_headline_is_unranked_only_where_it_is_a_number_other_than_the_ranked_metrics_value() -> None:
    from clowncar.store.frames import headline_unranked

    assert not headline_unranked({"val_bpb": 1.2, "headline_bpb": 1.2}, "val_bpb")
    assert headline_unranked({"val_bpb": 1.2, "headline_bpb": 1.1}, "val_bpb")
    assert headline_unranked({"headline_bpb": 1.1}, "val_bpb")
    assert not headline_unranked({"val_bpb": 1.2}, "val_bpb")
    assert not headline_unranked({"val_bpb": 1.2, "headline_bpb": "n/a"}, "val_bpb")
    assert not headline_unranked(None, "val_bpb")
