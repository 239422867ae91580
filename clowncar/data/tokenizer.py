"""SentencePiece BPE tokenizers trained with the Parameter Golf challenge's exact settings."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clowncar.data.paths import require_regular_file
from clowncar.data.shards import MAX_VOCAB
from clowncar.errors import DataError

if TYPE_CHECKING:
    import sentencepiece as spm

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
DEFAULT_CHARACTER_COVERAGE = 0.999
"""The challenge's value. 1.0 fails once the text holds more distinct characters than the vocabulary has room
for beside the 256 byte pieces; characters outside the coverage are encoded as UTF-8 byte pieces instead."""

CHALLENGE_SETTINGS: dict[str, Any] = {
    "model_type": "bpe",
    "byte_fallback": True,
    "split_digits": True,
    "normalization_rule_name": "nmt_nfkc",
    "add_dummy_prefix": False,
    "pad_id": PAD_ID,
    "bos_id": BOS_ID,
    "eos_id": EOS_ID,
    "unk_id": UNK_ID,
    "hard_vocab_limit": False,
}
"""The trainer arguments of the challenge's `download_hf_docs_and_tokenize.py` (plus vocab size and coverage)."""

MAX_TRAIN_LINE_BYTES = 4192
"""SentencePiece's trainer silently skips input sentences of this many bytes or more."""

_BREAK = re.compile(r"\s+")


def _split_long(line: str, limit: int) -> Iterator[str]:
    """Cut a line into pieces of fewer than `limit` UTF-8 bytes, at whitespace when possible."""
    while len(line.encode("utf-8")) >= limit:
        # Greedy: the longest prefix under the limit that ends at a whitespace run.
        prefix = line.encode("utf-8")[:limit - 1].decode("utf-8", errors="ignore")
        cut = max((m.start() for m in _BREAK.finditer(prefix)), default=0)
        if cut == 0:  # one unbroken run of text: cut at a character boundary
            cut = len(prefix)
        head, line = line[:cut].strip(), line[cut:].lstrip()
        if head:
            yield head
    if line.strip():
        yield line.strip()


def training_lines(texts: Iterable[str], limit: int = MAX_TRAIN_LINE_BYTES) -> Iterator[str]:
    """Documents as trainer sentences: split at newlines, then long lines cut below `limit` bytes.

    Only the tokenizer's training input is split; the shards always hold whole documents.
    """
    for text in texts:
        for line in text.replace("\x00", " ").splitlines():
            yield from _split_long(line, limit)


def check_character_coverage(character_coverage: float) -> None:
    """DataError for a coverage outside sentencepiece's own bounds (NaN too): `data build` checks it before it
    reads the corpus, not after."""
    if not 0.98 <= character_coverage <= 1.0:
        raise DataError(f"character coverage must be between 0.98 and 1.0, got {character_coverage}")


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_prefix: str | os.PathLike[str],
                    character_coverage: float = DEFAULT_CHARACTER_COVERAGE,
                    num_threads: int | None = None) -> spm.SentencePieceProcessor:
    """Train a BPE tokenizer; writes `<model_prefix>.model` and `.vocab` and returns the loaded model."""
    import sentencepiece as spm

    if not 8 <= vocab_size <= MAX_VOCAB:
        raise DataError(f"vocab size {vocab_size} out of range: shards store uint16 ids, so 8..{MAX_VOCAB}")
    check_character_coverage(character_coverage)
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    lines = training_lines(texts)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=lines, model_prefix=str(prefix), vocab_size=vocab_size,
            character_coverage=character_coverage, num_threads=num_threads or min(os.cpu_count() or 1, 16),
            minloglevel=2, **CHALLENGE_SETTINGS,
        )
    except (RuntimeError, OSError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        msg = re.sub(r"^.*?\)\s*\[.*?\]\s*", "", msg)  # drop the C++ source location and check
        msg = msg.replace("--character_coverage option", "--character-coverage")
        raise DataError(f"sentencepiece training failed: {msg}") from None
    # hard_vocab_limit=False lets the trainer stop below vocab_size, never above it: the ids fit uint16
    return load_tokenizer(prefix.with_suffix(".model"))


def load_tokenizer(path: str | os.PathLike[str]) -> spm.SentencePieceProcessor:
    """Load a SentencePiece model; a missing or corrupt file is a DataError naming it."""
    import sentencepiece as spm

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: tokenizer model not found")
    require_regular_file(p, "tokenizer model")  # /dev/zero or a FIFO exists: say what it is, not "not found"
    sp = spm.SentencePieceProcessor()
    try:
        sp.Load(str(p))
    except (OSError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        raise DataError(f"{p}: not a SentencePiece model ({lines[-1] if lines else type(exc).__name__})") from None
    return sp


def tokenizer_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of a tokenizer model file, read after `load_tokenizer` accepted it: what a trial records
    of the tokenizer it was trained with, and what `artifact eval` compares the given one against."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise DataError(f"cannot read the tokenizer model {path}: {err.strerror or err}") from None


def check_challenge_ids(sp: spm.SentencePieceProcessor, where: str) -> None:
    """Shards prefix every document with BOS=1; a tokenizer with other special ids would mislabel them."""
    ids = (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id())
    if ids != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
        raise DataError(f"{where}: tokenizer special ids pad/bos/eos/unk are {ids}, expected (0, 1, 2, 3)")
