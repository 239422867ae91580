"""`clowncar sweep status / ls / plan / rerun / submit / stop` and the summary `sweep run` prints, in this process
without Ray: a SQLite store and an Optuna study filled here, the sweep runner and the job client replaced where
they would start Ray. (The commands with Ray run in test_sweep_cli.py and the cluster tests.)"""

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
from clowncar.orchestrator.search import END_REASON, NUMBER
from clowncar.orchestrator.spec import load_spec, spec_from_dict
from clowncar.orchestrator.sweep_plan import plan_lines
from clowncar.orchestrator.tune import open_study
from clowncar.store import open_store

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS = "model.crawler_loops"
SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {LOOPS: {"grid": [1, 2, 3]}}}


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("CLOWNCAR_STORE", raising=False)
    return f"sqlite:///{tmp_path / 'store.db'}"


def trial(store: Any, uid: str, number: int, status: str, result: dict[str, Any] | None = None,
          steps: int = 0, node: str = "node-a") -> None:
    store.start_trial("s", uid, number, 0, {"model": {"crawler_loops": number + 1}}, 1337, node)
    if steps:
        store.add_steps(uid, 0, [{"step": i, "train_loss": 5.0 - i / 10} for i in range(1, steps + 1)])
    if status != "running":
        store.finish_trial(uid, 0, status, None, result or {})


def study_with(url: str, values: list[tuple[int, float | None, float]], directions: int = 1) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=open_study(url),
                                directions=["minimize"] * directions)
    for number, value, over in values:
        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        vals = None if value is None else ([value] if directions == 1 else [value, 9e6 + number])
        study.add_trial(create_trial(params={LOOPS: number % 3 + 1}, distributions={LOOPS: CategoricalDistribution(
            [1, 2, 3])}, values=vals, state=state, user_attrs={NUMBER: number},
            constraints={"artifact_bytes_over_cap": over}))
    return study


def test_the_run_summary_lists_states_best_front_and_end(capsys) -> None:
    cmd._print_summary({
        "sweep": "s", "optuna_states": {"RUNNING": 1, "COMPLETE": 3},
        "reconciled": {"closed_running": 2, "requeued": 1},
        "fit_seconds": 30.0, "asked_this_run": 4,
        "best": {"number": 2, "objective": 1.18131234, "params": {LOOPS: 3, "train.seed": 7}},
        "pareto": [{"number": 2, "values": [1.1813, 9_100_000.4], "params": {LOOPS: 3}}],
        "ended": "budget: max_trials 4 reached",
    })
    assert capsys.readouterr().out.splitlines() == [
        "sweep s: optuna trials complete 3, running 1",
        "resume: closed running 2, requeued 1",
        "ran 4 trials in 30.0s (7.500 s/trial)",
        f"best trial 2: objective 1.181312 ({LOOPS}=3, train.seed=7)",
        "pareto front (objective, artifact bytes), feasible trials only:",
        f"  trial 2: 1.181300, 9100000 B ({LOOPS}=3)",
        "ended: budget: max_trials 4 reached",
    ]


def test_a_summary_without_a_feasible_trial_or_a_timing_says_less(capsys) -> None:
    cmd._print_summary({"sweep": "s", "optuna_states": {}, "fit_seconds": 12.0, "asked_this_run": 0})
    cmd._print_summary({"sweep": "s", "optuna_states": {"FAIL": 1}, "fit_seconds": 0.0, "asked_this_run": 3})
    assert capsys.readouterr().out.splitlines() == [
        "sweep s: optuna trials ", "best trial: none feasible yet",
        "sweep s: optuna trials fail 1", "best trial: none feasible yet"]


def test_the_stored_spec_comes_back_as_a_spec(url: str) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    assert cmd.stored_spec("s", url) == spec_from_dict(SPEC)
    with pytest.raises(ClownCarError) as err:
        cmd.stored_spec("nope", url)
    assert str(err.value) == "no sweep named 'nope' in the store"


