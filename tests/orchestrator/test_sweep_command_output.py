"""`clowncar sweep status / ls / plan / submit / stop` and the summary `sweep run` prints, in this process
without Ray: a SQLite store and an Optuna study filled here, the sweep runner and the job client replaced where
they would start Ray (rerun: test_rerun_command.py; the commands with Ray run in test_sweep_cli.py and the
cluster tests)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from clowncar.errors import ClownCarError
from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator import status_lines
from clowncar.orchestrator.search import END_REASON, NUMBER
from clowncar.orchestrator.spec import load_spec, spec_from_dict
from clowncar.orchestrator.stored_sweep import stored_spec
from clowncar.orchestrator.sweep_plan import plan_lines
from clowncar.orchestrator.tune import open_study
from clowncar.store import open_store

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS = "model.crawler_loops"
SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {LOOPS: {"grid": [1, 2, 3]}}}



def trial(store: Any, uid: str, number: int, status: str, result: dict[str, Any] | None = None,
          steps: int = 0, node: str = "node-a") -> None:
    store.start_trial("s", uid, number, 0, {"model": {"crawler_loops": number + 1}}, 1337, node)
    if steps:
        store.add_steps(uid, 0, [{"step": i, "train_loss": 5.0 - i / 10} for i in range(1, steps + 1)])
    if status != "running":
        store.finish_trial(uid, 0, status, None, result or {})


def study_with(url: str, values: list[tuple[int, float | None, float]], directions: int = 1,
               name: str = "s", seconds: float = 0.0) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=open_study(url),
                                directions=["minimize"] * directions)
    for number, value, over in values:
        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        vals = None if value is None else ([value] if directions == 1 else [value, 9e6 + number])
        frozen = create_trial(params={LOOPS: number % 3 + 1}, distributions={LOOPS: CategoricalDistribution(
            [1, 2, 3])}, values=vals, state=state, user_attrs={NUMBER: number},
            constraints={"artifact_bytes_over_cap": over})
        if seconds:
            frozen.datetime_start = dt.datetime(2026, 1, 1)
            frozen.datetime_complete = dt.datetime(2026, 1, 1) + dt.timedelta(seconds=seconds)
        study.add_trial(frozen)
    return study


def test_the_run_summary_lists_states_best_front_and_end(capsys) -> None:
    status_lines.print_summary({
        "sweep": "s", "optuna_states": {"RUNNING": 1, "COMPLETE": 3, "DUPLICATE": 2, "UNASKED": 1},
        "reconciled": {"closed_running": 2, "requeued": 1},
        "fit_seconds": 30.0, "asked_this_run": 4,
        "best": {"number": 2, "objective": 1.18131234, "params": {LOOPS: 3, "train.seed": 7}},
        "pareto": [{"number": 2, "values": [1.1813, 9_100_000.4], "params": {LOOPS: 3}}],
        "ended": "budget: max_trials 4 reached",
    })
    assert capsys.readouterr().out.splitlines() == [
        "sweep s: optuna trials complete 3, duplicate 2 (repeated suggestions, told at once and never run), running "
        "1, unasked 1 (asks cut short by the driver's end, never run)",
        "resume: closed running 2; requeued 1",
        "ran 4 trials in 30.0s (7.500 s/trial)",
        f"best trial 2: quantized BPB 1.181312 ({LOOPS}=3, train.seed=7)",
        "pareto front (objective, artifact bytes), feasible trials only:",
        f"  trial 2: 1.181300, 9100000 B ({LOOPS}=3)",
        "ended: budget: max_trials 4 reached",
    ]


def test_the_best_trials_float_values_are_shown_to_five_digits_and_other_values_as_they_are(capsys) -> None:
    status_lines.print_summary({"sweep": "s", "optuna_states": {"COMPLETE": 1}, "best": {
        "number": 0, "objective": 1.5, "params": {"optim.lr": 0.04838716781236088, "optim.name": "muon",
                                                  "model.tied": True, "train.steps": 123456, "model.mlp_mult": 2.0}}})
    assert capsys.readouterr().out.splitlines()[1] == (
        "best trial 0: quantized BPB 1.500000 (optim.lr=0.048387, optim.name=muon, model.tied=True, "
        "train.steps=123456, model.mlp_mult=2)")


def test_the_run_summary_says_what_replaced_attempts_are(capsys) -> None:
    # not `fail 2`: the six trials ended ok, two of them on a second attempt after their driver was killed
    status_lines.print_summary({"sweep": "s", "optuna_states": {"COMPLETE": 6, "REPLACED": 2}})
    assert capsys.readouterr().out.splitlines()[0] == (
        "sweep s: optuna trials complete 6, replaced 2 (earlier attempts of trials that ran again: cut off by a "
        "driver's end or a stop, or retried by --retry-failed)")


def test_the_resume_line_says_only_what_resume_did_in_words(capsys) -> None:
    assert status_lines.resume_line({"told_from_store": 0, "recorded_from_disk": 0, "closed_for_rerun": 0,
                                     "dropped_unasked": 0, "store_attempts_closed": 0}) is None
    assert status_lines.resume_line({"told_from_store": 1, "recorded_from_disk": 0, "closed_for_rerun": 2,
                                     "dropped_unasked": 0, "store_attempts_closed": 2}) == (
        "resume: 1 trial found finished in the store; 2 trials cut off by the driver's end, queued to run again; "
        "2 trials left running in the store, closed as crashed")
    status_lines.print_summary({"sweep": "s", "optuna_states": {"COMPLETE": 1}, "fit_seconds": 3.0,
                                "asked_this_run": 1, "reconciled": {"told_from_store": 0, "dropped_unasked": 0}})
    assert capsys.readouterr().out.splitlines()[1:] == ["ran 1 trial in 3.0s (3.000 s/trial)",
                                                        "best trial: none feasible yet"]


def test_a_trial_cut_off_and_closed_as_crashed_in_the_store_reads_as_one_trial() -> None:
    """After a SIGKILL of the driver, one trial was cut off in the study and left running in the store: the line
    said `1 trial cut off by the driver's end, queued to run again; 1 trial left running in the store, closed as
    crashed`, two trials to a reader."""
    assert status_lines.resume_line({"told_from_store": 0, "closed_for_rerun": 1, "store_attempts_closed": 1,
                                     "closed_and_requeued": 1}) == (
        "resume: 1 trial left running in the store by the driver's end: closed as crashed and queued to run again")
    assert status_lines.resume_line({"told_from_store": 1, "closed_for_rerun": 3, "store_attempts_closed": 2,
                                     "closed_and_requeued": 1}) == (
        "resume: 1 trial found finished in the store; 1 trial left running in the store by the driver's end: "
        "closed as crashed and queued to run again; 2 trials cut off by the driver's end, queued to run again; "
        "1 trial left running in the store, closed as crashed")


def test_a_summary_without_a_feasible_trial_or_a_timing_says_less(capsys) -> None:
    status_lines.print_summary({"sweep": "s", "optuna_states": {}, "fit_seconds": 12.0, "asked_this_run": 0})
    status_lines.print_summary({"sweep": "s", "optuna_states": {"FAIL": 1}, "fit_seconds": 0.0, "asked_this_run": 3})
    status_lines.print_summary({"sweep": "s", "optuna_states": {"FAIL": 2}, "ended": "max_trials reached"})
    assert capsys.readouterr().out.splitlines() == [
        "sweep s: optuna trials ", "best trial: none feasible yet",
        "sweep s: optuna trials fail 1", "best trial: none feasible yet",
        "sweep s: optuna trials fail 2", "best trial: none feasible", "ended: max_trials reached"]


def test_the_stored_spec_comes_back_as_a_spec(url: str) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    assert stored_spec("s", url) == spec_from_dict(SPEC)
    with pytest.raises(ClownCarError) as err:
        stored_spec("nope", url)
    assert str(err.value) == f"no sweep named 'nope' in {url}"
    with pytest.raises(ClownCarError) as err:
        stored_spec("ss", url)
    assert str(err.value) == f"no sweep named 'ss' in {url} (did you mean s?)"


def test_status_of_a_sweep_without_a_study(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        trial(st, "t0", 0, "ok", {"val_bpb": 1.5})
        trial(st, "t1", 1, "running", steps=7, node="gpu-3")
        trial(st, "t2", 2, "diverged")
        st.set_sweep_status("s", "failed", "head lost")
    cmd.status_cmd("s", store=url)
    assert capsys.readouterr().out.splitlines() == [
        "sweep s: failed (head lost), 3 trials",  # no driver: its trial marked running runs no more
        "  diverged 1, last seen running 1, ok 1",
        "  diverged x1: no reason recorded",
        "  best (no Optuna study; the lowest val_bpb in the store): trial 0 (t0): 1.500000",
        "  last seen running: trial 1 attempt 0 on gpu-3 step 7",
    ]


def test_status_of_an_imported_sweep_names_its_lowest_bpb(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", {"imported": True}, source="import")
        trial(st, "t0", 0, "ok", {"val_bpb": 1.5, "q_val_bpb": 1.52})
        trial(st, "t1", 1, "ok", {"val_bpb": 1.4, "q_val_bpb": 1.56})
        trial(st, "t2", 2, "ok", {"val_bpb": 1.3, "q_val_bpb": 1.6})
    cmd.status_cmd("s", store=url)
    assert capsys.readouterr().out.splitlines()[2:] == [  # post-quantization first, though t2 has the lowest val_bpb
        "  best (no Optuna study; the lowest q_val_bpb in the store): trial 0 (t0): 1.520000"]
    with open_store(url) as st:
        st.create_or_get_sweep("empty", {"imported": True}, source="import")
    cmd.status_cmd("empty", store=url)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  best: none (no Optuna study, and no trial in the store records a BPB)")


def test_status_of_a_rerun_names_its_parent(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        st.create_or_get_sweep("s-rerun-top3", SPEC, parent="s")
    cmd.status_cmd("s-rerun-top3", store=url)
    assert capsys.readouterr().out.splitlines() == [  # no trial yet: no line of counts, not even an empty one
        "sweep s-rerun-top3: created, 0 trials, rerun of s",
        "  best: none (no Optuna study, and no trial in the store records a BPB)"]


def test_status_names_the_best_feasible_trial_by_the_objective(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        trial(st, "t0", 0, "ok")
    study_with(url, [(0, 1.30, -1.0), (1, 1.10, 5.0), (2, 1.20, 0.0), (3, None, -1.0)])
    cmd.status_cmd("s", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sweep s: created, 1 trial"  # no reason, no parentheses, no parent
    assert lines[2] == f"  best (feasible, by the sweep's objective): trial 2: objective 1.200000 ({LOOPS}=3)"
    assert len(lines) == 3  # single objective: no front; CPU sweep: no GPU-hours


def test_status_of_a_study_with_nothing_complete_yet(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    study_with(url, [(0, None, -1.0)])
    cmd.status_cmd("s", store=url)
    assert capsys.readouterr().out.splitlines()[-1] == "  best (feasible, by the sweep's objective): none yet"


def test_status_of_a_finished_gpu_sweep_with_a_front(url: str, capsys) -> None:
    spec = {**SPEC, "sampler": "nsga2", "space": {LOOPS: {"choice": [1, 2, 3]}}, "budget": {"max_trials": 3,
            "max_gpu_hours": 2.5},
            "resources": {"gpus": 2}}
    spec = spec_from_dict(spec).model_dump(mode="json")
    with open_store(url) as st:
        st.create_or_get_sweep("s", spec)
        st.set_sweep_status("s", "done")
    study = study_with(url, [(0, 1.30, -1.0), (1, 1.20, -1.0)], directions=2, seconds=900)
    study.set_user_attr(END_REASON, "budget: max_trials 3 reached")
    cmd.status_cmd("s", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "  pareto front (objective, artifact bytes), feasible trials only:"
    assert lines[3:5] == [f"    trial 1: 1.200000, 9000001 B ({LOOPS}=2)", f"    trial 0: 1.300000, 9000000 B ({LOOPS}=1)"]
    assert lines[5] == "  GPU-hours used: 1.0000 of 2.5"  # two trials of 15 minutes on 2 GPUs
    assert lines[6] == "  ended: budget: max_trials 3 reached"


def test_ls_lists_every_sweep_with_counts_that_add_up_or_says_there_is_none(url: str, capsys) -> None:
    open_store(url).close()
    cmd.ls_cmd(store=url)
    assert capsys.readouterr().out == f"store: {url}\nno sweeps\n"  # the store named, as `store ls` does (F20)
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        trial(st, "t0", 0, "ok", {"val_bpb": 1.25})
        trial(st, "t1", 1, "stopped")  # a stopped or pruned trial has a column of its own (walk 6, F22)
        trial(st, "t2", 2, "pruned")
    cmd.ls_cmd(store=url)
    assert capsys.readouterr().out.splitlines() == [
        f"store: {url}",
        "status   source  trials  ok  running  failed  pruned  stopped  best_bpb  best_metric  parent  name",
        "created  run     3       1   0        0       1       1        1.25      val_bpb      -       s"]


def test_plan_prints_what_the_spec_would_run_and_whether_its_data_is_here(tmp_path: Path, capsys,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    cmd.plan_cmd(path)
    assert capsys.readouterr().out.splitlines() == [
        *plan_lines(load_spec(path)),
        f"  data: missing on this machine: dataset 'demo_sp1024' not found at {tmp_path / 'data/datasets/demo_sp1024'}"
        " (`clowncar data demo`, `data fetch-fineweb` or `data build` makes one; CLOWNCAR_DATA_DIR says where "
        "datasets are looked for); an embedded `sweep run` refuses the sweep, and on a cluster every worker needs "
        "the data"]
    monkeypatch.setattr("clowncar.orchestrator.preflight.data_line", lambda spec: None)
    cmd.plan_cmd(path)  # a worker that reads data its own way: no data line
    assert capsys.readouterr().out.splitlines() == plan_lines(load_spec(path))


def test_settings_fill_what_the_command_line_left_out(url: str, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("CLOWNCAR_STORE", url)
    monkeypatch.setenv("CLOWNCAR_RAY_ADDRESS", "auto")
    assert cmd._settings(None, None) == (url, tmp_path / "runs", "auto")
    assert cmd._settings("sqlite:///x.db", "") == ("sqlite:///x.db", tmp_path / "runs", "")


def test_run_spec_hands_the_settings_to_the_runner_and_prints_its_summary(url: str, monkeypatch, tmp_path: Path,
                                                                          capsys) -> None:
    import clowncar.orchestrator.tune as tune

    seen: list[Any] = []

    def runner(spec: Any, opts: Any) -> dict[str, Any]:
        seen.append(opts)
        return {"sweep": spec.name, "optuna_states": {"COMPLETE": 1}}

    monkeypatch.setattr(tune, "run_sweep", runner)
    checked: list[Any] = []  # the data check itself: test_preflight.py
    monkeypatch.setattr("clowncar.orchestrator.preflight.check_local_data", checked.append)
    spec = spec_from_dict(SPEC)
    assert cmd.run_spec(spec, url, None, 3, 0, True, resume=True, retry_failed=True) == {
        "sweep": "s", "optuna_states": {"COMPLETE": 1}}
    assert checked == [spec]  # embedded: this machine's data
    (opts,) = seen
    assert (opts.store_url, opts.runs_dir, opts.address, opts.num_cpus, opts.num_gpus, opts.show, opts.resume,
            opts.retry_failed) == (url, tmp_path / "runs", "", 3, 0, False, True, True)
    assert capsys.readouterr().out.splitlines()[0] == "sweep s: optuna trials complete 1"
    assert not (tmp_path / "runs").exists()  # nothing here creates the runs folder


def test_resume_runs_the_stored_spec_again(url: str, monkeypatch) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    calls: list[tuple] = []
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: calls.append((args, kw)))
    cmd.resume_cmd("s", store=url, address="auto", num_cpus=2, num_gpus=1, quiet=True)
    cmd.resume_cmd("s", store=url, address="auto", num_cpus=2, num_gpus=1, quiet=True, retry_failed=True)
    assert calls == [((spec_from_dict(SPEC), url, "auto", 2, 1, True), {"resume": True, "retry_failed": False}),
                     ((spec_from_dict(SPEC), url, "auto", 2, 1, True), {"resume": True, "retry_failed": True})]


def test_submit_prints_the_job_and_how_to_watch_it_without_the_password(tmp_path: Path, monkeypatch,
                                                                        capsys) -> None:
    import clowncar.orchestrator.submit as submit

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    got: list[tuple] = []
    monkeypatch.setattr(submit, "submit", lambda spec, p, address, store, python: got.append(
        (spec.name, p, address, store, python)) or "clowncar-s-1")
    monkeypatch.setattr(submit, "wait_started", lambda job, name, address, store: "its driver on the cluster runs it")
    store = "postgresql+psycopg://u:s3cret@db:5432/runs"
    cmd.submit_cmd(path, address="http://head:8265", store=store, python="python3.12")
    assert got == [("s", path, "http://head:8265", store, "python3.12")]
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "submitted sweep s as Ray job clowncar-s-1",
        "  its driver on the cluster runs it",
        "watch: ray job logs --address http://head:8265 --follow clowncar-s-1   |   clowncar sweep status s "
        "--store postgresql+psycopg://u:***@db:5432/runs"]
    cmd.submit_cmd(path, address="http://head:8265", store=None)  # the head's store: not this machine's (F1)
    assert capsys.readouterr().out.splitlines()[-1].endswith(
        "clowncar sweep status s (where the head's store is reachable, with --store or CLOWNCAR_STORE naming it: "
        "the job uses the head's store, not this machine's)")


def test_stop_says_how_many_jobs_and_trials_it_stopped(url: str, monkeypatch, capsys) -> None:
    import clowncar.orchestrator.submit as submit

    monkeypatch.setattr(submit, "stop", lambda name, address, store_url: (1, 3) if store_url == url else (0, 0))
    cmd.stop_cmd("s", address="http://head:8265", store=url)
    assert capsys.readouterr().out == "stopped 1 job(s) of sweep s; 3 trial(s) marked stopped\n"


def test_a_live_driver_is_named_in_the_status() -> None:
    from clowncar.orchestrator.driver_state import driver_line

    lease = {"token": "t", "holder": "head-1:4242", "renewed_at": dt.datetime(2026, 12, 5, 6, 1, 2, tzinfo=dt.UTC),
             "expires_at": dt.datetime(2099, 1, 1, 0, 0, 30, tzinfo=dt.UTC)}
    assert driver_line("s", "running", lease) == ("  driver: head-1:4242, lease renewed 06:01:02, until "
                                                  "2099-01-01 00:00:30 UTC")
    assert driver_line("s", "done", None) is None



def test_a_gpu_sweep_without_a_cap_and_not_done_says_neither(url: str, capsys) -> None:
    spec = spec_from_dict({**SPEC, "sampler": "random", "space": {LOOPS: {"choice": [1, 2, 3]}},
                           "budget": {"max_trials": 3}, "resources": {"gpus": 1}}).model_dump(mode="json")
    with open_store(url) as st:
        st.create_or_get_sweep("s", spec)
        st.set_sweep_status("s", "running")
    study = study_with(url, [(0, 1.30, -1.0)], seconds=1800)
    study.set_user_attr(END_REASON, "budget: max_trials 3 reached")
    cmd.status_cmd("s", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "  GPU-hours used: 0.5000"


def test_two_params_are_listed_apart(capsys) -> None:
    status_lines.print_pareto([{"number": 1, "values": [1.2, 9e6], "params": {"a": 1, "b": 2}}], "")
    status_lines.print_summary({"sweep": "s", "optuna_states": {}, "best": {"number": 1, "objective": 1.0,
                                                                     "params": {"a": 1, "b": 2}}, "metric": "val_bpb"})
    out = capsys.readouterr().out
    assert "  trial 1: 1.200000, 9000000 B (a=1, b=2)" in out and "best trial 1: val_bpb 1.000000 (a=1, b=2)" in out


def test_the_best_trial_of_a_study_lists_its_params_apart(url: str, capsys, monkeypatch) -> None:
    import clowncar.orchestrator.study_results as study_results

    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    study_with(url, [(0, 1.3, -1.0)])
    monkeypatch.setattr(study_results, "best_trial", lambda spec, study: {"number": 4, "objective": 1.25,
                                                                           "params": {"a": 1, "b": 2}})
    status_lines.print_study("s", url, "running")
    assert capsys.readouterr().out.splitlines()[0] == ("  best (feasible, by the sweep's objective): trial 4: "
                                                       "objective 1.250000 (a=1, b=2)")


def lease_row(**fields: Any) -> dict[str, Any]:
    return {"token": "t", "holder": "h:1", "renewed_at": dt.datetime(2026, 12, 5, 6, 0, tzinfo=dt.UTC),
            "expires_at": dt.datetime(2099, 1, 1, tzinfo=dt.UTC), **fields}


def test_an_expired_or_orphaned_lease_of_a_sweep_not_running_names_no_driver() -> None:
    import subprocess
    import sys

    from clowncar.orchestrator.driver_state import driver_line
    from clowncar.orchestrator.embedded import start_time
    from clowncar.orchestrator.lease import machine_id

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(done.pid)
    done.wait()
    orphan = lease_row(machine=machine_id(), pid=done.pid, pid_started=started)  # its driver died here
    for lease in (None, lease_row(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)), orphan):
        assert driver_line("s", "failed", lease) is None  # `sweep status` on a running one: test_driver_state.py


def test_status_names_the_driver_that_holds_the_sweep(url: str, capsys) -> None:
    from clowncar.orchestrator.lease import DriverLease

    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        with DriverLease(st, "s"):
            cmd.status_cmd("s", store=url)
    assert capsys.readouterr().out.splitlines()[1].startswith("  driver: ")


def test_looking_never_creates_a_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    for call in (lambda: cmd.status_cmd("s", store=url), lambda: cmd.ls_cmd(store=url),
                 lambda: stored_spec("s", url)):
        with pytest.raises(ClownCarError):
            call()
    assert list(tmp_path.iterdir()) == []


def test_a_spec_stored_as_json_text_is_read_too(url: str, monkeypatch) -> None:
    import json

    from clowncar.store.store import Store

    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    real = Store.get_sweep

    def as_text(self, name):
        row = real(self, name)
        return row and {**row, "spec": json.dumps(row["spec"])}

    monkeypatch.setattr(Store, "get_sweep", as_text)
    assert stored_spec("s", url) == spec_from_dict(SPEC)


def test_resume_defaults_to_live_progress(url: str, monkeypatch) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    calls: list[tuple] = []
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: calls.append(args))
    cmd.resume_cmd("s", store=url)
    assert calls[0][2:] == (None, None, None, False)


def test_run_spec_joins_the_address_given(url: str, monkeypatch) -> None:
    import clowncar.orchestrator.tune as tune

    seen: list[Any] = []
    monkeypatch.setattr(tune, "run_sweep", lambda spec, opts: seen.append(opts) or {"sweep": "s",
                                                                                    "optuna_states": {}})
    import clowncar.orchestrator.reach as reach

    probed: list[tuple[str, str]] = []  # whether a cluster answers there is test_reach.py's
    monkeypatch.setattr(reach, "check_reachable", lambda address, origin: probed.append((address, origin)))
    monkeypatch.setenv("CLOWNCAR_RAY_ADDRESS", "ray://elsewhere:10001")
    cmd.run_spec(spec_from_dict(SPEC), url, "auto", None, None, True, resume=False)
    assert seen[0].address == "auto" and probed == [("auto", reach.FLAG)]


def test_stop_asks_for_the_named_sweep_on_the_given_cluster(url: str, monkeypatch, capsys) -> None:
    import clowncar.orchestrator.submit as submit

    asked: list[tuple] = []
    monkeypatch.setattr(submit, "stop", lambda name, address, store_url: asked.append((name, address, store_url))
                        or (0, 0))
    cmd.stop_cmd("s", address="http://head:8265", store=url)
    assert asked == [("s", "http://head:8265", url)]


def test_submit_runs_python_on_the_head_by_default(tmp_path: Path, monkeypatch, capsys) -> None:
    import clowncar.orchestrator.submit as submit

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    pythons: list[str] = []
    monkeypatch.setattr(submit, "submit", lambda spec, p, address, store, python: pythons.append(python) or "j")
    monkeypatch.setattr(submit, "wait_started", lambda job, name, address, store: "the job runs")
    cmd.submit_cmd(path, address="http://head:8265")
    assert pythons == ["python"]


def test_run_prints_the_plan_then_runs_the_spec(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    calls: list[tuple] = []
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: calls.append((args, kw)))
    cmd.run_cmd(path)
    assert capsys.readouterr().out.splitlines() == plan_lines(load_spec(path))
    ((spec, *rest), kw), = calls
    assert spec.to_dict() == load_spec(path).to_dict()
    assert (rest, kw) == ([None, None, None, None, False], {"resume": False})
    cmd.run_cmd(path, store="sqlite:///x.db", address="auto", num_cpus=2, num_gpus=1, quiet=True)
    assert calls[-1][0][1:] == ("sqlite:///x.db", "auto", 2, 1, True)
