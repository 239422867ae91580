"""The analysis on real data: the Frugendorff line's legacy files in ../shared/legacy-runs (and the challenge's
record logs, for the eval modes), read through the store's importers and frames exactly as a user's
`clowncar import` + `clowncar analyze` would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clowncar.analysis.commands import load_and_analyse
from clowncar.analysis.report import document, write
from clowncar.analysis.runlevel import best_width_contrast


@pytest.fixture(scope="module")
def legacy_store(legacy_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    from clowncar.store import open_store
    from clowncar.store.importers import import_paths

    url = f"sqlite:///{tmp_path_factory.mktemp('legacy') / 'store.db'}"
    with open_store(url) as st:
        import_paths(st, [legacy_runs / f for f in ("train_logs", "sweep_csv", "cadence_tsv", "micro_crawler")])
    return url


def _sweeps(url: str) -> list[str]:
    from clowncar.store import open_store

    with open_store(url, create=False) as st:
        return sorted(st.sweeps_frame()["name"].astype(str))


def test_width_test_reports_the_seeds_width_effect_on_the_micro_crawler_sweep(legacy_store):
    a = load_and_analyse(["sweep_micro_crawler"], legacy_store)
    width = next(r for r in a["results"] if r.key == "3a_width")
    # the seed quoted ~0.033 BPB between dim 608 (3f+1cx2, 2.157078) and dim 496 (6flat control, 2.189973)
    assert best_width_contrast(width) == pytest.approx(0.0329, abs=0.0005)
    assert "+0.0329 BPB" in width.verdict and "best run at width 496 minus best at 608" in width.verdict
    # auto-sized width tracks unique layers in this sweep: the test must say the attribution is collinear
    assert any("collinear" in w for w in width.warnings)
    assert width.n_runs == 8


@pytest.mark.slow
def test_report_builds_on_every_legacy_import(legacy_store, tmp_path):
    sweeps = _sweeps(legacy_store)
    assert len(sweeps) >= 6
    for sweep in [*sweeps, *[sweeps]]:
        names = sweep if isinstance(sweep, list) else [sweep]
        a = load_and_analyse(names, legacy_store)
        paths = write(tmp_path / "_".join(names)[:60], a)
        data = json.loads(paths["report.json"].read_text())
        assert len(data["tests"]) == 9 and data["n_runs"] >= 1
        assert all(t["verdict"] for t in data["tests"])
        assert all(v["status"] == "skipped" for v in data["optuna_importances"].values())  # imports: no study


def test_cadence_traces_give_within_run_descriptives_but_no_across_run_claim(legacy_store):
    a = load_and_analyse(["clean_cadence2", "ortho_cadence2_long", "clean_always_fractal"], legacy_store)
    cn = next(r for r in a["results"] if r.key == "1a_cn_loss")
    assert cn.status == "not enough data to decide"
    assert len(cn.tables["within_run_hac"]) == 2  # the two runs with both C- and N-steps
    nxt = next(r for r in a["results"] if r.key == "1b_next_step")
    assert "cadence >= 3" in nxt.verdict


def test_declared_one_stream_the_always_fractal_trace_corrects_the_cadence_2_traces(legacy_store, run_cli, tmp_path):
    """The seed's cadence traces record no stream; `--same-stream` is the user's word that they share one, and
    the trace that never alternates becomes the reference of the two that do (cut to its 300 steps)."""
    names = ["clean_cadence2", "ortho_cadence2_long", "clean_always_fractal"]
    res = run_cli("analyze", *names, "--store", legacy_store, "--out", str(tmp_path / "rep"), "--same-stream")
    assert res.returncode == 0, res.stderr
    assert "caution: 3 run(s) record no token stream, or only part of it, and are declared to share one" in res.stdout
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    cn = next(t for t in data["tests"] if t["key"] == "1a_cn_loss")
    always_fractal = next(r["run_id"] for r in data["runs"] if r["sweep"] == "clean_always_fractal")
    assert cn["extra"]["reference_corrected"] and cn["status"] == "not enough data to decide"
    assert [r["reference"] for r in cn["tables"]["reference_runs"]] == [always_fractal] * 2
    assert {r["steps"] for r in cn["tables"]["within_run_hac"]} == {300}
    # each row names its sweep: the ids alone (tsv-b949686c7e521aee) do not say which trace is which (walk 6, F12)
    assert sorted(r["sweep"] for r in cn["tables"]["within_run_hac"]) == ["clean_cadence2", "ortho_cadence2_long"]
    assert {r["reference_sweep"] for r in cn["tables"]["reference_runs"]} == {"clean_always_fractal"}
    clean = next(r["run_id"] for r in data["runs"] if r["sweep"] == "clean_cadence2")
    assert f"| {clean} | clean_cadence2 |" in (tmp_path / "rep" / "report.md").read_text()
    plain = load_and_analyse(names, legacy_store)
    assert not next(r for r in plain["results"] if r.key == "1a_cn_loss").extra["reference_corrected"]
    long_trace = next(r for r in data["runs"] if r["sweep"] == "ortho_cadence2_long")["run_id"]
    assert plain["cautions"] == [  # its trace ends 29 steps after its last eval: no final BPB
        f"1 of 3 finished runs record no val_bpb ({long_trace}): every BPB test and table leaves them out; the "
        "step-level tests still read their steps"]


def test_analyze_command_prints_a_summary_and_writes_the_report(legacy_store, run_cli, tmp_path):
    res = run_cli("analyze", "sweep_micro_crawler", "--store", legacy_store, "--out", str(tmp_path / "rep"))
    assert res.returncode == 0, res.stderr
    assert "3a_width" in res.stdout and "runs: 8" in res.stdout
    assert (tmp_path / "rep" / "report.html").is_file()


def test_analyze_command_rejects_an_unknown_sweep_in_one_line(legacy_store, run_cli, tmp_path):
    res = run_cli("analyze", "no_such_sweep", "--store", legacy_store, "--out", str(tmp_path / "rep"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "unknown sweep(s): no_such_sweep" in res.stderr
    assert not (tmp_path / "rep").exists()


def test_analyze_command_rejects_bad_options_in_one_line(run_cli, tmp_path):
    res = run_cli("analyze", "s", "--correction", "nope", "--out", str(tmp_path / "rep"))
    assert res.returncode == 2 and "unknown correction 'nope'" in res.stderr
    (tmp_path / "file").write_text("x")
    res = run_cli("analyze", "s", "--out", str(tmp_path / "file"))
    assert res.returncode == 2 and "is not a directory" in res.stderr


def test_the_run_table_never_fills_a_missing_metric_or_gap_from_another_eval_mode():
    import pandas as pd

    from clowncar.analysis.frames import run_table

    trials = pd.DataFrame({  # run a measured in the standard eval only, run b in the sliding-window eval only
        "trial_uid": ["a", "b", "c"], "status": ["ok"] * 3, "val_bpb": [1.30, None, 1.25],
        "q_val_bpb": [1.32, None, 1.28], "sliding_val_bpb": [None, 1.20, 1.18],
        "q_sliding_val_bpb": [None, 1.23, 1.21]})
    runs = run_table(trials)
    assert runs.attrs["metric"] == "q_sliding_val_bpb"  # a tie on counts: the first of PRIMARY_METRICS wins
    assert runs.attrs["metric_mode"] == "quantized weights, sliding-window eval"
    assert pd.isna(runs["bpb"].iloc[0]) and runs["bpb"].tolist()[1:] == [1.23, 1.21]  # a: no stand-in value
    assert runs.attrs["gap_mode"] == "standard"  # the gap: one mode for the table too
    assert runs["quant_gap"].round(6).tolist()[::2] == [0.02, 0.03] and pd.isna(runs["quant_gap"].iloc[1])
    assert pd.isna(runs["pre_bpb"].iloc[1]) and pd.isna(runs["post_bpb"].iloc[1])


def test_the_record_logs_are_compared_in_one_eval_mode_and_the_report_says_which(legacy_runs, run_cli,
                                                                                 tmp_path):
    records = legacy_runs / "parameter-golf-records" / "track_10min_16mb"
    if not records.is_dir():
        pytest.skip("record logs not found")
    url = f"sqlite:///{tmp_path / 'records.db'}"
    proc = run_cli("import", str(records), "--sweep", "records", "--store", url, "-q")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    from clowncar.analysis.frames import METRIC_MODES, run_table
    from clowncar.store import open_store

    with open_store(url) as st:
        trials = st.trials_frame("records")
    assert set(trials["headline_mode"].dropna()) == {"standard", "sliding", "ttt"}  # the headlines are mixed...
    runs = run_table(trials)
    metric = runs.attrs["metric"]  # ...so the table takes one column, measured one way, for every run
    column = trials[metric].astype(float).reset_index(drop=True)
    assert runs["bpb"].isna().tolist() == column.isna().tolist()  # a run without it is left out, not filled in
    assert (runs["bpb"].dropna() == column.dropna()).all()
    gap = (trials["q_val_bpb"].astype(float) - trials["val_bpb"].astype(float)).reset_index(drop=True)
    assert runs.attrs["gap_mode"] == "standard" and runs["quant_gap"].isna().tolist() == gap.isna().tolist()
    res = run_cli("analyze", "records", "--store", url, "--out", str(tmp_path / "rep"))
    assert res.returncode == 0, res.stderr
    assert f"metric: {metric} ({METRIC_MODES[metric]})" in res.stdout  # and the report says which


def test_each_figure_the_frugendorff_csv_cannot_feed_names_the_field_it_needs(legacy_store, legacy_runs):
    """The sweep CSV records one final val_bpb per run with its cadence, layers, loops and MLP width; its model_dim
    is 0 (auto-sized) in every row and it has no per-step, eval, quantized or artifact-size column (steps, params
    and the timings are blank). Five figures need what it lacks; the report says what, with counts read here from
    the file itself, and still draws the top configs."""
    import csv

    with (legacy_runs / "sweep_csv" / "autoresearch_frug2_results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 174 and all(r["val_bpb"] and r["num_loops"] for r in rows)
    assert {r["model_dim"] for r in rows} == {"0"} and not any(r["params"] or r["steps"] for r in rows)
    text = document(load_and_analyse(["autoresearch_frug2_results"], legacy_store)).markdown()
    figures = text.split("\n## Figures\n\n")[1].split("\n\n## ")[0].split("\n\n")
    assert figures == [
        "(training loss per config: no figure: needs per-step training losses (step rows with step and train_loss); "
        "none of the runs records a step row)",
        "(eval BPB curves per config: no figure: needs 2 or more evals per run during training (eval rows with step "
        "and val_bpb; a clowncar sweep writes them when train.val_every > 0); none of the runs records an eval row)",
        "(quantization gap vs loops: no figure: needs each run's quantization gap (results val_bpb and q_val_bpb, or "
        "sliding_val_bpb and q_sliding_val_bpb: BPB before and after quantization) and its loop count "
        "(model.crawler_loops); of the 174 runs, 0 record a gap and 174 a loop count)",
        "(BPB vs width: no figure: needs BPB at 2 or more model widths (result model_dim, or config model.model_dim "
        "when it is not auto); none of the 174 runs with a BPB records its width)",
        "(Pareto front of BPB against artifact bytes: no figure: needs each run's artifact_bytes (the size of its "
        "saved, compressed model) beside its BPB; of the 174 runs, 0 record artifact_bytes and 174 a BPB)"]
    assert "*Figure: top configs, every seed (embedded in report.html)*" in text
