"""benchmarks/cn_null_calibration.py simulates the signal sweep's design under the null: the runs it makes pair as
the sweep's do (each alternating run with its own seed's reference), and its counts come from the shipped test."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from clowncar.analysis.cn_steps import cn_loss_test
from clowncar.analysis.frames import step_kind_table

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cn_null_calibration.py"


@pytest.fixture(scope="module")
def calibration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cn_null_calibration", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_alternating_run_takes_its_own_seeds_reference(calibration: ModuleType) -> None:
    frame, trials = calibration.sweep(np.random.default_rng(1), seeds=3, steps=60)
    res, fits = cn_loss_test(step_kind_table(frame), trials)
    assert sorted(fits) == [f"cad{c}/s{s}" for c in (2, 4) for s in range(3)]
    assert {r["run"]: r["reference"] for r in res.tables["reference_runs"]} == {
        f"cad{c}/s{s}": f"cad0/s{s}" for c in (2, 4) for s in range(3)}
    assert res.p_value is not None and 0 < res.p_value < 1


def test_the_counts_are_rejections_out_of_the_repetitions(calibration: ModuleType) -> None:
    hits = calibration.rejections(reps=3, seeds=3, steps=60)
    assert list(hits) == list(calibration.TESTS) and all(0 <= n <= 3 for n in hits.values())


def test_the_shared_answer_moves_the_alternating_runs_together_and_not_the_references(calibration) -> None:
    frame, _ = calibration.sweep(np.random.default_rng(2), seeds=4, steps=200, shared_sd=0.017)
    loss = frame.pivot(index="step", columns="trial_uid", values="train_loss")
    resid = {c: (loss[c] - loss[c.replace("cad2", "cad0").replace("cad4", "cad0")]).to_numpy()
             for c in loss.columns if not c.startswith("cad0")}
    corr = np.corrcoef(np.array([resid[f"cad2/s{s}"] for s in range(4)]))
    assert 0.45 < corr[np.triu_indices(4, 1)].mean() < 0.7  # the demo's corrected cad-2 runs: 0.59
    quiet, _ = calibration.sweep(np.random.default_rng(2), seeds=4, steps=200)
    q = quiet.pivot(index="step", columns="trial_uid", values="train_loss")
    q_corr = np.corrcoef(np.array([(q[f"cad2/s{s}"] - q[f"cad0/s{s}"]).to_numpy() for s in range(4)]))
    assert abs(q_corr[np.triu_indices(4, 1)].mean()) < 0.2
    assert calibration.wilson(0, 10)[0] == 0.0 and calibration.wilson(10, 10)[1] == 1.0
    assert calibration.wilson(5, 100) == pytest.approx((0.0215, 0.1118), abs=5e-4)
