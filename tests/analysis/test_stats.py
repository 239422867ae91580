"""The statistics every signal test relies on, checked against numbers computed independently of clowncar:
minimum detectable effects have exactly the stated power (non-central t from scipy), one-sample t tests give
the textbook t, p and CI, VIFs equal 1 / (1 - r^2), and each fit carries the covariance it was asked for."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from clowncar.analysis.stats import (
    COLLINEAR,
    LONE_RUN,
    coef,
    coef_table,
    mde_from_se,
    mde_one_sample,
    mde_two_sample,
    ols,
    one_sample,
    unusable,
)
from clowncar.analysis.stats import vifs as vif_of


def _power_t(noncentrality: float, df: float, alpha: float = 0.05) -> float:
    """Power of a two-sided t test at `alpha` whose statistic has the given non-centrality (the lower tail by
    symmetry, P(T < -c | nc) = P(T > c | -nc), which scipy computes where its lower-tail cdf underflows to NaN)."""
    crit = stats.t.isf(alpha / 2, df)
    return float(stats.nct.sf(crit, df, noncentrality) + stats.nct.sf(crit, df, -noncentrality))


@pytest.mark.parametrize("n", [2, 3, 5, 12])
@pytest.mark.parametrize("sd", [0.00015, 1.0])
def test_one_sample_mde_has_exactly_the_stated_power(n: int, sd: float) -> None:
    mde = mde_one_sample(sd, n)
    assert mde is not None
    assert _power_t(mde / sd * math.sqrt(n), n - 1) == pytest.approx(0.8, abs=1e-4)
    low = mde_one_sample(sd, n, power=0.5)
    assert low is not None and low < mde
    assert _power_t(low / sd * math.sqrt(n), n - 1) == pytest.approx(0.5, abs=1e-4)
    strict = mde_one_sample(sd, n, alpha=0.01)
    assert strict is not None and strict > mde
    assert _power_t(strict / sd * math.sqrt(n), n - 1, alpha=0.01) == pytest.approx(0.8, abs=1e-4)


@pytest.mark.parametrize(("n1", "n2"), [(3, None), (3, 5), (8, 4), (2, 2)])
def test_two_sample_mde_has_exactly_the_stated_power(n1: int, n2: int | None) -> None:
    sd = 0.5
    mde = mde_two_sample(sd, n1, n2)
    m = n1 if n2 is None else n2
    assert mde is not None
    noncentrality = mde / (sd * math.sqrt(1 / n1 + 1 / m))
    assert _power_t(noncentrality, n1 + m - 2) == pytest.approx(0.8, abs=1e-4)
    half = mde_two_sample(sd, n1, n2, power=0.5)
    assert half is not None and _power_t(half / (sd * math.sqrt(1 / n1 + 1 / m)), n1 + m - 2) == \
        pytest.approx(0.5, abs=1e-4)
    at_1pct = mde_two_sample(sd, n1, n2, alpha=0.01)
    assert at_1pct is not None and _power_t(at_1pct / (sd * math.sqrt(1 / n1 + 1 / m)), n1 + m - 2,
                                            alpha=0.01) == pytest.approx(0.8, abs=1e-4)


def test_three_runs_per_arm_detect_about_three_sigma() -> None:
    """The reference's table: 3 runs per arm, alpha 0.05, power 0.8 -> 3.07 sigma."""
    assert mde_two_sample(1.0, 3) == pytest.approx(3.07, abs=0.005)
    assert mde_two_sample(0.00015, 3) == pytest.approx(0.00046, abs=0.000005)


@pytest.mark.parametrize(("se", "df"), [(0.01, 1), (0.01, 4), (2.0, 30)])
def test_coefficient_mde_has_exactly_the_stated_power(se: float, df: int) -> None:
    mde = mde_from_se(se, df)
    assert mde is not None
    assert _power_t(mde / se, df) == pytest.approx(0.8, abs=1e-4)
    other = mde_from_se(se, df, alpha=0.1, power=0.9)
    assert other is not None and _power_t(other / se, df, alpha=0.1) == pytest.approx(0.9, abs=1e-4)


def test_mdes_are_none_where_no_test_is_possible() -> None:
    for se, df in [(0.0, 5), (-1.0, 5), (math.inf, 5), (math.nan, 5), (0.1, 0), (0.1, 0.5)]:
        assert mde_from_se(se, df) is None, (se, df)
    assert mde_from_se(0.1, 1) is not None
    for sd, n in [(1.0, 1), (0.0, 5), (math.nan, 5), (-1.0, 5)]:
        assert mde_one_sample(sd, n) is None, (sd, n)
    assert mde_one_sample(1.0, 2) is not None
    for sd, n1, n2 in [(1.0, 1, 5), (1.0, 5, 1), (0.0, 5, 5), (math.nan, 3, 3)]:
        assert mde_two_sample(sd, n1, n2) is None, (sd, n1, n2)
    assert mde_two_sample(1.0, 2, 2) is not None


