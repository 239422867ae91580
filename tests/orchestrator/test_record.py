"""The head's Tune callback, driven the way Tune drives it, with Ray Tune's own Trial objects and a real SQLite
store: a trial is started once, its rows land as they come, its final report writes the outcome and the
artifact, outcomes decided by the searcher carry their reasons, and the progress line counts what happened."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator.record import StoreCallback, Tally, trial_uid
from clowncar.orchestrator.spec import SweepSpec, spec_from_dict
from clowncar.store import Store, open_store


def _spec(mode: str = "min", gpus: float = 2.0) -> SweepSpec:
    return spec_from_dict({"name": "rec", "preset": "tiny-cpu", "space": {"model.crawler_loops": {"grid": [1, 2, 3]}},
                           "sampler": "grid", "objective": {"metric": "q_val_bpb", "mode": mode},
                           "resources": {"cpus": 1, "gpus": gpus}, "max_concurrent": 2})


def _trial(tid: str, number: int, attempt: int = 0, **params: Any) -> Any:
    from ray.tune.experiment import Trial

    return Trial("clowncar_trial", config={"_cc": {"number": number, "attempt": attempt}, **params}, trial_id=tid,
                 stub=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    st.create_or_get_sweep("rec", {"name": "rec"})
    yield st
    st.close()


def _attempt(store: Store, uid: str) -> dict[str, Any]:
    """The trial's last attempt as `store show` reads it (status, reason, node, result, row counts)."""
    trial = store.get_trial(uid)
    assert trial is not None, uid
    return trial["attempts"][-1]


def _final(status: str, objective: float | None = None, feasible: bool = True, wall_s: float = 0.0,
           result: dict | None = None, reason: str = "") -> dict[str, Any]:
    return {"final": True, "status": status, "reason": reason, "objective": objective, "feasible": feasible,
            "wall_s": wall_s, "result_json": json.dumps(result) if result is not None else None, "host": "h1"}


def test_a_trial_is_started_once_and_its_rows_land_as_they_come(store: Store) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=3), show=False)
    t = _trial("a", 4, attempt=1, **{"model.crawler_loops": 2})
    steps = [{"step": i, "kind": "C", "train_loss": 5.0 - i} for i in (1, 2)]
    cb.on_trial_result(1, [], t, {"new_rows": json.dumps({"steps": steps}), "host": "node-1"})
    cb.on_trial_result(2, [], t, {"new_rows": json.dumps({"steps": [{"step": 3, "kind": "N", "train_loss": 1.5}],
                                                          "evals": [{"step": 3, "val_bpb": 2.5}],
                                                          "probes": [{"step": 3, "loss_c": 1.0, "loss_n": 1.1}]})})
    trial = store.get_trial("rec/4")
    assert trial is not None and trial["number"] == 4 and trial["config"]["model"]["crawler_loops"] == 2
    (attempt,) = trial["attempts"]
    assert (attempt["attempt"], attempt["status"], attempt["node"]) == (1, "running", "node-1")
    assert store.steps_frame("rec")["step"].tolist() == [1, 2, 3]
    assert store.evals_frame("rec")["val_bpb"].tolist() == [2.5] and len(store.probes_frame("rec")) == 1
    assert cb.tally.running == {"a"} and cb.tally.done() == 0


def test_the_final_report_writes_the_outcome_the_result_and_the_artifact(store: Store, clock: list[float]) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=3), show=False)
    t = _trial("a", 0, **{"model.crawler_loops": 1})
    res = {"q_val_bpb": 2.25, "artifact_path": "/runs/rec/0/model.ptz", "artifact_file_bytes": 1234,
           "artifact_code_bytes": 99, "artifact_sha256": "ab" * 32}
    cb.on_trial_result(1, [], t, {"new_rows": "{}", "host": "h1"})  # the worker's first report
    clock[0] += 30.0
    cb.on_trial_result(2, [], t, _final("ok", 2.25, wall_s=31.0, result=res))
    attempt = _attempt(store, "rec/0")
    assert attempt["status"] == "ok" and attempt["result"]["q_val_bpb"] == 2.25 and attempt["node"] == "h1"
    art = store.artifacts_frame("rec").iloc[0]
    assert (art["path"], art["size_bytes"], art["code_bytes"], art["sha256"]) == (
        "/runs/rec/0/model.ptz", 1234, 99, "ab" * 32)
    assert cb.tally.by_status == {"ok": 1} and cb.tally.running == set() and cb.tally.walls == [31.0]
    assert cb.tally.gpu_seconds == 60.0  # 30 s from the worker's first report, on 2 GPUs (as `sweep status`)
    assert cb.tally.best == (2.25, 0, {"model.crawler_loops": 1})


