"""The names offered after an unknown one: whole-word holders first (the seed's `seq_len` is our
`train_seq_len`), then spelling slips, at most three, never the name itself."""

from __future__ import annotations

from clowncar.did_you_mean import hint, near_config_keys, nearest

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
    sections = {"train": FIELDS, "model": ["crawler_loops"]}
    assert near_config_keys("trian.seed", sections) == ["train"]
    assert near_config_keys("train.seq_len", sections) == ["train.train_seq_len"]
    assert near_config_keys("model.loops.deep", sections) == ["model.crawler_loops"]
    assert near_config_keys("model", sections) == []
    assert hint(["a", "b"]) == " (did you mean a, b?)" and hint([]) == ""
