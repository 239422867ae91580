"""What the trainable makes of a worker, without Ray: the command and environment it starts it with, the rows it
relays while it runs, and the status, reason, objective and size constraint it reports when it ends (a crash
without result.json, a result that contradicts the exit code, an artifact over the cap, a missing objective)."""

from __future__ import annotations

import json
import math
import os
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
    objective_value,
    outcome,
    own_size_cap,
    size_verdict,
    worker_command,
    worker_env,
)
from clowncar.worker.startup import LAUNCH_TIME_ENV

from .conftest import alive, wait_for


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
    (0, None, "", ("crashed", "worker exit code 0 without result.json")),
    (0, {"status": "ok", "reason": None}, "", ("ok", None)),
    (3, {"status": "diverged", "reason": "loss nan at step 7"}, "", ("diverged", "loss nan at step 7")),
    (4, {"reason": "CUDA out of memory"}, "", ("oom", "CUDA out of memory")),  # no status: the exit code says
    (7, {}, "", ("error", None)),
    (0, {"status": "weird"}, "", ("error", None)),
    (1, {"status": "ok"}, "", ("error", "worker wrote status ok but exited 1")),
    (0, {"status": "error", "reason": "bad shard"}, "", ("error", "bad shard")),
    (2, {"status": "rejected", "reason": "DataError: no shards"}, "", ("rejected", "DataError: no shards")),
    (2, {}, "", ("rejected", None)),  # an older worker's result without a status: its exit code says
    # refused before the trial began (no result.json): its one line, and not retried as a crash
    (2, None, "clowncar.worker: error: bad key", ("rejected", "clowncar.worker: error: bad key")),
    (2, None, "", ("crashed", "worker exit code 2 without result.json")),
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


@pytest.mark.parametrize("result, reason, constraint", [
    ({"q_val_bpb": 1.2, "artifact_bytes": 16_000_001},
     "artifact 16000001 bytes over the cap of 16000000 (the sweep's size cap)", 1.0),
    # the worker's own verdict (against its own cap, unknown here) stands even where the bytes fit the sweep's
    # cap: a positive constraint, so Optuna never counts it feasible
    ({"q_val_bpb": 1.2, "artifact_bytes": 15_000_000, "over_cap": True},
     "artifact 15000000 bytes over the cap its worker applied (result.json over_cap: true)", 1.0),
    ({"q_val_bpb": 1.2, "over_cap": True}, "artifact over the cap its worker applied (result.json over_cap: true)",
     1.0),
    # exactly at the sweep's cap (a violation of 0, which Optuna counts feasible) but over the worker's own
    ({"q_val_bpb": 1.2, "artifact_bytes": 16_000_000, "over_cap": True},
     "artifact 16000000 bytes over the cap its worker applied (result.json over_cap: true)", 1.0),
])
def test_an_artifact_over_the_cap_is_ok_but_infeasible_with_its_reason(result: dict[str, Any], reason: str,
                                                                       constraint: float) -> None:
    out = final_report(ctx(cap=16_000_000), "ok", None, result, 1.0)
    assert out["status"] == "ok" and out["feasible"] is False and out["objective"] == 1.2
    assert out["reason"] == reason and out["constraint"] == constraint
    at_cap = final_report(ctx(cap=16_000_000), "ok", None, {"q_val_bpb": 1.2, "artifact_bytes": 16_000_000}, 1.0)
    assert at_cap["feasible"] is True and at_cap["constraint"] == 0.0 and at_cap["reason"] == ""


TRIALS_CAP = "the trial's quant.size_cap_bytes"
SPECS_CAP = "the spec's constraint.max_artifact_bytes"


