"""`clowncar data build` and `clowncar data inspect` end to end, as a user runs them."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sentencepiece as spm

from clowncar.data.shards import read_shard, write_shard

Run = Callable[..., Any]


@pytest.fixture
def corpus(tmp_path: Path, kjv_verses: list[str]) -> tuple[list[Path], list[str]]:
    """A JSONL file of 300 verses plus a directory of three text files; returns (inputs, documents in order)."""
    jsonl = tmp_path / "in" / "verses.jsonl"
    jsonl.parent.mkdir()
    rows = [{"text": v, "id": i} for i, v in enumerate(kjv_verses[:300])]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    txt_dir = tmp_path / "in" / "chapters"
    txt_dir.mkdir()
    texts = []
    for k in range(3):
        t = "\n".join(kjv_verses[300 + 20 * k: 320 + 20 * k]) + "\n"
        (txt_dir / f"c{k}.txt").write_text(t, encoding="utf-8")
        texts.append(t)
    return [jsonl, txt_dir], [r["text"] for r in rows] + texts


def _docs_from_tokens(tokens: np.ndarray) -> list[list[int]]:
    starts = [*np.flatnonzero(tokens == 1).tolist(), len(tokens)]
    assert starts[0] == 0, "every split starts with a document's BOS"
    return [tokens[a + 1:b].tolist() for a, b in itertools.pairwise(starts)]


def test_build_writes_official_shards_val_first_and_a_summary(
        run_cli: Run, tmp_path: Path, corpus: tuple[list[Path], list[str]]) -> None:
    inputs, docs = corpus
    out = tmp_path / "out" / "kjv"
    r = run_cli("data", "build", "--text", str(inputs[0]), "--text", str(inputs[1]), "--vocab-size", "512",
                "--val-docs", "25", "--shard-tokens", "4000", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.startswith(("val ", "train "))}
    assert rows["val"][1:3] == ["1", "25"]
    assert rows["train"][2] == "278"  # 275 verses + 3 files
    assert "bytes/token" in r.stdout and str(out / "tokenizer.model") in r.stdout
    info = json.loads((out / "build.json").read_text())
    assert info["tokenizer"]["trainer"]["byte_fallback"] is True and info["append_eos"] is False
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))

    split_tokens = {}
    for split in ("val", "train"):
        names = info["splits"][split]["shards"]
        assert names == [f"fineweb_{split}_{i:06d}.bin" for i in range(len(names))]
        shards = [read_shard(out / n) for n in names]
        assert all(len(s) == 4000 for s in shards[:-1]) and 0 < len(shards[-1]) <= 4000
        split_tokens[split] = np.concatenate(shards)
        assert len(split_tokens[split]) == info["splits"][split]["tokens"]
    val_docs, train_docs = (_docs_from_tokens(split_tokens[s]) for s in ("val", "train"))
    assert len(val_docs) == 25 and len(train_docs) == len(docs) - 25
    # The first N documents are validation, in input order, each [BOS] + sp.encode(text), no EOS.
    assert val_docs + train_docs == [sp.encode(d) for d in docs]
    assert not any(2 in d for d in val_docs + train_docs)

    r2 = run_cli("data", "inspect", str(out), "--json")
    assert r2.returncode == 0, r2.stderr
    rep = json.loads(r2.stdout)
    for split in ("val", "train"):
        s = rep["splits"][split]
        assert (s["tokens"], s["documents"], s["bytes"]) == (
            info["splits"][split]["tokens"], info["splits"][split]["documents"], info["splits"][split]["bytes"])
    assert rep["tokenizer_vocab"] == sp.vocab_size() and rep["max_token_id"] < sp.vocab_size()
    assert set(p.name for p in out.parent.iterdir()) == {"kjv"}  # no staging directory left behind


def test_build_with_an_existing_tokenizer_and_paragraph_documents(
        run_cli: Run, tmp_path: Path, tiny_tokenizer: tuple[Path, Any], kjv_verses: list[str]) -> None:
    model, sp = tiny_tokenizer
    text = tmp_path / "book.txt"
    text.write_text("\n\n".join(kjv_verses[:40]) + "\n", encoding="utf-8")
    out = tmp_path / "ds"
    r = run_cli("data", "build", "--text", str(text), "--tokenizer", str(model), "--docs-per", "paragraph",
                "--val-docs", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    train = read_shard(out / "fineweb_train_000000.bin")
    assert _docs_from_tokens(np.asarray(train)) == [sp.encode(v) for v in kjv_verses[4:40]]
    assert (out / "tokenizer.model").read_bytes() == model.read_bytes()


def test_a_vocab_size_the_given_tokenizer_does_not_have_is_refused_before_anything_is_written(
        run_cli: Run, tmp_path: Path, tiny_tokenizer: tuple[Path, Any], kjv_verses: list[str]) -> None:
    model, _ = tiny_tokenizer  # 512 ids
    text = tmp_path / "book.txt"
    text.write_text("\n".join(kjv_verses[:40]) + "\n", encoding="utf-8")
    args = ["data", "build", "--text", str(text), "--tokenizer", str(model), "--docs-per", "line", "--val-docs",
            "4", "--out", str(tmp_path / "o" / "ds")]
    r = run_cli(*args, "--vocab-size", "2048")
    _assert_clean_failure(r, f"--vocab-size 2048 disagrees with --tokenizer {model}, whose vocabulary has 512 ids: "
                             "the tokenizer fixes it (leave --vocab-size out, or pass --vocab-size 512)")
    assert not (tmp_path / "o").exists()
    r = run_cli(*args, "--vocab-size", "512")  # the tokenizer's own size says the same: fine
    assert r.returncode == 0, r.stderr
    assert "(vocab 512)" in r.stdout


def _assert_clean_failure(r: Any, message: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clowncar: error: "), r.stderr
    assert message in lines[0] and "Traceback" not in r.stderr


@pytest.mark.parametrize(("case", "args", "message"), [
    ("vocab too large", ["--vocab-size", "70000"], "out of range"),
    ("val docs > corpus", ["--val-docs", "41"], "--val-docs 41 leaves no training documents: the corpus has 40"),
    ("val docs = corpus", ["--val-docs", "40"], "leaves no training documents"),
    ("coverage out of range", ["--character-coverage", "0.5"], "between 0.98 and 1.0"),
])
def test_bad_build_options_fail_cleanly(run_cli: Run, tmp_path: Path, kjv_verses: list[str], case: str,
                                        args: list[str], message: str) -> None:
    text = tmp_path / "in.jsonl"
    text.write_text("".join(json.dumps({"text": v}) + "\n" for v in kjv_verses[:40]))
    r = run_cli("data", "build", "--text", str(text), "--val-docs", "5", "--out", str(tmp_path / "o" / "ds"), *args)
    _assert_clean_failure(r, message)
    assert not (tmp_path / "o").exists()


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n \t\n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    no_field = tmp_path / "nofield.jsonl"
    no_field.write_text('{"body": "x"}\n')
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a"}\n{"text": \n')
    nodir = tmp_path / "nodocs"
    nodir.mkdir()
    return {
        "empty corpus": (empty, "empty corpus"),
        "not utf-8": (latin1, "not UTF-8 text"),
        "missing file": (tmp_path / "missing.txt", "input not found"),
        "jsonl without the field": (no_field, "no field 'text'"),
        "invalid jsonl": (bad_json, "bad.jsonl:2: invalid JSON"),
        "directory without .txt": (nodir, "directory holds no .txt files"),
    }


@pytest.mark.parametrize("case", ["empty corpus", "not utf-8", "missing file", "jsonl without the field",
                                  "invalid jsonl", "directory without .txt"])
def test_bad_corpus_fails_cleanly_and_writes_nothing(run_cli: Run, tmp_path: Path, case: str) -> None:
    path, message = _bad_inputs(tmp_path)[case]
    r = run_cli("data", "build", "--text", str(path), "--val-docs", "1", "--out", str(tmp_path / "o" / "ds"))
    _assert_clean_failure(r, message)
    assert not (tmp_path / "o").exists()


@pytest.fixture
def without_root_reads() -> Callable[[list[str]], list[str]]:
    """A wrapper for a command line under which file modes hold. Root reads files whatever their mode, and CI
    runs as root: there the command runs through setpriv (util-linux) without the two capabilities that let root
    ignore them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a mode-000 file really is unreadable while every
    root-owned file the command needs (this checkout, its virtual environment) stays readable."""
    if os.geteuid() != 0:
        return lambda cmd: cmd
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test file permissions as root"
    return lambda cmd: [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]


def test_unreadable_file_fails_cleanly(without_root_reads: Callable[[list[str]], list[str]],
                                       tmp_path: Path) -> None:
    f = tmp_path / "secret.txt"
    f.write_text("text")
    f.chmod(0)
    repo = str(Path(__file__).resolve().parents[2])  # this checkout's code, whatever is installed
    env = {**os.environ, "PYTHONPATH": repo, "CLOWNCAR_RUNS_DIR": str(tmp_path / "runs"),
           "CLOWNCAR_DATA_DIR": str(tmp_path / "data")}
    env.pop("CLOWNCAR_DEBUG", None)
    r = subprocess.run(without_root_reads([sys.executable, "-m", "clowncar", "data", "build", "--text", str(f),
                                           "--val-docs", "1", "--out", str(tmp_path / "o")]),
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    _assert_clean_failure(r, str(f))  # one line naming the file (typer's own check, or the reader's)
    assert "not readable" in r.stderr or "cannot read" in r.stderr
    assert not (tmp_path / "o").exists()


def test_failure_inside_the_build_removes_the_staging_directory(run_cli: Run, tmp_path: Path,
                                                                kjv_verses: list[str]) -> None:
    text = tmp_path / "in.txt"  # more distinct characters than a 300-piece vocab holds at full coverage
    text.write_text("\n".join(kjv_verses[:50]) + "".join(chr(0x4E00 + i) for i in range(400)), encoding="utf-8")
    r = run_cli("data", "build", "--text", str(text), "--docs-per", "line", "--val-docs", "2", "--vocab-size",
                "300", "--character-coverage", "1.0", "--out", str(tmp_path / "o" / "ds"))
    _assert_clean_failure(r, "sentencepiece training failed")
    assert not (tmp_path / "o").exists()


def test_overwrite_replaces_an_earlier_build_and_refuses_a_folder_holding_anything_else(
        run_cli: Run, tmp_path: Path, kjv_verses: list[str]) -> None:
    text = tmp_path / "in.txt"
    text.write_text("\n".join(kjv_verses[:60]), encoding="utf-8")
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "build.json").write_text("{}")  # a build's file beside it does not make the user's file a build's
    args = ["data", "build", "--text", str(text), "--docs-per", "line", "--val-docs", "5", "--vocab-size", "400",
            "--out", str(out)]
    _assert_clean_failure(run_cli(*args), "pass --overwrite")
    r = run_cli(*args, "--overwrite")
    _assert_clean_failure(r, f"refusing to replace {out}: it holds keep.txt, which no build writes (--overwrite "
                             "replaces only an earlier build or an empty folder: move keep.txt out)")
    assert sorted(p.name for p in out.iterdir()) == ["build.json", "keep.txt"]
    (out / "keep.txt").rename(tmp_path / "keep.txt")
    (out / "fineweb_train_000007.bin").write_text("a shard of an earlier build, which this one does not make")
    r = run_cli(*args, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not (out / "fineweb_train_000007.bin").exists() and (out / "fineweb_val_000000.bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "in.txt", "keep.txt"]


@pytest.mark.parametrize(("how", "message"), [("magic", "bad magic"), ("truncate", "truncated shard")])
def test_inspect_reports_a_corrupt_shard_in_one_line(run_cli: Run, tmp_path: Path, how: str,
                                                     message: str) -> None:
    write_shard(tmp_path / "fineweb_val_000000.bin", [1, 5, 6, 7])
    bad = write_shard(tmp_path / "fineweb_train_000000.bin", [1, 8, 9])
    raw = bad.read_bytes()
    bad.write_bytes(b"\x00\x00\x00\x00" + raw[4:] if how == "magic" else raw[:-2])
    r = run_cli("data", "inspect", str(tmp_path))
    _assert_clean_failure(r, message)
    assert str(bad) in r.stderr


def test_inspect_reads_official_format_shards_without_a_tokenizer(
        run_cli: Run, tmp_path: Path, official_writer: Callable[[Path, np.ndarray], None]) -> None:
    official_writer(tmp_path / "fineweb_val_000000.bin", np.array([1, 10, 11, 1, 12]))
    official_writer(tmp_path / "fineweb_train_000000.bin", np.array([1, 1023, 5]))
    official_writer(tmp_path / "fineweb_train_000001.bin", np.array([1, 7]))
    r = run_cli("data", "inspect", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "val         1              5          2     12" in r.stdout
    assert "train       2              5          2   1023" in r.stdout
    assert "max token id 1023 (needs vocab >= 1024)" in r.stdout and "3 shard headers valid" in r.stdout
    _assert_clean_failure(run_cli("data", "inspect", str(tmp_path / "nothing")), "shard directory not found")


def test_inspect_refuses_token_ids_beyond_the_tokenizer(
        run_cli: Run, tmp_path: Path, tiny_tokenizer: tuple[Path, Any]) -> None:
    write_shard(tmp_path / "fineweb_val_000000.bin", [1, 10, 11])
    write_shard(tmp_path / "fineweb_train_000000.bin", [1, 1023, 5])  # the tiny tokenizer has 512 ids
    r = run_cli("data", "inspect", str(tmp_path), "--tokenizer", str(tiny_tokenizer[0]))
    _assert_clean_failure(r, "token id 1023 is beyond the tokenizer's vocab (512)")


def test_build_shows_a_progress_bar_on_a_terminal(tmp_path: Path, kjv_verses: list[str]) -> None:
    """On a terminal (a pseudo-terminal here) the encoding pass draws a tqdm bar on stderr."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    text = tmp_path / "in.txt"
    text.write_text("\n".join(kjv_verses[:500]), encoding="utf-8")
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a sized terminal
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "clowncar", "data", "build", "--text", str(text), "--docs-per",
                           "line", "--val-docs", "10", "--vocab-size", "400", "--out", str(tmp_path / "o")],
                          stdout=subprocess.PIPE, stderr=secondary, env=env, timeout=300, check=False)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    shown = b"".join(chunks).decode("utf-8", errors="replace")
    assert proc.returncode == 0, shown
    assert "encoding: 100%" in shown and "500/500" in shown
