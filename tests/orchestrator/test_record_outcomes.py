"""The store callback's outcomes and lines that mutation testing found unpinned (record.py): when the progress line
prints under the 10 s rule, what the ETA counts of a trial the callback started, what a finished trial leaves in
the tally, a failure's line reaching a pipe at once, Ray's text of a failure replacing a stale copy, the reason of
a retried trial Ray said nothing about, a retry stopped before it started, an oom the searcher decided, the GPU
time of a trial Tune gave up on, and a pickled callback without the searcher's hook. Driven as Tune drives it, with Ray Tune's Trial objects and a real SQLite store, without Ray."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator.record import StoreCallback, Tally
from clowncar.orchestrator.spec import SweepSpec, spec_from_dict
from clowncar.store import Store, open_store

KILL = (Path(__file__).parent / "assets" / "ray_oom_kill_error.txt").read_text()
"""Tune's error.txt of a trial whose actor Ray's memory monitor killed (see test_ray_oom.py)."""


def _spec(gpus: int = 0) -> SweepSpec:
    return spec_from_dict({"name": "out", "preset": "tiny-cpu", "space": {"model.crawler_loops": {"grid": [1, 2]}},
                           "sampler": "grid", "resources": {"cpus": 1, "gpus": gpus}, "max_concurrent": 2,
                           "max_failures": 1})


def _trial(tid: str, number: int, error_file: Path | None = None) -> Any:
    from ray.tune.experiment import Trial

    class FailedTrial(Trial):
        @property
        def error_file(self) -> str | None:
            return str(error_file) if error_file is not None else None

    t = FailedTrial("clowncar_trial", config={"_cc": {"number": number, "attempt": 0}}, trial_id=tid, stub=True)
    t.run_metadata.num_failures = 1  # Tune counts the failure before it calls on_trial_recover / on_trial_error
    return t


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    st.create_or_get_sweep("out", {"name": "out"})
    yield st
    st.close()




def _printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The progress lines printed since the last call, as their counts (what changed)."""
    return [line.split(" | best")[0] for line in capsys.readouterr().out.splitlines()]


def test_news_waits_for_more_than_ten_seconds_but_an_outcome_prints_at_once(
        store: Store, clock: list[float], capsys: pytest.CaptureFixture[str]) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=2, started=1000.0), show=True)
    a, b = _trial("a", 0), _trial("b", 1)
    cb.on_trial_result(1, [], a, {"new_rows": "{}"})
    assert _printed(capsys) == ["done 0/2 (ok 0, failed 0, pruned 0, stopped 0) | running 1"]
    clock[0] += 5.0
    cb.on_trial_result(1, [], b, {"new_rows": "{}"})  # news, 5 s after the last line: it waits
    clock[0] += 5.0
    cb.on_trial_result(2, [], b, {"new_rows": "{}"})  # 10 s: still waits
    assert _printed(capsys) == []
    clock[0] += 0.5
    cb.on_trial_result(3, [], b, {"new_rows": "{}"})  # 10.5 s: the news is printed
    assert _printed(capsys) == ["done 0/2 (ok 0, failed 0, pruned 0, stopped 0) | running 2"]
    clock[0] += 1.0
    cb.on_tell("a", {}, "pruned")  # an outcome is printed at once, 1 s after the last line
    assert _printed(capsys) == ["done 1/2 (ok 0, failed 0, pruned 1, stopped 0) | running 1"]
    clock[0] += 1.0
    cb.on_trial_result(4, [], b, {"final": True, "status": "ok", "objective": None, "feasible": False,
                                  "wall_s": 12.0})
    assert _printed(capsys) == []  # the final report is news, 1 s after the last line: Tune's completion prints it
    cb.on_trial_complete(4, [], b)
    assert _printed(capsys) == ["done 2/2 (ok 1, failed 0, pruned 1, stopped 0) | running 0"]


def test_the_eta_counts_what_a_trial_the_callback_started_has_run(store: Store, clock: list[float]) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=1, started=1000.0, walls=[20.0]), show=False)
    cb.on_trial_result(1, [], _trial("a", 0), {"new_rows": "{}"})
    clock[0] += 16.0
    assert cb.tally.line(2).endswith("| 16s | ETA 2s")  # (20 s - 16 s run) over 2 slots


def test_the_eta_is_overdue_only_below_half_a_second(clock: list[float]) -> None:
    tally = Tally(total=2, started=1000.0, by_status={"ok": 1}, walls=[10.0], running={"a"},
                  running_since={"a": 991.0})
    assert tally.line(1).endswith("| ETA 1s")
    tally.running_since["a"] = 990.5
    assert tally.line(1).endswith("| ETA 0s")  # exactly half a second left: not yet overdue
    tally.running_since["a"] = 990.4
    assert "ETA overdue" in tally.line(1)


def test_a_finished_trial_leaves_nothing_in_the_running_bookkeeping(store: Store) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False)
    for tid, n in (("a", 0), ("b", 1)):
        cb.on_trial_result(1, [], _trial(tid, n), {"new_rows": "{}"})
    assert set(cb.tally.running_since) == {"a", "b"}
    cb.on_trial_result(2, [], _trial("a", 0), {"final": True, "status": "ok", "wall_s": 3.0})
    cb.on_tell("b", {}, "pruned")
    assert cb.tally.running == set() and cb.tally.running_since == {}


