"""How the report reads, line by line: number formatting, the Markdown and HTML renderings of one document, a
test's result line in each of its cases, the summary table, a test's section, the printed summary and the whole
Markdown report of a small analysis. Every number a reader sees passes through these functions; the values here
are written out by hand (the inputs are tests/analysis/conftest.py's report_inputs)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from clowncar.analysis import report
from clowncar.analysis.document import Doc, fmt


@pytest.mark.parametrize(("value", "digits", "text"), [
    (None, 4, ""), (True, 4, "yes"), (False, 4, "no"), (float("nan"), 4, ""), (float("inf"), 4, ""),
    (-float("inf"), 4, ""), (1.23456789, 4, "1.2346"), (1.23456789, 3, "1.235"), (0.000012345, 4, "1.234e-05"),
    (0.98765, 4, "0.9877"), (-0.0123456, 3, "-0.0123"), (-2.30000001, 4, "-2.3000"), (1.12707468, 4, "1.1271"), (2.00001, 4, "2.0000"),
    (15534645.0, 4, "15534645"), (-3.0, 4, "-3"), (1234567.25, 4, "1234567.2500"), (2.0**53, 4, "9007199254740992"),
    (7, 4, "7"), ("a|b", 4, "a|b"), ({"x": 0.123456, "y": None}, 4, "x: 0.1235, y: "),
    ([1.0, 2.5], 4, "1, 2.5000"), (list(range(12)), 4, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"),
    (list(range(13)), 4, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 ..."), ([0.1234567, True], 2, "0.1235, yes"),
])
def test_fmt_writes_each_kind_of_value(value: object, digits: int, text: str) -> None:
    assert fmt(value, digits) == text


def test_markdown_rendering_of_every_block(report_inputs: SimpleNamespace) -> None:
    assert report_inputs.doc().markdown() == "\n".join([
        "# Title <1>", "", "### Sub", "", "plain & simple", "", "bold", "", "- one", "- two <b>", "",
        "| a | b | c |", "|---|---|---|", "| 1 | x/y |  |", "|  |  |  |", "",
        "| n |", "|---|", "| 0 |", "| 1 |", "| 2 |", "\n(2 more rows in report.json)", "",
        "(loss: no data for this figure)", "", "*Figure: eval <curves> (embedded in report.html)*", ""])


def test_html_rendering_escapes_text_and_embeds_images(report_inputs: SimpleNamespace) -> None:
    from clowncar.analysis.document import CSS

    head, body = report_inputs.doc().html("R & D").split("</style></head><body>\n")
    assert head == f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>R &amp; D</title><style>{CSS}'
    assert body.split("\n") == [
        "<h1>Title &lt;1&gt;</h1>", "<h3>Sub</h3>", "<p>plain &amp; simple</p>", '<p class="verdict">bold</p>',
        "<ul><li>one</li><li>two &lt;b&gt;</li></ul>",
        '<div class="wide"><table><thead><tr><th>a</th><th>b</th><th>c</th></tr></thead><tbody><tr><td>1</td>'
        "<td>x|y</td><td></td></tr><tr><td></td><td></td><td></td></tr></tbody></table></div>",
        '<div class="wide"><table><thead><tr><th>n</th></tr></thead><tbody><tr><td>0</td></tr><tr><td>1</td></tr>'
        "<tr><td>2</td></tr></tbody></table></div>", "<p>(2 more rows in report.json)</p>", "<p>(loss: no data for this figure)</p>",
        '<figure><img alt="eval &lt;curves&gt;" src="data:image/png;base64,iVBORw=="><figcaption>eval &lt;curves&gt;'
        "</figcaption></figure>", "</body></html>"]


def test_a_table_shows_sixty_rows_unless_told_otherwise() -> None:
    d = Doc()
    d.table([{"n": i} for i in range(61)])
    assert d.markdown().endswith("\n| 59 |\n\n(1 more rows in report.json)\n")
    d = Doc()
    d.table([{"n": i} for i in range(60)])
    assert "more rows" not in d.markdown() and d.markdown().count("\n| ") == 60 and "\n| 59 |\n" in d.markdown()


@pytest.mark.parametrize(("kw", "line"), [
    ({}, "Result: no estimate (not enough data to decide); n = 0 runs."),
    ({"status": "signal", "n_runs": 4, "n_steps": 90}, "Result: no estimate (signal); n = 4 runs (90 steps)."),
    ({"effect": 0.0123456, "n_runs": 8}, "Result: effect 0.01235 BPB/loop; no p-value (descriptive, outside the "
                                        "corrected family); n = 8 runs."),
    ({"effect": 0.5, "ci_low": 0.25, "p_value": 0.04321, "n_runs": 6},
     "Result: effect 0.5 BPB/loop; p = 0.0432 (outside the corrected family); n = 6 runs."),
    ({"effect": 0.5, "ci_low": 0.25, "ci_high": 0.75, "p_value": 0.04321, "p_adjusted": 0.08642, "n_runs": 6,
      "n_steps": 12},
     "Result: effect 0.5 BPB/loop (95% CI 0.25 to 0.75); p = 0.0432, holm-corrected p = 0.0864; n = 6 runs "
     "(12 steps)."),
    ({"effect": 0.5, "ci_high": 0.75, "p_value": 1e-7, "p_adjusted": 3e-7, "n_runs": 2},
     "Result: effect 0.5 BPB/loop; p = 1e-07, holm-corrected p = 3e-07; n = 2 runs."),
    # runs of one start averaged into units: n is what the statistics rest on, beside the runs it came from
    ({"effect": 0.5, "p_value": 0.01, "p_adjusted": 0.02, "n_runs": 28, "extra": {"units": 12}},
     "Result: effect 0.5 BPB/loop; p = 0.01, holm-corrected p = 0.02; n = 28 runs in 12 units."),
    ({"effect": 0.5, "p_value": 0.01, "p_adjusted": 0.02, "n_runs": 5, "extra": {"units": 5}},
     "Result: effect 0.5 BPB/loop; p = 0.01, holm-corrected p = 0.02; n = 5 runs."),
])
def test_result_line_in_each_case(report_inputs: SimpleNamespace, kw: dict, line: str) -> None:
    assert report.result_line(report_inputs.result(**kw), "holm") == line


def test_summary_rows_give_the_interval_as_text_and_no_steps_as_none(
        report_inputs: SimpleNamespace) -> None:
    result = report_inputs.result
    rows = report.summary_rows([result(effect=0.1, ci_low=-0.123456, ci_high=0.2, p_value=0.3, p_adjusted=0.6,
                                       n_runs=5, verdict="v"),
                                result(key="k", effect=0.1, ci_low=0.1, n_runs=3, n_steps=40)])
    assert rows[0] == {"test": "2_quant_gap", "effect": 0.1, "unit": "BPB/loop", "ci": "-0.1235 to 0.2", "p": 0.3,
                       "p_adjusted": 0.6, "runs": 5, "units": 5, "steps": None, "verdict": "v"}
    assert rows[1]["ci"] == "" and rows[1]["steps"] == 40 and rows[1]["test"] == "k"
    assert list(rows[0]) == report.SUMMARY_COLUMNS
    merged = report.summary_rows([result(n_runs=28, extra={"units": 12})])[0]
    assert (merged["runs"], merged["units"]) == (28, 12)


def test_a_test_section_shows_warnings_scope_and_tables_but_not_the_per_run_rows(
        report_inputs: SimpleNamespace) -> None:
    d = Doc()
    r = report_inputs.result(effect=0.2, n_runs=4, n_steps=7, verdict="signal", warnings=["few runs"],
                extra={"scope": "Only crawler runs."}, tables={"per_run": [{"run": "x"}], "by_loops": [{"l": 2}],
                                                              "empty_one": []})
    report._test_section(d, r, "holm")
    assert d.markdown().split("\n\n") == [
        "### 2_quant_gap: Quant gap vs loops", "Question: Does the gap grow?", "Verdict: signal",
        "Result: effect 0.2 BPB/loop; no p-value (descriptive, outside the corrected family); n = 4 runs (7 steps).",
        "Method: OLS with HC2. Runs used: 4; steps used: 7.", "- warning: few runs", "Only crawler runs.",
        "by loops:", "| l |\n|---|\n| 2 |\n"]
    assert ("p", ("Verdict: signal", "verdict")) in d.blocks
    d = Doc()
    report._test_section(d, report_inputs.result(n_runs=2), "holm")
    assert "Method: OLS with HC2. Runs used: 2." in d.markdown() and "warning" not in d.markdown()


def test_printed_summary_names_the_metric_verdicts_and_the_three_best_configs(
        report_inputs: SimpleNamespace) -> None:
    top = [{"config": f"c{i}", "mean_bpb": 2 + i / 1000, "seeds": 1 + i % 2} for i in range(4)]
    text = report.printed_summary(report_inputs.analysis(report_inputs.runs(), top))
    assert text.splitlines() == [
        "sweeps: s, t | runs: 3 | metric: q_val_bpb (quantized weights, standard eval) | correction: fdr_bh",
        f"  {'2_quant_gap':26s} signal", f"  {'6_seed_variance':26s} descriptive",
        "  best configs (mean BPB over seeds): c0 2.0000 (n=1, a single run); c1 2.0010 (n=2); c2 2.0020 (n=1, a "
        "single run)"]
    # n counts seeds: a seed run twice (a parent's trial and its rerun) is named, and is one of the n
    again = [{"config": "w", "mean_bpb": 2.4656, "seeds": 3, "runs": 4, "seed_repeats": [{"seed": 1337, "runs": 2}]},
             {"config": "v", "mean_bpb": 2.5, "seeds": 1, "runs": 2, "seed_repeats": [{"seed": 7, "runs": 2}]}]
    assert report.printed_summary(report_inputs.analysis(report_inputs.runs(), again)).splitlines()[-1] == (
        "  best configs (mean BPB over seeds): w 2.4656 (n=3; seed 1337 ran 2 times, averaged into one value); "
        "v 2.5000 (n=1; seed 7 ran 2 times, averaged into one value)")
    warned = report_inputs.analysis(report_inputs.runs(), [])
    warned["results"][1].warnings = ["heavy tails", "few seeds"]
    assert report.printed_summary(warned).splitlines()[2:5] == [
        f"  {'6_seed_variance':26s} descriptive", f"  {'':26s} warning: heavy tails", f"  {'':26s} warning: few seeds"]
    runs = report_inputs.runs()
    runs.attrs["metric_mode"] = None
    assert "| metric: q_val_bpb | " in report.printed_summary(report_inputs.analysis(runs, []))
    runs.attrs["metric"] = None
    lines = report.printed_summary(report_inputs.analysis(runs, [])).splitlines()
    assert "| metric: none | " in lines[0] and len(lines) == 3


def test_the_table_and_the_console_line_give_a_seed_rerun_by_the_parent_one_value(
        report_inputs: SimpleNamespace) -> None:
    from clowncar.analysis.explore import top_configs

    # walk 5, F3: the parent ran the config at seed 1337, its rerun again at 1337 (bit-identical), 42 and 2025
    runs = pd.DataFrame({"run_id": ["p/5", "r/0", "r/1", "r/2"], "sweep": ["p", "r", "r", "r"], "label": "w",
                         "config_key": "k", "config_hash": "h", "seed": [1337, 1337, 42, 2025],
                         "bpb": [2.4734, 2.4734, 2.4588, 2.4647]})
    runs.attrs.update(metric="q_val_bpb", metric_mode="quantized weights, standard eval")
    top = top_configs(runs)
    mean = (2.4734 + 2.4588 + 2.4647) / 3  # 2.46563, not the 4 runs' 2.46758
    assert report.printed_summary(report_inputs.analysis(runs, top)).splitlines()[-1] == (
        f"  best configs (mean BPB over seeds): w {mean:.4f} (n=3; seed 1337 ran 2 times, averaged into one value)")
    a = {**report_inputs.full_analysis(), "runs": runs, "top_configs": top, "pareto_front": [],
         "frames": {"steps": None, "evals": None}}
    row = next(line for line in report.document(a).markdown().split("\n") if line.startswith("| w |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["w", "3", "4"] and cells[3] == f"{mean:.4f}"
    assert cells[7] == "seed 1337 ran 2 times, averaged into one value"
    assert cells[8] == "1337: 2.4734 (mean of 2 runs), 42: 2.4588, 2025: 2.4647"


def test_the_report_document_in_full(report_inputs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.analysis import figure_needs, plots

    a = {**report_inputs.full_analysis(), "frames": {"steps": "the steps frame", "evals": "the evals frame"},
         "pareto_front": []}
    calls: dict[str, tuple] = {}
    for name, png in [("loss_curves", (b"L", "Showing the 12 of 13 configs with the lowest mean BPB; left out: z.")),
                      ("eval_curves", (None, "")), ("quant_gap_vs_loops", None), ("bpb_vs_width", None),
                      ("pareto", b"P"), ("top_config_seeds", None)]:
        def plot(*args: object, _name: str = name, _png: object = png) -> object:
            calls[_name] = args
            return _png

        monkeypatch.setattr(plots, name, plot)

        def lacks(data: object, _name: str = name) -> str:
            calls[f"needs.{_name}"] = (data,)
            return f"needs what {_name} reads"

        monkeypatch.setattr(figure_needs, name, lacks)
    assert report.document(a).markdown().split("\n") == EXPECTED_REPORT.split("\n")
    runs = a["runs"]
    assert calls["loss_curves"][0] == "the steps frame" and calls["loss_curves"][1] is runs
    assert calls["eval_curves"][0] == "the evals frame" and calls["eval_curves"][1] is runs
    assert calls["quant_gap_vs_loops"][0] is runs and calls["bpb_vs_width"][0] is runs
    assert calls["pareto"][0] is runs and calls["pareto"][1] is a["pareto_front"]
    assert calls["top_config_seeds"][0] is a["top_configs"]
    assert {k: len(v) for k, v in calls.items()} == {"loss_curves": 2, "eval_curves": 2, "quant_gap_vs_loops": 1,
                                                       "bpb_vs_width": 1, "pareto": 2, "top_config_seeds": 1,
                                                       "needs.eval_curves": 1, "needs.quant_gap_vs_loops": 1,
                                                       "needs.bpb_vs_width": 1, "needs.top_config_seeds": 1}
    assert calls["needs.eval_curves"][0] == "the evals frame" and calls["needs.quant_gap_vs_loops"][0] is runs
    assert calls["needs.bpb_vs_width"][0] is runs and calls["needs.top_config_seeds"][0] is a["top_configs"]


def test_the_provenance_table_shows_four_hundred_runs(report_inputs: SimpleNamespace) -> None:
    a = report_inputs.full_analysis()
    a["provenance"] = {**a["provenance"], "runs": [{"run_id": f"s/{i}"} for i in range(401)]}
    text = report.document(a).markdown()
    assert text.endswith("| s/399 |\n\n(1 more rows in report.json)\n")


def test_the_report_document_says_when_there_is_nothing_to_correct_or_show(
        report_inputs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.analysis import plots

    for name in ("quant_gap_vs_loops", "bpb_vs_width", "pareto", "top_config_seeds"):
        monkeypatch.setattr(plots, name, lambda *args: None)
    for name in ("loss_curves", "eval_curves"):
        monkeypatch.setattr(plots, name, lambda *args: (None, ""))
    a = {**report_inputs.full_analysis(), "correction": [], "pareto_front": [{"run_id": "s/2", "bpb": 2.2}]}
    a["provenance"] = {**a["provenance"], "git_commits": [], "analysis_git_commit": "f00d"}
    text = report.document(a).markdown()
    assert "\n\nNo test produced a p-value: nothing to correct.\n\n" in text
    assert "| run_id | bpb |\n|---|---|\n| s/2 | 2.2000 |" in text and "No run has both" not in text
    assert "git commits of the runs: not recorded; 2 config hashes." in text
    assert "by analysis commit f00d." in text


# The report of _full_analysis as a reader sees it (checked line by line when written).
EXPECTED_REPORT = "\n".join([
    '# clowncar signal report: s, t',
    '',
    '3 finished runs; primary metric: q_val_bpb (quantized weights, standard eval); generated 2026-1'
    '2-04T00:00:00+00:00 by analysis commit unknown. The run is the unit of replication: step-level '
    'numbers are aggregated per run before any test across runs, and runs that share a start (one seed and model) '
    "or a reference run are averaged into one unit where a test says so (its n reads 'runs in units').",
    '',
    '## Signal tests',
    '',
    'Not enough data for 1 of 2 tests: 6 lacks data for an estimate (the verdict says what). What each test needs'
    ': docs/signals.md; `clowncar demo --signals` runs sweeps/signals.yaml, a sweep built to give every test an es'
    'timate (28 CPU trials, 2.5 to 11 min on 2 cores).',
    '',
    '| test | effect | unit | ci | p | p_adjusted | runs | units | steps | verdict |',
    '|---|---|---|---|---|---|---|---|---|---|',
    '| 2_quant_gap | 0.02 | BPB/loop |  | 0.04 | 0.08 | 3 | 3 |  | signal |',
    '| 6_seed_variance |  | BPB/loop |  |  |  | 3 | 3 |  | descriptive |',
    '',
    '### 2_quant_gap: Quant gap vs loops',
    '',
    'Question: Does the gap grow?',
    '',
    'Verdict: signal',
    '',
    'Result: effect 0.02 BPB/loop; p = 0.04, fdr_bh-corrected p = 0.08; n = 3 runs.',
    '',
    'Method: OLS with HC2. Runs used: 3.',
    '',
    '### 6_seed_variance: Seed variance',
    '',
    'Question: Does the gap grow?',
    '',
    'Verdict: descriptive',
    '',
    'Result: no estimate (not enough data to decide); n = 3 runs.',
    '',
    'Method: OLS with HC2. Runs used: 3.',
    '',
    '## Multiple-comparison correction (fdr_bh)',
    '',
    'Family: the primary p-value of tests 1-5 (seed variance is descriptive). Verdicts above use the'
    ' adjusted p-values.',
    '',
    '| test | p | p_adjusted |',
    '|---|---|---|',
    '| 2_quant_gap | 0.04 | 0.08 |',
    '',
    '## Figures',
    '',
    '*Figure: training loss per config (embedded in report.html)*',
    '',
    'Showing the 12 of 13 configs with the lowest mean BPB; left out: z.',
    '',
    '(eval BPB curves per config: no figure: needs what eval_curves reads)',
    '',
    '(quantization gap vs loops: no figure: needs what quant_gap_vs_loops reads)',
    '',
    '(BPB vs width: no figure: needs what bpb_vs_width reads)',
    '',
    '*Figure: Pareto front of BPB against artifact bytes (embedded in report.html)*',
    '',
    '## Top configs with their seed reruns',
    '',
    'Ranked by mean BPB over seeds; every seed is listed. The best trial of a search is optimistical'
    'ly biased: confirm a winner only with fresh-seed reruns. The seed is the unit, as in the seed-variance test: '
    'runs of one config at one seed (a parent\'s trial and its rerun at that seed) are averaged into one value, so '
    '`seeds` (n), sd and the t interval count seeds, `runs` counts runs, and the caveat names each seed run more '
    'than once. A config run once carries a caveat: it'
    's rank rests on one run. A config is every setting its runs record, seed aside, and for imported runs the fo'
    'lder they came from; config_hash is the store\'s hash of the recorded settings, which an importer reads onl'
    'y in part.',
    '',
    '| config | seeds | runs | mean_bpb | sd | ci_low | ci_high | caveat | per_seed | width | params | quan'
    't_gap | quant_gap_mode | eval_mode | config_hash |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    '| L | 2 | 2 | 2.0500 | 0.0707 |  |  |  | 1: 2, 2: 2.1000 | 64 | 10 | 0.01 |  | q | h1 |',
    '| M | 2 | 3 | 2.1500 | 0.0707 |  |  | seed 1 ran 2 times, averaged into one value | 1: 2.1000 (mean of 2 runs), '
    '2: 2.2000 |  |  |  |  |  | h2 |',
    '',
    '(top configs, every seed: no figure: needs what top_config_seeds reads)',
    '',
    '## Pareto front (BPB vs artifact bytes)',
    '',
    'No run has both BPB and artifact bytes.',
    '',
    '## Exploratory: Optuna parameter importances',
    '',
    's: skipped (no storage URL)',
    '',
    't (5 trials): exploratory',
    '',
    '| parameter | importance |',
    '|---|---|',
    '| lr | 0.75 |',
    '',
    '## Provenance',
    '',
    'git commits of the runs: a, b; 2 config hashes. Every run used:',
    '',
    '| run_id | bpb |',
    '|---|---|',
    '| s/0 | 2 |',
    '',
])


def test_the_tests_that_cannot_decide_are_named_once_with_what_would_give_them_data(
        report_inputs: SimpleNamespace) -> None:
    undecided = "not enough data to decide"
    results = [report_inputs.result(key="1a_cn_loss", verdict=f"{undecided}: no C/N steps"),
               report_inputs.result(key="2a_gap_loops", status="signal", effect=0.1, p_value=0.01, verdict="signal"),
               report_inputs.result(key="3a_width", verdict=f"{undecided}: 1 distinct width"),
               report_inputs.result(key="5_sharing_matched_params", effect=-0.02, p_value=0.4,
                                    verdict=f"{undecided}: effect -0.02 BPB"),
               report_inputs.result(key="6_seed_variance", status="descriptive", effect=0.008, verdict="descriptive")]
    line = ("Not enough data for 3 of 5 tests: 1a, 3a lack data for an estimate (the verdict says what) and 5 needs "
            "more runs. What each test needs: docs/signals.md; `clowncar demo --signals` runs sweeps/signals.yaml, a "
            "sweep built to give every test an estimate (28 CPU trials, 2.5 to 11 min on 2 cores).")
    assert report.data_hint(results) == line
    summary = report.printed_summary({**report_inputs.analysis(report_inputs.runs(), []), "results": results})
    assert summary.splitlines().count(f"  {line}") == 1 and summary.count("signals.yaml") == 1
    # an estimate too wide to decide needs more runs, not the signal demo; a decided or descriptive test, nothing
    assert report.data_hint(results[1:2] + results[3:]) == "Not enough data for 1 of 3 tests: 5 needs more runs."
    assert report.data_hint(results[2:3]).startswith("Not enough data for 1 of 1 test: 3a lacks data for an ")
    assert report.data_hint([results[1], results[4]]) is None