def test_status_of_a_sweep_without_a_study(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        trial(st, "t0", 0, "ok", {"val_bpb": 1.5})
        trial(st, "t1", 1, "running", steps=7, node="gpu-3")
        trial(st, "t2", 2, "diverged")
        st.set_sweep_status("s", "failed", "head lost")
    cmd.status_cmd("s", store=url)
    assert capsys.readouterr().out.splitlines() == [
        "sweep s: failed (head lost), 3 trials",
        "  diverged 1, ok 1, running 1",
        "  best (feasible, by the sweep's objective): none (no Optuna study)",
        "  running: trial 1 attempt 0 on gpu-3 step 7",
    ]


def test_status_names_the_best_feasible_trial_by_the_objective(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        trial(st, "t0", 0, "ok")
    study_with(url, [(0, 1.30, -1.0), (1, 1.10, 5.0), (2, 1.20, 0.0), (3, None, -1.0)])
    cmd.status_cmd("s", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sweep s: created, 1 trials"  # no reason, no parentheses
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
    study = study_with(url, [(0, 1.30, -1.0), (1, 1.20, -1.0)], directions=2)
    study.set_user_attr(END_REASON, "budget: max_trials 3 reached")
    cmd.status_cmd("s", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[3] == "  pareto front (objective, artifact bytes), feasible trials only:"
    assert lines[4:6] == [f"    trial 1: 1.200000, 9000001 B ({LOOPS}=2)", f"    trial 0: 1.300000, 9000000 B ({LOOPS}=1)"]
    assert lines[6].startswith("  GPU-hours used: ") and lines[6].endswith(" of 2.5")
    assert lines[7] == "  ended: budget: max_trials 3 reached"


def test_ls_lists_every_sweep_or_says_there_is_none(url: str, capsys) -> None:
    open_store(url).close()
    cmd.ls_cmd(store=url)
    assert capsys.readouterr().out == "no sweeps\n"
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        trial(st, "t0", 0, "ok", {"val_bpb": 1.25})
    cmd.ls_cmd(store=url)
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["name", "status", "source", "parent", "trials", "ok", "running", "failed",
                              "best_val_bpb"]
    assert row.split() == ["s", "created", "run", "None", "1", "1", "0", "0", "1.25"]


def test_plan_prints_what_the_spec_would_run(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    cmd.plan_cmd(path)
    assert capsys.readouterr().out.splitlines() == plan_lines(load_spec(path))


def test_rerun_refuses_seeds_that_are_not_integers(url: str) -> None:
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("s", seeds="1, two", store=url)
    assert str(err.value) == "--seeds must be comma-separated integers, not '1, two'"


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
    spec = spec_from_dict(SPEC)
    assert cmd.run_spec(spec, url, None, 3, 0, True, resume=True) == {"sweep": "s", "optuna_states": {"COMPLETE": 1}}
    (opts,) = seen
    assert (opts.store_url, opts.runs_dir, opts.address, opts.num_cpus, opts.num_gpus, opts.show, opts.resume) == (
        url, tmp_path / "runs", "", 3, 0, False, True)
    assert capsys.readouterr().out.splitlines()[0] == "sweep s: optuna trials complete 1"
    assert not (tmp_path / "runs").exists()  # nothing here creates the runs folder


def test_an_interrupted_sweep_says_how_to_resume_and_exits_130(url: str, monkeypatch) -> None:
    import clowncar.orchestrator.tune as tune

    def interrupted(spec: Any, opts: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "run_sweep", interrupted)
    with pytest.raises(cmd.SweepInterrupted) as err:
        cmd.run_spec(spec_from_dict(SPEC), url, None, None, None, False, resume=False)
    assert str(err.value) == ("sweep s interrupted: its running trials were stopped; continue it with "
                              "`clowncar sweep resume s`")
    assert err.value.exit_code == 130


def test_resume_runs_the_stored_spec_again(url: str, monkeypatch) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    calls: list[tuple] = []
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: calls.append((args, kw)))
    cmd.resume_cmd("s", store=url, address="auto", num_cpus=2, num_gpus=1, quiet=True)
    assert calls == [((spec_from_dict(SPEC), url, "auto", 2, 1, True), {"resume": True})]


def test_submit_prints_the_job_and_how_to_watch_it_without_the_password(tmp_path: Path, monkeypatch,
                                                                        capsys) -> None:
    import clowncar.orchestrator.submit as submit

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    got: list[tuple] = []
    monkeypatch.setattr(submit, "submit", lambda spec, p, address, store, python: got.append(
        (spec.name, p, address, store, python)) or "clowncar-s-1")
    store = "postgresql+psycopg://u:s3cret@db:5432/runs"
    cmd.submit_cmd(path, address="http://head:8265", store=store, python="python3.12")
    assert got == [("s", path, "http://head:8265", store, "python3.12")]
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "submitted sweep s as Ray job clowncar-s-1",
        "watch: ray job logs --address http://head:8265 --follow clowncar-s-1   |   clowncar sweep status s "
        "--store postgresql+psycopg://u:***@db:5432/runs"]
    cmd.submit_cmd(path, address="http://head:8265", store=None)
    assert capsys.readouterr().out.splitlines()[1].endswith("clowncar sweep status s")


def test_stop_says_how_many_jobs_and_trials_it_stopped(url: str, monkeypatch, capsys) -> None:
    import clowncar.orchestrator.submit as submit

    monkeypatch.setattr(submit, "stop", lambda name, address, store_url: (1, 3) if store_url == url else (0, 0))
    cmd.stop_cmd("s", address="http://head:8265", store=url)
    assert capsys.readouterr().out == "stopped 1 job(s) of sweep s; 3 trial(s) marked stopped\n"


def test_a_live_driver_is_named_in_the_status(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    lease = {"token": "t", "holder": "head-1:4242", "renewed_at": dt.datetime(2026, 12, 5, 6, 1, 2, tzinfo=dt.UTC),
             "expires_at": dt.datetime(2099, 1, 1, 0, 0, 30, tzinfo=dt.UTC)}

    class Store:
        def get_lease(self, name: str) -> dict[str, Any] | None:
            return lease if name == "s" else None

    cmd._print_driver(Store(), "s")
    cmd._print_driver(Store(), "other")
    assert capsys.readouterr().out == ("  driver: head-1:4242, lease renewed 06:01:02, until 2099-01-01 00:00:30 "
                                       "UTC\n")
