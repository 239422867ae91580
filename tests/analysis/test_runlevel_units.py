"""Run-level tests count units, not runs: cadence siblings (one seed, one model) of a simulated sweep are one
unit of the width and sharing fits, the seeds the widths were compared over are counted, and a sharing verdict
counts shared starts (split from test_runlevel_numbers.py, which pins the fits' numbers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clowncar.analysis.frames import UNITS
from clowncar.analysis.runlevel import width_tests
from clowncar.analysis.seeds import sharing_test


def _one_row_per_start(trials: pd.DataFrame) -> pd.DataFrame:
    """The simulated sweep by hand: one trial per (seed, width, loops), its BPB the mean of its cadence siblings."""
    from clowncar.analysis.frames import run_table

    t = trials.assign(start=trials["trial_uid"].str.replace(r"c\d$", "", regex=True))
    means = t.groupby("start")["q_val_bpb"].transform("mean")
    return t.assign(q_val_bpb=means, trial_uid=t["start"]).drop_duplicates("start").drop(columns="start").pipe(
        run_table)


def test_the_run_level_tests_fit_one_row_per_start_and_count_the_runs(sims) -> None:
    """Cadence siblings (one seed, one model) are one unit: the estimates are those of the hand-averaged sweep,
    and the result still names all 28 runs."""
    from clowncar.analysis.frames import run_table

    trials, _ = sims["siblings"](np.random.default_rng(5))
    runs, by_hand = run_table(trials), _one_row_per_start(trials)
    assert len(by_hand) == 12
    results = [*width_tests(runs), sharing_test(runs)]
    expected = [*width_tests(by_hand), sharing_test(by_hand)]
    for got, want in zip(results, expected, strict=True):
        assert (got.effect, got.p_value) == pytest.approx((want.effect, want.p_value), rel=1e-9)
        assert (got.n_runs, got.extra["units"], len(got.runs)) == (28, 12, 28)
        assert f"one row per unit ({UNITS})" in got.method
    assert results[0].tables["best_per_width"] == width_tests(runs)[0].tables["best_per_width"]
    assert sum(row["runs"] for row in results[0].tables["best_per_width"]) == 28  # the tables are over runs


def test_widths_compared_over_fewer_than_three_seeds_carry_a_warning(sims) -> None:
    from clowncar.analysis.frames import run_table

    warning = ("the widths are compared over 2 seed(s): the runs of one seed and width share their embedding's "
               "initial weights, which this regression counts as independent; with the seed as the unit of the width "
               "contrast the evidence is weaker than the p value says")
    trials, _ = sims["siblings"](np.random.default_rng(7))
    assert warning in width_tests(run_table(trials))[0].warnings
    three = run_table(sims["grid"](np.random.default_rng(7), seeds=3))
    assert not any("seed(s)" in w for w in width_tests(three)[0].warnings)
    one = run_table(sims["grid"](np.random.default_rng(7), seeds=1))
    assert warning.replace("2 seed(s)", "1 seed(s)") in width_tests(one)[0].warnings
    unknown = run_table(trials.assign(seed=None, **{"train.seed": None}))
    assert not any("seed(s)" in w for w in width_tests(unknown)[0].warnings)  # imported logs: no seeds to count


def test_too_few_shared_starts_are_counted_as_units_in_the_sharing_verdict(sims) -> None:
    from clowncar.analysis.frames import run_table

    trials, _ = sims["siblings"](np.random.default_rng(8))
    keep = trials["trial_uid"].str.match(r"s(1337|42)w32l1c1$|s1337w32l2c\d$")  # one shared start: 3 siblings
    res = sharing_test(run_table(trials[keep]))
    assert res.verdict.startswith("not enough data to decide: 1 shared and 2 unshared unit(s) at matched parameter "
                                  "count (>= 2 each needed)")
    assert (res.n_runs, res.extra["units"], res.extra["shared_runs"], res.extra["unshared_runs"]) == (5, 3, 3, 2)