def test_a_failed_final_report_keeps_its_reason_and_no_artifact(store: Store) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=3), show=False)
    cb.on_trial_result(1, [], _trial("a", 1), _final("diverged", None, feasible=False,
                                                     result={"q_val_bpb": None}, reason="loss is NaN at step 7"))
    cb.on_trial_result(1, [], _trial("b", 2), _final("error", None, result=None, reason="bad shape"))
    a, b = _attempt(store, "rec/1"), _attempt(store, "rec/2")
    assert (a["status"], a["reason"]) == ("diverged", "loss is NaN at step 7")
    assert (b["status"], b["reason"], b["result"]) == ("error", "bad shape", None)
    assert store.artifacts_frame("rec").empty and cb.tally.best is None
    assert cb.tally.by_status == {"diverged": 1, "error": 1}


@pytest.mark.parametrize(("mode", "values", "best"), [
    ("min", [2.5, 2.1, 2.3, float("nan")], (2.1, 1)), ("max", [0.5, 0.9, 0.7, float("inf")], (0.9, 1)),
])
def test_the_best_trial_is_the_best_feasible_finite_objective(store: Store, mode: str, values: list[float],
                                                              best: tuple[float, int]) -> None:
    cb = StoreCallback(_spec(mode), store, Tally(total=6), show=False)
    for i, v in enumerate(values):
        cb.on_trial_result(1, [], _trial(f"t{i}", i, lr=i), _final("ok", v, result={}))
    better_but_over_cap = 0.0 if mode == "min" else 5.0
    cb.on_trial_result(1, [], _trial("x", 9), _final("ok", better_but_over_cap, feasible=False, result={}))
    assert cb.tally.best == (best[0], best[1], {"lr": best[1]})


def test_searcher_outcomes_are_written_with_their_reasons(store: Store) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=4), show=False)
    for i, outcome in enumerate(["pruned", "stopped", "crashed"]):
        t = _trial(f"t{i}", i)
        cb.on_trial_result(1, [], t, {"new_rows": "{}"})
        cb.on_tell(f"t{i}", {"training_iteration": 3}, outcome)
    reasons = {n: _attempt(store, f"rec/{n}")["reason"] for n in range(3)}
    assert reasons == {0: "stopped early by ASHA", 1: "sweep stopped",
                       2: "trial failed after its retries (node or actor lost)"}
    assert [_attempt(store, f"rec/{n}")["status"] for n in range(3)] == ["pruned", "stopped", "crashed"]
    assert cb.tally.by_status == {"pruned": 1, "stopped": 1, "crashed": 1} and cb.tally.running == set()


def test_on_tell_leaves_finished_and_unknown_trials_alone(store: Store) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False)
    t = _trial("a", 0)
    cb.on_trial_result(1, [], t, _final("ok", 2.0, result={"q_val_bpb": 2.0}))
    cb.on_tell("a", {"final": True}, "crashed")  # the final report already said ok
    cb.on_tell("never-started", {}, "pruned")
    assert _attempt(store, "rec/0")["status"] == "ok" and cb.tally.by_status == {"ok": 1}


