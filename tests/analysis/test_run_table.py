"""The run table derives every quantity the signal tests use (width, unique layers, loops, cadence, C-fraction,
sharing, the primary metric and the quantization gap) from whatever a run recorded; these tests pin each rule
on hand-made trials, including the gaps of legacy imports."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from clowncar.analysis.frames import (
    RUN_COLUMNS,
    choose_metric,
    complete_rows,
    missing,
    phase_bins,
    run_table,
    start_units,
    step_kind_table,
    units_of,
)


def one(**cols) -> pd.Series:
    """The run table's row of a single trial with these columns."""
    return run_table(pd.DataFrame([cols])).iloc[0]


CRAWLER = {"trial_uid": "t", "model.arch": "crawler", "model.num_flat_layers": 4, "model.num_crawler_layers": 1,
           "model.crawler_loops": 4, "model.model_dim": 512, "train.cadence": 2, "q_val_bpb": 1.2}


def test_a_crawler_run_gets_its_layout_cadence_and_label() -> None:
    r = one(**CRAWLER)
    assert (r["arch"], r["width"], r["unique_layers"], r["loops"], r["cadence"], r["crawl_frac"], r["shared"]) == \
        ("crawler", 512.0, 5.0, 4.0, 2.0, 0.5, 1.0)
    assert r["label"] == "4f+1cx4 cad2 d512" and r["bpb"] == 1.2


def test_a_gpt_run_has_its_layer_count_one_loop_and_no_crawling() -> None:
    r = one(trial_uid="g", **{"model.arch": "gpt", "model.num_layers": 9, "model.model_dim": 512,
                              "model.num_flat_layers": 4, "model.num_crawler_layers": 1, "model.crawler_loops": 3,
                              "train.cadence": 2, "model.mlp_mult": 3, "val_bpb": 1.3})
    assert (r["unique_layers"], r["loops"], r["cadence"], r["crawl_frac"], r["shared"]) == (9.0, 1.0, 0.0, 0.0, 0.0)
    assert r["label"] == "9L mlp3 d512"


def test_a_stack_without_flat_blocks_is_labelled_with_the_crawlers_mlp_width() -> None:
    fractal = {**CRAWLER, "model.num_flat_layers": 0, "model.num_crawler_layers": 5, "model.crawler_loops": 2}
    # canonical configs keep the moot flat width at its default: the label must not show it
    assert one(**fractal, **{"model.mlp_mult": 2.0, "model.crawler_mlp_mult": 3.0})["label"] == "0f+5cx2 cad2 mlp3 d512"
    imported = {k: v for k, v in fractal.items() if k != "model.num_flat_layers"}  # a CSV row: no flat count
    assert one(**imported, **{"model.crawler_mlp_mult": 4.0})["label"] == "5x2 cad2 mlp4 d512"
    assert one(**CRAWLER, **{"model.mlp_mult": 2.0, "model.crawler_mlp_mult": 3.0})["label"] == "4f+1cx4 cad2 mlp2 d512"


def test_the_recorded_width_wins_over_the_config_and_auto_is_no_width() -> None:
    assert one(**CRAWLER, model_dim=640)["width"] == 640.0
    assert one(**CRAWLER, model_dim=0)["width"] == 512.0  # 0 = not measured: the config's width
    assert math.isnan(one(**{**CRAWLER, "model.model_dim": "auto"})["width"])
    assert math.isnan(one(**{**CRAWLER, "model.model_dim": 0})["width"])


def test_layers_fall_back_to_num_layers_without_a_crawler_count() -> None:
    r = one(trial_uid="x", **{"model.num_layers": 7, "model.crawler_loops": 2})
    assert (r["arch"], r["unique_layers"], r["loops"]) == ("crawler", 7.0, 2.0)
    assert r["label"] == "7x2"
    r = one(trial_uid="y", **{"model.num_crawler_layers": 2, "model.crawler_loops": 2})  # no flat count: 0 flat
    assert r["unique_layers"] == 2.0


