"""The per-run tables of tests 1a and 1b name each run by its sweep and label, not by its id alone (walk 6, F12:
`tsv-b949686c7e521aee | -0.01167` told a reader nothing about which sweep the row was)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from clowncar.analysis.cn_steps import cn_tests
from clowncar.analysis.report import analyse, document, to_json
from clowncar.analysis.run_names import run_names

STEPS = 120
T = np.arange(1, STEPS + 1)
IS_C = (T - 1) % 3 == 0


def _steps(uid: str, kinds: np.ndarray, seed: int) -> pd.DataFrame:
    loss = 3 + 3 * np.exp(-T / 40) + np.random.default_rng(seed).normal(0, 0.01, STEPS)
    return pd.DataFrame({"trial_uid": uid, "step": T, "kind": kinds, "train_loss": loss})


def _trial(uid: str, sweep: str, seed: int, loops: int) -> dict[str, object]:
    return {"trial_uid": uid, "sweep": sweep, "status": "ok", "data.dataset": "demo",
            "data.train_glob": "fineweb_train_*.bin", "train.train_batch_tokens": 8192, "train.train_seq_len": 128,
            "train.seed": seed, "model.crawler_loops": loops, "model.num_crawler_layers": 1,
            "model.num_flat_layers": 2, "model.model_dim": 64, "q_val_bpb": 2.0 + 0.01 * seed}


def two_sweeps(runs: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`runs` alternating runs (cadence 3) in sweep `cadence3` and their all-N references in sweep `always_n`,
    one per seed, all on one stream; their ids say nothing of either."""
    steps = [_steps(f"t{i}a", np.where(IS_C, "C", "N"), 10 + i) for i in range(runs)]
    steps += [_steps(f"t{i}b", np.full(STEPS, "N"), 50 + i) for i in range(runs)]
    trials = [_trial(f"t{i}a", "cadence3", i, loops=2) for i in range(runs)]
    trials += [_trial(f"t{i}b", "always_n", i, loops=3) for i in range(runs)]
    return pd.concat(steps, ignore_index=True), pd.DataFrame(trials)


def test_the_within_run_and_reference_tables_name_each_run_by_its_sweep_and_label() -> None:
    steps, trials = two_sweeps()
    loss, nxt = cn_tests(steps, None, trials)
    assert [(r["run"], r["sweep"], r["label"]) for r in loss.tables["within_run_hac"]] == [
        (f"t{i}a", "cadence3", "2f+1cx2 d64") for i in range(3)]
    assert list(loss.tables["within_run_hac"][0])[:4] == ["run", "sweep", "label", "coef"]  # beside the id
    assert [(r["sweep"], r["reference"], r["reference_sweep"]) for r in loss.tables["reference_runs"]] == [
        ("cadence3", f"t{i}b", "always_n") for i in range(3)]
    assert {r["sweep"] for r in nxt.tables["per_run"]} <= {"cadence3"}


def test_the_report_shows_the_sweep_beside_each_run_in_markdown_html_and_json() -> None:
    steps, trials = two_sweeps()
    a = analyse(["cadence3", "always_n"], trials, steps)
    md = document(a).markdown()
    assert "| run | sweep | label | coef | ci_low |" in md
    assert "| t0a | cadence3 | 2f+1cx2 d64 | " in md
    assert "| run | sweep | label | reference | reference_sweep | same_model |" in md
    assert "<td>t1a</td><td>cadence3</td><td>2f+1cx2 d64</td>" in document(a).html("r")
    cn = json.loads(json.dumps(to_json(a)))["tests"][0]
    assert cn["tables"]["reference_runs"][2]["reference_sweep"] == "always_n"


def test_a_label_that_is_only_the_id_again_and_an_unfinished_run_leave_the_label_empty() -> None:
    trials = pd.DataFrame({"trial_uid": ["tsv-1", "tsv-2"], "sweep": ["clean", "broken"],
                           "status": ["ok", "failed"]})
    assert run_names(trials) == {"tsv-1": ("clean", None), "tsv-2": ("broken", None)}


def test_without_a_trials_frame_the_tables_keep_their_columns() -> None:
    steps, _ = two_sweeps()
    loss, _ = cn_tests(steps)
    assert "sweep" not in loss.tables["within_run_hac"][0]


def test_a_run_or_reference_the_trials_frame_does_not_hold_gets_empty_names() -> None:
    # A steps frame may hold runs whose trial rows were not read (another sweep's reference, a trace imported
    # without its trials): their rows keep the table's shape, with no sweep or label.
    from clowncar.analysis.result import TestResult
    from clowncar.analysis.run_names import name_runs

    _, trials = two_sweeps(1)
    res = TestResult(key="1a_cn_loss", title="t", question="q", method="m")
    res.tables["reference_runs"] = [{"run": "t0a", "reference": "elsewhere", "same_model": True},
                                    {"run": "gone", "reference": "t0b", "same_model": False}]
    (named,) = name_runs([res], trials)
    assert named.tables["reference_runs"] == [
        {"run": "t0a", "sweep": "cadence3", "label": "2f+1cx2 d64", "reference": "elsewhere",
         "reference_sweep": None, "same_model": True},
        {"run": "gone", "sweep": None, "label": None, "reference": "t0b", "reference_sweep": "always_n",
         "same_model": False}]


def test_an_empty_trials_frame_names_nothing() -> None:
    _, trials = two_sweeps(1)
    assert run_names(trials.iloc[0:0]) == {} and run_names(None) == {}
