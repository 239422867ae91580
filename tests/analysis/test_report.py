"""The report: three files written atomically, every number in the JSON, one self-contained HTML file whose
images all load in headless Chromium without console errors; Optuna importances read through Optuna's API."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

from clowncar.analysis.explore import optuna_importances, pareto_front
from clowncar.analysis.frames import run_table
from clowncar.analysis.report import analyse, printed_summary, write


@pytest.fixture
def simulated_analysis(sims):
    rng = np.random.default_rng(11)
    trials, evals = sims["curves"](rng, boost_per_loop=0.03)
    steps, probes = sims["steps"](rng, runs=len(trials), steps=90, cadence=2, probe_every=5)
    uid = dict(zip([f"run{i}" for i in range(len(trials))], trials["trial_uid"], strict=True))
    steps["trial_uid"], probes["trial_uid"] = steps["trial_uid"].map(uid), probes["trial_uid"].map(uid)
    return analyse(["sim"], trials, steps, evals, probes)


def test_report_writes_markdown_html_and_json_with_every_number(simulated_analysis, tmp_path):
    paths = write(tmp_path / "out", simulated_analysis)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json", "report.md"]
    data = json.loads(paths["report.json"].read_text())
    assert [t["key"] for t in data["tests"]][:2] == ["1a_cn_loss", "1b_next_step"] and len(data["tests"]) == 9
    assert {row["test"] for row in data["correction"]} <= {t["key"] for t in data["tests"]}
    assert len(data["provenance"]["runs"]) == 12 and data["provenance"]["git_commits"] == ["abc1234"]
    assert all("config_hash" in r for r in data["provenance"]["runs"])
    md = paths["report.md"].read_text()
    assert "## Multiple-comparison correction (holm)" in md and "4_early_boost" in md
    assert "p_adjusted" in md and "p_holm" not in md
    summary = printed_summary(simulated_analysis)
    assert "runs: 12" in summary and "4_early_boost" in summary


def test_report_json_writes_counts_as_whole_numbers_and_measurements_as_floats(simulated_analysis, tmp_path):
    data = json.loads(write(tmp_path, simulated_analysis)["report.json"].read_text())
    run = data["runs"][0]
    assert all(type(run[k]) is int for k in ("seed", "width", "loops", "params", "steps")), run
    assert type(run["artifact_bytes"]) is int and type(run["bpb"]) is float
    assert all(type(row["width"]) is int for row in data["pareto_front"])
    assert all(type(t["n_runs"]) is int for t in data["tests"])


def test_html_report_is_one_self_contained_file(simulated_analysis, tmp_path):
    html = write(tmp_path, simulated_analysis)["report.html"].read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", html), "external resource in the HTML report"


def test_html_report_opens_in_headless_chromium_with_every_image_loaded(simulated_analysis, tmp_path, chromium):
    page = write(tmp_path / "r", simulated_analysis)["report.html"]
    seen = chromium(page, tmp_path / "profile")
    assert len(seen["images"]) >= 4
    assert all(complete and width > 0 for complete, width in seen["images"]), seen["images"]
    assert seen["errors"] == []
    assert seen["page_width"] <= 1200  # wide tables scroll in their own box; the page gets no horizontal scrollbar


def test_pareto_front_keeps_only_undominated_runs(sims):
    runs = run_table(sims["grid"](np.random.default_rng(4)))
    front = pareto_front(runs)
    assert front and all(a["bpb"] > b["bpb"] for a, b in itertools.pairwise(front))
    for f in front:
        better = runs[(runs["bpb"] < f["bpb"]) & (runs["artifact_bytes"] <= f["artifact_bytes"])]
        assert better.empty


def test_optuna_importances_come_from_the_study_named_after_the_sweep(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="sw", storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 3 * t.suggest_float("lr", 0, 1) + 0.01 * t.suggest_int("loops", 1, 4), n_trials=16)
    imp = optuna_importances(url, "sw")
    assert imp["status"] == "ok" and set(imp["importances"]) == {"lr", "loops"}
    assert imp["importances"]["lr"] > imp["importances"]["loops"]
    assert "exploratory" in imp["note"]
    assert optuna_importances(url, "imported")["status"] == "skipped"


def test_optuna_importances_skip_without_touching_a_database_with_no_study(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("create table clowncar_x (a int)"))
    res = optuna_importances(url, "legacy")
    assert res["status"] == "skipped"
    assert sa.inspect(engine).get_table_names() == ["clowncar_x"]  # Optuna created no tables
    engine.dispose()
