"""A text corpus cut into documents, as `clowncar data build --text` reads it: one document per file, paragraph
or line of plain text, one per JSONL row (the string in `--field`), blank documents skipped, files in the order
given (a directory's .txt files sorted, found recursively), and every unreadable input one exact line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from clowncar.data.corpus import Corpus
from clowncar.errors import DataError


def docs(paths: list[Path], **kw: str) -> list[str]:
    return list(Corpus.from_paths(paths, **kw).documents())


def refused(paths: list[Path] | list[str], **kw: str) -> str:
    with pytest.raises(DataError) as err:
        list(Corpus.from_paths(paths, **kw).documents())
    return str(err.value)


TEXT = "First line\nof one paragraph.\r\n\n  \nSecond paragraph.\n\n\nThird\n"


@pytest.mark.parametrize("docs_per, expected", [
    ("file", [TEXT.replace("\r\n", "\n")]),  # read as text: a CRLF is one newline
    ("paragraph", ["First line\nof one paragraph.", "Second paragraph.", "Third"]),
    ("line", ["First line", "of one paragraph.", "Second paragraph.", "Third"]),
])
def test_plain_text_is_cut_by_file_paragraph_or_line(tmp_path: Path, docs_per: str, expected: list[str]) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(TEXT.encode())
    assert docs([f], docs_per=docs_per) == expected


def test_only_the_line_break_is_cut_from_a_line(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("  indented and trailing \t\nMAX\n\nXX\n")
    assert docs([f], docs_per="line") == ["  indented and trailing \t", "MAX", "XX"]
    assert docs([f], docs_per="paragraph") == ["  indented and trailing \t\nMAX", "XX"]


def test_a_last_paragraph_without_a_blank_line_and_blank_files_count_right(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one\ntwo")
    assert docs([f], docs_per="paragraph") == ["one\ntwo"]
    blank = tmp_path / "b.txt"
    blank.write_text(" \n\t\n")
    assert docs([blank]) == [] and docs([blank], docs_per="line") == []
    assert Corpus.from_paths([f, blank]).count() == (1, 7, [1, 0])


def test_jsonl_rows_give_the_field_and_skip_blank_rows_and_texts(tmp_path: Path) -> None:
    f = tmp_path / "a.JSONL"  # the suffix in any case
    f.write_text('{"text": "één"}\n\n{"text": "  "}\n{"body": "b", "text": "two"}\n')
    assert docs([f]) == ["één", "two"]
    assert Corpus.from_paths([f]).count() == (2, len("één".encode()) + 3, [2])
    g = tmp_path / "b.ndjson"
    g.write_text('{"body": "x"}\n')
    assert docs([g], field="body") == ["x"]


@pytest.mark.parametrize("content, line", [
    ('{"text": "a"}\n{"text": \n', "2: invalid JSON (Expecting value)"),
    ('{"other": "a"}\n', "1: no field 'text' (choose one with --field)"),
    ('["text"]\n', "1: no field 'text' (choose one with --field)"),
    ('{"text": 5}\n', "1: field 'text' is int, not a string"),
    ('{"text": null}\n', "1: field 'text' is NoneType, not a string"),
    ('{"text": ' + "[" * 100_000 + "\n", "1: JSON nested too deeply"),
])
def test_a_bad_jsonl_row_is_named_by_file_and_line(tmp_path: Path, content: str, line: str) -> None:
    f = tmp_path / "a.jsonl"
    f.write_text(content)
    assert refused([f]) == f"{f}:{line}"


def test_directories_give_their_txt_files_sorted_and_recursively(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("b")
    (tmp_path / "d" / "a.txt").write_text("a")
    (tmp_path / "d" / "sub" / "c.txt").write_text("c")
    (tmp_path / "d" / "skip.md").write_text("no")
    (tmp_path / "d" / "dir.txt").mkdir()  # a folder named like a text file is not one
    single = tmp_path / "z.txt"
    single.write_text("z")
    corpus = Corpus.from_paths([single, tmp_path / "d"])
    assert corpus.files == (single, tmp_path / "d" / "a.txt", tmp_path / "d" / "b.txt",
                            tmp_path / "d" / "sub" / "c.txt")
    assert list(corpus.documents()) == ["z", "a", "b", "c"]
    assert (corpus.field, corpus.docs_per) == ("text", "file")


def test_inputs_that_cannot_be_read_are_one_exact_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as err:
        Corpus.from_paths([])
    assert str(err.value) == "no input given: pass --text PATH (a text file, a directory of .txt files or JSONL)"
    assert refused([tmp_path / "nope.txt"]) == f"{tmp_path / 'nope.txt'}: input not found"
    (tmp_path / "empty").mkdir()
    assert refused([tmp_path / "empty"]) == f"{tmp_path / 'empty'}: directory holds no .txt files"
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "home.txt").write_text("h")
    assert docs(["~/home.txt"]) == ["h"]
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9\n")
    assert refused([latin]) == f"{latin}: not UTF-8 text (invalid byte at offset 3)"
    for mode in ("paragraph", "line"):
        assert refused([latin], docs_per=mode) == f"{latin}: not UTF-8 text (invalid byte at offset 3)"
    bad_jsonl = tmp_path / "latin.jsonl"
    bad_jsonl.write_bytes(b'{"text": "caf\xe9"}\n')
    assert refused([bad_jsonl]) == f"{bad_jsonl}: not UTF-8 text (invalid byte at offset 13)"
    gone = tmp_path / "gone.txt"
    gone.write_text("x")
    corpus = Corpus.from_paths([gone])
    gone.unlink()  # removed after the inputs were listed, before they were read
    with pytest.raises(DataError) as err:
        corpus.count()
    assert str(err.value) == f"{gone}: cannot read (No such file or directory)"


def test_inputs_are_read_as_utf8_whatever_the_locale(tmp_path: Path, ascii_locale_child: Any) -> None:
    """Where the locale's encoding is ASCII a corpus still reads as UTF-8."""
    (tmp_path / "a.txt").write_text("caf\u00e9 \u00fcber\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "na\u00efve"}\n', encoding="utf-8")
    proc = ascii_locale_child("import sys; from clowncar.data.corpus import Corpus; "
                              "sys.stdout.write(ascii(list(Corpus.from_paths(sys.argv[1:]).documents())))",
                              str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl"))
    assert proc.stdout == ascii(["caf\u00e9 \u00fcber\n", "na\u00efve"])


@pytest.mark.parametrize("make, kind", [
    (lambda tmp: Path("/dev/zero"), "a character device"),
    (lambda tmp: (os.mkfifo(tmp / "t.txt"), tmp / "t.txt")[1], "a FIFO (named pipe)"),
])
def test_an_input_that_is_not_a_regular_file_is_refused_when_listed(make: Any, kind: str, tmp_path: Path) -> None:
    """Refused before anything reads it: /dev/zero never ends, and opening a FIFO blocks until someone writes."""
    path = make(tmp_path)
    with pytest.raises(DataError) as err:
        Corpus.from_paths([path])
    assert str(err.value) == f"cannot read input {path}: it is {kind}, not a regular file"


def test_a_fifo_inside_a_text_directory_is_not_an_input(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("kept")
    os.mkfifo(tmp_path / "b.txt")
    assert docs([tmp_path]) == ["kept"]


def _two_inputs(tmp_path: Path) -> list[Path]:
    """A directory of 3 prose files (read first, sorted) and a JSONL of 10 code rows, in that order."""
    (tmp_path / "prose").mkdir()
    for i in range(3):
        (tmp_path / "prose" / f"{i}.txt").write_text(f"prose document {i}\n")
    rows = tmp_path / "code.jsonl"
    rows.write_text("".join(f'{{"text": "def f{i}(): pass"}}\n' for i in range(10)))
    return [tmp_path / "prose", rows]


def test_a_val_split_taken_from_only_some_of_the_inputs_is_noted_with_their_names(tmp_path: Path) -> None:
    from clowncar.data.build import val_from_some_inputs

    inputs = _two_inputs(tmp_path)
    corpus = Corpus.from_paths(inputs)
    _, _, per_file = corpus.count()
    assert corpus.origins == (0, 0, 0, 1) and per_file == [1, 1, 1, 10]
    assert corpus.val_inputs(3, per_file) == [0] and corpus.val_inputs(4, per_file) == [0, 1]
    assert val_from_some_inputs(inputs, corpus, 2, per_file) == (
        f"note: the 2 val documents all come from {inputs[0]} (1 of 2 inputs): the first documents are validation "
        "(the challenge's rule), so order the inputs, or mix them into one JSONL, to get the val set you want")
    assert val_from_some_inputs(inputs, corpus, 4, per_file) == ""  # both inputs give val documents
    one = Corpus.from_paths(inputs[1:])
    assert val_from_some_inputs(inputs[1:], one, 2, one.count()[2]) == ""  # one input: nothing to choose


def test_an_input_of_blank_files_gives_no_val_documents(tmp_path: Path) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n")
    inputs = [blank, *_two_inputs(tmp_path)]
    corpus = Corpus.from_paths(inputs)
    assert corpus.val_inputs(2, corpus.count()[2]) == [1]  # the blank file holds no document