def test_the_progress_line_counts_outcomes_eta_and_gpu_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    import clowncar.orchestrator.record as record

    tally = Tally(total=10, started=1000.0, by_status={"ok": 3, "diverged": 1, "oom": 1, "error": 1, "crashed": 1,
                                                        "pruned": 1, "stopped": 1},
                  running={"a", "b"}, best=(2.123456, 7, {"lr": 0.1, "loops": 3}), gpu_seconds=36000.0,
                  walls=[100.0, 200.0])
    monkeypatch.setattr(record.time, "time", lambda: 1042.4)
    assert tally.line(concurrency=2) == (
        "done 9/10 (ok 3, failed 4, pruned 1, stopped 1) | running 2 | best objective 2.1235 (trial 7: lr=0.1, "
        "loops=3) | 42s | ETA 75s")  # no GPU-hours: the sweep asks for no GPU
    assert tally.line(concurrency=1).endswith("| ETA 150s")
    assert Tally(total=2, started=1000.0, gpus=1, metric="q_val_bpb").line(0) == (
        "done 0/2 (ok 0, failed 0, pruned 0, stopped 0) | running 0 | best q_val_bpb - | GPU-h 0.000 | 42s")
    gpu = Tally(total=2, started=1000.0, best=(1.5, 3, {"train.matrix_lr": 0.04838716781236088, "loops": 2}),
                gpu_seconds=36000.0, gpus=2, metric="quantized BPB")
    assert gpu.line(1) == ("done 0/2 (ok 0, failed 0, pruned 0, stopped 0) | running 0 | best quantized BPB 1.5000 "
                           "(trial 3: train.matrix_lr=0.048387, loops=2) | GPU-h 10.000 | 42s")
    done = Tally(total=1, started=1000.0, by_status={"ok": 1}, walls=[5.0])
    assert done.line(4).endswith("| 42s")  # nothing left: no ETA
    over = Tally(total=1, started=1000.0, by_status={"ok": 2}, walls=[5.0])
    assert over.done() == 2 and "ETA" not in over.line(1)


def test_the_eta_counts_what_the_running_trials_have_run_and_says_when_they_are_overdue(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # walk 5, F10: with the last trial running, the ETA stayed at one mean trial time until the sweep ended
    import clowncar.orchestrator.record as record

    now = [1050.0]
    monkeypatch.setattr(record.time, "time", lambda: now[0])
    last = Tally(total=4, started=1000.0, by_status={"ok": 3}, walls=[10.0, 24.0], running={"a"},
                 running_since={"a": 1040.0})
    assert last.line(1).endswith("| 50s | ETA 7s")  # 17 s on average, 10 s of it run
    now[0] = 1056.6
    assert last.line(1).endswith("| ETA overdue (trials take 17s on average)")
    two = Tally(total=6, started=1000.0, by_status={"ok": 2}, walls=[20.0], running={"a", "b"},
                running_since={"a": 1030.0, "b": 1056.0})
    assert two.line(2).endswith("| ETA 30s")  # (4 x 20 - 20 (26.6 s, capped at the mean) - 0.6) / 2 slots


def test_the_progress_line_prints_news_at_once_and_the_same_line_only_after_a_minute(
        store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import clowncar.orchestrator.record as record

    now = [5000.0]
    monkeypatch.setattr(record.time, "time", lambda: now[0])
    cb = StoreCallback(_spec(), store, Tally(total=3, started=5000.0), show=True)
    t = _trial("a", 0)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})  # first report: prints
    now[0] += 11.0
    cb.on_trial_result(2, [], t, {"new_rows": "{}"})  # nothing new: quiet, however long since the last line
    cb.on_tell("a", {}, "pruned")  # an outcome: prints at once
    cb.on_trial_complete(3, [], t)  # the same outcome again: quiet
    assert capsys.readouterr().out.splitlines() == [
        "done 0/3 (ok 0, failed 0, pruned 0, stopped 0) | running 1 | best objective - | 0s",
        "done 1/3 (ok 0, failed 0, pruned 1, stopped 0) | running 0 | best objective - | 11s"]
    now[0] += record.REPEAT_S - 1
    cb.on_trial_result(4, [], t, {"new_rows": "{}"})
    assert capsys.readouterr().out == ""
    now[0] += 1
    cb.on_trial_result(5, [], t, {"new_rows": "{}"})  # a minute without news: the line again, its time moved on
    assert capsys.readouterr().out.splitlines() == [
        "done 1/3 (ok 0, failed 0, pruned 1, stopped 0) | running 0 | best objective - | 71s"]
    quiet = StoreCallback(_spec(), store, Tally(total=3), show=False)
    quiet.on_tell("a", {}, "pruned")
    quiet.close()
    assert capsys.readouterr().out == ""


