"""Test 1a subtracts a reference run on the same token stream: a batch that is hard for every run at the same
C-step is shared by all runs, so a t test across runs takes it for signal unless it is cancelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm

from clowncar.analysis.cn_steps import TWO_WAY, cn_loss_test, cn_tests
from clowncar.analysis.family import run_all
from clowncar.analysis.frames import step_kind_table
from clowncar.analysis.reference import (
    corrected,
    declare_one_stream,
    declared_runs,
    pick_references,
    stream_keys,
)

STEPS = 120
T = np.arange(1, STEPS + 1)
IS_C = (T - 1) % 3 == 0
# The stream's batch difficulty: the same in every run at step t, and harder on average where cadence 3 fires.
DIFFICULTY = np.random.default_rng(0).normal(0, 0.05, STEPS) + 0.04 * IS_C


def run(uid: str, kinds: np.ndarray, cn: float, seed: int) -> pd.DataFrame:
    noise = np.random.default_rng(seed).normal(0, 0.01, STEPS)
    loss = 3 + 3 * np.exp(-T / 40) + DIFFICULTY + cn * (kinds == "C") + noise
    return pd.DataFrame({"trial_uid": uid, "step": T, "kind": kinds, "train_loss": loss})


def trial(uid: str, seed: int, loops: int = 2, width: int = 64, batch: int = 8192) -> dict[str, object]:
    return {"trial_uid": uid, "data.dataset": "demo", "data.train_glob": "fineweb_train_*.bin",
            "train.train_batch_tokens": batch, "train.train_seq_len": 128, "train.seed": seed,
            "model.crawler_loops": loops, "model.model_dim": width, "status": "ok"}


def sweep(cn: float = 0.0, runs: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`runs` runs at cadence 3 and one all-N reference per seed, all on one stream."""
    mixed = np.where(IS_C, "C", "N")
    steps = [run(f"cad3/s{i}", mixed, cn, seed=10 + i) for i in range(runs)]
    steps += [run(f"cad0/s{i}", np.full(STEPS, "N"), 0.0, seed=50 + i) for i in range(runs)]
    trials = [trial(f"cad{c}/s{i}", seed=i) for c in (3, 0) for i in range(runs)]
    return pd.concat(steps, ignore_index=True), pd.DataFrame(trials)


def hand_coefficient(y: np.ndarray, c: np.ndarray) -> float:
    basis = np.asarray(patsy.dmatrix("bs(x, df=3)", {"x": T.astype(float)}))
    return float(sm.OLS(y, np.column_stack([basis, c])).fit().params[-1])


