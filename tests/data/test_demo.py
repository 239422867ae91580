"""`clowncar data demo`: real public-domain prose, built where the tiny-cpu preset looks, reused on rerun."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clowncar.config_load import load_config
from clowncar.data.demo import RECIPE, kjv_chapters, locate_kjv
from clowncar.data.shards import read_shard
from clowncar.settings import load_settings


def test_corpus_is_located_by_path_without_importing_the_package() -> None:
    path = locate_kjv()
    assert path.name == "kjv.jsonl" and path.stat().st_size > 4_000_000
    assert "bible" not in sys.modules
    chapters = kjv_chapters(path)
    assert len(chapters) == 1189  # the chapters of the King James Bible
    assert chapters[0].startswith("In the beginning God created the heaven and the earth.\n")


@pytest.mark.slow  # two real builds of the 4 MB corpus: ~10 s on an idle 2-core machine
def test_demo_builds_for_the_tiny_cpu_preset_and_reuses_on_rerun(run_cli: Callable[..., Any],
                                                                  tmp_path: Path) -> None:
    r = run_cli("data", "demo")
    assert r.returncode == 0, r.stderr
    data = tmp_path / "data"
    settings = load_settings({"CLOWNCAR_DATA_DIR": str(data)})
    cfg = load_config(preset="tiny-cpu")
    dataset = settings.dataset_dir(cfg.data.dataset)
    tokenizer = settings.tokenizer_path(cfg.data.tokenizer)
    assert dataset == data / "datasets" / "demo_sp1024" and tokenizer.is_file()
    info = json.loads((dataset / "build.json").read_text())
    assert info["splits"]["val"]["documents"] == RECIPE["val_docs"]
    assert info["splits"]["val"]["documents"] + info["splits"]["train"]["documents"] == 1189
    assert info["splits"]["train"]["tokens"] > 1_000_000 and info["tokenizer"]["vocab_size"] == 1024
    val = read_shard(dataset / "fineweb_val_000000.bin")
    assert val[0] == 1 and int(val.max()) < 1024
    summary = [line for line in r.stdout.splitlines() if line.startswith(("val ", "train "))]
    assert len(summary) == 2
    mtime = (dataset / "fineweb_train_000000.bin").stat().st_mtime_ns

    again = run_cli("data", "demo")
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stdout and "training tokenizer" not in again.stdout
    assert [line for line in again.stdout.splitlines() if line.startswith(("val ", "train "))] == summary
    assert (dataset / "fineweb_train_000000.bin").stat().st_mtime_ns == mtime

    (dataset / "fineweb_train_000001.bin").write_bytes(b"broken")  # a damaged build is rebuilt
    third = run_cli("data", "demo")
    assert third.returncode == 0, third.stderr
    assert "training tokenizer" in third.stdout
    assert len(read_shard(dataset / "fineweb_train_000001.bin")) > 0
    assert sorted(p.name for p in (data / "datasets").iterdir()) == ["demo_sp1024"]
