"""The numbers of the seed-variance test equal the same computation made here by hand: the per-config mean, sd
and t interval, the pooled within-config spread with its chi-square interval, and minimum detectable differences
with the power they claim (the power function is checked against scipy's non-central t in test_stats.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clowncar.analysis.result import DESCRIPTIVE, UNDECIDED
from clowncar.analysis.seeds import seed_variance
from clowncar.analysis.stats import t_test_power


def seed_frame() -> pd.DataFrame:
    bpb = {"A": [2.00, 2.01, 2.03], "B": [1.90, 1.94], "C": [1.80, 1.83, 1.81, 1.79], "D": [1.7]}
    rows = [{"run_id": f"{c}{i}", "config_key": c, "label": f"cfg {c}", "seed": float(7 + i), "bpb": v}
            for c, vals in bpb.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_seed_variance_pools_the_within_config_spread_with_a_chi_square_interval() -> None:
    runs = seed_frame()
    res = seed_variance(runs)
    rep = runs[runs["config_key"] != "D"]
    ss = sum(((g - g.mean()) ** 2).sum() for _, g in rep.groupby("config_key")["bpb"])
    df = len(rep) - 3
    sd = math.sqrt(ss / df)
    assert res.status == DESCRIPTIVE and not res.in_family and res.unit == "BPB (seed sd)"
    assert res.effect == pytest.approx(sd, rel=1e-9)
    assert res.ci_low == pytest.approx(sd * math.sqrt(df / stats.chi2.ppf(0.975, df)), rel=1e-9)
    assert res.ci_high == pytest.approx(sd * math.sqrt(df / stats.chi2.ppf(0.025, df)), rel=1e-9)
    assert res.extra["pooled_df"] == df and res.extra["seeds_per_config"] == 3
    assert res.n_runs == 9 and "D0" not in res.runs
    # two configs this far apart with 3 seeds each: a t test at the pooled spread, on its df, finds them 80% of
    # the time (the unpaired t of the two configs alone, on 4 df, would need more)
    assert t_test_power(res.mde / (sd * math.sqrt(2 / 3)), df) == pytest.approx(0.8, abs=1e-6)
    assert t_test_power(res.mde / (sd * math.sqrt(2 / 3)), 4) < 0.75
    sds = [np.std(v, ddof=1) for v in ([2.00, 2.01, 2.03], [1.90, 1.94], [1.80, 1.83, 1.81, 1.79])]
    assert res.extra["median_config_sd"] == pytest.approx(float(np.median(sds)), rel=1e-12)
    assert res.verdict.startswith(f"{DESCRIPTIVE}: pooled seed sd {sd:.4g} BPB (95% CI {res.ci_low:.3g} to "
                                  f"{res.ci_high:.3g}, df {df:g}; median per-config sd {np.median(sds):.3g})")
    assert f"with 3 seeds per config, two configs must differ by about {res.mde:.3g} BPB" in res.verdict
    assert not res.warnings


def test_each_config_row_has_its_mean_sd_t_interval_and_per_seed_values() -> None:
    rows = {row["config_key"]: row for row in seed_variance(seed_frame()).tables["per_config"]}
    assert sorted(rows) == ["A", "B", "C"]
    v = np.array([1.80, 1.83, 1.81, 1.79])
    c = rows["C"]
    half = stats.t.ppf(0.975, 3) * v.std(ddof=1) / 2
    assert (c["config"], c["n"], c["runs"]) == ("cfg C", 4, ["C0", "C1", "C2", "C3"])
    assert (c["mean"], c["sd"]) == pytest.approx((v.mean(), v.std(ddof=1)), rel=1e-12)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((v.mean() - half, v.mean() + half), rel=1e-9)
    assert c["per_seed"] == {"seed 7": 1.80, "seed 8": 1.83, "seed 9": 1.81, "seed 10": 1.79}
    assert t_test_power(c["mde_vs_same_n"] / (v.std(ddof=1) * math.sqrt(2 / 4)), 6) == pytest.approx(0.8, abs=1e-6)


def test_one_repeated_config_is_its_own_pooled_spread() -> None:
    runs = seed_frame()
    res = seed_variance(runs[runs["config_key"] == "C"])
    assert res.effect == pytest.approx(np.std([1.80, 1.83, 1.81, 1.79], ddof=1), rel=1e-9)
    assert res.extra["pooled_df"] == 3 and res.extra["seeds_per_config"] == 4


def test_one_config_with_two_seeds_has_one_df() -> None:
    res = seed_variance(seed_frame()[lambda d: d["config_key"] == "B"])
    assert res.effect == pytest.approx(np.std([1.90, 1.94], ddof=1), rel=1e-9) and res.extra["pooled_df"] == 1


@pytest.mark.parametrize("column", ["bpb", "config_key"])
def test_seed_variance_without_a_column_it_needs_is_not_enough_data(column: str) -> None:
    res = seed_variance(seed_frame().drop(columns=[column]))
    assert res.status == UNDECIDED and res.n_runs == 0


def test_runs_without_a_seed_are_kept_by_run_id_and_warned_about() -> None:
    runs = seed_frame()
    runs.loc[runs["run_id"] == "A1", "seed"] = np.nan
    res = seed_variance(runs)
    a = next(row for row in res.tables["per_config"] if row["config_key"] == "A")
    assert a["per_seed"] == {"seed 7": 2.00, "A1": 2.01, "seed 9": 2.03}
    assert any(w.startswith("some runs record no seed") for w in res.warnings)


def test_identical_reruns_have_no_spread_to_estimate() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "config_key": ["x", "x", "y", "y"], "label": "l",
                         "seed": [1.0, 2.0, 1.0, 2.0], "bpb": [2.0, 2.0, 1.5, 1.5]})
    res = seed_variance(runs)
    assert res.status == UNDECIDED and "identical BPB: no spread to estimate" in res.verdict
    assert all("ci_low" not in row for row in res.tables["per_config"])
    thirds = pd.DataFrame({"run_id": ["a", "b", "c"], "config_key": "x", "label": "l", "seed": [1.0, 2.0, 3.0],
                           "bpb": [0.1, 0.1, 0.1]})  # their mean is not exactly 0.1
    res = seed_variance(thirds)
    assert res.status == UNDECIDED and res.tables["per_config"][0]["sd"] == 0.0


def _one_config(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(len(values))], "config_key": "k", "label": "l",
                         "seed": [float(i) for i in range(len(values))], "bpb": [2.0 + v for v in values]})


def _crossed(effects: dict[int, float], noise: float = 0.0005) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame([{"run_id": f"{c}-{s}", "config_key": c, "label": c, "seed": float(s),
                          "bpb": 1.08 + 0.01 * i + e + (rng.normal(0, noise) if noise else 0.0)}
                         for i, c in enumerate("ABCD") for s, e in effects.items()])


@pytest.mark.parametrize(("values", "warned"), [
    ([0.0] * 7 + [1.0], True),           # excess kurtosis 8.0 over 8 values: past 4 x sqrt(24/8) = 6.93
    ([0.0] * 6 + [1.0, 0.2], True),      # 7.03: just past it (4 x sqrt(25/8) would be 7.07)
    ([0.0] * 6 + [1.0, -1.0], False),    # 3.5: under it (4 / sqrt(24/8) would be 2.31)
    ([0.0] * 6 + [1.0], False),          # 7 values: too few to judge a tail
    ([1.0] * 11 + [-1.0] * 11 + [0.0] * 98, True),  # 2.61 over 120 values: past 2 (3 would not be)
])
def test_the_heavy_tail_warning_is_excess_kurtosis_past_four_standard_errors_and_two(values: list[float],
                                                                                   warned: bool) -> None:
    res = seed_variance(_one_config(values))
    tail = [w for w in res.warnings if "heavy-tailed" in w]
    assert bool(tail) is warned
    if warned:
        v = np.array(values)
        excess = stats.kurtosis(v - v.mean(), fisher=True, bias=False)
        assert tail[0].startswith(f"the within-config spread is heavy-tailed (excess kurtosis {excess:.3g} over "
                                  f"{len(values)} values)")


@pytest.mark.parametrize("configs", [3, 4])
def test_the_same_seed_warning_names_the_first_three_reruns(configs: int) -> None:
    rows = [{"run_id": f"{c}{i}", "config_key": f"c{c}", "label": f"cfg{c}", "seed": float(seed),
             "bpb": 2.0 + 0.01 * i * (c + 1)}
            for c in range(configs) for i, seed in enumerate([1, 1, 2])]
    (warning,) = seed_variance(pd.DataFrame(rows)).warnings
    named = "; ".join(f"cfg{c}: seed 1 x2" for c in range(3))
    assert warning.startswith(f"{configs} seed(s) ran more than once within one config ({named}"
                              f"{'; ...' if configs > 3 else ''}): each is averaged into one value")


def test_configs_are_listed_in_key_order_whatever_order_the_runs_come_in() -> None:
    runs = seed_frame()
    res = seed_variance(runs.iloc[::-1])
    assert [row["config_key"] for row in res.tables["per_config"]] == ["A", "B", "C"]


def test_seeds_that_explain_the_whole_spread_leave_none_to_estimate() -> None:
    res = seed_variance(_crossed({42: 0.003, 314: -0.001, 999: 0.0}, noise=0.0))  # config + seed, exactly
    assert res.status == UNDECIDED and res.verdict == (f"{UNDECIDED}: the seeds' shared effects explain all the "
                                                       "spread: none left to estimate")


def test_the_rounding_noise_floor_of_a_blocked_fit_is_a_billionth_of_the_mean_bpb() -> None:
    """One blocked spread (a residual sd of 1.64e-9 BPB) is rounding noise beside a mean of 4.0 BPB (floor 4.0e-9)
    and a spread beside a mean of 0.52 BPB (floor 5.2e-10)."""
    def crossed_at(base: float) -> pd.DataFrame:
        rng = np.random.default_rng(3)
        effects = {42: 0.003, 314: -0.001, 999: 0.0}
        return pd.DataFrame([{"run_id": f"{c}-{s}", "config_key": c, "label": c, "seed": float(s),
                              "bpb": base + 0.01 * i + e + rng.normal(0, 1e-9)}
                             for i, c in enumerate("ABCD") for s, e in effects.items()])

    assert seed_variance(crossed_at(4.0)).status == UNDECIDED
    small = seed_variance(crossed_at(0.5))
    assert small.status == DESCRIPTIVE and small.effect == pytest.approx(1.636e-9, rel=1e-3)


def test_every_text_and_table_of_the_seed_variance_test_matches_the_snapshot(snapshot) -> None:
    seeds = seed_frame()
    no_seed = seeds.assign(seed=np.where(seeds["run_id"] == "A1", np.nan, seeds["seed"]))
    again = pd.DataFrame({"run_id": ["a1", "a2", "a3", "b1", "b2"], "config_key": ["A", "A", "A", "B", "B"],
                          "label": "l", "seed": [1.0, 1.0, 2.0, 1.0, 2.0], "bpb": [2.00, 2.02, 2.05, 1.90, 1.93]})
    snapshot("seed_variance_snapshot", {
        "seeds_repeated": [seed_variance(again)],
        "seeds_as_a_block": [seed_variance(_crossed({42: 0.003, 314: -0.001, 999: 0.0}))],
        "seeds_explain_all": [seed_variance(_crossed({42: 0.003, 314: -0.001, 999: 0.0}, noise=0.0))],
        "heavy_tail": [seed_variance(_one_config([0.0] * 7 + [1.0]))],
        "seeds": [seed_variance(seeds)],
        "seeds_without_a_seed": [seed_variance(no_seed)],
        "seeds_never_repeated": [seed_variance(seeds[seeds["config_key"] == "D"])],
        "seeds_identical": [seed_variance(seeds.assign(bpb=seeds["config_key"].map({"A": 2.0, "B": 1.9, "C": 1.8,
                                                                                     "D": 1.7})))],
    })


def test_runs_that_repeat_a_seed_count_once_at_their_mean() -> None:
    runs = pd.DataFrame({"run_id": ["a1", "a2", "a3", "b1", "b2"], "config_key": ["A", "A", "A", "B", "B"],
                         "label": "l", "seed": [1.0, 1.0, 2.0, 1.0, 2.0], "bpb": [2.00, 2.02, 2.05, 1.90, 1.93]})
    res = seed_variance(runs)
    a = next(row for row in res.tables["per_config"] if row["config_key"] == "A")
    assert a["n"] == 2 and a["per_seed"] == {"seed 1": pytest.approx(2.01), "seed 2": 2.05}
    assert a["same_seed_reruns"] == {"seed 1": [2.00, 2.02]} and a["runs"] == ["a1", "a2", "a3"]
    assert a["sd"] == pytest.approx(np.std([2.01, 2.05], ddof=1), rel=1e-12)
    sd = math.sqrt((np.var([2.01, 2.05], ddof=1) + np.var([1.90, 1.93], ddof=1)) / 2)
    assert res.effect == pytest.approx(sd, rel=1e-9) and res.extra["pooled_df"] == 2
    assert res.runs == ["a1", "a2", "a3", "b1", "b2"]
    assert any(w.startswith("1 seed(s) ran more than once within one config (l: seed 1 x2)") for w in res.warnings)
    # the report's n counts the 4 seed values the numbers rest on, not the 5 runs (walk 5, F3)
    from clowncar.analysis.report import runs_text, summary_rows, units_used

    assert res.extra["units"] == 4 and units_used(res) == 4 and runs_text(res) == "5 runs in 4 units"
    assert summary_rows([res])[0]["units"] == 4 and summary_rows([res])[0]["runs"] == 5


def test_a_config_run_twice_at_one_seed_has_no_seed_spread() -> None:
    runs = pd.DataFrame({"run_id": ["r2", "r3"], "config_key": "k", "label": "l", "seed": [1337.0, 1337.0],
                         "bpb": [1.1951, 1.1950]})  # a record log's two runs, both seed 1337
    res = seed_variance(runs)
    assert res.status == UNDECIDED and "no config was run with more than one seed" in res.verdict


def test_seeds_shared_by_every_config_are_a_block_in_the_pooled_sd() -> None:
    rng = np.random.default_rng(3)
    seed_effect = {42: 0.003, 314: -0.001, 999: 0.0}
    rows = [{"run_id": f"{c}-{s}", "config_key": c, "label": c, "seed": float(s),
             "bpb": 1.08 + 0.01 * i + seed_effect[s] + rng.normal(0, 0.0005)}
            for i, c in enumerate("ABCD") for s in seed_effect]
    runs = pd.DataFrame(rows)
    res = seed_variance(runs)
    import statsmodels.formula.api as smf

    fit = smf.ols("bpb ~ C(config_key) + C(seed)", runs).fit()
    assert res.extra["pooled_df"] == 12 - 4 - 2 == fit.df_resid
    assert res.effect == pytest.approx(math.sqrt(fit.scale), rel=1e-9)
    assert res.ci_high == pytest.approx(res.effect * math.sqrt(6 / stats.chi2.ppf(0.025, 6)), rel=1e-9)
    assert "C(config) + C(seed)" in res.method and "the two paired by seed" in res.method
    within = math.sqrt(sum(np.var(g, ddof=1) for _, g in runs.groupby("config_key")["bpb"]) / 4)
    assert res.effect < within / 2  # the seeds' shared effect is out of the spread
    # a difference paired by seed, against the blocked spread on its 6 df
    assert t_test_power(res.mde / (res.effect * math.sqrt(2 / 3)), 6) == pytest.approx(0.8, abs=1e-6)
    med = float(np.median([np.std(g, ddof=1) for _, g in runs.groupby("config_key")["bpb"]]))
    assert f"median per-config sd {med:.3g}, the seeds' shared effects in it)" in res.verdict
    assert "shared effects" not in seed_variance(seed_frame()).verdict


def test_a_spread_that_no_run_records_the_seed_of_is_named_a_rerun_sd() -> None:
    res = seed_variance(seed_frame().assign(seed=np.nan))
    assert res.verdict.startswith(f"{DESCRIPTIVE}: pooled rerun sd (no run records its seed) ")
    assert "with 3 runs per config, two configs must differ" in res.verdict


def test_a_heavy_tailed_spread_is_flagged_and_a_normal_one_is_not() -> None:
    rng = np.random.default_rng(0)
    rows = [{"run_id": f"c{c}-{i}", "config_key": f"c{c}", "label": "l", "seed": float(i),
             "bpb": 2.2 + 0.01 * c + rng.normal(0, 0.01)} for c in range(30) for i in range(2)]
    normal = pd.DataFrame(rows)
    assert not seed_variance(normal).warnings
    spiked = normal.copy()
    spiked.loc[[0, 10, 20], "bpb"] += 0.5  # three runs far off, as in the Frugendorff CSV
    (warning,) = seed_variance(spiked).warnings
    assert warning.startswith("the within-config spread is heavy-tailed (excess kurtosis ")


def test_a_frame_without_a_seed_column_gives_the_units_of_one_whose_seeds_are_all_missing() -> None:
    """The report's top-configs table and `rerun` call seed_units on frames that may hold no seed column: each run
    is then its own unit, with a missing seed that is a float NaN (a number column), as when the column is there
    and empty."""
    from clowncar.analysis.seeds import seed_units

    runs = seed_frame().drop(columns="seed")
    units = seed_units(runs)
    pd.testing.assert_frame_equal(units, seed_units(runs.assign(seed=np.nan)))
    assert units["seed"].dtype == np.float64 and units["seed"].isna().all()
    assert units["_seed_unit"].tolist() == runs["run_id"].tolist()