@pytest.mark.parametrize(("crawl", "loops"), [(0, 3), (2, 0)])
def test_a_flat_control_without_a_crawler_block_runs_every_layer_once(crawl: int, loops: int) -> None:
    r = one(**{**CRAWLER, "model.num_crawler_layers": crawl, "model.crawler_loops": loops})
    assert r["loops"] == 1.0 and r["shared"] == 0.0


@pytest.mark.parametrize(("steps", "c_steps", "cadence", "frac"), [
    (1000, 250, 4.0, 0.25),  # legacy split: cadence recovered from steps / C-steps
    (1000, 333, 3.0, 0.333),  # rounded
    (1000, 0, 0.0, 0.0),  # never crawled
    (0, 5, math.nan, math.nan),  # no steps: nothing to divide
])
def test_cadence_and_c_fraction_come_from_the_c_n_split_when_no_cadence_is_recorded(
        steps: int, c_steps: int, cadence: float, frac: float) -> None:
    cfg = {k: v for k, v in CRAWLER.items() if k != "train.cadence"}
    r = one(**cfg, steps=steps, c_steps=c_steps)
    assert r["cadence"] == pytest.approx(cadence, nan_ok=True)
    assert r["crawl_frac"] == pytest.approx(frac, nan_ok=True)


def test_the_measured_c_fraction_wins_over_the_cadence() -> None:
    assert one(**CRAWLER, steps=999, c_steps=333)["crawl_frac"] == pytest.approx(1 / 3)
    assert one(**CRAWLER)["crawl_frac"] == 0.5  # cadence 2, no split recorded
    assert one(**{**CRAWLER, "train.cadence": 0})["crawl_frac"] == 0.0
    r = one(**{k: v for k, v in CRAWLER.items() if k != "train.cadence"})
    assert math.isnan(r["cadence"]) and math.isnan(r["crawl_frac"])


def test_sharing_means_a_block_that_loops_and_is_sometimes_fired() -> None:
    assert one(**CRAWLER)["shared"] == 1.0
    assert one(**{**CRAWLER, "train.cadence": 0})["shared"] == 0.0  # loops never fire
    assert one(**{**CRAWLER, "model.crawler_loops": 1})["shared"] == 0.0
    no_cadence = {k: v for k, v in CRAWLER.items() if k != "train.cadence"}
    assert one(**no_cadence)["shared"] == 1.0  # an unknown C-fraction counts as fired
    assert math.isnan(one(trial_uid="u", val_bpb=1.0)["shared"])


def test_parameters_fall_back_to_the_budget() -> None:
    assert one(**CRAWLER, params=123.0)["params"] == 123.0
    assert one(**CRAWLER, params=0, **{"model.param_budget": 9e6})["params"] == 9e6
    assert math.isnan(one(**CRAWLER, **{"model.param_budget": 0})["params"])


@pytest.mark.parametrize(("columns", "metric"), [
    ({"val_bpb": [1, 1, 1], "q_val_bpb": [1, 1, None]}, "val_bpb"),  # most values wins
    ({"val_bpb": [1, 1, 1], "q_val_bpb": [1, 1, 1]}, "q_val_bpb"),  # a tie goes to post-quantization
    ({"sliding_val_bpb": [1, 1], "q_sliding_val_bpb": [1, 1], "q_val_bpb": [1, 1]}, "q_sliding_val_bpb"),
    ({"val_bpb": ["x", "y"], "sliding_val_bpb": [1, None]}, "sliding_val_bpb"),  # text is no value
    ({"val_bpb": [None, None]}, None),
])
def test_the_primary_metric_is_the_most_recorded_then_the_earliest_listed(columns, metric) -> None:
    assert choose_metric(pd.DataFrame(columns)) == metric


def test_only_finished_runs_are_kept() -> None:
    trials = pd.DataFrame({"trial_uid": list("abcdef"), "val_bpb": 1.0,
                           "status": ["OK", "completed", "imported", None, "failed", "diverged"]})
    assert run_table(trials)["run_id"].tolist() == ["a", "b", "c", "d"]