@pytest.mark.parametrize("own, spec_cap, art, cap, where", [
    (20_000, 16_000_000, 467_220, 20_000, TRIALS_CAP),  # walk 5, F7: the trial's own cap is the stricter
    (16_000_000, 400_000, 467_220, 400_000, SPECS_CAP),  # the spec's constraint is the stricter
    (20_000, None, 467_220, 20_000, TRIALS_CAP),  # no constraint: the trial's own cap
    (500_000, 16_000_000, 467_220, 500_000, None),  # under both: feasible
])
def test_a_trial_is_held_to_the_stricter_of_its_own_cap_and_the_specs_constraint(
        own: int, spec_cap: int | None, art: int, cap: int, where: str | None) -> None:
    """Walk 5, F7: a point with quant.size_cap_bytes 20,000 in a spec constrained to 16,000,000 was over its own
    cap, yet stored as over 16,000,000 and told to Optuna as feasible. Its cap comes from the trial's config (the
    caller's `own_cap`) or, without it, from the config its worker recorded in result.json."""
    result = {"q_val_bpb": 1.2, "artifact_bytes": art, "over_cap": art > own}
    spec = {"constraint": {"max_artifact_bytes": spec_cap}}
    for out in (final_report(ctx(cap=spec_cap or own, spec=spec), "ok", None, result, 1.0, own_cap=own),
                final_report(ctx(cap=spec_cap or own, spec=spec), "ok", None,
                             {**result, "provenance": {"config": {"quant": {"size_cap_bytes": own}}}}, 1.0)):
        assert out["constraint"] == art - cap and out["feasible"] is (where is None)
        assert out["reason"] == ("" if where is None else f"artifact {art} bytes over the cap of {cap} ({where})")
        stored = json.loads(out["result_json"])  # what the store keeps, and the report reads
        assert (stored.get("over_cap"), stored.get("size_cap_applied")) == ((art > own, None) if where is None else
                                                                           (True, cap))


@pytest.mark.parametrize("recorded", [0, -5, True, "20000", 20000.0, None])
def test_a_recorded_own_cap_that_is_not_a_positive_whole_number_is_no_cap(recorded: Any) -> None:
    """What result.json's provenance holds as quant.size_cap_bytes is the worker's word: only a positive int is a
    cap; anything else leaves the trial to the sweep's cap (and never compared as a number)."""
    result = {"q_val_bpb": 1.2, "artifact_bytes": 467_220,
              "provenance": {"config": {"quant": {"size_cap_bytes": recorded}}}}
    assert own_size_cap(result) is None
    out = final_report(ctx(cap=16_000_000), "ok", None, result, 1.0)
    assert out["feasible"] is True and out["constraint"] == 467_220 - 16_000_000 and out["reason"] == ""


@pytest.mark.parametrize("result", [None, {}, {"provenance": "x"}, {"provenance": {"config": []}},
                                    {"provenance": {"config": {"quant": 5}}}])
def test_a_result_without_a_recorded_config_has_no_own_cap(result: dict[str, Any] | None) -> None:
    assert own_size_cap(result) is None


def test_a_one_byte_own_cap_is_a_cap() -> None:
    result = {"q_val_bpb": 1.2, "artifact_bytes": 2, "provenance": {"config": {"quant": {"size_cap_bytes": 1}}}}
    assert own_size_cap(result) == 1
    out = final_report(ctx(cap=16_000_000), "ok", None, result, 1.0)
    assert out["feasible"] is False and out["constraint"] == 1.0
    assert out["reason"] == f"artifact 2 bytes over the cap of 1 ({TRIALS_CAP})"


def test_an_own_cap_equal_to_the_specs_constraint_is_named_as_the_trials_own() -> None:
    """Two caps of one size: the reason names the trial's quant.size_cap_bytes, the one its worker also applied."""
    verdict = size_verdict({"artifact_bytes": 30_000}, 20_000, 16_000_000, own_cap=20_000)
    assert (verdict.cap, verdict.over, verdict.constraint) == (20_000, True, 10_000.0)
    assert verdict.reason == f"artifact 30000 bytes over the cap of 20000 ({TRIALS_CAP})"


def test_an_ok_result_without_the_objective_is_an_error_and_failures_carry_no_objective() -> None:
    out = final_report(ctx(metric="val_bpb"), "ok", None, {"q_val_bpb": 1.2}, 1.0)
    assert out["status"] == "error" and out["reason"] == "result.json has no finite value for val_bpb: val_bpb absent"
    assert math.isnan(out["objective"]) and out["feasible"] is False and math.isnan(out["constraint"])
    failed = final_report(ctx(), "diverged", "loss nan", {"q_val_bpb": 1.2, "artifact_bytes": 10}, 1.0)
    assert failed["status"] == "diverged" and failed["reason"] == "loss nan" and math.isnan(failed["objective"])
    assert failed["feasible"] is False and failed["constraint"] == 10.0 - 16_000_000
    crashed = final_report(ctx(), "crashed", "worker killed", None, 1.0)
    assert crashed["result_json"] == "" and math.isnan(crashed["artifact_bytes"])
    over = final_report(ctx(cap=5), "ok", "kept", {"q_val_bpb": 1.0, "artifact_bytes": 6}, 1.0)
    assert over["reason"] == "kept"  # a reason the worker gave is not replaced


