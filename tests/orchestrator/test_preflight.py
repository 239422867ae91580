"""An embedded sweep checks, before anything starts, that every dataset and tokenizer its trials can name is on
this machine: a typo in a dataset name is one line and exit 2, not a sweep of trials that all fail. In this
process, no Ray."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from clowncar.errors import DataError
from clowncar.orchestrator import commands, preflight
from clowncar.orchestrator.spec import POINT_KEY, spec_from_dict


@pytest.fixture
def data_root(kjv_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory holding dataset `kjv` and tokenizer `kjv.model`, as CLOWNCAR_DATA_DIR."""
    built = kjv_dataset(lines=1500, vocab_size=320, val_docs=150, shard_tokens=16384)
    root = tmp_path / "data"
    shutil.copytree(built, root / "datasets" / "kjv", ignore=shutil.ignore_patterns("tokenizer.*"))
    (root / "tokenizers").mkdir()
    shutil.copy(built / "tokenizer.model", root / "tokenizers" / "kjv.model")
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(root))
    return root


def spec(**fields: Any) -> Any:
    base = {"name": "pf", "preset": "tiny-cpu", "sampler": "grid",
            "overrides": {"data.dataset": "kjv", "data.tokenizer": "kjv.model"},
            "space": {"model.crawler_loops": {"grid": [1, 2]}}}
    return spec_from_dict({**base, **fields})


def refusal(s: Any) -> str:
    with pytest.raises(DataError) as err:
        preflight.check_local_data(s)
    return str(err.value)


def test_every_data_choice_of_the_spec_is_named_once() -> None:
    s = spec(points={"a": {"data.dataset": "other"}, "b": {"model.mlp_mult": 3.0}},
             enqueue=[{"data.tokenizer": "t2.model"}],
             space={"model.crawler_loops": {"grid": [1, 2]}, "data.val_glob": {"grid": ["v1_*.bin", "v2_*.bin"]}})
    v1, v2 = {"data.val_glob": "v1_*.bin"}, {"data.val_glob": "v2_*.bin"}
    assert preflight.data_params(s) == [{POINT_KEY: "a", **v1}, {POINT_KEY: "b", **v1}, {POINT_KEY: "a", **v2},
                                        {**v1, "data.tokenizer": "t2.model"}]
    train = "fineweb_train_*.bin"
    assert preflight.data_sources(s) == [("other", train, "v1_*.bin", "kjv.model"),
                                         ("kjv", train, "v1_*.bin", "kjv.model"),
                                         ("other", train, "v2_*.bin", "kjv.model"),
                                         ("kjv", train, "v1_*.bin", "t2.model")]


def test_a_base_value_that_the_space_always_replaces_is_never_checked() -> None:
    s = spec(space={"data.dataset": {"grid": ["d1", "d2"]}, "model.crawler_loops": {"grid": [1, 2]}})
    assert preflight.data_params(s) == [{"data.dataset": "d1"}, {"data.dataset": "d2"}]
    assert [src[0] for src in preflight.data_sources(s)] == ["d1", "d2"]  # never the base's kjv


def test_a_conditional_data_key_leaves_the_base_value_in_use() -> None:
    s = spec(sampler="random", budget={"max_trials": 4},
             space={"model.crawler_loops": {"choice": [1, 2]},
                    "data.dataset": {"choice": ["d1"], "when": {"model.crawler_loops": 2}}})
    assert preflight.data_params(s) == [{}, {"data.dataset": "d1"}]
    assert [src[0] for src in preflight.data_sources(s)] == ["kjv", "d1"]


def test_a_point_that_makes_no_config_is_left_to_its_own_refusal() -> None:
    s = spec(sampler="random", budget={"max_trials": 4}, space={"model.crawler_loops": {"int": [1, 3]}},
             enqueue=[{"model.crawler_loops": 2}])
    s.enqueue.append({"model.no_such_key": 1})  # past the spec's own validation, as a stored spec could be
    s.enqueue.append({"data.dataset": "later"})  # and the points after it are still checked
    assert preflight.data_sources(s) == [("kjv", "fineweb_train_*.bin", "fineweb_val_*.bin", "kjv.model"),
                                         ("later", "fineweb_train_*.bin", "fineweb_val_*.bin", "kjv.model")]


def test_a_sweep_whose_data_is_here_passes(data_root: Path) -> None:
    assert preflight.check_local_data(spec()) is None


def test_a_missing_dataset_is_one_line_naming_the_sweep_and_the_fix(data_root: Path) -> None:
    s = spec(space={"data.dataset": {"grid": ["kjv", "kvj"]}})
    assert refusal(s) == (f"sweep pf: dataset 'kvj' not found at {data_root / 'datasets' / 'kvj'} (`clowncar data "
                          "demo`, `data fetch-fineweb` or `data build` makes one; CLOWNCAR_DATA_DIR says where "
                          "datasets are looked for)")


def test_a_dataset_that_names_a_shard_file_says_to_pass_its_folder(data_root: Path) -> None:
    shard = sorted((data_root / "datasets" / "kjv").glob("fineweb_val_*.bin"))[0]
    assert refusal(spec(overrides={"data.dataset": str(shard), "data.tokenizer": "kjv.model"})) == (
        f"sweep pf: {shard}: is a shard file, not a shard directory: pass its folder ({shard.parent})")