def test_a_shared_hard_batch_at_c_steps_biases_the_uncorrected_estimate_and_cancels_with_the_reference() -> None:
    steps, trials = sweep(cn=0.0)
    raw, _ = cn_loss_test(step_kind_table(steps))
    fixed, fits = cn_loss_test(step_kind_table(steps), trials)
    shared = hand_coefficient(DIFFICULTY, IS_C.astype(float))  # what the stream alone puts into every run
    assert shared > 0.015 and raw.effect == pytest.approx(shared, abs=0.005)
    # the runs' spread cannot see a part they share, the step-by-step covariance does (the stream's harder
    # C-steps are a bias, not noise: only the reference removes them)
    assert raw.extra["se_shared_steps"] > 10 * raw.extra["se_units"]
    assert "The units move together step by step" in raw.extra["scope"]
    # the truth is 0: what is left is the runs' own noise (sd 0.01 per step), far below the shared part
    assert abs(fixed.effect) < 0.005 and fixed.ci_high < raw.effect / 3
    assert fixed.extra["reference_corrected"] and not raw.extra["reference_corrected"]
    rows = fixed.tables["reference_runs"]
    assert [(r["run"], r["reference"]) for r in rows] == [(f"cad3/s{i}", f"cad0/s{i}") for i in range(4)]
    # each run's coefficient is the fit of its loss minus its reference's, step by step; the table also shows
    # the fit of its own loss and of the reference's loss on the same C/N labels
    c = IS_C.astype(float)
    for i, row in enumerate(rows):
        mine = steps[steps["trial_uid"] == f"cad3/s{i}"]["train_loss"].to_numpy()
        ref = steps[steps["trial_uid"] == f"cad0/s{i}"]["train_loss"].to_numpy()
        assert fits[f"cad3/s{i}"]["coef"] == pytest.approx(hand_coefficient(mine - ref, c), rel=1e-9)
        assert (row["c_minus_n"], row["uncorrected_c_minus_n"], row["reference_c_minus_n"]) == pytest.approx(
            (hand_coefficient(mine - ref, c), hand_coefficient(mine, c), hand_coefficient(ref, c)), rel=1e-9)
        assert row["uncorrected_c_minus_n"] == pytest.approx(
            next(w["coef"] for w in raw.tables["within_run_hac"] if w["run"] == row["run"]), rel=1e-9)
    means = (np.mean([r["uncorrected_c_minus_n"] for r in rows]), np.mean([r["reference_c_minus_n"] for r in rows]))
    assert (f"Uncorrected, the mean C-N would be {means[0]:+.4g} nats, of which the reference runs alone (one kind "
            f"throughout, on the same steps) show {means[1]:+.4g}. The 4 units share nothing step by step"
            ) in fixed.extra["scope"]
    assert means[0] == pytest.approx(raw.effect, rel=1e-9)
    assert "OLS (train_loss - the reference run's train_loss at the step) ~ is_C" in fixed.method
    assert fixed.extra["scope"].startswith("Reference correction: each of the 4 runs with both step kinds")


def test_a_real_c_step_effect_survives_the_correction() -> None:
    steps, trials = sweep(cn=0.03)
    res, _ = cn_loss_test(step_kind_table(steps), trials)
    assert res.status == "signal" and res.effect == pytest.approx(0.03, abs=0.005)


def test_one_run_without_a_reference_leaves_every_run_uncorrected() -> None:
    steps, trials = sweep()
    trials.loc[trials["trial_uid"] == "cad3/s2", "train.train_batch_tokens"] = 16384  # another stream
    res, _ = cn_loss_test(step_kind_table(steps), trials)
    raw, _ = cn_loss_test(step_kind_table(steps))
    assert not res.extra["reference_corrected"] and res.tables["reference_runs"] == []
    assert res.effect == pytest.approx(raw.effect, rel=1e-12)
    assert res.extra["scope"].startswith("No reference correction: 1 of the 4 runs with both step kinds have no "
                                         "reference run. A reference is a run on the same shards")


def test_a_run_too_short_to_fit_does_not_block_the_correction_of_the_others() -> None:
    steps, trials = sweep()
    two_c = np.where(np.isin(T, [1, 60]), "C", "N")  # two C-steps: fewer than the three a fit needs
    steps = pd.concat([steps, run("two_c", two_c, 0.0, seed=99)], ignore_index=True)
    trials = pd.concat([trials, pd.DataFrame([trial("two_c", seed=7, batch=16384)])], ignore_index=True)
    res, fits = cn_loss_test(step_kind_table(steps), trials)
    assert res.extra["reference_corrected"] and "two_c" not in fits and len(fits) == 4


def test_a_sweep_without_alternating_runs_says_nothing_about_references() -> None:
    steps, trials = sweep()
    one_kind = steps[steps["trial_uid"].str.startswith("cad0")]
    for t in (trials, None):
        res, fits = cn_loss_test(step_kind_table(one_kind), t)
        assert fits == {} and res.extra["scope"] == "" and not res.extra["reference_corrected"]


