"""`clowncar data inspect`, in this process: a split's tokens, documents, largest id and BPB bytes are those of
its shards read as one stream (whatever the shard and scan-chunk cuts), every header is checked before any long
scan, and the tokenizer that belongs to a directory is found the ways a user lays one out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clowncar.data import inspect_dir
from clowncar.data.bpb import build_byte_luts, count_stream_bytes
from clowncar.data.inspect_dir import DirReport, SplitReport, find_tokenizer, inspect_directory, scan_split
from clowncar.data.shards import write_shard
from clowncar.data.tokenizer import BOS_ID
from clowncar.errors import DataError


def stream(sp: Any, texts: list[str]) -> np.ndarray:
    """Documents as the shards hold them: each one BOS, then its pieces."""
    return np.concatenate([np.array([BOS_ID, *sp.encode(t)], dtype=np.uint16) for t in texts])


TEXTS = ["In the beginning", " God created", "the heaven and the earth.", "  And the earth"] * 3


@pytest.fixture
def docs(tiny_tokenizer: tuple[Path, Any]) -> np.ndarray:
    _, sp = tiny_tokenizer
    return stream(sp, TEXTS)


@pytest.mark.parametrize("chunk", [1 << 24, 5, 1])
def test_a_split_reads_as_one_stream_across_shard_and_chunk_cuts(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                                                 docs: np.ndarray, chunk: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, sp = tiny_tokenizer
    luts = build_byte_luts(sp, sp.vocab_size())
    monkeypatch.setattr(inspect_dir, "SCAN_CHUNK", chunk)
    cut = 7  # inside a document: the first token of the second shard follows the last of the first
    files = [write_shard(tmp_path / "a_000.bin", docs[:cut]), write_shard(tmp_path / "a_001.bin", docs[cut:])]
    rep = scan_split(files, luts)
    assert (rep.shards, rep.tokens, rep.documents) == (2, len(docs), 12)
    assert rep.max_id == int(docs.max())
    decoded = sum(len(sp.decode(sp.encode(t)).encode("utf-8")) for t in TEXTS)  # each document's text, as read
    assert rep.bytes == count_stream_bytes(docs, luts) == decoded
    assert rep.bytes_per_token == rep.bytes / len(docs)


def test_without_a_tokenizer_bytes_are_unknown_not_zero(tmp_path: Path, docs: np.ndarray) -> None:
    rep = scan_split([write_shard(tmp_path / "a_000.bin", docs)], None)
    assert rep.bytes is None and rep.bytes_per_token is None and rep.tokens == len(docs)
    assert SplitReport(bytes=10, tokens=0).bytes_per_token is None


def test_an_id_beyond_the_tokenizer_names_the_shard(tmp_path: Path, tiny_tokenizer: tuple[Path, Any]) -> None:
    _, sp = tiny_tokenizer
    luts = build_byte_luts(sp, sp.vocab_size())
    good = write_shard(tmp_path / "a_000.bin", [BOS_ID, 5, 6])
    bad = write_shard(tmp_path / "a_001.bin", [BOS_ID, sp.vocab_size()])
    with pytest.raises(DataError) as err:
        scan_split([good, bad], luts)
    assert str(err.value) == f"{bad}: token id {sp.vocab_size()} is beyond the tokenizer's vocab ({sp.vocab_size()})"
    edge = write_shard(tmp_path / "a_002.bin", [BOS_ID, sp.vocab_size() - 1])
    assert scan_split([edge], luts).max_id == sp.vocab_size() - 1


def layout(root: Path, docs: np.ndarray) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_shard(root / "fineweb_val_000000.bin", docs[:20])
    write_shard(root / "fineweb_train_000000.bin", docs)
    write_shard(root / "fineweb_train_000001.bin", docs[:5])
    return root


def test_a_directory_report_counts_each_split_with_its_tokenizer(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                                                 docs: np.ndarray) -> None:
    model, sp = tiny_tokenizer
    d = layout(tmp_path / "d", docs)
    rep = inspect_directory(d, tokenizer=model)
    assert list(rep.splits) == ["val", "train"]
    assert (rep.splits["val"].shards, rep.splits["val"].tokens) == (1, 20)
    assert (rep.splits["train"].shards, rep.splits["train"].tokens) == (2, len(docs) + 5)
    assert rep.splits["train"].bytes == count_stream_bytes(np.concatenate([docs, docs[:5]]),
                                                           build_byte_luts(sp, sp.vocab_size()))
    assert rep.tokenizer == model and rep.tokenizer_vocab == sp.vocab_size() == 512
    assert rep.max_id == int(docs.max())
    out = rep.to_dict()
    assert out["max_token_id"] == rep.max_id and out["tokenizer"] == str(model) and out["directory"] == str(d)
    assert out["tokenizer_vocab"] == 512
    assert out["splits"]["val"]["bytes_per_token"] == rep.splits["val"].bytes_per_token
    assert json.loads(json.dumps(out)) == out


def test_the_tokenizer_beside_the_shards_is_used_and_none_means_no_bytes(
        tmp_path: Path, tiny_tokenizer: tuple[Path, Any], docs: np.ndarray) -> None:
    model, _ = tiny_tokenizer
    d = layout(tmp_path / "d", docs)
    bare = inspect_directory(d)
    assert bare.tokenizer is None and bare.tokenizer_vocab is None
    assert all(split.bytes is None for split in bare.splits.values())
    assert bare.to_dict()["tokenizer"] is None and bare.to_dict()["tokenizer_vocab"] is None
    (d / "tokenizer.model").write_bytes(model.read_bytes())
    found = inspect_directory(d)
    assert found.tokenizer == d / "tokenizer.model" and found.tokenizer_vocab == 512
    assert found.splits["val"].bytes == inspect_directory(d, tokenizer=model).splits["val"].bytes > 0


def test_the_report_lines_are_a_table_and_a_verdict(tmp_path: Path) -> None:
    rep = DirReport(directory=tmp_path, splits={
        "val": SplitReport(shards=1, tokens=1000, documents=7, max_id=1023, bytes=2450),
        "train": SplitReport(shards=2, tokens=2_000_000, documents=1234, max_id=1000)})
    assert rep.lines() == [
        f"directory: {tmp_path}",
        "split  shards         tokens  documents max id          bytes bytes/token",
        "val         1          1,000          7   1023          2,450       2.450",
        "train       2      2,000,000      1,234   1000              -           -",
        "vocab: max token id 1023 (needs vocab >= 1024); tokenizer: not found (pass --tokenizer to check ids and "
        "count bytes)",
        "ok: 3 shard headers valid (magic, version, size = 1024 + 2 x tokens)",
    ]
    rep.tokenizer, rep.tokenizer_vocab = tmp_path / "t.model", 1024
    assert rep.lines()[4] == f"vocab: max token id 1023 (needs vocab >= 1024); tokenizer: {tmp_path / 't.model'} " \
                             "(vocab 1024)"


def test_no_shards_and_a_corrupt_header_fail_before_any_scan(tmp_path: Path, docs: np.ndarray,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as err:
        inspect_directory(tmp_path, train_glob="t_*.bin", val_glob="v_*.bin")
    assert str(err.value) == f"{tmp_path}: no shards matching v_*.bin or t_*.bin"
    d = layout(tmp_path / "d", docs)
    (d / "fineweb_train_000001.bin").write_bytes(b"\0" * 1030)  # a bad header in the second split
    monkeypatch.setattr(inspect_dir, "scan_split", lambda *a: pytest.fail("scanned before every header was read"))
    with pytest.raises(DataError) as bad:
        inspect_directory(d)
    first = d / "fineweb_train_000001.bin"
    assert str(bad.value) == (f"1 of 3 shards in {d} are unusable: {first}: bad magic 0 (expected 20240520): not "
                              "a shard in the Parameter Golf format")
    for i in (2, 3, 4, 5):  # every bad shard counted, the first three named
        (d / f"fineweb_train_00000{i}.bin").write_bytes(b"\0" * 10)
    with pytest.raises(DataError) as many:
        inspect_directory(d)
    text = str(many.value)
    assert text.startswith(f"5 of 7 shards in {d} are unusable: {first}: ") and text.endswith("; and 2 more")
    assert "fineweb_train_000003.bin" in text and "fineweb_train_000004.bin" not in text


def test_a_tokenizer_is_found_by_name_alone_by_build_info_or_through_the_data_root(
        tmp_path: Path, tiny_tokenizer: tuple[Path, Any], docs: np.ndarray) -> None:
    model, _ = tiny_tokenizer
    d = layout(tmp_path / "own", docs)
    assert find_tokenizer(d) is None
    (d / "a.model").write_bytes(model.read_bytes())
    assert find_tokenizer(d) == d / "a.model"  # the only one
    (d / "b.model").write_bytes(model.read_bytes())
    assert find_tokenizer(d) is None  # two: which one is not known
    splits = {split: {"shards": []} for split in ("val", "train")}
    (d / "build.json").write_text(json.dumps({"tokenizer": {"file": "b.model"}, "splits": splits}))
    assert find_tokenizer(d) == d / "b.model"
    (d / "tokenizer.model").write_bytes(model.read_bytes())
    assert find_tokenizer(d) == d / "tokenizer.model"  # what `data build` writes wins

    root = tmp_path / "root"
    data = layout(root / "datasets" / "fineweb10B_sp1024", docs)
    (root / "tokenizers").mkdir()
    manifest = {"datasets": [{"name": "other", "tokenizer_name": "x"},
                             {"name": "fineweb10B_sp1024", "tokenizer_name": "sp_bpe_1024"}],
                "tokenizers": [{"name": "x", "model_path": "tokenizers/x.model"},
                               {"name": "sp_bpe_1024", "model_path": "tokenizers/fineweb_1024_bpe.model"}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert find_tokenizer(data) is None  # named, but not fetched
    (root / "tokenizers" / "fineweb_1024_bpe.model").write_bytes(model.read_bytes())
    assert find_tokenizer(data) == root / "tokenizers" / "fineweb_1024_bpe.model"
    manifest["tokenizers"][1] = {"name": "sp_bpe_1024", "path": "fineweb_1024_bpe.model"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert find_tokenizer(data) == root / "tokenizers" / "fineweb_1024_bpe.model"


@pytest.mark.parametrize("manifest", ["{", "[]", '{"datasets": [1]}', '{"datasets": [{"name": "d"}]}',
                                      '{"datasets": [{"name": "d", "tokenizer_name": "t"}], "tokenizers": 5}',
                                      "[" * 5000 + "]" * 5000])
def test_a_broken_manifest_means_no_tokenizer_not_a_crash(tmp_path: Path, docs: np.ndarray, manifest: str) -> None:
    data = layout(tmp_path / "datasets" / "d", docs)
    (tmp_path / "manifest.json").write_text(manifest)
    assert find_tokenizer(data) is None


def test_the_manifest_is_read_as_utf8_whatever_the_locale(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                                          docs: np.ndarray, ascii_locale_child: Any) -> None:
    """A manifest with non-ASCII text still leads to the tokenizer where the locale's encoding is ASCII."""
    model, _ = tiny_tokenizer
    data = layout(tmp_path / "datasets" / "d", docs)
    (tmp_path / "tokenizers").mkdir()
    (tmp_path / "tokenizers" / "t.model").write_bytes(model.read_bytes())
    manifest = {"note": "donn\u00e9es", "datasets": [{"name": "d", "tokenizer_name": "t"}],
                "tokenizers": [{"name": "t", "model_path": "tokenizers/t.model"}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    proc = ascii_locale_child("import sys; from pathlib import Path; from clowncar.data.inspect_dir import "
                              "find_tokenizer; print(find_tokenizer(Path(sys.argv[1])))", str(data))
    assert proc.stdout.strip() == str(tmp_path / "tokenizers" / "t.model")


def test_a_directory_is_data_only_with_validation_tokens_to_score(tmp_path: Path, docs: np.ndarray) -> None:
    """A trial and `artifact eval` score the validation split: at least one input token and its target."""
    write_shard(tmp_path / "fineweb_train_000000.bin", docs)
    with pytest.raises(DataError) as err:
        inspect_directory(tmp_path)
    assert str(err.value) == (f"no validation shards matching fineweb_val_*.bin in {tmp_path}: training and "
                              "artifact eval need validation tokens to score")
    write_shard(tmp_path / "fineweb_val_000000.bin", [])
    write_shard(tmp_path / "fineweb_val_000001.bin", [BOS_ID])
    with pytest.raises(DataError) as err:
        inspect_directory(tmp_path)
    assert str(err.value) == (f"{tmp_path}: the validation split (fineweb_val_*.bin) holds 1 token(s), too few to "
                              "score: evaluation needs at least 2")
    write_shard(tmp_path / "fineweb_val_000002.bin", [5])  # two tokens over three shards: one input, one target
    assert inspect_directory(tmp_path).splits["val"].tokens == 2
