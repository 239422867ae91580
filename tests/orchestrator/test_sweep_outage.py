"""A real sweep (embedded Ray on 127.0.0.1, the contract worker) on a PostgreSQL store whose server restarts while
trials run and report: the driver waits for it (CLOWNCAR_STORE_RETRY_SECONDS) and the sweep ends as if nothing had
happened, every trial stored once and told to the study once."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from optuna.trial import TrialState

from clowncar.store.pgserver import create_database


def running_steps(url: str) -> int:
    """Step rows stored for trials still running (0 while none runs, or when the store does not answer)."""
    from clowncar.store import open_store

    with contextlib.suppress(Exception), open_store(url, create=False) as store:
        running = set(store.trials_frame().query("status == 'running'")["trial_uid"])
        return int(store.steps_frame()["trial_uid"].isin(running).sum())
    return 0


def test_a_sweep_whose_store_restarts_while_trials_report_finishes_with_each_trial_once(
        sweep_env: Any, restartable_pg: Any, helpers: Any) -> None:
    url = create_database(restartable_pg.url, "sweep_outage").replace("postgres@", "postgres:hunter2-sweep@")
    sweep_env.env.update({"CLOWNCAR_STORE": url, "CLOWNCAR_STORE_RETRY_SECONDS": "60"})
    sweep_env.store_url = url
    spec = sweep_env.spec("restart", overrides={"train.iterations": 8, "train.max_wallclock_seconds": 4})
    proc = sweep_env.popen("sweep", "run", str(spec), "--num-cpus", "2", "--quiet")
    try:
        # a trial is running and reporting: its steps land one by one while the server is away
        assert helpers.wait_for(lambda: running_steps(url) >= 2 or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, proc.communicate()[0]
        restartable_pg.stop()
        time.sleep(3)  # the worker reports steps (and may finish) meanwhile: the driver's writes are refused
        restartable_pg.start()
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not restartable_pg.running:
            restartable_pg.start()
    assert proc.returncode == 0, out
    assert "hunter2-sweep" not in out
    # the driver said that it waited, and that the store came back (once each, whatever number of threads waited)
    assert out.count("clowncar: the store stopped answering (") == 1, out
    assert out.count("clowncar: the store answers again, after ") == 1, out
    store = sweep_env.store()
    trials = store.trials_frame()
    assert sorted(trials["number"]) == [0, 1, 2] and set(trials["status"]) == {"ok"}
    assert list(trials["attempts"]) == [1, 1, 1]
    steps = store.steps_frame()
    assert len(steps) == 24 and not steps.duplicated(["trial_uid", "step"]).any()  # 8 steps of 3 trials, once
    study = sweep_env.study("restart")
    assert sorted((t.state, t.user_attrs["clowncar_number"]) for t in study.trials) == [
        (TrialState.COMPLETE, 0), (TrialState.COMPLETE, 1), (TrialState.COMPLETE, 2)]
