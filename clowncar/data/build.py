"""Text to shards: train (or reuse) a tokenizer, encode every document as `[BOS] + ids`, write shards.

The first `val_docs` documents form the validation split, the rest the train split, as in the challenge's
export. Shards hold at most `shard_tokens` tokens; documents run on across shard boundaries. Everything is
built in a staging directory next to the target and renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clowncar import __version__
from clowncar.data.atomic import check_target, staged_directory
from clowncar.data.bpb import ByteLUTs, build_byte_luts, count_stream_bytes
from clowncar.data.corpus import Corpus
from clowncar.data.record import BUILD_INFO, TOKENIZER_FILE
from clowncar.data.record import read_build_info as read_build_info  # re-exported: lives in record.py
from clowncar.data.shards import MAX_VOCAB, SHARD_NAME, shard_name, write_shard
from clowncar.data.tokenizer import (
    BOS_ID,
    CHALLENGE_SETTINGS,
    DEFAULT_CHARACTER_COVERAGE,
    check_challenge_ids,
    check_character_coverage,
    load_tokenizer,
    train_tokenizer,
)
from clowncar.errors import DataError

SHARD_TOKENS = 10**8
"""The challenge's shard size (a full shard is 200,001,024 bytes)."""
DEFAULT_VOCAB_SIZE = 1024
"""The vocabulary `data build` trains when no --vocab-size is given (and no --tokenizer, which fixes its own)."""
ENCODE_BATCH = 1024


@dataclass
class SplitStats:
    documents: int = 0
    tokens: int = 0
    bytes: int = 0
    """Bytes as bits-per-byte counts them (the byte tables of `clowncar.data.bpb`)."""
    text_bytes: int = 0
    """UTF-8 bytes of the input text before normalization."""
    shards: list[str] = field(default_factory=list)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens if self.tokens else 0.0


@dataclass
class BuildResult:
    out: Path
    tokenizer: Path
    vocab_size: int
    splits: dict[str, SplitStats]
    seconds: float

    def summary_lines(self) -> list[str]:
        lines = [f"{'split':6s} {'shards':>6s} {'documents':>10s} {'tokens':>12s} {'bytes':>12s} "
                 f"{'bytes/token':>11s}"]
        for name in ("val", "train"):
            s = self.splits[name]
            lines.append(f"{name:6s} {len(s.shards):6d} {s.documents:10,d} {s.tokens:12,d} {s.bytes:12,d} "
                         f"{s.bytes_per_token:11.3f}")
        lines.append("bytes: the UTF-8 bytes the tokens decode to, what BPB divides by (build.json's text_bytes is "
                     "the text as read, before the tokenizer's normalization)")
        lines.append(f"shards:    {self.out}")
        lines.append(f"tokenizer: {self.tokenizer} (vocab {self.vocab_size})")
        return lines

    def warnings(self) -> list[str]:
        """What the build did that a user most likely did not mean: a val split with more tokens than the train
        split (with --docs-per file each file is one document, so --val-docs 1000 took whole files; walk 6, F25)."""
        val, train = self.splits["val"], self.splits["train"]
        if val.tokens <= train.tokens:
            return []
        docs = "document" if val.documents == 1 else "documents"
        return [f"the val split ({val.tokens:,d} tokens in {val.documents:,d} {docs}) is larger than the train "
                f"split ({train.tokens:,d} tokens in {train.documents:,d}): the first --val-docs documents, in the "
                "order of --text, are validation; lower --val-docs or put the inputs in another order"]


class ShardWriter:
    """Buffers one split's tokens and writes full shards of `shard_tokens` as they fill."""

    def __init__(self, directory: Path, split: str, shard_tokens: int) -> None:
        self.directory, self.split = directory, split
        self.buf = np.empty(shard_tokens, dtype=np.uint16)
        self.fill = 0
        self.files: list[str] = []

    def add(self, tokens: np.ndarray) -> None:
        pos = 0
        while pos < len(tokens):
            take = min(len(self.buf) - self.fill, len(tokens) - pos)
            self.buf[self.fill:self.fill + take] = tokens[pos:pos + take]
            self.fill += take
            pos += take
            if self.fill == len(self.buf):
                self.flush()

    def flush(self) -> None:
        if self.fill:
            name = shard_name(self.split, len(self.files))
            write_shard(self.directory / name, self.buf[:self.fill])
            self.files.append(name)
            self.fill = 0


def _batches(docs: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for d in docs:
        batch.append(d)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    # disable=None turns the bar off when stderr is not a terminal (logs, CI, tests).
    return tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, disable=None if enabled else True,
                dynamic_ncols=True)


def _documents_array(encoded: list[list[int]]) -> np.ndarray:
    """`[BOS] + ids` for each document, concatenated (no EOS, as in the challenge's export)."""
    flat: list[int] = []
    for ids in encoded:
        flat.append(BOS_ID)
        flat.extend(ids)
    return np.array(flat, dtype=np.uint16)


