"""How often test 1a calls a C-step effect that is not there, on the signal sweep's design (docs/signals.md).

Per seed: one run that never alternates (the reference) and two that do, at cadence 2 and 4, all on one token
stream: a batch difficulty shared by every run at step t, each run's own AR(1) noise, and (`--shared-sd`) the way
the alternating runs answer a batch differently from their reference, shared by all of them (AR(1) too). The
signal demo's corrected cadence-2 runs correlate 0.59 step by step; a shared sd of 0.017 gives 0.58 here.
There is no C-step effect, so a test at alpha 0.05 should reject about 5% of the time. Each repetition runs the
shipped test 1a (the two runs of a seed share its reference and are one unit; the standard error adds what the
units share step by step) and, beside it, the t test across the same units without that part, and the first
t test of all, which counted every corrected run as a unit. Each row: the share of repetitions that rejected,
with its 95% Wilson interval.

Reproduce: PYTHONPATH=$PWD python benchmarks/cn_null_calibration.py [--reps 1500] [--seeds 8] [--steps 120]
           [--shared-sd 0 0.017] [--effect 0.005 (power instead of false positives)]
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


def ar1(rng: np.random.Generator, steps: int, sd: float) -> np.ndarray:
    """A series whose deviation lingers for a few steps (phi 0.5) around 0, shocks of sd `sd`."""
    shocks = rng.normal(0, sd, steps)
    out = np.zeros(steps)
    for i in range(steps):
        out[i] = 0.5 * out[i - 1] + shocks[i] if i else shocks[i]
    return out


def sweep(rng: np.random.Generator, seeds: int, steps: int, shared_sd: float = 0.0, effect: float = 0.0
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = np.arange(1, steps + 1)
    difficulty = rng.normal(0, 0.05, steps)
    answer = ar1(rng, steps, shared_sd) if shared_sd else np.zeros(steps)  # how a looping model answers a batch
    frames, trials = [], []
    for seed in range(seeds):
        for cadence in CADENCES:
            own = ar1(rng, steps, 0.01)
            kinds = np.where((t - 1) % cadence == 0, "C", "N") if cadence else np.full(steps, "N")
            uid = f"cad{cadence}/s{seed}"
            loss = 3 + 3 * np.exp(-t / 40) + difficulty + own + (answer if cadence else 0.0) + effect * (kinds == "C")
            frames.append(pd.DataFrame({"trial_uid": uid, "step": t, "kind": kinds, "train_loss": loss}))
            trials.append({"trial_uid": uid, "data.dataset": "sim", "data.train_glob": "sim_*.bin",
                           "train.train_batch_tokens": 8192, "train.train_seq_len": 128, "train.seed": seed,
                           "model.crawler_loops": 2, "model.model_dim": 64, "status": "ok"})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(trials)


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


TESTS = ("shipped: units, plus what they share step by step", "t across units (one per reference)",
         "t across runs (every corrected run a unit)")


def rejections(reps: int, seeds: int, steps: int, shared_sd: float = 0.0, effect: float = 0.0) -> dict[str, int]:
    rng = np.random.default_rng(0)
    hits = dict.fromkeys(TESTS, 0)
    for _ in range(reps):
        frame, trials = sweep(rng, seeds, steps, shared_sd, effect)
        res, fits = cn_loss_test(step_kind_table(frame), trials)
        assert res.extra["reference_corrected"] and res.p_value is not None
        per_seed = [np.mean([f["coef"] for r, f in fits.items() if f["reference"] == ref])
                    for ref in sorted({f["reference"] for f in fits.values()})]
        hits[TESTS[0]] += res.p_value < ALPHA
        hits[TESTS[1]] += stats.ttest_1samp(per_seed, 0.0).pvalue < ALPHA
        hits[TESTS[2]] += stats.ttest_1samp([f["coef"] for f in fits.values()], 0.0).pvalue < ALPHA
    return hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1500)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--shared-sd", type=float, nargs="+", default=[0.0, 0.017])
    ap.add_argument("--effect", type=float, default=0.0, help="a C-step effect in nats: the rows become power")
    args = ap.parse_args()
    print(f"{'null' if not args.effect else f'C-step effect {args.effect:+g} nats'}: {args.seeds} seeds x cadences "
          f"{CADENCES}, {args.steps} steps, {args.reps} repetitions, alpha {ALPHA}")
    print(f"{'shared sd':>9}  {'test':<52} {'rejected':>8} {'95% CI':>13}")
    for shared_sd in args.shared_sd:
        for name, n in rejections(args.reps, args.seeds, args.steps, shared_sd, args.effect).items():
            low, high = wilson(n, args.reps)
            print(f"{shared_sd:>9.3f}  {name:<52} {n / args.reps:>8.3f} {low:>6.3f}-{high:.3f}")
    print("reproduce: PYTHONPATH=$PWD python benchmarks/cn_null_calibration.py "
          f"--reps {args.reps} --seeds {args.seeds} --steps {args.steps} --shared-sd "
          + " ".join(str(v) for v in args.shared_sd) + (f" --effect {args.effect}" if args.effect else ""))


if __name__ == "__main__":
    main()