def test_one_sample_t_gives_the_textbook_numbers() -> None:
    res = one_sample(np.array([1.0, 2.0, 3.0]))
    t = 2.0 / (1.0 / math.sqrt(3))
    half = stats.t.isf(0.025, 2) / math.sqrt(3)
    assert res == pytest.approx({"estimate": 2.0, "ci_low": 2.0 - half, "ci_high": 2.0 + half,
                                 "p": 2 * stats.t.sf(t, 2), "sd": 1.0, "n": 3})
    assert half == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)  # 2.484 s, as the reference says
    wide = one_sample([1.0, 2.0, 3.0], alpha=0.01)
    assert wide["ci_high"] - 2.0 == pytest.approx(stats.t.isf(0.005, 2) / math.sqrt(3))
    assert isinstance(res["n"], int)


def _line(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n)
    return pd.DataFrame({"x": x, "g": np.repeat(np.arange(n // 4), 4)[:n],
                         "y": 2.0 + 3.0 * x + rng.normal(0, 0.1 + x, n)})


def test_each_fit_carries_the_covariance_it_was_asked_for() -> None:
    df = _line()
    hc3 = ols("y ~ x", df)
    assert hc3.cov_type == "HC3" and hc3.use_t
    assert ols("y ~ x", df, cov="HC1").cov_type == "HC1"
    plain = ols("y ~ x", df, cov="nonrobust")
    assert plain.cov_type == "nonrobust"
    assert hc3.bse["x"] != pytest.approx(plain.bse["x"], rel=1e-3)  # heteroscedastic noise: they differ
    clustered = ols("y ~ x", df, cov="cluster", groups=df["g"])
    assert clustered.cov_type == "cluster" and clustered.use_t
    assert clustered.bse["x"] != pytest.approx(hc3.bse["x"], rel=1e-3)
    hac = ols("y ~ x", df, cov="HAC")
    assert hac.cov_type == "HAC" and hac.use_t and hac.cov_kwds["maxlags"] == 1
    assert ols("y ~ x", df, cov="HAC", maxlags=3).cov_kwds["maxlags"] == 3
    assert hac.params["x"] == pytest.approx(plain.params["x"])  # the covariance never moves the estimate


def test_coefficient_ci_is_estimate_plus_minus_t_times_se() -> None:
    fit = ols("y ~ x", _line())
    c = coef(fit, "x")
    crit = stats.t.isf(0.025, fit.df_resid)
    assert c["estimate"] == pytest.approx(fit.params["x"]) and 2.0 < c["estimate"] < 4.0
    assert c["se"] == pytest.approx(fit.bse["x"])
    assert c["ci_low"] == pytest.approx(c["estimate"] - crit * c["se"])
    assert c["ci_high"] == pytest.approx(c["estimate"] + crit * c["se"])
    assert c["p"] == pytest.approx(2 * stats.t.sf(abs(c["estimate"] / c["se"]), fit.df_resid))
    narrow = coef(fit, "x", alpha=0.5)
    assert narrow["ci_high"] - narrow["estimate"] == pytest.approx(stats.t.isf(0.25, fit.df_resid) * c["se"])
    table = coef_table(fit)
    assert [row["term"] for row in table] == ["Intercept", "x"]
    assert {k: table[1][k] for k in ("estimate", "se", "ci_low", "ci_high", "p")} == pytest.approx(c)
    assert table[0]["estimate"] == pytest.approx(fit.params["Intercept"])
    assert table[0]["se"] == pytest.approx(fit.bse["Intercept"]) and table[0]["p"] == fit.pvalues["Intercept"]
    half = coef_table(fit, alpha=0.5)[1]
    assert half["ci_low"] == pytest.approx(narrow["ci_low"]) and half["ci_high"] == pytest.approx(narrow["ci_high"])


def test_a_float_seed_level_is_named_as_the_whole_seed_it_is() -> None:
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"seed": [1337.0, 42.0, -7.0, 2.5] * 4, "y": rng.normal(size=16)})  # a gap made it float
    terms = [row["term"] for row in coef_table(ols("y ~ C(seed)", data))]
    assert terms == ["Intercept", "C(seed)[T.2.5]", "C(seed)[T.42]", "C(seed)[T.1337]"]  # -7 is the reference
    assert [row["term"] for row in coef_table(ols("y ~ C(seed)", data.assign(seed=[-7.0, 10.0] * 8)))] == [
        "Intercept", "C(seed)[T.10]"]


