"""What the report's and the export's tables say about a config: the seed is a replicate, never a
hyperparameter; a config run once says so wherever it ranks; every table has width, parameter count,
quantization gap and eval mode where the trial records them (imported sweeps too)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clowncar.analysis.explore import SINGLE_RUN, optuna_importances, top_configs
from clowncar.analysis.frames import run_table
from clowncar.analysis.report import analyse, document, printed_summary
from clowncar.store.summary import with_summary


def test_the_seed_is_never_an_importance_even_when_it_moves_the_score_most(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="sw", storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 0.1 * t.suggest_float("lr", 0, 1) + 3.0 * (t.suggest_categorical("train.seed", [1, 2])
                                                                       == 2), n_trials=16)
    imp = optuna_importances(url, "sw")
    assert imp["status"] == "ok" and set(imp["importances"]) == {"lr"}
    assert "seed is left out" in imp["note"]


def _runs(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    """Trials of configs named by their crawler loops; (config loops, seed, q_val_bpb)."""
    frame = pd.DataFrame([{"sweep": "s", "trial_uid": f"s/{i}", "status": "ok", "seed": seed, "train.seed": seed,
                           "config_hash": f"h{i}", "q_val_bpb": bpb, "val_bpb": bpb - 0.01, "quant_gap": 0.01,
                           "model_dim": 64, "params": 1000 * loops, "model.arch": "crawler",
                           "model.crawler_loops": loops, "model.num_flat_layers": 2, "model.num_crawler_layers": 1}
                          for i, (loops, seed, bpb) in enumerate(rows)])
    return frame


def test_a_config_run_once_carries_a_caveat_wherever_it_ranks() -> None:
    trials = _runs([(2, 1, 2.00), (2, 2, 2.02), (3, 1, 1.90), (1, 1, 2.10), (1, 2, 2.12)])
    rows = top_configs(run_table(trials))
    assert [r["seeds"] for r in rows] == [1, 2, 2]  # the single run ranks first on its one value ...
    assert rows[0]["caveat"] == SINGLE_RUN and all(r["caveat"] == "" for r in rows[1:])  # ... and says so
    a = analyse(["s"], trials)
    assert "a single run" in printed_summary(a).splitlines()[-1]
    assert SINGLE_RUN in document(a).markdown()


def test_report_tables_carry_width_params_quant_gap_and_eval_mode() -> None:
    trials = _runs([(2, 1, 2.00), (2, 2, 2.02), (3, 1, 1.90)])
    a = analyse(["s"], trials)
    for row in a["top_configs"]:
        assert row["width"] == 64 and row["params"] > 0 and abs(row["quant_gap"] - 0.01) < 1e-9
        assert row["eval_mode"] == "quantized weights, standard eval"
    for row in a["provenance"]["runs"]:
        assert {"width", "params", "quant_gap", "eval_mode"} <= set(row) and row["width"] == 64
    trials["artifact_bytes"] = [3e5, 2e5, 1e5]
    for row in analyse(["s"], trials)["pareto_front"]:
        assert row["width"] == 64 and row["params"] > 0 and row["eval_mode"] == "quantized weights, standard eval"
    text = document(a).markdown()
    header = next(line for line in text.splitlines() if line.startswith("| config | seeds"))
    assert all(c in header for c in ("width", "params", "quant_gap", "eval_mode", "caveat"))


def test_export_summary_columns_for_worker_and_imported_trials() -> None:
    worker = {"sweep": "w", "trial_uid": "w/0", "source": "sweep", "model_dim": 64, "params": 164237,
              "val_bpb": 2.30, "q_val_bpb": 2.31, "quant_gap": 0.01, "sliding_val_bpb": 2.28,
              "q_sliding_val_bpb": 2.29, "model.model_dim": 64}
    imported_log = {"sweep": "i", "trial_uid": "i/0", "source": "import", "params": 17059912, "val_bpb": 1.2172,
                    "q_val_bpb": 1.2244, "headline_bpb": 1.2244, "headline_mode": "standard",
                    "model.model_dim": np.nan}
    imported_csv = {"sweep": "c", "trial_uid": "c/0", "source": "import", "val_bpb": 2.25,
                    "model.model_dim": "auto"}
    sliding_only = {"sweep": "s", "trial_uid": "s/0", "source": "import", "sliding_val_bpb": 1.10,
                    "q_sliding_val_bpb": 1.12, "model.model_dim": 512}
    out = with_summary(pd.DataFrame([worker, imported_log, imported_csv, sliding_only]))
    assert list(out.columns[:10]) == ["sweep", "trial_uid", "source", "bpb", "bpb_metric", "eval_mode", "width",
                                      "params", "quant_gap", "quant_gap_mode"]
    w, i, c, s = (out.iloc[k] for k in range(4))
    assert (w["bpb"], w["bpb_metric"], w["eval_mode"], w["width"], w["quant_gap"], w["quant_gap_mode"]) == \
        (2.29, "q_sliding_val_bpb", "sliding", 64, 0.01, "standard")
    assert (i["bpb_metric"], i["eval_mode"], i["params"], i["quant_gap_mode"]) == \
        ("headline_bpb", "standard", 17059912, "standard")
    assert abs(i["quant_gap"] - 0.0072) < 1e-9 and pd.isna(i["width"])
    assert c["eval_mode"] == "standard" and pd.isna(c["width"]) and pd.isna(c["params"]) and pd.isna(c["quant_gap"])
    assert (s["width"], s["quant_gap_mode"]) == (512, "sliding") and abs(s["quant_gap"] - 0.02) < 1e-9


def test_summary_columns_of_a_sweep_without_imports_or_a_source_column() -> None:
    # what a worker-only frame looks like after filtering: no headline_* or source columns (the summary leads),
    # an index that is not 0..n-1, worker widths of 0 (unknown: the config's) and 1, params of 0 (unknown) and 1,
    # no stored quant_gap column (the gap is computed), a crashed trial with no score at all
    rows = [{"trial_uid": "a", "model_dim": 0, "model.model_dim": 512, "params": 0, "val_bpb": 2.5, "q_val_bpb": 2.52},
            {"trial_uid": "b", "model_dim": 1, "model.model_dim": 64, "params": 1, "sliding_val_bpb": 2.4,
             "q_sliding_val_bpb": 2.43},
            {"trial_uid": "c", "model_dim": 96, "model.model_dim": 64, "params": 5}]
    out = with_summary(pd.DataFrame(rows, index=[3, 7, 9]))
    assert list(out.columns[:8]) == ["bpb", "bpb_metric", "eval_mode", "width", "params", "quant_gap",
                                     "quant_gap_mode", "trial_uid"]
    assert list(out.index) == [3, 7, 9] and list(out["trial_uid"]) == ["a", "b", "c"]
    assert out["bpb"].dtype == float and out["width"].dtype == float and out["params"].dtype == float
    assert out["bpb"].tolist()[:2] == [2.52, 2.43] and math.isnan(out.loc[9, "bpb"])
    assert out["bpb_metric"].tolist()[:2] == ["q_val_bpb", "q_sliding_val_bpb"]
    assert out["eval_mode"].tolist()[:2] == ["standard", "sliding"]
    assert out["width"].tolist() == [512.0, 1.0, 96.0]
    assert out["params"].tolist()[1:] == [1.0, 5.0] and math.isnan(out.loc[3, "params"])
    assert out["quant_gap"].tolist()[:2] == pytest.approx([0.02, 0.03]) and math.isnan(out.loc[9, "quant_gap"])
    assert out["quant_gap_mode"].tolist()[:2] == ["standard", "sliding"]
    for col in ("bpb_metric", "eval_mode", "quant_gap_mode"):  # text columns: missing where nothing is known
        assert out[col].dtype == object and pd.isna(out.loc[9, col]), col


def test_summary_columns_of_a_frame_without_any_score_column_are_empty() -> None:
    out = with_summary(pd.DataFrame({"source": ["sweep", "import"], "trial_uid": ["x/0", "y/0"]}, index=[5, 6]))
    assert list(out.columns) == ["source", "bpb", "bpb_metric", "eval_mode", "width", "params", "quant_gap",
                                 "quant_gap_mode", "trial_uid"]
    assert list(out.index) == [5, 6]
    for col in ("bpb", "width", "params", "quant_gap"):
        assert out[col].dtype == float and out[col].isna().all(), col
    for col in ("bpb_metric", "eval_mode", "quant_gap_mode"):
        assert out[col].dtype == object and out[col].isna().all(), col


def test_store_export_of_imported_sweeps_writes_the_summary_columns(legacy_runs: Path, run_cli, tmp_path: Path
                                                                     ) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    r = run_cli("import", str(legacy_runs / "micro_crawler"), str(legacy_runs / "train_logs"), "--store", store)
    assert r.returncode == 0, r.stderr
    r = run_cli("store", "export", "--sweep", "sweep_micro_crawler", "--format", "csv", "--out", "x", "--store",
                store)
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(tmp_path / "x" / "sweep_micro_crawler_trials.csv")
    assert frame["width"].notna().all() and frame["params"].notna().all() and frame["eval_mode"].notna().all()
