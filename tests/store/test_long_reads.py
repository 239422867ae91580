"""The fast long-table readers (SQLite per-attempt key walk, PostgreSQL COPY) return exactly what the plain DBAPI
path returns: the same columns, dtypes, categories, values (NaN / <NA> included) and row order, on both
backends (the `store` fixture is parametrized)."""

from __future__ import annotations

import functools
import math
import sqlite3

import pandas as pd
import pytest

from clowncar.store import frames as frames_module
from clowncar.store import longread
from clowncar.store import schema as s


def _steps(first: int, last: int, phase: str | None = "main") -> list[dict]:
    rows = [{"step": i, "kind": "C" if i % 3 else "N", "train_loss": 7.0 / (i + 0.1), "lr_scale": 1.0 - i / 3e4,
             "phase": phase if i > 4 else ("warmup" if phase else None), "elapsed_ms": i * 85.33,
             "tokens": i * 524288} for i in range(first, last + 1)]
    for r in rows[::7]:  # holes in every nullable column
        r.update(kind=None, train_loss=None, tokens=None)
    for r in rows[3::11]:
        r.update(lr_scale=None, elapsed_ms=None, phase=None)
    for r in rows[6::13] if phase else []:  # labels that CSV readers take for missing by default stay labels
        r.update(phase="NA" if r["step"] % 2 else "null")
    return rows


def _fill(store) -> None:
    """Two sweeps; trial numbers out of insertion (id) order; a retried trial; rows written out of step order
    and twice; a sweep whose phase is missing everywhere; evals and probes of several modes."""
    store.create_or_get_sweep("b-sweep", {})
    store.create_or_get_sweep("a-sweep", {})
    for uid, number, sweep in (("t-late", 5, "b-sweep"), ("t-early", 1, "b-sweep"), ("t-mid", 3, "b-sweep"),
                               ("u0", 0, "a-sweep")):
        store.start_trial(sweep, uid, number, 0, {"model": {"dim": 64}}, number, "node")
    store.add_steps("t-late", 0, _steps(30, 57))
    store.add_steps("t-late", 0, _steps(1, 40))  # overlaps: the first copy of 30..40 stays
    store.add_steps("t-early", 0, _steps(1, 23))
    store.start_trial("b-sweep", "t-early", 1, 1, {"model": {"dim": 64}}, 1, "node")
    store.add_steps("t-early", 1, _steps(1, 9))
    store.add_steps("u0", 0, _steps(1, 12, phase=None))  # t-mid has no rows at all
    for uid in ("t-late", "t-early"):
        store.add_evals(uid, 0, [{"step": k, "mode": m, "weights": w, "val_loss": 2.0 + k / 7 + j,
                                  "val_bpb": None if k == 20 else 1.2 + k / 9,
                                  "tokens_scored": None if w == "ema" else 1000 * k, "bytes_scored": 4000 * k}
                                 for k in (20, 10) for j, (m, w) in enumerate([("flat", "raw"), ("sliding", "ema")])])
        store.add_probes(uid, 0, [{"step": k, "mode": m, "probe_loss": None if k == 5 else 3.0 / k}
                                  for k in (5, 15) for m in ("C", "N")])


def _both_ways(store, monkeypatch: pytest.MonkeyPatch, method: str, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    fast = getattr(store, method)(**kwargs)
    with monkeypatch.context() as m:
        m.setattr(frames_module, "read_long", functools.partial(longread.read_long, portable=True))
        plain = getattr(store, method)(**kwargs)
    return fast, plain


def _assert_same(fast: pd.DataFrame, plain: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(fast, plain, check_exact=True, check_categorical=True)
    for col in fast.columns:
        assert fast[col].dtype == plain[col].dtype, col
        if isinstance(fast[col].dtype, pd.CategoricalDtype):
            pd.testing.assert_index_equal(fast[col].cat.categories, plain[col].cat.categories, exact=True)
            assert list(fast[col].cat.codes) == list(plain[col].cat.codes), col


@pytest.mark.parametrize("row_batch", [longread.ROW_BATCH, 5])
@pytest.mark.parametrize("method", ["steps_frame", "evals_frame", "probes_frame"])
@pytest.mark.parametrize("kwargs", [{}, {"all_attempts": True}, {"sweeps": "b-sweep"}, {"sweeps": "a-sweep"},
                                    {"trial_uids": ["t-early", "t-mid"], "all_attempts": True},
                                    {"sweeps": "nope"}])
def test_fast_long_reads_equal_the_plain_dbapi_path(store, monkeypatch, method, kwargs, row_batch):
    _fill(store)
    monkeypatch.setattr(longread, "ROW_BATCH", row_batch)  # 5: SQLite joins many batches (labels included)
    fast, plain = _both_ways(store, monkeypatch, method, **kwargs)
    _assert_same(fast, plain)


def test_steps_frame_is_in_sweep_trial_attempt_step_order_with_every_hole_kept(store, monkeypatch):
    _fill(store)
    monkeypatch.setattr(longread, "ROW_BATCH", 5)
    frame = store.steps_frame(all_attempts=True)
    keys = list(zip(frame["sweep"], frame["trial_uid"], frame["attempt"], frame["step"], strict=True))
    expected = ([("a-sweep", "u0", 0, i) for i in range(1, 13)] + [("b-sweep", "t-early", 0, i) for i in range(1, 24)]
                + [("b-sweep", "t-early", 1, i) for i in range(1, 10)]
                + [("b-sweep", "t-late", 0, i) for i in range(1, 58)])
    assert keys == expected
    late = frame[frame["trial_uid"] == "t-late"].set_index("step")
    by_step = {r["step"]: r for r in _steps(30, 57) + _steps(1, 29)}  # first write of 30..40 wins
    for step, want in by_step.items():
        got = late.loc[step]
        for col in ("train_loss", "lr_scale", "elapsed_ms"):
            assert (math.isnan(got[col]) if want[col] is None else got[col] == want[col]), (step, col)
        assert (got["tokens"] is pd.NA) if want["tokens"] is None else got["tokens"] == want["tokens"]
        for col in ("kind", "phase"):
            assert pd.isna(got[col]) if want[col] is None else got[col] == want[col], (step, col)
    assert frame[frame["sweep"] == "a-sweep"]["phase"].isna().all()  # u0 wrote no phase at all
    assert list(frame["kind"].cat.categories) == ["C", "N"]
    assert str(frame["tokens"].dtype) == "Int64" and str(frame["train_loss"].dtype) == "float64"


def test_sqlite_reads_walk_the_primary_key_without_sorting(tmp_path):
    from clowncar.store import open_store

    path = tmp_path / "plan.db"
    open_store(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)
    try:
        for table, columns, order in ((s.steps, ("step", "kind"), ("step",)),
                                      (s.evals, ("step", "val_bpb"), ("step", "mode", "weights")),
                                      (s.probes, ("step", "probe_loss"), ("step", "mode"))):
            plan = " | ".join(r[-1] for r in db.execute(
                "EXPLAIN QUERY PLAN " + longread.sqlite_query(table.name, columns, order), (1,)))
            assert "TEMP B-TREE" not in plan and "attempt_id=?" in plan, (table.name, plan)
    finally:
        db.close()