def test_a_missing_objective_names_the_metrics_auto_reads_and_what_each_held() -> None:
    """Walk 5, F8: the reason named the spec's word `auto`, not the keys it reads, and hid that one was NaN."""
    out = final_report(ctx(), "ok", None, {"q_sliding_val_bpb": None, "q_val_bpb": math.nan}, 1.0)
    assert out["status"] == "error" and out["reason"] == (
        "result.json has no finite value for q_sliding_val_bpb or q_val_bpb (objective 'auto'): "
        "q_sliding_val_bpb null, q_val_bpb NaN")


def test_one_gpu_runs_the_launcher_and_several_run_torchrun_on_this_node(tmp_path: Path) -> None:
    cfg, out = tmp_path / "trial.json", tmp_path / "out"
    args = ["-m", "clowncar.orchestrator.launch", "clowncar.worker", str(cfg), "--out", str(out)]
    assert worker_command("clowncar.worker", cfg, out, 1) == [sys.executable, *args]
    assert worker_command("clowncar.worker", cfg, out, 4) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", *args]
    assert worker_command("clowncar.worker", cfg, out, 2)[1:5] == ["-m", "torch.distributed.run", "--standalone",
                                                                   "--nproc-per-node=2"]


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
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1" and env["PYTHONPATH"] == ""
    assert env["TORCHINDUCTOR_CACHE_DIR"] == "/own"
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    extra = worker_env(ctx(extra_env={"CLOWNCAR_COMPILE_CACHE": "/node-cache"}), cpus=1, gpus=0)
    assert extra["TORCHINDUCTOR_CACHE_DIR"] == "/node-cache"  # the cache the worker's environment names
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
                      '{"event":"other"}\n{"event":"eval","step":2,"val_bpb":null}\n'
                      '{"event":"probe","probe_loss":3.0}\n{"event":"step"}\n')
    rows = relay.poll()
    assert [r.get("step") for r in rows["steps"]] == [3, 2, None] and [r["step"] for r in rows["evals"]] == [2]
    assert rows["probes"] == [{"event": "probe", "probe_loss": 3.0}]
    out = relay.report(rows)
    assert out["step"] == 3 and out["train_loss"] == 4.0 and out["train_loss_step"] == 2 and math.isnan(
        out["val_bpb"])
    assert out["probe_loss"] == 3.0 and out["probe_loss_step"] == 0  # measured at no step: 0
    empty = Relay(tmp_path / "other.jsonl")
    (tmp_path / "other.jsonl").write_text('{"event":"step"}\n')
    assert empty.report(empty.poll())["step"] == 0
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


# -- a whole trial through the trainable, without Ray: the contract worker (benchmarks/) stands for the worker ---

@pytest.fixture
def run_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """run_trial on the contract worker: Tune's report is collected here, the node facts are fixed."""
    from ray import tune

    import clowncar
    from clowncar.orchestrator import trainable
    from clowncar.orchestrator.spec import spec_from_dict

    root = Path(clowncar.__file__).resolve().parents[1]  # under mutation testing, the mutated tree
    monkeypatch.syspath_prepend(str(root / "benchmarks"))  # its entry point registers the contract worker
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(tune, "report", lambda metrics: reports.append(dict(metrics)))
    monkeypatch.setattr(trainable, "node_facts", lambda: {"host": "h:node", "pid": 1})

    ranks: list[int] = []
    real_command = trainable.worker_command

    def command(module: str, config_path: Path, out: Path, gpus: int) -> list[str]:
        ranks.append(gpus)  # no GPUs here: the ranks the trainable asked for are recorded, one process runs
        return real_command(module, config_path, out, 1)

    monkeypatch.setattr(trainable, "worker_command", command)

    def run(mode: str, number: int | None = 3, attempt: int = 1, params: dict[str, Any] | None = None,
            gpus: int = 0, launcher: str = "torchrun", stall_s: float = 1800.0,
            constraint: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], Path]:
        spec = spec_from_dict({"name": "t", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 1},
                               "space": {"model.crawler_loops": {"choice": [1, 2]}},
                               "constraint": constraint or {},
                               "overrides": {"data.dataset": mode, "train.iterations": 4,
                                             "train.max_wallclock_seconds": 0.2},
                               "resources": {"gpus": gpus, "cpus": 1, "placement": "ray"},
                               "worker": {"module": "contract_worker", "launcher": launcher,
                                          "stall_seconds": stall_s}})
        ctx = TrialContext(sweep="t", spec=spec.to_dict(), runs_dir=str(tmp_path / "runs"), size_cap=spec.size_cap(),
                           poll_s=0.02, heartbeat_s=60.0,
                           extra_env={"PYTHONPATH": os.pathsep.join([str(root), str(root / "benchmarks")])})
        reports.clear()
        ranks.clear()
        config = {"model.crawler_loops": 2, **(params or {})}
        if number is not None:
            config["_cc"] = {"number": number, "attempt": attempt}
        trainable.run_trial(config, ctx)
        run.ranks = list(ranks)  # type: ignore[attr-defined]
        return list(reports), tmp_path / "runs" / "trials" / "t" / f"{number or 0:05d}-{attempt if number else 0}"

    return run


