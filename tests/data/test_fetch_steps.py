"""`fetch_fineweb` in this process, step by step, against the loopback hub of `conftest.hub_server`: what it
plans from the manifest, what it downloads, keeps and logs, and how every refusal reads.

`test_fetch.py` runs the command as a user does (a new process); these call the functions themselves, with the
hub client's real `hf_hub_download` pointed at 127.0.0.1 by `HubSource(endpoint=...)`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clowncar.data import fetch as fetch_mod
from clowncar.data.atomic import default_mode
from clowncar.data.fetch import (
    FetchResult,
    HubSource,
    _join,
    _place,
    fetch_fineweb,
    load_manifest,
)
from clowncar.data.shards import write_shard
from clowncar.errors import DataError

REPO = "willdepueoai/parameter-golf"
NAME = "fineweb10B_sp1024"
TOK_MODEL, TOK_VOCAB = "tokenizers/fineweb_1024_bpe.model", "tokenizers/fineweb_1024_bpe.vocab"


def _manifest(files_train: int = 3, files_val: int = 1, **tokenizer: Any) -> dict[str, Any]:
    tok = tokenizer or {"model_path": TOK_MODEL, "vocab_path": TOK_VOCAB}
    return {"tokenizers": [{"name": "sp_bpe_1024", **tok}],
            "datasets": [{"name": NAME, "tokenizer_name": "sp_bpe_1024",
                          "stats": {"files_train": files_train, "files_val": files_val}}]}


def _publish(hub: Path, tokenizer: Path, train_shards: int = 3, val_shards: int = 1) -> Path:
    """The challenge's export layout under the hub root; returns the remote dataset folder."""
    root = hub / REPO / "datasets"
    ds = root / "datasets" / NAME
    rng = np.random.default_rng(1)
    for i in range(val_shards):
        write_shard(ds / f"fineweb_val_{i:06d}.bin", np.concatenate([[1], rng.integers(4, 512, 300 + i)]))
    for i in range(train_shards):
        write_shard(ds / f"fineweb_train_{i:06d}.bin", np.concatenate([[1], rng.integers(4, 512, 200 + i)]))
    (root / "tokenizers").mkdir(parents=True)
    (root / TOK_MODEL).write_bytes(tokenizer.read_bytes())
    (root / TOK_VOCAB).write_bytes(tokenizer.with_suffix(".vocab").read_bytes())
    (root / "manifest.json").write_text(json.dumps(_manifest(train_shards, val_shards)))
    return ds


@pytest.fixture
def source(hub_server: tuple[str, Path, list[str]], tmp_path: Path) -> HubSource:
    return HubSource(endpoint=hub_server[0], cache_dir=tmp_path / "hf")


@pytest.fixture
def published(hub_server: tuple[str, Path, list[str]], tiny_tokenizer: tuple[Path, Any]) -> Path:
    return _publish(hub_server[1], tiny_tokenizer[0])


def _run(source: HubSource, data: Path, train_shards: int, variant: str = "sp1024") -> tuple[FetchResult, list[str]]:
    lines: list[str] = []
    return fetch_fineweb(variant, train_shards, data, source, log=lines.append), lines


# --- the whole fetch ----------------------------------------------------------------------------------------

