from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
import sentencepiece as spm

from clowncar.data.tokenizer import (
    MAX_TRAIN_LINE_BYTES,
    check_challenge_ids,
    load_tokenizer,
    train_tokenizer,
    training_lines,
)
from clowncar.errors import DataError


def test_special_ids_match_the_challenge(tiny_tokenizer: tuple[Path, Any]) -> None:
    _, sp = tiny_tokenizer
    assert [sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()) == (0, 1, 2, 3)
    check_challenge_ids(sp, "tiny")


def test_byte_fallback_pieces_cover_all_256_bytes(tiny_tokenizer: tuple[Path, Any]) -> None:
    _, sp = tiny_tokenizer
    assert sum(sp.is_byte(i) for i in range(sp.vocab_size())) == 256
    ids = sp.encode("漢")  # not in the KJV: three UTF-8 byte pieces, never <unk>
    assert [sp.id_to_piece(i) for i in ids] == ["<0xE6>", "<0xBC>", "<0xA2>"]


def test_digits_are_split_one_per_piece(tiny_tokenizer: tuple[Path, Any]) -> None:
    _, sp = tiny_tokenizer
    pieces = [sp.id_to_piece(i) for i in sp.encode("6789")]
    assert len(pieces) == 4 and sp.decode(sp.encode("6789")) == "6789"


def test_no_dummy_prefix_and_nfkc_normalization(tiny_tokenizer: tuple[Path, Any]) -> None:
    _, sp = tiny_tokenizer
    assert not sp.id_to_piece(sp.encode("the")[0]).startswith("\u2581")  # add_dummy_prefix=False
    assert sp.decode(sp.encode("ﬁre")) == "fire"  # nmt_nfkc folds the ligature


def test_training_lines_stay_under_the_trainer_limit_and_keep_the_words() -> None:
    doc = "first line\n" + " ".join(f"word{i}" for i in range(3000)) + "\n" + "x" * 9000
    lines = list(training_lines([doc]))
    assert all(len(line.encode()) < MAX_TRAIN_LINE_BYTES for line in lines)
    assert "".join(" ".join(lines).split()) == "".join(doc.split())
    emoji = "😀" * 3000  # 12,000 bytes: cut at character boundaries
    assert "".join(training_lines([emoji])) == emoji


def test_words_only_in_a_long_document_are_learned(tmp_path: Path, kjv_verses: list[str]) -> None:
    long_doc = "zyzzyva " * 2000  # one 16 KB line
    sp = train_tokenizer([*kjv_verses[:300], long_doc], 400, tmp_path / "t")
    assert [sp.id_to_piece(i) for i in sp.encode("zyzzyva")] == ["zyzzyva"]
    # Control: fed unsplit, sentencepiece skips the line and never sees the word.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([*kjv_verses[:300], long_doc]), model_writer=model,
                                   vocab_size=400, model_type="bpe", byte_fallback=True, minloglevel=2)
    raw = spm.SentencePieceProcessor(model_proto=model.getvalue())
    assert len(raw.encode("zyzzyva")) > 1


def test_full_character_coverage_with_too_many_characters_is_a_one_line_error(
        tmp_path: Path, kjv_verses: list[str]) -> None:
    cjk = "".join(chr(0x4E00 + i) for i in range(300))  # 300 rare characters in ~400 KB of English
    docs = kjv_verses + [cjk[i:i + 30] for i in range(0, len(cjk), 30)]
    with pytest.raises(DataError, match="Vocabulary size is smaller than required_chars") as err:
        train_tokenizer(docs, 400, tmp_path / "t", character_coverage=1.0)
    assert "\n" not in str(err.value) and "--character-coverage" in str(err.value)
    sp = train_tokenizer(docs, 400, tmp_path / "u")  # 0.999: the rare characters become byte pieces
    assert sp.decode(sp.encode(cjk[:5])) == cjk[:5]
    with pytest.raises(DataError, match=r"between 0\.98 and 1\.0"):
        train_tokenizer(docs, 400, tmp_path / "v", character_coverage=0.9)


def test_vocab_beyond_uint16_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="out of range"):
        train_tokenizer(["a b c"], 70000, tmp_path / "t")
    assert list(tmp_path.iterdir()) == []


def test_loading_a_missing_or_corrupt_model_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_tokenizer(tmp_path / "none.model")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a SentencePiece model"):
        load_tokenizer(bad)


@pytest.mark.parametrize(("text", "lines"), [
    ("a" * 9, ["a" * 9]),  # 9 bytes: under a limit of 10
    ("a" * 10, ["a" * 9, "a"]),  # 10 bytes: cut
    ("a" * 20, ["a" * 9, "a" * 9, "aa"]),  # no blank: cut at the limit
    ("aaaa   bbbbbbbb", ["aaaa", "bbbbbbbb"]),  # at the blank run, which neither piece keeps
    ("é" * 10, ["éééé", "éééé", "éé"]),  # two-byte characters are never split
    ("  x  \n\n y\x00z", ["x", "y z"]),  # per line, stripped; NUL (the trainer's terminator) becomes a blank
])
def test_training_lines_are_cut_below_the_limit_at_blanks_or_characters(text: str, lines: list[str]) -> None:
    assert list(training_lines([text], limit=10)) == lines


