"""The two-way standard error of tests 1a and 1b: each step's share of a run's estimate, the covariance that
different units share block by block, and the t interval that adds it to the spread across units."""

from __future__ import annotations

import numpy as np
import pytest

from clowncar.analysis.cn_steps import _block, cn_loss_test
from clowncar.analysis.frames import step_kind_table
from clowncar.analysis.shared_steps import (
    across_units,
    mean_difference_shares,
    shared_variance,
    shares,
    unit_members,
)


def test_a_steps_share_is_its_weight_in_the_estimate_times_its_residual(two_way) -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(50), np.arange(50.0), rng.integers(0, 2, 50)])
    y = x @ np.array([1.0, 0.1, 0.3]) + rng.normal(0, 0.5, 50)
    for col in range(3):
        got = shares(x, y, np.eye(3)[col])
        np.testing.assert_allclose(got, two_way.shares(x, y, col), rtol=1e-9, atol=1e-15)
        assert got.sum() == pytest.approx(0.0, abs=1e-12)  # residuals are orthogonal to the design: blocks differ
    np.testing.assert_allclose(shares(x, y, np.array([0.0, 1.0, -2.0])),
                               two_way.shares(x, y, 1) - 2 * two_way.shares(x, y, 2), rtol=1e-9, atol=1e-15)
    step, got = mean_difference_shares(np.arange(6), np.array([1.0, 2.0, 3.0, 5.0, 7.0, 9.0]),
                                       np.array([True, True, True, False, False, False]))
    # weights +1/3 and -1/3, residuals from the group means (2 and 7)
    np.testing.assert_allclose(got, np.array([-1.0, 0.0, 1.0, 2.0, 0.0, -2.0]) / 3, atol=1e-15)
    assert step.tolist() == [0, 1, 2, 3, 4, 5]


def test_runs_corrected_by_one_reference_are_one_unit() -> None:
    assert unit_members(["a", "b", "c", "d"], {"a": "ref1", "b": "ref1", "c": "ref2"}) == {
        "ref1": ["a", "b"], "ref2": ["c"], "d": ["d"]}


def test_the_shared_variance_is_the_mean_product_of_different_units_block_sums(two_way) -> None:
    rng = np.random.default_rng(3)
    common = rng.normal(0, 1, 40)
    per_run = {  # run -> (steps, shares): run b is logged every second step, run c only from step 10
        "a": (np.arange(40), common + rng.normal(0, 0.5, 40)),
        "b": (np.arange(0, 40, 2), common[::2] + rng.normal(0, 0.5, 20)),
        "c": (np.arange(10, 40), common[10:] + rng.normal(0, 0.5, 30)),
        "d": (np.arange(40), common + rng.normal(0, 0.5, 40)),
    }
    values = {"a": 0.1, "b": 0.3, "c": -0.05, "d": 0.2}
    refs = {"a": "r", "b": "r"}  # a and b are one unit: their shares are averaged, as their values are
    got = across_units(values, per_run, refs, block=4)
    units = [(0.2, {}), (-0.05, {}), (0.2, {})]
    merged: dict[int, float] = {}
    for rid in ("a", "b"):
        for s, g in zip(*per_run[rid], strict=True):
            merged[int(s)] = merged.get(int(s), 0.0) + g / 2
    units[0] = (0.2, merged)
    units[1] = (-0.05, dict(zip(per_run["c"][0].tolist(), per_run["c"][1], strict=True)))
    units[2] = (0.2, dict(zip(per_run["d"][0].tolist(), per_run["d"][1], strict=True)))
    want = two_way.t(units, 4)
    assert got["se_shared"] > 2 * got["se_units"]  # the planted common part dominates
    for k in ("estimate", "ci_low", "ci_high", "p", "se_units", "se"):
        assert got[k] == pytest.approx(want[k], rel=1e-12), k
    assert (got["n"], got["block"]) == (3, 4)


