"""A trial refuses data it cannot train on before step 1, with the reason in result.json: a split without shards,
a dataset that lost a shard its build.json lists, shards encoded with another tokenizer, an id past the vocabulary;
an id past it in a later shard fails the step that reads it; a vocabulary too small for the tokenizer or the
validation ids (moved from test_train_loop.py, unchanged)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clowncar.worker.run import run_trial


def _shards_copy(tiny_data: Path, out: Path, edit: Callable[[str, np.ndarray], np.ndarray | None]) -> Path:
    from clowncar.data.shards import read_shard, write_shard

    out.mkdir()
    (out / "tokenizer.model").write_bytes((tiny_data / "tokenizer.model").read_bytes())
    for shard in sorted(tiny_data.glob("*.bin")):
        tokens = edit(shard.name, np.array(read_shard(shard)))
        if tokens is not None:
            write_shard(out / shard.name, tokens)
    return out


@pytest.mark.parametrize("split, pattern", [("train", "fineweb_train_*.bin"), ("validation", "fineweb_val_*.bin")])
def test_a_split_without_shards_is_named_in_the_error(tiny_cfg: Callable[..., Any], tiny_data: Path,
                                                      tmp_path: Path, read_trial: Callable[..., Any], split: str,
                                                      pattern: str) -> None:
    key = "train" if split == "train" else "val"
    data = _shards_copy(tiny_data, tmp_path / "data", lambda name, t: None if f"_{key}_" in name else t)
    cfg = tiny_cfg(f"data.dataset={data}")
    assert (cfg.data.train_glob if split == "train" else cfg.data.val_glob) == pattern
    assert run_trial(cfg, tmp_path / "out") == 2
    result, _ = read_trial(tmp_path / "out")
    assert result["reason"] == f"DataError: no {split} shards matching {pattern} in {data}"


def test_a_dataset_that_lost_a_shard_its_build_json_lists_is_refused_before_step_1(
        tiny_cfg: Callable[..., Any], tiny_data: Path, tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    data = Path(shutil.copytree(tiny_data, tmp_path / "data"))
    (data / "fineweb_train_000001.bin").unlink()
    assert run_trial(tiny_cfg(f"data.dataset={data}"), tmp_path / "out") == 2
    result, events = read_trial(tmp_path / "out")
    assert result["reason"].startswith(f"DataError: {data} does not match its build.json: fineweb_train_000001.bin "
                                       "is missing (build.json lists ")
    assert not [e for e in events if e["event"] == "step"]


def test_shards_built_with_another_tokenizer_are_refused_before_step_1(
        tiny_cfg: Callable[..., Any], tiny_data: Path, other_tokenizer: Path, tmp_path: Path,
        read_trial: Callable[..., Any]) -> None:
    assert run_trial(tiny_cfg(f"data.tokenizer={other_tokenizer}"), tmp_path / "out") == 2
    result, events = read_trial(tmp_path / "out")
    assert result["reason"] == (f"DataError: the shards in {tiny_data} were encoded with {tiny_data / 'tokenizer.model'}, "
                                f"not with {other_tokenizer}: their ids would be read as other pieces and BPB would "
                                "count the wrong bytes (use the tokenizer the shards were built with)")
    assert not [e for e in events if e["event"] == "step"]


def test_an_id_past_the_vocab_in_the_first_train_shard_is_refused_before_step_1(
        tiny_cfg: Callable[..., Any], tiny_data: Path, tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    first = sorted(tiny_data.glob("fineweb_train_*.bin"))[0].name

    def edit(name: str, tokens: np.ndarray) -> np.ndarray:
        if name == first:
            tokens[-3] = 320  # the first id past the vocabulary, far past step 1's tokens: only the check
            # before training sees it
        return tokens

    data = _shards_copy(tiny_data, tmp_path / "data", edit)
    assert run_trial(tiny_cfg(f"data.dataset={data}"), tmp_path / "out") == 2
    result, events = read_trial(tmp_path / "out")
    assert result["reason"] == f"DataError: {data / first}: token id 320 does not fit model.vocab_size (320)"
    assert result["steps"] is None and not [e for e in events if e["event"] == "step"]


def test_an_id_past_the_vocab_in_a_later_train_shard_fails_the_step_that_reads_it(
        tiny_cfg: Callable[..., Any], tiny_data: Path, tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    """The first shard is cut to 1,000 tokens, so step 4 (tokens 768-1,024) reads the second shard's bad id:
    a failed run after three steps (exit 1), not a rejected one."""
    names = sorted(p.name for p in tiny_data.glob("fineweb_train_*.bin"))

    def edit(name: str, tokens: np.ndarray) -> np.ndarray:
        if name == names[0]:
            return tokens[:1000]
        if name == names[1]:
            tokens[5] = 400
        return tokens

    data = _shards_copy(tiny_data, tmp_path / "data", edit)
    assert run_trial(tiny_cfg(f"data.dataset={data}", "train.iterations=8"), tmp_path / "out") == 1
    result, _ = read_trial(tmp_path / "out")
    assert result["status"] == "error" and result["steps"] == 3
    assert result["reason"] == "DataError: train shards: token id 400 does not fit model.vocab_size (320)"


def test_bad_vocabularies_are_refused_with_what_does_not_fit(
        tiny_cfg: Callable[..., Any], tiny_data: Path, tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    assert run_trial(tiny_cfg("model.vocab_size=100"), tmp_path / "small") == 2
    assert read_trial(tmp_path / "small")[0]["reason"] == (
        "ConfigError: model.vocab_size (100) is smaller than the tokenizer's vocabulary (320 ids)")

    def edit(name: str, tokens: np.ndarray) -> np.ndarray:
        if "_val_" in name:
            tokens[5] = 321
        return tokens

    data = _shards_copy(tiny_data, tmp_path / "data", edit)
    assert run_trial(tiny_cfg(f"data.dataset={data}"), tmp_path / "val") == 2
    assert read_trial(tmp_path / "val")[0]["reason"] == (
        "DataError: validation: token id 321 does not fit model.vocab_size (320)")
