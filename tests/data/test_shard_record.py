"""A shard directory against its record: `data inspect` refuses a build whose shards no longer match its
build.json (or a fetched dataset its manifest.json), warns of a gap in the numbering where nothing records the
shards, and says plainly when a directory has no train shards to train from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from clowncar.data.build import build_dataset
from clowncar.data.inspect_dir import inspect_directory
from clowncar.data.record import check_encoded_with, check_shard_record, manifest_tokenizer, numbering_gaps
from clowncar.data.shards import read_header, write_shard
from clowncar.errors import DataError


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: tuple[Path, Any],
          kjv_verses: list[str]) -> Path:
    """A real `data build`: 3 val shards and 6 train shards of at most 400 tokens."""
    root = tmp_path_factory.mktemp("record")
    src = root / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": v}) + "\n" for v in kjv_verses[:120]), encoding="utf-8")
    build_dataset([src], root / "ds", tokenizer=tiny_tokenizer[0], val_docs=40, shard_tokens=400, progress=False,
                  log=lambda _: None)
    return root / "ds"


@pytest.fixture
def ds(built: Path, tmp_path: Path) -> Path:
    """A copy of the build that a test may damage."""
    return Path(shutil.copytree(built, tmp_path / "ds"))


def recorded(ds: Path, split: str) -> tuple[int, int]:
    """(shards, tokens) that the build's build.json lists for `split`."""
    entry = json.loads((ds / "build.json").read_text())["splits"][split]
    return len(entry["shards"]), entry["tokens"]


def refusal(ds: Path) -> str:
    with pytest.raises(DataError) as err:
        inspect_directory(ds)
    return str(err.value)


def test_an_intact_build_passes_and_says_its_shards_match_build_json(ds: Path) -> None:
    assert recorded(ds, "val")[0] >= 3 and recorded(ds, "train")[0] >= 4  # the damage below needs that many
    report = inspect_directory(ds)
    assert report.record == "build.json" and report.warnings == []
    assert report.lines()[-1].endswith("; shard list and token counts match build.json")


def test_a_build_that_lost_a_val_shard_is_refused_naming_it_and_the_counts(ds: Path) -> None:
    shards, tokens = recorded(ds, "val")
    lost = read_header(ds / "fineweb_val_000001.bin").num_tokens
    (ds / "fineweb_val_000001.bin").unlink()
    assert refusal(ds) == (
        f"{ds} does not match its build.json: fineweb_val_000001.bin is missing (build.json lists {shards} val "
        f"shards, {tokens:,d} tokens; the folder holds {shards - 1}, {tokens - lost:,d} tokens); rebuild or "
        "re-fetch it")


def test_every_missing_shard_is_counted_and_train_shards_are_checked_too(ds: Path) -> None:
    shards, _ = recorded(ds, "train")
    for i in (1, 3):
        (ds / f"fineweb_train_{i:06d}.bin").unlink()
    assert "fineweb_train_000001.bin is missing (and 1 more) (build.json lists " f"{shards} train shards" in refusal(ds)


def test_a_shard_build_json_does_not_list_is_refused_as_extra(ds: Path) -> None:
    shards, tokens = recorded(ds, "train")
    shutil.copy(ds / "fineweb_train_000000.bin", ds / "fineweb_train_000042.bin")
    added = read_header(ds / "fineweb_train_000042.bin").num_tokens
    assert refusal(ds) == (
        f"{ds} does not match its build.json: fineweb_train_000042.bin is not in it (build.json lists {shards} "
        f"train shards, {tokens:,d} tokens; the folder holds {shards + 1}, {tokens + added:,d} tokens); rebuild or "
        "re-fetch it")


def test_a_shard_replaced_by_one_of_another_length_is_refused_by_the_token_count(ds: Path) -> None:
    write_shard(ds / "fineweb_val_000000.bin", [1, 5, 6])
    assert "the val shards hold other tokens than it counts (a shard was replaced or rebuilt)" in refusal(ds)


def damage_named(ds: Path) -> str:
    """The one-line refusal of a damaged build.json, from `data inspect` and from the two checks a trial runs."""
    messages = []
    for check in (inspect_directory, check_shard_record, lambda d: check_encoded_with(d, d / "tokenizer.model")):
        with pytest.raises(DataError) as err:
            check(ds)
        messages.append(str(err.value))
    assert len(set(messages)) == 1 and len(messages[0].splitlines()) == 1
    assert messages[0].startswith(f"{ds / 'build.json'} is damaged: ")
    return messages[0].removeprefix(f"{ds / 'build.json'} is damaged: ").split(";")[0]


