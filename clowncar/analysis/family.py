"""Test 7: the multiple-comparison correction over the confirmatory family, as its own table, and the one
function that runs every signal test over a set of frames."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clowncar.analysis.result import ALPHA, TestResult, decide

METHODS = ("holm", "fdr_bh", "bonferroni")


def correct(results: list[TestResult], method: str = "holm", alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Adjust the p-values of the family (results with `in_family` and a p-value) in place, re-word their
    verdicts from the adjusted p, and return the correction table."""
    from statsmodels.stats.multitest import multipletests

    fam = [r for r in results if r.in_family and r.p_value is not None]
    if not fam:
        return []
    reject, adj, _, _ = multipletests([r.p_value for r in fam], alpha=alpha, method=method)
    rows = []
    for r, a, rej in zip(fam, adj, reject, strict=True):
        r.p_adjusted, r.p_adjust_method = float(a), method
        decide(r, alpha)
        rows.append({"test": r.key, "title": r.title, "p_raw": r.p_value, "p_adjusted": float(a),
                     "reject_at_alpha": bool(rej), "method": method, "alpha": alpha, "family_size": len(fam)})
    return rows


def run_all(trials: pd.DataFrame, steps: pd.DataFrame | None = None, evals: pd.DataFrame | None = None,
            probes: pd.DataFrame | None = None, method: str = "holm") -> dict[str, Any]:
    """Every signal test on the given frames. Returns the run table, the results and the correction table."""
    from clowncar.analysis.cn_steps import cn_tests
    from clowncar.analysis.curves import early_boost_test
    from clowncar.analysis.frames import run_table
    from clowncar.analysis.runlevel import quant_gap_tests, width_tests
    from clowncar.analysis.seeds import seed_variance, sharing_test

    runs = run_table(trials)
    empty = pd.DataFrame()
    results: list[TestResult] = [
        *cn_tests(steps if steps is not None else empty, probes, trials),
        *quant_gap_tests(runs),
        *width_tests(runs),
        early_boost_test(evals if evals is not None else empty, runs),
        sharing_test(runs),
        seed_variance(runs),
    ]
    table = correct(results, method=method)
    return {"runs": runs, "results": results, "correction": table, "correction_method": method}
