"""`clowncar data inspect DIR`: validate every shard header and summarise a shard directory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clowncar.data.bpb import ByteLUTs, build_byte_luts, count_stream_bytes
from clowncar.data.record import (
    TOKENIZER_FILE,
    check_encoded_with,
    check_shard_record,
    numbering_gaps,
    read_build_info,
)
from clowncar.data.shards import ShardHeader, list_shards, read_header, read_shard
from clowncar.data.tokenizer import BOS_ID, load_tokenizer
from clowncar.errors import DataError

SCAN_CHUNK = 1 << 24


@dataclass
class SplitReport:
    shards: int = 0
    tokens: int = 0
    documents: int = 0
    """BOS tokens: every document starts with one."""
    max_id: int = -1
    bytes: int | None = None

    @property
    def bytes_per_token(self) -> float | None:
        return self.bytes / self.tokens if self.bytes is not None and self.tokens else None


@dataclass
class DirReport:
    directory: Path
    splits: dict[str, SplitReport] = field(default_factory=dict)
    tokenizer: Path | None = None
    tokenizer_vocab: int | None = None
    record: str | None = None
    """The record the shard files were checked against (build.json, manifest.json), if the directory has one."""
    warnings: list[str] = field(default_factory=list)
    """What does not stop the directory being used but limits it or hints at a loss (printed on stderr)."""

    @property
    def max_id(self) -> int:
        return max(s.max_id for s in self.splits.values())

    def to_dict(self) -> dict[str, Any]:
        splits = {k: {**vars(v), "max_id": v.max_id if v.shards else None, "bytes_per_token": v.bytes_per_token}
                  for k, v in self.splits.items()}
        return {
            "directory": str(self.directory),
            "splits": splits,
            "max_token_id": self.max_id,
            "tokenizer": str(self.tokenizer) if self.tokenizer else None,
            "tokenizer_vocab": self.tokenizer_vocab,
            "record": self.record,
            "warnings": self.warnings,
        }

    def lines(self) -> list[str]:
        out = [f"directory: {self.directory}",
               f"{'split':6s} {'shards':>6s} {'tokens':>14s} {'documents':>10s} {'max id':>6s} {'bytes':>14s} "
               f"{'bytes/token':>11s}"]
        for name, s in self.splits.items():
            nbytes = f"{s.bytes:14,d}" if s.bytes is not None else f"{'-':>14s}"
            bpt = f"{s.bytes_per_token:11.3f}" if s.bytes_per_token is not None else f"{'-':>11s}"
            max_id = f"{s.max_id:6d}" if s.shards else f"{'none':>6s}"  # no shard, no largest id (not -1)
            out.append(f"{name:6s} {s.shards:6d} {s.tokens:14,d} {s.documents:10,d} {max_id} {nbytes} {bpt}")
        tok = (f"{self.tokenizer} (vocab {self.tokenizer_vocab})" if self.tokenizer
               else "not found (pass --tokenizer to check ids and count bytes)")
        out.append(f"vocab: max token id {self.max_id} (needs vocab >= {self.max_id + 1}); tokenizer: {tok}")
        n = sum(s.shards for s in self.splits.values())
        matched = f"; shard list and token counts match {self.record}" if self.record else ""
        out.append(f"ok: {n} shard headers valid (magic, version, size = 1024 + 2 x tokens){matched}")
        return out


def find_tokenizer(directory: Path) -> Path | None:
    """The tokenizer that belongs to a shard directory, if one can be found next to it."""
    if (directory / TOKENIZER_FILE).is_file():
        return directory / TOKENIZER_FILE
    models = sorted(directory.glob("*.model"))
    if len(models) == 1:
        return models[0]
    info = read_build_info(directory) or {}
    if isinstance(info.get("tokenizer"), dict) and (directory / str(info["tokenizer"].get("file"))).is_file():
        return directory / str(info["tokenizer"]["file"])
    # The data-root layout of `fetch-fineweb`: <root>/datasets/<name>/ and <root>/manifest.json
    root = directory.parent.parent
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        entry = next(d for d in manifest.get("datasets", []) if d.get("name") == directory.name)
        tok = next(t for t in manifest.get("tokenizers", []) if t.get("name") == entry.get("tokenizer_name"))
        candidate = root / "tokenizers" / Path(str(tok.get("model_path") or tok.get("path"))).name
        return candidate if candidate.is_file() else None
    except (OSError, ValueError, StopIteration, AttributeError, TypeError, RecursionError):
        return None


def scan_split(files: list[Path], luts: ByteLUTs | None) -> SplitReport:
    rep = SplitReport(shards=len(files), bytes=0 if luts is not None else None)
    prev: int | None = None
    for f in files:
        toks = read_shard(f)
        rep.tokens += len(toks)
        for start in range(0, len(toks), SCAN_CHUNK):
            chunk = np.asarray(toks[start:start + SCAN_CHUNK])
            rep.max_id = max(rep.max_id, int(chunk.max()))
            rep.documents += int(np.count_nonzero(chunk == BOS_ID))
            if luts is not None and rep.bytes is not None:
                if rep.max_id >= luts.size:
                    raise DataError(f"{f}: token id {rep.max_id} is beyond the tokenizer's vocab ({luts.size})")
                rep.bytes += count_stream_bytes(chunk, luts, prev)
            prev = int(chunk[-1])
    return rep


MIN_VAL_TOKENS = 2
"""One input token and its target: the least evaluation can score (`load_validation_tokens` with seq_len 1)."""


def check_validation_split(directory: Path, val_glob: str, headers: list[ShardHeader]) -> None:
    """A trial and `artifact eval` score the validation split: a directory without one is not usable data."""
    if not headers:
        raise DataError(f"no validation shards matching {val_glob} in {directory}: training and artifact eval "
                        "need validation tokens to score")
    tokens = sum(h.num_tokens for h in headers)
    if tokens < MIN_VAL_TOKENS:
        raise DataError(f"{directory}: the validation split ({val_glob}) holds {tokens} token(s), too few to "
                        f"score: evaluation needs at least {MIN_VAL_TOKENS}")


SHOWN_BAD = 3
"""How many unusable shards the error names (it counts them all)."""


def inspect_directory(directory: Path, train_glob: str = "fineweb_train_*.bin",
                      val_glob: str = "fineweb_val_*.bin", tokenizer: Path | None = None) -> DirReport:
    directory = Path(directory).expanduser()
    groups = {"val": list_shards(directory, val_glob), "train": list_shards(directory, train_glob)}
    if not any(groups.values()):
        raise DataError(f"{directory}: no shards matching {val_glob} or {train_glob}")
    # every header first: a corrupt shard fails before any long scan, and all of them are named at once
    headers = {name: [] for name in groups}
    bad = []
    for name, files in groups.items():
        for f in files:
            try:
                headers[name].append(read_header(f))
            except DataError as err:
                bad.append(str(err))
    if bad:
        total = sum(len(files) for files in groups.values())
        shown = "; ".join(bad[:SHOWN_BAD]) + (f"; and {len(bad) - SHOWN_BAD} more" if len(bad) > SHOWN_BAD else "")
        raise DataError(f"{len(bad)} of {total} shards in {directory} are unusable: {shown}")
    check_validation_split(directory, val_glob, headers["val"])
    record = check_shard_record(directory)
    warnings = [] if record else numbering_gaps(directory)
    if not groups["train"]:  # legal (artifact eval scores validation alone), but not what a sweep can use
        warnings.append(f"no train shards matching {train_glob} in {directory}: training cannot run from it "
                        "(artifact eval can still score its validation split)")
    tok_path = tokenizer or find_tokenizer(directory)
    if tok_path is not None:  # a --tokenizer the shards were not encoded with: refused as a trial refuses it
        check_encoded_with(directory, tok_path)
    sp = load_tokenizer(tok_path) if tok_path else None
    luts = build_byte_luts(sp, sp.vocab_size()) if sp is not None else None
    report = DirReport(directory=directory, tokenizer=tok_path,
                       tokenizer_vocab=int(sp.vocab_size()) if sp is not None else None, record=record,
                       warnings=warnings)
    for name, files in groups.items():
        report.splits[name] = scan_split(files, luts)
    return report