def test_a_trial_relays_every_row_once_and_ends_with_its_outcome(run_contract: Any) -> None:
    reports, trial_dir = run_contract("ok")
    first, last = reports[0], reports[-1]
    assert first["worker_pid"] > 0 and first["host"] == "h:node" and "final" not in first
    assert last["final"] is True and last["status"] == "ok" and last["feasible"] is True
    assert last["objective"] == 1.0 + 0.01 * (1337 % 7) and last["host"] == "h:node"
    steps = [row["step"] for r in reports for row in json.loads(r["new_rows"])["steps"]]
    assert steps == [1, 2, 3, 4] and last["last_step"] == 4
    assert all(r["host"] == "h:node" for r in reports)
    assert all(json.loads(r["new_rows"]) != {"steps": [], "evals": [], "probes": []} for r in reports[1:-1])
    assert 0.0 < last["wall_s"] < 60.0
    assert (trial_dir / "cwd").read_text() == str(trial_dir)  # the worker runs in its trial's folder
    trial = json.loads((trial_dir / "trial.json").read_text())
    assert trial["config"]["model"]["crawler_loops"] == 2 and trial["params"] == {"model.crawler_loops": 2}
    assert (trial["number"], trial["attempt"], trial["sweep"]) == (3, 1, "t")
    assert (trial_dir / "worker.out").exists() and (trial_dir / "result.json").exists()


def test_a_crash_is_reported_with_the_workers_last_words_and_a_retry_starts_clean(run_contract: Any) -> None:
    reports, trial_dir = run_contract("ok", number=5, attempt=0)
    (trial_dir / "stale").write_text("from an earlier attempt")
    reports, trial_dir = run_contract("crash", number=5, attempt=0)
    last = reports[-1]
    assert last["status"] == "crashed" and math.isnan(last["objective"])
    assert last["reason"] == "worker exit code 1 without result.json: contract worker: simulated crash"
    assert not (trial_dir / "stale").exists()


