"""The rules behind the labels and over-cap marks of the report's config tables (`analysis/shown_configs.py`),
one at a time: which settings a shared label is extended by, how they are named and written, which cap a run is
held to, and what a row of several runs says."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from clowncar.analysis import shown_configs as sc
from clowncar.analysis.frames import run_table


def _trial(uid: str, bpb: float = 2.5, **settings: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sweep": "s", "trial_uid": uid, "status": "ok", "seed": 1337, "config_hash": f"h-{uid}",
                            "q_sliding_val_bpb": bpb, "artifact_bytes": 400_000.0, "model.arch": "crawler",
                            "model.model_dim": 64, "train.iterations": 30}
    merged = {**base, **settings}
    merged.setdefault("train.seed", merged["seed"])  # the config's seed is the run's
    return merged


def _runs(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    trials = pd.DataFrame(rows)
    return run_table(trials), trials


def _rows(runs: pd.DataFrame, label: str = "L") -> list[dict[str, Any]]:
    return [{"config": label, "config_key": k} for k in runs["config_key"].astype(str)]


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    return [r["config"] for r in rows]


def test_only_the_settings_that_differ_extend_a_shared_label_each_config_showing_its_own_value() -> None:
    runs, trials = _runs([_trial("a", **{"train.iterations": 30}), _trial("b", **{"train.iterations": 400})])
    rows = _rows(runs)
    sc._distinguish(rows, "config", [r["config_key"] for r in rows], sc._config_settings(runs, trials), {})
    assert _labels(rows) == ["L iters 30", "L iters 400"]


def test_a_label_shared_by_no_other_config_is_left_as_it_was() -> None:
    runs, trials = _runs([_trial("a", **{"train.iterations": 30}), _trial("b", **{"train.iterations": 400})])
    rows = [{"config": "A", "config_key": runs["config_key"].iloc[0]},
            {"config": "B", "config_key": runs["config_key"].iloc[1]}]
    sc._distinguish(rows, "config", [r["config_key"] for r in rows], sc._config_settings(runs, trials), {})
    assert _labels(rows) == ["A", "B"]


def test_two_rows_of_one_config_under_one_label_are_not_extended() -> None:
    runs, trials = _runs([_trial("a"), _trial("b", seed=42)])
    assert runs["config_key"].nunique() == 1  # the seed is not part of the config
    rows = _rows(runs)
    sc._distinguish(rows, "config", [r["config_key"] for r in rows], sc._config_settings(runs, trials), {})
    assert _labels(rows) == ["L", "L"]


def test_a_setting_one_config_lacks_is_written_as_a_dash() -> None:
    runs, trials = _runs([_trial("a", **{"eval.max_tokens": 16_384}), _trial("b")])
    rows = _rows(runs)
    sc._distinguish(rows, "config", [r["config_key"] for r in rows], sc._config_settings(runs, trials), {})
    assert _labels(rows) == ["L eval_tokens 16384", "L eval_tokens -"]


def test_at_most_four_differing_settings_are_named_and_the_rest_counted() -> None:
    many = {"train.iterations": 1, "train.lr": 0.1, "train.cadence": 1, "model.mlp_mult": 2, "quant.bits": 6,
            "eval.stride": 64}
    other = {k: v * 2 for k, v in many.items()}
    runs, trials = _runs([_trial("a", **many), _trial("b", **other)])
    rows = _rows(runs)
    sc._distinguish(rows, "config", [r["config_key"] for r in rows], sc._config_settings(runs, trials), {})
    assert _labels(rows) == ["L iters 1 lr 0.1 cadence 1 mlp_mult 2 +2 more",
                             "L iters 2 lr 0.2 cadence 2 mlp_mult 4 +2 more"]


def test_exactly_four_differing_settings_are_all_named_without_a_count() -> None:
    four = {"train.iterations": 1, "train.lr": 0.1, "train.cadence": 1, "model.mlp_mult": 2}
    runs, trials = _runs([_trial("a", **four), _trial("b", **{k: v * 2 for k, v in four.items()})])
    rows = _rows(runs)
    sc._distinguish(rows, "config", [r["config_key"] for r in rows], sc._config_settings(runs, trials), {})
    assert _labels(rows)[0] == "L iters 1 lr 0.1 cadence 1 mlp_mult 2"


def test_configs_that_record_no_differing_setting_are_told_apart_by_their_sweeps() -> None:
    rows = [{"config": "L", "config_key": "k1"}, {"config": "L", "config_key": "k2"}]
    sc._distinguish(rows, "config", ["k1", "k2"], {"k1": {}, "k2": {}}, {"k1": "train_v0", "k2": "train_v1"})
    assert _labels(rows) == ["L train_v0", "L train_v1"]


def test_configs_of_one_sweep_that_record_no_differing_setting_are_told_apart_by_their_key() -> None:
    rows = [{"config": "L", "config_key": "0123456789"}, {"config": "L", "config_key": "abcdefghij"}]
    sc._distinguish(rows, "config", ["0123456789", "abcdefghij"], {}, {"0123456789": "s", "abcdefghij": "s"})
    assert _labels(rows) == ["L config 01234567", "L config abcdefgh"]


def test_a_config_without_a_sweep_is_named_by_its_key_when_the_others_have_sweeps() -> None:
    rows = [{"config": "L", "config_key": "k1"}, {"config": "L", "config_key": "k2"}]
    sc._distinguish(rows, "config", ["k1", "k2"], {}, {"k1": "imports"})
    assert _labels(rows) == ["L imports", "L k2"]


def test_the_seed_is_not_a_setting_that_tells_configs_apart() -> None:
    settings = sc._config_settings(*_runs([_trial("a", **{"data.dataset": "d", "legacy.file": "f"})]))
    (only,) = settings.values()
    assert "train.seed" not in only
    assert only["data.dataset"] == "d" and only["legacy.file"] == "f" and only["train.iterations"] == "30"
    assert not any(k.startswith(("seed", "sweep", "artifact", "q_")) for k in only)


def test_a_configs_settings_are_those_of_its_first_run() -> None:
    runs, trials = _runs([_trial("a", **{"legacy.note": "first"}), _trial("b", **{"legacy.note": "second"})])
    runs = runs.assign(config_key="same")
    assert sc._config_settings(runs, trials) == {"same": {"model.arch": "crawler", "model.model_dim": "64",
                                                          "train.iterations": "30", "legacy.note": "first"}}


def test_a_key_whose_short_name_another_shares_is_named_in_full() -> None:
    names = sc._short_names(["train.lr", "quant.lr", "train.iterations", "model.mlp_mult"])
    assert names == {"train.lr": "train.lr", "quant.lr": "quant.lr", "train.iterations": "iters",
                     "model.mlp_mult": "mlp_mult"}


def test_a_short_name_from_the_table_that_clashes_with_a_last_part_is_named_in_full() -> None:
    assert sc._short_names(["train.iterations", "eval.iters"]) == {"train.iterations": "train.iterations",
                                                                   "eval.iters": "eval.iters"}


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (math.nan, "-"), (pd.NA, "-"), (True, "true"), (False, "false"), (16_000_000.0, "16000000"),
    (0.25, "0.25"), (1e-7, "1e-07"), (3, "3"), ("demo", "demo"), ([1, 2], "[1, 2]"), (np.float64(2.0), "2"),
])
def test_a_setting_is_written_as_a_reader_would_type_it(value: Any, text: str) -> None:
    assert sc._value_text(value) == text


@pytest.mark.parametrize(("value", "flagged"), [
    (True, True), (1, True), (np.bool_(True), True), (1.0, True), (False, False), (0, False), (None, False),
    (math.nan, False), (pd.NA, False), ("True", False), ("", False), ([True, True], False),
])
def test_only_a_true_over_cap_flag_counts_as_over(value: Any, flagged: bool) -> None:
    assert sc._flagged(value) is flagged


def _over(rows: list[dict[str, Any]]) -> list[str | None]:
    return sc.over_cap(*_runs(rows))


def test_a_run_is_held_to_its_own_cap_and_one_at_the_cap_is_within_it() -> None:
    out = _over([_trial("a", artifact_bytes=20_000.0, **{"quant.size_cap_bytes": 20_000}),
                 _trial("b", artifact_bytes=20_001.0, **{"quant.size_cap_bytes": 20_000})])
    assert out == [None, "over its size cap (20001 bytes > the cap of 20000): cannot be submitted"]


def test_a_run_with_no_positive_cap_of_its_own_is_held_to_the_challenges() -> None:
    out = _over([_trial("a", artifact_bytes=16_000_001.0, **{"quant.size_cap_bytes": 0}),
                 _trial("b", artifact_bytes=16_000_000.0, **{"quant.size_cap_bytes": -1}),
                 _trial("c", artifact_bytes=16_000_001.0)])
    assert out == ["over its size cap (16000001 bytes > the cap of 16000000): cannot be submitted", None,
                   "over its size cap (16000001 bytes > the cap of 16000000): cannot be submitted"]


def test_a_cap_the_sweep_applied_overrides_the_runs_own_and_a_missing_one_does_not() -> None:
    out = _over([_trial("a", artifact_bytes=500_000.0, size_cap_applied=300_000, **{"quant.size_cap_bytes": 1e9}),
                 _trial("b", artifact_bytes=500_000.0, size_cap_applied=0, **{"quant.size_cap_bytes": 1e9}),
                 _trial("c", artifact_bytes=500_000.0, size_cap_applied=math.nan, **{"quant.size_cap_bytes": 1e9})])
    assert out == ["over its size cap (500000 bytes > the cap of 300000): cannot be submitted", None, None]


def test_the_workers_over_cap_flag_marks_a_run_even_without_its_bytes() -> None:
    out = _over([_trial("a", artifact_bytes=math.nan, over_cap=True), _trial("b", artifact_bytes=math.nan),
                 _trial("c", artifact_bytes=10.0, over_cap=True)])
    assert out == ["over its size cap (unknown bytes > the cap of 16000000): cannot be submitted", None,
                   "over its size cap (10 bytes > the cap of 16000000): cannot be submitted"]


def test_without_a_trials_frame_of_the_same_runs_only_the_challenge_cap_applies() -> None:
    runs, trials = _runs([_trial("a", artifact_bytes=17_000_000.0, over_cap=False, **{"quant.size_cap_bytes": 1}),
                          _trial("b", artifact_bytes=100.0, over_cap=True)])
    expected = ["over its size cap (17000000 bytes > the cap of 16000000): cannot be submitted", None]
    assert sc.over_cap(runs, None) == expected
    assert sc.over_cap(runs, trials.iloc[:1]) == expected  # a frame of other length is not read


def test_a_failed_trial_in_the_trials_frame_does_not_shift_the_caps_of_the_runs() -> None:
    rows = [_trial("a", artifact_bytes=5_000.0, **{"quant.size_cap_bytes": 1_000}),
            _trial("x", status="diverged", artifact_bytes=5_000.0, **{"quant.size_cap_bytes": 1e9}),
            _trial("b", artifact_bytes=5_000.0, **{"quant.size_cap_bytes": 1e9})]
    trials = pd.DataFrame(rows)
    out = sc.over_cap(run_table(trials), trials)
    assert out == ["over its size cap (5000 bytes > the cap of 1000): cannot be submitted", None]


def _annotated(rows: list[dict[str, Any]], caveat: str | None = None) -> tuple[list, list, pd.DataFrame]:
    runs, trials = _runs(rows)
    top: list[dict[str, Any]] = []
    for key, group in runs.groupby("config_key", sort=False):
        top.append({"config": "L", "config_key": key, "caveat": caveat,
                    "per_seed": [{"run_ids": [str(i)]} for i in group["run_id"]]})
    front = [{"label": "L", "run_id": str(r), "bpb": float(b), "caveat": None}
             for r, b in zip(runs["run_id"], runs["bpb"], strict=True)]
    sc.annotate(top, front, runs, trials)
    return top, front, runs


def test_a_config_row_of_several_runs_counts_those_over_their_cap() -> None:
    top, _, _ = _annotated([_trial("a", seed=1, artifact_bytes=30_000.0, **{"quant.size_cap_bytes": 20_000}),
                            _trial("b", seed=2, artifact_bytes=10_000.0, **{"quant.size_cap_bytes": 20_000}),
                            _trial("c", seed=3, artifact_bytes=40_000.0, **{"quant.size_cap_bytes": 20_000})])
    (row,) = top
    assert row["over_cap_runs"] == 2
    assert row["caveat"] == "2 of 3 runs over their size cap: not submittable"


def test_an_over_cap_caveat_is_added_after_the_rows_own_caveat() -> None:
    top, _, _ = _annotated([_trial("a", artifact_bytes=30_000.0, **{"quant.size_cap_bytes": 20_000})],
                           caveat="diverged once")
    assert top[0]["caveat"] == ("diverged once; over its size cap (30000 bytes > the cap of 20000): "
                                "cannot be submitted")


def test_a_row_within_its_cap_keeps_its_caveat_and_gets_no_count() -> None:
    top, front, _ = _annotated([_trial("a")], caveat="own")
    assert top[0]["caveat"] == "own" and "over_cap_runs" not in top[0]
    assert front[0]["over_cap"] is False and front[0]["caveat"] is None


def test_a_pareto_point_over_its_cap_carries_the_reason_and_its_configs_mean() -> None:
    _, front, _ = _annotated([_trial("a", seed=1, bpb=2.0, artifact_bytes=30_000.0,
                                     **{"quant.size_cap_bytes": 20_000}),
                              _trial("b", seed=2, bpb=2.2, artifact_bytes=30_000.0,
                                     **{"quant.size_cap_bytes": 20_000})])
    assert [p["over_cap"] for p in front] == [True, True]
    assert front[0]["caveat"] == "over its size cap (30000 bytes > the cap of 20000): cannot be submitted"
    assert front[0]["config_seeds"] == 2 and front[0]["config_mean_bpb"] == pytest.approx(2.1)


def test_the_seed_variance_rows_get_distinct_labels_too() -> None:
    runs, trials = _runs([_trial("a", **{"train.iterations": 30}), _trial("b", **{"train.iterations": 40})])
    per_config = [{"config": "L", "config_key": k} for k in runs["config_key"].astype(str)]
    sc.annotate([], [], runs, trials, per_config)
    assert _labels(per_config) == ["L iters 30", "L iters 40"]


def test_pareto_labels_are_told_apart_by_their_runs_configs() -> None:
    runs, trials = _runs([_trial("a", **{"train.iterations": 30}), _trial("b", **{"train.iterations": 40})])
    front = [{"label": "L", "run_id": str(r), "bpb": 2.5} for r in runs["run_id"]]
    sc.annotate([], front, runs, trials)
    assert [p["label"] for p in front] == ["L iters 30", "L iters 40"]


def test_a_configs_mean_counts_each_seed_once() -> None:
    runs, _ = _runs([_trial("a", bpb=2.0), _trial("b", bpb=2.2), _trial("c", seed=42, bpb=3.0)])
    means = sc._config_means(runs)
    assert list(means.values()) == [(2, pytest.approx(2.55))]  # seed 1337's two runs are one unit (2.1), then 3.0


def test_unreadable_caps_and_sizes_are_read_as_not_recorded() -> None:
    out = _over([_trial("a", artifact_bytes="?", **{"quant.size_cap_bytes": 10}),
                 _trial("b", artifact_bytes=17_000_000.0, size_cap_applied="n/a", **{"quant.size_cap_bytes": "big"})])
    assert out == [None, "over its size cap (17000000 bytes > the cap of 16000000): cannot be submitted"]


def test_a_cap_of_one_byte_is_a_cap() -> None:
    out = _over([_trial("a", artifact_bytes=2.0, **{"quant.size_cap_bytes": 1}),
                 _trial("b", artifact_bytes=2.0, size_cap_applied=1, **{"quant.size_cap_bytes": 1e9})])
    assert out == ["over its size cap (2 bytes > the cap of 1): cannot be submitted"] * 2


def test_the_tables_tell_apart_configs_that_record_no_differing_setting_by_their_sweeps() -> None:
    # two imported logs of one layout whose settings were all read alike: their config keys differ by origin only
    runs, trials = _runs([_trial("a", sweep="train_v0"), _trial("b", sweep="train_v1")])
    runs = runs.assign(config_key=["k-a", "k-b"])
    top = [{"config": "L", "config_key": k, "caveat": None, "per_seed": [{"run_ids": [str(r)]}]}
           for k, r in zip(runs["config_key"], runs["run_id"], strict=True)]
    front = [{"label": "L", "run_id": str(r), "bpb": 2.5} for r in runs["run_id"]]
    sc.annotate(top, front, runs, trials)
    assert _labels(top) == ["L train_v0", "L train_v1"]
    assert [p["label"] for p in front] == ["L train_v0", "L train_v1"]


def test_a_shared_label_after_a_label_of_its_own_is_still_told_apart() -> None:
    rows = [{"config": "A", "config_key": "k1"}, {"config": "L", "config_key": "k2"},
            {"config": "L", "config_key": "k3"}]
    configs = {"k1": {"train.iterations": "1"}, "k2": {"train.iterations": "2"}, "k3": {"train.iterations": "3"}}
    sc._distinguish(rows, "config", ["k1", "k2", "k3"], configs, {})
    assert _labels(rows) == ["A", "L iters 2", "L iters 3"]


def test_a_config_without_recorded_settings_shows_a_dash_for_each_setting_the_other_names() -> None:
    rows = [{"config": "L", "config_key": "k1"}, {"config": "L", "config_key": "k2"}]
    sc._distinguish(rows, "config", ["k1", "k2"], {"k1": {"train.iterations": "30"}}, {})
    assert _labels(rows) == ["L iters 30", "L iters -"]


def test_a_key_of_several_parts_is_named_by_its_last() -> None:
    assert sc._short_names(["legacy.run.lr", "model.model_dim"]) == {"legacy.run.lr": "lr",
                                                                     "model.model_dim": "model_dim"}


def test_configs_still_alike_after_the_settings_that_split_their_label_are_told_apart_next() -> None:
    """Imported configs of one label (their folder is part of their key): one at another LR, the others alike in
    every recorded setting. The LR alone left those with one label; they get their sweeps, or, where two share
    one, their keys."""
    settings = {"k1": {"train.lr": "0.026"}, "k2": {"train.lr": "0.026"}, "k3": {"train.lr": "0.022"}}
    for sweeps, told in (({"k1": "f1", "k2": "f2", "k3": "f3"}, ["f1", "f2"]),
                         ({"k1": "s", "k2": "s", "k3": "s"}, ["config k1", "config k2"])):
        rows = [{"config": "L", "config_key": k} for k in ("k1", "k2", "k3")]
        sc._distinguish(rows, "config", ["k1", "k2", "k3"], settings, sweeps)
        assert _labels(rows) == [f"L lr 0.026 {told[0]}", f"L lr 0.026 {told[1]}", "L lr 0.022"]


def test_configs_alike_in_the_four_settings_named_are_told_apart_by_the_next_not_by_a_count() -> None:
    six = {"train.iterations": 1, "train.lr": 0.1, "train.cadence": 1, "model.mlp_mult": 2, "quant.bits": 6,
           "eval.stride": 64}
    runs, trials = _runs([_trial("a", **six), _trial("b", **{**six, "quant.bits": 5}),
                          _trial("c", **{k: v * 2 for k, v in six.items()})])
    rows = _rows(runs)
    sc._distinguish(rows, "config", [r["config_key"] for r in rows], sc._config_settings(runs, trials), {})
    assert sorted(_labels(rows)) == ["L iters 1 lr 0.1 cadence 1 mlp_mult 2 bits 5",
                                     "L iters 1 lr 0.1 cadence 1 mlp_mult 2 bits 6",
                                     "L iters 2 lr 0.2 cadence 2 mlp_mult 4 +2 more"]