@pytest.mark.parametrize(("text", "why"), [
    (None, "not JSON ("),
    ("{not json", "not JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    ("\xff{}", "not UTF-8 text"),
    ("[" * 100_000, "not JSON (nested too deeply)"),
    ("[1, 2]", "it holds a JSON array, not an object"),
    ('"x"', "it holds a JSON string, not an object"),
])
def test_a_build_json_that_is_not_a_json_object_is_damaged_not_absent(ds: Path, text: str | None, why: str) -> None:
    """A truncated build.json (the tester's `head -c 300`) used to read as no record at all: the shard list and
    the tokenizer went unchecked, and a directory that lost a shard said ok."""
    path = ds / "build.json"
    path.write_bytes(path.read_bytes()[:300] if text is None else text.encode("latin-1"))
    (ds / "fineweb_train_000001.bin").unlink()
    assert damage_named(ds).startswith(why)


def test_an_unreadable_build_json_is_damaged(ds: Path) -> None:
    (ds / "build.json").unlink()
    (ds / "build.json").mkdir()  # there, and not a file that can be read
    assert damage_named(ds).startswith("cannot read it (Is a directory)")  # the reason, not the errno text


@pytest.mark.parametrize(("info", "why"), [
    ({"tokenizer": {"file": "tokenizer.model"}}, "it has no 'splits' object"),
    ({"splits": ["val", "train"]}, "it has no 'splits' object"),
    ({"splits": {"val": {"tokens": 5}}}, "splits.val.shards is not a list of shard names"),
    ({"splits": {"val": {"shards": ["fineweb_val_000000.bin"]}}}, "it has no splits.train object"),
    ({"splits": {"val": {"shards": [1]}, "train": {"shards": []}}}, "splits.val.shards is not a list of shard names"),
])
def test_a_build_json_without_the_splits_a_build_writes_is_damaged(ds: Path, info: dict[str, Any], why: str) -> None:
    (ds / "build.json").write_text(json.dumps(info))
    (ds / "fineweb_train_000001.bin").unlink()
    assert damage_named(ds) == why


def test_a_gap_in_the_numbering_of_unrecorded_shards_is_a_warning_not_a_refusal(ds: Path) -> None:
    (ds / "build.json").unlink()
    assert inspect_directory(ds).warnings == []
    last = sorted(ds.glob("fineweb_train_*.bin"))[-1].name
    (ds / "fineweb_train_000001.bin").unlink()
    (ds / "fineweb_train_000002.bin").unlink()
    report = inspect_directory(ds)
    assert report.record is None and not report.lines()[-1].endswith("build.json")
    assert report.warnings == [
        f"train shards skip fineweb_train_000001.bin and 1 more (numbered up to {last[-10:-4]}, "
        f"{len(list(ds.glob('fineweb_train_*.bin')))} present) and no build.json or manifest says what belongs here: "
        "a shard may have been lost"]


def test_a_directory_without_train_shards_shows_none_and_says_training_cannot_run(ds: Path) -> None:
    (ds / "build.json").unlink()
    for shard in ds.glob("fineweb_train_*.bin"):
        shard.unlink()
    report = inspect_directory(ds)  # legal: artifact eval scores the validation split alone
    train_row = next(line for line in report.lines() if line.startswith("train"))
    assert train_row.split()[:5] == ["train", "0", "0", "0", "none"]
    assert report.to_dict()["splits"]["train"]["max_id"] is None
    assert report.warnings == [f"no train shards matching fineweb_train_*.bin in {ds}: training cannot run from it "
                               "(artifact eval can still score its validation split)"]


def _fetched(tmp_path: Path, built: Path, files_val: int, files_train: int, **stats: int) -> Path:
    """The data-root layout `data fetch-fineweb` leaves: `<root>/datasets/<name>/` and `<root>/manifest.json`."""
    dataset = tmp_path / "root" / "datasets" / "fineweb10B_sp512"
    shutil.copytree(built, dataset, ignore=shutil.ignore_patterns("build.json", "tokenizer.*"))
    manifest = {"datasets": [{"name": dataset.name, "stats": {"files_val": files_val, "files_train": files_train,
                                                              **stats}}]}
    (tmp_path / "root" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return dataset


def test_a_fetched_dataset_needs_every_val_shard_its_manifest_counts(tmp_path: Path, built: Path) -> None:
    val, _ = recorded(built, "val")
    dataset = _fetched(tmp_path, built, files_val=val + 1, files_train=99)
    assert refusal(dataset) == (
        f"{dataset} does not match its manifest.json: fineweb_val_{val:06d}.bin is missing (manifest.json lists "
        f"{val + 1} val shards; the folder holds {val}, {recorded(built, 'val')[1]:,d} tokens); rebuild or re-fetch it")


def test_a_fetched_dataset_may_hold_fewer_train_shards_but_none_past_the_export(tmp_path: Path, built: Path) -> None:
    val, val_tokens = recorded(built, "val")
    train, _ = recorded(built, "train")
    dataset = _fetched(tmp_path, built, files_val=val, files_train=train + 5, tokens_val=val_tokens)
    assert inspect_directory(dataset).record == "manifest.json"  # --train-shards took fewer than the export has
    shutil.rmtree(tmp_path / "root")
    dataset = _fetched(tmp_path, built, files_val=val, files_train=train - 1)
    assert f"fineweb_train_{train - 1:06d}.bin is not in it (manifest.json lists up to {train - 1} train" in (
        refusal(dataset))
    shutil.rmtree(tmp_path / "root")
    dataset = _fetched(tmp_path, built, files_val=val, files_train=train, tokens_val=val_tokens + 1)
    assert "the val shards hold other tokens than it counts" in refusal(dataset)


def test_a_manifest_that_does_not_list_the_dataset_records_nothing(tmp_path: Path, built: Path) -> None:
    dataset = _fetched(tmp_path, built, files_val=1, files_train=1)
    (dataset.parent.parent / "manifest.json").write_text(json.dumps({"datasets": [{"name": "other"}]}))
    assert check_shard_record(dataset) is None
    (dataset.parent.parent / "manifest.json").write_text("not json")
    assert check_shard_record(dataset) is None and numbering_gaps(dataset) == []


def test_a_fetched_dataset_refuses_a_tokenizer_other_than_the_one_its_manifest_names(tmp_path: Path,
                                                                                      built: Path) -> None:
    """walk 4, F1: fetched shards record no tokenizer beside them, and any tokenizer used to pass; the manifest's
    `tokenizer_name` names it (`tokenizers[].model_path`), and its file name is compared."""
    dataset = _fetched(tmp_path, built, files_val=1, files_train=1)
    manifest_path = dataset.parent.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["datasets"][0]["tokenizer_name"] = "sp_bpe_512"
    manifest["tokenizers"] = [{"name": "sp_bpe_512", "model_path": "tokenizers/fineweb_512_bpe.model",
                               "vocab_path": "tokenizers/fineweb_512_bpe.vocab"}]
    manifest_path.write_text(json.dumps(manifest))
    fetched = tmp_path / "root" / "tokenizers" / "fineweb_512_bpe.model"
    check_encoded_with(dataset, fetched)  # the one it names: passes (only its name is compared)
    other = tmp_path / "demo_1024_bpe.model"
    with pytest.raises(DataError) as err:
        check_encoded_with(dataset, other)
    assert str(err.value) == (f"the shards in {dataset} were encoded with fineweb_512_bpe.model (manifest.json's "
                              f"tokenizer 'sp_bpe_512'), not with {other}: their ids would be read as other pieces "
                              "and BPB would count the wrong bytes (use the tokenizer the shards were fetched with)")
    manifest["tokenizers"] = []  # a manifest that does not say which: nothing to compare
    manifest_path.write_text(json.dumps(manifest))
    check_encoded_with(dataset, other)
    shutil.copytree(dataset, tmp_path / "bare")  # outside a data root's datasets/: no manifest applies
    check_encoded_with(tmp_path / "bare", other)


def test_inspect_with_another_tokenizer_is_refused_as_trial_run_and_artifact_eval_refuse_it(
        run_cli: Any, ds: Path, tmp_path: Path, tiny_tokenizer: tuple[Path, Any], kjv_verses: list[str]) -> None:
    """`data inspect DIR --tokenizer OTHER` skipped the check a trial and `artifact eval` make, and printed byte
    counts of the other tokenizer's pieces as ok."""
    from clowncar.data.tokenizer import train_tokenizer

    other = tmp_path / "other_320_bpe"
    train_tokenizer(kjv_verses[:400], 320, other)
    other = other.with_suffix(".model")
    with pytest.raises(DataError) as expected:
        check_encoded_with(ds, other)
    with pytest.raises(DataError) as err:
        inspect_directory(ds, tokenizer=other)
    assert str(err.value) == str(expected.value)
    r = run_cli("data", "inspect", str(ds), "--tokenizer", str(other))
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"clowncar: error: {expected.value}\n")
    assert inspect_directory(ds, tokenizer=tiny_tokenizer[0]).tokenizer == tiny_tokenizer[0]  # the same model: ok


def test_inspect_on_the_command_line_fails_in_one_line_with_exit_2(run_cli: Any, ds: Path) -> None:
    (ds / "fineweb_val_000002.bin").unlink()
    r = run_cli("data", "inspect", str(ds))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"clowncar: error: {ds} does not match its build.json: fineweb_val_000002.bin is "
                               "missing") and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("tokens", ["many", -5, True, 1.5])