def test_the_callback_pickles_without_its_store(store: Store) -> None:
    import pickle

    cb = StoreCallback(_spec(), store, Tally(total=3), show=False)
    cb.on_trial_result(1, [], _trial("a", 0), {"new_rows": "{}"})
    copy = pickle.loads(pickle.dumps(cb))
    assert copy.store is None and copy._live is None and copy.started == {"a"} and cb.store is store


def test_trial_uids_name_the_sweep_and_the_trial_number() -> None:
    assert trial_uid("frug", 12) == "frug/12"


def test_the_seed_and_defaults_of_a_trial_are_recorded(store: Store) -> None:
    from clowncar.config import TrialConfig

    cb = StoreCallback(_spec(), store, Tally(total=3), show=False)
    cb.on_trial_result(1, [], _trial("m", 5, **{"train.ema": False, "train.ema_decay": 0.5}), {"new_rows": "{}"})
    moot = store.get_trial("rec/5")
    assert moot is not None and moot["config"]["train"]["ema_decay"] == TrialConfig().train.ema_decay != 0.5
    cb.on_trial_result(1, [], _trial("a", 1, **{"train.seed": 7}), {"new_rows": "{}"})
    from ray.tune.experiment import Trial

    bare = Trial("clowncar_trial", config={"lr": 0.5}, trial_id="b", stub=True)  # no clowncar numbering
    cb.on_trial_result(1, [], bare, {"new_rows": "{}"})
    seeded, plain = store.get_trial("rec/1"), store.get_trial("rec/0")
    assert seeded is not None and seeded["seed"] == 7 and seeded["config"]["train"]["seed"] == 7
    assert plain is not None and plain["seed"] == 1337 and plain["attempts"][0]["attempt"] == 0
    assert cb.meta["b"] == ("rec/0", 0, 0, {"lr": 0.5})


def test_counts_and_gpu_time_add_up_over_trials_and_ties_keep_the_first_best(store: Store,
                                                                            clock: list[float]) -> None:
    cb = StoreCallback(_spec(), store, Tally(total=6), show=False)
    for i, (v, wall) in enumerate([(2.0, 10.0), (2.0, None), (2.5, 5.0)]):
        trial = _trial(f"t{i}", i, lr=i)
        cb.on_trial_result(1, [], trial, {"new_rows": "{}"})
        clock[0] += wall or 0.0
        cb.on_trial_result(2, [], trial, {**_final("ok", v, result={}), "wall_s": wall})
    for i, ran in ((3, 4.0), (4, 0.0)):
        cb.on_trial_result(1, [], _trial(f"t{i}", i), {"new_rows": "{}"})
        clock[0] += ran
        cb.on_tell(f"t{i}", {}, "pruned")  # a pruned trial used its GPUs too, and `sweep status` bills it
    t = cb.tally
    assert t.by_status == {"ok": 3, "pruned": 2} and t.walls == [10.0, 0.0, 5.0] and t.gpu_seconds == 38.0
    assert t.best == (2.0, 0, {"lr": 0})


class _FailedTrial:
    """Ray Tune's Trial with the error.txt Tune would have written for it in Ray's session dir (a stub Trial has
    no storage): the callback reads `error_file` and `run_metadata.num_failures`."""

    @staticmethod
    def make(tid: str, number: int, error_file: Path | None, failures: int = 1) -> Any:
        from ray.tune.experiment import Trial

        class FailedTrial(Trial):
            @property
            def error_file(self) -> str | None:
                return str(error_file) if error_file is not None else None

        t = FailedTrial("clowncar_trial", config={"_cc": {"number": number, "attempt": 0}}, trial_id=tid,
                        stub=True)
        t.run_metadata.num_failures = failures
        return t


ACTOR_DIED = ("Failure # 1 (occurred at 2026-01-01_00-00-00)\nThe actor died unexpectedly before finishing this "
              "task.\n\tclass_name: ImplicitFunc\n\tpid: 19611\nThe actor is dead because its worker process has "
              "died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits.\n")


