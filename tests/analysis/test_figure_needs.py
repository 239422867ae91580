"""A figure the runs cannot feed is replaced by one line naming the field it reads and how many runs record it.
Every case is checked beside the plot function itself: the line is written exactly when that function draws
nothing."""

from __future__ import annotations

import pandas as pd

from clowncar.analysis import figure_needs, plots
from clowncar.analysis.document import Doc


def test_the_loss_figure_names_the_step_rows_it_needs() -> None:
    assert plots.loss_curves(pd.DataFrame(), pd.DataFrame())[0] is None
    assert figure_needs.loss_curves(None) == ("needs per-step training losses (step rows with step and train_loss); "
                                              "none of the runs records a step row")
    steps = pd.DataFrame({"trial_uid": ["a", "a"], "step": [1, 2], "kind": ["C", "N"]})
    assert plots.loss_curves(steps, pd.DataFrame({"run_id": ["a"], "label": ["x"]}))[0] is None
    assert figure_needs.loss_curves(steps).endswith("; the 2 step rows have no train_loss")


def test_the_eval_figure_says_whether_runs_have_no_eval_or_only_one() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b"], "label": ["x", "y"]})
    one_each = pd.DataFrame({"trial_uid": ["a", "b"], "step": [40, 40], "val_bpb": [2.1, 2.2]})
    assert plots.eval_curves(one_each, runs)[0] is None
    assert figure_needs.eval_curves(one_each) == (
        "needs 2 or more evals per run during training (eval rows with step and val_bpb; a clowncar sweep writes "
        "them when train.val_every > 0); each of the 2 runs with eval rows has only one")
    assert plots.eval_curves(pd.DataFrame(), runs)[0] is None
    assert figure_needs.eval_curves(pd.DataFrame()).endswith("; none of the runs records an eval row")


def test_the_quant_gap_figure_counts_runs_with_a_gap_and_with_loops() -> None:
    runs = pd.DataFrame({"quant_gap": [0.01, None, None], "loops": [None, 2.0, 3.0], "crawl_frac": 0.5})
    assert plots.quant_gap_vs_loops(runs) is None
    assert figure_needs.quant_gap_vs_loops(runs) == (
        "needs each run's quantization gap (results val_bpb and q_val_bpb, or sliding_val_bpb and q_sliding_val_bpb: "
        "BPB before and after quantization) and its loop count (model.crawler_loops); of the 3 runs, 1 records a gap "
        "and 2 a loop count, none both")
    assert figure_needs.quant_gap_vs_loops(runs.drop(columns="quant_gap")).endswith(
        "of the 3 runs, 0 record a gap and 2 a loop count")


def test_the_width_figure_names_model_dim_and_the_one_width_the_runs_share() -> None:
    runs = pd.DataFrame({"bpb": [2.1, 2.2, None], "width": [64.0, 64.0, 128.0], "unique_layers": 3})
    assert plots.bpb_vs_width(runs) is None
    assert figure_needs.bpb_vs_width(runs) == (
        "needs BPB at 2 or more model widths (result model_dim, or config model.model_dim when it is not auto); "
        "the 2 runs with both record one width (64)")
    auto = runs.assign(width=float("nan"))
    assert plots.bpb_vs_width(auto) is None
    assert figure_needs.bpb_vs_width(auto).endswith("; none of the 2 runs with a BPB records its width")


def test_the_loss_figure_lists_every_column_its_step_rows_lack() -> None:
    steps = pd.DataFrame({"trial_uid": ["a", "a"], "kind": ["C", "N"]})
    assert plots.loss_curves(steps, pd.DataFrame({"run_id": ["a"], "label": ["x"]}))[0] is None
    assert figure_needs.loss_curves(steps).endswith("; the 2 step rows have no step, train_loss")


def test_the_width_figure_of_a_single_run_speaks_of_one_run() -> None:
    no_width = pd.DataFrame({"bpb": [2.1], "width": [float("nan")], "unique_layers": 3})
    assert plots.bpb_vs_width(no_width) is None
    assert figure_needs.bpb_vs_width(no_width).endswith("; none of the 1 run with a BPB records its width")
    one = pd.DataFrame({"bpb": [2.1, None], "width": [96.0, 128.0], "unique_layers": 3})
    assert plots.bpb_vs_width(one) is None
    assert figure_needs.bpb_vs_width(one).endswith("; the 1 run with both records one width (96)")


def test_the_pareto_figure_counts_runs_with_artifact_bytes_and_with_a_bpb() -> None:
    apart = pd.DataFrame({"bpb": [2.1, None], "artifact_bytes": [None, 15_000_000.0]})
    assert plots.pareto(apart, []) is None
    assert figure_needs.pareto(apart).endswith("of the 2 runs, 1 records artifact_bytes and 1 a BPB, none both")


def test_the_top_configs_figure_names_the_metric_no_run_records() -> None:
    assert plots.top_config_seeds([]) is None
    assert figure_needs.top_config_seeds([]) == "needs runs that record the report's metric (BPB); none does"


def test_the_pareto_figure_names_artifact_bytes() -> None:
    runs = pd.DataFrame({"bpb": [2.1, 2.2], "artifact_bytes": [None, None]})
    assert plots.pareto(runs, []) is None
    assert figure_needs.pareto(runs) == (
        "needs each run's artifact_bytes (the size of its saved, compressed model) beside its BPB; of the 2 runs, "
        "0 record artifact_bytes and 2 a BPB")


def test_a_figure_without_data_is_one_line_with_what_it_lacks_or_the_plain_words_without() -> None:
    d = Doc()
    d.image(None, "BPB vs width", "needs model_dim")
    d.image(None, "loss")
    d.image(b"png", "drawn", "never shown")
    assert d.markdown().split("\n") == ["(BPB vs width: no figure: needs model_dim)", "",
                                         "(loss: no data for this figure)", "",
                                         "*Figure: drawn (embedded in report.html)*", ""]