def test_a_fetch_downloads_the_val_shards_a_train_prefix_and_the_tokenizer_in_order(
        source: HubSource, published: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result, lines = _run(source, data, 2)
    ds = data / "datasets" / NAME
    assert result == FetchResult(
        dataset_dir=ds, tokenizer_files=[data / TOK_MODEL, data / TOK_VOCAB], val_shards=1, train_shards=2,
        downloaded=["fineweb_val_000000.bin", "fineweb_train_000000.bin", "fineweb_train_000001.bin",
                    TOK_MODEL, TOK_VOCAB], reused=[])
    assert lines == [f"manifest: {REPO}/datasets/manifest.json",
                     f"[1/3] {NAME}/fineweb_val_000000.bin", f"[2/3] {NAME}/fineweb_train_000000.bin",
                     f"[3/3] {NAME}/fineweb_train_000001.bin", f"tokenizer {TOK_MODEL}", f"tokenizer {TOK_VOCAB}"]
    assert sorted(p.name for p in ds.iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]
    for p in ds.iterdir():
        assert p.read_bytes() == (published / p.name).read_bytes()
    assert json.loads((data / "manifest.json").read_text()) == _manifest()
    assert sorted(p.name for p in (data / "tokenizers").iterdir()) == ["fineweb_1024_bpe.model",
                                                                     "fineweb_1024_bpe.vocab"]


def test_a_second_fetch_keeps_every_good_file_and_downloads_none(source: HubSource, published: Path,
                                                                  tmp_path: Path) -> None:
    data = tmp_path / "data"
    _run(source, data, 2)
    result, lines = _run(source, data, 2)
    assert result.downloaded == []
    assert result.reused == ["fineweb_val_000000.bin", "fineweb_train_000000.bin", "fineweb_train_000001.bin",
                             TOK_MODEL, TOK_VOCAB]
    assert result.tokenizer_files == [data / TOK_MODEL, data / TOK_VOCAB]
    assert lines == [f"manifest: {REPO}/datasets/manifest.json"]


def test_a_rerun_leaves_no_part_files_beside_the_manifest_it_linked_before(source: HubSource, published: Path,
                                                                          tmp_path: Path) -> None:
    """The local manifest.json is a hard link to the cached one: os.replace between two links to the same file
    does nothing (POSIX rename), and each rerun left a `.manifest.json.XXXX.part` behind."""
    data = tmp_path / "data"
    for _ in range(3):
        _run(source, data, 1)
    assert sorted(p.name for p in data.iterdir()) == ["datasets", "manifest.json", "tokenizers"]
    assert [p.name for p in data.rglob("*.part")] == []


def test_a_corrupt_local_shard_is_fetched_again_and_the_rest_kept(source: HubSource, published: Path,
                                                                  tmp_path: Path) -> None:
    data = tmp_path / "data"
    _run(source, data, 2)
    bad = data / "datasets" / NAME / "fineweb_train_000000.bin"
    bad.write_bytes(bad.read_bytes()[:-2])  # in place: the hard-linked cached copy is damaged with it
    result, lines = _run(source, data, 3)
    assert result.downloaded == ["fineweb_train_000000.bin", "fineweb_train_000002.bin"]
    assert result.reused == ["fineweb_val_000000.bin", "fineweb_train_000001.bin", TOK_MODEL, TOK_VOCAB]
    assert lines[1:] == [f"[2/4] {NAME}/fineweb_train_000000.bin",
                         "downloaded fineweb_train_000000.bin is corrupt: truncated shard: header says 201 tokens "
                         "(1426 bytes), file has 1424 bytes: downloading it again",
                         f"[4/4] {NAME}/fineweb_train_000002.bin"]
    assert bad.read_bytes() == (published / bad.name).read_bytes()


def test_a_corrupt_local_tokenizer_model_is_fetched_again(source: HubSource, published: Path,
                                                          tmp_path: Path, tiny_tokenizer: tuple[Path, Any]) -> None:
    data = tmp_path / "data"
    _run(source, data, 0)
    (data / TOK_MODEL).unlink()
    (data / TOK_MODEL).write_bytes(b"garbage")  # a new file: the cached copy is intact
    (data / TOK_VOCAB).write_bytes(b"any vocab text is kept")
    result, lines = _run(source, data, 0)
    assert result.downloaded == [TOK_MODEL] and result.reused == ["fineweb_val_000000.bin", TOK_VOCAB]
    assert lines[1:] == [f"tokenizer {TOK_MODEL}"]
    assert (data / TOK_MODEL).read_bytes() == tiny_tokenizer[0].read_bytes()


def test_zero_train_shards_fetches_validation_and_tokenizer_only(source: HubSource, published: Path,
                                                                 tmp_path: Path) -> None:
    result, _ = _run(source, tmp_path / "data", 0)
    assert result.downloaded == ["fineweb_val_000000.bin", TOK_MODEL, TOK_VOCAB]


def test_a_corrupt_tokenizer_model_is_named_and_never_lands(source: HubSource, published: Path, tmp_path: Path,
                                                            hub_server: tuple[str, Path, list[str]]) -> None:
    (hub_server[1] / REPO / "datasets" / TOK_MODEL).write_bytes(b"not a sentencepiece model")
    result_lines: list[str] = []
    with pytest.raises(DataError) as err:
        fetch_fineweb("sp1024", 0, tmp_path / "data", source, log=result_lines.append)
    assert str(err.value).startswith("downloaded fineweb_1024_bpe.model is corrupt: not a SentencePiece model (")
    assert ".part" not in str(err.value)
    assert result_lines[-2:] == [f"tokenizer {TOK_MODEL}", str(err.value) + ": downloading it again"]
    assert sorted(p.name for p in (tmp_path / "data" / "tokenizers").iterdir()) == []


def test_a_truncated_download_is_tried_twice_named_and_never_lands(
        source: HubSource, published: Path, tmp_path: Path, hub_server: tuple[str, Path, list[str]]) -> None:
    last = published / "fineweb_train_000001.bin"
    last.write_bytes(last.read_bytes()[:-6])
    lines: list[str] = []
    with pytest.raises(DataError) as err:
        fetch_fineweb("sp1024", 2, tmp_path / "data", source, log=lines.append)
    assert str(err.value).startswith("downloaded fineweb_train_000001.bin is corrupt: truncated shard")
    assert lines[-1] == str(err.value) + ": downloading it again"
    gets = [q for q in hub_server[2] if q.startswith("GET ") and q.endswith("/fineweb_train_000001.bin")]
    assert len(gets) == 2  # the second download did not take the cached copy
    assert sorted(p.name for p in (tmp_path / "data" / "datasets" / NAME).iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_val_000000.bin"]


# --- the hub client's failures ------------------------------------------------------------------------------

def test_a_data_root_under_a_file_is_refused_before_any_download(tmp_path: Path) -> None:
    class NoDownloads(HubSource):
        def download(self, relative: str, force: bool = False) -> Path:
            raise AssertionError("nothing may be downloaded for a data root that cannot be made")

    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError) as err:
        fetch_fineweb("sp1024", 1, tmp_path / "afile" / "data", NoDownloads(), log=lambda _: None)
    assert str(err.value) == (f"cannot create the data directory {tmp_path / 'afile' / 'data'}: "
                              f"{tmp_path / 'afile'} is a regular file, not a directory")


@pytest.mark.parametrize("variant", ["bogus", "sp", "SP1024"])
def test_a_variant_of_the_wrong_form_is_refused_before_any_download(tmp_path: Path, variant: str) -> None:
    """Offline, `--variant bogus` said "cannot reach the hub": the form was checked only after the manifest came."""
    class Unreachable(HubSource):
        def download(self, relative: str, force: bool = False) -> Path:
            raise DataError(f"{relative}: cannot reach the hub")

    with pytest.raises(DataError) as err:
        fetch_fineweb(variant, 1, tmp_path / "data", Unreachable(), log=lambda _: None)
    assert str(err.value) == f"unknown variant '{variant}' (expected sp<VOCAB> such as sp1024, or byte260)"
    assert os.listdir(tmp_path) == []


def test_a_fetch_that_fails_before_any_file_leaves_no_empty_data_root(tmp_path: Path) -> None:
    class Unreachable(HubSource):
        def download(self, relative: str, force: bool = False) -> Path:
            raise DataError(f"{relative}: cannot reach the hub")

    with pytest.raises(DataError, match="cannot reach the hub"):
        fetch_fineweb("sp1024", 1, tmp_path / "new" / "data", Unreachable(), log=lambda _: None)
    assert os.listdir(tmp_path) == []


def test_a_file_the_repo_lacks_is_named(source: HubSource, published: Path) -> None:
    with pytest.raises(DataError) as err:
        source.download("datasets/nope.bin")
    assert str(err.value) == f"datasets/datasets/nope.bin: not found in dataset repo '{REPO}'"


def test_a_repo_the_hub_lacks_is_named(hub_server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    other = HubSource("someone/else", endpoint=hub_server[0], cache_dir=tmp_path / "hf")
    with pytest.raises(DataError) as err:
        other.download("manifest.json")
    assert str(err.value) == "dataset repo 'someone/else' not found on the hub"


def test_an_unreachable_hub_names_the_endpoint_it_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1: no request, no retries
    endpoint = "http://127.0.0.1:9"
    with pytest.raises(DataError) as err:
        HubSource(endpoint=endpoint, cache_dir=tmp_path / "hf").download("manifest.json")
    assert str(err.value) == (f"datasets/manifest.json: cannot reach the hub at {endpoint} and no cached copy "
                              "(check the network, HF_ENDPOINT, HF_HUB_OFFLINE)")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:8")
    with pytest.raises(DataError, match=r"cannot reach the hub at http://127\.0\.0\.1:8 and"):
        HubSource(cache_dir=tmp_path / "hf").download("manifest.json")


@pytest.mark.parametrize("raised", [OSError("disk full\nsecond line"), ValueError("bad revision"), OSError()])
def test_another_download_failure_is_its_first_line(monkeypatch: pytest.MonkeyPatch, raised: Exception) -> None:
    import huggingface_hub

    def fail(**_: Any) -> str:
        raise raised

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with pytest.raises(DataError) as err:
        HubSource(remote_root="/datasets/").download("a/b.bin")
    first = str(raised).splitlines()[0] if str(raised) else type(raised).__name__
    assert str(err.value) == f"datasets/a/b.bin: download from '{REPO}' failed: {first}"


def test_a_path_the_hub_client_returns_that_is_gone_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    import huggingface_hub

    gone = tmp_path / "blobs" / "abc"
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **_: str(gone))
    with pytest.raises(DataError) as err:
        HubSource().download("manifest.json")
    assert str(err.value) == (f"datasets/manifest.json: the Hugging Face cache lost {gone} as it was downloaded; "
                              "fetch again")


def test_the_hub_client_is_asked_for_the_file_its_folder_and_the_source_settings(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub

    asked: list[dict[str, Any]] = []
    local = tmp_path / "f.bin"
    local.write_bytes(b"x")

    def record(**kwargs: Any) -> str:
        asked.append(kwargs)
        return str(local)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", record)
    src = HubSource("o/r", "root/", "abc123", endpoint="http://127.0.0.1:9", cache_dir=tmp_path / "c")
    assert src.download("/x/y/z.bin") == local.resolve()
    assert src.download("top.json", force=True) == local.resolve()
    assert HubSource("o/r", "").download("top.json") == local.resolve()
    common = {"repo_id": "o/r", "repo_type": "dataset"}
    assert asked == [
        {**common, "filename": "z.bin", "subfolder": "root/x/y", "revision": "abc123",
         "endpoint": "http://127.0.0.1:9", "cache_dir": tmp_path / "c", "force_download": False},
        {**common, "filename": "top.json", "subfolder": "root", "revision": "abc123",
         "endpoint": "http://127.0.0.1:9", "cache_dir": tmp_path / "c", "force_download": True},
        {**common, "filename": "top.json", "subfolder": None, "revision": None, "endpoint": None, "cache_dir": None,
         "force_download": False},
    ]


# --- the manifest -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "manifest.json from 'willdepueoai/parameter-golf' is not valid JSON (Expecting property name"),
    ("[1, 2]", "manifest.json from 'willdepueoai/parameter-golf' is not a JSON object"),
    (b"\xff\xfe{}", "manifest.json from 'willdepueoai/parameter-golf' is not valid JSON ('utf-8' codec"),
])
def test_a_manifest_that_is_not_a_json_object_is_refused_and_not_kept(
        source: HubSource, hub_server: tuple[str, Path, list[str]], tmp_path: Path, text: str | bytes,
        message: str) -> None:
    remote = hub_server[1] / REPO / "datasets" / "manifest.json"
    remote.parent.mkdir(parents=True)
    remote.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError) as err:
        load_manifest(source, tmp_path / "data", log=lambda _: None)
    assert str(err.value).startswith(message)
    assert not (tmp_path / "data").exists()


