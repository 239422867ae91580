"""The report's data-and-environment table (F16) row by row, from small hand-built trials frames: what a run that
records a value counts for, how the tokenizer is named, when the tokens scored differ, and the sentence on
eval.max_tokens cutting the validation split."""

from __future__ import annotations

import math

import pandas as pd

from clowncar.analysis.environment import environment

NAN = math.nan
DIFFERS = (" (differs between runs: their BPBs are means over different validation text, so compare runs that "
           "scored the same tokens)")


def _rows(trials: pd.DataFrame | None) -> dict[str, tuple[str, str]]:
    return {row["item"]: (row["value"], row["runs"]) for row in environment(trials)}


def test_a_value_shared_by_the_runs_that_record_it_is_shown_once_and_a_run_without_it_is_not_counted() -> None:
    trials = pd.DataFrame({"data.dataset": ["fineweb", "fineweb", NAN], "data.tokenizer": ["sp.model", "sp.model", NAN],
                           "provenance.data.tokenizer.sha256": ["abc", "abc", NAN],
                           "tokens_scored": [16_384, 16_384, NAN],  # NaN makes the column float: 16384.0
                           "provenance.data.val.tokens": [78_150, 78_150, NAN],
                           "provenance.device": ["cpu:x86_64", "cpu:x86_64", NAN],
                           "provenance.torch": ["2.13.0+cpu", "2.13.0+cpu", NAN]})
    rows = environment(trials)
    assert rows == [
        {"item": "dataset", "value": "fineweb", "runs": "2 of 3", "values": {"fineweb": 2}},
        {"item": "tokenizer", "value": "sp.model (sha256 abc)", "runs": "2 of 3",
         "values": {"sp.model (sha256 abc)": 2}},
        {"item": "validation tokens scored per run", "value": "16384", "runs": "2 of 3", "values": {"16384": 2}},
        {"item": "validation split (tokens)", "value": "78150", "runs": "2 of 3", "values": {"78150": 2}},
        {"item": "device", "value": "cpu:x86_64", "runs": "2 of 3", "values": {"cpu:x86_64": 2}},
        {"item": "torch", "value": "2.13.0+cpu", "runs": "2 of 3", "values": {"2.13.0+cpu": 2}}]


def test_no_trials_frame_leaves_every_item_unrecorded_over_no_runs() -> None:
    assert list(_rows(None).values()) == [("not recorded", "0 of 0")] * 6


def test_a_value_that_is_a_list_is_shown_as_recorded_not_dropped_as_missing() -> None:
    trials = pd.DataFrame({"data.dataset": [["shard_a", "shard_b"], "fineweb"]})
    assert _rows(trials)["dataset"] == ("['shard_a', 'shard_b'] (1 run); fineweb (1 run)", "2 of 2")


def test_a_tokenizer_named_without_its_digest_or_hashed_without_its_name_is_shown_with_what_is_missing() -> None:
    trials = pd.DataFrame({"data.tokenizer": ["sp.model", NAN, NAN],
                           "provenance.data.tokenizer.sha256": [NAN, "abc", NAN]})
    assert _rows(trials)["tokenizer"] == ("sp.model (sha256 not recorded) (1 run); unnamed (sha256 abc) (1 run)",
                                          "2 of 3")


def test_tokens_scored_that_differ_between_runs_carry_the_warning_and_equal_ones_do_not() -> None:
    differ = pd.DataFrame({"tokens_scored": [16_384, 78_080, 78_080]})
    assert _rows(differ)["validation tokens scored per run"] == (f"16384 (1 run); 78080 (2 runs){DIFFERS}", "3 of 3")
    same = pd.DataFrame({"tokens_scored": [16_384, 16_384]})
    assert _rows(same)["validation tokens scored per run"] == ("16384", "2 of 2")


def _scored(trials: pd.DataFrame) -> str:
    return _rows(trials)["validation tokens scored per run"][0]


def test_a_limit_of_one_token_cuts_the_split_and_a_limit_equal_to_the_split_scores_it_whole() -> None:
    one = pd.DataFrame({"tokens_scored": [1], "eval.max_tokens": [1], "provenance.data.val.tokens": [78_150]})
    assert _scored(one) == ("1; eval.max_tokens 1 cut the validation split: 1 of 1 runs scored only its first 1 "
                            "tokens of a 78150-token split")
    whole = pd.DataFrame({"tokens_scored": [16_384], "eval.max_tokens": [16_384],
                          "provenance.data.val.tokens": [16_384]})
    assert _scored(whole) == "16384"


def test_several_limits_and_splits_are_each_named_once_in_order() -> None:
    trials = pd.DataFrame({"tokens_scored": [2_000, 1_000, 1_000], "eval.max_tokens": [2_000, 1_000, 1_000],
                           "provenance.data.val.tokens": [6_000, 5_000, 6_000]})
    assert _scored(trials) == (f"1000 (2 runs); 2000 (1 run){DIFFERS}; eval.max_tokens 1000, 2000 cut the validation "
                               "split: 3 of 3 runs scored only its first 1000, 2000 tokens of a 5000, 6000-token split")


def test_a_cut_of_a_split_whose_size_no_run_records_names_no_split_size() -> None:
    # run ids as index labels other than 0..n-1, as finished() leaves them after dropping failed runs
    trials = pd.DataFrame({"tokens_scored": [16_384, 16_384], "eval.max_tokens": [16_384, 16_384]}, index=[3, 7])
    assert _scored(trials) == ("16384; eval.max_tokens 16384 cut the validation split: 2 of 2 runs scored only its "
                               "first 16384 tokens")


def test_a_limit_or_split_size_that_is_not_a_number_counts_as_unrecorded() -> None:
    trials = pd.DataFrame({"tokens_scored": [78_150, 16_384], "eval.max_tokens": ["all", 16_384],
                           "provenance.data.val.tokens": [78_150, "unknown"]})
    assert _scored(trials) == (f"16384 (1 run); 78150 (1 run){DIFFERS}; eval.max_tokens 16384 cut the validation "
                               "split: 1 of 2 runs scored only its first 16384 tokens")
