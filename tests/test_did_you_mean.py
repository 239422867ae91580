"""The names offered after an unknown one: whole-word holders first (the seed's `seq_len` is our
`train_seq_len`), then spelling slips, at most three, never the name itself."""

from __future__ import annotations

import pytest

from clowncar.config import TrialConfig
from clowncar.did_you_mean import hint, near_keys, near_model_keys, nearest
from clowncar.errors import ConfigError
from clowncar.orchestrator.spec import SweepSpec, spec_from_dict

LOOPS = "model.crawler_loops"
FIELDS = ["train_seq_len", "seed", "iterations", "warmdown_iters", "train_batch_tokens", "val_batch_tokens"]


def test_a_field_holding_the_name_as_whole_words_comes_first_the_shortest_first() -> None:
    assert nearest("seq_len", FIELDS) == ["train_seq_len"]
    assert nearest("batch_tokens", FIELDS) == ["val_batch_tokens", "train_batch_tokens"]
    assert nearest("iters", FIELDS) == ["warmdown_iters", "iterations"]  # a word, then a spelling


def test_a_part_of_a_word_is_not_a_whole_word() -> None:
    assert nearest("tokens_x", FIELDS) == []
    assert nearest("atch", FIELDS) == []


def test_spelling_slips_are_found_and_at_most_three_names_are_offered() -> None:
    assert nearest("iteratoins", FIELDS) == ["iterations"]
    assert nearest("a", ["a_b", "a_c", "a_d", "a_e"]) == ["a_b", "a_c", "a_d"]
    assert nearest("seed", ["seed", "seeds"]) == ["seeds"]  # never the name itself
    assert nearest("", ["x", "y"]) == []


def test_config_keys_near_a_section_or_a_field() -> None:
    assert near_keys(TrialConfig, ("trian",)) == ["train"]
    assert near_keys(TrialConfig, ("train", "seq_len")) == ["train.train_seq_len"]
    assert near_keys(TrialConfig, ("model", "loops")) == ["model.crawler_loops"]
    assert near_keys(TrialConfig, ("model", "depth")) == []
    assert hint(["a", "b"]) == " (did you mean a, b?)" and hint([]) == ""


def test_sweep_spec_keys_are_found_through_nested_models_and_dict_values() -> None:
    def line(data: dict) -> str:
        with pytest.raises(ConfigError) as err:
            spec_from_dict({"name": "x", "preset": "tiny-cpu", "budget": {"max_trials": 2}, **data})
        return str(err.value)

    assert line({"samplr": "grid"}) == "sweep spec: unknown key 'samplr' (did you mean sampler, sampler_seed?)"
    assert line({"budget": {"max_trial": 3}}) == ("sweep spec: unknown key 'budget.max_trial' "
                                                  "(did you mean budget.max_trials?)")
    assert line({"space": {LOOPS: {"grd": [1, 2]}}}) == (f"sweep spec: unknown key 'space.{LOOPS}.grd' "
                                                         f"(did you mean space.{LOOPS}.grid?)")
    assert line({"zzz": 1}) == "sweep spec: unknown key 'zzz'"
    # a config key in the space: the config's hint, without the space point repeating the key
    assert line({"space": {"model.crawler_loop": {"grid": [1, 2]}}}) == (
        "sweep spec space: unknown config key 'model.crawler_loop' (did you mean model.crawler_loops, "
        "model.crawler_mode, model.crawler_mlp_mult?)")


def test_a_walk_that_leaves_the_models_offers_nothing() -> None:
    assert near_model_keys(SweepSpec, ("name", "x")) == []  # a str holds no fields
    assert near_model_keys(SweepSpec, ("nope", "x")) == []
    assert near_model_keys(SweepSpec, ("overrides", "k", "x")) == []  # dict of Any


def test_more_names_are_offered_when_asked() -> None:
    names = ["abcdx", "abcdy", "abcdz", "abcdw", "abcdv"]
    assert nearest("abcd", names, shown=5) == sorted(names, reverse=True)  # ties: difflib's order
    assert nearest("abcd", names, shown=2) == ["abcdz", "abcdy"]