def test_a_deeply_nested_manifest_is_refused_in_one_line(source: HubSource, hub_server: tuple[str, Path, list[str]],
                                                         tmp_path: Path) -> None:
    remote = hub_server[1] / REPO / "datasets" / "manifest.json"
    remote.parent.mkdir(parents=True)
    remote.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="is not valid JSON"):
        load_manifest(source, tmp_path / "data", log=lambda _: None)


# --- placing a file -----------------------------------------------------------------------------------------

def test_a_placed_file_is_a_hard_link_of_the_cached_one_when_they_share_a_disk(tmp_path: Path) -> None:
    cached = tmp_path / "cache" / "blob"
    cached.parent.mkdir()
    cached.write_bytes(b"shard bytes")
    dest = tmp_path / "data" / "sub" / "f.bin"
    seen: list[Path] = []
    _place(cached, dest, seen.append)
    assert dest.read_bytes() == b"shard bytes" and os.path.samefile(dest, cached)
    assert len(seen) == 1 and seen[0].parent == dest.parent and seen[0].name.startswith(".f.bin.")
    assert seen[0].name.endswith(".part") and sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]


def test_placing_the_same_cached_file_again_keeps_the_link_and_leaves_no_temporary(tmp_path: Path) -> None:
    cached = tmp_path / "cache" / "blob"
    cached.parent.mkdir()
    cached.write_bytes(b"manifest bytes")
    dest = tmp_path / "data" / "manifest.json"
    _place(cached, dest, lambda p: None)
    _place(cached, dest, lambda p: None)  # dest and the temporary are one file: the rename alone removes neither
    assert dest.read_bytes() == b"manifest bytes" and os.path.samefile(dest, cached)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["manifest.json"]