def test_a_failures_line_reaches_a_pipe_at_once(store: Store, tmp_path: Path, pipe: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    err = tmp_path / "error.txt"
    err.write_text("Failure # 1 (occurred at 2026-01-01_00-00-00)\nValueError: boom\n")
    monkeypatch.setattr(sys, "stdout", pipe)
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False)
    t = _trial("a", 0, err)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})
    cb.on_trial_error(2, [], t)
    assert pipe.parts[0].startswith("trial 0 crashed:") and pipe.parts[-1] == "<flush>"


def test_rays_text_of_a_failure_replaces_a_stale_copy_in_the_trials_directory(store: Store, tmp_path: Path) -> None:
    err = tmp_path / "error.txt"
    err.write_text("Failure # 1 (occurred at 2026-01-01_00-00-00)\nValueError: boom\n")
    kept = tmp_path / "runs" / "trials" / "out" / "00000-0" / "ray_error.txt"
    kept.parent.mkdir(parents=True)
    kept.write_text("an earlier head's copy\n")
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False, runs_dir=tmp_path / "runs")
    t = _trial("a", 0, err)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})
    cb.on_trial_error(2, [], t)
    assert kept.read_text() == err.read_text()


def test_a_retried_trial_ray_said_nothing_about_is_crashed_in_its_own_words(store: Store, tmp_path: Path) -> None:
    blank = tmp_path / "error.txt"
    blank.write_text("\n")
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False)
    t = _trial("a", 0, blank)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})
    cb.on_trial_recover(2, [], t)
    attempt = store.get_trial("out/0")["attempts"][0]  # type: ignore[index]
    assert attempt["status"] == "crashed"
    assert attempt["reason"].endswith("(Ray: its Ray actor failed); Tune retried it as attempt 1")


def test_a_retry_stopped_before_it_started_stores_no_attempt_but_a_pruned_one_does(store: Store,
                                                                                    tmp_path: Path) -> None:
    err = tmp_path / "error.txt"
    err.write_text("Failure # 1 (occurred at 2026-01-01_00-00-00)\nValueError: boom\n")
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False)
    stopped, pruned = _trial("a", 0, err), _trial("b", 1, err)
    for t in (stopped, pruned):
        cb.on_trial_result(1, [], t, {"new_rows": "{}"})
        cb.on_trial_recover(2, [], t)
    cb.on_tell("a", {}, "stopped")
    cb.on_tell("b", {}, "pruned")
    stored = {n: [(a["attempt"], a["status"]) for a in store.get_trial(f"out/{n}")["attempts"]]  # type: ignore[index]
              for n in (0, 1)}
    assert stored == {0: [(0, "crashed")], 1: [(0, "crashed"), (1, "pruned")]}
    assert cb.tally.by_status == {"stopped": 1, "pruned": 1}


def test_an_oom_the_searcher_decided_is_stored_with_rays_short_reason(store: Store, tmp_path: Path) -> None:
    # the searcher's tell comes before on_trial_error: a head that dies between the two keeps this write
    err = tmp_path / "error.txt"
    err.write_text(KILL)
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False)
    cb.on_trial_result(1, [], _trial("a", 0, err), {"new_rows": "{}"})
    cb.on_tell("a", {}, "oom")
    attempt = store.get_trial("out/0")["attempts"][0]  # type: ignore[index]
    assert (attempt["status"], attempt["reason"]) == ("oom", cb.error_outcome("a")[1])
    assert attempt["reason"].startswith("killed by Ray's memory monitor: node 127.0.0.1 low on memory")


def test_a_trial_tune_gave_up_on_is_billed_its_gpu_time_at_once(store: Store, tmp_path: Path,
                                                                  clock: list[float]) -> None:
    err = tmp_path / "error.txt"
    err.write_text("Failure # 1 (occurred at 2026-01-01_00-00-00)\nValueError: boom\n")
    cb = StoreCallback(_spec(gpus=2), store, Tally(total=2, gpus=2), show=False)
    t = _trial("a", 0, err)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})
    clock[0] += 30.0
    cb.on_trial_error(2, [], t)
    assert cb.tally.gpu_seconds == 60.0 and cb.billed_from == {}


def test_a_pickled_callback_leaves_out_the_searchers_retry_hook(store: Store) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False)
    cb.on_retry = lambda trial_id, attempt: None  # the searcher's bound method: its study does not pickle
    copy = pickle.loads(pickle.dumps(cb))
    assert copy.on_retry is None and cb.on_retry is not None


def test_a_retry_counts_in_the_eta_from_its_own_start(store: Store, tmp_path: Path, clock: list[float]) -> None:
    # the execution Tune retried had run 15 s; its retry starts afresh, so its ETA is a whole mean trial time
    blank = tmp_path / "error.txt"
    blank.write_text("\n")
    cb = StoreCallback(_spec(), store, Tally(total=1, started=1000.0, walls=[20.0]), show=False)
    t = _trial("a", 0, blank)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})
    clock[0] += 15.0
    cb.on_trial_recover(2, [], t)
    t.config["_cc"]["attempt"] = 1
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})  # the retry's first report starts its attempt
    assert cb.tally.running_since["a"] == 1015.0 and cb.tally.line(1).endswith("| ETA 20s")