def test_run_ids_and_seeds_come_from_the_first_column_present() -> None:
    t = run_table(pd.DataFrame({"run_id": ["r"], "uid": ["u"], "seed": [1], "train.seed": [7], "val_bpb": [1.0]}))
    assert t["run_id"].tolist() == ["r"] and t["seed"].tolist() == [7.0]
    t = run_table(pd.DataFrame({"val_bpb": [1.0, 2.0]}))
    assert t["run_id"].tolist() == ["run0", "run1"] and t["label"].tolist() == ["run0", "run1"]


def test_the_quantization_gap_is_stored_or_post_minus_pre_in_one_eval_mode() -> None:
    trials = pd.DataFrame({"trial_uid": list("abc"), "val_bpb": [1.20, 1.30, None], "q_val_bpb": [1.25, 1.32, 1.4],
                           "quant_gap": [0.07, None, None], "sliding_val_bpb": [1.1, 1.2, 1.3],
                           "q_sliding_val_bpb": [1.15, 1.21, 1.33]})
    t = run_table(trials)
    assert t.attrs["gap_mode"] == "standard"
    assert t["quant_gap"].tolist()[:2] == pytest.approx([0.07, 0.02])  # the stored gap is the worker's own
    assert math.isnan(t["quant_gap"][2]) and math.isnan(t["post_bpb"][2])  # never a sliding gap beside standard
    assert t["pre_bpb"].tolist()[:2] == [1.20, 1.30] and t["post_bpb"].tolist()[:2] == [1.25, 1.32]
    sliding = run_table(trials.drop(columns=["val_bpb", "quant_gap"]))
    assert sliding.attrs["gap_mode"] == "sliding"
    assert sliding["quant_gap"].tolist() == pytest.approx([0.05, 0.01, 0.03])


def test_a_table_with_no_quantization_gap_in_either_eval_mode_has_no_gap_mode() -> None:
    """No run has a standard or a sliding pair: there is no gap, so no mode to name (not 'sliding')."""
    t = run_table(pd.DataFrame({"trial_uid": ["a", "b"], "val_bpb": [1.2, 1.3], "q_sliding_val_bpb": [1.1, None]}))
    assert t["quant_gap"].isna().all() and t.attrs["gap_mode"] is None
    assert run_table(pd.DataFrame({"val_bpb": [1.2]})).attrs["gap_mode"] is None


def test_seed_reruns_share_a_config_key_and_any_other_difference_splits_it() -> None:
    base = {**CRAWLER, "train.seed": 1}
    t = run_table(pd.DataFrame([base, {**base, "train.seed": 2}, {**base, "model.crawler_loops": 3},
                                {**base, "label": "trigram"}, {**base, "quant.bits": None},
                                {**base, "quant.bits": 6}]))
    keys = t["config_key"].tolist()
    assert keys[0] == keys[1] == keys[4] and len({keys[0], keys[2], keys[3], keys[5]}) == 4
    assert t["label"].tolist()[3] == "trigram"  # an importer's label names what the config does not
    # no config value recorded (two empty configs hash alike): each run is its own config, nobody's seed rerun
    bare = pd.DataFrame({"config_hash": ["h", "h", "h"], "trial_uid": ["a", "b", "c"], "train.seed": [1, 2, None]})
    assert run_table(bare)["config_key"].tolist() == ["a", "b", "c"]
    assert run_table(bare)["config_hash"].tolist() == ["h", "h", "h"]  # kept for the report's provenance
    assert run_table(bare.drop(columns="train.seed"))["config_key"].tolist() == ["a", "b", "c"]
    legacy = pd.DataFrame({"legacy.lr": [0.002, 0.002, 0.004], "trial_uid": ["a", "b", "c"]})
    keys = run_table(legacy)["config_key"].tolist()  # a value with no clowncar key still tells configs apart
    assert keys[0] == keys[1] != keys[2] and keys[0] != "a"


