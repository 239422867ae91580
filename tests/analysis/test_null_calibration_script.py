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
    assert list(hits) == ["shipped: runs sharing a reference averaged", "before: every corrected run a unit"]
    assert all(0 <= n <= 3 for n in hits.values())
    assert calibration.wilson(0, 10)[0] == 0.0 and calibration.wilson(10, 10)[1] == 1.0
    assert calibration.wilson(5, 100) == pytest.approx((0.0215, 0.1118), abs=5e-4)
