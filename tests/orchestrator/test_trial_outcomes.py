"""What the trainable makes of a worker, without Ray: the command and environment it starts it with, the rows it
relays while it runs, and the status, reason, objective and size constraint it reports when it ends (a crash
without result.json, a result that contradicts the exit code, an artifact over the cap, a missing objective)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator.trainable import (
    RESULT_KEYS_FOR_TUNE,
    Relay,
    TrialContext,
    _stderr_tail,
    final_report,
    kill_group,
    objective_value,
    outcome,
    worker_command,
    worker_env,
)
from clowncar.worker.startup import LAUNCH_TIME_ENV


def ctx(metric: str = "auto", cap: int = 16_000_000, **kw: Any) -> TrialContext:
    return TrialContext(sweep="s", spec={"objective": {"metric": metric}, **kw.pop("spec", {})}, runs_dir="/r",
                        size_cap=cap, **kw)


@pytest.mark.parametrize("result, metric, value", [
    ({"q_sliding_val_bpb": 1.2, "q_val_bpb": 1.3}, "auto", 1.2),
    ({"q_sliding_val_bpb": None, "q_val_bpb": 1.3}, "auto", 1.3),  # no sliding eval: the plain one
    ({"q_sliding_val_bpb": math.nan, "q_val_bpb": 1.3}, "auto", 1.3),
    ({"q_val_bpb": math.inf}, "auto", None),
    ({"val_bpb": 2}, "val_bpb", 2.0),
    ({"val_bpb": True}, "val_bpb", None),  # a flag is no number
    ({"val_bpb": "1.2"}, "val_bpb", None),
    ({"q_val_bpb": 1.3}, "val_bpb", None),
])
def test_the_objective_is_the_first_finite_number_of_its_metric(result: dict[str, Any], metric: str,
                                                                 value: float | None) -> None:
    got = objective_value(result, metric)
    assert got == value and (got is None or type(got) is float)


@pytest.mark.parametrize("code, result, tail, expected", [
    (-9, None, "", ("crashed", "worker killed by signal 9 without result.json")),
    (1, None, "MemoryError", ("crashed", "worker exit code 1 without result.json: MemoryError")),
    (0, {"status": "ok", "reason": None}, "", ("ok", None)),
    (3, {"status": "diverged", "reason": "loss nan at step 7"}, "", ("diverged", "loss nan at step 7")),
    (4, {"reason": "CUDA out of memory"}, "", ("oom", "CUDA out of memory")),  # no status: the exit code says
    (7, {}, "", ("error", None)),
    (0, {"status": "weird"}, "", ("error", None)),
    (1, {"status": "ok"}, "", ("error", "worker wrote status ok but exited 1")),
    (0, {"status": "error", "reason": "bad shard"}, "", ("error", "bad shard")),
])
def test_the_outcome_is_result_json_first_and_a_crash_without_it(code: int, result: dict[str, Any] | None,
                                                                 tail: str, expected: tuple[str, Any]) -> None:
    assert outcome(code, result, tail) == expected


def test_an_ok_trial_reports_its_objective_and_how_far_under_the_cap_it_is() -> None:
    result = {"status": "ok", "q_sliding_val_bpb": 1.19, "artifact_bytes": 15_000_000, "params": 13_000_000,
              "steps": 100, "train_seconds": 600, "startup_seconds": True}
    out = final_report(ctx(), "ok", None, result, 12.5)
    assert out["final"] is True and out["status"] == "ok" and out["reason"] == "" and out["wall_s"] == 12.5
    assert out["objective"] == 1.19 and out["feasible"] is True and out["constraint"] == -1_000_000.0
    assert json.loads(out["result_json"]) == result
    assert out["params"] == 13_000_000.0 and out["steps"] == 100.0 and out["artifact_bytes"] == 15_000_000.0
    assert math.isnan(out["startup_seconds"]) and math.isnan(out["val_bpb"])  # a flag or a missing key: NaN
    assert set(RESULT_KEYS_FOR_TUNE) <= set(out)


@pytest.mark.parametrize("result", [{"q_val_bpb": 1.2, "artifact_bytes": 16_000_001},
                                    {"q_val_bpb": 1.2, "artifact_bytes": 15_000_000.5, "over_cap": True}])
def test_an_artifact_over_the_cap_is_ok_but_infeasible_with_its_reason(result: dict[str, Any]) -> None:
    out = final_report(ctx(cap=16_000_000 if "over_cap" not in result else 15_000_000), "ok", None, result, 1.0)
    assert out["status"] == "ok" and out["feasible"] is False and out["objective"] == 1.2
    cap = 16_000_000 if "over_cap" not in result else 15_000_000
    assert out["reason"] == f"artifact {result['artifact_bytes']} bytes over the cap of {cap}"
    assert out["constraint"] == result["artifact_bytes"] - cap > 0
    at_cap = final_report(ctx(cap=16_000_000), "ok", None, {"q_val_bpb": 1.2, "artifact_bytes": 16_000_000}, 1.0)
    assert at_cap["feasible"] is True and at_cap["constraint"] == 0.0 and at_cap["reason"] == ""


def test_an_ok_result_without_the_objective_is_an_error_and_failures_carry_no_objective() -> None:
    out = final_report(ctx(metric="val_bpb"), "ok", None, {"q_val_bpb": 1.2}, 1.0)
    assert out["status"] == "error" and out["reason"] == "result.json has no value for objective 'val_bpb'"
    assert math.isnan(out["objective"]) and out["feasible"] is False and math.isnan(out["constraint"])
    failed = final_report(ctx(), "diverged", "loss nan", {"q_val_bpb": 1.2, "artifact_bytes": 10}, 1.0)
    assert failed["status"] == "diverged" and failed["reason"] == "loss nan" and math.isnan(failed["objective"])
    assert failed["feasible"] is False and failed["constraint"] == 10.0 - 16_000_000
    crashed = final_report(ctx(), "crashed", "worker killed", None, 1.0)
    assert crashed["result_json"] == "" and math.isnan(crashed["artifact_bytes"])
    over = final_report(ctx(cap=5), "ok", "kept", {"q_val_bpb": 1.0, "artifact_bytes": 6}, 1.0)
    assert over["reason"] == "kept"  # a reason the worker gave is not replaced


def test_one_gpu_runs_the_launcher_and_several_run_torchrun_on_this_node(tmp_path: Path) -> None:
    cfg, out = tmp_path / "trial.json", tmp_path / "out"
    args = ["-m", "clowncar.orchestrator.launch", "clowncar.worker", str(cfg), "--out", str(out)]
    assert worker_command("clowncar.worker", cfg, out, 1) == [sys.executable, *args]
    assert worker_command("clowncar.worker", cfg, out, 4) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", *args]


def test_the_worker_gets_the_trials_cpus_its_paths_the_compile_cache_and_its_launch_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/site")
    monkeypatch.setenv("CLOWNCAR_COMPILE_CACHE", "/cache")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    c = ctx(spec={"worker": {"pythonpath": ["/a", "/b"]}}, extra_env={"MKL_NUM_THREADS": "9", "X": "1"})
    env = worker_env(c, cpus=8, gpus=2)
    assert env["OMP_NUM_THREADS"] == "4" and env["MKL_NUM_THREADS"] == "9" and env["X"] == "1"  # extra wins
    assert env["PYTHONPATH"] == os.pathsep.join(["/a", "/b", "/site"])
    assert env["CLOWNCAR_LAUNCHER_PARENT"] == str(os.getpid())
    assert env["TORCHINDUCTOR_CACHE_DIR"] == "/cache"
    assert abs(float(env[LAUNCH_TIME_ENV]) - time.time()) < 60
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/own")
    env = worker_env(ctx(), cpus=1.5, gpus=4)
    assert env["OMP_NUM_THREADS"] == "1" and env["PYTHONPATH"] == "" and env["TORCHINDUCTOR_CACHE_DIR"] == "/own"
    assert worker_env(ctx(), cpus=3, gpus=0)["OMP_NUM_THREADS"] == "3"


def test_the_relay_sends_each_row_once_and_nan_until_measured(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    relay = Relay(events)
    first = relay.report(relay.poll(), worker_pid=7)
    assert first["step"] == 0 and first["worker_pid"] == 7 and json.loads(first["new_rows"]) == {
        "steps": [], "evals": [], "probes": []}
    assert all(math.isnan(first[k]) for k in ("train_loss", "val_bpb", "probe_loss", "last_step", "objective",
                                               "artifact_bytes"))
    assert (first["train_loss_step"], first["val_bpb_step"], first["probe_loss_step"]) == (0, 0, 0)
    events.write_text('{"event":"step","step":3,"train_loss":null}\n{"event":"step","step":2,"train_loss":4.0}\n'
                      '{"event":"other"}\n{"event":"eval","step":2,"val_bpb":null}\n')
    rows = relay.poll()
    assert [r["step"] for r in rows["steps"]] == [3, 2] and len(rows["evals"]) == 1 and rows["probes"] == []
    out = relay.report(rows)
    assert out["step"] == 3 and out["train_loss"] == 4.0 and out["train_loss_step"] == 2 and math.isnan(
        out["val_bpb"])
    assert relay.poll() == {"steps": [], "evals": [], "probes": []}  # nothing new: nothing sent twice


def test_the_stderr_tail_is_the_last_line_that_says_something(tmp_path: Path) -> None:
    out = tmp_path / "worker.out"
    assert _stderr_tail(out) == ""
    out.write_bytes(b"Traceback\n  line\nRuntimeError: boom \xff\n\n   \n")
    assert _stderr_tail(out) == "RuntimeError: boom \ufffd"
    out.write_text("x" * 500 + "\n")
    assert _stderr_tail(out) == "x" * 300
    out.write_text("\n\n")
    assert _stderr_tail(out) == ""


def _alive(pid: int) -> bool:
    """Running (not gone and not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_killing_a_worker_kills_its_whole_process_group() -> None:
    child = ("import subprocess, sys, time; g = subprocess.Popen([sys.executable, '-c', 'import time; "
             "time.sleep(60)']); print(g.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert _alive(grandchild)
    kill_group(proc)
    assert proc.returncode == -9
    for _ in range(50):  # bounded: 5 s
        if not _alive(grandchild):
            break
        time.sleep(0.1)
    assert not _alive(grandchild)  # the worker's own children die with it
    kill_group(proc)  # a second time: nothing left, no error