def test_shares_that_cancel_between_units_add_nothing_and_one_unit_shares_with_nobody() -> None:
    steps = np.arange(8)
    opposite = {"a": (steps, np.ones(8)), "b": (steps, -np.ones(8))}
    assert shared_variance(opposite, {"a": ["a"], "b": ["b"]}, block=2) == 0.0  # negative: nothing shared
    assert shared_variance(opposite, {"a": ["a", "b"]}, block=2) == 0.0
    alike = {"a": (steps, np.ones(8)), "b": (steps, np.ones(8))}
    # 4 blocks with sums 2 and 2: (2 + 2)^2 - 2^2 - 2^2 = 8 per block, 32 in all, over U(U - 1) = 2 pairs
    assert shared_variance(alike, {"a": ["a"], "b": ["b"]}, block=2) == pytest.approx(16.0)
    t = across_units({"a": 0.1, "b": 0.3}, opposite, {}, block=2)
    assert (t["se"], t["se_shared"], t["spread"]) == pytest.approx((0.1, 0.0, 0.2))
    assert across_units({"a": 0.4}, opposite, {}, block=2) == {"estimate": 0.4, "n": 1, "spread": 0.0}


def test_the_learning_curve_every_run_shares_barely_widens_the_interval_in_blocks_of_whole_periods(sims) -> None:
    """Runs of one model share the part of their learning curve that the spline trend does not follow (the steep
    start of an exponential). Against the C/N pattern it sums to about zero over whole cadence periods; blocks cut
    mid-period read it as shared noise (blocks one step longer or shorter: a median ratio of 1.35 and 1.53 here)."""
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(40):
        steps, _ = sims["steps"](rng, runs=5, steps=150, cadence=3, noise_sd=0.03)
        res, _ = cn_loss_test(step_kind_table(steps))
        ratios.append(np.hypot(res.extra["se_units"], res.extra["se_shared_steps"]) / res.extra["se_units"])
    assert np.median(ratios) < 1.2  # 1.067


def test_a_shared_part_resting_on_few_blocks_is_flagged(sims) -> None:
    short, _ = sims["steps"](np.random.default_rng(1), runs=4, steps=48, cadence=4)  # blocks of 8: 6 of them
    res, _ = cn_loss_test(step_kind_table(short))
    assert res.warnings == ["what the units share step by step rests on 6 blocks of 8 steps (at least 8 make it "
                            "firm): its part of the standard error is rough, and low rather than high; longer "
                            "runs firm it up, more seeds do not"]
    long, _ = sims["steps"](np.random.default_rng(1), runs=4, steps=64, cadence=4)  # 8 blocks
    assert cn_loss_test(step_kind_table(long))[0].warnings == []
    ragged, _ = sims["steps"](np.random.default_rng(1), runs=4, steps=50, cadence=4)  # 6 blocks and 2 steps
    assert "rests on 7 blocks of 8 steps" in cn_loss_test(step_kind_table(ragged))[0].warnings[0]


def test_units_that_agree_exactly_with_nothing_shared_give_p_0_unless_their_estimate_is_0() -> None:
    nothing = {r: (np.arange(4), np.zeros(4)) for r in "ab"}
    t = across_units({"a": 0.2, "b": 0.2}, nothing, {}, block=2)
    assert (t["se"], t["p"], t["ci_low"], t["ci_high"]) == (0.0, 0.0, 0.2, 0.2)
    assert across_units({"a": 0.0, "b": 0.0}, nothing, {}, block=2)["p"] == 1.0


@pytest.mark.parametrize(("periods", "lags", "block"), [
    ([2, 4], [4, 8], 8), ([3], [6], 6), ([3], [11], 12), ([2, 3, 4], [6], 12), ([3, 4, 5, 7], [6, 8], 14),
    ([5, 6], [4], 6), ([1], [4], 4), ([4, 5], [4], 20)])
def test_a_block_is_whole_cadence_periods_of_every_run_and_at_least_the_widest_hac_window(
        periods: list[int], lags: list[int], block: int) -> None:
    fits = {f"r{i}": {"period": p, "hac_lags": lags[i % len(lags)]} for i, p in enumerate(periods)}
    # lcm(5, 6) = 30 > 4 x 6: the longest period; lcm(3, 4, 5, 7) = 420 likewise; lcm(4, 5) = 20 = 4 x 5 is kept
    assert _block(fits) == block