def test_vif_is_one_over_one_minus_r_squared() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=200)
    b = 0.8 * a + 0.6 * rng.normal(size=200)
    c = rng.normal(size=200)
    df = pd.DataFrame({"a": a, "b": b, "c": c})
    r = np.corrcoef(a, b)[0, 1]
    two = vif_of(df, ["a", "b"])
    assert two == pytest.approx({"a": 1 / (1 - r**2), "b": 1 / (1 - r**2)})
    three = vif_of(df, ["a", "b", "c"])
    r2_c = 1 - 1 / three["c"]
    resid = c - np.column_stack([np.ones(200), a, b]) @ np.linalg.lstsq(np.column_stack([np.ones(200), a, b]), c,
                                                                        rcond=None)[0]
    assert r2_c == pytest.approx(1 - resid.var() / c.var())
    dup = vif_of(df.assign(d=df["a"] * 2.0), ["a", "d"])
    assert all(v > 1e10 for v in dup.values())  # perfectly collinear: infinite (or as good as)


def test_power_helper_is_right() -> None:
    """The independent power formula itself: at zero effect a two-sided test rejects alpha of the time."""
    assert _power_t(0.0, 5) == pytest.approx(0.05)
    root = optimize.brentq(lambda nc: _power_t(nc, 1000) - 0.8, 0.1, 10)
    assert root == pytest.approx(stats.norm.isf(0.025) + stats.norm.isf(0.2), abs=0.01)


def test_a_power_at_or_below_alpha_needs_no_effect_and_gives_no_mde() -> None:
    from clowncar.analysis.stats import t_test_power

    assert t_test_power(0.0, 5) == pytest.approx(0.05)  # both tails of a two-sided test
    assert t_test_power(0.0, 5, alpha=0.2) == pytest.approx(0.2)
    assert t_test_power(3.0, 5) == pytest.approx(_power_t(3.0, 5))
    assert mde_one_sample(1.0, 5, power=0.04) is None
    assert mde_two_sample(1.0, 5, power=0.04) is None
    assert mde_from_se(0.1, 5, power=0.04) is None


def test_vifs_of_data_that_cannot_be_fitted_are_infinite() -> None:
    empty = vif_of(pd.DataFrame({"a": [], "b": []}), ["a", "b"])
    assert empty == {"a": math.inf, "b": math.inf}


def _xy(x: list[float], **more: list[float]) -> pd.DataFrame:
    y = np.random.default_rng(len(x)).normal(0, 1, len(x))
    return pd.DataFrame({"x": x, "y": y, **more})


def test_a_fit_with_spare_residual_df_and_no_lone_run_is_usable() -> None:
    assert unusable(ols("y ~ x", _xy([1, 1, 2, 2, 3, 3.0]))) is None
    # a high but not total leverage (0.99 for the run at 9) is a fit, not a lone run
    assert unusable(ols("y ~ x", _xy([1, 1, 1, 1, 1, 1, 2, 9.0]))) is None


@pytest.mark.parametrize(("x", "why"), [
    ([1, 2, 3.0], "3 runs leave 1 residual df for 2 coefficients (at least 2 needed)"),
    ([1, 2.0], "2 runs leave 0 residual df for 2 coefficients (at least 2 needed)"),
])
def test_too_few_runs_for_the_coefficients_say_how_many_df_are_left(x: list[float], why: str) -> None:
    assert unusable(ols("y ~ x", _xy(x))) == why


def test_as_many_coefficients_as_runs_is_too_few_even_when_no_residual_df_is_asked_for() -> None:
    fit = ols("y ~ x", _xy([1, 2.0]))
    assert unusable(fit, min_resid_df=0) == "2 runs leave 0 residual df for 2 coefficients (at least 0 needed)"


def test_the_residual_df_asked_for_is_the_bar() -> None:
    fit = ols("y ~ x", _xy([1, 2, 3, 4, 5.0]))
    assert unusable(fit, min_resid_df=3) is None
    assert unusable(fit, min_resid_df=4) == "5 runs leave 3 residual df for 2 coefficients (at least 4 needed)"


def test_predictors_that_vary_together_are_collinear() -> None:
    fit = ols("y ~ x + z", _xy([1, 2, 3, 4, 5, 6.0], z=[3, 5, 7, 9, 11, 13.0]))  # z = 2x + 1
    assert fit.df_resid >= 2 and np.all(np.isfinite(fit.bse))  # statsmodels fits it anyway
    assert unusable(fit) == COLLINEAR


@pytest.mark.parametrize("cov", ["HC2", "HC3", "nonrobust"])
def test_a_run_alone_at_its_value_is_a_lone_run_whatever_the_covariance(cov: str) -> None:
    assert unusable(ols("y ~ x", _xy([1, 1, 1, 1, 1, 1, 1, 2.0]), cov=cov)) == LONE_RUN


def test_infinite_standard_errors_are_named() -> None:
    d = _xy([0, 1, 2, 3, 4, 5, 6, 7.0])
    d.loc[0, "y"], d.loc[1, "y"] = 1e200, -1e200
    assert unusable(ols("y ~ x", d)) == "the standard errors are not finite"