def test_runs_of_one_seed_model_and_batch_shape_share_a_start_whatever_they_train_with() -> None:
    base = {**CRAWLER, "train.seed": 1, "data.dataset": "fineweb", "train.train_batch_tokens": 4096}
    siblings = [base, {**base, "train.cadence": 4}, {**base, "train.matrix_lr": 0.01}, {**base, "quant.bits": 6}]
    apart = [{**base, "train.seed": 2}, {**base, "model.model_dim": 256}, {**base, "data.dataset": "other"},
             {**base, "train.train_batch_tokens": 8192}, {**base, "label": "trigram"}]
    keys = run_table(pd.DataFrame(siblings + apart))["start_key"].tolist()
    assert len(set(keys[:4])) == 1  # same weights at step 0, same batches: only the training settings differ
    assert len(set(keys[3:])) == 6  # the seed, the model, the data, the batch shape, an importer's label
    # no seed, or no model recorded: nothing says two runs started alike, so each is its own start
    unknown = pd.DataFrame([{**CRAWLER, "trial_uid": "a"}, {**CRAWLER, "trial_uid": "b"},
                            {"trial_uid": "c", "train.seed": 1, "train.cadence": 2},
                            {"trial_uid": "d", "train.seed": 1, "train.cadence": 4}])
    assert run_table(unknown)["start_key"].tolist() == ["run:a", "run:b", "run:c", "run:d"]


def test_runs_imported_from_different_folders_are_never_one_config_or_one_start() -> None:
    """Two records whose logs the importer reads alike (same layers, width, seed numbers) are two configs: the
    dozens of settings it does not read differ between them. The seeds of one record (one folder, a sweep per log
    file) stay one config; runs clowncar ran keep pooling across sweeps (a seed rerun sweep of a config)."""
    base = {**CRAWLER, "status": "ok"}
    a2, qk5 = "/records/track_10min_16mb/2026-04-09_A2", "/records/track_10min_16mb/2026-04-01_QK5"
    rows = [{**base, "trial_uid": uid, "sweep": sweep, "source": source, "train.seed": seed,
             "provenance.imported_from": path}
            for uid, sweep, source, seed, path in [
                ("a1", "A2.train_seed42", "import", 42, f"{a2}/train_seed42.log"),
                ("a2", "A2.train_seed0", "import", 0, f"{a2}/train_seed0.log"),
                ("b1", "QK5.train_seed42", "import", 42, f"{qk5}/train_seed42.log"),
                ("c1", "old", "import", 42, None), ("r1", "mine", "run", 42, None),
                ("r2", "mine-rerun", "run", 42, None), ("r3", "mine-rerun", "run", 7, None)]]
    t = run_table(pd.DataFrame(rows)).set_index("run_id")
    config, start = t["config_key"], t["start_key"]
    assert config["a1"] == config["a2"] != config["b1"]  # the record's own seeds pool; the other record does not
    assert start["a1"] != start["b1"]  # seed 42 of two records: two starts, not one averaged unit
    assert len({config["a1"], config["b1"], config["c1"], config["r1"]}) == 4  # no file recorded: its sweep
    assert config["r1"] == config["r2"] == config["r3"] and start["r1"] == start["r2"] != start["r3"]


def test_start_units_average_the_values_of_a_start_and_keep_apart_what_a_test_compares() -> None:
    runs = pd.DataFrame({"run_id": list("abcdefg"), "start_key": ["s", "s", "s", "t", None, None, "t"],
                         "shared": [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, np.nan], "bpb": [2.0, 2.2, 3.0, 4.0, 5.0, 6.0, 7.0],
                         "seed": [7] * 7}, index=range(10, 17))  # a filtered table keeps its rows' labels
    units = start_units(runs, ["shared"], ["bpb"])
    assert units[["run_id", "bpb", "unit_runs"]].to_dict("list") == {
        "run_id": list("acdefg"), "bpb": [2.1, 3.0, 4.0, 5.0, 6.0, 7.0],
        "unit_runs": [2, 1, 1, 1, 1, 1]}  # no start key: a run of its own; a missing value of `by`: kept apart
    assert units["shared"].tolist()[:5] == [1.0, 0.0, 1.0, 1.0, 1.0] and np.isnan(units["shared"].iloc[5])
    assert start_units(runs.drop(columns="start_key"), [], ["bpb"])["unit_runs"].tolist() == [1] * 7
    empty = start_units(runs.iloc[0:0], ["shared"], ["bpb"])
    assert empty.empty and empty["unit_runs"].dtype.kind == "i"
    assert (units_of(3, 3), units_of(2, 5)) == ("3 run(s)", "2 unit(s) from 5 runs")