def test_training_is_silent_and_makes_missing_folders(tmp_path: Path, kjv_verses: list[str],
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    spm.set_min_log_level(0)  # the level is process-wide: an earlier quiet call must not make this one quiet
    sp = train_tokenizer(kjv_verses[:200], 400, tmp_path / "a" / "b" / "t")
    assert sp.vocab_size() == 400 and (tmp_path / "a" / "b" / "t.model").is_file()
    assert capfd.readouterr() == ("", "")  # sentencepiece logs every step to stderr unless told not to


def _threads(sp: spm.SentencePieceProcessor) -> int:
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(sp.serialized_model_proto())
    return model.trainer_spec.num_threads


def test_the_trainer_uses_every_core_up_to_16_unless_told(tmp_path: Path, kjv_verses: list[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, want in ((32, 16), (3, 3), (None, 1)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert _threads(train_tokenizer(kjv_verses[:100], 400, tmp_path / f"t{cores}")) == want
    assert _threads(train_tokenizer(kjv_verses[:100], 400, tmp_path / "one", num_threads=1)) == 1


def test_vocab_and_coverage_bounds_are_inclusive(tmp_path: Path, kjv_verses: list[str]) -> None:
    for vocab in (7, 65537):
        with pytest.raises(DataError) as err:
            train_tokenizer(["abc def"], vocab, tmp_path / "t")
        assert str(err.value) == f"vocab size {vocab} out of range: shards store uint16 ids, so 8..65536"
    with pytest.raises(DataError) as err:  # 8 is in range: sentencepiece itself says why it is too small
        train_tokenizer(["abc def"], 8, tmp_path / "t")
    assert str(err.value) == ("sentencepiece training failed: Vocabulary size is smaller than required_chars. "
                              "8 vs 267. Increase vocab_size or decrease character_coverage with "
                              "--character-coverage.")
    assert train_tokenizer(kjv_verses[:100], 65536, tmp_path / "big").vocab_size() <= 65536
    for coverage in (0.979, 1.001):
        with pytest.raises(DataError) as err:
            train_tokenizer(["abc def"], 300, tmp_path / "t", character_coverage=coverage)
        assert str(err.value) == f"character coverage must be between 0.98 and 1.0, got {coverage}"
    assert train_tokenizer(kjv_verses[:100], 400, tmp_path / "low", character_coverage=0.98).vocab_size() == 400


def test_a_trainer_failure_without_a_message_is_named_by_its_type(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(**kwargs: object) -> None:
        raise RuntimeError("  ")

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", fails)
    with pytest.raises(DataError) as err:
        train_tokenizer(["abc def"], 300, tmp_path / "t")
    assert str(err.value) == "sentencepiece training failed: RuntimeError"


def test_special_ids_other_than_the_challenges_are_refused(tmp_path: Path) -> None:
    model = io.BytesIO()  # sentencepiece's own defaults: unk 0, bos 1, eos 2, no pad
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["abc def ghi"] * 50), model_writer=model,
                                   vocab_size=20, hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(DataError) as err:
        check_challenge_ids(spm.SentencePieceProcessor(model_proto=model.getvalue()), "x.model")
    assert str(err.value) == "x.model: tokenizer special ids pad/bos/eos/unk are (-1, 1, 2, 0), expected (0, 1, 2, 3)"


def test_a_model_that_fails_to_load_without_a_message_is_named_by_its_type(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(self: object, path: str) -> None:
        raise OSError()

    monkeypatch.setattr(spm.SentencePieceProcessor, "Load", fails)
    (tmp_path / "m.model").write_bytes(b"x")
    with pytest.raises(DataError) as err:
        load_tokenizer(tmp_path / "m.model")
    assert str(err.value) == f"{tmp_path / 'm.model'}: not a SentencePiece model (OSError)"


def test_a_corrupt_model_names_the_file_and_sentencepieces_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError) as err:
        load_tokenizer(bad)
    assert str(err.value) == f"{bad}: not a SentencePiece model (INTERNAL: could not parse ModelProto from {bad})"


@pytest.mark.parametrize("make, kind", [
    (lambda tmp: Path("/dev/zero"), "a character device"),
    (lambda tmp: (os.mkfifo(tmp / "t.model"), tmp / "t.model")[1], "a FIFO (named pipe)"),
    (lambda tmp: (os.mkdir(tmp / "t.model"), tmp / "t.model")[1], "a directory"),
])
def test_a_model_that_is_not_a_regular_file_is_named_as_what_it_is(make: Any, kind: str, tmp_path: Path) -> None:
    """Not "not found": the path exists, and SentencePiece would read /dev/zero until memory runs out."""
    path = make(tmp_path)
    with pytest.raises(DataError) as err:
        load_tokenizer(path)
    assert str(err.value) == f"cannot read tokenizer model {path}: it is {kind}, not a regular file"


def test_the_tokenizer_digest_is_the_files_sha256_and_an_unreadable_file_says_why(tmp_path: Path) -> None:
    import hashlib

    from clowncar.data.tokenizer import tokenizer_sha256

    model = tmp_path / "t.model"
    model.write_bytes(b"not a model, but bytes to digest")
    assert tokenizer_sha256(model) == hashlib.sha256(b"not a model, but bytes to digest").hexdigest()
    assert tokenizer_sha256(str(model)) == tokenizer_sha256(model)
    with pytest.raises(DataError) as err:
        tokenizer_sha256(tmp_path)
    assert str(err.value) == f"cannot read the tokenizer model {tmp_path}: Is a directory"