def test_a_trial_tune_gave_up_on_is_crashed_with_rays_reason_kept_in_its_directory(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = tmp_path / "error.txt"
    err.write_text("Failure # 1 (occurred at 2026-01-01_00-00-00)\nTraceback (most recent call last):\n  File x\n"
                   "ValueError: first\n" + ACTOR_DIED.replace("# 1", "# 2"))
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n")
    cb = StoreCallback(_spec(), store, Tally(total=5), show=False, runs_dir=tmp_path / "runs")
    cases = {"a": err, "b": blank, "c": None, "e": tmp_path / "missing.txt"}
    for i, (tid, path) in enumerate(cases.items()):
        t = _FailedTrial.make(tid, i, path)
        cb.on_trial_result(1, [], t, {"new_rows": "{}"})
        cb.on_trial_error(2, [], t)
    cb.on_trial_error(2, [], _FailedTrial.make("d", 9, err))  # a trial the callback never saw: nothing stored
    a, b, c, e = (_attempt(store, f"rec/{i}") for i in range(4))
    died = ("The actor died unexpectedly before finishing this task. The actor is dead because its worker process "
            "has died.")
    assert (a["status"], a["reason"]) == ("crashed", died)  # the last failure, its cause's first sentence
    assert (b["status"], b["reason"]) == (e["status"], e["reason"]) == ("crashed", "its Ray actor failed")
    assert c["status"] == "running"  # no error file: Tune has not failed it
    assert store.get_trial("rec/9") is None
    kept = tmp_path / "runs" / "trials" / "rec" / "00000-0" / "ray_error.txt"
    assert kept.read_text() == err.read_text()  # Ray's whole text, every failure
    out = capsys.readouterr().out.splitlines()  # one line each, even with show=False
    assert out[0] == f"trial 0 crashed: {died}; Ray's full error: {kept}"
    assert out[1:] == ["trial 1 crashed: its Ray actor failed", "trial 3 crashed: its Ray actor failed"]
    assert not (kept.parent.parent / "00001-0").exists()  # no text from Ray: no empty file to point at


def test_a_retried_failure_says_so_in_words_and_appends_rays_text_to_the_sweeps_log(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = tmp_path / "error.txt"
    err.write_text(ACTOR_DIED)
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False, runs_dir=tmp_path / "runs")
    t = _FailedTrial.make("a", 3, err, failures=1)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})
    cb.on_trial_recover(2, [], t)
    t.run_metadata.num_failures = 2
    cb.on_trial_recover(3, [], t)  # the retry died before its first report: an attempt all the same
    cb.on_trial_recover(3, [], _FailedTrial.make("x", 4, err))  # died before any report
    log = tmp_path / "runs" / "trials" / "rec" / "ray-errors.log"
    assert log.read_text() == (f"trial 3, failure 1:\n{ACTOR_DIED}\ntrial 3, failure 2:\n{ACTOR_DIED}\n"
                               f"trial 4, failure 1:\n{ACTOR_DIED}\n")
    out = capsys.readouterr().out.splitlines()
    assert out == [f"trial 3: its Ray actor's process died; Tune runs it again as attempt 1 (retry 1 of max_failures "
                   f"1); Ray's error: {log}",
                   f"trial 3: its Ray actor's process died; Tune runs it again as attempt 2 (retry 2 of max_failures "
                   f"1); Ray's error: {log}",
                   f"trial 4: its Ray actor's process died; Tune runs it again as attempt 1 (retry 1 of max_failures "
                   f"1); Ray's error: {log}"]
    assert not any("worker process" in line for line in out)  # Ray's own words stay in the log
    attempts = store.get_trial("rec/3")["attempts"]  # type: ignore[index]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(0, "crashed"), (1, "crashed")]
    assert attempts[1]["reason"] == ("its Ray actor's process died (Ray: The actor died unexpectedly before "
                                     "finishing this task. The actor is dead because its worker process has died.); "
                                     "Tune retried it as attempt 2")
    assert t.config["_cc"] == {"number": 3, "attempt": 2} and cb.meta["a"][2] == 2  # the next retry's attempt
    assert [a["attempt"] for a in store.get_trial("rec/4")["attempts"]] == [0]  # type: ignore[index]


