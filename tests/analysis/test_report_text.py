"""What the report says, line by line: number formatting, the Markdown and HTML renderings of one document,
a test's result line in each of its cases, the summary table, provenance, the printed summary and the atomic
write. Every number a reader sees passes through these functions; the values here are written out by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from clowncar.analysis import report
from clowncar.analysis.document import Doc, fmt
from clowncar.analysis.reference import declare_one_stream
from clowncar.analysis.result import TestResult


def _result(**kw: object) -> TestResult:
    base = {"key": "2_quant_gap", "title": "Quant gap vs loops", "question": "Does the gap grow?",
            "method": "OLS with HC2", "unit": "BPB/loop"}
    return TestResult(**{**base, **kw})


@pytest.mark.parametrize(("value", "digits", "text"), [
    (None, 4, ""), (True, 4, "yes"), (False, 4, "no"), (float("nan"), 4, ""), (float("inf"), 4, ""),
    (-float("inf"), 4, ""), (1.23456789, 4, "1.235"), (1.23456789, 3, "1.23"), (0.000012345, 4, "1.234e-05"),
    (1234567.0, 4, "1.235e+06"), (7, 4, "7"), ("a|b", 4, "a|b"), ({"x": 0.123456, "y": None}, 4, "x: 0.1235, y: "),
    ([1.0, 2.5], 4, "1, 2.5"), (list(range(12)), 4, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"),
    (list(range(13)), 4, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 ..."), ([0.1234567, True], 2, "0.1235, yes"),
])
def test_fmt_writes_each_kind_of_value(value: object, digits: int, text: str) -> None:
    assert fmt(value, digits) == text


def _doc() -> Doc:
    d = Doc()
    d.h(1, "Title <1>")
    d.h(3, "Sub")
    d.p("plain & simple")
    d.p("bold", "verdict")
    d.items([])
    d.items(["one", "two <b>"])
    d.table([])
    d.table([{"a": 1.0, "b": "x|y"}, {"c": None, "a": float("nan")}])
    d.table([{"n": i} for i in range(5)], ["n"], limit=3)
    d.image(None, "loss")
    d.image(b"\x89PNG", "eval <curves>")
    return d


def test_markdown_rendering_of_every_block() -> None:
    assert _doc().markdown() == "\n".join([
        "# Title <1>", "", "### Sub", "", "plain & simple", "", "bold", "", "- one", "- two <b>", "",
        "| a | b | c |", "|---|---|---|", "| 1 | x/y |  |", "|  |  |  |", "",
        "| n |", "|---|", "| 0 |", "| 1 |", "| 2 |", "\n(2 more rows in report.json)", "",
        "(loss: no data for this figure)", "", "*Figure: eval <curves> (embedded in report.html)*", ""])


def test_html_rendering_escapes_text_and_embeds_images() -> None:
    from clowncar.analysis.document import CSS

    head, body = _doc().html("R & D").split("</style></head><body>\n")
    assert head == f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>R &amp; D</title><style>{CSS}'
    assert body.split("\n") == [
        "<h1>Title &lt;1&gt;</h1>", "<h3>Sub</h3>", "<p>plain &amp; simple</p>", '<p class="verdict">bold</p>',
        "<ul><li>one</li><li>two &lt;b&gt;</li></ul>",
        "<table><thead><tr><th>a</th><th>b</th><th>c</th></tr></thead><tbody><tr><td>1</td><td>x|y</td><td></td>"
        "</tr><tr><td></td><td></td><td></td></tr></tbody></table>",
        "<table><thead><tr><th>n</th></tr></thead><tbody><tr><td>0</td></tr><tr><td>1</td></tr><tr><td>2</td></tr>"
        "</tbody></table>", "<p>(2 more rows in report.json)</p>", "<p>(loss: no data for this figure)</p>",
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
])
def test_result_line_in_each_case(kw: dict, line: str) -> None:
    assert report.result_line(_result(**kw), "holm") == line


def test_summary_rows_give_the_interval_as_text_and_no_steps_as_none() -> None:
    rows = report.summary_rows([_result(effect=0.1, ci_low=-0.123456, ci_high=0.2, p_value=0.3, p_adjusted=0.6,
                                        n_runs=5, verdict="v"),
                                _result(key="k", effect=0.1, ci_low=0.1, n_runs=3, n_steps=40)])
    assert rows[0] == {"test": "2_quant_gap", "effect": 0.1, "unit": "BPB/loop", "ci": "-0.1235 to 0.2", "p": 0.3,
                       "p_adjusted": 0.6, "runs": 5, "steps": None, "verdict": "v"}
    assert rows[1]["ci"] == "" and rows[1]["steps"] == 40 and rows[1]["test"] == "k"
    assert list(rows[0]) == report.SUMMARY_COLUMNS


def _runs() -> pd.DataFrame:
    runs = pd.DataFrame({"run_id": ["s/0", "s/1", "s/2"], "sweep": "s", "label": "L", "seed": [1, 2, 3],
                         "config_hash": ["h2", "h1", "h2"], "config_key": "k", "git_commit": ["b", None, "a"],
                         "bpb": [2.0, 2.1, 2.2], "width": 64, "params": 10, "quant_gap": 0.01, "loops": 3})
    runs.attrs.update(metric="q_val_bpb", metric_mode="quantized weights, standard eval")
    return runs


def test_provenance_lists_every_run_with_its_commit_hash_and_eval_mode() -> None:
    prov = report.provenance(_runs())
    assert prov["runs"][1] == {"run_id": "s/1", "sweep": "s", "label": "L", "seed": 2, "config_hash": "h1",
                               "config_key": "k", "git_commit": prov["runs"][1]["git_commit"], "bpb": 2.1, "width": 64, "params": 10,
                               "quant_gap": 0.01, "eval_mode": "quantized weights, standard eval"}
    assert pd.isna(prov["runs"][1]["git_commit"]) and prov["git_commits"] == ["a", "b"] and prov["config_hashes"] == ["h1", "h2"]
    assert prov["analysis_git_commit"] is None or len(prov["analysis_git_commit"]) == 40
    assert pd.Timestamp(prov["generated_at"]).tzinfo is not None
    empty = report.provenance(pd.DataFrame({"run_id": pd.Series(dtype=str)}))
    assert empty["runs"] == [] and empty["git_commits"] == [] and empty["config_hashes"] == []


def _analysis(runs: pd.DataFrame, top: list[dict]) -> dict:
    return {"sweeps": ["s", "t"], "runs": runs, "metric": runs.attrs.get("metric"),
            "metric_mode": runs.attrs.get("metric_mode"), "correction_method": "fdr_bh",
            "results": [_result(verdict="signal"), _result(key="6_seed_variance", verdict="descriptive")],
            "top_configs": top, "correction": [], "pareto_front": [], "optuna": {}, "provenance": {}}


def test_printed_summary_names_the_metric_verdicts_and_the_three_best_configs() -> None:
    top = [{"config": f"c{i}", "mean_bpb": 2 + i / 1000, "seeds": 1 + i % 2} for i in range(4)]
    text = report.printed_summary(_analysis(_runs(), top))
    assert text.splitlines() == [
        "sweeps: s, t | runs: 3 | metric: q_val_bpb (quantized weights, standard eval) | correction: fdr_bh",
        f"  {'2_quant_gap':26s} signal", f"  {'6_seed_variance':26s} descriptive",
        "  best configs (mean BPB over seeds): c0 2.0000 (n=1, a single run); c1 2.0010 (n=2); c2 2.0020 (n=1, a "
        "single run)"]
    runs = _runs()
    runs.attrs["metric_mode"] = None
    assert "| metric: q_val_bpb | " in report.printed_summary(_analysis(runs, []))
    runs.attrs["metric"] = None
    lines = report.printed_summary(_analysis(runs, [])).splitlines()
    assert "| metric: none | " in lines[0] and len(lines) == 3


def test_cautions_name_imported_runs_pooled_with_run_ones_and_several_datasets() -> None:
    trials = pd.DataFrame({"sweep": ["legacy", "legacy", "mine", "mine", "other"],
                           "source": ["import", "import", "run", "run", "run"],
                           "status": ["imported", "ok", "ok", "ok", "diverged"],
                           "data.dataset": [None, None, "demo_sp1024", "demo_sp1024", "fineweb10B_sp1024"]})
    assert report.cautions(trials) == [
        "runs imported from files (1 sweep(s)) are pooled with runs clowncar ran (1 sweep(s)): their data, hardware, "
        "training length and evaluation may differ, and every test across runs compares them as if they did not"]
    two = trials.assign(status="ok")  # the diverged run on another dataset counts once it is a run
    assert report.cautions(two)[1] == ("runs on 2 datasets (demo_sp1024, fineweb10B_sp1024): BPB on different text "
                                       "is not comparable")
    # without a status column every trial counts: the diverged run's sweep too
    assert report.cautions(trials[["sweep", "source"]]) == [report.cautions(trials)[0].replace("ran (1", "ran (2")]
    assert report.cautions(trials[trials["source"] == "run"]) == []
    assert report.cautions(trials[trials["source"] == "import"].drop(columns=["data.dataset"])) == []
    assert report.cautions(pd.DataFrame({"run_id": ["a"]})) == []
    declared = declare_one_stream(trials[trials["source"] == "import"])  # the two imported runs record nothing
    assert report.cautions(declared)[-1] == (
        "2 run(s) record no token stream, or only part of it, and are declared to share one (--same-stream): tests "
        "1a and 1b subtract reference runs among them as if every one read the same tokens at each step")
    assert len(report.cautions(declared)) == 1 and len(report.cautions(declare_one_stream(trials))) == 2
    a = {**_analysis(_runs(), []), "cautions": ["one", "two"]}
    assert report.printed_summary(a).splitlines()[1:3] == ["  caution: one", "  caution: two"]
    assert "- caution: one\n- caution: two\n" in report.document(_full_analysis() | {"cautions": ["one", "two"]}).markdown()


def test_cautions_name_runs_of_one_dataset_that_read_different_shards() -> None:
    trials = pd.DataFrame({"sweep": ["s", "s", None, "s", "s"], "source": "run",  # a gap elsewhere: still a run
                           "status": ["ok", "ok", "ok", "ok", "failed"],
                           "data.dataset": ["fw", "fw", "fw", "demo", "fw"],
                           "provenance.data.train.digest": ["t1", "t1", "t2", "t9", "t3"],
                           "provenance.data.val.digest": ["v1", "v1", "v1", "v9", None]})
    assert report.cautions(trials) == [
        "runs on 2 datasets (demo, fw): BPB on different text is not comparable",
        "runs of dataset fw read 2 different sets of train shards (a shard lost, added or rebuilt between them): "
        "they trained on different data"]  # the failed run is no run; another dataset may differ
    val = trials.assign(**{"provenance.data.val.digest": ["v1", "v2", "v1", "v9", None]})
    assert report.cautions(val)[-1] == (
        "runs of dataset fw read 2 different sets of validation shards (a shard lost, added or rebuilt between "
        "them): BPB was measured on different text")
    assert report.cautions(val.drop(columns="provenance.data.train.digest"))[-1].startswith(
        "runs of dataset fw read 2 different sets of validation shards")  # no train digests: val still checked
    assert report.cautions(trials[trials["data.dataset"] == "demo"]) == []
    assert report.cautions(trials.drop(columns=["provenance.data.train.digest", "provenance.data.val.digest"])) == [
        "runs on 2 datasets (demo, fw): BPB on different text is not comparable"]  # logs from before: no digests


def test_to_json_carries_counts_and_every_test(tmp_path: Path) -> None:
    a = _analysis(_runs(), [])
    data = report.to_json(a)
    assert data["n_runs"] == 3 and data["correction_method"] == "fdr_bh" and data["sweeps"] == ["s", "t"]
    assert data["metric"] == "q_val_bpb" and data["metric_mode"] == "quantized weights, standard eval"
    assert [t["key"] for t in data["tests"]] == ["2_quant_gap", "6_seed_variance"]
    assert data["runs"][2]["git_commit"] == "a" and data["runs"][0]["seed"] == 1
    assert list(data) == ["sweeps", "metric", "metric_mode", "n_runs", "correction_method", "tests", "correction",
                          "top_configs", "pareto_front", "optuna_importances", "runs", "provenance", "cautions"]
    assert data["cautions"] == [] and report.to_json({**a, "cautions": ["x"]})["cautions"] == ["x"]
    full = _full_analysis()
    data = report.to_json(full)
    assert data["correction"] == full["correction"] and data["top_configs"] == full["top_configs"]
    assert data["optuna_importances"] == full["optuna"] and data["provenance"] == full["provenance"]
    assert report.to_json({**full, "pareto_front": [{"run_id": "s/1"}]})["pareto_front"] == [{"run_id": "s/1"}]
    json.dumps(data, allow_nan=False)


def test_a_test_section_shows_warnings_scope_and_tables_but_not_the_per_run_rows() -> None:
    d = Doc()
    r = _result(effect=0.2, n_runs=4, n_steps=7, verdict="signal", warnings=["few runs"],
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
    report._test_section(d, _result(n_runs=2), "holm")
    assert "Method: OLS with HC2. Runs used: 2." in d.markdown() and "warning" not in d.markdown()


def test_write_replaces_each_file_whole_and_leaves_no_temporary_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "a" / "b"
    a = _analysis(_runs(), [])
    monkeypatch.setattr(report, "document", lambda got: _doc() if got is a else Doc())
    paths = report.write(out, a)
    assert sorted(paths) == ["report.html", "report.json", "report.md"]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert paths["report.md"].read_text() == _doc().markdown()
    assert paths["report.html"].read_text() == _doc().html("clowncar report: s, t")
    assert paths["report.json"].read_text() == json.dumps(report.to_json(a), indent=1) + "\n"
    paths["report.md"].write_text("old")
    report.write(out, a)
    assert paths["report.md"].read_text() == _doc().markdown()


@pytest.mark.parametrize("blocked", ["report.json", "report.md"])
def test_a_report_file_that_is_a_directory_refuses_the_write_before_any_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blocked: str) -> None:
    a = _analysis(_runs(), [])
    monkeypatch.setattr(report, "document", lambda got: _doc())
    (tmp_path / blocked).mkdir()
    with pytest.raises(IsADirectoryError) as err:
        report.write(tmp_path, a)
    assert err.value.filename == str(tmp_path / blocked)
    # what `clowncar analyze` prints: "cannot write the report to PATH: is a directory, not a file"
    assert (err.value.errno, err.value.strerror) == (21, "is a directory, not a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocked]  # nothing new beside it, no temporary file


def test_a_write_that_fails_midway_leaves_the_old_reports_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _analysis(_runs(), [])
    monkeypatch.setattr(report, "document", lambda got: _doc())
    for name in ("report.md", "report.html", "report.json"):
        (tmp_path / name).write_text("old")
    real = Path.write_text

    def full_disk(self: Path, text: str, **kw: object) -> int:
        if ".report.json.tmp-" in self.name:
            raise OSError(28, "No space left on device", str(self))
        return real(self, text, **kw)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        report.write(tmp_path, a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.md"]
    assert all((tmp_path / name).read_text() == "old" for name in ("report.md", "report.html", "report.json"))


def _full_analysis() -> dict:
    runs = _runs().drop(columns=["loops"])
    top = [{"config": "L", "config_key": "k", "seeds": 2, "mean_bpb": 2.05, "sd": 0.0707, "caveat": "",
            "width": 64.0, "params": 10.0, "quant_gap": 0.01, "eval_mode": "q", "config_hash": ["h1"],
            "per_seed": [{"seed": 1, "bpb": 2.0, "run_id": "s/0"}, {"seed": 2, "bpb": 2.1, "run_id": "s/1"}]}]
    return {**_analysis(runs, top),
            "results": [_result(effect=0.02, p_value=0.04, p_adjusted=0.08, n_runs=3, verdict="signal",
                                status="signal"),
                        _result(key="6_seed_variance", title="Seed variance", in_family=False, n_runs=3,
                                verdict="descriptive")],
            "correction": [{"test": "2_quant_gap", "p": 0.04, "p_adjusted": 0.08}],
            "frames": {"steps": None, "evals": None},
            "optuna": {"s": {"status": "skipped", "reason": "no storage URL"},
                       "t": {"status": "ok", "trials": 5, "note": "exploratory", "importances": {"lr": 0.75}}},
            "provenance": {"runs": [{"run_id": "s/0", "bpb": 2.0}], "git_commits": ["a", "b"],
                           "config_hashes": ["h1", "h2"], "analysis_git_commit": None,
                           "generated_at": "2026-12-04T00:00:00+00:00"}}


def test_the_report_document_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.analysis import plots

    a = {**_full_analysis(), "frames": {"steps": "the steps frame", "evals": "the evals frame"},
         "pareto_front": []}
    calls: dict[str, tuple] = {}
    for name, png in [("loss_curves", b"L"), ("eval_curves", None), ("quant_gap_vs_loops", None),
                      ("bpb_vs_width", None), ("pareto", b"P"), ("top_config_seeds", None)]:
        def plot(*args: object, _name: str = name, _png: bytes | None = png) -> bytes | None:
            calls[_name] = args
            return _png

        monkeypatch.setattr(plots, name, plot)
    assert report.document(a).markdown().split("\n") == EXPECTED_REPORT.split("\n")
    runs = a["runs"]
    assert calls["loss_curves"][0] == "the steps frame" and calls["loss_curves"][1] is runs
    assert calls["eval_curves"][0] == "the evals frame" and calls["eval_curves"][1] is runs
    assert calls["quant_gap_vs_loops"][0] is runs and calls["bpb_vs_width"][0] is runs
    assert calls["pareto"][0] is runs and calls["pareto"][1] is a["pareto_front"]
    assert calls["top_config_seeds"][0] is a["top_configs"]
    assert {k: len(v) for k, v in calls.items()} == {"loss_curves": 2, "eval_curves": 2, "quant_gap_vs_loops": 1,
                                                       "bpb_vs_width": 1, "pareto": 2, "top_config_seeds": 1}


def test_the_provenance_table_shows_four_hundred_runs() -> None:
    a = _full_analysis()
    a["provenance"] = {**a["provenance"], "runs": [{"run_id": f"s/{i}"} for i in range(401)]}
    text = report.document(a).markdown()
    assert text.endswith("| s/399 |\n\n(1 more rows in report.json)\n")


def test_own_commit_is_the_checkout_head_and_none_without_git(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    here = Path(report.__file__).parent
    head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True)
    monkeypatch.chdir(tmp_path)  # the commit is the module's checkout's, wherever the command runs
    commit = report._own_commit()
    assert commit == head.stdout.strip() and isinstance(commit, str) and len(commit) == 40
    monkeypatch.setenv("PATH", str(tmp_path))  # no git to run
    assert report._own_commit() is None
    (tmp_path / "git").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "git").chmod(0o755)
    assert report._own_commit() is None  # a git that prints nothing
    (tmp_path / "git").write_text("#!/bin/sh\nexec /bin/sleep 60\n")
    monkeypatch.setattr(report, "GIT_TIMEOUT_S", 0.5)
    started = time.monotonic()
    assert report._own_commit() is None  # a git that hangs: the report goes on without the commit
    assert time.monotonic() - started < 20


def test_the_report_document_says_when_there_is_nothing_to_correct_or_show(monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.analysis import plots

    for name in ("loss_curves", "eval_curves", "quant_gap_vs_loops", "bpb_vs_width", "pareto", "top_config_seeds"):
        monkeypatch.setattr(plots, name, lambda *args: None)
    a = {**_full_analysis(), "correction": [], "pareto_front": [{"run_id": "s/2", "bpb": 2.2}]}
    a["provenance"] = {**a["provenance"], "git_commits": [], "analysis_git_commit": "f00d"}
    text = report.document(a).markdown()
    assert "\n\nNo test produced a p-value: nothing to correct.\n\n" in text
    assert "| run_id | bpb |\n|---|---|\n| s/2 | 2.2 |" in text and "No run has both" not in text
    assert "git commits of the runs: not recorded; 2 config hashes." in text
    assert "by analysis commit f00d." in text


# The report of _full_analysis as a reader sees it (checked line by line when written).
EXPECTED_REPORT = "\n".join([
    '# clowncar signal report: s, t',
    '',
    '3 finished runs; primary metric: q_val_bpb (quantized weights, standard eval); generated 2026-1'
    '2-04T00:00:00+00:00 by analysis commit unknown. The run is the unit of replication: step-level '
    'numbers are aggregated per run before any test across runs.',
    '',
    '## Signal tests',
    '',
    '| test | effect | unit | ci | p | p_adjusted | runs | steps | verdict |',
    '|---|---|---|---|---|---|---|---|---|',
    '| 2_quant_gap | 0.02 | BPB/loop |  | 0.04 | 0.08 | 3 |  | signal |',
    '| 6_seed_variance |  | BPB/loop |  |  |  | 3 |  | descriptive |',
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
    '(eval BPB curves per config: no data for this figure)',
    '',
    '(quantization gap vs loops: no data for this figure)',
    '',
    '(BPB vs width: no data for this figure)',
    '',
    '*Figure: Pareto front of BPB against artifact bytes (embedded in report.html)*',
    '',
    '## Top configs with their seed reruns',
    '',
    'Ranked by mean BPB over seeds; every seed is listed. The best trial of a search is optimistical'
    'ly biased: confirm a winner only with fresh-seed reruns. A config run once carries a caveat: it'
    's rank rests on one run.',
    '',
    '| config | seeds | mean_bpb | sd | ci_low | ci_high | caveat | per_seed | width | params | quan'
    't_gap | eval_mode | config_hash |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    '| L | 2 | 2.05 | 0.0707 |  |  |  | 1: 2, 2: 2.1 | 64 | 10 | 0.01 | q | h1 |',
    '',
    '(top configs, every seed: no data for this figure)',
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


def test_analyse_gathers_every_part_of_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from clowncar.analysis import explore

    trials = pd.DataFrame([{"sweep": "s", "trial_uid": f"s/{i}", "status": "ok", "train.seed": i % 2,
                            "config_hash": f"h{i}", "q_val_bpb": 2.0 + i / 10, "val_bpb": 1.9 + i / 10,
                            "model_dim": 64, "params": 1000, "model.arch": "crawler", "model.crawler_loops": 1 + i // 2,
                            "git_commit": "c0ffee"} for i in range(4)])
    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="t", storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("lr", 0, 1), n_trials=3)
    seen: list[tuple] = []

    def run_all(*args: object, **kw: object) -> dict:
        seen.append((args, kw))
        return real_run_all(*args, **kw)

    real_run_all = report.run_all
    monkeypatch.setattr(report, "run_all", run_all)
    steps, evals, probes = (pd.DataFrame({"trial_uid": pd.Series(dtype=str)}) for _ in range(3))
    assert report.analyse(["s"], trials, steps, evals, probes)["correction_method"] == "holm"
    assert seen[0][0][0] is trials and seen[0][0][1] is steps and seen[0][0][2] is evals and seen[0][0][3] is probes
    assert seen[0][1] == {"method": "holm"}
    a = report.analyse(["s", "t"], trials, storage_url=url, method="bonferroni")
    assert a["sweeps"] == ["s", "t"] and a["correction_method"] == "bonferroni"
    assert (a["metric"], a["metric_mode"]) == ("q_val_bpb", "quantized weights, standard eval")
    assert a["top_configs"] == explore.top_configs(a["runs"]) and len(a["top_configs"]) == 2
    assert a["pareto_front"] == explore.pareto_front(a["runs"]) == []
    assert a["optuna"]["s"]["reason"] == "no Optuna study named 's' (imported sweeps have none)"
    assert a["optuna"]["t"]["status"] == "ok" and a["optuna"]["t"]["trials"] == 3
    assert a["frames"]["trials"] is trials and a["frames"]["steps"] is None
    assert a["frames"]["evals"] is None and a["frames"]["probes"] is None
    assert [r["run_id"] for r in a["provenance"]["runs"]] == ["s/0", "s/1", "s/2", "s/3"]
    assert a["provenance"]["git_commits"] == ["c0ffee"]
    assert a["cautions"] == []
    mixed = trials.assign(source=["import", "import", "run", "run"])
    assert report.analyse(["s"], mixed)["cautions"] == report.cautions(mixed) and len(report.cautions(mixed)) == 1
    assert {r.p_adjust_method for r in a["results"]} == {None, "bonferroni"}