def test_runs_that_record_no_stream_are_named_as_the_reason() -> None:
    """An imported log records no shards or batch: the report says that is why nothing could be paired."""
    steps, trials = sweep()
    gappy = trials.astype(object)
    gappy.loc[gappy["trial_uid"].isin(["cad3/s0", "cad3/s1"]), "train.train_batch_tokens"] = None
    res, _ = cn_loss_test(step_kind_table(steps), gappy)
    assert res.extra["scope"].startswith("No reference correction: 2 of the 4 runs with both step kinds have no "
                                         "reference run (2 of them record no token stream: an imported log does "
                                         "not; `clowncar analyze --same-stream` declares that such runs share one). "
                                         "A reference")
    bare = trials[["trial_uid", "train.seed", "status"]]  # what an imported log gives: no stream at all
    res, _ = cn_loss_test(step_kind_table(steps), bare)
    assert res.extra["scope"].startswith("No reference correction: no run with both step kinds has a reference "
                                         "run (none of them records its token stream: an imported log does not; "
                                         "`clowncar analyze --same-stream` declares that such runs share one).")
    one_more = gappy.copy()
    one_more.loc[one_more["trial_uid"] == "cad3/s2", "data.dataset"] = "other"  # a stream no one-kind run reads
    res, _ = cn_loss_test(step_kind_table(steps), one_more)
    assert "3 of the 4 runs with both step kinds have no reference run (2 of them record no token stream" in (
        res.extra["scope"])


def test_the_probe_test_names_runs_that_record_no_stream_too() -> None:
    steps, probes, trials = probed_sweep()
    gappy = trials.astype(object)
    gappy.loc[gappy["trial_uid"] == "cad3/s3", "data.train_glob"] = None
    res = cn_tests(steps, probes, gappy)[1]
    assert res.extra["scope"].startswith("No reference correction: 1 of the 4 runs with both step kinds have no "
                                         "reference run with probe losses (1 of them records no token stream: an "
                                         "imported log does not; `clowncar analyze --same-stream` declares that such "
                                         "runs share one); what")


def test_without_trials_the_report_says_no_run_has_a_reference() -> None:
    steps, _ = sweep()
    res, _ = cn_loss_test(step_kind_table(steps))
    assert res.extra["scope"].startswith("No reference correction: no run with both step kinds has a reference run")
    assert "train_loss ~ is_C" in res.method


# -- test 1b: probe losses --------------------------------------------------------------------------------------

PROBE_AT = np.arange(7, STEPS + 1, 7)  # not a multiple of the cadence: C-steps per interval vary
# What each step's update does to the probe loss: set by its batch, so the same in every run on the stream, and
# larger where cadence 3 fires.
UPDATE = np.random.default_rng(1).normal(0, 0.004, STEPS) + 0.01 * IS_C


def probes_of(uid: str, kinds: np.ndarray, per_c: float, seed: int) -> pd.DataFrame:
    moved = np.cumsum(UPDATE + per_c * (kinds == "C"))[PROBE_AT - 1]
    noise = np.random.default_rng(seed).normal(0, 0.002, PROBE_AT.size)
    return pd.DataFrame({"trial_uid": uid, "step": PROBE_AT, "probe_loss": 3 + 2 * np.exp(-PROBE_AT / 50) + moved
                         + noise})


