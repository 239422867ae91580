"""`clowncar data build` in this process, step by step: shard boundaries, the validation cut across encode
batches, the split statistics against independent counts (bytes as SentencePiece decodes them), build.json,
and every refused option. `test_build_cli.py` runs the same command as a user does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clowncar.data import build
from clowncar.data.build import BuildResult, ShardWriter, SplitStats, build_dataset, read_build_info
from clowncar.data.shards import MAX_VOCAB, read_shard
from clowncar.errors import DataError


def _tokens_of(directory: Path, names: list[str]) -> list[int]:
    return [int(t) for n in names for t in read_shard(directory / n)]


@pytest.mark.parametrize("adds", [[3, 4, 7, 1], [10], [7], [1] * 15, [0, 14, 0]])
def test_shard_writer_fills_shards_to_size_in_order(tmp_path: Path, adds: list[int]) -> None:
    w = ShardWriter(tmp_path, "train", 7)
    stream, start = [], 0
    for n in adds:
        piece = np.arange(start, start + n, dtype=np.uint16)
        w.add(piece)
        stream += piece.tolist()
        start += n
    w.flush()
    w.flush()  # nothing left: no empty shard
    sizes = [len(read_shard(tmp_path / f)) for f in w.files]
    assert w.files == [f"fineweb_train_{i:06d}.bin" for i in range(len(w.files))]
    assert sizes == [7] * (len(stream) // 7) + ([len(stream) % 7] if len(stream) % 7 else [])
    assert _tokens_of(tmp_path, w.files) == stream and w.fill == 0


def test_batches_keep_order_and_size() -> None:
    assert list(build._batches(iter("abcdefg"), 3)) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert list(build._batches(iter("abc"), 3)) == [["a", "b", "c"]]
    assert list(build._batches(iter(""), 3)) == []


def test_documents_array_starts_each_document_with_bos() -> None:
    arr = build._documents_array([[5, 6], [], [7]])
    assert arr.tolist() == [1, 5, 6, 1, 1, 7] and arr.dtype == np.uint16


def _texts(kjv: list[str], n: int) -> list[str]:
    return [f"{v} ({i})" for i, v in enumerate(kjv[:n])]


def _corpus_file(tmp_path: Path, docs: list[str]) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    return path


@pytest.mark.parametrize(("val_docs", "batch"), [(5, 3), (6, 3), (1, 4), (11, 4), (2, 1024)])
def test_the_first_val_docs_are_validation_across_encode_batches(
        tmp_path: Path, tiny_tokenizer: tuple[Path, Any], kjv_verses: list[str], monkeypatch: pytest.MonkeyPatch,
        val_docs: int, batch: int) -> None:
    model, sp = tiny_tokenizer
    docs = _texts(kjv_verses, 12)
    monkeypatch.setattr(build, "ENCODE_BATCH", batch)
    out = tmp_path / "ds"
    res = build_dataset([_corpus_file(tmp_path, docs)], out, tokenizer=model, val_docs=val_docs, shard_tokens=50,
                        progress=False, log=lambda _: None)
    for split, part in (("val", docs[:val_docs]), ("train", docs[val_docs:])):
        s = res.splits[split]
        expected = [t for d in part for t in [1, *sp.encode(d)]]
        assert _tokens_of(out, s.shards) == expected
        assert s.documents == len(part) and s.tokens == len(expected)
        assert s.bytes == sum(len(sp.decode(sp.encode(d)).encode("utf-8")) for d in part)
        assert s.text_bytes == sum(len(d.encode("utf-8")) for d in part)
        assert len(s.shards) == -(-len(expected) // 50)


def test_build_json_records_the_build(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                      kjv_verses: list[str]) -> None:
    model, sp = tiny_tokenizer
    vocab = model.with_suffix(".vocab")
    docs = _texts(kjv_verses, 9)
    src = _corpus_file(tmp_path, docs)
    res = build_dataset([src], tmp_path / "ds", tokenizer=model, val_docs=2, shard_tokens=64, progress=False,
                        log=lambda _: None, provenance={"source": "test"})
    info = read_build_info(tmp_path / "ds")
    assert info is not None
    assert info["format"] == "clowncar-data-build/1" and info["inputs"] == [str(src.resolve())]
    assert (info["docs_per"], info["field"], info["val_docs"], info["shard_tokens"]) == ("file", "text", 2, 64)
    assert info["bos_id"] == 1 and info["append_eos"] is False and info["source"] == "test"
    tok = info["tokenizer"]
    assert tok["file"] == "tokenizer.model" and tok["vocab_size"] == sp.vocab_size() == res.vocab_size
    assert tok["trained"] is False and tok["source"] == str(model.resolve())
    assert (tmp_path / "ds" / "tokenizer.vocab").read_bytes() == vocab.read_bytes()
    for split in ("val", "train"):
        s = res.splits[split]
        assert info["splits"][split] == {"documents": s.documents, "tokens": s.tokens, "bytes": s.bytes,
                                         "text_bytes": s.text_bytes, "shards": s.shards,
                                         "bytes_per_token": round(s.bytes / s.tokens, 6)}
    assert res.out == tmp_path / "ds" and res.tokenizer == tmp_path / "ds" / "tokenizer.model"
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == sorted(
        ["build.json", "tokenizer.model", "tokenizer.vocab", *res.splits["val"].shards, *res.splits["train"].shards])


def test_a_trained_tokenizer_is_recorded_with_its_settings(tmp_path: Path, kjv_verses: list[str]) -> None:
    logged: list[str] = []
    res = build_dataset([_corpus_file(tmp_path, kjv_verses[:400])], tmp_path / "ds", vocab_size=512, val_docs=10,
                        progress=False, log=logged.append, character_coverage=0.999)
    tok = json.loads((tmp_path / "ds" / "build.json").read_text())["tokenizer"]
    assert tok["trained"] is True and tok["trainer"]["vocab_size"] == 512 and res.vocab_size == 512
    assert tok["trainer"]["character_coverage"] == 0.999 and tok["train_seconds"] >= 0
    assert logged[0].startswith("corpus: 400 documents, ") and logged[0].endswith(" bytes in 1 file(s)")
    assert logged[1] == "training tokenizer: sentencepiece BPE, vocab 512, character coverage 0.999"


def test_summary_lines_show_both_splits() -> None:
    res = BuildResult(out=Path("/d"), tokenizer=Path("/d/t.model"), vocab_size=512, splits={
        "val": SplitStats(documents=3, tokens=40, bytes=100, shards=["a"]),
        "train": SplitStats(documents=1234, tokens=0, bytes=0, shards=["b", "c"])}, seconds=1.0)
    assert res.summary_lines() == [
        "split  shards  documents       tokens        bytes bytes/token",
        "val         1          3           40          100       2.500",
        "train       2      1,234            0            0       0.000",
        "shards:    /d", "tokenizer: /d/t.model (vocab 512)"]


@pytest.mark.parametrize(("kw", "message"), [
    ({"vocab_size": 7}, f"vocab size 7 out of range: shards store uint16 ids, so 8..{MAX_VOCAB}"),
    ({"vocab_size": MAX_VOCAB + 1}, f"vocab size {MAX_VOCAB + 1} out of range"),
    ({"shard_tokens": 0}, "shard size must be between 1 and 2147483647 tokens, got 0"),
    ({"shard_tokens": 2**31}, "shard size must be between 1 and 2147483647 tokens, got 2147483648"),
    ({"val_docs": 0}, "--val-docs must be at least 1, got 0"),
    ({"val_docs": 4}, "--val-docs 4 leaves no training documents: the corpus has 4"),
])
def test_impossible_options_are_refused_before_anything_is_written(tmp_path: Path, kjv_verses: list[str],
                                                                   kw: dict, message: str) -> None:
    src = _corpus_file(tmp_path, kjv_verses[:4])
    with pytest.raises(DataError) as err:
        build_dataset([src], tmp_path / "ds", progress=False, log=lambda _: None, **kw)
    assert str(err.value).startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl"]


@pytest.mark.parametrize("kw", [{"vocab_size": 8}, {"vocab_size": MAX_VOCAB}, {"shard_tokens": 1},
                                {"shard_tokens": 2**31 - 1}, {"val_docs": 3}])
def test_options_at_their_limits_pass_the_checks(tmp_path: Path, kjv_verses: list[str],
                                                  monkeypatch: pytest.MonkeyPatch, kw: dict) -> None:
    reached: list[int] = []

    def stop(corpus: Any, stage: Path, vocab_size: int, *rest: Any) -> None:
        reached.append(vocab_size)
        raise DataError("stopped after the checks")

    monkeypatch.setattr(build, "_prepare_tokenizer", stop)
    with pytest.raises(DataError, match="stopped after the checks"):
        build_dataset([_corpus_file(tmp_path, kjv_verses[:4])], tmp_path / "ds", progress=False,
                      log=lambda _: None, **{"val_docs": 1, **kw})
    assert reached == [kw.get("vocab_size", 1024)]


def test_an_empty_corpus_is_refused(tmp_path: Path) -> None:
    src = _corpus_file(tmp_path, [" ", ""])
    with pytest.raises(DataError, match=r"^empty corpus: no non-blank documents in 1 input file\(s\)$"):
        build_dataset([src], tmp_path / "ds", progress=False, log=lambda _: None)


def test_a_tokenizer_too_large_for_uint16_shards_is_refused(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                                             kjv_verses: list[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = tiny_tokenizer
    monkeypatch.setattr(build, "MAX_VOCAB", 511)
    with pytest.raises(DataError, match=r"vocab 512 does not fit uint16 shards \(max 511\)$"):
        build_dataset([_corpus_file(tmp_path, kjv_verses[:4])], tmp_path / "ds", tokenizer=model, val_docs=1,
                      progress=False, log=lambda _: None)
    assert not (tmp_path / "ds").exists()


def test_a_corpus_that_changes_while_it_is_encoded_is_refused(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                                              kjv_verses: list[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.data.corpus import Corpus

    src = _corpus_file(tmp_path, kjv_verses[:6])
    corpus = Corpus.from_paths([src])
    counted = corpus.count()
    src.write_text(src.read_text() + json.dumps({"text": "one more"}) + "\n")
    monkeypatch.setattr(Corpus, "count", lambda self: counted)  # the count was taken before the change
    with pytest.raises(DataError, match=r"^corpus changed while building: counted 6 documents, encoded 7$"):
        build_dataset([src], tmp_path / "ds", tokenizer=tiny_tokenizer[0], val_docs=1, progress=False,
                      log=lambda _: None, corpus=corpus)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(("text", "expected"), [
    (None, None), ("{not json", None), ("[1, 2]", None), ('"x"', None), ("\xff", None), ('{"a": 1}', {"a": 1}),
])
def test_read_build_info_returns_a_dict_or_none(tmp_path: Path, text: str | None, expected: Any) -> None:
    if text is not None:
        (tmp_path / "build.json").write_bytes(text.encode("latin-1"))
    assert read_build_info(tmp_path) == expected