def test_a_token_count_that_is_not_a_count_is_damage(ds: Path, tokens: Any) -> None:
    info = json.loads((ds / "build.json").read_text())
    info["splits"]["val"]["tokens"] = tokens
    (ds / "build.json").write_text(json.dumps(info))
    assert damage_named(ds) == f"splits.val.tokens is {tokens!r}, not a count of tokens"


def test_a_build_json_without_token_counts_checks_the_shard_list_alone(ds: Path) -> None:
    info = json.loads((ds / "build.json").read_text())
    for split in ("val", "train"):
        del info["splits"][split]["tokens"]
    (ds / "build.json").write_text(json.dumps(info))
    write_shard(ds / "fineweb_val_000000.bin", [1, 5, 6])  # other tokens: nothing counts them
    assert check_shard_record(ds) == "build.json"
    (ds / "fineweb_val_000001.bin").unlink()
    assert "fineweb_val_000001.bin is missing" in refusal(ds)


def test_two_extra_shards_name_the_first_and_count_the_other(ds: Path) -> None:
    for i in (42, 43):
        shutil.copy(ds / "fineweb_train_000000.bin", ds / f"fineweb_train_{i:06d}.bin")
    assert "fineweb_train_000042.bin is not in it (and 1 more) (build.json lists " in refusal(ds)


