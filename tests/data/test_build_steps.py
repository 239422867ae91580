"""`clowncar data build` in this process, step by step: shard boundaries, the validation cut across encode
batches, the split statistics against independent counts (bytes as SentencePiece decodes them), build.json,
and every refused option. `test_build_cli.py` runs the same command as a user does."""

from __future__ import annotations

import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clowncar.data import build
from clowncar.data.build import BuildResult, ShardWriter, SplitStats, build_dataset, read_build_info
from clowncar.data.record import check_encoded_with
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
        "bytes: the UTF-8 bytes the tokens decode to, what BPB divides by (build.json's text_bytes is the text as "
        "read, before the tokenizer's normalization)",
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


@pytest.mark.parametrize("coverage", [2.0, 0.5, 0.0, -1.0, float("nan")])
def test_a_character_coverage_out_of_range_is_refused_before_the_corpus_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, coverage: float) -> None:
    """`--character-coverage 2` was refused only after the whole corpus was counted and 'training tokenizer ...
    character coverage 2.0' was printed."""
    from clowncar.data.corpus import Corpus

    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "In the beginning"}\n')

    def count(self: Corpus) -> Any:
        raise AssertionError("the corpus was read")

    monkeypatch.setattr(Corpus, "count", count)
    logged: list[str] = []
    with pytest.raises(DataError) as err:
        build_dataset([src], tmp_path / "ds", character_coverage=coverage, progress=False, log=logged.append)
    assert str(err.value) == f"character coverage must be between 0.98 and 1.0, got {coverage}"
    assert logged == [] and not (tmp_path / "ds").exists()


def test_read_build_info_returns_none_without_a_build_json_and_refuses_a_damaged_one(tmp_path: Path) -> None:
    assert read_build_info(tmp_path) is None  # shards from elsewhere (a FineWeb download): no record, allowed
    info = {"splits": {"val": {"shards": [], "tokens": 0}, "train": {"shards": []}}, "a": 1}
    (tmp_path / "build.json").write_text(json.dumps(info))
    assert read_build_info(tmp_path) == info
    for text in ("{not json", "[1, 2]", '"x"', "\xff", '{"a": 1}'):
        (tmp_path / "build.json").write_bytes(text.encode("latin-1"))
        with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path / 'build.json'))} is damaged: "):
            read_build_info(tmp_path)


class _Terminal(io.StringIO):
    """Standard error as a terminal: tqdm draws its bar only where isatty() says so."""

    def isatty(self) -> bool:
        return True


def _quiet_build(tmp_path: Path, model: Path, docs: list[str], **kw: Any) -> BuildResult:
    return build_dataset([_corpus_file(tmp_path, docs)], tmp_path / "ds", tokenizer=model,
                         **{"val_docs": 2, "log": lambda _: None, **kw})