def test_without_a_runs_dir_the_line_has_no_path(store: Store, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    err = tmp_path / "error.txt"
    err.write_text(ACTOR_DIED)
    cb = StoreCallback(_spec(), store, Tally(total=2), show=False)
    t = _FailedTrial.make("a", 0, err)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})
    cb.on_trial_recover(2, [], t)
    cb.on_trial_error(2, [], t)
    assert capsys.readouterr().out.splitlines() == [
        "trial 0: its Ray actor's process died; Tune runs it again as attempt 1 (retry 1 of max_failures 1)",
        "trial 0 crashed: The actor died unexpectedly before finishing this task. The actor is dead because its "
        "worker process has died."]
    attempts = store.get_trial("rec/0")["attempts"]  # type: ignore[index]
    assert [(a["attempt"], a["status"], a["node"]) for a in attempts] == [(0, "crashed", None), (1, "crashed", None)]


def _timeless(line: str) -> str:
    """A progress line without its elapsed seconds, which tick between two readings of the real clock."""
    import re

    return re.sub(r"\| -?\d+s", "| Ns", line)


def test_a_progress_line_to_a_pipe_is_flushed_at_once(store: Store, pipe: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys, "stdout", pipe)
    cb = StoreCallback(_spec(), store, Tally(total=3), show=True)
    assert cb._live is None
    cb.on_trial_result(1, [], _trial("a", 0), {"new_rows": "{}"})
    assert pipe.parts[-1] == "<flush>" and pipe.parts[0].startswith("done 0/3")


class _Terminal:
    """Standard output as a terminal, for rich's live display."""

    def __init__(self) -> None:
        import io

        self.buffer = io.StringIO()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self.buffer.write(text)

    def flush(self) -> None:
        pass


def test_on_a_terminal_the_progress_line_is_a_live_display(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle
    import sys

    monkeypatch.setattr(sys, "stdout", _Terminal())
    cb = StoreCallback(_spec(), store, Tally(total=3, walls=[60.0]), show=True)
    live = cb._live
    assert live is not None and live.get_renderable() == ""  # nothing shown before the first report
    assert live.is_started and live.transient is False and live.refresh_per_second == 2
    cb.on_trial_result(1, [], _trial("a", 0), {"new_rows": "{}"})
    shown = str(live.get_renderable())  # rich turns the line into a Text
    assert _timeless(shown) == _timeless(cb.tally.line(2)) and shown.endswith("ETA 90s")  # 3 left x 60 s / 2
    copy = pickle.loads(pickle.dumps(cb))
    assert copy._live is None and cb._live is live
    cb.tally.by_status["ok"] = 1
    cb.close()
    assert not live.is_started and _timeless(str(live.get_renderable())) == _timeless(cb.tally.line(2))
    assert str(live.get_renderable()).startswith("done 1/3") and str(live.get_renderable()).endswith("ETA 60s")
    assert StoreCallback(_spec(), store, Tally(total=1), show=False)._live is None
    shown = StoreCallback(_spec(), store, Tally(total=1))  # shown unless turned off
    assert shown._live is not None and shown._live.is_started
    shown.close()


def test_the_progress_line_waits_a_full_ten_seconds(store: Store, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import clowncar.orchestrator.record as record

    now = [100.0]
    monkeypatch.setattr(record.time, "time", lambda: now[0])
    cb = StoreCallback(_spec(), store, Tally(total=3, started=100.0, walls=[8.0]), show=True)
    t = _trial("a", 0)
    cb.on_trial_result(1, [], t, {"new_rows": "{}"})
    now[0] += 10.0
    cb.on_trial_result(2, [], t, {"new_rows": "{}"})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["done 0/3 (ok 0, failed 0, pruned 0, stopped 0) | running 1 | best objective - | 0s | "
                     "ETA 12s"]  # printed at 100 s, not again at 110 s; 3 left x 8 s over 2 slots
