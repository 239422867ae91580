"""The driver's check that each trial's worker ran its clowncar code (walk 2, finding 3): a worker that imports
another checkout, or the same commit with or without uncommitted changes, gets one warning line per sweep; the
callback is driven as Tune drives it, with Ray Tune's own Trial objects."""

from __future__ import annotations

import json
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
    for result in (_result(None, None), {"status": "ok"}, {"provenance": "?"}, None):
        assert SameCode((DRIVER, False)).check(result, 0, None) is None
    assert worker_code(_result(OTHER, 1)) == (OTHER, True)


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
