"""What a resumed sweep's ASHA is given (`asha.stored_measurements`, `asha.seed_rungs`), read from a real SQLite
store: each metric from the rows the live trainable reports it from, of the sweep's own trials only, and a rung
value for every trial that reached the rung, but those that run again."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator.asha import seed_rungs, stored_measurements
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.tune import build_scheduler
from clowncar.store import open_store

SPEC = {"name": "a4", "preset": "tiny-cpu", "sampler": "grid",
        "overrides": {"train.iterations": 30, "train.warmdown_iters": 20, "train.max_wallclock_seconds": 0,
                      "train.probe_every": 5},
        "space": {"train.matrix_lr": {"grid": [0.05, 0.001]}},
        "scheduler": {"type": "asha", "metric": "probe_loss", "grace_period": 15, "reduction_factor": 2}}


def _trial(store: Any, sweep: str, number: int, steps: list[tuple[int, float]] = (),
           evals: list[dict[str, Any]] = (), probes: list[tuple[int, float]] = ()) -> str:
    uid = f"{sweep}/{number}"
    store.start_trial(sweep, uid, number, 0, {"train": {"number": number}}, None, "n0")
    store.add_steps(uid, 0, [{"step": s, "kind": "C", "train_loss": v} for s, v in steps])
    store.add_evals(uid, 0, evals)
    store.add_probes(uid, 0, [{"step": s, "mode": "C", "probe_loss": v} for s, v in probes])
    store.finish_trial(uid, 0, "ok", None, None)
    return uid


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    for sweep in ("a4", "other"):
        store.create_or_get_sweep(sweep, spec_from_dict({**SPEC, "name": sweep}).model_dump())
    return store


def test_each_metric_is_read_from_the_rows_the_trainable_reports_it_from_for_this_sweep_only(store: Any) -> None:
    _trial(store, "a4", 0, steps=[(2, 3.5), (1, 4.0), (3, math.nan)],
           evals=[{"step": 2, "val_bpb": 1.5}, {"step": 2, "val_bpb": 1.2, "weights": "quantized"},
                  {"step": 3, "val_bpb": 1.4, "weights": "ema"}],
           probes=[(5, 3.0), (10, 2.5)])
    _trial(store, "other", 0, steps=[(1, 9.0)], evals=[{"step": 2, "val_bpb": 9.0}], probes=[(5, 9.0)])
    assert stored_measurements(store, "a4", "train_loss") == {"a4/0": [(1, 4.0), (2, 3.5)]}  # in step order, no NaN
    # the raw and EMA weights' BPB, never the quantized weights' (the trainable relays those alone)
    assert stored_measurements(store, "a4", "val_bpb") == {"a4/0": [(2, 1.5), (3, 1.4)]}
    assert stored_measurements(store, "a4", "probe_loss") == {"a4/0": [(5, 3.0), (10, 2.5)]}


def test_every_trial_that_reached_a_rung_is_seeded_and_counted_but_those_that_run_again(store: Any) -> None:
    again = _trial(store, "a4", 0, probes=[(15, 1.0), (30, 0.9)])  # queued to run again: its new attempt reports
    _trial(store, "a4", 1, probes=[(10, 3.0), (15, 2.0), (30, 1.5)])
    _trial(store, "a4", 2, probes=[(5, 3.5), (10, 3.2)])  # stopped before rung 15: nothing to seed
    _trial(store, "a4", 3, probes=[(20, 2.4)])  # measured after the rung step: its first value at or after it
    _trial(store, "a4", 4, probes=[(15, math.inf)])  # a diverged value is no rung value
    _trial(store, "other", 0, probes=[(15, 0.1)])
    scheduler = build_scheduler(spec_from_dict(SPEC), None)
    assert seed_rungs(scheduler, store, "a4", "probe_loss", skip={again}) == 2
    rungs = dict(scheduler._brackets[0]._rungs)
    assert rungs[15] == {"store:a4/1": -2.0, "store:a4/3": -2.4}  # min mode: Tune records the negated loss
    assert rungs[30] == {"store:a4/1": -1.5}
