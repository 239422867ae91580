"""Run-level tests count units, not runs: cadence siblings (one seed, one model) of a simulated sweep are one
unit of the width and sharing fits (test_width_cells.py: the seed x width draws are 3a's), and a sharing verdict
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
        assert (got.n_runs, len(got.runs)) == (28, 28) and f"one row per unit ({UNITS})" in got.method
    assert [r.extra["units"] for r in results] == [4, 12, 12]  # 3a's units: the 4 seed x width draws of its 12
    assert results[0].tables["best_per_width"] == width_tests(runs)[0].tables["best_per_width"]
    assert sum(row["runs"] for row in results[0].tables["best_per_width"]) == 28  # the tables are over runs


def test_too_few_shared_starts_are_counted_as_units_in_the_sharing_verdict(sims) -> None:
    from clowncar.analysis.frames import run_table

    trials, _ = sims["siblings"](np.random.default_rng(8))
    keep = trials["trial_uid"].str.match(r"s(1337|42)w32l1c1$|s1337w32l2c\d$")  # one shared start: 3 siblings
    res = sharing_test(run_table(trials[keep]))
    assert res.verdict.startswith("not enough data to decide: 1 shared and 2 unshared unit(s) at matched parameter "
                                  "count (>= 2 each needed)")
    assert (res.n_runs, res.extra["units"], res.extra["shared_runs"], res.extra["unshared_runs"]) == (5, 3, 3, 2)


def test_the_gap_fits_cluster_their_errors_by_start_when_cadence_siblings_share_one() -> None:
    """Tests 2a/2b keep one row per run (cadence varies within a start, so 2b's contrast lies inside it) but the
    runs of one start share their offset: the standard errors are clustered by start, with starts - 1 df, as
    statsmodels computes them. Runs of distinct starts keep HC3."""
    import statsmodels.formula.api as smf
    from scipy import stats

    from clowncar.analysis.runlevel import quant_gap_tests

    rng = np.random.default_rng(3)
    rows = []
    for s in range(6):  # 6 starts (seed x loops), each run at cadence 1, 2 and 4; a big offset per start
        offset = rng.normal(0, 0.004)
        for cadence in (1, 2, 4):
            rows.append({"run_id": f"s{s}c{cadence}", "start_key": f"s{s}", "loops": float(2 + s % 2),
                         "crawl_frac": 1.0 / cadence, "quant_gap": 0.01 + offset + rng.normal(0, 0.0005)})
    runs = pd.DataFrame(rows)
    loops, cad = quant_gap_tests(runs)
    fit = smf.ols("quant_gap ~ loops + crawl_frac", runs).fit(
        cov_type="cluster", cov_kwds={"groups": pd.Categorical(runs["start_key"]).codes}, use_t=True)
    for res, term in ((loops, "loops"), (cad, "crawl_frac")):
        ci = fit.conf_int().loc[term]
        assert (res.effect, res.ci_low, res.ci_high, res.p_value) == pytest.approx(
            (fit.params[term], ci[0], ci[1], fit.pvalues[term]), rel=1e-9)
        assert res.p_value == pytest.approx(2 * stats.t.sf(abs(fit.tvalues[term]), 5), rel=1e-9)  # 6 starts - 1
        assert res.n_runs == 18 and res.extra["units"] == 6
        assert "standard errors clustered by start (6 unit(s) from 18 runs" in res.method
    hc3 = smf.ols("quant_gap ~ loops + crawl_frac", runs).fit(cov_type="HC3", use_t=True)
    assert hc3.bse["loops"] < 0.7 * fit.bse["loops"]  # what counting 18 rows as independent claimed

    alone = quant_gap_tests(runs.assign(start_key=runs["run_id"]))[0]
    assert "HC3" in alone.method and alone.extra["units"] == 18
    assert alone.p_value == pytest.approx(hc3.pvalues["loops"], rel=1e-9)


def _sibling_gaps(starts: int, rng: np.random.Generator) -> pd.DataFrame:
    """`starts` starts of cadence siblings (cadence 1, 2, 4), loops alternating 2, 3 by start; a run without a gap
    (left out) and an index that is not 0..n-1."""
    rows = [{"run_id": f"s{s}c{c}", "start_key": f"s{s}", "loops": float(2 + s % 2), "crawl_frac": 1.0 / c,
             "quant_gap": 0.01 + 0.004 * s + rng.normal(0, 0.0005)} for s in range(starts) for c in (1, 2, 4)]
    rows.append({"run_id": "nogap", "start_key": "s0", "loops": 2.0, "crawl_frac": 1.0, "quant_gap": None})
    return pd.DataFrame(rows, index=range(100, 100 + len(rows)))


def test_clustered_gap_fits_need_three_starts_and_take_their_power_from_starts_minus_one_df() -> None:
    import statsmodels.formula.api as smf

    from clowncar.analysis.result import UNDECIDED
    from clowncar.analysis.runlevel import quant_gap_tests
    from clowncar.analysis.stats import mde_from_se

    rng = np.random.default_rng(8)
    for res in quant_gap_tests(_sibling_gaps(2, rng)):
        assert res.status == UNDECIDED and res.p_value is None
        assert ("quant_gap ~ loops + crawl_frac: 2 starts leave 1 df for standard errors clustered by start (at "
                "least 2 needed)") in res.verdict
    runs = _sibling_gaps(3, rng)
    kept = runs.dropna(subset=["quant_gap"])
    fit = smf.ols("quant_gap ~ loops + crawl_frac", kept).fit(
        cov_type="cluster", cov_kwds={"groups": pd.Categorical(kept["start_key"]).codes}, use_t=True)
    for res, term in zip(quant_gap_tests(runs), ("loops", "crawl_frac"), strict=True):
        assert res.p_value == pytest.approx(fit.pvalues[term], rel=1e-9)
        assert res.mde == pytest.approx(mde_from_se(fit.bse[term], 2), rel=1e-9)  # 3 starts - 1, not 9 - 3 runs
        assert res.method == (f"OLS quant_gap ~ loops + crawl_frac, standard errors clustered by start (3 unit(s) "
                              f"from 9 runs: {UNITS}), t reference with starts - 1 df; the gap in the standard eval "
                              "for every run")


def test_source_confound_names_text_values_and_any_source_as_written() -> None:
    from clowncar.analysis.runlevel import source_confound

    runs = pd.DataFrame({"source": ["run", "run", "legacy"], "arch": ["crawler", "crawler", "gpt"]})
    assert source_confound(runs, "arch") == (
        "arch is confounded with where the runs come from (gpt only in legacy runs; crawler only in runs clowncar "
        "ran): every contrast of it is also one of data, trainer and training length; compare it within one source")


def test_a_width_in_both_sources_is_shared_even_when_its_run_lacks_other_values() -> None:
    from clowncar.analysis.runlevel import source_confound

    runs = pd.DataFrame({"source": ["run", "run", "import", "import"], "width": [32.0, 64.0, 64.0, 512.0],
                         "quant_gap": [0.01, 0.01, None, 0.02]})  # the imported width-64 run has no gap
    assert source_confound(runs, "width") is None
    assert source_confound(runs.assign(source=[None, "run", "import", "import"]), "width") is None


def test_a_width_seen_only_in_one_source_is_not_compared_across_sources() -> None:
    """Demo widths beside imported widths, no width in both: the width contrast is the data source's, so 3a and
    3b say so instead of a verdict; one shared width makes the comparison possible again."""
    rng = np.random.default_rng(0)
    rows = [{"run_id": f"{src}{w}-{k}", "source": src, "width": float(w), "loops": float(1 + k % 2),
             "unique_layers": 3.0, "bpb": (2.3 if src == "run" else 1.2) + rng.normal(0, 0.01), "seed": float(k)}
            for src, widths in (("run", (32, 64)), ("import", (496, 512, 608))) for w in widths for k in range(4)]
    runs = pd.DataFrame(rows)
    a, b = width_tests(runs)
    for res in (a, b):
        assert res.p_value is None and res.effect is None
        assert res.verdict.endswith(
            "width is confounded with where the runs come from (496, 512, 608 only in imported runs; 32, 64 only in "
            "runs clowncar ran): every contrast of it is also one of data, trainer and training length; compare it "
            "within one source")
    shared = pd.concat([runs, runs[runs["width"] == 512].assign(source="run", run_id=lambda d: d["run_id"] + "r")],
                       ignore_index=True)
    assert width_tests(shared)[0].effect is not None
    assert width_tests(runs.assign(source="run"))[0].effect is not None  # one source: compared as before
