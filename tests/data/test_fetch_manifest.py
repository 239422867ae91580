"""What `fetch_fineweb` plans from the hub's manifest.json, without a hub: the dataset a `--variant` names, the
validation shard count and tokenizer files it reads, and every manifest that cannot serve the request, refused
in one line before a download."""

from __future__ import annotations

from typing import Any

import pytest

from clowncar.data.fetch import dataset_name_for_variant, plan
from clowncar.errors import DataError

from .test_fetch_steps import NAME, TOK_MODEL, TOK_VOCAB, _manifest


@pytest.mark.parametrize(("variant", "name"), [("sp1024", "fineweb10B_sp1024"), ("sp8192", "fineweb10B_sp8192"),
                                               ("byte260", "fineweb10B_byte260")])
def test_a_variant_names_its_dataset(variant: str, name: str) -> None:
    assert dataset_name_for_variant(variant) == name


@pytest.mark.parametrize("variant", ["gpt2", "sp", "sp1024x", "xsp1024", "byte256", "SP1024"])
def test_an_unknown_variant_is_refused(variant: str) -> None:
    with pytest.raises(DataError) as err:
        dataset_name_for_variant(variant)
    assert str(err.value) == f"unknown variant '{variant}' (expected sp<VOCAB> such as sp1024, or byte260)"


def test_the_plan_reads_the_val_count_and_the_tokenizer_files() -> None:
    assert plan(_manifest(5, 2), "sp1024", 5) == (NAME, 2, [TOK_MODEL, TOK_VOCAB])
    assert plan(_manifest(5, 2), "sp1024", 0) == (NAME, 2, [TOK_MODEL, TOK_VOCAB])
    assert plan(_manifest(path="tokenizers/t.json"), "sp1024", 1) == (NAME, 1, ["tokenizers/t.json"])
    both = _manifest(model_path="m.model", vocab_path="", path="t.json")
    assert plan(both, "sp1024", 1)[2] == ["m.model", "t.json"]
    many = _manifest()
    many["datasets"].insert(0, {"name": "fineweb10B_sp4096", "tokenizer_name": "other",
                                "stats": {"files_train": 9, "files_val": 9}})
    many["tokenizers"].insert(0, {"name": "other", "model_path": "o.model"})
    assert plan(many, "sp1024", 3) == (NAME, 1, [TOK_MODEL, TOK_VOCAB])


def _with(**changes: Any) -> dict[str, Any]:
    m = _manifest()
    for key, value in changes.items():
        if key == "stats":
            m["datasets"][0]["stats"] = value
        elif key == "tokenizer_name":
            m["datasets"][0]["tokenizer_name"] = value
        else:
            m[key] = value
    return m


@pytest.mark.parametrize(("manifest", "train", "message"), [
    ({}, 1, f"dataset {NAME} is not listed in manifest.json"),
    (_with(datasets=[{"name": "fineweb10B_sp4096"}]), 1, f"dataset {NAME} is not listed in manifest.json"),
    (_with(stats=None), 1, f"manifest.json: dataset {NAME} lacks stats.files_train/files_val"),
    (_with(stats={"files_train": 3}), 1, f"manifest.json: dataset {NAME} lacks stats.files_train/files_val"),
    (_with(stats={"files_train": "x", "files_val": 1}), 1,
     f'manifest.json: dataset {NAME}: stats.files_train is "x", not a count of shards (a whole number >= 0)'),
    (_with(stats={"files_train": [3], "files_val": 1}), 1,
     f"manifest.json: dataset {NAME}: stats.files_train is [3], not a count of shards (a whole number >= 0)"),
    (_manifest(), -1, "--train-shards must be >= 0, got -1"),
    (_manifest(), 4, "sp1024 has only 3 training shards, requested 4"),
    (_with(tokenizers=[]), 1, f"manifest.json: tokenizer 'sp_bpe_1024' of dataset {NAME} is not listed"),
    ({"datasets": _manifest()["datasets"]}, 1, f"manifest.json: tokenizer 'sp_bpe_1024' of dataset {NAME} is not listed"),
    ({"datasets": 5}, 1, "manifest.json: 'datasets' is not a list of objects"),
    ({"datasets": {"name": NAME}}, 1, "manifest.json: 'datasets' is not a list of objects"),
    (_with(tokenizers=["sp_bpe_1024"]), 1, "manifest.json: 'tokenizers' is not a list of objects"),
    (_with(tokenizer_name=None), 1, f"manifest.json: tokenizer None of dataset {NAME} is not listed"),
    (_manifest(model_path="", vocab_path=None), 1, "manifest.json: tokenizer 'sp_bpe_1024' names no files"),
])
def test_a_manifest_that_cannot_serve_the_request_is_one_line(manifest: dict[str, Any], train: int,
                                                               message: str) -> None:
    with pytest.raises(DataError) as err:
        plan(manifest, "sp1024", train)
    assert str(err.value) == message


@pytest.mark.parametrize("field", ["files_val", "files_train"])
@pytest.mark.parametrize(("value", "shown"), [(-3, "-3"), (1.7, "1.7"), ("2", '"2"'), (True, "true"), (2.0, "2.0")])
def test_a_manifest_count_that_is_not_a_whole_number_of_shards_is_refused(field: str, value: Any, shown: str) -> None:
    """int() took them all: -3 val shards fetched none, "2" and 1.7 passed, and the fetch exited 0."""
    stats: dict[str, Any] = {"files_train": 3, "files_val": 1} | {field: value}
    with pytest.raises(DataError) as err:
        plan(_with(stats=stats), "sp1024", 0)
    assert str(err.value) == (f"manifest.json: dataset {NAME}: stats.{field} is {shown}, not a count of shards "
                              "(a whole number >= 0)")


def test_a_manifest_without_validation_shards_is_refused() -> None:
    with pytest.raises(DataError) as err:
        plan(_manifest(files_train=3, files_val=0), "sp1024", 1)
    assert str(err.value) == (f"manifest.json: dataset {NAME}: stats.files_val is 0: the export has no validation "
                              "shards to score")
    assert plan(_manifest(files_train=0, files_val=1), "sp1024", 0) == (NAME, 1, [TOK_MODEL, TOK_VOCAB])
