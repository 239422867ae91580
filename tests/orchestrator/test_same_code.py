"""The driver's check that each trial's worker ran its clowncar code (walk 2, finding 3): a worker that imports
another checkout, or the same commit with or without uncommitted changes, gets one warning line per sweep; the
callback is driven as Tune drives it, with Ray Tune's own Trial objects."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator.same_code import SameCode, worker_code
from clowncar.version import checkout_commit

DRIVER = "ae9f46f0" + "1" * 32
OTHER = "219f32ff" + "2" * 32


def _result(commit: str | None, dirty: bool | None) -> dict[str, Any]:
    return {"status": "ok", "q_val_bpb": 2.33, "provenance": {"git_commit": commit, "git_dirty": dirty}}


def _trial(number: int) -> Any:
    from ray.tune.experiment import Trial

    return Trial("clowncar_trial", config={"_cc": {"number": number, "attempt": 0}}, trial_id=f"t{number}", stub=True)


def _final(result: dict[str, Any] | None, host: str = "node-2:abc") -> dict[str, Any]:
    return {"final": True, "status": "ok", "host": host,
            "result_json": json.dumps(result) if result is not None else ""}


@pytest.mark.parametrize(("driver", "worker", "warned"), [
    ((DRIVER, False), (DRIVER, False), False),  # the driver's code
    ((DRIVER, True), (DRIVER, True), False),  # both dirty at one commit: cannot be told apart (the report cautions)
    ((DRIVER, False), (DRIVER, None), False),  # a worker that could not tell its dirty flag: as clean
    ((DRIVER, False), (OTHER, False), True),  # another checkout
    ((DRIVER, True), (OTHER, True), True),
])
def test_a_worker_on_another_commit_is_named_and_one_on_the_drivers_is_not(
        driver: tuple[str, bool], worker: tuple[str, bool | None], warned: bool) -> None:
    same = SameCode(driver)
    line = same.check(_result(*worker), 3, "node-2:abc")
    assert (line is not None) == warned and same.warned == warned


def test_one_clean_tree_and_one_dirty_tree_of_one_commit_ran_different_code() -> None:
    for driver_dirty, worker_dirty in ((False, True), (True, False)):
        line = SameCode((DRIVER, driver_dirty)).check(_result(DRIVER, worker_dirty), 0, None)
        assert line is not None and " with uncommitted changes" in line
    assert SameCode((DRIVER, False)).check(_result(DRIVER, True), 4, "node-2:abc") == (
        "warning: trial 4 ran clowncar ae9f46f01111 with uncommitted changes on node-2:abc, the driver runs "
        "ae9f46f01111: the workers import another copy of clowncar (check PYTHONPATH, or the image, on the Ray "
        "nodes); each run's commit is in the store, and `clowncar analyze` cautions when the runs span several "
        "commits. Said once per sweep")


def test_a_side_without_a_checkout_is_not_compared() -> None:
    assert SameCode(None).check(_result(OTHER, False), 0, None) is None  # the driver runs an installed package
    unusable = ({"provenance": {"git_commit": "", "git_dirty": True}}, {"provenance": {"git_commit": 40}})
    for result in (_result(None, None), {"status": "ok"}, {"provenance": "?"}, None, *unusable):
        assert SameCode((DRIVER, False)).check(result, 0, None) is None
    assert worker_code(_result(OTHER, 1)) == (OTHER, True)


def test_a_trial_on_an_unknown_host_is_named_without_a_place() -> None:
    assert SameCode((DRIVER, False)).check(_result(OTHER, False), 6, None) == (
        "warning: trial 6 ran clowncar 219f32ff2222, the driver runs ae9f46f01111: the workers import another copy "
        "of clowncar (check PYTHONPATH, or the image, on the Ray nodes); each run's commit is in the store, and "
        "`clowncar analyze` cautions when the runs span several commits. Said once per sweep")


def test_only_the_first_trial_on_other_code_gets_the_warning_line() -> None:
    same = SameCode((DRIVER, False))
    assert same.check(_result(OTHER, False), 1, "node-2:abc") is not None
    assert same.check(_result(OTHER, True), 2, "node-3:def") is None
    assert same.check(_result(DRIVER, True), 3, None) is None


def test_a_result_json_that_holds_no_object_is_not_compared(capsys: pytest.CaptureFixture[str]) -> None:
    same = SameCode((DRIVER, False))
    for text in ("[1, 2]", '"a string"', "7", "not json"):
        same.on_trial_result(1, [], _trial(0), {"final": True, "status": "ok", "result_json": text})
    assert capsys.readouterr().out == "" and not same.warned
    same.on_trial_result(1, [], _trial(1), _final(_result(OTHER, False)))
    assert capsys.readouterr().out.startswith("warning: trial 1 ran clowncar 219f32ff2222 on node-2:abc")


def test_the_warning_reaches_a_piped_log_even_when_the_driver_dies_right_after() -> None:
    """The driver's stdout is often a pipe to a log, block-buffered: the line is flushed as it is printed, so a
    driver killed a moment later (no exit handlers, no buffer flushed) still leaves it there. The child imports
    the same clowncar as this test (under mutation testing, the mutated one), its output buffered as a user's is."""
    import clowncar

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    code = ("import json, os, types\n"
            "from clowncar.orchestrator.same_code import SameCode\n"
            f"result = {{'final': True, 'result_json': json.dumps({_result(OTHER, False)!r})}}\n"
            f"SameCode(({DRIVER!r}, False)).on_trial_result(\n"
            "    1, [], types.SimpleNamespace(config={'_cc': {'number': 8}}), result)\n"
            "os._exit(0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**env, "PYTHONPATH": str(Path(clowncar.__file__).parents[1])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("warning: trial 8 ran clowncar 219f32ff2222, the driver runs ae9f46f01111: ")


def test_a_sweep_started_in_a_checkout_holds_that_checkouts_commit_and_dirty_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`at_sweep_start` reads the driver's checkout through `checkout_commit`, here pointed at a checkout the test
    makes (the tests may run from a copy of the code that is none: mutation testing's, an installed package)."""
    from clowncar import version

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "one")
    (tmp_path / "a.py").write_text("x = 2\n")
    monkeypatch.setattr("clowncar.orchestrator.same_code.checkout_commit",
                        functools.partial(version.checkout_commit, tmp_path))
    assert SameCode.at_sweep_start().driver == (git("rev-parse", "HEAD"), True)


def test_the_driver_prints_one_warning_line_per_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    same = SameCode((DRIVER, False))
    same.on_trial_result(1, [], _trial(0), {"step": 3, "result_json": json.dumps(_result(OTHER, False))})
    same.on_trial_result(1, [], _trial(0), _final(_result(DRIVER, False)))
    assert capsys.readouterr().out == ""  # a progress report, then a worker on the driver's code
    same.on_trial_result(2, [], _trial(1), _final(None))  # crashed: no result.json, nothing to compare
    same.on_trial_result(3, [], _trial(2), _final(_result(OTHER, True)))
    same.on_trial_result(4, [], _trial(5), _final(_result(OTHER, False), host="node-3:def"))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(
        "warning: trial 2 ran clowncar 219f32ff2222 with uncommitted changes on node-2:abc, the driver runs "
        "ae9f46f01111: ")


def test_a_worker_of_the_drivers_checkout_records_the_code_the_driver_reads() -> None:
    """The worker's provenance and the driver's reading of one checkout agree, so a sweep from one checkout is
    never warned about (two readings of git, in two modules)."""
    from clowncar.worker.provenance import git_state

    driver = checkout_commit()
    if driver is None:
        pytest.skip("not run from a git checkout")
    commit, dirty = git_state()
    assert worker_code(_result(commit, dirty)) == driver
    assert SameCode.at_sweep_start().driver == driver