def test_a_worker_silent_past_the_stall_limit_is_killed_and_its_trial_crashed(run_contract: Any) -> None:
    """A hung worker (a rank stuck in a collective) would hold its slot forever: with no event for
    worker.stall_seconds it is killed, its whole group with it, and the trial ends crashed with the reason."""
    started = time.time()
    reports, trial_dir = run_contract("hang", stall_s=1.0)
    last = reports[-1]
    assert time.time() - started < 60  # not the 600 s the worker would sleep
    assert (last["status"], last["reason"]) == (
        "crashed", "no event from the worker for 1 s: killed as hung (worker.stall_seconds)")
    steps = [row["step"] for r in reports for row in json.loads(r["new_rows"])["steps"]]
    assert steps == [1]  # what it did before it hung is relayed
    pid = int((trial_dir / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_slow_worker_that_keeps_writing_events_is_not_a_hung_one(run_contract: Any) -> None:
    reports, _ = run_contract("ok", stall_s=2.0, params={"train.iterations": 8, "train.max_wallclock_seconds": 6.0})
    assert reports[-1]["status"] == "ok" and reports[-1]["wall_s"] > 4.0  # 0.75 s a step: longer, never silent


def test_a_config_the_spec_cannot_build_is_a_rejected_report_without_a_worker(run_contract: Any) -> None:
    reports, trial_dir = run_contract("ok", params={"model.num_kv_heads": 3})  # a point the space allows
    assert len(reports) == 1 and reports[0]["status"] == "rejected" and reports[0]["final"] is True
    assert "num_kv_heads" in reports[0]["reason"] and not (trial_dir / "trial.json").exists()
    assert json.loads(reports[0]["new_rows"]) == {} and reports[0]["host"] == "h:node" and reports[0]["wall_s"] == 0.0


def test_every_report_names_its_attempt_so_a_late_one_from_a_retried_execution_can_be_dropped(
        run_contract: Any) -> None:
    reports, _ = run_contract("ok", attempt=2)
    assert len(reports) > 1 and [r["attempt"] for r in reports] == [2] * len(reports)
    rejected, _ = run_contract("ok", attempt=2, params={"model.num_kv_heads": 3})
    assert rejected[0]["status"] == "rejected" and rejected[0]["attempt"] == 2


def test_the_worker_reads_no_stdin_of_the_process_that_started_it(run_contract: Any) -> None:
    """A worker (or a breakpoint in it) that reads input gets end of file, never the Ray actor's stdin, where it would
    wait for ever: the trainable starts it on /dev/null, whatever its own stdin is (a pipe here)."""
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        _, trial_dir = run_contract("ok")
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    assert (trial_dir / "stdin").read_text() == os.devnull


def test_a_trial_without_a_number_runs_in_trial_zero(run_contract: Any) -> None:
    reports, trial_dir = run_contract("ok", number=None)
    assert trial_dir.name == "00000-0" and (trial_dir / "result.json").exists() and reports[-1]["status"] == "ok"


@pytest.mark.parametrize("gpus, launcher, ranks", [(2, "torchrun", 2), (2, "single", 1), (0, "torchrun", 0)])
def test_torchrun_gets_a_rank_per_gpu_and_a_single_launcher_one_process(run_contract: Any, gpus: int,
                                                                         launcher: str, ranks: int) -> None:
    run_contract("ok", gpus=gpus, launcher=launcher)
    assert run_contract.ranks == [ranks]


def test_a_worker_s_own_children_do_not_outlive_the_trial(run_contract: Any) -> None:
    reports, trial_dir = run_contract("orphan")
    child = int((trial_dir / "child_pid").read_text())
    assert reports[-1]["status"] == "ok" and wait_for(lambda: not alive(child), 5)


def test_a_trial_over_its_own_cap_is_never_the_sweeps_best_feasible_trial(run_contract: Any) -> None:
    """Walk 5, F7, end to end: a point whose quant.size_cap_bytes (20,000) is stricter than the spec's constraint
    (16,000,000) runs over it with the better BPB. Its final report, told to the sweep's searcher, must leave the
    under-cap trial the best feasible one (`sweep run`'s and `sweep status`'s best; rerun's ranking reads the same
    constraints)."""
    import optuna

    from clowncar.orchestrator.search import SweepSearch
    from clowncar.orchestrator.spec import spec_from_dict
    from clowncar.orchestrator.study_results import best_trial

    spec = spec_from_dict({"name": "t", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 2},
                           "space": {"model.crawler_loops": {"choice": [1, 2]}}})
    search = SweepSearch(spec, optuna.storages.InMemoryStorage(), 2)
    finals = {}
    for tid, mode, number in (("over", "overcap", 1), ("under", "ok", 2)):
        search.suggest(tid)
        reports, _ = run_contract(mode, number=number, params={"quant.size_cap_bytes": 20_000},
                                  constraint={"max_artifact_bytes": 16_000_000})
        finals[tid] = reports[-1]
        search.on_trial_complete(tid, reports[-1])
    over = finals["over"]
    assert over["status"] == "ok" and over["feasible"] is False and over["objective"] < finals["under"]["objective"]
    assert over["reason"] == "artifact 40000 bytes over the cap of 20000 (the trial's quant.size_cap_bytes)"
    assert over["constraint"] == 20_000.0 and finals["under"]["feasible"] is True
    best = best_trial(spec, search.study)
    assert best is not None and best["objective"] == finals["under"]["objective"]