def test_encoding_shows_a_progress_bar_of_documents_on_a_terminal(
        tmp_path: Path, tiny_tokenizer: tuple[Path, Any], kjv_verses: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _texts(kjv_verses, 12)
    monkeypatch.setattr(build, "ENCODE_BATCH", 5)
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    _quiet_build(tmp_path, tiny_tokenizer[0], docs)  # progress is on unless turned off
    bar = err.getvalue().replace("\r", "\n").splitlines()[-1]
    assert bar.startswith("encoding: 100%") and "12/12 [" in bar and "doc/s]" in bar
    err.seek(0), err.truncate()
    _quiet_build(tmp_path, tiny_tokenizer[0], docs, progress=False, overwrite=True)
    assert err.getvalue() == ""


def test_no_progress_bar_where_standard_error_is_not_a_terminal(
        tmp_path: Path, tiny_tokenizer: tuple[Path, Any], kjv_verses: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    _quiet_build(tmp_path, tiny_tokenizer[0], _texts(kjv_verses, 6))
    assert capsys.readouterr().err == ""


def test_documents_are_encoded_in_bounded_batches(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                                  kjv_verses: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import sentencepiece as spm

    sizes: list[int] = []
    real = spm.SentencePieceProcessor.encode

    def encode(self: Any, text: Any, *args: Any, **kw: Any) -> Any:
        sizes.append(len(text))
        return real(self, text, *args, **kw)

    monkeypatch.setattr(spm.SentencePieceProcessor, "encode", encode)
    monkeypatch.setattr(build, "ENCODE_BATCH", 4)
    _quiet_build(tmp_path, tiny_tokenizer[0], _texts(kjv_verses, 10), progress=False)
    assert sizes == [4, 4, 2]


def test_a_tokenizer_with_other_special_ids_is_refused_by_name(tmp_path: Path, kjv_verses: list[str]) -> None:
    import sentencepiece as spm

    prefix = tmp_path / "plain"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(kjv_verses[:500]), model_prefix=str(prefix),
                                   vocab_size=300, model_type="bpe", minloglevel=2)
    model = prefix.with_suffix(".model")
    with pytest.raises(DataError) as err:
        _quiet_build(tmp_path, model, kjv_verses[:4], progress=False)
    assert str(err.value) == (f"{model}: tokenizer special ids pad/bos/eos/unk are (-1, 1, 2, 0), "
                              "expected (0, 1, 2, 3)")


def test_a_tokenizer_of_exactly_the_largest_vocab_is_accepted(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                                              kjv_verses: list[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "MAX_VOCAB", 512)
    assert _quiet_build(tmp_path, tiny_tokenizer[0], kjv_verses[:4], progress=False).vocab_size == 512


def test_the_trained_tokenizer_uses_the_coverage_asked_for_and_build_json_says_when_and_with_what(
        tmp_path: Path, kjv_verses: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    from clowncar import __version__

    monkeypatch.setenv("TZ", "America/New_York")  # `created` is UTC whatever the local zone
    time.tzset()
    try:
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        res = build_dataset([_corpus_file(tmp_path, kjv_verses[:400])], tmp_path / "ds", vocab_size=512,
                            val_docs=10, progress=False, log=lambda _: None, character_coverage=0.9995)
        after = dt.datetime.now(dt.UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(res.tokenizer.read_bytes())
    assert proto.trainer_spec.character_coverage == pytest.approx(0.9995)
    text = (tmp_path / "ds" / "build.json").read_text(encoding="utf-8")
    assert text.startswith('{\n  "format": "clowncar-data-build/1",\n  "clowncar": ')
    info = json.loads(text)
    assert info["clowncar"] == __version__ and info["tokenizer"]["sentencepiece"] == sentencepiece.__version__
    created = dt.datetime.strptime(info["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before <= created <= after
    seconds = info["tokenizer"]["train_seconds"]
    assert 0 < seconds <= res.seconds < 60 and seconds == round(seconds, 3)  # training is part of the build


def test_build_defaults_take_a_thousand_validation_documents_and_never_overwrite(
        tmp_path: Path, tiny_tokenizer: tuple[Path, Any]) -> None:
    docs = [f"verse number {i}" for i in range(1001)]
    res = _quiet_build(tmp_path, tiny_tokenizer[0], docs, val_docs=1000, progress=False)
    assert (res.splits["val"].documents, res.splits["train"].documents) == (1000, 1)
    res = build_dataset([tmp_path / "docs.jsonl"], tmp_path / "ds2", tokenizer=tiny_tokenizer[0], progress=False,
                        log=lambda _: None)
    assert (res.splits["val"].documents, res.splits["train"].documents) == (1000, 1)
    with pytest.raises(DataError, match="exists"):
        build_dataset([tmp_path / "docs.jsonl"], tmp_path / "ds2", tokenizer=tiny_tokenizer[0], progress=False,
                      log=lambda _: None)
    stale = tmp_path / "ds2" / "fineweb_train_000009.bin"  # a shard of an earlier, larger build
    stale.write_text("old")
    build_dataset([tmp_path / "docs.jsonl"], tmp_path / "ds2", tokenizer=tiny_tokenizer[0], progress=False,
                  log=lambda _: None, overwrite=True)
    assert not stale.exists() and read_build_info(tmp_path / "ds2") is not None


def test_the_field_and_document_unit_reach_the_corpus(tmp_path: Path, tiny_tokenizer: tuple[Path, Any]) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"body": f"first {i}", "text": ""}) + "\n" for i in range(3)))
    res = build_dataset([src], tmp_path / "ds", tokenizer=tiny_tokenizer[0], field_name="body", val_docs=1,
                        progress=False, log=lambda _: None)
    assert res.splits["val"].documents + res.splits["train"].documents == 3
    book = tmp_path / "book.txt"
    book.write_text("".join(f"verse {i}\nof the book\n\n" for i in range(4)))
    res = build_dataset([book], tmp_path / "ds2", tokenizer=tiny_tokenizer[0], docs_per="paragraph", val_docs=1,
                        progress=False, log=lambda _: None)
    assert res.splits["val"].documents + res.splits["train"].documents == 4
    info = read_build_info(tmp_path / "ds2")
    assert info is not None and (info["field"], info["docs_per"]) == ("text", "paragraph")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("layout, message", [
    ("ancestor of cwd", "refusing to build into {out}: it is the current directory or holds it"),
    ("cwd", "refusing to build into .: it is the current directory or holds it (the build replaces the whole "
            "output directory)"),
    ("holds a file of an input directory", "refusing to build into {out}: it is or holds the input {found}"),
    ("holds the input", "refusing to build into {out}: it is or holds the input {text}, which replacing the output "
                        "directory would delete"),
    ("is the input", "refusing to build into {out}: it is or holds the input {text}"),
    ("holds it through a link", "refusing to build into {out}: it is or holds the input {text}"),
    ("holds the tokenizer", "refusing to build into {out}: it is or holds the input {tokenizer}"),
])
def test_an_out_that_holds_the_working_directory_or_an_input_is_refused_before_anything_changes(
        tmp_path: Path, kjv_verses: list[str], tiny_tokenizer: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch,
        layout: str, message: str) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    text = _corpus_file(tmp_path / "a" / "b", kjv_verses[:40])
    tokenizer = None
    out: Path = tmp_path / "a"
    if layout == "ancestor of cwd":
        monkeypatch.chdir(tmp_path / "a" / "b")
        text = _corpus_file(tmp_path, kjv_verses[:40])
    elif layout == "cwd":
        monkeypatch.chdir(tmp_path / "a")
        out = Path(".")
    elif layout == "is the input":
        out = text
    elif layout == "holds it through a link":
        (tmp_path / "link").symlink_to(tmp_path / "a")
        text = tmp_path / "link" / "b" / "docs.jsonl"
    elif layout == "holds a file of an input directory":  # --text DIR reads DIR/a/b/notes.txt too
        found = tmp_path / "a" / "b" / "notes.txt"
        found.write_text("\n".join(kjv_verses[:40]) + "\n")
        text = tmp_path
    elif layout == "holds the tokenizer":
        text = _corpus_file(tmp_path, kjv_verses[:40])
        tokenizer = tmp_path / "a" / "t.model"
        tokenizer.write_bytes(tiny_tokenizer[0].read_bytes())
    before = _tree(tmp_path)
    with pytest.raises(DataError) as err:
        build_dataset([text], out, val_docs=1, tokenizer=tokenizer, overwrite=True, progress=False,
                      log=lambda _: None)
    found = tmp_path / "a" / "b" / "notes.txt"
    assert str(err.value).startswith(message.format(out=out, text=text, tokenizer=tokenizer, found=found))
    assert _tree(tmp_path) == before


def test_an_out_beside_or_inside_the_inputs_directory_is_allowed(tmp_path: Path, kjv_verses: list[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an `out` that holds an input (or the working directory) is refused, not one that an input holds."""
    from clowncar.data.build import check_out_apart

    text = _corpus_file(tmp_path, kjv_verses[:4])
    monkeypatch.chdir(tmp_path)
    for out in (tmp_path / "ds", Path("ds"), tmp_path / "sub" / "ds", Path("docs.jsonl.d")):
        check_out_apart(out, [text, tmp_path], None)  # a directory input holds `out`: building there deletes none


def test_a_vocab_the_corpus_cannot_fill_is_refused_and_the_old_build_kept(tmp_path: Path,
                                                                          kjv_verses: list[str]) -> None:
    """SentencePiece (hard_vocab_limit off) stops when it runs out of merges: the build says so rather than print
    a vocabulary it does not have, and the output it would have replaced is untouched."""
    src = _corpus_file(tmp_path, kjv_verses[:20])
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "build.json").write_text("old")  # an earlier build's, which --overwrite may replace
    before = _tree(tmp_path)
    with pytest.raises(DataError) as err:
        build_dataset([src], tmp_path / "ds", vocab_size=60000, val_docs=1, overwrite=True, progress=False,
                      log=lambda _: None)
    found = re.fullmatch(r"--vocab-size 60000 is more than this corpus supports: the tokenizer stopped at (\d+) ids "
                         r"\(pass --vocab-size (\d+) or less, or give more text\)", str(err.value))
    assert found and found[1] == found[2]
    assert _tree(tmp_path) == before
    res = build_dataset([src], tmp_path / "ds", vocab_size=int(found[1]), val_docs=1, overwrite=True,
                        progress=False, log=lambda _: None)
    assert res.vocab_size == int(found[1]) == json.loads((tmp_path / "ds" / "build.json").read_text())[
        "tokenizer"]["vocab_size"]


def test_shards_are_checked_against_the_tokenizer_kept_beside_them(tmp_path: Path, tiny_tokenizer: tuple[Path, Any],
                                                                  kjv_verses: list[str]) -> None:
    """A build keeps its tokenizer beside build.json: only a byte-identical model may read the shards."""
    model, _ = tiny_tokenizer
    ds = _quiet_build(tmp_path, model, kjv_verses[:40]).out
    check_encoded_with(ds, model)  # the model it was built with: passes
    check_encoded_with(ds, ds / "tokenizer.model")
    other = tmp_path / "other.model"
    other.write_bytes(model.read_bytes() + b"\0")  # one byte more: another file
    with pytest.raises(DataError) as err:
        check_encoded_with(ds, other)
    assert str(err.value) == (f"the shards in {ds} were encoded with {ds / 'tokenizer.model'}, not with {other}: "
                              "their ids would be read as other pieces and BPB would count the wrong bytes (use the "
                              "tokenizer the shards were built with)")
    with pytest.raises(DataError) as err:
        check_encoded_with(ds, tmp_path / "gone.model")
    assert str(err.value) == (f"cannot compare the tokenizers {ds / 'tokenizer.model'} and {tmp_path / 'gone.model'}: "
                              "No such file or directory")
    (ds / "build.json").rename(tmp_path / "build.json")  # no record of the build: nothing to check against
    check_encoded_with(ds, other)
    (tmp_path / "build.json").rename(ds / "build.json")
    (ds / "tokenizer.model").unlink()  # a record without the model: nothing to check against either
    check_encoded_with(ds, other)


def test_a_vocab_size_given_with_a_tokenizer_must_be_its_own(tmp_path: Path, tiny_tokenizer: tuple[Path, Any]
                                                             ) -> None:
    model, _ = tiny_tokenizer
    assert build.load_given_tokenizer(model, None).vocab_size() == 512
    assert build.load_given_tokenizer(model, 512).vocab_size() == 512
    with pytest.raises(DataError) as err:
        build.load_given_tokenizer(model, 1024)
    assert str(err.value) == (f"--vocab-size 1024 disagrees with --tokenizer {model}, whose vocabulary has 512 ids: "
                              "the tokenizer fixes it (leave --vocab-size out, or pass --vocab-size 512)")
    with pytest.raises(DataError, match=r"^--vocab-size 1024 disagrees with --tokenizer"):  # through the build
        build_dataset([model], tmp_path / "never-made", vocab_size=1024, tokenizer=model, log=lambda _: None)
    assert not (tmp_path / "never-made").exists()
