"""The report's exploratory tables, number by number: top configs (mean, SD and t interval over seed reruns,
every seed listed), the Pareto front of BPB against artifact bytes (ties and gaps), and why Optuna importances
are skipped when they are. Hand-computed values; runs frames built as `run_table` makes them."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clowncar.analysis.explore import (
    IMPORTANCE_NOTE,
    SINGLE_RUN,
    optuna_importances,
    pareto_front,
    top_configs,
)

MODE = "quantized weights, standard eval"


def _frame(rows: list[dict], mode: str | None = MODE) -> pd.DataFrame:
    runs = pd.DataFrame(rows)
    runs.attrs["metric_mode"] = mode
    runs.attrs["gap_mode"] = "standard"  # the gap's eval mode: not always the BPB's (frames._quant_gap)
    return runs


def _run(i: int, key: str, bpb: float, seed: int | None = None, **extra: object) -> dict:
    return {"run_id": f"s/{i}", "label": f"cfg-{key}", "config_key": key, "seed": seed if seed is not None else i,
            "bpb": bpb, "config_hash": f"h{i}", "width": 64.0, "params": 1000.0, "quant_gap": 0.01, **extra}


def test_top_config_mean_sd_and_interval_over_its_seeds_match_hand_computation() -> None:
    runs = _frame([_run(0, "a", 2.00, seed=7, quant_gap=0.01, params=900.0),
                   _run(1, "a", 2.02, seed=8, quant_gap=0.02, params=1000.0),
                   _run(2, "a", 2.07, seed=9, quant_gap=0.03, params=1100.0)])
    (row,) = top_configs(runs)
    assert row["config"] == "cfg-a" and row["config_key"] == "a" and row["seeds"] == 3
    assert row["mean_bpb"] == pytest.approx(2.03, abs=1e-12)
    assert row["sd"] == pytest.approx(math.sqrt(0.0013), rel=1e-9)  # ddof=1: (0.03² + 0.01² + 0.04²) / 2
    half = 4.302652729749464 * math.sqrt(0.0013) / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert row["ci_low"] == pytest.approx(2.03 - half, rel=1e-9)
    assert row["ci_high"] == pytest.approx(2.03 + half, rel=1e-9)
    assert row["quant_gap"] == pytest.approx(0.02) and row["params"] == pytest.approx(1000.0)
    assert row["width"] == 64.0 and row["eval_mode"] == MODE and row["caveat"] == ""
    assert row["per_seed"] == [{"seed": 7, "bpb": 2.00, "run_ids": ["s/0"], "values": [2.00]},
                               {"seed": 8, "bpb": 2.02, "run_ids": ["s/1"], "values": [2.02]},
                               {"seed": 9, "bpb": 2.07, "run_ids": ["s/2"], "values": [2.07]}]
    assert row["runs"] == 3 and "seed_repeats" not in row
    assert row["config_hash"] == ["h0", "h1", "h2"]
    assert all(type(p["seed"]) is int and type(p["bpb"]) is float for p in row["per_seed"])


def test_two_seeds_give_an_interval_from_the_t_distribution_with_one_degree_of_freedom() -> None:
    runs = _frame([_run(0, "a", 2.0), _run(1, "a", 2.1)])
    runs["bpb"] = runs["bpb"].astype(object)  # a frame not made by run_table: values are still numbers
    (row,) = top_configs(runs)
    half = 12.706204736174698 * 0.1 / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * sd / sqrt(n)
    assert row["sd"] == pytest.approx(0.1 / math.sqrt(2), rel=1e-9)
    assert row["ci_low"] == pytest.approx(2.05 - half, rel=1e-9) and row["ci_high"] == pytest.approx(2.05 + half)


def test_configs_rank_by_mean_bpb_and_only_the_best_k_are_kept() -> None:
    rows = [_run(2 * c + s, f"c{c:02d}", 3.0 - 0.1 * c + 0.01 * s, seed=s) for c in range(12) for s in range(2)]
    ranked = top_configs(_frame(rows))
    assert [r["config_key"] for r in ranked] == [f"c{c:02d}" for c in range(11, 1, -1)]
    assert [r["config_key"] for r in top_configs(_frame(rows), k=3)] == ["c11", "c10", "c09"]
    assert ranked[0]["mean_bpb"] == pytest.approx(3.0 - 1.1 + 0.005)


def test_a_seed_run_twice_is_one_value_so_n_sd_and_interval_count_seeds() -> None:
    # the walker's case: a parent's trial at seed 1337 and its rerun's bit-identical copy, then two fresh seeds
    runs = _frame([_run(0, "a", 2.4734, seed=1337), _run(1, "a", 2.4734, seed=1337),
                   _run(2, "a", 2.4588, seed=42), _run(3, "a", 2.4647, seed=2025)])
    (row,) = top_configs(runs)
    per_seed = [2.4734, 2.4588, 2.4647]  # one value per seed: mean 2.465633..., not the 4 runs' 2.467575
    mean = sum(per_seed) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / 2)  # ddof=1 over 3 seeds, not 4 runs
    half = 4.302652729749464 * sd / math.sqrt(3)  # t(0.975, df=2), not df=3
    assert (row["seeds"], row["runs"]) == (3, 4)
    assert row["mean_bpb"] == pytest.approx(mean, rel=1e-12) and row["sd"] == pytest.approx(sd, rel=1e-9)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((mean - half, mean + half), rel=1e-9)
    assert row["seed_repeats"] == [{"seed": 1337, "runs": 2}]
    assert row["caveat"] == "seed 1337 ran 2 times, averaged into one value"
    assert row["per_seed"][0] == {"seed": 1337, "bpb": 2.4734, "run_ids": ["s/0", "s/1"], "values": [2.4734, 2.4734]}
    assert [p["seed"] for p in row["per_seed"]] == [1337, 42, 2025]


def test_repeats_of_one_seed_at_different_values_average_before_the_mean_over_seeds() -> None:
    runs = _frame([_run(0, "a", 2.0, seed=1), _run(1, "a", 2.2, seed=1), _run(2, "a", 2.3, seed=2)])
    (row,) = top_configs(runs)
    assert row["seeds"] == 2 and row["mean_bpb"] == pytest.approx((2.1 + 2.3) / 2)  # not (2.0 + 2.2 + 2.3) / 3
    assert row["sd"] == pytest.approx(0.2 / math.sqrt(2), rel=1e-9)


def test_a_config_run_twice_at_one_seed_is_one_seed_with_its_own_caveat() -> None:
    (row,) = top_configs(_frame([_run(0, "a", 1.9, seed=5), _run(1, "a", 1.9, seed=5)]))
    assert (row["seeds"], row["runs"], row["sd"]) == (1, 2, None) and "ci_low" not in row
    assert row["caveat"] == "one seed (n = 1), run 2 times: no seed repeat, its mean is one seed's value"


def test_equal_seed_values_give_a_zero_sd_and_no_interval() -> None:
    (row,) = top_configs(_frame([_run(0, "a", 1.95), _run(1, "a", 1.95)]))
    assert row["sd"] == 0.0 and "ci_low" not in row and "ci_high" not in row


def test_a_single_run_has_no_sd_and_carries_the_caveat() -> None:
    (row,) = top_configs(_frame([_run(0, "a", 1.9)]))
    assert row["sd"] is None and row["caveat"] == SINGLE_RUN and "ci_low" not in row


def test_runs_without_a_score_are_left_out_and_unrecorded_columns_are_none() -> None:
    runs = _frame([_run(0, "a", 2.0, quant_gap=np.nan, width=np.nan, params=np.nan),
                   _run(1, "a", np.nan, quant_gap=0.5, width=128.0, params=5.0),
                   _run(2, "b", np.nan)], mode=None)
    (row,) = top_configs(runs)
    assert row["seeds"] == 1 and row["mean_bpb"] == 2.0
    assert row["quant_gap"] is None and row["width"] is None and row["params"] is None
    assert row["eval_mode"] is None
    runs = _frame([_run(0, "a", 2.0), _run(1, "a", 2.1)]).drop(columns=["quant_gap"])
    assert top_configs(runs)[0]["quant_gap"] is None


def test_per_seed_values_keep_a_missing_or_unreadable_seed_as_none() -> None:
    runs = _frame([_run(0, "a", 2.0), _run(1, "a", 2.1), _run(2, "a", 2.2)])
    runs["seed"] = pd.Series([3.0, np.nan, "x"], dtype=object)
    assert [p["seed"] for p in top_configs(runs)[0]["per_seed"]] == [3, None, None]


def test_config_hashes_are_distinct_sorted_and_skip_missing_ones() -> None:
    runs = _frame([_run(0, "a", 2.0), _run(1, "a", 2.1), _run(2, "a", 2.2), _run(3, "a", 2.3)])
    runs["config_hash"] = ["zz", None, "aa", "zz"]
    assert top_configs(runs)[0]["config_hash"] == ["aa", "zz"]


def test_pareto_front_on_ties_keeps_the_smaller_run_and_the_better_score() -> None:
    runs = _frame([_run(0, "a", 2.0, artifact_bytes=100.0),
                   _run(1, "b", 1.9, artifact_bytes=100.0),   # same bytes, better: it, not run 0
                   _run(2, "c", 1.9, artifact_bytes=150.0),   # same score, bigger: dominated
                   _run(3, "d", 1.8, artifact_bytes=200.0, width=np.nan),
                   _run(4, "e", 1.85, artifact_bytes=300.0),  # bigger and worse than run 3
                   _run(5, "f", 1.7, artifact_bytes=np.nan),  # no size: not comparable
                   _run(6, "g", np.nan, artifact_bytes=10.0)])
    front = pareto_front(runs)
    assert [f["run_id"] for f in front] == ["s/1", "s/3"]
    assert front[0] == {"run_id": "s/1", "label": "cfg-b", "bpb": 1.9, "artifact_bytes": 100.0, "width": 64.0,
                        "params": 1000.0, "quant_gap": 0.01, "quant_gap_mode": "standard", "eval_mode": MODE}
    assert front[1]["width"] is None and type(front[1]["artifact_bytes"]) is float
    assert pareto_front(runs.drop(columns=["artifact_bytes"])) == []
    assert pareto_front(runs.iloc[0:0]) == []


def test_pareto_front_without_width_params_or_gap_columns_reports_none() -> None:
    runs = _frame([{"run_id": "r", "label": "L", "bpb": 1.5, "artifact_bytes": 9}])
    assert pareto_front(runs) == [{"run_id": "r", "label": "L", "bpb": 1.5, "artifact_bytes": 9.0, "width": None,
                                   "params": None, "quant_gap": None, "quant_gap_mode": None,
                                   "eval_mode": MODE}]


def _study(url: str, name: str, n: int, directions: list[str] | None = None, params: bool = True,
           fail: int = 0) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=url, directions=directions,
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(t: optuna.Trial) -> float | tuple[float, float]:
        lr = t.suggest_float("lr", 0, 1) if params else 0.5
        seed = t.suggest_int("seed", 1, 3)
        return (lr, lr + seed) if directions and len(directions) > 1 else lr + 0.1 * seed

    study.optimize(objective, n_trials=n)
    for _ in range(fail):
        study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)


def test_optuna_importances_say_why_they_are_skipped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert optuna_importances(None, "sw") == {"status": "skipped", "reason": "no storage URL"}
    assert optuna_importances("", "sw")["reason"] == "no storage URL"
    assert optuna_importances(url, "sw") == {"status": "skipped",
                                             "reason": "the database holds no Optuna study tables"}
    _study(url, "one", 1, fail=3)
    assert optuna_importances(url, "one") == {"status": "skipped", "reason": "1 completed trial(s) in study 'one'"}
    assert optuna_importances(url, "other") == {
        "status": "skipped", "reason": "no Optuna study named 'other' (imported sweeps have none)"}
    _study(url, "two", 6, directions=["minimize", "minimize"])
    assert optuna_importances(url, "two") == {"status": "skipped",
                                              "reason": "study 'two' has 2 objectives: importances are for one"}
    _study(url, "seedonly", 5, params=False)
    assert optuna_importances(url, "seedonly") == {"status": "skipped",
                                                   "reason": "only the seed varies in study 'seedonly'"}


def test_optuna_importances_count_only_completed_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    _study(url, "sw", 2, fail=4)
    imp = optuna_importances(url, "sw")
    assert imp["status"] == "ok" and imp["study"] == "sw" and imp["trials"] == 2
    assert imp["note"] == IMPORTANCE_NOTE and list(imp["importances"]) == ["lr"]
    assert type(imp["importances"]["lr"]) is float and imp["importances"]["lr"] == pytest.approx(1.0)


def test_an_unreadable_optuna_database_is_skipped_without_its_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://someone:hunter2secret@127.0.0.1:1/none"
    res = optuna_importances(url, "sw")
    assert res == {"status": "skipped", "reason": "the database could not be read (OperationalError)"}


def test_a_database_whose_studies_table_is_not_optunas_is_left_untouched(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("create table studies (name text)"))
    assert optuna_importances(url, "sw") == {"status": "skipped",
                                             "reason": "the database holds no Optuna study tables"}
    assert sa.inspect(engine).get_table_names() == ["studies"]
    engine.dispose()


def test_optuna_tables_of_an_older_schema_are_skipped_with_the_error_type(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'o.db'}"
    _study(url, "sw", 4)
    engine = sa.create_engine(url)
    with engine.begin() as c:  # as an Optuna 3.0 storage left it: Optuna asks for `optuna storage upgrade`
        c.execute(sa.text("update alembic_version set version_num = 'v3.0.0.a'"))
    engine.dispose()
    assert optuna_importances(url, "sw") == {"status": "skipped",
                                             "reason": "the Optuna tables could not be read (RuntimeError)"}


def test_an_importance_error_is_reported_without_the_store_password(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'o.db'}"
    _study(url, "sw", 4)

    def fail(study: optuna.Study, params: list[str]) -> dict[str, float]:
        raise ValueError("evaluator lost postgresql+psycopg://me:hunter2@127.0.0.1/db")

    # optuna.importance is a lazy proxy that swaps itself for the module on first use: patch the module itself,
    # or this test passes only after another has used it
    importance = importlib.import_module("optuna.importance")
    monkeypatch.setattr(importance, "get_param_importances", fail)
    assert optuna_importances(url, "sw") == {
        "status": "skipped", "reason": "ValueError: evaluator lost postgresql+psycopg://me:***@127.0.0.1/db"}


def test_importances_are_read_only_where_every_optuna_table_exists(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import sqlalchemy as sa

    from clowncar.analysis import explore

    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as c:  # Optuna's three core tables, none of the others: Optuna would add them
        for name in ("studies", "trials", "version_info"):
            c.execute(sa.text(f"create table {name} (id int)"))
    full = explore.optuna_tables()
    assert {"study_directions", "trial_values"} <= full
    assert explore._has_optuna_tables(url) is False
    assert optuna_importances(url, "sw")["reason"] == "the database holds no Optuna study tables"
    assert sa.inspect(engine).get_table_names() == ["studies", "trials", "version_info"]
    monkeypatch.setitem(sys.modules, "optuna.storages._rdb.models", None)  # an Optuna that moved its models
    assert explore.optuna_tables() == explore.OPTUNA_CORE_TABLES and explore._has_optuna_tables(url) is True
    engine.dispose()
    url2 = f"sqlite:///{tmp_path / 'o.db'}"
    _study(url2, "sw", 2)
    assert set(sa.inspect(sa.create_engine(url2)).get_table_names()) == {*full, "alembic_version"}


def test_three_equal_seed_values_give_a_zero_sd_not_the_rounding_noise_of_their_mean() -> None:
    """np.std([0.7] * 3, ddof=1) is 1.36e-16 (their mean is not exactly 0.7): the table says 0, with no interval."""
    (row,) = top_configs(_frame([_run(0, "a", 0.7), _run(1, "a", 0.7), _run(2, "a", 0.7)]))
    assert row["sd"] == 0.0 and "ci_low" not in row and "ci_high" not in row


def test_each_top_config_names_the_eval_mode_of_its_quantization_gap() -> None:
    runs = _frame([_run(0, "a", 2.0), _run(1, "b", 2.1)])
    runs.attrs["gap_mode"] = "sliding"  # the gap's mode, not the BPB's (frames._quant_gap)
    assert [(row["quant_gap_mode"], row["eval_mode"]) for row in top_configs(runs)] == [("sliding", MODE)] * 2


def test_a_top_config_or_pareto_run_without_a_quantization_gap_names_no_gap_mode() -> None:
    runs = _frame([_run(0, "a", 2.0, artifact_bytes=100.0), _run(1, "b", 1.9, artifact_bytes=200.0, quant_gap=np.nan)])
    assert {row["config"]: row["quant_gap_mode"] for row in top_configs(runs)} == {"cfg-a": "standard", "cfg-b": None}
    assert [(f["quant_gap"], f["quant_gap_mode"]) for f in pareto_front(runs)] == [(0.01, "standard"), (None, None)]
    none = _frame([_run(0, "a", 2.0, quant_gap=np.nan)])
    none.attrs["gap_mode"] = None  # no run of the table has a gap (frames._quant_gap)
    assert [row["quant_gap_mode"] for row in top_configs(none)] == [None]


def test_a_missing_gap_read_from_a_table_column_names_no_gap_mode() -> None:
    from clowncar.analysis.explore import gap_mode

    runs = _frame([_run(0, "a", 2.0)])
    runs.attrs["gap_mode"] = "sliding"
    # the report's run table passes the column's values as they are: NaN or pd.NA where a run has no gap
    assert [gap_mode(runs, g) for g in (0.01, None, np.nan, pd.NA, 0.0)] == ["sliding", None, None, None, "sliding"]


def test_several_seeds_run_more_than_once_are_each_named_and_each_averaged() -> None:
    from clowncar.analysis.explore import repeats_text

    runs = _frame([_run(0, "a", 2.0, seed=1), _run(1, "a", 2.2, seed=1), _run(2, "a", 2.3, seed=2),
                   _run(3, "a", 2.4, seed=2), _run(4, "a", 2.5, seed=2)])
    (row,) = top_configs(runs)
    assert row["seed_repeats"] == [{"seed": 1, "runs": 2}, {"seed": 2, "runs": 3}]
    assert row["caveat"] == "seed 1 ran 2 times, seed 2 ran 3 times, each averaged into one value"
    assert repeats_text([{"seed": 7, "runs": 4}]) == "seed 7 ran 4 times, averaged into one value"
