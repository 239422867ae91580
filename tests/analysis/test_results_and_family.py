"""Thin data gives "not enough data", never an exception; the Holm table is the family's own; the seed-variance
minimum detectable difference has the power it claims."""

from __future__ import annotations

import gc
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clowncar.analysis.family import correct, run_all
from clowncar.analysis.frames import run_table
from clowncar.analysis.result import UNDECIDED, TestResult
from clowncar.analysis.seeds import seed_variance
from clowncar.analysis.stats import one_sample


def test_a_sweep_with_too_few_runs_gives_not_enough_data_for_every_test(sims):
    rng = np.random.default_rng(0)
    trials = sims["grid"](rng, seeds=1).head(2)  # two different configs, one seed each
    steps, _ = sims["steps"](rng, runs=2, steps=60)
    steps["trial_uid"] = steps["trial_uid"].map({"run0": trials["trial_uid"].iloc[0],
                                                 "run1": trials["trial_uid"].iloc[1]})
    out = run_all(trials, steps, pd.DataFrame(), None)
    assert len(out["results"]) == 9
    for r in out["results"]:
        assert r.status == UNDECIDED, (r.key, r.verdict)
        assert r.verdict.startswith("not enough data to decide"), r.verdict
    assert out["correction"] == []


def test_empty_frames_give_not_enough_data_not_an_exception():
    out = run_all(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    assert all(r.status == UNDECIDED for r in out["results"])


def test_legacy_style_gaps_are_tolerated(sims):
    """No seeds, auto width, no quantization, no cadence column: derived columns are NaN, nothing raises."""
    trials = sims["grid"](np.random.default_rng(1))
    trials = trials.drop(columns=["seed", "train.seed", "quant_gap", "q_val_bpb", "train.cadence", "model_dim"])
    trials["model.model_dim"] = "auto"
    runs = run_table(trials)
    assert runs["width"].isna().all() and runs["seed"].isna().all()
    assert runs["cadence"].notna().all()  # recovered from steps / c_steps
    out = run_all(trials)
    width = next(r for r in out["results"] if r.key == "3a_width")
    assert width.status == UNDECIDED and "not recorded for any run: width" in width.verdict


def _result(p: float, key: str) -> TestResult:
    return TestResult(key=key, title=key, question="q", method="m", effect=0.1, ci_low=-0.1, ci_high=0.3,
                      p_value=p)


def test_holm_table_adjusts_only_the_family_and_rewords_verdicts():
    rs = [_result(0.01, "a"), _result(0.02, "b"), _result(0.04, "c")]
    outside = _result(0.001, "d")
    outside.in_family = False
    table = correct([*rs, outside])
    assert [row["test"] for row in table] == ["a", "b", "c"]
    assert [round(row["p_adjusted"], 6) for row in table] == [0.03, 0.04, 0.04]
    assert all(row["reject_at_alpha"] for row in table)
    assert outside.p_adjusted is None
    assert "Holm-adjusted p = 0.03" in rs[0].verdict


@pytest.mark.parametrize(("method", "label", "adjusted"), [
    ("holm", "Holm-adjusted p", [0.04, 0.06, 0.06, 0.06]),
    ("bonferroni", "Bonferroni-adjusted p", [0.04, 0.08, 0.12, 0.16]),
    ("fdr_bh", "BH (FDR) adjusted p", [0.04, 0.04, 0.04, 0.04]),
])
def test_each_correction_gives_its_own_adjusted_p_and_the_verdict_names_it(method: str, label: str,
                                                                         adjusted: list[float]) -> None:
    rs = [_result(p, k) for p, k in [(0.03, "c"), (0.01, "a"), (0.04, "d"), (0.02, "b")]]
    table = correct(rs, method=method)
    by_key = {row["test"]: row["p_adjusted"] for row in table}
    assert [round(by_key[k], 6) for k in "abcd"] == adjusted
    assert all(row["method"] == method and row["family_size"] == 4 for row in table)
    for r in rs:
        assert r.p_adjust_method == method
        assert f"{label} = {r.p_adjusted:.3g}" in r.verdict
        assert label == "Holm-adjusted p" or "Holm" not in r.verdict


def test_holm_adjusted_p_values_are_monotone_in_the_raw_p_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The step-down products 4p, 3p, 2p, 1p fall at the end (0.06 then 0.04): Holm carries the running maximum,
    so a larger raw p never gets a smaller adjusted p."""
    monkeypatch.setattr(gc, "collect", lambda *args, **kwargs: 0)  # multipletests' gc pass: see below
    rng = np.random.default_rng(3)
    for _ in range(50):
        raw = np.sort(rng.uniform(0, 0.2, 6))
        table = correct([_result(float(p), f"t{i}") for i, p in enumerate(raw)])
        adj = [row["p_adjusted"] for row in table]
        assert all(b >= a for a, b in itertools.pairwise(adj))
        assert all(a >= p for a, p in zip(adj, raw, strict=True))


def test_holm_keeps_the_family_wise_error_rate_on_null_families(monkeypatch):
    """200 families of five null one-sample t tests: the share with any Holm rejection stays <= alpha + 0.03."""
    # statsmodels' multipletests runs a full gc.collect() on every call: 0.2-0.4 s per family late in the suite,
    # for nothing this test checks.
    monkeypatch.setattr(gc, "collect", lambda *args, **kwargs: 0)
    rng = np.random.default_rng(7)
    fam_errors = 0
    for _ in range(200):
        results = [_result(one_sample(rng.normal(0, 1, 6))["p"], f"t{i}") for i in range(5)]
        fam_errors += any(row["reject_at_alpha"] for row in correct(results))
    assert fam_errors / 200 <= 0.08


def test_seed_variance_reports_pooled_sd_and_an_mde_with_the_stated_power(sims):
    sd_true = 0.0015
    res = seed_variance(run_table(sims["seeds"](np.random.default_rng(2), configs=12, seeds=3, sd=sd_true)))
    assert res.status == "descriptive" and not res.in_family
    assert res.ci_low < sd_true < res.ci_high
    assert len(res.tables["per_config"]) == 12 and all(len(c["per_seed"]) == 3 for c in res.tables["per_config"])
    # two configs that differ by the reported MDE, 3 seeds each, tested against the pooled spread on its df (as
    # the sweep's own estimate of it): detected ~80% of the time
    rng, df = np.random.default_rng(3), res.extra["pooled_df"]
    a = rng.normal(0, res.effect, (4000, 3))
    b = rng.normal(res.mde, res.effect, (4000, 3))
    pooled = res.effect * np.sqrt(rng.chisquare(df, 4000) / df)
    t = (b.mean(axis=1) - a.mean(axis=1)) / (pooled * np.sqrt(2 / 3))
    power = float(np.mean(np.abs(t) > stats.t.isf(0.025, df)))
    assert 0.77 <= power <= 0.83, power


def test_seed_variance_without_reruns_is_not_enough_data(sims):
    res = seed_variance(run_table(sims["seeds"](np.random.default_rng(2), seeds=1)))
    assert res.status == UNDECIDED and "more than one seed" in res.verdict


def test_the_correction_table_carries_raw_and_adjusted_p_and_rejects_at_the_given_alpha() -> None:
    rs = [_result(0.004, "a"), _result(0.02, "b")]
    rs[0].title = "first test"
    no_p = _result(0.5, "c")
    no_p.p_value = None  # a test that produced no p-value is not part of the family
    table = correct([*rs, no_p], method="holm", alpha=0.01)
    assert [(r["test"], r["title"], r["p_raw"], r["alpha"], r["family_size"]) for r in table] == [
        ("a", "first test", 0.004, 0.01, 2), ("b", "b", 0.02, 0.01, 2)]
    assert [r["reject_at_alpha"] for r in table] == [True, False]  # 0.008 < 0.01 < 0.02
    assert rs[0].status == "signal" and rs[1].status != "signal"  # verdicts use the same alpha
    assert no_p.p_adjusted is None
    assert correct([no_p]) == [] and correct([]) == []


def test_run_all_gives_each_test_its_own_frame_and_holm_by_default(sims, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc, "collect", lambda *args, **kwargs: 0)
    rng = np.random.default_rng(11)
    trials, evals = sims["curves"](rng, boost_per_loop=0.03)
    steps, probes = sims["steps"](rng, runs=len(trials), steps=90, cadence=2, probe_every=5)
    uid = dict(zip([f"run{i}" for i in range(len(trials))], trials["trial_uid"], strict=True))
    steps["trial_uid"], probes["trial_uid"] = steps["trial_uid"].map(uid), probes["trial_uid"].map(uid)

    full = run_all(trials, steps, evals, probes)
    by = {r.key: r for r in full["results"]}
    assert by["1a_cn_loss"].n_steps > 0 and by["1a_cn_loss"].p_value is not None  # the steps frame
    assert by["1b_next_step"].extra["source"] == "probe"  # the probes frame
    assert by["4_early_boost"].p_value is not None  # the evals frame
    assert full["correction_method"] == "holm" and {row["method"] for row in full["correction"]} == {"holm"}
    assert len(full["runs"]) == len(trials) and "bpb" in full["runs"]
    bonf = run_all(trials, steps, evals, probes, method="bonferroni")
    assert bonf["correction_method"] == "bonferroni" and {row["method"] for row in bonf["correction"]} == {
        "bonferroni"}

    bare = {r.key: r for r in run_all(trials)["results"]}  # no steps, evals or probes: those tests say so
    assert bare["1a_cn_loss"].status == UNDECIDED and bare["1a_cn_loss"].p_value is None
    assert bare["4_early_boost"].status == UNDECIDED and bare["4_early_boost"].p_value is None
    no_probes = {r.key: r for r in run_all(trials, steps, evals)["results"]}
    assert no_probes["1b_next_step"].extra["source"] == "residuals"
