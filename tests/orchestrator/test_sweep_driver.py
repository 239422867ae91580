"""The sweep driver (`tune.run_sweep` and `_drive`) in this process, where mutmut can see it: the CLI tests run it
in child processes. One real embedded-Ray sweep of the contract worker proves the path a user's `sweep run` takes,
and its resume once the budget is spent starts no Ray at all. The failure branches (Ray does not start, the Tuner
fails, `sweep stop`, a lost lease) are driven with the fault put where it happens: `init_ray` raises, or the
Tuner's `fit` does what the fault does; everything around them (store, study, lease, searcher, callback) is real."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from clowncar.orchestrator import lease as lease_module
from clowncar.orchestrator import tune
from clowncar.orchestrator.commands import ray_shut_down
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.start import ASKED_THIS_RUN, StartFailed
from clowncar.store import open_store

from .conftest import CONTRACT, non_loopback_listeners, pids_with, reap

LOOPS = "model.crawler_loops"
ENV_SET_BY_THE_DRIVER = ("TUNE_DISABLE_SIGINT_HANDLER", "RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
                         "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A store, a runs dir and a Ray temp dir of this test's own; the contract worker registered (its entry point
    lies in benchmarks/); the environment the driver sets put back afterwards."""
    for key in ENV_SET_BY_THE_DRIVER:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.syspath_prepend(str(CONTRACT))
    ray_tmp = tempfile.mkdtemp(prefix="rd", dir="/tmp")  # short: Ray's socket paths are limited to ~107 bytes
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(CONTRACT), os.environ.get("PYTHONPATH", "")]))
    ASKED_THIS_RUN.clear()
    yield {"url": f"sqlite:///{tmp_path / 'store.db'}", "runs": tmp_path / "runs", "ray_tmp": ray_tmp}
    ray_shut_down()
    reap(ray_tmp)
    shutil.rmtree(ray_tmp, ignore_errors=True)


def spec(**fields: Any) -> Any:
    return spec_from_dict({
        "name": "drv", "preset": "tiny-cpu", "sampler": "grid",
        "overrides": {"data.dataset": "ok", "train.iterations": 3, "train.max_wallclock_seconds": 0.3},
        "space": {LOOPS: {"grid": [1, 2, 3]}}, "resources": {"cpus": 1}, "max_concurrent": 2, "max_failures": 0,
        "worker": {"module": "contract_worker"}, **fields})


def options(env: dict[str, Any], **fields: Any) -> tune.RunOptions:
    return tune.RunOptions(**{"store_url": env["url"], "runs_dir": env["runs"], "num_cpus": 2, "show": False,
                              **fields})


def sweep_row(env: dict[str, Any], name: str = "drv") -> dict[str, Any]:
    with open_store(env["url"], create=False) as st:
        row = st.get_sweep(name)
    assert row is not None
    return row


def statuses(env: dict[str, Any], name: str = "drv") -> list[str]:
    with open_store(env["url"], create=False) as st:
        return sorted(status for _, status in st.trial_states(name).values())


