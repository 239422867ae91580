"""How often the run-level tests 3a, 3b, 4 and 5 call an effect that is not there, on the signal sweep's design.

`simulate_siblings` (tests/analysis/conftest.py) makes the 28 runs of sweeps/signals.yaml with no effect of width,
loops or sharing; the runs of one seed and one model (cadence siblings: same initial weights, same batches) share
80% of their offset and early-boost variance, as the signal demo's BPB residuals do. Each repetition runs the
shipped tests, which average a start's runs into one unit (12 units), and the same tests with every run its own
start (28 units, what the report did before). Each row: the share of repetitions that rejected at alpha 0.05,
with its 95% Wilson interval.

Reproduce: PYTHONPATH=$PWD python benchmarks/start_units_calibration.py [--reps 300] [--share 0.8]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from clowncar.analysis.curves import early_boost_test
from clowncar.analysis.frames import run_table
from clowncar.analysis.runlevel import width_tests
from clowncar.analysis.seeds import sharing_test

ALPHA = 0.05
KEYS = ("3a_width", "3b_sharing_beyond_width", "4_early_boost", "5_sharing_matched_params")
SIMULATORS = Path(__file__).resolve().parents[1] / "tests" / "analysis" / "conftest.py"


def simulators() -> ModuleType:
    spec = importlib.util.spec_from_file_location("analysis_simulators", SIMULATORS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def p_values(runs: pd.DataFrame, evals: pd.DataFrame) -> dict[str, float | None]:
    out = {r.key: r.p_value for r in width_tests(runs)}
    out["4_early_boost"] = early_boost_test(evals, runs).p_value
    out["5_sharing_matched_params"] = sharing_test(runs).p_value
    return out


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = hits / n
    mid, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (mid - half) / (1 + z * z / n), (mid + half) / (1 + z * z / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--share", type=float, default=0.8, help="share of a run's variance its start gives it")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    simulate = simulators().simulate_siblings
    rng = np.random.default_rng(args.seed)
    hits = {(key, how): 0 for key in KEYS for how in ("starts", "runs")}
    for _ in range(args.reps):
        trials, evals = simulate(rng, sibling_share=args.share)
        runs = run_table(trials)
        apart = runs.assign(start_key=runs["run_id"])  # every run its own start: the tests before the fix
        for how, table in (("starts", runs), ("runs", apart)):
            for key, p in p_values(table, evals).items():
                hits[key, how] += p is not None and p < ALPHA
    print(f"null simulations of the signal sweep's design: {args.reps} reps, sibling share {args.share}, "
          f"alpha {ALPHA}")
    print(f"{'test':28} {'units':>7} {'rejected':>9} {'95% CI':>15}")
    for key in KEYS:
        for how, units in (("starts", 12), ("runs", 28)):
            lo, hi = wilson(hits[key, how], args.reps)
            print(f"{key:28} {units:>7} {hits[key, how] / args.reps:>9.3f} {lo:>7.3f}-{hi:.3f}")
    print(f"reproduce: PYTHONPATH=$PWD python benchmarks/start_units_calibration.py --reps {args.reps} "
          f"--share {args.share}")


if __name__ == "__main__":
    main()
