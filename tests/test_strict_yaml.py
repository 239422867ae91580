"""Config and spec files are read strictly: YAML 1.2 booleans only, a repeated key or nesting past 64 levels is
an error at its line, and a file that is missing, huge, not UTF-8, not YAML or not a mapping is one line that
says which (never a traceback, never a silent default)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from clowncar.errors import ConfigError
from clowncar.strict_yaml import MAX_CONFIG_BYTES, MAX_YAML_DEPTH, _where, read_mapping, yaml_load


def test_only_true_and_false_spellings_are_booleans() -> None:
    text = "a: true\nb: True\nc: TRUE\nd: false\ne: False\nf: FALSE\ng: yes\nh: On\ni: off\nj: n\nk: tRue\n"
    assert yaml_load(text) == {"a": True, "b": True, "c": True, "d": False, "e": False, "f": False,
                               "g": "yes", "h": "On", "i": "off", "j": "n", "k": "tRue"}
    assert yaml_load("[1, 2.5, null, '3']") == [1, 2.5, None, "3"]  # the other scalars resolve as before


def test_a_repeated_key_is_an_error_at_its_line() -> None:
    with pytest.raises(yaml.YAMLError) as err:
        yaml_load("a: 1\nb:\n  c: 2\n  c: 3\n")
    assert err.value.problem == "duplicate key 'c'" and err.value.problem_mark.line == 3


def test_keys_that_differ_in_type_or_come_from_a_merge_are_not_repeats() -> None:
    assert yaml_load("1: a\n'1': b\n") == {1: "a", "1": "b"}
    assert yaml_load("base: &b {x: 1, y: 1}\nd:\n  <<: *b\n  x: 2\n")["d"] == {"x": 2, "y": 1}
    two_merges = "a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: *a\n  <<: *b\n  z: 3\n"
    assert yaml_load(two_merges)["c"] == {"x": 1, "y": 2, "z": 3}
    assert yaml_load("a: {x: 1}\nb: {x: 1}\n") == {"a": {"x": 1}, "b": {"x": 1}}  # the same key in two mappings


def test_nesting_stops_at_the_depth_limit() -> None:
    assert MAX_YAML_DEPTH == 64
    deepest = "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH
    assert yaml_load(deepest) is not None
    yaml_load(deepest)  # the depth count goes back down after each document
    with pytest.raises(yaml.YAMLError) as err:
        yaml_load("[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1))
    assert err.value.problem == "nested deeper than 64 levels"
    assert (err.value.problem_mark.line, err.value.problem_mark.column) == (0, 64)
    siblings = "a:\n" + "".join(f"  k{i}: [[[1]]]\n" for i in range(100))  # width is not depth
    assert len(yaml_load(siblings)["a"]) == 100
    after_a_leaf = "[[0, " + "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1) + "]]"  # 65 deep, past a leaf
    with pytest.raises(yaml.YAMLError, match="nested deeper than 64 levels"):
        yaml_load(after_a_leaf)


def test_a_recursive_anchor_loads_as_the_safe_loader_builds_it() -> None:
    data = yaml_load("a: &a [1, *a]\n")
    assert data["a"][0] == 1 and data["a"][1] is data["a"]


def problem(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        read_mapping(path)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_file_holds_a_mapping_of_sections_and_an_empty_one_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  xsa: off\n")
    assert read_mapping(f) == {"model": {"xsa": "off"}}
    assert read_mapping(str(f)) == {"model": {"xsa": "off"}}
    f.write_text('{"train": {"seed": 3}}')
    assert read_mapping(f) == {"train": {"seed": 3}}  # JSON is YAML
    f.write_text("{}\n")
    assert read_mapping(f) == {}  # every default, said so
    assert read_mapping("/dev/null") == {}  # and so is /dev/null, empty by design, not by accident
    hint = "it must hold a mapping of config sections (write {} for every default)"
    for empty in ("", " \n\n"):
        f.write_text(empty)
        assert problem(f) == f"{f} is empty: {hint}"
    for nothing in ("# nothing\n", "null\n", "~\n"):
        f.write_text(nothing)
        assert problem(f) == f"{f} holds only comments or null: {hint}"
    with pytest.raises(ConfigError) as err:
        read_mapping(f, holding="a sweep spec")
    assert str(err.value) == f"{f} holds only comments or null: it must hold a sweep spec"  # no config hint
    f.write_text("- a\n- b\n")
    assert problem(f) == f"{f} must hold a mapping of config sections, not list"
    f.write_text("7\n")
    assert problem(f) == f"{f} must hold a mapping of config sections, not int"


def test_a_fifo_nobody_writes_to_is_refused_at_once_and_a_pipe_being_written_is_read_whole(tmp_path: Path) -> None:
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)
    done: list[str] = []
    reader = threading.Thread(target=lambda: done.append(problem(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=20)  # a blocking open would wait here for a writer that never comes
    assert done == [f"{fifo} is a FIFO nobody writes to: it must hold a mapping of config sections "
                    "(write {} for every default)"]
    read_end, write_end = os.pipe()  # `--config <(...)`: the writer is still writing when the read starts
    got: list[dict] = []
    reader = threading.Thread(target=lambda: got.append(read_mapping(f"/dev/fd/{read_end}")), daemon=True)
    reader.start()
    os.write(write_end, b"train:\n")
    time.sleep(0.2)
    os.write(write_end, b"  seed: 3\n")
    os.close(write_end)
    reader.join(timeout=20)
    os.close(read_end)
    assert got == [{"train": {"seed": 3}}]


def test_an_endless_stream_is_refused_once_past_the_cap_without_waiting_for_its_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `--config /dev/zero` or `<(yes)`: a pipe whose writer has written one byte past the cap and never closes
    monkeypatch.setattr("clowncar.strict_yaml.MAX_CONFIG_BYTES", 1 << 20)
    read_end, write_end = os.pipe()
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(problem(Path(f"/dev/fd/{read_end}"))), daemon=True)
    reader.start()
    os.write(write_end, b"#" * (1 << 20))  # blocks while the pipe is full, until the reader takes its part
    os.write(write_end, b"#")
    reader.join(timeout=20)
    assert got == [f"/dev/fd/{read_end} is larger than 1 MiB: not a config"]
    os.close(write_end)
    os.close(read_end)


def test_a_file_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    assert problem(tmp_path / "missing.yaml") == f"cannot read {tmp_path / 'missing.yaml'}: No such file or directory"
    assert problem(tmp_path) == f"cannot read {tmp_path}: Is a directory"


def test_a_file_over_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_CONFIG_BYTES == 16 << 20
    monkeypatch.setattr("clowncar.strict_yaml.MAX_CONFIG_BYTES", 1 << 20)  # parsing 16 MiB takes seconds
    f = tmp_path / "big.yaml"
    body = b"a: 1\n"
    f.write_bytes(body + b"#" * ((1 << 20) - len(body)))
    assert read_mapping(f) == {"a": 1}
    with f.open("ab") as out:
        out.write(b"#")
    assert problem(f) == f"{f} is larger than 1 MiB: not a config"


def test_bytes_that_are_not_utf8_are_named_with_their_offset(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(b"model:\n  xsa: \xff\n")
    assert problem(f) == f"{f} is not UTF-8 text (byte 0xff at offset 14)"


@pytest.mark.parametrize("text, where", [
    ("model: [1, 2\n", " (line 2: expected ',' or ']', but got '<stream end>')"),
    ("a: 1\na: 2\n", " (line 2: duplicate key 'a')"),
    ("a: b: c\n", " (line 1: mapping values are not allowed here)"),
    ("a: *nope\n", " (line 1: found undefined alias 'nope')"),
    ("? [1, 2]\n: a\n", " (line 1: found unhashable key)"),
    ("a: b\x01\n", " (character 0x01 at position 4 is not allowed)"),
])
def test_text_that_is_not_yaml_is_one_line_with_its_line(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    assert problem(f) == f"{f} is not valid YAML{where}"


def test_python_tags_are_refused_not_run(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("a: !!python/object/apply:os.system ['true']\n")
    assert problem(f).startswith(f"{f} is not valid YAML (line 1: could not determine a constructor")


def test_the_place_of_an_error_is_its_line_or_its_character_or_nothing() -> None:
    mark = yaml.Mark("c.yaml", 0, 4, 2, None, None)
    assert _where(yaml.MarkedYAMLError(problem="bad", problem_mark=mark)) == " (line 5: bad)"
    assert _where(yaml.reader.ReaderError("c.yaml", 7, 0x1B, "utf-8", "special")) == (
        " (character 0x1b at position 7 is not allowed)")
    assert _where(yaml.YAMLError("no place")) == ""