def test_a_placed_file_is_copied_with_the_data_mode_where_a_link_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = tmp_path / "blob"
    cached.write_bytes(b"shard bytes")
    cached.chmod(0o400)

    def refuse(*_: Any) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    dest = tmp_path / "data" / "f.bin"
    _place(cached, dest, lambda p: None)
    assert dest.read_bytes() == b"shard bytes" and not os.path.samefile(dest, cached)
    assert dest.stat().st_mode & 0o777 == default_mode()


@pytest.mark.parametrize("error", [DataError("bad shard"), KeyboardInterrupt()])
def test_a_file_that_fails_validation_or_is_interrupted_leaves_nothing(tmp_path: Path, error: BaseException) -> None:
    cached = tmp_path / "blob"
    cached.write_bytes(b"shard bytes")
    dest = tmp_path / "data" / "f.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"the old good copy")

    def check(_: Path) -> None:
        raise error

    with pytest.raises(type(error)):
        _place(cached, dest, check)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]
    assert dest.read_bytes() == b"the old good copy"


def test_remote_paths_are_joined_without_empty_parts_or_doubled_slashes() -> None:
    assert _join("datasets", "/a/", "", "b.bin") == "datasets/a/b.bin"
    assert _join("", "manifest.json") == "manifest.json"
    assert _join("/", "x") == "x"
    assert _join("X", "/XL/", "fineweb_X.bin") == "X/XL/fineweb_X.bin"  # only slashes are trimmed
    assert fetch_mod.REMOTE_ROOT == "datasets" and fetch_mod.REPO_ID == REPO