def test_an_empty_trials_frame_gives_the_columns_and_no_rows() -> None:
    t = run_table(pd.DataFrame())
    assert tuple(t.columns) == RUN_COLUMNS and len(t) == 0
    assert t["bpb"].dtype == float and t["label"].dtype == object


def test_step_kinds_are_upper_cased_f_counts_as_c_and_unusable_rows_go() -> None:
    steps = pd.DataFrame({"trial_uid": [2, 1, 1, 1, 1, 1], "step": [1, 3, 1, 2, "x", 4],
                          "kind": ["n", "F", "c", "warmup", "N", "N"], "train_loss": [1, 2, 3, 4, 5, None]})
    s = step_kind_table(steps)
    assert s[["trial_uid", "step", "kind", "is_c"]].values.tolist() == [
        ["1", 1.0, "C", 1.0], ["1", 3.0, "C", 1.0], ["2", 1.0, "N", 0.0]]
    assert "index" not in s.columns and list(s.index) == [0, 1, 2]
    assert step_kind_table(None).empty
    empty = step_kind_table(pd.DataFrame({"step": [1]}))  # no kind or loss column: no usable row
    assert empty.empty and set(empty.columns) == {"trial_uid", "step", "kind", "train_loss", "is_c"}


def test_phases_are_the_logged_ones_else_thirds_of_the_run() -> None:
    s = pd.DataFrame({"trial_uid": ["a"] * 6 + ["b"] * 3, "step": [1, 2, 3, 4, 5, 6, 10, 20, 30]})
    assert phase_bins(s).tolist() == ["early", "early", "middle", "middle", "late", "late", "early", "middle", "late"]
    logged = s.assign(phase=["warmup", None, "main", "main", "warmdown", "warmdown", np.nan, "main", "main"])
    assert phase_bins(logged).tolist() == ["warmup", "unknown", "main", "main", "warmdown", "warmdown", "unknown",
                                           "main", "main"]


def test_complete_rows_keep_runs_with_every_column_and_add_a_column_no_run_has() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "bpb": [1.0, None, 2.0], "loops": [1.0, 2.0, None]})
    assert complete_rows(runs, ["bpb", "loops"])["run_id"].tolist() == ["a"]
    none = complete_rows(runs, ["bpb", "width"])
    assert none.empty and list(none.columns) == ["run_id", "bpb", "loops", "width"]


def _records(t: pd.DataFrame) -> list[dict]:
    rows = t.astype(object).where(t.notna(), None).to_dict("records")
    return [{"attrs": {k: t.attrs[k] for k in sorted(t.attrs)}, "columns": list(t.columns)}, *rows]


