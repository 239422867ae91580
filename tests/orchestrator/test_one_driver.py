"""One driver per sweep, and no half sweep after a failed start: a second `sweep run` / `resume` / `rerun` /
`submit` of a sweep whose driver lives is refused with one line naming it, and the first runs every trial once;
a sweep whose Ray did not start is marked failed with the reason, and the same command then runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

pytestmark = pytest.mark.slow
HELD = re.compile(r"^clowncar: error: sweep 'twice' is being run by pid (\d+) on \S+ \(its lease runs until "
                  r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC and is renewed while that driver lives\); wait for it to "
                  r"end, or stop it first: `clowncar sweep stop twice` on its machine, or with --address "
                  r"http://HEAD:8265 for a submitted sweep$")


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _every_trial_once(env: Any, name: str, points: list[int]) -> None:
    study = env.study(name)
    states = Counter(t.state.name for t in study.trials)
    assert states == {"COMPLETE": len(points)}, states
    assert sorted(t.params["model.crawler_loops"] for t in study.trials) == points
    store = env.store()
    trials = store.trials_frame(sweeps=name)
    assert len(trials) == len(points) and set(trials["status"]) == {"ok"}
    for uid in trials["trial_uid"]:
        assert [a["status"] for a in store.get_trial(uid)["attempts"]] == ["ok"], uid
    assert len(env.worker_pids(name)) == len(points)  # each worker started once, by the one driver


def test_a_sweep_started_twice_on_one_store_runs_each_trial_once(sweep_env, helpers) -> None:
    spec = sweep_env.spec("twice", overrides={"train.iterations": 500, "train.max_wallclock_seconds": 6.0})
    first = sweep_env.popen("sweep", "run", str(spec), "--num-cpus", "2", "--quiet")
    try:
        assert helpers.wait_for(lambda: bool(sweep_env.worker_pids("twice")), 120), "no trial started"
        # All at once, while the first driver's trials run (each starts a new interpreter: seconds apiece).
        second = {
            "run": ("sweep", "run", str(spec), "--num-cpus", "2", "--quiet"),
            "resume": ("sweep", "resume", "twice", "--num-cpus", "2", "--quiet"),
            "rerun": ("sweep", "rerun", "twice", "--top", "1", "--seeds", "1"),
            # refused before Ray is contacted (nothing listens on port 9): the store says who drives it
            "submit": ("sweep", "submit", str(spec), "--address", "http://127.0.0.1:9", "--store",
                       sweep_env.store_url),
            "status": ("sweep", "status", "twice"),
        }
        procs = {k: subprocess.Popen([sys.executable, "-m", "clowncar", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=sweep_env.env, cwd=sweep_env.tmp)
                 for k, args in second.items()}
        done = {k: (p.communicate(timeout=240), p.returncode) for k, p in procs.items()}
        first_still_ran = first.poll() is None
    finally:
        out = first.communicate(timeout=240)[0]
    assert first.returncode == 0, out
    status = done.pop("status")
    assert f"driver: pid {first.pid} on " in status[0][0], status
    for command, ((stdout, stderr), code) in done.items():
        assert code == 2, (command, stdout, stderr)
        match = HELD.match(_one_line(stderr))
        assert match and int(match.group(1)) == first.pid, (command, stderr)
    assert first_still_ran, "the first driver ended before the others were refused: the test proves nothing"
    _every_trial_once(sweep_env, "twice", [1, 2, 3])
    assert sweep_env.store().get_lease("twice") is None  # the driver gave its lease back when it ended


def test_a_sweep_whose_ray_did_not_start_is_marked_failed_and_the_same_command_runs_it(sweep_env) -> None:
    spec = sweep_env.spec("nostart")
    not_a_dir = sweep_env.tmp / "ray-tmp-is-a-file"
    not_a_dir.write_text("")
    r = sweep_env.cli("sweep", "run", str(spec), "--num-cpus", "2", "--quiet", extra={"RAY_TMPDIR": str(not_a_dir)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert _one_line(r.stderr) == (
        f"clowncar: error: sweep nostart did not start: Ray did not start: NotADirectoryError: [Errno 20] Not a "
        f"directory: '{not_a_dir}/ray'; it is marked failed, and the same command starts it again")
    sweep = sweep_env.store().get_sweep("nostart")
    assert sweep["status"] == "failed" and sweep["reason"].startswith("Ray did not start: NotADirectoryError")
    status = sweep_env.cli("sweep", "status", "nostart")
    assert status.stdout.startswith("sweep nostart: failed (Ray did not start: NotADirectoryError"), status.stdout
    assert sweep_env.store().get_lease("nostart") is None

    again = sweep_env.cli("sweep", "run", str(spec), "--num-cpus", "2", "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    _every_trial_once(sweep_env, "nostart", [1, 2, 3])
    sweep = sweep_env.store().get_sweep("nostart")
    assert (sweep["status"], sweep["reason"]) == ("done", None)