def probed_sweep(per_c: float = 0.0, runs: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    steps, trials = sweep(runs=runs)
    mixed = np.where(IS_C, "C", "N")
    probes = [probes_of(f"cad3/s{i}", mixed, per_c, seed=20 + i) for i in range(runs)]
    probes += [probes_of(f"cad0/s{i}", np.full(STEPS, "N"), 0.0, seed=60 + i) for i in range(runs)]
    return steps, pd.concat(probes, ignore_index=True), trials


def probe_coefficient(pl: np.ndarray) -> float:
    """The per-run probe regression by hand: probe-loss change on C-steps per interval and a B-spline trend
    (every interval is 7 steps, so no length column)."""
    c_done = np.cumsum(IS_C)[PROBE_AT - 1]
    basis = np.asarray(patsy.dmatrix("bs(x, df=3)", {"x": PROBE_AT[1:].astype(float)}))
    return float(sm.OLS(np.diff(pl), np.column_stack([np.diff(c_done), basis])).fit().params[0])


def test_a_shared_update_effect_of_the_c_step_batches_cancels_in_the_probe_test() -> None:
    steps, probes, trials = probed_sweep(per_c=0.0)
    raw = cn_tests(steps, probes)[1]
    fixed = cn_tests(steps, probes, trials)[1]
    assert raw.extra["source"] == fixed.extra["source"] == "probe"
    shared = probe_coefficient(np.cumsum(UPDATE)[PROBE_AT - 1])
    assert shared > 0.007 and raw.effect == pytest.approx(shared, abs=0.002)
    assert raw.extra["se_shared_steps"] > 3 * raw.extra["se_units"]  # the runs share the batches' updates
    assert abs(fixed.effect) < 0.002 and fixed.ci_high < raw.effect / 3
    for i in range(4):
        mine = probes[probes["trial_uid"] == f"cad3/s{i}"]["probe_loss"].to_numpy()
        ref = probes[probes["trial_uid"] == f"cad0/s{i}"]["probe_loss"].to_numpy()
        got = next(r["after_c_minus_after_n"] for r in fixed.tables["per_run"] if r["run"] == f"cad3/s{i}")
        assert got == pytest.approx(probe_coefficient(mine - ref), rel=1e-9)
    assert fixed.method.startswith("(probe loss - the reference run's probe loss at the probe step)")
    assert fixed.extra["scope"].startswith("Reference correction: each run's probe loss minus its reference run's")
    assert f"cancels. Uncorrected, the mean would be {raw.effect:+.4g} nats. The units" in fixed.extra["scope"]
    assert raw.extra["scope"].startswith("No reference correction: no run with both step kinds has a reference run "
                                         "with probe losses; what")


def test_a_real_update_effect_survives_the_probe_correction() -> None:
    steps, probes, trials = probed_sweep(per_c=0.01)
    res = cn_tests(steps, probes, trials)[1]
    assert res.status == "signal" and res.effect == pytest.approx(0.01, abs=0.002)


def test_a_one_kind_run_with_probes_does_not_block_the_probe_correction() -> None:
    steps, probes, trials = probed_sweep()
    all_c = np.full(STEPS, "C")
    steps = pd.concat([steps, run("cad1/s0", all_c, 0.0, seed=70)], ignore_index=True)
    probes = pd.concat([probes, probes_of("cad1/s0", all_c, 0.0, seed=71)], ignore_index=True)
    trials = pd.concat([trials, pd.DataFrame([trial("cad1/s0", seed=0, batch=16384)])], ignore_index=True)
    res = cn_tests(steps, probes, trials)[1]
    assert res.extra["scope"].startswith("Reference correction") and "cad1/s0" not in res.runs


def test_a_run_with_a_single_c_step_and_no_reference_counts_as_lacking_one() -> None:
    """One C-step already makes the C-steps per probe interval vary: the probe fit can use such a run, so it must
    have a reference like the others."""
    steps, probes, trials = probed_sweep()
    one_c = np.where(T == 30, "C", "N")
    steps = pd.concat([steps, run("one_c", one_c, 0.0, seed=80)], ignore_index=True)
    probes = pd.concat([probes, probes_of("one_c", one_c, 0.0, seed=81)], ignore_index=True)
    trials = pd.concat([trials, pd.DataFrame([trial("one_c", seed=0, batch=16384)])], ignore_index=True)
    res = cn_tests(steps, probes, trials)[1]
    assert res.extra["scope"].startswith("No reference correction: 1 of the 5 runs with both step kinds have no "
                                         "reference run with probe losses")


def test_a_reference_without_probes_leaves_every_probe_fit_uncorrected() -> None:
    steps, probes, trials = probed_sweep()
    res = cn_tests(steps, probes[probes["trial_uid"] != "cad0/s1"], trials)[1]
    raw = cn_tests(steps, probes[probes["trial_uid"] != "cad0/s1"])[1]
    assert res.effect == pytest.approx(raw.effect, rel=1e-12)
    assert res.extra["scope"].startswith("No reference correction: 1 of the 4 runs with both step kinds have no "
                                         "reference run with probe losses")


def groups_of(steps: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    from clowncar.analysis.cn_steps import _split_runs

    return _split_runs(step_kind_table(steps))


def test_the_reference_is_the_closest_run_on_the_same_stream() -> None:
    mixed, all_n, all_c = np.where(IS_C, "C", "N"), np.full(STEPS, "N"), np.full(STEPS, "C")
    steps = pd.concat([run("target", mixed, 0, 1), run("other_seed", all_n, 0, 2), run("same_seed_3loops", all_c, 0, 3),
                       run("same_seed_2loops_w32", all_n, 0, 4), run("same_all_other_batch", all_n, 0, 5),
                       run("alternating_twin", mixed, 0, 6)])
    trials = pd.DataFrame([trial("target", 1), trial("other_seed", 2), trial("same_seed_3loops", 1, loops=3),
                           trial("same_seed_2loops_w32", 1, width=32), trial("same_all_other_batch", 1, batch=4096),
                           trial("alternating_twin", 1)])
    g = groups_of(steps)
    assert pick_references(g, trials)["target"] == "same_seed_2loops_w32"  # seed, then loops, before width
    no_loops = trials[trials["trial_uid"] != "same_seed_2loops_w32"]
    assert pick_references(g, no_loops)["target"] == "same_seed_3loops"  # an all-C run is a reference too
    only_far = trials[trials["trial_uid"].isin(["target", "other_seed", "same_all_other_batch", "alternating_twin"])]
    assert pick_references(g, only_far)["target"] == "other_seed"
    assert "alternating_twin" not in set(pick_references(g, only_far).values())
    none_left = trials[trials["trial_uid"].isin(["target", "same_all_other_batch", "alternating_twin"])]
    assert pick_references(g, none_left) == {}


def auto_sized(uid: str, crawler_layers: int, width: int, sweep: str = "frug") -> dict[str, object]:
    """A run of a `model_dim: auto` sweep: the config says auto, the result says the width it was built at."""
    return {**trial(uid, 1, loops=3), "model.model_dim": "auto", "model.param_budget": 200000,
            "model.num_crawler_layers": crawler_layers, "model.num_flat_layers": 2, "model_dim": width,
            "sweep": sweep}


def test_an_auto_sized_run_is_corrected_by_its_own_model_not_by_the_first_id_of_another() -> None:
    # walk 5, F5: every width read "auto", the layer count was not compared, and the tie went to the smaller id
    mixed, all_n = np.where(IS_C, "C", "N"), np.full(STEPS, "N")
    steps = pd.concat([run("frug/1", mixed, 0, 1), run("frug/0", all_n, 0, 2), run("frug/3", all_n, 0, 3)])
    trials = pd.DataFrame([auto_sized("frug/1", 2, 64), auto_sized("frug/0", 1, 72), auto_sized("frug/3", 2, 64)])
    assert pick_references(groups_of(steps), trials) == {"frug/1": "frug/3"}
    # no run of its own model: the measured width counts before the layer count (the config says auto for both)
    other = pd.DataFrame([auto_sized("frug/1", 2, 64), {**auto_sized("frug/0", 2, 80), "model.param_budget": 300000},
                          auto_sized("frug/3", 1, 64)])
    assert pick_references(groups_of(steps), other) == {"frug/1": "frug/3"}


def test_between_two_runs_of_its_model_a_run_takes_the_one_of_its_own_sweep() -> None:
    # "frug-rerun/0" sorts before "frug/3" ('-' < '/'): the id alone would pick the other sweep's copy
    mixed, all_n = np.where(IS_C, "C", "N"), np.full(STEPS, "N")
    steps = pd.concat([run("frug/1", mixed, 0, 1), run("frug-rerun/0", all_n, 0, 2), run("frug/3", all_n, 0, 3)])
    trials = pd.DataFrame([auto_sized("frug/1", 2, 64), auto_sized("frug-rerun/0", 2, 64, sweep="frug-rerun"),
                           auto_sized("frug/3", 2, 64)])
    assert pick_references(groups_of(steps), trials) == {"frug/1": "frug/3"}


def test_a_reference_of_another_model_is_named_in_the_table_and_the_scope() -> None:
    mixed, all_n = np.where(IS_C, "C", "N"), np.full(STEPS, "N")
    steps = pd.concat([run("frug/1", mixed, 0, 1), run("frug/2", mixed, 0, 4), run("frug/0", all_n, 0, 2),
                       run("frug/3", all_n, 0, 3)])
    trials = pd.DataFrame([auto_sized("frug/1", 2, 64), auto_sized("frug/2", 1, 72), auto_sized("frug/3", 2, 64),
                           {**auto_sized("frug/0", 3, 56), "train.seed": 2}])
    res, _ = cn_loss_test(steps, trials)
    rows = {row["run"]: (row["reference"], row["same_model"]) for row in res.tables["reference_runs"]}
    assert rows == {"frug/1": ("frug/3", True), "frug/2": ("frug/3", False)}
    assert ("1 of the 2 runs have no reference of their own model at their seed and are corrected by the closest "
            "other one (frug/2; the same_model column of the reference table).") in res.extra["scope"]
    bare = trials.drop(columns=[c for c in trials.columns if c.startswith("model")])  # no model recorded: unknown
    res, _ = cn_loss_test(steps, bare)
    assert {row["same_model"] for row in res.tables["reference_runs"]} == {None}
    assert "their own model" not in res.extra["scope"]


def test_ties_go_to_the_reference_with_most_steps_in_common_then_the_first_id() -> None:
    mixed, all_n = np.where(IS_C, "C", "N"), np.full(STEPS, "N")
    short = run("b_short", all_n, 0, 2).iloc[:60]
    steps = pd.concat([run("target", mixed, 0, 1), short, run("c_full", all_n, 0, 3), run("d_full", all_n, 0, 4)])
    trials = pd.DataFrame([trial(u, 1) for u in ("target", "b_short", "c_full", "d_full")])
    assert pick_references(groups_of(steps), trials) == {"target": "c_full"}


def test_a_run_that_records_no_stream_has_no_reference() -> None:
    steps, trials = sweep()
    assert stream_keys(trials.drop(columns=["train.train_seq_len"])) == {}
    gappy = trials.astype(object)
    gappy.loc[gappy["trial_uid"] == "cad3/s0", "data.dataset"] = None
    assert "cad3/s0" not in stream_keys(gappy) and "cad3/s1" in stream_keys(gappy)
    assert "cad3/s0" not in pick_references(groups_of(steps), gappy)
    assert stream_keys(None) == {} and stream_keys(pd.DataFrame()) == {}
    assert stream_keys(trials.drop(columns=["trial_uid"])) == {}  # no run ids: nothing to pair


def test_runs_that_record_no_stream_pair_once_declared_to_share_one() -> None:
    steps, trials = sweep()
    g = groups_of(steps)
    bare = trials.drop(columns=["data.dataset", "data.train_glob", "train.train_seq_len"])
    assert pick_references(g, bare) == {} and declared_runs(bare) == 0
    assert pick_references(g, declare_one_stream(bare)) == pick_references(g, trials) != {}
    assert declared_runs(declare_one_stream(bare)) == 8 and declared_runs(declare_one_stream(trials)) == 0
    # what a run records still counts: a reference with another batch size is on another stream
    other_batch = bare.assign(**{"train.train_batch_tokens": np.where(bare["trial_uid"].str.startswith("cad0"),
                                                                      4096, 8192)})
    assert pick_references(g, declare_one_stream(other_batch)) == {}
    # a run clowncar ran keeps its own stream: the declaration fills gaps, nothing else
    mixed = pd.concat([trials.iloc[:4], bare.iloc[4:]], ignore_index=True)  # cad3 recorded, cad0 imported
    assert pick_references(g, declare_one_stream(mixed)) == {} and declared_runs(declare_one_stream(mixed)) == 4
    assert stream_keys(declare_one_stream(trials)) == stream_keys(trials)
    one = declare_one_stream(bare).astype(object)
    one.loc[one["trial_uid"] == "cad0/s0", "stream_declared"] = False
    assert "cad0/s0" not in stream_keys(one) and "cad0/s1" in stream_keys(one) and declared_runs(one) == 7


def test_the_corrected_run_keeps_only_the_steps_both_logged() -> None:
    g = {"step": np.array([1.0, 2, 3, 5]), "y": np.array([4.0, 3, 2, 1]), "c": np.array([1.0, 0, 0, 1]),
         "phase": np.array(["a", "a", "b", "b"])}
    ref = {"step": np.array([2.0, 3, 4, 5]), "y": np.array([0.5, 0.25, 9, 0.125]), "c": np.zeros(4),
           "phase": np.array(["a", "a", "b", "b"])}
    out = corrected(g, ref)
    assert out["step"].tolist() == [2, 3, 5] and out["y"].tolist() == [2.5, 1.75, 0.875]
    assert out["c"].tolist() == [0, 0, 1] and out["phase"].tolist() == ["a", "b", "b"]


def test_the_report_family_passes_the_trials_to_find_references() -> None:
    steps, trials = sweep()
    via_family = run_all(trials, steps)["results"][0]
    direct = cn_tests(steps, None, trials)[0]
    assert via_family.key == "1a_cn_loss" and via_family.extra["reference_corrected"]
    assert via_family.effect == pytest.approx(direct.effect, rel=1e-12)


def test_the_texts_and_tables_of_a_corrected_and_an_uncorrected_test_match_the_snapshot(snapshot) -> None:
    steps, trials = sweep(cn=0.02)
    other = trials.copy()
    other.loc[other["trial_uid"] == "cad3/s0", "train.train_batch_tokens"] = 16384
    probe_steps, probes, probe_trials = probed_sweep(per_c=0.005)
    snapshot("reference_snapshot", {"corrected": cn_tests(steps, None, trials),
                                    "one_lacks_a_reference": cn_tests(steps, None, other),
                                    "probes_corrected": cn_tests(probe_steps, probes, probe_trials)})


def legacy_trace(legacy_runs: Path, name: str) -> pd.DataFrame:
    from clowncar.store.importers.cadence_tsv import parse

    trial = parse((legacy_runs / "cadence_tsv" / f"{name}.tsv").read_text(), name, name).trials[0]
    return pd.DataFrame(trial.steps).assign(trial_uid=name).query("step <= 300")


def test_on_the_seeds_own_cadence_traces_the_reference_removes_most_of_the_step_to_step_noise(
        legacy_runs: Path) -> None:
    """The seed's three cadence traces come from one trainer on one stream (the always-fractal and the ortho
    traces even share their first loss, 6.988319: same weights, same batch). Declared so, the always-fractal
    trace is the reference of the two cadence-2 traces, and the noise left around their trends falls about 3x:
    most of what moves a training loss from one step to the next is the batch."""
    names = ["clean_always_fractal", "clean_cadence2", "ortho_cadence2_long"]
    steps = pd.concat([legacy_trace(legacy_runs, n) for n in names], ignore_index=True)
    trials = pd.DataFrame([{**trial(n, seed=1337), "data.dataset": "fineweb10B_sp1024",
                            "train.train_batch_tokens": 786432, "train.train_seq_len": 2048} for n in names])
    _, raw = cn_loss_test(step_kind_table(steps))
    res, fixed = cn_loss_test(step_kind_table(steps), trials)
    assert res.tables["reference_runs"] and {r["reference"] for r in res.tables["reference_runs"]} == {names[0]}
    for n in names[1:]:
        assert fixed[n]["resid"].std() < raw[n]["resid"].std() / 2.5
        assert fixed[n]["ci_high"] - fixed[n]["ci_low"] < 0.75 * (raw[n]["ci_high"] - raw[n]["ci_low"])


# -- runs that share a reference are one unit ---------------------------------------------------------------------

def twin_sweep(runs: int = 4, per_c: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per seed one all-N reference and two cadence-3 runs (2 and 3 loops) that both take it: each corrected run
    carries the same reference noise as its twin."""
    steps, probes, trials = probed_sweep(per_c=per_c, runs=runs)
    mixed = np.where(IS_C, "C", "N")
    steps = pd.concat([steps, *[run(f"loops3/s{i}", mixed, 0.0, seed=90 + i) for i in range(runs)]])
    probes = pd.concat([probes, *[probes_of(f"loops3/s{i}", mixed, per_c, seed=30 + i) for i in range(runs)]])
    trials = pd.concat([trials, pd.DataFrame([trial(f"loops3/s{i}", seed=i, loops=3) for i in range(runs)])])
    return steps.reset_index(drop=True), probes.reset_index(drop=True), trials.reset_index(drop=True)


def per_seed(values: dict[str, float]) -> list[float]:
    """The mean of each seed's runs: the units of the t test."""
    seeds = sorted({r.split("/")[1] for r in values})
    return [float(np.mean([v for r, v in values.items() if r.endswith("/" + s)])) for s in seeds]


def test_runs_that_share_a_reference_are_averaged_into_one_unit_of_the_t_test() -> None:
    from scipy import stats

    steps, _, trials = twin_sweep()
    res, fits = cn_loss_test(step_kind_table(steps), trials)
    assert {r["reference"] for r in res.tables["reference_runs"] if r["run"].startswith("loops3")} == {
        f"cad0/s{i}" for i in range(4)}
    units = per_seed({r: f["coef"] for r, f in fits.items()})
    t = stats.ttest_1samp(units, 0.0)
    assert res.n_runs == 8 and len(units) == 4
    assert (res.effect, res.p_value) == pytest.approx((np.mean(units), t.pvalue), rel=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(t.confidence_interval()), rel=1e-9)
    assert "coefficients, each averaged first over the runs that share a reference run (they share its own " in (
        res.method)
    phase = res.tables["by_phase_across_runs"][0]
    assert phase["runs"] == 8 and phase["units"] == 4
    assert "averaged first" not in cn_loss_test(step_kind_table(steps))[0].method  # uncorrected: runs are units


def test_two_references_for_four_runs_are_too_few_units() -> None:
    steps, probes, trials = twin_sweep(runs=2)
    res = cn_tests(steps, None, trials)[0]
    assert res.status == "not enough data to decide" and res.n_runs == 4
    assert res.verdict.startswith("not enough data to decide: 4 run(s) with both C- and N-steps, sharing 2 "
                                  "reference run(s) (at least 3 needed")
    probe = cn_tests(steps, probes, trials)[1]
    assert probe.status == "not enough data to decide" and probe.n_runs == 4
    assert "4 run(s) where the update effect is identifiable, sharing 2 reference run(s) (at least 3" in probe.verdict
    three = cn_tests(*twin_sweep(runs=3)[::2])[0]  # (steps, trials): three units are enough
    assert three.status != "not enough data to decide" and three.n_runs == 6


def test_the_next_step_tests_average_the_runs_that_share_a_reference_too() -> None:
    from scipy import stats

    steps, probes, trials = twin_sweep(per_c=0.003)
    for with_probes in (probes, None):
        res = cn_tests(steps, with_probes, trials)[1]
        per_run = {r["run"]: r["after_c_minus_after_n"] for r in res.tables["per_run"]}
        units = per_seed(per_run)
        assert len(per_run) == 8 and len(units) == 4, with_probes is None
        assert res.effect == pytest.approx(np.mean(units), rel=1e-9) and res.extra["units"] == 4
        assert res.extra["se_units"] == pytest.approx(np.std(units, ddof=1) / 2, rel=1e-9)
        assert res.p_value >= stats.ttest_1samp(units, 0).pvalue * (1 - 1e-9)  # the shared part only widens
        assert res.method.endswith("(they share its own noise, so together they are one unit of the test)"
                                   + TWO_WAY)
    assert "averaged first" not in cn_tests(steps, probes)[1].method