def test_an_embedded_sweep_runs_every_point_on_loopback_and_its_resume_starts_no_ray(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    listening: list[str] = []
    real_tuner = tune._tuner

    def tuner_while_ray_runs(*args: Any) -> Any:  # Ray is up here: what does it listen on?
        listening.extend(non_loopback_listeners(set(pids_with(env["ray_tmp"]))))
        os.write(2, b"[2026-12-07 12:00:00,000 E 1 2] core_worker.cc:1: a line of Ray's C++ code\n")  # on fd 2
        return real_tuner(*args)

    monkeypatch.setattr(tune, "_tuner", tuner_while_ray_runs)
    out = tune.run_sweep(spec(enqueue=[{LOOPS: 2, "train.seed": 5}]), options(env, show=True))
    assert listening == []
    assert "done 4/4 (ok 4, failed 0, " in capsys.readouterr().out  # the progress line, as it ends
    assert out["sweep"] == "drv" and out["asked_this_run"] == 4 and out["interrupted"] is False
    assert out["optuna_states"] == {"COMPLETE": 4}
    assert out["ended"] == "all 4 distinct trials started: 4 finished, 0 running"
    # the contract worker's objective is 1 + 0.1 * |loops - 2| + 0.01 * (seed % 7): loops 2 at the preset's seed
    # 1337 (1.00) beats the enqueued loops 2 at seed 5 (1.05)
    assert out["best"]["params"] == {LOOPS: 2} and out["best"]["objective"] == pytest.approx(1.0)
    assert 0 < out["fit_seconds"] < 120
    assert sweep_row(env)["status"] == "done" and sweep_row(env)["reason"] is None
    assert statuses(env) == ["ok"] * 4
    assert ASKED_THIS_RUN["drv"] == 4
    study = optuna.load_study(study_name="drv", storage=env["url"])
    assert study.trials[0].value == pytest.approx(1.05)  # the enqueued point was asked first, at its own seed
    # the driver's own environment: Tune's SIGINT handler off, its auto loggers off (and their warning filtered)
    assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1" and os.environ["RAY_AIR_NEW_OUTPUT"] == "0"
    assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # embedded: loopback only
    drop = logging.getLogger("ray.tune.analysis.experiment_analysis").filters
    assert any(isinstance(f, tune._NoResultFilesWarning) for f in drop)
    assert not list((env["runs"] / "tune" / "drv").rglob("progress.csv"))  # no result files written
    ray_shut_down()  # ends the diversion of fd 2: its router has written what it got
    assert "a line of Ray's C++ code" in (env["runs"] / "trials" / "drv" / "ray-errors.log").read_text()
    monkeypatch.setattr(tune, "init_ray", lambda opts: pytest.fail("a sweep with no budget left started Ray"))
    again = tune.run_sweep(spec(enqueue=[{LOOPS: 2, "train.seed": 5}]), options(env, resume=True))
    assert again["asked_this_run"] == 0 and again["ended"].startswith("all 4 distinct trials started")
    assert "fit_seconds" not in again and "interrupted" not in again
    assert sweep_row(env)["status"] == "done"
    assert len(optuna.load_study(study_name="drv", storage=env["url"]).trials) == 4  # nothing enqueued twice


class Fit:
    """A Tuner whose `fit` does what a fault does, with the driver's real searcher, callback and remaining count."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
        self.action, self.seen = action, {}
        monkeypatch.setattr(tune, "init_ray", lambda opts: None)  # no Ray: nothing here needs it
        monkeypatch.setattr(tune, "_tuner", self.tuner)

    def tuner(self, spec: Any, opts: Any, searcher: Any, callback: Any, remaining: int, *rest: Any) -> Any:
        self.seen.update(searcher=searcher, callback=callback, remaining=remaining)
        return self

    def fit(self) -> None:
        self.action(self.seen)


def test_ray_that_does_not_start_fails_the_start_in_one_line_and_marks_the_sweep_failed(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ray(opts: Any) -> None:
        raise RuntimeError("Failed to start the GCS\nsecond line")

    monkeypatch.setattr(tune, "init_ray", no_ray)
    ASKED_THIS_RUN["drv"] = 7  # an earlier run of it in this process: not this run's count
    with pytest.raises(StartFailed) as err:
        tune.run_sweep(spec(), options(env))
    assert str(err.value).startswith("sweep drv did not start: Ray did not start: RuntimeError: Failed to start the "
                                     "GCS; it is marked failed")
    row = sweep_row(env)
    assert (row["status"], row["reason"]) == ("failed", "Ray did not start: RuntimeError: Failed to start the GCS")
    assert "drv" not in ASKED_THIS_RUN  # it never reached the sweep's run


def test_a_tuner_that_fails_marks_the_sweep_failed_with_its_reason_and_raises(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(seen: dict[str, Any]) -> None:
        raise RuntimeError("the trial runner died\nat step 3")

    fit = Fit(monkeypatch, fails)
    with pytest.raises(RuntimeError, match="the trial runner died"):
        tune.run_sweep(spec(), options(env))
    row = sweep_row(env)
    assert (row["status"], row["reason"]) == ("failed", "RuntimeError: the trial runner died")
    assert fit.seen["remaining"] == 3 and ASKED_THIS_RUN["drv"] == 0


def test_a_store_that_is_away_is_waited_for_as_long_as_the_option_says_once_the_sweep_runs(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def windows(seen: dict[str, Any]) -> None:
        seen["store_s"] = seen["callback"].store.retry_seconds
        seen["study_s"] = seen["searcher"].study._storage._backend.retry_seconds  # Optuna caches over ours

    fit = Fit(monkeypatch, windows)
    out = tune.run_sweep(spec(), options(env, store_retry_s=7.5))
    assert (fit.seen["store_s"], fit.seen["study_s"]) == (7.5, 7.5)
    assert sweep_row(env)["status"] == "done" and out["interrupted"] is False


def test_sweep_stop_closes_the_sweep_as_stopped_not_done(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    def stopped(seen: dict[str, Any]) -> None:
        seen["searcher"].stopping.set()  # as `sweep stop` (SIGTERM to a job's driver) or the head's stop does

    Fit(monkeypatch, stopped)
    out = tune.run_sweep(spec(), options(env))
    assert sweep_row(env)["status"] == "stopped"
    assert out["interrupted"] is False  # no signal came to this process


def test_a_signal_during_the_sweep_stops_it_and_says_it_was_interrupted(env: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    seen_stopping: list[bool] = []

    def signalled(seen: dict[str, Any]) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises KeyboardInterrupt here
        finally:
            seen_stopping.append(seen["searcher"].stopping.is_set())

    Fit(monkeypatch, signalled)
    with pytest.raises(KeyboardInterrupt):
        tune.run_sweep(spec(), options(env))
    assert seen_stopping == [True]  # the searcher starts no more trials
    row = sweep_row(env)
    assert (row["status"], row["reason"]) == ("stopped", None)
    assert ASKED_THIS_RUN["drv"] == 0


def test_a_second_signal_during_the_clean_up_says_what_the_clean_up_does_and_lets_it_finish(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import signal

    def signalled_twice(seen: dict[str, Any]) -> None:
        callback = seen["callback"]
        close = callback.close

        def impatient_close() -> None:  # the user presses Ctrl-C again as the driver closes the sweep
            os.kill(os.getpid(), signal.SIGINT)
            close()

        callback.close = impatient_close
        callback.tally.running.add("a trial")  # one trial the store holds as running
        os.kill(os.getpid(), signal.SIGTERM)

    Fit(monkeypatch, signalled_twice)
    with pytest.raises(KeyboardInterrupt):
        tune.run_sweep(spec(), options(env))
    assert capsys.readouterr().err.splitlines() == [
        "clowncar: stopping: closing 1 running trial in the store (a few seconds); Ctrl-C again quits now and leaves "
        "it marked running until `clowncar sweep resume drv` queues it again"]
    assert sweep_row(env)["status"] == "stopped"  # the clean-up went on to its end


def test_a_driver_that_lost_its_lease_starts_no_more_trials_and_leaves_the_sweep_to_its_new_driver(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    leases: list[Any] = []

    class Recorded(lease_module.DriverLease):
        def __enter__(self) -> Any:
            leases.append(self)
            return super().__enter__()

    monkeypatch.setattr(lease_module, "DriverLease", Recorded)

    def lost(seen: dict[str, Any]) -> None:
        (lease,) = leases
        lease.lost.set()  # as the lease's heartbeat does when another driver holds the sweep
        lease.on_lost()
        seen["left"] = seen["searcher"].budget_left()
        with open_store(env["url"], create=False) as st:  # the new driver's work, which must stand
            st.set_sweep_status("drv", "running", "taken over")

    fit = Fit(monkeypatch, lost)
    tune.run_sweep(spec(), options(env))
    assert fit.seen["left"] is False
    row = sweep_row(env)
    assert (row["status"], row["reason"]) == ("running", "taken over")


def test_the_progress_line_counts_the_sweeps_trials_its_metric_and_gpu_hours_and_ray_errors_go_to_its_folder(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.orchestrator import ray_console

    def line(seen: dict[str, Any]) -> None:
        seen["line"] = seen["callback"].tally.line(1)
        seen["errors_log"] = ray_console._target["path"]

    fit = Fit(monkeypatch, line)
    tune.run_sweep(spec(resources={"cpus": 1, "gpus": 1}, objective={"metric": "val_bpb"}), options(env))
    assert fit.seen["line"].startswith("done 0/3 (ok 0, failed 0, pruned ")
    assert "best val_bpb " in fit.seen["line"] and " | GPU-h 0.000 | " in fit.seen["line"]
    assert fit.seen["errors_log"] == env["runs"].resolve() / "trials" / "drv" / ray_console.RAY_ERRORS


def test_a_cluster_driver_leaves_rays_cluster_setting_alone(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps embedded Ray on loopback, and would stop a real multi-node join."""
    Fit(monkeypatch, lambda seen: None)
    tune.run_sweep(spec(), options(env, address="127.0.0.1:6379"))
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ


def test_resume_records_a_trial_that_finished_on_disk_and_retries_a_crashed_one_only_when_asked(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    crash = spec(space={"data.dataset": {"grid": ["ok", "crash"]}})
    out = tune.run_sweep(crash, options(env))
    assert out["optuna_states"] == {"COMPLETE": 1, "FAIL": 1} and statuses(env) == ["crashed", "ok"]
    assert capsys.readouterr().out == ""  # show=False (--quiet): no progress line
    ray_shut_down()
    # as a driver killed after the ok trial's worker wrote result.json, before its outcome was stored, leaves it
    db = sqlite3.connect(env["url"].removeprefix("sqlite:///"))
    with db:
        (ok_id,) = db.execute("SELECT trial_id FROM trial_values").fetchone()
        db.execute("DELETE FROM trial_values WHERE trial_id = ?", (ok_id,))
        db.execute("DELETE FROM trial_system_attributes WHERE trial_id = ? AND key LIKE 'constraints%'", (ok_id,))
        db.execute("UPDATE trials SET state = 'RUNNING', datetime_complete = NULL WHERE trial_id = ?", (ok_id,))
        db.execute("UPDATE clowncar_attempts SET status = 'running', ended_at = NULL WHERE status = 'ok'")
    db.close()
    fit = Fit(monkeypatch, lambda seen: None)
    again = tune.run_sweep(crash, options(env, resume=True))
    assert again["reconciled"]["recorded_from_disk"] == 1 and again["reconciled"]["closed_for_rerun"] == 0
    assert statuses(env) == ["crashed", "ok"] and fit.seen == {}  # nothing left to run: no Tuner
    retried = tune.run_sweep(crash, options(env, resume=True, retry_failed=True))
    assert retried["reconciled"]["requeued_failed"] == 1 and fit.seen["remaining"] == 1


def test_a_trial_whose_actor_dies_is_retried_as_its_next_attempt_and_each_death_is_kept_with_rays_words(
        env: dict[str, Any]) -> None:
    import json
    import signal
    import threading
    import time

    from clowncar.orchestrator.ray_console import RAY_ERRORS, TRIAL_ERROR
    from clowncar.orchestrator.search import ATTEMPT

    trials = env["runs"] / "trials" / "drv"
    killed: list[int] = []

    def kill_each_attempts_actor() -> None:  # as a node that dies under the trial does, twice
        deadline = time.time() + 120
        while len(killed) < 2 and time.time() < deadline:
            attempt = trials / f"00000-{len(killed)}"
            if (attempt / "pid").is_file():  # its worker runs: trial.json names the actor that started it
                actor = json.loads((attempt / "trial.json").read_text())["pid"]
                os.kill(actor, signal.SIGKILL)
                killed.append(actor)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_each_attempts_actor, daemon=True)
    killer.start()
    out = tune.run_sweep(spec(space={LOOPS: {"grid": [2]}}, max_failures=1,
                              overrides={"data.dataset": "hang", "train.iterations": 3}), options(env))
    killer.join(5)
    assert len(killed) == 2 and out["optuna_states"] == {"FAIL": 1}
    from clowncar.orchestrator.record import trial_uid

    with open_store(env["url"], create=False) as st:
        attempts = st.get_trial(trial_uid("drv", 0))["attempts"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(0, "crashed"), (1, "crashed")]
    assert attempts[0]["reason"].endswith("; Tune retried it as attempt 1") and attempts[1]["reason"]
    study = optuna.load_study(study_name="drv", storage=env["url"])
    assert study.trials[0].user_attrs[ATTEMPT] == 1  # the study names the retry, so a resume resumes that one
    assert "trial 0, failure 1:" in (trials / RAY_ERRORS).read_text()  # the first death: the sweep's log
    assert (trials / "00000-1" / TRIAL_ERROR).read_text().strip()  # the last: the attempt's own folder


def test_a_trial_asha_stops_is_stored_pruned_with_the_reason(env: dict[str, Any]) -> None:
    # one trial at a time, the fast learner (loops 2) before the slow one (loops 1), as queued (a rerun's child is
    # such a queue): at the rung of step 3 the slow one is the worse half, whatever the timing; a constant LR
    # allows rungs before the end. Loops 2 is tiny-cpu's own config, the empty space's one point: such a queue
    # ended at once, both trials left waiting, as 'every distinct config of the search space has run' (fixed
    # 2026-12-07, suggest.DistinctAsk.exhausted)
    asha = spec(space={}, sampler="random", enqueue=[{LOOPS: 2}, {LOOPS: 1}], max_concurrent=1,
                overrides={"data.dataset": "ok", "train.iterations": 12, "train.max_wallclock_seconds": 1.2,
                           "train.warmdown_iters": 0},
                scheduler={"type": "asha", "metric": "train_loss", "grace_period": 3, "reduction_factor": 2})
    out = tune.run_sweep(asha, options(env))
    assert out["optuna_states"] == {"COMPLETE": 1, "PRUNED": 1}
    from clowncar.orchestrator.record import trial_uid

    with open_store(env["url"], create=False) as st:
        pruned = [a for n in (0, 1) for a in st.get_trial(trial_uid("drv", n))["attempts"] if a["status"] != "ok"]
    assert [(a["status"], a["reason"]) for a in pruned] == [("pruned", "stopped early by ASHA")]


def test_a_resume_interrupted_while_ray_starts_leaves_a_stopped_sweep_stopped(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while Ray started for `sweep resume` of a stopped sweep marked it `failed (interrupted while
    starting)`: exit 130 says it can be resumed, and nothing of it changed. A first run interrupted so is still
    marked failed (README: the same command starts it again)."""
    from clowncar.orchestrator.start import interrupted_line

    def stopped(seen: dict[str, Any]) -> None:
        seen["searcher"].stopping.set()

    Fit(monkeypatch, stopped)
    tune.run_sweep(spec(), options(env))
    with open_store(env["url"], create=False) as st:  # trial 0 finished before the stop
        st.start_trial("drv", "drv/0", 0, 0, {"model": {"crawler_loops": 1}}, 1337, "node-a")
        st.finish_trial("drv/0", 0, "ok", None, {})
    assert (sweep_row(env)["status"], sweep_row(env)["reason"]) == ("stopped", None)

    def interrupted(opts: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "init_ray", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune.run_sweep(spec(), options(env, resume=True))
    assert (sweep_row(env)["status"], sweep_row(env)["reason"]) == ("stopped", None)
    assert interrupted_line(env["url"], "drv") == ("sweep drv interrupted before any trial of this run started; "
                                                   "continue it with `clowncar sweep resume drv`")
    with pytest.raises(KeyboardInterrupt):  # a first run of another name: marked failed, as before
        tune.run_sweep(spec(name="new"), options(env))
    assert (sweep_row(env, "new")["status"], sweep_row(env, "new")["reason"]) == (
        "failed", "interrupted while starting")


def test_a_signal_whose_interrupt_was_lost_in_rays_start_stops_the_sweep_before_its_first_trial(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler records a Ctrl-C before it raises, and Python drops a KeyboardInterrupt raised inside a weakref
    callback or a `__del__` (seen once in a walk: `clowncar demo` ran to the end and exited 0). The start reads the
    record: no trial runs, and the sweep is left as an interrupted start is."""
    import threading

    came = threading.Event()

    def ray_start_whose_interrupt_was_dropped(opts: Any) -> None:
        came.set()  # what `interrupt_on_signals`' handler did before its raise was lost

    fit = Fit(monkeypatch, lambda seen: pytest.fail("a trial ran after the Ctrl-C"))
    monkeypatch.setattr(tune, "init_ray", ray_start_whose_interrupt_was_dropped)
    with pytest.raises(KeyboardInterrupt):
        tune.run_sweep(spec(), options(env, signalled=came))
    assert (sweep_row(env)["status"], sweep_row(env)["reason"]) == ("failed", "interrupted while starting")
    assert fit.seen["remaining"] > 0  # it got as far as the tuner, which never ran
