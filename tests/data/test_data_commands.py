"""`clowncar data build / demo / fetch-fineweb / inspect` in this process: what each passes to the code that does
the work, what it prints, and its one-line refusals. (The commands as a user runs them are in test_build_cli.py,
test_demo.py and test_fetch.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clowncar.data import commands
from clowncar.data.build import BuildResult, SplitStats
from clowncar.data.fetch import FetchResult
from clowncar.errors import DataError


def verses(tmp_path: Path, n: int = 300) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("\n".join(f"Verse {i}: and the land was good, and the people were many." for i in range(n)))
    return path


def build(tmp_path: Path, **options: Any) -> None:
    args = {"text": [verses(tmp_path)], "out": tmp_path / "out", "vocab_size": 300, "val_docs": 20,
            "field": "text", "docs_per": "line", "shard_tokens": 2048, "character_coverage": 1.0,
            "tokenizer": None, "overwrite": False, **options}
    commands.build(**args)


def test_build_writes_shards_and_says_how_to_use_them(tmp_path: Path, capsys) -> None:
    build(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (f"built in {out[-1].split()[2]} s; use it with --set data.dataset={tmp_path / 'out'} "
                       f"--set data.tokenizer={tmp_path / 'out' / 'tokenizer.model'}")
    head = out.index(next(line for line in out if line.startswith("split ")))
    assert out[head + 1].split()[:3] == ["val", "1", "20"]  # 20 lines = 20 documents in the val split
    assert out[head + 2].split()[2] == "280"
    info = json.loads((tmp_path / "out" / "build.json").read_text())
    assert info["tokenizer"]["vocab_size"] == 300


def test_build_warns_when_the_val_split_has_more_tokens_than_the_train_split(tmp_path: Path, capsys) -> None:
    """walk 6, F25: with --docs-per file each file is one document and the inputs come in order, so --val-docs
    can put most of the text into val without a word."""
    big = verses(tmp_path, n=300)
    small = tmp_path / "small.txt"
    small.write_text("and the land was good.")
    build(tmp_path, text=[big, small], val_docs=1, docs_per="file")
    printed = capsys.readouterr()
    info = json.loads((tmp_path / "out" / "build.json").read_text())["splits"]
    val, train = info["val"], info["train"]
    assert printed.err == (f"warning: the val split ({val['tokens']:,d} tokens in 1 document) is larger than the "
                           f"train split ({train['tokens']:,d} tokens in 1): the first --val-docs documents, in the "
                           "order of --text, are validation; lower --val-docs or put the inputs in another order\n")
    build(tmp_path, out=tmp_path / "fine")  # 20 of 300 lines in val
    assert capsys.readouterr().err == ""


def test_build_passes_every_option_through(tmp_path: Path, monkeypatch, capsys) -> None:
    import clowncar.data.build as build_module

    seen: dict[str, Any] = {}

    def fake(inputs, out, **kw):
        seen.update(inputs=inputs, out=out, **kw)
        split = SplitStats(documents=1, tokens=2, bytes=3, text_bytes=3, shards=["a"])
        return BuildResult(out=out, tokenizer=tmp_path / "t.model", vocab_size=64,
                           splits={"val": split, "train": split}, seconds=1.25)

    monkeypatch.setattr(build_module, "build_dataset", fake)
    build(tmp_path, vocab_size=64, val_docs=7, field="body", docs_per="paragraph", shard_tokens=999,
          character_coverage=0.99, tokenizer=tmp_path / "given.model", overwrite=True)
    log = seen.pop("log")
    assert seen == {"inputs": [tmp_path / "text.txt"], "out": tmp_path / "out", "vocab_size": 64, "val_docs": 7,
                    "shard_tokens": 999, "field_name": "body", "docs_per": "paragraph",
                    "tokenizer": tmp_path / "given.model", "character_coverage": 0.99, "overwrite": True}
    capsys.readouterr()
    log("progress line")
    assert capsys.readouterr().out == "progress line\n"  # the build's log goes to the terminal


def test_build_defaults_are_the_challenges_settings(tmp_path: Path, monkeypatch, capsys) -> None:
    import clowncar.data.build as build_module

    seen: dict[str, Any] = {}

    def fake(inputs, out, **kw):
        seen.update(kw)
        split = SplitStats(documents=1, tokens=2, bytes=3, text_bytes=3, shards=["a"])
        return BuildResult(out=out, tokenizer=tmp_path / "t.model", vocab_size=1024,
                           splits={"val": split, "train": split}, seconds=1.0)

    monkeypatch.setattr(build_module, "build_dataset", fake)
    commands.build(text=[verses(tmp_path)], out=tmp_path / "out")
    seen.pop("log")
    assert seen == {"vocab_size": 1024, "val_docs": 1000, "shard_tokens": 10**8, "field_name": "text",
                    "docs_per": "file", "tokenizer": None, "character_coverage": 0.999, "overwrite": False}


def test_build_with_a_tokenizer_passes_a_vocab_size_only_when_one_is_given(tmp_path: Path, monkeypatch) -> None:
    """The tokenizer fixes the vocabulary: the default size is not passed to be checked against it."""
    import clowncar.data.build as build_module

    seen: list[Any] = []

    def fake(inputs, out, **kw):
        seen.append(kw["vocab_size"])
        split = SplitStats(documents=1, tokens=2, bytes=3, text_bytes=3, shards=["a"])
        return BuildResult(out=out, tokenizer=tmp_path / "t.model", vocab_size=512,
                           splits={"val": split, "train": split}, seconds=1.0)

    monkeypatch.setattr(build_module, "build_dataset", fake)
    commands.build(text=[verses(tmp_path)], out=tmp_path / "out", tokenizer=tmp_path / "t.model")
    commands.build(text=[verses(tmp_path)], out=tmp_path / "out", tokenizer=tmp_path / "t.model", vocab_size=2048)
    assert seen == [None, 2048]


@pytest.mark.parametrize("docs_per", ["file", "paragraph", "line"])
def test_build_takes_every_document_split(tmp_path: Path, monkeypatch, docs_per: str) -> None:
    import clowncar.data.build as build_module

    seen: list[str] = []

    def fake(inputs, out, **kw):
        seen.append(kw["docs_per"])
        split = SplitStats(documents=1, tokens=2, bytes=3, text_bytes=3, shards=["a"])
        return BuildResult(out=out, tokenizer=out / "t.model", vocab_size=8, splits={"val": split, "train": split},
                           seconds=0.0)

    monkeypatch.setattr(build_module, "build_dataset", fake)
    build(tmp_path, docs_per=docs_per)
    assert seen == [docs_per]


def test_build_refuses_an_unknown_document_split(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build(tmp_path, docs_per="sentence")
    assert str(err.value) == "--docs-per must be file, paragraph or line, got 'sentence'"
    assert not (tmp_path / "out").exists()


def demo_result(out: Path) -> BuildResult:
    split = SplitStats(documents=64, tokens=100, bytes=400, text_bytes=400, shards=["v.bin"])
    return BuildResult(out=out, tokenizer=out / "tok.model", vocab_size=1024, splits={"val": split, "train": split},
                       seconds=0.0)


@pytest.mark.parametrize("reused", [False, True])
def test_demo_builds_under_the_data_dir_and_says_when_it_reused(tmp_path: Path, monkeypatch, capsys,
                                                                 reused: bool) -> None:
    import clowncar.data.demo as demo

    calls: list[tuple] = []
    monkeypatch.setattr(demo, "run_demo", lambda root, force, log: calls.append((root, force)) or (
        demo_result(root / "datasets" / "demo_sp1024"), reused))
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(tmp_path / "env"))
    commands.demo(data_dir=None, force=True)
    commands.demo(data_dir=tmp_path / "given", force=False)
    assert calls == [(tmp_path / "env", True), (tmp_path / "given", False)]
    out = capsys.readouterr().out.splitlines()
    notice = f"demo data already built; reusing it (pass --force to rebuild): {tmp_path / 'env' / 'datasets' / 'demo_sp1024'}"
    assert (out[0] == notice) is reused
    summary = demo_result(tmp_path / "env" / "datasets" / "demo_sp1024").summary_lines()
    assert out[int(reused):int(reused) + len(summary)] == summary
    assert out[-1] == "the tiny-cpu preset reads these (data.dataset=demo_sp1024, data.tokenizer=demo_1024_bpe.model)"


def test_demo_builds_once_by_default_and_its_log_reaches_the_terminal(tmp_path: Path, monkeypatch,
                                                                      capsys) -> None:
    import clowncar.data.demo as demo

    forced: list[bool] = []

    def run_demo(root, force, log):
        forced.append(force)
        log("training tokenizer: ...")
        return demo_result(root), True

    monkeypatch.setattr(demo, "run_demo", run_demo)
    commands.demo(data_dir=tmp_path)
    assert forced == [False]
    assert capsys.readouterr().out.splitlines()[0] == "training tokenizer: ..."


def test_demo_expands_a_home_relative_data_dir(tmp_path: Path, monkeypatch) -> None:
    import clowncar.data.demo as demo

    roots: list[Path] = []
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(demo, "run_demo", lambda root, force, log: roots.append(root) or (demo_result(root), True))
    commands.demo(data_dir=Path("~/d"), force=False)
    assert roots == [tmp_path / "d"]


def test_fetch_asks_the_hub_for_the_variant_and_reports_what_it_got(tmp_path: Path, monkeypatch, capsys) -> None:
    import clowncar.data.fetch as fetch

    seen: list[tuple] = []

    def fake(variant, train_shards, root, source, log):
        seen.append((variant, train_shards, root, source.repo_id, source.remote_root, source.revision))
        log("downloading fineweb_val_000000.bin")
        return FetchResult(dataset_dir=root / "datasets" / f"fineweb10B_{variant}", tokenizer_files=[root / "a",
                           root / "b"], val_shards=1, train_shards=train_shards, downloaded=["x", "y"], reused=["z"])

    monkeypatch.setattr(fetch, "fetch_fineweb", fake)
    monkeypatch.setenv("HOME", str(tmp_path))
    commands.fetch_fineweb(variant="sp4096", train_shards=3, out=Path("~/data"), repo_id="me/golf",
                           remote_root="exports", revision="v2")
    assert seen == [("sp4096", 3, tmp_path / "data", "me/golf", "exports", "v2")]
    assert capsys.readouterr().out.splitlines() == [
        "downloading fineweb_val_000000.bin",
        f"{tmp_path / 'data' / 'datasets' / 'fineweb10B_sp4096'}: 1 val + 3 train shards (2 files downloaded, 1 "
        "already present)", f"tokenizer: {tmp_path / 'data' / 'a'}", f"tokenizer: {tmp_path / 'data' / 'b'}"]


def test_fetch_defaults_are_the_challenges_repo_and_the_data_dir(tmp_path: Path, monkeypatch) -> None:
    import clowncar.data.fetch as fetch

    seen: list[tuple] = []
    monkeypatch.setattr(fetch, "fetch_fineweb", lambda variant, n, root, source, log: seen.append(
        (variant, n, root, source.repo_id, source.remote_root, source.revision)) or FetchResult(root, [], 1, n))
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(tmp_path))
    commands.fetch_fineweb()
    assert seen == [("sp1024", 1, tmp_path, "willdepueoai/parameter-golf", "datasets", None)]


def test_inspect_prints_the_report_as_lines_or_json(tmp_path: Path, capsys) -> None:
    from clowncar.data.inspect_dir import inspect_directory

    build(tmp_path)
    capsys.readouterr()
    commands.inspect(tmp_path / "out")
    report = inspect_directory(tmp_path / "out", train_glob="fineweb_train_*.bin", val_glob="fineweb_val_*.bin",
                               tokenizer=None)
    assert capsys.readouterr().out.splitlines() == report.lines()
    commands.inspect(tmp_path / "out", as_json=True)
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(report.to_dict()))


def test_inspect_finds_a_dataset_by_its_name_under_the_data_root(tmp_path: Path, monkeypatch, capsys) -> None:
    """`data inspect demo_sp1024`: the name a config gives as data.dataset, resolved as the worker resolves it; a
    folder of that name in the working directory comes first."""
    build(tmp_path)
    root = tmp_path / "root"
    (root / "datasets").mkdir(parents=True)
    (tmp_path / "out").rename(root / "datasets" / "mine")
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(root))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    commands.inspect(Path("mine"))
    named = capsys.readouterr().out
    commands.inspect(root / "datasets" / "mine")
    assert named == capsys.readouterr().out and "ok" in named
    with pytest.raises(DataError, match="nope: no such folder in "):
        commands.inspect(Path("nope"))


@pytest.mark.parametrize(("option", "kwargs"), [("--train-glob", {"train_glob": "/x/*"}),
                                                ("--val-glob", {"val_glob": ""})])
def test_inspect_names_the_option_whose_glob_cannot_work(tmp_path: Path, option: str, kwargs: dict) -> None:
    from clowncar.data.paths import glob_problem

    with pytest.raises(DataError) as err:
        commands.inspect(tmp_path, **kwargs)
    (pattern,) = kwargs.values()
    assert str(err.value) == f"{option} {pattern!r} {glob_problem(pattern)}"


def test_inspect_uses_the_globs_and_tokenizer_given(tmp_path: Path, monkeypatch, capsys) -> None:
    import clowncar.data.inspect_dir as inspect_dir

    seen: list[tuple] = []

    class Report:
        warnings = ("val shards skip one",)

        def lines(self) -> list[str]:
            return ["one", "two"]

    monkeypatch.setattr(inspect_dir, "inspect_directory", lambda d, train_glob, val_glob, tokenizer: seen.append(
        (d, train_glob, val_glob, tokenizer)) or Report())
    commands.inspect(tmp_path, tokenizer=tmp_path / "t.model", train_glob="tr_*.bin", val_glob="va_*.bin")
    assert seen == [(tmp_path, "tr_*.bin", "va_*.bin", tmp_path / "t.model")]
    printed = capsys.readouterr()
    assert (printed.out, printed.err) == ("one\ntwo\n", "warning: val shards skip one\n")  # warnings apart


def test_inspect_of_a_name_found_neither_here_nor_under_the_data_root_names_both_places_it_looked(
        tmp_path: Path, monkeypatch) -> None:
    """walk 6, F21: the line said "nope: shard directory not found", naming neither the folder nor the data root."""
    (tmp_path / "root" / "datasets").mkdir(parents=True)
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(tmp_path / "root"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        commands.inspect(Path("nope"))
    assert str(err.value) == (f"nope: no such folder in {tmp_path}, and dataset 'nope' not found at "
                              f"{tmp_path / 'root' / 'datasets' / 'nope'} (`clowncar data demo`, `data fetch-fineweb` "
                              "or `data build` makes one; CLOWNCAR_DATA_DIR says where datasets are looked for)")


def test_inspect_of_a_missing_path_says_the_folder_is_missing(tmp_path: Path) -> None:
    """A path (absolute, or with a slash) has one reading, a folder: no dataset under the data root is named."""
    with pytest.raises(DataError) as err:
        commands.inspect(tmp_path / "nope")
    assert str(err.value) == f"{tmp_path / 'nope'}: shard directory not found"


def test_inspect_json_is_indented_by_two_spaces(tmp_path: Path, capsys) -> None:
    build(tmp_path)
    capsys.readouterr()
    commands.inspect(tmp_path / "out", as_json=True)
    out = capsys.readouterr().out
    assert out == json.dumps(json.loads(out), indent=2) + "\n"
