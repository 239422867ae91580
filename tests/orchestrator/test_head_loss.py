"""A sweep whose Ray head goes away under it (the head's GCS and raylet SIGKILLed, as when its machine dies): the
driver ends with one clowncar line and exit 1 before Ray's C++ ends it, no Ray C++ line on the console, and the
lease given up, so that `sweep resume` can take the sweep at once (head_watch.py, native_stderr.py). The same for
embedded Ray whose GCS is killed, and the `sweep resume` that line names runs what was left.

Ray's own limit for a driver that cannot reach its GCS (RAY_gcs_rpc_server_reconnect_timeout_s, 60 s by default) is
set to RECONNECT_S for the driver here, so that the test takes seconds: on the old code Ray's C++ ended the driver
then with `rpc_client.h:204: Failed to connect to GCS within 6 seconds ... The program will terminate.` on the
console, exit 1 and no clowncar line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
RECONNECT_S = 6
RAY_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [DIWEF] \d+ \d+\] \S+:\d+:", re.M)


def _head_killed_under(driver: subprocess.Popen[str], trials: Path, running: int, kill: Callable[[], None],
                       helpers: Any) -> tuple[str, str, float]:
    """Once `running` trials of the driver's sweep have started, `kill` takes its head away: the driver's stdout,
    its stderr, and how long it ran on after the kill."""
    try:
        helpers.wait_for(lambda: len(list(trials.glob("*/pid"))) >= running or driver.poll() is not None,
                         timeout=120, every=0.2)
        if len(list(trials.glob("*/pid"))) < running or driver.poll() is not None:
            driver.kill()
            pytest.fail("no trial started: " + "".join(driver.communicate()))
        kill()
        killed = time.monotonic()
        out, err = driver.communicate(timeout=RECONNECT_S + 60)
        return out, err, time.monotonic() - killed
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()


def test_a_head_that_dies_mid_sweep_ends_the_driver_with_one_line_before_ray_does(
        sweep_env: Any, helpers: Any) -> None:
    with helpers.loopback_cluster({"num_cpus": 1}, "rh") as cluster:
        address = cluster.address
        spec = sweep_env.spec("headloss", overrides={"train.iterations": 600, "train.max_wallclock_seconds": 120})
        driver = subprocess.Popen(
            [sys.executable, "-m", "clowncar", "sweep", "run", str(spec), "--address", address, "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=sweep_env.tmp,
            env={**sweep_env.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                 "RAY_gcs_rpc_server_reconnect_timeout_s": str(RECONNECT_S)})

        def kill_head() -> None:
            # Ray's C++ lines go to the log through a pipe of the driver's own (test_native_stderr.py): its fd 2 is
            # no longer the console's
            assert os.stat(f"/proc/{driver.pid}/fd/2").st_ino != os.fstat(driver.stderr.fileno()).st_ino
            cluster.head_node.kill_gcs_server()
            cluster.head_node.kill_raylet()

        out, err, took = _head_killed_under(driver, sweep_env.runs / "trials" / "headloss", 2, kill_head, helpers)
    console = out + err
    assert driver.returncode == 1, console
    errors = [line for line in err.splitlines() if line.startswith("clowncar: error:")]
    assert errors == [
        f"clowncar: error: sweep headloss: the Ray head at {address} stopped answering "
        f"({RECONNECT_S} s without its GCS); the trials that finished are stored; once a head is back, "
        f"`clowncar sweep resume headloss --address HOST:PORT` continues the sweep"], console
    assert not RAY_LINE.search(console), console
    assert took < RECONNECT_S + 10, took
    with sweep_env.store() as store:
        assert store.get_lease("headloss") is None  # given up: a resume need not wait for it to expire
        assert store.get_sweep("headloss")["status"] == "running"  # as a SIGKILLed driver leaves it: `stalled`


def _gcs_server_of(ray_tmp: str, helpers: Any) -> int | None:
    """The gcs_server process of the embedded Ray that runs under `ray_tmp` (RAY_TMPDIR)."""
    return next((pid for pid in helpers.pids_with(ray_tmp) if "gcs_server" in (helpers.cmdline(pid) or "")), None)


def test_an_embedded_head_whose_gcs_dies_ends_the_driver_with_one_line_and_resume_finishes_the_sweep(
        sweep_env: Any, helpers: Any) -> None:
    """Embedded Ray's GCS killed under a running sweep (the kernel's OOM killer picks the biggest process it can):
    the driver says so in one line naming `sweep resume`, exit 1, and that command runs what was left, each
    trial once."""
    spec = sweep_env.spec("embedloss", overrides={"train.iterations": 60, "train.max_wallclock_seconds": 3.0})
    env = {**sweep_env.env, "RAY_gcs_rpc_server_reconnect_timeout_s": str(RECONNECT_S)}
    driver = subprocess.Popen([sys.executable, "-m", "clowncar", "sweep", "run", str(spec), "--num-cpus", "2",
                               "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=sweep_env.tmp, env=env)

    def kill_gcs() -> None:
        gcs = _gcs_server_of(str(sweep_env.ray_tmp), helpers)
        assert gcs is not None, "no embedded GCS runs the sweep"
        os.kill(gcs, 9)

    out, err, took = _head_killed_under(driver, sweep_env.runs / "trials" / "embedloss", 1, kill_gcs, helpers)
    console = out + err
    assert driver.returncode == 1, console
    assert [line for line in err.splitlines() if line.startswith("clowncar: error:")] == [
        f"clowncar: error: sweep embedloss: the embedded Ray head (its GCS) stopped answering ({RECONNECT_S} s "
        "without its GCS); the trials that finished are stored; once a head is back, "
        "`clowncar sweep resume embedloss` continues the sweep"], console
    assert not RAY_LINE.search(console), console
    assert took < RECONNECT_S + 10, took

    r = sweep_env.cli("sweep", "resume", "embedloss", "--num-cpus", "2", "--quiet", extra=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with sweep_env.store() as store:
        frame = store.trials_frame(sweeps="embedloss")
        assert store.get_sweep("embedloss")["status"] == "done"
    # each grid point once, all finished; not the numbers themselves: a trial Optuna had asked for when the GCS
    # died, but that never reached a worker, is re-queued under the next number (a gap, as after any re-queue)
    assert sorted(frame["model.crawler_loops"]) == [1, 2, 3] and set(frame["status"]) == {"ok"}, frame
    assert frame["number"].is_unique, frame
    # nothing of either embedded Ray is left running
    assert helpers.wait_for(lambda: not helpers.pids_with(str(sweep_env.ray_tmp)), 30), [
        helpers.cmdline(p) for p in helpers.pids_with(str(sweep_env.ray_tmp))]