def test_a_shard_check_error_drops_the_path_of_the_temporary_file(tmp_path: Path) -> None:
    part = tmp_path / ".f.bin.abc.part"
    part.write_bytes(b"\x00" * 10)
    with pytest.raises(DataError) as err:
        fetch_mod._validate_shard("fineweb_val_000003.bin")(part)
    assert str(err.value).startswith("downloaded fineweb_val_000003.bin is corrupt: ")
    assert str(part) not in str(err.value)


def test_a_validation_error_is_named_by_the_destination_even_under_a_folder_with_spaces(tmp_path: Path) -> None:
    folder = tmp_path / "my data"
    folder.mkdir()
    part = folder / ".fineweb_val_000000.bin.x1.part"
    part.write_bytes(b"\x00" * 10)
    with pytest.raises(DataError) as err:
        fetch_mod._validate_shard("fineweb_val_000000.bin")(part)
    assert str(err.value).startswith("downloaded fineweb_val_000000.bin is corrupt: ")
    assert "my data" not in str(err.value) and ".part" not in str(err.value)

    def no_colon(_: Path) -> None:
        raise DataError("unreadable")

    with pytest.raises(DataError) as err:
        fetch_mod._corrupt("t.model", no_colon)(part)
    assert str(err.value) == "downloaded t.model is corrupt: unreadable"


def test_a_cached_file_that_vanished_reports_the_cached_file(tmp_path: Path) -> None:
    cached = tmp_path / "cache" / "gone"
    dest = tmp_path / "data" / "f.bin"
    with pytest.raises(FileNotFoundError) as err:
        _place(cached, dest, lambda p: None)
    assert err.value.filename == str(cached)
    assert list(dest.parent.iterdir()) == []


def test_the_manifest_is_read_as_utf8_whatever_the_locale(tmp_path: Path, ascii_locale_child: Any) -> None:
    """Where the locale's encoding is ASCII a manifest with non-ASCII text still loads (the child's source hands
    over a local file as the download)."""
    cached = tmp_path / "cache" / "manifest.json"
    cached.parent.mkdir()
    cached.write_text(json.dumps({"note": "donn\u00e9es", "datasets": []}, ensure_ascii=False), encoding="utf-8")
    proc = ascii_locale_child("import sys; from pathlib import Path; from clowncar.data.fetch import load_manifest\n"
                              "class Local:\n"
                              "    repo_id, remote_root = 'r', ''\n"
                              "    def download(self, name): return Path(sys.argv[1])\n"
                              "m = load_manifest(Local(), Path(sys.argv[2]), log=lambda line: None)\n"
                              "sys.stdout.write(ascii(m['note']))", str(cached), str(tmp_path / "data"))
    assert proc.stdout == ascii("donn\u00e9es")
