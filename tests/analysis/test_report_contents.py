"""What the report gathers and how it is written: provenance, the cautions about pooled runs, report.json, the
atomic write of the three files, the analysis commit and what `analyse` collects. The values here are written out
by hand (the inputs are tests/analysis/conftest.py's report_inputs)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from clowncar.analysis import cautions, report
from clowncar.analysis.document import Doc
from clowncar.analysis.reference import declare_one_stream


def test_provenance_lists_every_run_with_its_commit_hash_and_eval_mode(
        report_inputs: SimpleNamespace) -> None:
    prov = report.provenance(report_inputs.runs())
    assert prov["runs"][1] == {"run_id": "s/1", "sweep": "s", "label": "L", "seed": 2, "config_hash": "h1",
                               "config_key": "k", "git_commit": prov["runs"][1]["git_commit"], "bpb": 2.1, "width": 64, "params": 10,
                               "quant_gap": 0.01, "eval_mode": "quantized weights, standard eval",
                               "quant_gap_mode": "standard"}
    assert pd.isna(prov["runs"][1]["git_commit"]) and prov["git_commits"] == ["a", "b"] and prov["config_hashes"] == ["h1", "h2"]
    assert prov["analysis_git_commit"] is None or len(prov["analysis_git_commit"]) == 40
    assert pd.Timestamp(prov["generated_at"]).tzinfo is not None
    assert prov["runs_without_config"] == 0
    empty = report.provenance(pd.DataFrame({"run_id": pd.Series(dtype=str)}))
    assert empty["runs"] == [] and empty["git_commits"] == [] and empty["config_hashes"] == []
    traces = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "config_hash": [report.NO_CONFIG_HASH] * 2 + ["h1", None]})
    assert report.NO_CONFIG_HASH == "44136fa355b3678a"  # what the store gives an imported run without a config
    counted = report.provenance(traces)
    assert counted["config_hashes"] == ["h1"] and counted["runs_without_config"] == 2
    text = report.document({**report_inputs.full_analysis(), "provenance": counted}).markdown()
    assert "1 config hashes (2 run(s) record no config). Every run used:" in text


def test_provenance_names_no_gap_mode_for_a_run_without_a_quantization_gap() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b"], "bpb": [2.0, 2.1], "quant_gap": [0.01, None]})
    runs.attrs.update(metric_mode="quantized weights, standard eval", gap_mode="standard")
    assert [r["quant_gap_mode"] for r in report.provenance(runs)["runs"]] == ["standard", None]
    bare = pd.DataFrame({"run_id": ["a"], "bpb": [2.0]})
    bare.attrs.update(gap_mode=None)
    assert [r["quant_gap_mode"] for r in report.provenance(bare)["runs"]] == [None]


def test_cautions_name_imported_runs_pooled_with_run_ones_and_several_datasets(
        report_inputs: SimpleNamespace) -> None:
    trials = pd.DataFrame({"sweep": ["legacy", "legacy", "mine", "mine", "other"],
                           "source": ["import", "import", "run", "run", "run"],
                           "status": ["imported", "ok", "ok", "ok", "diverged"],
                           "data.dataset": [None, None, "demo_sp1024", "demo_sp1024", "fineweb10B_sp1024"]})
    assert cautions.pooled_runs(trials) == [
        "runs imported from files (1 sweep(s)) are pooled with runs clowncar ran (1 sweep(s)): their data, hardware, "
        "training length and evaluation may differ, and every test across runs compares them as if they did not"]
    two = trials.assign(status="ok")  # the diverged run on another dataset counts once it is a run
    assert cautions.pooled_runs(two)[1] == ("runs on 2 datasets (demo_sp1024, fineweb10B_sp1024): BPB on different text "
                                       "is not comparable")
    # without a status column every trial counts: the diverged run's sweep too
    assert cautions.pooled_runs(trials[["sweep", "source"]]) == [cautions.pooled_runs(trials)[0].replace("ran (1", "ran (2")]
    assert cautions.pooled_runs(trials[trials["source"] == "run"]) == []
    assert cautions.pooled_runs(trials[trials["source"] == "import"].drop(columns=["data.dataset"])) == []
    assert cautions.pooled_runs(pd.DataFrame({"run_id": ["a"]})) == []
    declared = declare_one_stream(trials[trials["source"] == "import"])  # the two imported runs record nothing
    assert cautions.pooled_runs(declared)[-1] == (
        "2 run(s) record no token stream, or only part of it, and are declared to share one (--same-stream): tests "
        "1a and 1b subtract reference runs among them as if every one read the same tokens at each step")
    assert len(cautions.pooled_runs(declared)) == 1 and len(cautions.pooled_runs(declare_one_stream(trials))) == 2
    a = {**report_inputs.analysis(report_inputs.runs(), []), "cautions": ["one", "two"]}
    assert report.printed_summary(a).splitlines()[1:3] == ["  caution: one", "  caution: two"]
    full = report_inputs.full_analysis() | {"cautions": ["one", "two"]}
    assert "- caution: one\n- caution: two\n" in report.document(full).markdown()


def test_cautions_name_runs_of_one_dataset_that_read_different_shards() -> None:
    trials = pd.DataFrame({"sweep": ["s", "s", None, "s", "s"], "source": "run",  # a gap elsewhere: still a run
                           "status": ["ok", "ok", "ok", "ok", "failed"],
                           "data.dataset": ["fw", "fw", "fw", "demo", "fw"],
                           "provenance.data.train.digest": ["t1", "t1", "t2", "t9", "t3"],
                           "provenance.data.val.digest": ["v1", "v1", "v1", "v9", None]})
    assert cautions.pooled_runs(trials) == [
        "runs on 2 datasets (demo, fw): BPB on different text is not comparable",
        "runs of dataset fw read 2 different sets of train shards (a shard lost, added or rebuilt between them): "
        "they trained on different data"]  # the failed run is no run; another dataset may differ
    val = trials.assign(**{"provenance.data.val.digest": ["v1", "v2", "v1", "v9", None]})
    assert cautions.pooled_runs(val)[-1] == (
        "runs of dataset fw read 2 different sets of validation shards (a shard lost, added or rebuilt between "
        "them): BPB was measured on different text")
    assert cautions.pooled_runs(val.drop(columns="provenance.data.train.digest"))[-1].startswith(
        "runs of dataset fw read 2 different sets of validation shards")  # no train digests: val still checked
    assert cautions.pooled_runs(trials[trials["data.dataset"] == "demo"]) == []
    assert cautions.pooled_runs(trials.drop(columns=["provenance.data.train.digest", "provenance.data.val.digest"])) == [
        "runs on 2 datasets (demo, fw): BPB on different text is not comparable"]  # logs from before: no digests


def test_a_caution_names_runs_that_stopped_at_their_wall_clock_cap_at_different_steps() -> None:
    trials = pd.DataFrame({"source": "run", "status": ["ok", "ok", "ok", "failed"], "steps": [40, 13, 40, 2],
                           "train.iterations": [40, 40, 40, 40], "train.max_wallclock_seconds": [20.0, 20.0, 0, 20]})
    assert cautions.pooled_runs(trials) == [
        "1 of 3 runs stopped at their wall-clock cap (train.max_wallclock_seconds) before train.iterations, and the "
        "runs trained 13 to 40 steps: their BPB depends on how busy the machine was as much as on the config; "
        "compare at a fixed number of steps (train.max_wallclock_seconds: 0) or read the runs' steps"]
    assert cautions.pooled_runs(trials.assign(steps=[40, 40, 40, 2])) == []  # every run trained its iterations
    uncapped = trials.assign(**{"train.max_wallclock_seconds": 0})
    assert cautions.pooled_runs(uncapped) == []  # fewer steps without a cap: another cause, not the clock
    same = trials.assign(steps=[13, 13, 13, 2])  # all stopped, at one step count: comparable
    assert cautions.pooled_runs(same) == []
    assert cautions.pooled_runs(trials.drop(columns="train.iterations")) == []
    # three 10-minute records: 4909 to 4915 steps is the same length (within 1% of the most), no caution
    records = trials.assign(steps=[4915, 4909, 4912, 2], **{"train.iterations": 20000,
                                                            "train.max_wallclock_seconds": 600.0})
    assert cautions.pooled_runs(records) == []
    assert len(cautions.pooled_runs(records.assign(steps=[4915, 4865, 4912, 2]))) == 1  # 50 steps: 1.02%


def test_the_wall_clock_caution_tells_imported_records_to_read_their_steps_and_counts_a_mix() -> None:
    """An imported record log cannot be rerun at a fixed number of steps: its cap is the challenge's rule (walk 6,
    F23); runs clowncar ran keep that advice, and a mix names how many of each."""
    records = pd.DataFrame({"source": "import", "status": "ok", "steps": [4915, 4400, 4912],
                            "train.iterations": 20000, "train.max_wallclock_seconds": 600.0})
    head = ("3 of 3 runs stopped at their wall-clock cap (train.max_wallclock_seconds) before train.iterations, and "
            "the runs trained 4400 to 4915 steps: their BPB depends on how busy the machine was as much as on the "
            "config; ")
    rule = ("the challenge's runs are wall-clock capped by rule: read their steps (`steps` of the runs in "
            "report.json, or `clowncar store ls SWEEP`)")
    assert cautions.wallclock_stops(records) == [head + "they are imported logs, which clowncar cannot rerun: " + rule]
    mixed = records.assign(source=["import", "run", "import"])
    assert cautions.wallclock_stops(mixed) == [
        head + "for the 1 clowncar ran, compare at a fixed number of steps (train.max_wallclock_seconds: 0) or read "
        "the runs' steps; the 2 imported from logs cannot be rerun: " + rule]
    assert "train.max_wallclock_seconds: 0" in cautions.wallclock_stops(records.assign(source="run"))[0]


def test_the_wall_clock_caution_reads_a_cap_under_a_second_text_as_no_value_and_exactly_1_percent_as_one_length(
        ) -> None:
    """Only the three columns it reads; a cap of half a second is a cap; a cap written as text is no cap."""
    trials = pd.DataFrame({"steps": [40, 13, 40], "train.iterations": 40,
                           "train.max_wallclock_seconds": [0.5, 0.5, "unset"]})
    assert [c.split(" runs stopped")[0] for c in cautions.wallclock_stops(trials)] == ["1 of 3"]
    # 99 to 100 steps is exactly 1% of the most: the same length, no caution
    assert cautions.wallclock_stops(trials.assign(steps=[100, 99, 100], **{"train.iterations": 200})) == []
    assert len(cautions.wallclock_stops(trials.assign(steps=[100, 98, 100], **{"train.iterations": 200}))) == 1


def test_a_caution_names_finished_runs_without_the_metric() -> None:
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(8)], "bpb": [1.2, None, 1.3, None, None, None, None, None]})
    runs.attrs["metric"] = "val_bpb"
    assert cautions.without_metric(runs, shown=2) == [
        "6 of 8 finished runs record no val_bpb (r1, r3 and 4 more): every BPB test and table leaves them out; the "
        "step-level tests still read their steps"]
    runs.attrs["metric"] = None
    assert cautions.without_metric(runs.iloc[:4]) == [
        "2 of 4 finished runs record no BPB (r1, r3): every BPB test and table leaves them out; the step-level "
        "tests still read their steps"]
    assert cautions.without_metric(runs.iloc[[0, 2]]) == [] and cautions.without_metric(runs.iloc[:0]) == []
    assert cautions.without_metric(pd.DataFrame({"run_id": ["a"]})) == []


def test_the_metric_caution_names_five_runs_and_counts_the_rest() -> None:
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(7)], "bpb": [1.2] + [None] * 6})
    assert "(r1, r2, r3, r4, r5 and 1 more)" in cautions.without_metric(runs)[0]
    assert "(r1, r2, r3, r4, r5)" in cautions.without_metric(runs.iloc[:6])[0]  # exactly five: no "0 more"


def test_per_seed_text_names_each_run_by_its_seed_and_cuts_a_long_list() -> None:
    runs = [{"seed": 1337, "bpb": 1.12707468}, {"seed": None, "bpb": 2.53661}]
    assert report.per_seed_text(runs) == "1337: 1.1271, seed unknown: 2.5366"
    many = [{"seed": s, "bpb": 1.5} for s in range(14)]
    assert report.per_seed_text(many, limit=3) == "0: 1.5000, 1: 1.5000, 2: 1.5000 and 11 more"
    assert report.per_seed_text(many[:3], limit=3) == "0: 1.5000, 1: 1.5000, 2: 1.5000"


def test_to_json_carries_counts_and_every_test(report_inputs: SimpleNamespace, tmp_path: Path) -> None:
    a = report_inputs.analysis(report_inputs.runs(), [])
    data = report.to_json(a)
    assert data["n_runs"] == 3 and data["correction_method"] == "fdr_bh" and data["sweeps"] == ["s", "t"]
    assert data["metric"] == "q_val_bpb" and data["metric_mode"] == "quantized weights, standard eval"
    assert [t["key"] for t in data["tests"]] == ["2_quant_gap", "6_seed_variance"]
    assert data["runs"][2]["git_commit"] == "a" and data["runs"][0]["seed"] == 1
    assert list(data) == ["sweeps", "metric", "metric_mode", "n_runs", "correction_method", "tests", "correction",
                          "top_configs", "pareto_front", "optuna_importances", "runs", "provenance", "cautions",
                          "environment", "patterns"]
    assert data["patterns"] == {}  # no sweep was named by a pattern
    assert data["cautions"] == [] and report.to_json({**a, "cautions": ["x"]})["cautions"] == ["x"]
    full = report_inputs.full_analysis()
    data = report.to_json(full)
    assert data["correction"] == full["correction"] and data["top_configs"] == full["top_configs"]
    assert data["optuna_importances"] == full["optuna"] and data["provenance"] == full["provenance"]
    assert report.to_json({**full, "pareto_front": [{"run_id": "s/1"}]})["pareto_front"] == [{"run_id": "s/1"}]
    json.dumps(data, allow_nan=False)


def test_write_replaces_each_file_whole_and_leaves_no_temporary_file(
        report_inputs: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "a" / "b"
    a = report_inputs.analysis(report_inputs.runs(), [])
    monkeypatch.setattr(report, "document", lambda got: report_inputs.doc() if got is a else Doc())
    paths = report.write(out, a)
    assert sorted(paths) == ["report.html", "report.json", "report.md"]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert paths["report.md"].read_text() == report_inputs.doc().markdown()
    assert paths["report.html"].read_text() == report_inputs.doc().html("clowncar report: s, t")
    assert paths["report.json"].read_text() == json.dumps(report.to_json(a), indent=1) + "\n"
    paths["report.md"].write_text("old")
    report.write(out, a)
    assert paths["report.md"].read_text() == report_inputs.doc().markdown()


@pytest.mark.parametrize("blocked", ["report.json", "report.md"])
def test_a_report_file_that_is_a_directory_refuses_the_write_before_any_file_changes(
        report_inputs: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blocked: str) -> None:
    a = report_inputs.analysis(report_inputs.runs(), [])
    monkeypatch.setattr(report, "document", lambda got: report_inputs.doc())
    (tmp_path / blocked).mkdir()
    with pytest.raises(IsADirectoryError) as err:
        report.write(tmp_path, a)
    assert err.value.filename == str(tmp_path / blocked)
    # what `clowncar analyze` prints: "cannot write the report to PATH: is a directory, not a file"
    assert (err.value.errno, err.value.strerror) == (21, "is a directory, not a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocked]  # nothing new beside it, no temporary file


def test_a_write_that_fails_midway_leaves_the_old_reports_and_no_temporary_file(
        report_inputs: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = report_inputs.analysis(report_inputs.runs(), [])
    monkeypatch.setattr(report, "document", lambda got: report_inputs.doc())
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


def test_the_report_is_written_as_utf8_whatever_the_locale(tmp_path: Path, ascii_locale_child: Any) -> None:
    ascii_locale_child(
        "import sys; from pathlib import Path; from clowncar.analysis import report; "
        "from clowncar.analysis.document import Doc\n"
        "d = Doc(); d.p('BPB \\u2265 1.2 at d\\u00e9j\\u00e0 vu')\n"
        "report.document = lambda a: d; report.to_json = lambda a: {}\n"
        "report.write(Path(sys.argv[1]), {'sweeps': ['caf\\u00e9']})", str(tmp_path))
    assert "<p>BPB ≥ 1.2 at déjà vu</p>" in (tmp_path / "report.html").read_bytes().decode("utf-8")
    assert "<title>clowncar report: café</title>" in (tmp_path / "report.html").read_bytes().decode("utf-8")
    assert (tmp_path / "report.md").read_bytes().decode("utf-8") == "BPB ≥ 1.2 at déjà vu\n"


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
    assert a["cautions"] == ["sweep t has no finished run (no trials): it contributes nothing to this report"]
    assert report.analyse(["s"], trials)["cautions"] == []
    mixed = trials.assign(source=["import", "import", "run", "run"])
    assert report.analyse(["s"], mixed)["cautions"] == cautions.pooled_runs(mixed) and len(cautions.pooled_runs(mixed)) == 1
    assert {r.p_adjust_method for r in a["results"]} == {None, "bonferroni"}


def test_a_named_sweep_without_a_finished_run_is_a_caution() -> None:
    """`analyze rej sig1` names rej in its title; a caution says that it contributed nothing, and why."""
    trials = pd.DataFrame({"sweep": ["rej", "rej", "sig", "sig"], "status": ["rejected", "rejected", "ok", "failed"]})
    runs = pd.DataFrame({"sweep": ["sig"]})
    assert cautions.sweeps_without_runs(["rej", "sig", "gone"], trials, runs) == [
        "sweep rej has no finished run (rejected 2): it contributes nothing to this report",
        "sweep gone has no finished run (no trials): it contributes nothing to this report"]
    assert cautions.sweeps_without_runs(["sig"], trials, runs) == []


def test_a_sweep_without_runs_counts_each_status_and_needs_no_status_or_sweep_column() -> None:
    trials = pd.DataFrame({"sweep": ["s", "s", "s"], "status": ["rejected", "failed", "rejected"]})
    no_runs = pd.DataFrame({"run_id": pd.Series(dtype=str)})  # no sweep column: no sweep gave a run
    assert cautions.sweeps_without_runs(["s"], trials, no_runs) == [
        "sweep s has no finished run (failed 1, rejected 2): it contributes nothing to this report"]
    # a trials frame that records no status (not the store's): the sweep is named with its number of trials
    assert cautions.sweeps_without_runs(["s"], trials[["sweep"]], no_runs) == [
        "sweep s has no finished run (3 trials, no status recorded): it contributes nothing to this report"]