def test_the_run_tables_of_varied_trials_match_the_snapshot(snapshot) -> None:
    """Every column and attribute of the run table, for trials that reach each rule's edges (a width, C-step
    count, step count, cadence or parameter count of exactly 1; every fallback column; a run imported from a
    record's folder), so a mutant that changes any value, label, key or passthrough column shows."""
    failed = {"trial_uid": "failed", "status": "failed", "val_bpb": 9.9}  # filtered out first: index from 1
    edge = {"trial_uid": "edge", "sweep": "s1", "model_dim": 1, "model.model_dim": 2, "model.num_flat_layers": 1,
            "model.num_crawler_layers": 1, "model.crawler_loops": 2, "steps": 1, "c_steps": 1, "params": 1,
            "model.param_budget": 2, "artifact_bytes": 123456, "git_commit": "abc", "val_bpb": 1.5,
            "q_val_bpb": 1.52, "train.seed": 3, "train.cadence": 2, "status": "ok"}
    fallback = {"trial_uid": "fallback", "sweep_name": "s2", "model.model_dim": 1, "model.num_layers": 6,
                "model.crawler_loops": 3, "steps": 10, "c_steps": 1, "model.param_budget": 1, "seed": 7,
                "provenance.git_commit": "def", "val_bpb": 1.7, "q_val_bpb": 1.75, "label": ""}
    split = {"trial_uid": "split", "model.arch": "crawler", "model.num_flat_layers": 3,
             "model.num_crawler_layers": 1, "model.crawler_loops": 2, "steps": 1, "c_steps": 0, "q_val_bpb": 1.6,
             "label": "trigram on", "model.mlp_mult": 2.5}
    crawler = run_table(pd.DataFrame([failed, edge, fallback, split, {**CRAWLER, "train.cadence": 1, "seed": 9},
                                      {**CRAWLER, "trial_uid": "u", "model.crawler_loops": 1, "steps": 4,
                                       "c_steps": 2},
                                      {**CRAWLER, "trial_uid": "imported", "source": "import", "sweep": "r.seed1",
                                       "train.seed": 1, "provenance.imported_from": "/records/r/seed1.log"}]))
    sliding = run_table(pd.DataFrame([{"uid": "a", "sliding_val_bpb": 1.1, "q_sliding_val_bpb": 1.15,
                                       "sweep_name": "s3", "provenance.git_commit": "p1"},
                                      {"uid": "b", "sliding_val_bpb": 1.2, "q_sliding_val_bpb": None}]))
    gpt = run_table(pd.DataFrame([{"run_id": "g", "model.arch": "gpt", "model.num_layers": 9, "model_dim": 512,
                                   "val_bpb": 1.3, "steps": 8, "c_steps": 4}]))
    snapshot("run_table_snapshot", {"crawler": _records(crawler), "sliding": _records(sliding), "gpt": _records(gpt),
                                    "empty": _records(run_table(pd.DataFrame()))})


@pytest.mark.parametrize(("cols", "label"), [
    ({"model_dim": 512}, "?L d512"),  # only a width
    ({"model.num_layers": 9}, "9L"),  # only a layer count
    ({"model.crawler_loops": 2}, "?x2"),  # only loops: a crawler
    ({"model.arch": "crawler", "model.num_flat_layers": 4, "model.num_crawler_layers": 1}, "4f+1cx?"),
    ({"model.arch": "mamba", "model.num_layers": 6, "model.crawler_loops": 2}, "6x2"),
    ({"model.num_flat_layers": 4, "model.num_layers": 6, "model.crawler_loops": 2}, "6x2"),  # no crawler count
    ({"val_bpb": 1.0}, "t"),  # nothing of the layout: the run id
])
def test_a_label_says_what_a_run_records_and_question_marks_the_rest(cols: dict, label: str) -> None:
    assert one(trial_uid="t", **cols)["label"] == label


def test_config_keys_see_every_config_section_and_values_json_cannot_write() -> None:
    base = {**CRAWLER, "data.variant": "sp1024", "eval.stride": 64}
    rows = [base, {**base, "data.variant": "sp4096"}, {**base, "eval.stride": 0},
            {**base, "model.schedule": [1, 2]}, {**base, "model.schedule": [1, 3]}]
    t = run_table(pd.DataFrame(rows))
    assert len(set(t["config_key"])) == 5
    odd = pd.DataFrame([base, base]).assign(**{"model.extra": pd.Series([np.int64(3), np.int64(4)], dtype=object)})
    keys = run_table(odd)["config_key"]  # numpy ints are not JSON: written as text, still told apart
    assert keys[0] != keys[1]


def test_missing_names_the_columns_no_run_records() -> None:
    runs = pd.DataFrame({"a": [1.0, None], "b": [None, None]})
    assert missing(runs, ["a", "b", "c"]) == " (not recorded for any run: b, c)"
    assert missing(runs, ["a"]) == ""
    assert missing(runs.iloc[0:0], ["b"]) == ""  # no runs at all: nothing to single out


