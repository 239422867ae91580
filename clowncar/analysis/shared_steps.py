"""Tests 1a and 1b across runs that move together step by step: a standard error with two parts.

Every run of a sweep reads the same batch at step t. Whatever a batch does to the loss of all runs alike (a hard
batch; after the reference is subtracted, the way a looping model answers a batch differently from its all-N
reference) lands on the same C- or N-step in every run of one cadence. A t test across runs sees only how the
runs' estimates differ from one another, and a part they all share does not differ: on the signal sweep's
design with that part at its measured size (corrected runs correlating about 0.6) the t test across units
rejected a true null in 56% of repetitions (`benchmarks/cn_null_calibration.py`).

Each unit's estimate is linear in its losses: its error is sum_t w_ut e_ut, the step's weight in the estimate (a
row of the least-squares pseudo-inverse) times the step's error; the step's share g_ut puts the residual in place
of the error, as every sandwich estimator does. The variance of the mean over U units is var(own parts) / U + the
average covariance of two different units' estimates. The first is the spread across units (which also holds any
true difference between them); the second is estimated from blocks of consecutive steps: cut the step axis into
blocks a whole number of cadence periods long and at least the runs' HAC window wide, sum each unit's shares per
block, and average the products of two different units' block sums, summed over blocks (a cluster-by-time-block
estimate, as Bester, Conley and Hansen do for dependent data, counting only pairs of different units). Blocks of
whole periods matter: every run's trend misfit is about the same smooth curve, which a Newey-West window cut off
mid-period reads as shared noise (it made the test reject 0 of 200 true nulls, and cost a fifth of its power, in a
simulation with nothing shared); inside a block of whole periods a smooth curve sums to about zero against the C/N
pattern. The estimate is 0 when it comes out negative (nothing shared), so the test is never narrower than the t
test across units. The t reference keeps the units' df (U - 1): conservative when the shared part dominates (a
Satterthwaite df with the blocks' count rejected 7% of true nulls with 4 seeds), calibrated at 1.7-4.5% for alpha
0.05 in `benchmarks/cn_null_calibration.py`'s cases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clowncar.analysis.result import ALPHA

Shares = tuple[np.ndarray, np.ndarray]
"""A run's steps and each step's share of its estimate (same length)."""


def shares(x: np.ndarray, y: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """Each row's share of `contrast` . b, b the least-squares coefficients of y on x: the row's weight in the
    estimate times its residual. They sum to 0 over all rows (residuals are orthogonal to x); over a block of
    rows they do not, and their products across units and blocks estimate a shared covariance."""
    pinv = np.linalg.pinv(x)
    resid = y - x @ (pinv @ y)
    return (contrast @ pinv) * resid


def mean_difference_shares(step: np.ndarray, y: np.ndarray, first: np.ndarray) -> Shares:
    """Each step's share of mean(y[first]) - mean(y[~first]) (the selected rows only)."""
    x = np.column_stack([first, ~first]).astype(float)
    return step, shares(x, y, np.array([1.0, -1.0]))


def unit_members(runs: list[str], refs: dict[str, str]) -> dict[str, list[str]]:
    """Unit -> its runs: the runs corrected by one reference run are one unit (they share its noise), every other
    run is a unit of its own."""
    units: dict[str, list[str]] = {}
    for rid in runs:
        units.setdefault(refs.get(rid, rid), []).append(rid)
    return units


def shared_variance(per_run: dict[str, Shares], units: dict[str, list[str]], block: int) -> float:
    """The average covariance of two different units' estimates, from their shares summed over blocks of `block`
    consecutive steps (positions on the union of the runs' steps; a unit's shares are its runs' averaged, as its
    estimate is), never below 0."""
    if len(units) < 2:
        return 0.0
    steps = np.unique(np.concatenate([per_run[r][0] for members in units.values() for r in members]))
    sums = np.zeros((len(units), -(-steps.size // block)))
    for i, members in enumerate(units.values()):
        for rid in members:
            at, share = per_run[rid]
            np.add.at(sums[i], np.searchsorted(steps, at) // block, share / len(members))
    cross = float((sums.sum(axis=0) ** 2).sum() - (sums**2).sum())  # sum over blocks and pairs u != v
    return max(0.0, cross / (len(units) * (len(units) - 1)))


def across_units(values: dict[str, float], per_run: dict[str, Shares], refs: dict[str, str], block: int,
                 alpha: float = ALPHA) -> dict[str, Any]:
    """The mean over units of `values` (per run), with a t interval whose standard error adds the shared
    step-by-step covariance to the spread across units; `se_units` is what the plain t test would use."""
    from scipy import stats

    units = unit_members(list(values), refs)
    v = np.array([np.mean([values[r] for r in members]) for members in units.values()])
    n = int(v.size)
    if n < 2:  # no spread to measure: the caller reports the estimate alone
        return {"estimate": float(v.mean()), "n": n, "spread": 0.0}
    se_units = float(v.std(ddof=1)) / math.sqrt(n)
    shared = shared_variance({r: per_run[r] for r in values}, units, block)
    blocks = -(-np.unique(np.concatenate([per_run[r][0] for r in values])).size // block)
    se = math.sqrt(se_units**2 + shared)
    est = float(v.mean())
    half = float(stats.t.isf(alpha / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(est) / se, n - 1)) if se > 0 else (1.0 if est == 0 else 0.0)
    return {"estimate": est, "ci_low": est - half, "ci_high": est + half, "p": p, "n": n, "se": se,
            "se_units": se_units, "se_shared": math.sqrt(shared), "block": block, "blocks": int(blocks),
            "spread": float(np.ptp(v))}


def sentence(t: dict[str, Any], steps: str) -> str:
    """What the shared part did to the standard error, for the report (`steps`: what a block counts)."""
    if t["se_shared"] == 0:
        return (f" The {t['n']} units share nothing step by step that their standard error must add (blocks of "
                f"{t['block']} {steps}): it is the spread across units, {t['se']:.3g} nats.")
    return (f" The units move together step by step (they read the same batches): their standard error adds that "
            f"shared covariance (blocks of {t['block']} {steps}) to the spread across the {t['n']} units, "
            f"{t['se_units']:.3g} -> {t['se']:.3g} nats.")
