"""Thin wrappers around scipy / statsmodels that the tests share: robust OLS, power and minimum detectable
effects, collinearity. No statistic here is computed by hand when a library provides it reliably (the power of a
t test is scipy's non-central t: statsmodels' power solver is wrong at two or three units, see
`_effect_with_power`)."""

from __future__ import annotations

import functools
import math
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.result import ALPHA, POWER


def ols(formula: str, data: pd.DataFrame, cov: str = "HC3", groups: Any = None, maxlags: int | None = None) -> Any:
    """Fit `formula` by OLS with the stated covariance: HC3 (default), cluster (`groups`), HAC (`maxlags`) or
    any other statsmodels `cov_type` (`nonrobust` is the classical one).

    t (not normal) reference distributions throughout, because our samples are small."""
    import statsmodels.formula.api as smf

    model = smf.ols(formula, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cov == "cluster":
            return model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        if cov == "HAC":
            return model.fit(cov_type="HAC", cov_kwds={"maxlags": maxlags or 1}, use_t=True)
        return model.fit(cov_type=cov, use_t=True)


COLLINEAR = ("some of these predictors vary together among these runs (collinear), so their effects cannot be "
             "separated; sweep them independently")
LONE_RUN = ("a run alone at its value of a predictor is fitted exactly (leverage 1), which leaves its robust "
            "variance 0/0; give that value more than one run")


def unusable(fit: Any, min_resid_df: int = 2) -> str | None:
    """Why the coefficients of a fit (with a heteroskedasticity-robust covariance) mean nothing, or None.

    statsmodels fits a design with dependent columns through a pseudo-inverse, which splits one effect between
    the columns arbitrarily, and an HC covariance divides by 1 - leverage, which a lone run makes 0 up to
    rounding: finite but meaningless standard errors as often as NaN ones."""
    x = np.asarray(fit.model.exog)
    if x.shape[0] <= x.shape[1] or fit.df_resid < min_resid_df:
        return (f"{x.shape[0]} runs leave {max(int(fit.df_resid), 0)} residual df for {x.shape[1]} coefficients "
                f"(at least {min_resid_df} needed)")
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return COLLINEAR
    leverage = np.einsum("ij,ji->i", x, np.linalg.pinv(x))  # the diagonal of the hat matrix X (X'X)^-1 X'
    if leverage.max() > 1 - 1e-8:
        return LONE_RUN
    if not np.all(np.isfinite(fit.bse)):
        return "the standard errors are not finite"
    return None


def coef(fit: Any, name: str, alpha: float = ALPHA) -> dict[str, float]:
    """Estimate, CI, p and standard error of one coefficient of a fitted model."""
    ci = fit.conf_int(alpha=alpha)
    return {"estimate": float(fit.params[name]), "ci_low": float(ci.loc[name, 0]),
            "ci_high": float(ci.loc[name, 1]), "p": float(fit.pvalues[name]), "se": float(fit.bse[name])}


def _whole_levels(term: str) -> str:
    """`C(seed)[T.1337.0]` -> `C(seed)[T.1337]`: a seed column with a gap is float, and its level names say so."""
    return re.sub(r"\[T\.(-?\d+)\.0\]", r"[T.\1]", term)


def coef_table(fit: Any, alpha: float = ALPHA) -> list[dict[str, Any]]:
    ci = fit.conf_int(alpha=alpha)
    return [{"term": _whole_levels(str(k)), "estimate": float(fit.params[k]), "se": float(fit.bse[k]),
             "ci_low": float(ci.loc[k, 0]), "ci_high": float(ci.loc[k, 1]), "p": float(fit.pvalues[k])}
            for k in fit.params.index]


def mde_from_se(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Minimum detectable coefficient for a t test with standard error `se` on `df` degrees of freedom.

    A one-sample t test on n = df + 1 has non-centrality d * sqrt(n); solving it for d and scaling back by
    se * sqrt(n) gives the coefficient whose t test has the requested power."""
    if not (se > 0 and df >= 1 and math.isfinite(se)):
        return None
    n = df + 1
    d = _solve_one_sample(n, alpha, power)
    return None if d is None else d * se * math.sqrt(n)


def mde_one_sample(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest mean shift a one-sample (or paired) t test on n units with spread sd detects with `power`."""
    if n < 2 or not (sd > 0):
        return None
    d = _solve_one_sample(n, alpha, power)
    return None if d is None else d * sd


def mde_two_sample(sd: float, n1: int, n2: int | None = None, alpha: float = ALPHA,
                   power: float = POWER) -> float | None:
    """Smallest difference between two configs a two-sample t test detects with `power` at spread sd."""
    n2 = n1 if n2 is None else n2
    if n1 < 2 or n2 < 2 or not (sd > 0):
        return None
    d = _solve_two_sample(int(n1), float(n2) / float(n1), alpha, power)
    return None if d is None else d * sd


@functools.lru_cache(maxsize=512)
def _solve_two_sample(n1: int, ratio: float, alpha: float, power: float) -> float | None:
    n2 = n1 * ratio
    return _effect_with_power(n1 + n2 - 2, math.sqrt(1 / (1 / n1 + 1 / n2)), alpha, power)


@functools.lru_cache(maxsize=512)
def _solve_one_sample(n: float, alpha: float, power: float) -> float | None:
    return _effect_with_power(n - 1, math.sqrt(n), alpha, power)


def t_test_power(noncentrality: float, df: float, alpha: float = ALPHA) -> float:
    """Power of a two-sided t test at `alpha` whose statistic is non-central t(df, noncentrality) (scipy)."""
    from scipy import stats

    crit = stats.t.isf(alpha / 2, df)
    lower = stats.nct.cdf(-crit, df, noncentrality)  # NaN where it underflows: it is ~0 there
    return float(stats.nct.sf(crit, df, noncentrality) + (0.0 if math.isnan(lower) else lower))


def _effect_with_power(df: float, scale: float, alpha: float, power: float) -> float | None:
    """The standardized effect d whose t test (non-centrality d x scale, `df` degrees of freedom) has `power`.

    statsmodels' `solve_power` stops short on very few units and returns a point that is not a solution (at
    n = 2, alpha 0.05, power 0.5 its answer has power 0.48) and its power function is NaN where scipy's
    lower tail underflows; so the power is scipy's non-central t and the root is bracketed and bisected."""
    from scipy.optimize import brentq

    def gap(d: float) -> float:
        return t_test_power(d * scale, df, alpha) - power

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lo, hi = 1e-9, 1.0
        while gap(hi) < 0:
            lo, hi = hi, hi * 2
            if hi > 1e6:
                return None
        if not gap(lo) < 0:  # the target power is at or below alpha: no effect size needed
            return None
        return float(brentq(gap, lo, hi))  # a root inside [lo, hi]: finite and positive


def vifs(data: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """Variance inflation factor of each predictor (with an intercept in the design)."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    x = data[columns].astype(float)
    x = x.assign(_const=1.0)[["_const", *columns]].to_numpy()
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, c in enumerate(columns, start=1):
            try:
                out[c] = float(variance_inflation_factor(x, i))
            except Exception:
                out[c] = float("inf")
    return out


def one_sample(values: np.ndarray, alpha: float = ALPHA) -> dict[str, float]:
    """t test of mean 0 across units with its CI (scipy)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    res = stats.ttest_1samp(v, 0.0)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    return {"estimate": float(v.mean()), "ci_low": float(ci.low), "ci_high": float(ci.high),
            "p": float(res.pvalue), "sd": float(v.std(ddof=1)), "n": int(v.size)}