def test_a_dataset_without_train_or_validation_shards_is_refused(data_root: Path) -> None:
    directory = data_root / "datasets" / "kjv"
    s = spec(overrides={"data.dataset": "kjv", "data.tokenizer": "kjv.model", "data.val_glob": "nothing_*.bin"})
    assert refusal(s) == f"sweep pf: no validation shards matching nothing_*.bin in {directory}"
    for shard in directory.glob("fineweb_train_*.bin"):
        shard.unlink()
    assert refusal(spec()) == f"sweep pf: no train shards matching fineweb_train_*.bin in {directory}"


def test_a_dataset_that_lost_a_shard_its_build_json_lists_is_refused(data_root: Path) -> None:
    directory = data_root / "datasets" / "kjv"
    (directory / "fineweb_train_000001.bin").unlink()
    assert refusal(spec()).startswith(f"sweep pf: {directory} does not match its build.json: "
                                      "fineweb_train_000001.bin is missing (build.json lists ")


def test_a_corrupt_shard_is_refused_by_its_header(data_root: Path) -> None:
    shard = sorted((data_root / "datasets" / "kjv").glob("fineweb_val_*.bin"))[-1]
    shard.write_bytes(shard.read_bytes()[:2000])
    assert refusal(spec()).startswith(f"sweep pf: {shard}: truncated shard: header says ")


def test_a_missing_or_broken_tokenizer_is_refused(data_root: Path) -> None:
    s = spec(overrides={"data.dataset": "kjv", "data.tokenizer": "nope.model"})
    assert refusal(s) == f"sweep pf: {data_root / 'tokenizers' / 'nope.model'}: tokenizer model not found"
    (data_root / "tokenizers" / "kjv.model").write_bytes(b"not a model")
    assert refusal(spec()).startswith(f"sweep pf: {data_root / 'tokenizers' / 'kjv.model'}: not a SentencePiece "
                                      "model (")


def test_a_tokenizer_other_than_the_one_the_shards_were_built_with_is_refused(data_root: Path) -> None:
    from clowncar.data.tokenizer import train_tokenizer

    dataset, tokenizers = data_root / "datasets" / "kjv", data_root / "tokenizers"
    shutil.copy(tokenizers / "kjv.model", dataset / "tokenizer.model")  # as `data build` leaves it
    preflight.check_local_data(spec())
    train_tokenizer((f"verse {i} of another book" for i in range(300)), 320, tokenizers / "other", 1.0)
    assert refusal(spec(overrides={"data.dataset": "kjv", "data.tokenizer": "other.model"})) == (
        f"sweep pf: the shards in {dataset} were encoded with {dataset / 'tokenizer.model'}, not with "
        f"{tokenizers / 'other.model'}: their ids would be read as other pieces and BPB would count the wrong bytes "
        "(use the tokenizer the shards were built with)")


def test_a_worker_of_its_own_reads_data_its_own_way_and_is_not_checked(data_root: Path) -> None:
    s = spec(overrides={"data.dataset": "ok"})
    s.worker.module = "contract_worker"  # the tests' stand-in worker (registered in their sweeps' environment)
    assert preflight.check_local_data(s) is None
    assert "not found" in refusal(spec(overrides={"data.dataset": "ok"}))


@pytest.mark.parametrize("checked", [True, False], ids=["embedded", "cluster"])
def test_only_an_embedded_sweep_checks_the_data_here(data_root: Path, tmp_path: Path, monkeypatch,
                                                    checked: bool) -> None:
    """On a cluster the data lives on the workers: each trial checks its own. (The cluster is a socket listening
    on 127.0.0.1, where Ray's cluster mode off keeps a loopback address, so the address check before joining it
    passes.)"""
    from ray._private import ray_constants

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    head = socket.create_server(("127.0.0.1", 0))
    address = "" if checked else f"127.0.0.1:{head.getsockname()[1]}"
    ran: list[Any] = []
    monkeypatch.setattr("clowncar.orchestrator.tune.run_sweep", lambda s, opts: ran.append(opts) or {})
    monkeypatch.setattr(commands, "print_summary", lambda summary: None)
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    missing = spec(overrides={"data.dataset": "absent"})
    if checked:
        with pytest.raises(DataError, match=r"^sweep pf: dataset 'absent' not found"):
            commands.run_spec(missing, f"sqlite:///{tmp_path / 's.db'}", address, 1, None, True, resume=False)
        assert not ran and not (tmp_path / "runs").exists() and not (tmp_path / "s.db").exists()
    else:
        commands.run_spec(missing, f"sqlite:///{tmp_path / 's.db'}", address, 1, None, True, resume=False)
        assert [o.address for o in ran] == [address]
    head.close()


def test_the_plan_says_which_data_is_here_or_what_is_missing(data_root: Path) -> None:
    s = spec(space={"data.tokenizer": {"grid": ["kjv.model", "kjv2.model"]}, "data.dataset": {"grid": ["kjv", "k2"]}})
    shutil.copy(data_root / "tokenizers" / "kjv.model", data_root / "tokenizers" / "kjv2.model")
    shutil.copytree(data_root / "datasets" / "kjv", data_root / "datasets" / "k2")
    assert preflight.data_line(s) == "  data: on this machine: kjv, k2 (tokenizer kjv.model, kjv2.model)"
    s = spec(space={"data.dataset": {"grid": ["kjv", "gone"]}})
    assert preflight.data_line(s) == (
        f"  data: missing on this machine: dataset 'gone' not found at {data_root / 'datasets' / 'gone'} (`clowncar "
        "data demo`, `data fetch-fineweb` or `data build` makes one; CLOWNCAR_DATA_DIR says where datasets are "
        "looked for); an embedded `sweep run` refuses the sweep, and on a cluster every worker needs the data")
    s.worker.module = "contract_worker"
    assert preflight.data_line(s) is None
