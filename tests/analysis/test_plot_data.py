"""The report's figures draw the numbers they claim to: each test captures the figure before it becomes a PNG and
reads back its lines, points, labels and titles. One test checks the PNG itself."""

from __future__ import annotations

import struct

import matplotlib

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from clowncar.analysis import plots


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Figures the plot functions finish, in order, instead of their PNG bytes (which are b"png")."""
    seen: list = []

    def keep(fig) -> bytes:
        seen.append(fig)
        return b"png"

    monkeypatch.setattr(plots, "_png", keep)
    yield seen
    plt.close("all")


def runs_table(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_png_is_a_real_image_of_the_figure_size_and_the_figure_is_closed() -> None:
    fig, ax = plots._figure()
    ax.plot([0, 1], [0, 1])
    data = plots._png(fig)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (640, 400)
    assert plt.fignum_exists(fig.number) is False
    fig, _ = plots._figure(6.4, 2.5)
    assert struct.unpack(">II", plots._png(fig)[16:24]) == (640, 250)


def test_png_size_and_format_do_not_follow_the_users_matplotlibrc() -> None:
    with matplotlib.rc_context({"figure.dpi": 72, "savefig.dpi": "figure", "savefig.format": "svg"}):
        data = plots._png(plots._figure()[0])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (640, 400)


def test_png_closes_the_figure_it_was_given_not_the_current_one() -> None:
    first, _ = plots._figure()
    second, _ = plots._figure()  # the current figure now
    plots._png(first)
    assert not plt.fignum_exists(first.number) and plt.fignum_exists(second.number)
    plt.close(second)


def test_loss_curves_are_the_mean_over_runs_per_config_smoothed_over_2pct(figures: list) -> None:
    steps = pd.DataFrame({
        "trial_uid": ["a"] * 100 + ["b"] * 100 + ["c"] * 50,
        "step": list(range(1, 101)) * 2 + list(range(1, 51)),
        "train_loss": [float(s) for s in range(1, 101)] + [float(s) + 2 for s in range(1, 101)]
        + ["5.0"] * 50,
    })
    runs = runs_table(run_id=["a", "b"], label=["4x2", "4x2"])  # c has no run row: labelled by its uid
    assert plots.loss_curves(steps, runs) == (b"png", "")
    ax = figures[0].axes[0]
    assert legend_texts(ax) == ["4x2 (n=2)", "c (n=1)"]  # no BPB to rank by: by name
    x, y = ax.lines[0].get_data()
    assert list(x) == list(range(1, 101))
    mean = np.arange(1, 101) + 1.0  # mean of the two runs at each step
    window = 2  # 100 steps // 50
    smoothed = pd.Series(mean).rolling(window, min_periods=1).mean().to_numpy()
    assert np.allclose(y, smoothed)
    assert y[0] == 2.0 and y[1] == 2.5  # the first point stands alone; then each is the mean of two
    x, y = ax.lines[1].get_data()
    assert list(y) == [5.0] * 50  # a text loss is read as a number
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "train loss (nats), rolling mean"
    assert ax.get_title() == "Training loss per config (mean over runs)"


def test_a_short_loss_curve_is_not_smoothed_and_bad_values_are_left_out(figures: list) -> None:
    steps = pd.DataFrame({"trial_uid": [7, 7, 7, 7], "step": [1, 2, 3, 4], "train_loss": [3.0, 1.0, "-", 2.0]})
    runs = runs_table(run_id=["7"], label=["cfg"])  # ids are compared as text
    plots.loss_curves(steps, runs)
    ax = figures[0].axes[0]
    assert legend_texts(ax) == ["cfg (n=1)"]
    x, y = ax.lines[0].get_data()
    assert list(x) == [1, 2, 3, 4]
    assert list(y[:2]) == [3.0, 1.0] and np.isnan(y[2]) and y[3] == 2.0  # under 100 steps: no smoothing


def _fifteen_configs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """15 configs of one run each, r00 the worst BPB and r14 the best; steps and evals for every one."""
    uids = [f"r{i:02d}" for i in range(15)]
    runs = runs_table(run_id=uids, label=uids, bpb=[3.0 - 0.1 * i for i in range(15)])
    steps = pd.DataFrame({"trial_uid": [u for u in uids for _ in range(3)], "step": [1, 2, 3] * 15,
                          "train_loss": 1.0})
    return runs, steps, evals_table([(u, s, 1.0) for u in uids for s in (1, 2)])


def test_both_curve_figures_draw_the_same_twelve_best_configs_and_name_the_rest(figures: list) -> None:
    runs, steps, evals = _fifteen_configs()
    caption = "Showing the 12 of 15 configs with the lowest mean BPB; left out: r02, r01, r00."
    assert plots.loss_curves(steps, runs) == (b"png", caption)
    assert plots.eval_curves(evals, runs) == (b"png", caption)
    loss, ev = (f.axes[0] for f in figures)
    assert len(loss.lines) == len(ev.lines) == plots.MAX_CURVES == 12
    assert legend_texts(loss) == [f"r{i:02d} (n=1)" for i in range(14, 2, -1)]  # best first
    assert legend_texts(ev) == [f"r{i:02d}" for i in range(14, 2, -1)]


def test_curves_beyond_the_ten_colours_get_another_line_style(figures: list) -> None:
    runs, steps, evals = _fifteen_configs()
    plots.loss_curves(steps, runs)
    plots.eval_curves(evals, runs)
    for fig in figures:
        looks = [(line.get_color(), line.get_linestyle()) for line in fig.axes[0].lines]
        assert len(set(looks)) == 12  # no two configs drawn alike
        assert [ls for _, ls in looks] == ["-"] * 10 + ["--"] * 2


def test_curves_stay_apart_under_a_matplotlibrc_with_a_short_colour_cycle(figures: list) -> None:
    from cycler import cycler

    runs, steps, _ = _fifteen_configs()
    with matplotlib.rc_context({"axes.prop_cycle": cycler(color=["r", "g", "b", "c", "m", "y"])}):
        plots.loss_curves(steps, runs)
        lines = figures[0].axes[0].lines  # colours resolved as the figure is drawn: under the user's rc
        looks = [(matplotlib.colors.to_hex(line.get_color()), line.get_linestyle()) for line in lines]
    assert len(set(looks)) == 12  # "C6" read the user's 6-colour cycle: curve 6 was drawn as curve 0
    assert looks[0][0] == matplotlib.colors.to_hex("tab:blue")


def test_one_run_far_longer_than_the_others_puts_the_steps_on_a_log_axis(figures: list) -> None:
    runs = runs_table(run_id=["a", "b", "c"], label=["a", "b", "c"], bpb=[1.0, 1.1, 1.2])
    evals = evals_table([("a", 100, 1.5), ("a", 5000, 1.2), ("b", 100, 1.6), ("b", 4000, 1.3), ("c", 100, 1.4),
                         ("c", 330_000, 1.1)])
    plots.eval_curves(evals, runs)
    assert figures[0].axes[0].get_xscale() == "log"
    assert figures[0].axes[0].get_xlabel() == "step (log scale: run lengths differ by over 20x)"
    plots.eval_curves(evals[evals["step"] < 100_000], runs)
    assert (figures[1].axes[0].get_xscale(), figures[1].axes[0].get_xlabel()) == ("linear", "step")


def test_a_long_loss_curve_puts_the_steps_on_a_log_axis_counted_from_each_configs_own_last_step(figures: list) -> None:
    steps = pd.DataFrame({"trial_uid": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "step": [1, 50, 100] * 2 + [1, 10, 5000],
                          "train_loss": 2.0})
    runs = runs_table(run_id=["a", "b", "c"], label=["a", "b", "c"], bpb=[1.0, 1.1, 1.2])
    plots.loss_curves(steps, runs)  # last steps 100, 100, 5000: 50x the median
    ax = figures[0].axes[0]
    assert (ax.get_xscale(), ax.get_xlabel()) == ("log", "step (log scale: run lengths differ by over 20x)")


@pytest.mark.parametrize(("last_steps", "scale"), [
    ((1, 100, 5000), "log"),  # a run that ends at step 1 still has a place on a log axis
    ((0, 100, 5000), "linear"),  # step 0 has none
    ((100, 100, 2000), "linear"),  # exactly 20x is not over 20x
    ((100, 100, 2001), "log"),
])
def test_the_step_axis_is_logarithmic_only_when_one_run_is_over_20x_the_median_length(last_steps, scale) -> None:
    fig, ax = plots._figure()
    plots._step_axis(ax, [float(s) for s in last_steps])
    assert ax.get_xscale() == scale
    plt.close(fig)


def test_a_run_without_a_label_is_ranked_by_its_own_bpb_under_its_id(figures: list) -> None:
    runs = runs_table(run_id=["a", "b"], label=["cfg", None], bpb=[1.5, 1.1])
    evals = evals_table([("a", 100, 1.6), ("a", 200, 1.5), ("b", 100, 1.2), ("b", 200, 1.1)])
    assert plots.curve_selection(runs, pd.Series(["cfg", "b"])) == (["b", "cfg"], "")
    plots.eval_curves(evals, runs)
    assert legend_texts(figures[0].axes[0]) == ["b", "cfg"]  # b's BPB 1.1 ranks it first


def test_no_loss_figure_and_no_caption_when_no_loss_is_a_number(figures: list) -> None:
    steps = pd.DataFrame({"trial_uid": ["a", "a"], "step": [1, 2], "train_loss": ["-", "nan?"]})
    assert plots.loss_curves(steps, runs_table(run_id=["a"], label=["x"])) == (None, "")
    assert figures == []


@pytest.mark.parametrize(("largest", "cap_drawn"), [(8_000_000, True), (7_999_999, False)])
def test_the_cap_line_is_drawn_from_half_the_cap_up(largest: int, cap_drawn: bool, figures: list) -> None:
    plots.pareto(runs_table(bpb=[1.2, 1.3], artifact_bytes=[1_000_000, largest]), [])
    assert ("16,000,000-byte cap" in legend_texts(figures[0].axes[0])) is cap_drawn


@pytest.mark.parametrize("steps", [
    None, pd.DataFrame(), pd.DataFrame({"trial_uid": ["a"], "step": [1]}),
    pd.DataFrame({"trial_uid": ["a"], "train_loss": [1.0]}), pd.DataFrame({"step": [1], "train_loss": [1.0]}),
])
def test_no_loss_figure_without_steps_and_losses(steps, figures: list) -> None:
    assert plots.loss_curves(steps, runs_table(run_id=["a"], label=["x"])) == (None, "")
    assert figures == []


def evals_table(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["trial_uid", "step", "val_bpb"])


def test_eval_curves_are_the_mean_per_step_of_each_config(figures: list) -> None:
    evals = evals_table([("a", 100, 1.5), ("a", 200, 1.3), ("b", 100, 1.7), ("b", 200, 1.1), ("c", 100, 2.0),
                         ("c", 300, 1.9)])
    runs = runs_table(run_id=["a", "b"], label=["cfg", "cfg"], bpb=[1.2, 1.1])
    assert plots.eval_curves(evals, runs) == (b"png", "")
    ax = figures[0].axes[0]
    assert legend_texts(ax) == ["cfg", "c"]  # c has no run row, so no BPB: after the ranked configs
    x, y = ax.lines[0].get_data()
    assert list(x) == [100, 200] and np.allclose(y, [1.6, 1.2])
    assert list(ax.lines[1].get_data()[0]) == [100, 300]
    assert ax.lines[0].get_marker() == "."
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "eval BPB")
    assert ax.get_title() == "Eval BPB per config (mean over runs, no band)"


def test_no_eval_figure_when_no_run_has_two_evals(figures: list) -> None:
    runs = runs_table(run_id=["a"], label=["x"])
    assert plots.eval_curves(evals_table([("a", 100, 1.5), ("b", 100, 1.4)]), runs) == (None, "")
    assert plots.eval_curves(evals_table([]), runs) == (None, "")
    assert figures == []
    assert plots.eval_curves(evals_table([("a", 100, 1.5), ("a", 200, 1.4)]), runs) == (b"png", "")


def test_quant_gap_dots_are_jittered_around_their_loop_count_with_the_mean_marked(figures: list) -> None:
    runs = runs_table(loops=[2, 2, 4, 4, 4, 3], quant_gap=[0.01, 0.03, 0.05, 0.07, None, 0.02],
                      crawl_frac=[0.5, None, 0.25, 0.25, 0.25, 1.0])
    assert plots.quant_gap_vs_loops(runs) == b"png"
    fig = figures[0]
    ax = fig.axes[0]
    points = ax.collections[0].get_offsets()
    assert len(points) == 5  # the run without a gap is left out
    assert np.allclose(points[:, 1], [0.01, 0.03, 0.05, 0.07, 0.02])
    offsets = points[:, 0] - np.array([2, 2, 4, 4, 3])
    assert np.all(np.abs(offsets) <= 0.08) and np.any(offsets != 0)
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, 5)
    assert np.allclose(offsets, jitter)  # the same jitter every time: a report is reproducible
    colours = np.ma.filled(ax.collections[0].get_array(), np.nan)
    assert colours.tolist() == [0.5, 0.0, 0.25, 0.25, 1.0]  # a missing fraction is 0
    x, y = ax.lines[0].get_data()
    assert list(x) == [2, 3, 4] and np.allclose(y, [0.02, 0.02, 0.06])
    assert (ax.lines[0].get_marker(), ax.lines[0].get_linestyle()) == ("_", "None")  # a mark per count, no line
    assert legend_texts(ax) == ["mean per loop count"]
    assert fig.axes[1].get_ylabel() == "C-step fraction (1/cadence)"
    assert ax.get_ylabel() == "quant gap (post - pre BPB)" and ax.get_xlabel() == "crawler loops (jittered)"
    assert ax.get_title() == "Quantization gap vs loops, one dot per run"


def test_no_quant_gap_figure_without_gaps_or_loops(figures: list) -> None:
    assert plots.quant_gap_vs_loops(runs_table(loops=[2], quant_gap=[None], crawl_frac=[1.0])) is None
    assert plots.quant_gap_vs_loops(runs_table(quant_gap=[0.1], crawl_frac=[1.0])) is None
    assert figures == []


def test_pareto_plots_megabytes_and_the_front_as_a_step(figures: list) -> None:
    runs = runs_table(bpb=[1.20, 1.25, 1.18, None], artifact_bytes=[9_100_000, 8_000_000, 15_000_000, 1])
    front = [{"artifact_bytes": 8_000_000, "bpb": 1.25}, {"artifact_bytes": 9_100_000, "bpb": 1.20},
             {"artifact_bytes": 15_000_000, "bpb": 1.18}]
    assert plots.pareto(runs, front) == b"png"
    ax = figures[0].axes[0]
    megabytes = np.array([9_100_000, 8_000_000, 15_000_000]) / 1e6
    assert np.array_equal(ax.collections[0].get_offsets(), np.column_stack([megabytes, [1.20, 1.25, 1.18]]))
    x, y = ax.lines[0].get_data()
    assert np.array_equal(x, megabytes[[1, 0, 2]]) and np.allclose(y, [1.25, 1.20, 1.18])
    assert ax.lines[0].get_drawstyle() == "steps-post"
    assert legend_texts(ax) == ["runs", "Pareto front", "16,000,000-byte cap"]
    assert list(ax.lines[1].get_xdata()) == [16.0, 16.0]  # the challenge's cap, in MB
    assert ax.lines[1].get_linestyle() == "--"  # a limit, not data
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("artifact size (MB)", "BPB")
    assert ax.get_title() == "BPB against artifact bytes"


def test_pareto_without_a_front_shows_only_the_runs(figures: list) -> None:
    assert plots.pareto(runs_table(bpb=[1.2], artifact_bytes=[2_000_000]), []) == b"png"
    ax = figures[0].axes[0]
    assert len(ax.lines) == 0 and legend_texts(ax) == ["runs"]  # 2 MB: no cap line squashing the runs
    assert plots.pareto(runs_table(bpb=[None], artifact_bytes=[2_000_000]), []) is None


def test_bpb_vs_width_needs_two_widths_and_colours_by_unique_layers(figures: list) -> None:
    assert plots.bpb_vs_width(runs_table(bpb=[1.2, 1.3], width=[512, 512], unique_layers=[3, 5])) is None
    assert plots.bpb_vs_width(runs_table(bpb=[None, 1.3], width=[256, 512], unique_layers=[3, 5])) is None
    assert figures == []
    runs = runs_table(bpb=[1.2, 1.3, 1.1], width=[256, 512, 1024], unique_layers=[3, None, 5])
    assert plots.bpb_vs_width(runs) == b"png"
    fig = figures[0]
    ax = fig.axes[0]
    assert np.allclose(ax.collections[0].get_offsets(), [[256, 1.2], [512, 1.3], [1024, 1.1]])
    assert np.ma.filled(ax.collections[0].get_array(), np.nan).tolist() == [3, 0, 5]  # unknown layers: 0
    assert ax.get_xscale() == "log"
    assert fig.axes[1].get_ylabel() == "unique layers"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("model width (log scale)", "BPB")
    assert ax.get_title() == "BPB vs width, one dot per run"


def test_two_widths_are_enough_for_the_width_figure(figures: list) -> None:
    assert plots.bpb_vs_width(runs_table(bpb=[1.2, 1.3], width=[256, 512], unique_layers=[3, 5])) == b"png"


def test_top_configs_show_every_seed_the_mean_and_the_interval(figures: list) -> None:
    top = [
        {"config": "4x2 w640", "mean_bpb": 1.18, "ci_low": 1.17, "ci_high": 1.19,
         "per_seed": [{"bpb": 1.175}, {"bpb": 1.18}, {"bpb": 1.185}]},
        {"config": "3x3 w512", "mean_bpb": 1.20, "ci_low": None, "ci_high": None, "per_seed": [{"bpb": 1.20}]},
    ]
    assert plots.top_config_seeds(top) == b"png"
    fig = figures[0]
    ax = fig.axes[0]
    assert np.allclose(fig.get_size_inches(), [6.4, 2.5])  # 1.2 + 0.35 * 2 is below the 2.5 floor
    dots = [c.get_offsets() for c in ax.collections if c.get_offsets().shape[0] and type(c).__name__ ==
            "PathCollection"]
    assert np.allclose(dots[0], [[1.175, 0], [1.18, 0], [1.185, 0]]) and np.allclose(dots[1], [[1.20, 1]])
    means = [line.get_data() for line in ax.lines]
    assert [(list(x), list(y)) for x, y in means] == [([1.18], [0]), ([1.20], [1])]
    assert {(line.get_marker(), line.get_linestyle()) for line in ax.lines} == {("|", "None")}
    intervals = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    assert len(intervals) == 1 and np.allclose(intervals[0].get_segments()[0], [[1.17, 0], [1.19, 0]])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4x2 w640", "3x3 w512"]
    assert ax.yaxis_inverted()  # the best config on top
    assert ax.get_xlabel() == "BPB (dots: seeds; bar: mean with t 95% CI)"
    assert ax.get_title() == "Top configs with every seed rerun"


def test_a_long_top_list_grows_the_figure(figures: list) -> None:
    top = [{"config": f"c{i}", "mean_bpb": 1.0, "per_seed": [{"bpb": 1.0}]} for i in range(10)]
    plots.top_config_seeds(top)
    assert np.allclose(figures[0].get_size_inches(), [6.4, 1.2 + 0.35 * 10])
    assert plots.top_config_seeds([]) is None
