"""How often test 1a calls a C-step effect that is not there, on the signal sweep's design (docs/signals.md).

Per seed: one run that never alternates (the reference) and two that do, at cadence 2 and 4, all on one token
stream: a batch difficulty shared by every run at step t, plus each run's own AR(1) noise. There is no C-step
effect, so a test at alpha 0.05 should reject about 5% of the time. Each repetition runs the shipped test 1a
(the two runs of a seed share its reference and are averaged into one unit) and, beside it, the t test the
report used before, which counted every corrected run as a unit of its own. Each row: the share of repetitions
that rejected, with its 95% Wilson interval.

Reproduce: PYTHONPATH=$PWD python benchmarks/cn_null_calibration.py [--reps 1500] [--seeds 8] [--steps 120]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
from scipy import stats

from clowncar.analysis.cn_steps import cn_loss_test
from clowncar.analysis.frames import step_kind_table

ALPHA = 0.05
CADENCES = (0, 2, 4)  # cadence 0: the reference; 2 and 4 alternate


def sweep(rng: np.random.Generator, seeds: int, steps: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = np.arange(1, steps + 1)
    difficulty = rng.normal(0, 0.05, steps)
    frames, trials = [], []
    for seed in range(seeds):
        for cadence in CADENCES:
            own = np.zeros(steps)
            shocks = rng.normal(0, 0.01, steps)
            for i in range(steps):  # a run's own deviation lingers for a few steps
                own[i] = 0.5 * own[i - 1] + shocks[i] if i else shocks[i]
            kinds = np.where((t - 1) % cadence == 0, "C", "N") if cadence else np.full(steps, "N")
            uid = f"cad{cadence}/s{seed}"
            frames.append(pd.DataFrame({"trial_uid": uid, "step": t, "kind": kinds,
                                        "train_loss": 3 + 3 * np.exp(-t / 40) + difficulty + own}))
            trials.append({"trial_uid": uid, "data.dataset": "sim", "data.train_glob": "sim_*.bin",
                           "train.train_batch_tokens": 8192, "train.train_seq_len": 128, "train.seed": seed,
                           "model.crawler_loops": 2, "model.model_dim": 64, "status": "ok"})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(trials)


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rejections(reps: int, seeds: int, steps: int) -> dict[str, int]:
    rng = np.random.default_rng(0)
    hits = {"shipped: runs sharing a reference averaged": 0, "before: every corrected run a unit": 0}
    for _ in range(reps):
        frame, trials = sweep(rng, seeds, steps)
        res, fits = cn_loss_test(step_kind_table(frame), trials)
        assert res.extra["reference_corrected"] and res.p_value is not None
        hits["shipped: runs sharing a reference averaged"] += res.p_value < ALPHA
        runs = stats.ttest_1samp([f["coef"] for f in fits.values()], 0.0).pvalue
        hits["before: every corrected run a unit"] += runs < ALPHA
    return hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1500)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=120)
    args = ap.parse_args()
    hits = rejections(args.reps, args.seeds, args.steps)
    print(f"null: {args.seeds} seeds x cadences {CADENCES}, {args.steps} steps, {args.reps} repetitions, "
          f"alpha {ALPHA}")
    print(f"{'test':<46} {'rejected':>8} {'95% CI':>15}")
    for name, n in hits.items():
        low, high = wilson(n, args.reps)
        print(f"{name:<46} {n / args.reps:>8.3f} {low:>7.3f}-{high:.3f}")
    print("reproduce: PYTHONPATH=$PWD python benchmarks/cn_null_calibration.py "
          f"--reps {args.reps} --seeds {args.seeds} --steps {args.steps}")


if __name__ == "__main__":
    main()