def test_an_export_with_no_train_shards_refuses_every_train_shard_in_the_folder(tmp_path: Path, built: Path) -> None:
    val, _ = recorded(built, "val")
    train, _ = recorded(built, "train")
    dataset = _fetched(tmp_path, built, files_val=val, files_train=0)
    assert (f"fineweb_train_000000.bin is not in it (and {train - 1} more) (manifest.json lists 0 train "
            f"shards; the folder holds {train}, ") in refusal(dataset)


def test_the_manifest_entry_checked_is_the_one_named_after_the_dataset(tmp_path: Path, built: Path) -> None:
    val, _ = recorded(built, "val")
    train, _ = recorded(built, "train")
    dataset = _fetched(tmp_path, built, files_val=val, files_train=train)
    manifest_path = dataset.parent.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    other = {"name": "fineweb10B_sp1024", "stats": {"files_val": val + 4, "files_train": 1}}
    manifest_path.write_text(json.dumps({"datasets": [other, *manifest["datasets"]]}))
    assert check_shard_record(dataset) == "manifest.json"


def test_a_manifest_with_non_ascii_text_is_read_as_utf8_under_an_ascii_locale(
        tmp_path: Path, built: Path, ascii_locale_child: Any) -> None:
    val, _ = recorded(built, "val")
    dataset = _fetched(tmp_path, built, files_val=val + 1, files_train=99)
    manifest_path = dataset.parent.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) | {"description": "FineWeb \u2013 10B tokens"}
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    child = ascii_locale_child("import sys; from pathlib import Path\n"
                               "from clowncar.data.record import read_record\n"
                               "print(read_record(Path(sys.argv[1]))[0])", str(dataset))
    assert child.stdout == "manifest.json\n"


def test_a_gap_just_below_the_last_shard_is_one_skipped_shard(ds: Path) -> None:
    (ds / "build.json").unlink()
    shards = sorted(ds.glob("fineweb_train_*.bin"))
    shards[-2].unlink()
    assert numbering_gaps(ds) == [
        f"train shards skip {shards[-2].name} (numbered up to {len(shards) - 1:06d}, {len(shards) - 1} present) and "
        "no build.json or manifest says what belongs here: a shard may have been lost"]


def test_the_manifest_tokenizer_is_the_one_its_own_dataset_names(tmp_path: Path) -> None:
    """Two datasets of one export, each encoded with its own tokenizer (listed in the other order): each dataset
    reads its own; a tokenizer given by `path` alone is read too; a blank path or a name that is not text is none."""
    root = tmp_path / "export"

    def write(tokenizers: list[dict[str, Any]], name_b: Any = "tb") -> None:
        (root / "datasets").mkdir(parents=True, exist_ok=True)
        (root / "manifest.json").write_text(json.dumps({
            "datasets": [{"name": "a", "tokenizer_name": "ta"}, {"name": "b", "tokenizer_name": name_b}],
            "tokenizers": tokenizers}))

    write([{"name": "tb", "model_path": "tokenizers/b.model"}, {"name": "ta", "model_path": "tokenizers/a.model"}])
    assert manifest_tokenizer(root / "datasets" / "a") == ("ta", "a.model")
    assert manifest_tokenizer(root / "datasets" / "b") == ("tb", "b.model")
    write([{"name": "tb", "path": "old/b.model"}])
    assert manifest_tokenizer(root / "datasets" / "b") == ("tb", "b.model")
    write([{"name": "tb", "model_path": "   "}])
    assert manifest_tokenizer(root / "datasets" / "b") is None
    write([{"name": 7, "model_path": "b.model"}], name_b=7)
    assert manifest_tokenizer(root / "datasets" / "b") is None
