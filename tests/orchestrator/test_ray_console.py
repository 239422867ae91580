"""A trial whose Ray actor dies is one line on the console of `sweep run`, not Ray's ERROR traceback: the real
failure path (an embedded sweep whose trial actor is SIGKILLed), and the pieces that keep Ray's text in files."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator import ray_console
from clowncar.orchestrator.ray_console import divert_published_errors, failure_cause, last_failure

DIED = ("The actor died unexpectedly before finishing this task. The actor is dead because its worker process has "
        "died.")


@pytest.mark.slow
def test_a_killed_trial_actor_is_one_line_on_the_console_and_rays_text_is_kept(sweep_env, helpers) -> None:
    spec = sweep_env.spec("akill", overrides={"train.iterations": 40, "train.max_wallclock_seconds": 4.0},
                          space={"model.crawler_loops": {"grid": [2, 1]}}, max_failures=0, max_concurrent=1)
    t0 = time.time()
    proc = sweep_env.popen("sweep", "run", str(spec), "--num-cpus", "2")
    first = sweep_env.runs / "trials" / "akill" / "00000-0"
    if not helpers.wait_for(lambda: (first / "pid").exists(), 90):
        proc.kill()
        pytest.fail(proc.communicate()[0])
    worker = int((first / "pid").read_text())
    os.kill(json.loads((first / "trial.json").read_text())["pid"], signal.SIGKILL)  # the trial's Ray actor
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out  # the sweep went on: its other trial ran
    assert "Traceback" not in out and " ERROR " not in out and "(raylet)" not in out, out
    assert "ray.exceptions" not in out and "A worker died" not in out, out
    kept = (first / "ray_error.txt").resolve()
    assert f"trial 0 crashed: {DIED}; Ray's full error: {kept}" in out.splitlines(), out
    assert "The actor died unexpectedly" in kept.read_text()
    assert "A worker died or was killed" in (sweep_env.runs / "trials" / "akill" / "ray-errors.log").read_text()
    trials = sweep_env.store().trials_frame(sweeps="akill").set_index("number")
    assert (trials.loc[0, "status"], trials.loc[0, "reason"]) == ("crashed", DIED)
    assert trials.loc[1, "status"] == "ok"
    assert helpers.wait_for(lambda: not helpers.alive(worker), 10), "the worker outlived its actor"
    assert time.time() - t0 < 60


def test_the_last_failure_of_an_error_file_is_its_cause_or_the_exception_a_traceback_ended_with() -> None:
    actor = ("Failure # 2 (occurred at 2026-12-06_05-26-22)\nThe actor died unexpectedly before finishing this task."
             "\n\tclass_name: ImplicitFunc\n\tpid: 19611\nThe actor is dead because its worker process has died. "
             "Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits.\n")
    raised = ("Failure # 1 (occurred at 2026-12-06_05-26-20)\nray::ImplicitFunc.train() (pid=5, ip=127.0.0.1)\n"
              "Traceback (most recent call last):\n  File \"t.py\", line 1, in f\nValueError: bad " + "x" * 400)
    assert last_failure(actor) == DIED
    assert last_failure(raised + "\n" + actor) == DIED  # the last of several failures
    assert last_failure(raised) == ("ValueError: bad " + "x" * 400)[:300]
    unavailable = "The actor abc is unavailable: RpcError: Socket closed. The task may or may not have run."
    assert last_failure(f"Failure # 1 (occurred at x)\n{unavailable}\n") == unavailable  # a node that died
    assert last_failure("") == last_failure("Failure # 1 (occurred at x)\n \n") == ""


def test_a_failure_is_named_in_words_from_its_last_block_of_rays_text() -> None:
    block = "Failure # {n} (occurred at x)\n{text}\n"
    node = "The actor died because its node has died. Node Id: 5f2a\n\tclass_name: ImplicitFunc"
    lost = ("The actor 8011ab is unavailable: The actor is temporarily unavailable: RpcError: RPC error: Socket "
            "closed rpc_code: 14. The task may or may not have been executed on the actor.")
    process = "The actor died unexpectedly before finishing this task.\nThe actor is dead because its worker process has died."
    raised = "Traceback (most recent call last):\n  File \"t.py\", line 1, in f\nOSError: disk full"
    assert failure_cause(block.format(n=1, text=node)) == "its node died"
    assert failure_cause(block.format(n=1, text=lost)) == "its node died or stopped answering"
    assert failure_cause(block.format(n=1, text=process)) == "its Ray actor's process died"
    assert failure_cause(block.format(n=1, text=raised)) == "its trainable raised an error"
    assert failure_cause(block.format(n=1, text=node) + block.format(n=2, text=raised)) == (
        "its trainable raised an error")  # the last failure, not an earlier one
    assert failure_cause("") == failure_cause("Failure # 1 (occurred at x)\n \n") == "its Ray actor failed"


def test_rays_published_errors_go_to_the_file_and_worker_output_to_the_console(tmp_path: Path,
                                                                              monkeypatch: Any) -> None:
    shown: list[dict[str, Any]] = []
    printer = divert_published_errors(lambda data, ignore_prefix: shown.append(data))
    log = tmp_path / "trials" / "s" / "ray-errors.log"
    monkeypatch.setitem(ray_console._target, "path", log)
    printer({"lines": ["A worker died", "second"], "pid": "raylet", "is_err": False}, False)
    worker = {"lines": ["hello"], "pid": 42, "is_err": False}
    printer(worker, False)
    assert shown == [worker]
    assert [line.split(" ", 2)[2] for line in log.read_text().splitlines()] == ["(raylet) A worker died",
                                                                                "(raylet) second"]
    monkeypatch.setitem(ray_console._target, "path", tmp_path / "a-file" / "x.log")
    (tmp_path / "a-file").write_text("")  # cannot be a folder: the console rather than nothing
    printer({"lines": ["lost?"], "pid": "raylet"}, False)
    assert shown[-1]["lines"] == ["lost?"]


def test_quieting_sets_tunes_switch_filters_its_summary_and_wraps_rays_printer_once(tmp_path: Path,
                                                                                    monkeypatch: Any) -> None:
    import ray._private.worker as ray_worker

    monkeypatch.delenv("CLOWNCAR_DEBUG", raising=False)
    monkeypatch.delenv("TUNE_PRINT_ALL_TRIAL_ERRORS", raising=False)
    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)
    monkeypatch.setattr(logging.getLogger("ray.tune.tune"), "filters", [])
    monkeypatch.setitem(ray_console._target, "path", None)  # put back afterwards
    ray_console.quiet_ray_console(tmp_path / "a.log")
    wrapped = ray_worker.print_to_stdstream
    ray_console.quiet_ray_console(tmp_path / "b.log")
    assert ray_worker.print_to_stdstream is wrapped and wrapped.clowncar_diverted
    assert ray_console._target["path"] == tmp_path / "b.log" and os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] == "0"
    tune_log = logging.getLogger("ray.tune.tune")
    assert len(tune_log.filters) == 1
    assert not tune_log.filters[0].filter(logging.makeLogRecord({"msg": "Trials did not complete: %s"}))
    assert tune_log.filters[0].filter(logging.makeLogRecord({"msg": "Total run time: 3 s"}))


def test_tunes_warning_that_no_trial_fits_the_cluster_is_one_clowncar_line_and_its_text_goes_to_the_log(
        tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    from ray.tune.execution import insufficient_resources_manager as irm

    monkeypatch.delenv("CLOWNCAR_DEBUG", raising=False)
    monkeypatch.setattr(logging.getLogger(ray_console.INSUFFICIENT_LOGGER), "filters", [])
    monkeypatch.setitem(ray_console._target, "path", None)
    log = tmp_path / "trials" / "s" / "ray-errors.log"
    ray_console.quiet_ray_console(log)
    ray_console.quiet_ray_console(log)  # once, however often a driver quiets the console
    assert len(logging.getLogger(ray_console.INSUFFICIENT_LOGGER).filters) == 1
    # Tune's own message, built from its own parts: a 1-GPU trial after its only GPU node died
    text = ("Ignore this message if the cluster is autoscaling. " + irm.MSG_TUNE_START.format(wait_time=60)
            + irm.MSG_TUNE_INSUFFICIENT.format(asked_cpus=1.0, asked_gpus=1.0, cluster_cpus=0.0, cluster_gpus=0.0)
            + irm.MSG_TUNE_END)
    logging.getLogger(ray_console.INSUFFICIENT_LOGGER).warning(text)
    err = capsys.readouterr().err
    assert err == ("clowncar: waiting: a trial asks for 1 CPU and 1 GPU, and the cluster has 0 CPUs and 0 GPUs in "
                   f"all; the trials wait until nodes join or `clowncar sweep stop` ends the sweep (Ray's words: {log})\n")
    assert text in log.read_text() and "Ignore this message" not in err
    logging.getLogger(ray_console.INSUFFICIENT_LOGGER).warning("Ignore this message if ... (reworded by a later Ray)")
    assert capsys.readouterr().err.startswith("clowncar: waiting: no waiting trial fits the cluster's resources; ")
    assert [ray_console._count(x, "GPU") for x in ("8.0", "1.0", "0.5", "n/a")] == ["8 GPUs", "1 GPU", "0.5 GPUs",
                                                                                "n/a GPUs"]


def test_with_clowncar_debug_ray_keeps_its_console(tmp_path: Path, monkeypatch: Any) -> None:
    import ray._private.worker as ray_worker

    monkeypatch.setenv("CLOWNCAR_DEBUG", "1")
    monkeypatch.delenv("TUNE_PRINT_ALL_TRIAL_ERRORS", raising=False)
    original = ray_worker.print_to_stdstream
    monkeypatch.setattr(ray_worker, "print_to_stdstream", original)
    ray_console.quiet_ray_console(tmp_path / "a.log")
    assert ray_worker.print_to_stdstream is original and "TUNE_PRINT_ALL_TRIAL_ERRORS" not in os.environ


def test_a_cause_of_one_sentence_on_the_second_line_is_said_once_with_one_full_stop() -> None:
    text = "Failure # 1 (occurred at x)\nThe actor died unexpectedly before finishing this task.\n" \
           "The actor is dead because its worker process has died.\n"
    assert last_failure(text) == DIED  # the cause right after the first line, its own full stop not doubled
    indented = "Failure # 1 (occurred at x)\nray::ImplicitFunc.train()\n  Traceback (most recent call last):\n" \
               "    File \"t.py\", line 1\n  RuntimeError: out of memory\n"
    assert last_failure(indented) == "RuntimeError: out of memory"  # Ray indents a remote traceback


def test_a_trials_error_text_is_its_error_file_or_nothing(tmp_path: Path) -> None:
    class Trial:
        error_file: str | None = None

    trial = Trial()
    assert ray_console.error_text(trial) == "" and ray_console.error_text(object()) == ""
    trial.error_file = str(tmp_path / "error.txt")
    assert ray_console.error_text(trial) == ""  # Tune named a file it never wrote
    (tmp_path / "error.txt").write_bytes(b"Failure # 1 (occurred at x)\nbad byte \xff\n")
    assert ray_console.error_text(trial) == "Failure # 1 (occurred at x)\nbad byte \ufffd\n"


def test_every_published_batch_is_appended_with_its_time_and_rays_prefix_flag_is_kept(tmp_path: Path,
                                                                                       monkeypatch: Any) -> None:
    import re

    shown: list[tuple[dict[str, Any], bool]] = []
    printer = divert_published_errors(lambda data, ignore_prefix: shown.append((data, ignore_prefix)))
    log = tmp_path / "trials" / "s" / "ray-errors.log"
    monkeypatch.setitem(ray_console._target, "path", log)
    printer({"lines": ["first"], "pid": "raylet"}, False)
    printer({"lines": ["second"], "pid": "raylet"}, False)  # the folder exists by now
    printer({"pid": "raylet"}, False)  # a batch without lines writes nothing and does not fail
    lines = log.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["(raylet) first", "(raylet) second"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(raylet\) \w+", line) for line in lines), lines
    assert shown == []
    printer({"lines": ["out"], "pid": 7}, True)
    monkeypatch.setitem(ray_console._target, "path", tmp_path / "trials" / "s" / "ray-errors.log" / "x")
    printer({"lines": ["lost?"], "pid": "raylet"}, True)  # the file is in the way of a folder: the console
    assert [flag for _, flag in shown] == [True, True]


def test_a_long_cause_is_cut_at_300_characters_and_its_last_letters_are_kept() -> None:
    node = "Failure # 1 (occurred at x)\nThe actor is unavailable.\nThe node it ran on was marked dead: 0X.\n"
    assert last_failure(node) == "The actor is unavailable. The node it ran on was marked dead: 0X."
    long = "Failure # 1 (occurred at x)\n" + "h" * 200 + "\n" + "c" * 200 + ".\n"
    assert last_failure(long) == ("h" * 200 + " " + "c" * 200 + ".")[:300]


def test_quieting_passes_worker_output_to_rays_printer_and_survives_a_ray_without_it(tmp_path: Path,
                                                                                     monkeypatch: Any) -> None:
    import ray._private.worker as ray_worker

    monkeypatch.delenv("CLOWNCAR_DEBUG", raising=False)
    monkeypatch.setattr(logging.getLogger("ray.tune.tune"), "filters", [])
    monkeypatch.setitem(ray_console._target, "path", None)
    shown: list[dict[str, Any]] = []
    monkeypatch.setattr(ray_worker, "print_to_stdstream", lambda data, ignore_prefix: shown.append(data))
    ray_console.quiet_ray_console(tmp_path / "a.log")
    ray_worker.print_to_stdstream({"lines": ["hello"], "pid": 3}, False)
    assert shown == [{"lines": ["hello"], "pid": 3}]
    monkeypatch.delattr(ray_worker, "print_to_stdstream")  # a Ray that renamed it: nothing to divert, no failure
    ray_console.quiet_ray_console(tmp_path / "b.log")
    assert not hasattr(ray_worker, "print_to_stdstream")
