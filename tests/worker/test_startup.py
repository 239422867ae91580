"""Trial start-up, launch -> first step: the phases in result.json and events.jsonl add up, the launch time
comes from the trainable, and every worker the trainable launches gets the node's compile cache."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator.trainable import TrialContext, worker_command, worker_env
from clowncar.worker.run import run_trial
from clowncar.worker.startup import LAUNCH_TIME_ENV, PHASES, StartupClock, process_start_time


def _context(tmp_path: Path, pythonpath: list[str] | None = None) -> TrialContext:
    return TrialContext(sweep="s", spec={"worker": {"pythonpath": pythonpath or []}}, runs_dir=str(tmp_path),
                        size_cap=16_000_000)


def test_trial_reports_each_phase_once_and_they_add_up(tiny_cfg: Callable[..., Any], tmp_path: Path,
                                                       read_trial: Callable[..., Any]) -> None:
    assert run_trial(tiny_cfg("train.iterations=3", "train.warmup_steps=2", "eval.stride=0"), tmp_path) == 0
    result, events = read_trial(tmp_path)
    startup = result["startup"]
    assert set(PHASES) <= set(startup) and all(startup[p] >= 0 for p in PHASES)
    assert result["startup_seconds"] == pytest.approx(sum(startup[p] for p in PHASES), abs=1e-3)
    assert startup["compile"] > 0  # two warm-up steps ran, then the state was restored
    assert startup["from"] == "process start" and startup["launch"] == 0  # no launcher stamped this run
    assert startup["compile_mode"] == "eager" and startup["compile_cache"] is None and not startup["cuda_graphs"]
    assert startup["compile_cache_hits"] is None and startup["compile_cache_misses"] is None
    assert startup["cpu_seconds"] > 0
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["start", "startup", "step"] and kinds.count("startup") == 1
    event = events[1]
    assert event["startup_seconds"] == result["startup_seconds"] and event["startup"] == startup
    assert "start-up: " in (tmp_path / "train.log").read_text()


def test_launch_phase_comes_from_the_launchers_stamp_when_plausible() -> None:
    started = process_start_time()
    assert started is not None and started <= time.time()
    clock = StartupClock(env={LAUNCH_TIME_ENV: repr(started - 2.5)})
    assert clock.phases["launch"] == pytest.approx(2.5, abs=0.02)
    fields = clock.fields()
    assert fields["startup"]["from"] == "launch" and fields["startup_seconds"] >= 2.5
    for bad in ("", "soon", repr(time.time() + 60), repr(started - 7200)):  # unset, junk, future, stale
        assert StartupClock(env={LAUNCH_TIME_ENV: bad}).fields()["startup"]["from"] == "process start"
    with pytest.raises(ValueError, match="hide a phase"):
        clock.fields(compile="default")


def test_process_start_time_is_when_the_process_started() -> None:
    before = time.time()
    proc = subprocess.run([sys.executable, "-c", "from clowncar.worker.startup import process_start_time as p; "
                           "import time; print(p(), time.time())"], capture_output=True, text=True, timeout=120)
    started, printed = (float(v) for v in proc.stdout.split())
    assert before - 0.05 <= started <= printed  # /proc's clock has 10 ms ticks


def test_worker_env_points_at_the_node_compile_cache_unless_one_is_chosen(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("CLOWNCAR_COMPILE_CACHE", raising=False)
    env = worker_env(_context(tmp_path), 2, 0)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(Path("~/.cache/clowncar/compile").expanduser())
    assert abs(float(env[LAUNCH_TIME_ENV]) - time.time()) < 5
    monkeypatch.setenv("CLOWNCAR_COMPILE_CACHE", str(tmp_path / "node-cache"))
    assert worker_env(_context(tmp_path), 2, 0)["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "node-cache")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))  # the deployer's own choice wins
    assert worker_env(_context(tmp_path), 2, 0)["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


def test_launched_worker_sees_the_cache_dir_and_its_launch_time(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the trainable's own command and environment (the launch wrapper, PDEATHSIG and all)."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("CLOWNCAR_COMPILE_CACHE", str(tmp_path / "node-cache"))
    (tmp_path / "dump_env.py").write_text("import json, os, sys\n"
                                          "open(sys.argv[3], 'w').write(json.dumps(dict(os.environ)))\n")
    ctx = _context(tmp_path, [str(tmp_path)])
    cmd = worker_command("dump_env", tmp_path / "trial.json", tmp_path / "env.json", 1)  # argv[3]: --out's
    subprocess.run(cmd, env=worker_env(ctx, 2, 0), check=True, timeout=120, cwd=tmp_path)
    seen = json.loads((tmp_path / "env.json").read_text())
    assert seen["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "node-cache")
    assert abs(float(seen[LAUNCH_TIME_ENV]) - time.time()) < 120


def test_trial_launched_like_the_trainable_counts_from_its_launch(tiny_overrides: list[str], tmp_path: Path,
                                                                  read_trial: Callable[..., Any]) -> None:
    sets = [a for s in [*tiny_overrides, "train.iterations=2", "eval.stride=0"] for a in ("--set", s)]
    cmd = [*worker_command("clowncar.worker", Path("/dev/null"), tmp_path / "out", 1), "--preset", "tiny-cpu",
           *sets]
    env = worker_env(_context(tmp_path), 1, 0)
    subprocess.run(cmd, env=env, check=True, timeout=300, cwd=tmp_path, capture_output=True)
    result, _ = read_trial(tmp_path / "out")
    startup = result["startup"]
    assert startup["from"] == "launch" and startup["launch"] >= 0
    # launch + imports is the whole time from the stamp to the trial's start: more than Python's own start-up
    assert startup["launch"] + startup["imports"] > 0.05
