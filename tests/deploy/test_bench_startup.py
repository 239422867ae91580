"""benchmarks/bench_startup.py launches a real trial the way the trainable does and reads its start-up back;
the eager reference run works whatever compile mode the compiled runs are given (as gpu_trial.py gives one)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench_startup(repo: Path) -> ModuleType:
    sys.path.insert(0, str(repo / "benchmarks"))  # it imports bench_worker for its dataset
    spec = importlib.util.spec_from_file_location("clowncar_bench_startup", repo / "benchmarks/bench_startup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(repo / "benchmarks"))


def test_eager_run_is_launched_like_a_trial_and_reports_its_start_up(bench_startup: ModuleType,
                                                                     tmp_path: Path) -> None:
    runs = bench_startup.measure("tiny-cpu", [*bench_startup.TINY_CPU, "train.compile_mode=reduce-overhead"],
                                 "cpu", tmp_path, cpus=1, runs=("eager",))
    eager = runs["eager"]
    startup = eager["result"]["startup"]
    assert startup["from"] == "launch" and startup["compile_mode"] == "eager"
    assert eager["result"]["steps"] == 2 and startup["compile"] > 0  # two warm-up steps, then two steps
    assert eager["wall_s"] >= eager["result"]["startup_seconds"] > 0 and eager["user_s"] > 0
    lines = bench_startup.table(runs)
    assert lines[0] == "| seconds | eager |" and any(line.startswith("| first step |") for line in lines)