def encode_corpus(corpus: Corpus, sp: Any, luts: ByteLUTs, stage: Path, val_docs: int, shard_tokens: int,
                  total_docs: int, progress: bool) -> dict[str, SplitStats]:
    stats = {"val": SplitStats(), "train": SplitStats()}
    writers = {s: ShardWriter(stage, s, shard_tokens) for s in stats}
    index = 0
    threads = min(os.cpu_count() or 1, 16)
    with _progress(total_docs, "encoding", progress) as bar:
        for batch in _batches(corpus.documents(), ENCODE_BATCH):
            encoded = sp.encode(batch, out_type=int, num_threads=threads)
            cut = min(max(val_docs - index, 0), len(batch))  # documents [0, cut) of this batch are validation
            for split, lo, hi in (("val", 0, cut), ("train", cut, len(batch))):
                if lo == hi:
                    continue
                toks = _documents_array(encoded[lo:hi])
                s = stats[split]
                s.documents += hi - lo
                s.tokens += len(toks)
                # Each document starts with BOS, so counting the batch as one stream is exact per document.
                s.bytes += count_stream_bytes(toks, luts)
                s.text_bytes += sum(len(t.encode("utf-8")) for t in batch[lo:hi])
                writers[split].add(toks)
            index += len(batch)
            bar.update(len(batch))
    for split, w in writers.items():
        w.flush()
        stats[split].shards = w.files
    if index != total_docs:
        raise DataError(f"corpus changed while building: counted {total_docs} documents, encoded {index}")
    return stats


def check_trained_vocab(sp: Any, vocab_size: int) -> None:
    """The trainer (hard_vocab_limit off, as the challenge's) stops early when the corpus runs out of merges;
    a build must not then say it made the vocabulary asked for. SentencePiece cannot tell the limit before it
    trains, so the trained model is checked (inside the staging directory: a refusal leaves nothing behind)."""
    got = int(sp.vocab_size())
    if got < vocab_size:
        raise DataError(f"--vocab-size {vocab_size} is more than this corpus supports: the tokenizer stopped at "
                        f"{got} ids (pass --vocab-size {got} or less, or give more text)")


def load_given_tokenizer(tokenizer: Path, vocab_size: int | None) -> Any:
    """The `--tokenizer` a build encodes with, checked before anything is read at length or written: the
    challenge's special ids, ids that fit uint16 shards, and a `--vocab-size` given with it that says the same
    (the tokenizer fixes the vocabulary: a size it does not have would be ignored in silence)."""
    sp = load_tokenizer(tokenizer)
    check_challenge_ids(sp, str(tokenizer))
    got = int(sp.vocab_size())
    if got > MAX_VOCAB:
        raise DataError(f"{tokenizer}: vocab {got} does not fit uint16 shards (max {MAX_VOCAB})")
    if vocab_size is not None and vocab_size != got:
        raise DataError(f"--vocab-size {vocab_size} disagrees with --tokenizer {tokenizer}, whose vocabulary has "
                        f"{got} ids: the tokenizer fixes it (leave --vocab-size out, or pass --vocab-size {got})")
    return sp


def _prepare_tokenizer(corpus: Corpus, stage: Path, vocab_size: int, tokenizer: Path | None, given: Any,
                       character_coverage: float, log: Any) -> tuple[Any, dict[str, Any]]:
    target = stage / TOKENIZER_FILE
    if tokenizer is not None:
        sp = given
        shutil.copyfile(tokenizer, target)
        if tokenizer.with_suffix(".vocab").is_file():
            shutil.copyfile(tokenizer.with_suffix(".vocab"), target.with_suffix(".vocab"))
        return sp, {"trained": False, "source": str(tokenizer.resolve())}
    log(f"training tokenizer: sentencepiece BPE, vocab {vocab_size}, character coverage {character_coverage}")
    t0 = time.perf_counter()
    sp = train_tokenizer(corpus.documents(), vocab_size, target.with_suffix(""), character_coverage)
    check_trained_vocab(sp, vocab_size)
    settings = {**CHALLENGE_SETTINGS, "vocab_size": vocab_size, "character_coverage": character_coverage}
    return sp, {"trained": True, "trainer": settings, "train_seconds": round(time.perf_counter() - t0, 3)}


def foreign_to_build(out: Path) -> Path | None:
    """The first entry of `out` (by name) that `data build` does not write: what `--overwrite` must not delete.
    A build writes shards, the tokenizer's model and vocab, and build.json; `data fetch-fineweb` shards too."""
    own = {TOKENIZER_FILE, Path(TOKENIZER_FILE).with_suffix(".vocab").name, BUILD_INFO}
    for entry in sorted(out.iterdir()):
        ours = entry.name in own or SHARD_NAME.fullmatch(entry.name) is not None
        if not ours or (entry.is_dir() and not entry.is_symlink()):
            return entry
    return None


