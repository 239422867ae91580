from __future__ import annotations

import io
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