def test_complete_rows_of_exactly_the_frames_columns_keep_its_rows() -> None:
    runs = pd.DataFrame({"bpb": [1.0, None], "loops": [None, 2.0]})
    assert complete_rows(runs[["bpb"]], ["bpb"])["bpb"].tolist() == [1.0]
    assert complete_rows(runs, ["bpb"])["bpb"].tolist() == [1.0]  # a gap in another column does not matter


def test_step_losses_given_as_text_are_read_as_numbers() -> None:
    s = step_kind_table(pd.DataFrame({"trial_uid": ["a", "a"], "step": [1, 2], "kind": ["C", "N"],
                                      "train_loss": ["2.5", "3"]}))
    assert s["train_loss"].tolist() == [2.5, 3.0] and s["is_c"].dtype == float


def test_start_keys_write_values_json_cannot_as_text_and_still_tell_them_apart() -> None:
    base = {**CRAWLER, "train.seed": 1}
    odd = pd.DataFrame([base, base]).assign(**{"model.extra": pd.Series([np.int64(3), np.int64(4)], dtype=object)})
    keys = run_table(odd)["start_key"]  # numpy ints are not JSON: written as text, not a failed table
    assert keys[0] != keys[1] and not keys[0].startswith("run:")


def test_the_run_table_carries_each_runs_dirty_checkout_and_warm_down_start_from_either_name() -> None:
    worker = pd.DataFrame([{**CRAWLER, "trial_uid": "a", "git_dirty": True, "warmdown_start_step": "21",
                            "warmdown_set_by": "wallclock"},
                           {**CRAWLER, "trial_uid": "b", "git_dirty": False, "warmdown_start_step": 26,
                            "warmdown_set_by": "iterations"}])
    t = run_table(worker)
    assert t["git_dirty"].dtype == object and [v is True for v in t["git_dirty"]] == [True, False]
    assert t["warmdown_step"].tolist() == [21.0, 26.0] and t["warmdown_by"].tolist() == ["wallclock", "iterations"]
    stored = worker.drop(columns=["git_dirty"]).assign(**{"provenance.git_dirty": [False, True]})
    assert run_table(stored)["git_dirty"].tolist() == [False, True]  # the store's provenance column
    assert run_table(worker.assign(**{"provenance.git_dirty": False}))["git_dirty"].tolist() == [True, False]


def test_imported_runs_without_a_file_are_keyed_by_their_sweep() -> None:
    """Two logs imported alike from different sweeps, neither recording its file: two configs and two starts."""
    rows = [{**CRAWLER, "trial_uid": uid, "sweep": sweep, "source": "import", "train.seed": 1}
            for uid, sweep in [("a", "old"), ("b", "older"), ("c", "old")]]
    t = run_table(pd.DataFrame(rows))
    assert t["config_key"][0] == t["config_key"][2] != t["config_key"][1]
    assert t["start_key"][0] == t["start_key"][2] != t["start_key"][1]


def test_a_cadence_no_run_records_stays_a_float_nan_beside_one_recovered_from_the_c_n_split() -> None:
    t = run_table(pd.DataFrame({"trial_uid": ["a", "b", "c"], "model.crawler_loops": 2, "steps": 10,
                                "c_steps": [None, 5, 0]}))
    assert t["cadence"].dtype == float and math.isnan(t["cadence"][0]) and t["cadence"].tolist()[1:] == [2.0, 0.0]


def test_runs_without_an_id_column_keep_their_own_values_after_a_failed_run_is_dropped() -> None:
    t = run_table(pd.DataFrame({"status": ["failed", "ok"], "sweep": ["x", "y"], "val_bpb": [1.0, 2.0]}))
    assert t[["run_id", "sweep", "bpb"]].to_dict("list") == {"run_id": ["run0"], "sweep": ["y"], "bpb": [2.0]}