def check_out_apart(out: Path, inputs: list[Path], tokenizer: Path | None) -> None:
    """Publishing replaces the whole `out` directory: refuse an `out` that holds the working directory (it
    cannot be renamed away, and `.` has no name to stage beside) or any input it would delete with it."""
    target = out.resolve()
    here = Path.cwd().resolve()
    if target == here or target in here.parents:
        raise DataError(f"refusing to build into {out}: it is the current directory or holds it (the build "
                        "replaces the whole output directory)")
    for given in [*inputs, *([tokenizer] if tokenizer is not None else [])]:
        source = Path(given).expanduser().resolve()
        if source == target or target in source.parents:
            raise DataError(f"refusing to build into {out}: it is or holds the input {given}, which "
                            "replacing the output directory would delete")


def build_dataset(inputs: list[Path], out: Path, *, vocab_size: int | None = None, val_docs: int = 1000,
                  shard_tokens: int = SHARD_TOKENS, field_name: str = "text", docs_per: str = "file",
                  tokenizer: Path | None = None, character_coverage: float = DEFAULT_CHARACTER_COVERAGE,
                  overwrite: bool = False, progress: bool = True, log: Any = print,
                  corpus: Corpus | None = None, provenance: dict[str, Any] | None = None,
                  replacer: str = "--overwrite") -> BuildResult:
    """Build a shard directory `out` (shards + `tokenizer.model` + `build.json`) from text inputs. `vocab_size`:
    the tokenizer to train's (default `DEFAULT_VOCAB_SIZE`); with `tokenizer`, None or that tokenizer's own.
    `replacer`: what a refusal to replace `out` says replaces output (`data demo` has no --overwrite)."""
    import sentencepiece

    t0 = time.perf_counter()
    out = Path(out).expanduser()
    vocab = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
    if tokenizer is None and not 8 <= vocab <= MAX_VOCAB:
        raise DataError(f"vocab size {vocab} out of range: shards store uint16 ids, so 8..{MAX_VOCAB}")
    if tokenizer is None:  # the coverage the tokenizer will be trained with, before the corpus is read
        check_character_coverage(character_coverage)
    if shard_tokens < 1 or shard_tokens >= 2**31:
        raise DataError(f"shard size must be between 1 and {2**31 - 1} tokens, got {shard_tokens}")
    if val_docs < 1:
        raise DataError(f"--val-docs must be at least 1, got {val_docs}")
    corpus = corpus or Corpus.from_paths(inputs, field=field_name, docs_per=docs_per)  # type: ignore[arg-type]
    # the files a --text directory gave too: an --out inside that directory may hold some of them
    check_out_apart(out, [*inputs, *corpus.files], tokenizer)
    check_target(out, overwrite, foreign_to_build, replacer)
    given = load_given_tokenizer(tokenizer, vocab_size) if tokenizer is not None else None
    n_docs, n_bytes, per_file = corpus.count()
    if n_docs == 0:
        raise DataError(f"empty corpus: no non-blank documents in {len(corpus.files)} input file(s)")
    if val_docs >= n_docs:
        raise DataError(f"--val-docs {val_docs} leaves no training documents: the corpus has {n_docs}")
    log(f"corpus: {n_docs:,d} documents, {n_bytes:,d} bytes in {len(corpus.files)} file(s)")
    if note := val_from_some_inputs(inputs, corpus, val_docs, per_file):
        log(note)
    with staged_directory(out, overwrite, foreign_to_build, replacer) as stage:
        sp, tok_info = _prepare_tokenizer(corpus, stage, vocab, tokenizer, given, character_coverage, log)
        luts = build_byte_luts(sp, sp.vocab_size())
        stats = encode_corpus(corpus, sp, luts, stage, val_docs, shard_tokens, n_docs, progress)
        info = {
            "format": "clowncar-data-build/1", "clowncar": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": [str(p.resolve()) for p in corpus.files],
            "docs_per": corpus.docs_per, "field": corpus.field,
            "val_docs": val_docs, "shard_tokens": shard_tokens, "bos_id": BOS_ID, "append_eos": False,
            "tokenizer": {"file": TOKENIZER_FILE, "vocab_size": int(sp.vocab_size()),
                          "sentencepiece": sentencepiece.__version__, **tok_info},
            "splits": {k: asdict(v) | {"bytes_per_token": round(v.bytes_per_token, 6)} for k, v in stats.items()},
            **(provenance or {}),
        }
        (stage / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return BuildResult(out=out, tokenizer=out / TOKENIZER_FILE, vocab_size=int(sp.vocab_size()), splits=stats,
                       seconds=time.perf_counter() - t0)


def val_from_some_inputs(inputs: list[Path], corpus: Corpus, val_docs: int, per_file: list[int]) -> str:
    """A note when the val split (the first `val_docs` documents, the challenge's rule) comes from only some of
    several inputs: a val set of one kind of text beside a train set of another reads as a BPB gap between them."""
    if len(inputs) < 2 or len(corpus.origins) != len(per_file):
        return ""
    used = corpus.val_inputs(val_docs, per_file)
    if len(used) == len(inputs):
        return ""
    names = ", ".join(str(inputs[i]) for i in used)
    return (f"note: the {val_docs:,d} val documents all come from {names} ({len(used)} of {len(inputs)} inputs): "
            "the first documents are validation (the challenge's rule), so order the inputs, or mix them into one "
            "JSONL, to get the val set you want")
