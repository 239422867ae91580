"""`sweep submit --name`: the sweep is submitted, tagged and run under the name given, as `sweep run --name` runs
it, and the job's command line carries the name but never the store URL. In this process, without Ray: the job
client is replaced where it would reach a cluster, and the job's command is run through the real CLI with only
the sweep runner replaced (the cluster runs it for real in test_submit.py)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

import clowncar.cli as cli
from clowncar.errors import EXIT_BAD_INPUT, EXIT_FAILED, ClownCarError
from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator import submit as submit_mod

SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {"model.crawler_loops": {"grid": [1, 2]}}}
STORE = "postgresql+psycopg://u:s3cret@db:5432/runs"


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def test_submit_with_a_name_submits_tags_and_names_the_sweep_by_it(spec_file: Path, monkeypatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    got: list[str] = []
    monkeypatch.setattr(submit_mod, "submit", lambda spec, p, address, store, python: got.append(spec.name)
                        or f"clowncar-{spec.name}-1")
    monkeypatch.setattr(submit_mod, "wait_started", lambda job, name, address, store: f"{name} runs")
    cmd.submit_cmd(spec_file, address="http://head:8265", store=STORE, name="s-again")
    assert got == ["s-again"]
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["submitted sweep s-again as Ray job clowncar-s-again-1", "  s-again runs"]
    assert "clowncar sweep status s-again --store postgresql+psycopg://u:***@db:5432/runs" in out[2]
    with pytest.raises(ClownCarError, match=r"^--name 'no/slash' must be 1-64 letters"):
        cmd.submit_cmd(spec_file, address="http://head:8265", name="no/slash")
    assert got == ["s-again"]  # a bad name is refused before anything is submitted


@pytest.mark.parametrize("store_file", [False, True], ids=["head-store", "store-file"])
def test_the_jobs_command_runs_the_shipped_spec_under_the_submitted_name(
        store_file: bool, spec_file: Path, tmp_path: Path, monkeypatch) -> None:
    entry = submit_mod.job_entrypoint("python3", "s-again", store_file)
    assert "s3cret" not in entry and "--store" not in entry
    # Ray starts the command in the job's working dir: it names that dir J and leaves it before the driver starts
    words = shlex.split(entry)
    assert words[:6] == ["J=$PWD", "&&", "cd", "${HOME:-/tmp}", "&&",
                         "CLOWNCAR_STORE=" if store_file else "python3"]
    if store_file:
        assert words[6] == f"CLOWNCAR_STORE_FILE=$J/{submit_mod.STORE_FILE}"
    # The job's working dir holds the spec as spec.yaml; its driver is `clowncar` with these words.
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "spec.yaml").write_text(spec_file.read_text())
    driver_args = [w.replace("$J", str(job_dir)) for w in words[words.index("clowncar") + 1:]]
    monkeypatch.chdir(tmp_path)
    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(cmd, "run_spec", lambda spec, store, address, *a, **kw: ran.append(
        {"name": spec.name, "address": address, "store": store}))
    cli.main(driver_args)
    assert ran == [{"name": "s-again", "address": "auto", "store": None}]


@pytest.mark.parametrize(("answer", "exit_code"), [
    ("Request failed with status code 500: Internal Server Error", EXIT_FAILED),
    ("Request failed with status code 400: Bad Request: runtime_env is invalid", EXIT_BAD_INPUT)])
def test_a_submission_the_job_server_fails_is_a_fault_and_one_it_refuses_is_bad_input(
        answer: str, exit_code: int, spec_file: Path, monkeypatch) -> None:
    class JobServer:  # answers as Ray's job client does for the job server's HTTP status
        def submit_job(self, **_: Any) -> str:
            raise RuntimeError(f"{answer}\nmore of the server's text")

    monkeypatch.setattr(submit_mod, "_client", lambda address: JobServer())
    with pytest.raises(ClownCarError) as err:
        submit_mod.submit(cmd.load_named_spec(spec_file, None), spec_file, "http://head:8265", None)
    assert str(err.value) == f"job submission to http://head:8265 failed: {answer}"
    assert err.value.exit_code == exit_code


def test_the_store_option_of_submit_says_the_default_is_the_heads_store_not_this_machines() -> None:
    import typer.main

    submit = typer.main.get_command(cmd.app).commands["submit"]  # type: ignore[attr-defined]
    text = next(p.help for p in submit.params if "--store" in p.opts)
    assert "(default: the head's own store, its CLOWNCAR_STORE, else CLOWNCAR_STORE_FILE's URL" in text
    assert "this machine's CLOWNCAR_STORE and CLOWNCAR_STORE_FILE are not sent" in text


@pytest.mark.parametrize(("status", "trials", "refused"), [
    ("stopped", 1, "already exists (stopped); continue it with `clowncar sweep resume s --address auto` on a node"),
    ("running", 1, "already exists (running); continue it with `clowncar sweep resume s --address auto` on a node"),
    ("imported", 1, "already exists (imported); its runs were imported from files: pick another name (--name)"),
    ("done", 1, "already exists (done: `clowncar sweep status s`); pick another name (--name)"),
    ("failed", 0, None), ("created", 0, None), ("running", 0, None)],
    ids=["stopped", "stalled", "imported", "done-not-resumed", "failed-start", "created", "running-no-trial"])
def test_a_name_a_sweep_that_ran_holds_is_refused_before_the_job_is_submitted(
        status: str, trials: int, refused: str | None, spec_file: Path, tmp_path: Path, monkeypatch) -> None:
    """The job's driver takes the sweep's lease before it reads the sweep, so a submitted `sweep run` of a name
    already taken held a live lease on a stored sweep for a moment: `wait_started` said its driver ran the sweep
    (exit 0) while the job failed with `sweep 's' already exists`. A start that ran nothing goes to the head."""
    from clowncar.store import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC, source="import" if status == "imported" else "run")
        for n in range(trials):
            st.start_trial("s", f"s/{n}", n, 0, {}, 1337, "node")
        st.set_sweep_status("s", status, None)
    shipped: list[str] = []

    class JobServer:
        def submit_job(self, **kw: Any) -> str:
            shipped.append(kw["submission_id"])
            return kw["submission_id"]

    monkeypatch.setattr(submit_mod, "_client", lambda address: JobServer())
    spec = cmd.load_named_spec(spec_file, None)
    if refused is None:
        submit_mod.submit(spec, spec_file, "http://head:8265", url)
        assert len(shipped) == 1
        return
    with pytest.raises(ClownCarError) as err:
        submit_mod.submit(spec, spec_file, "http://head:8265", url)
    assert str(err.value) == f"sweep 's' {refused}" + (" of the cluster, or pick another name (--name)"
                                                       if status not in ("imported", "done") else "")
    assert err.value.exit_code == EXIT_BAD_INPUT and shipped == []


def test_a_job_whose_shell_cannot_start_python_fails_with_the_shells_line_not_rays() -> None:
    """`sweep submit --python /nonexistent/python` on a loopback cluster: Ray wrote its `Running entrypoint` line
    after the shell's error, and the one line of `failed as it started:` quoted Ray's line, not the error."""
    job = "clowncar-s-1"
    log = ("2026-12-07 09:31:51,459\tINFO cli.py:569 -- 2026-12-07 09:31:40,488\tINFO job_manager.py:581 -- "
           "Runtime env is setting up.\n/bin/sh: 1: /nonexistent/python: not found\n"
           f"Running entrypoint for job {job}: J=\"$PWD\" && /nonexistent/python -m clowncar sweep run spec.yaml\n")

    class JobServer:
        def get_job_logs(self, job_id: str) -> str:
            assert job_id == job
            return log

    assert submit_mod._last_error(JobServer(), job) == "/bin/sh: 1: /nonexistent/python: not found"


@pytest.mark.parametrize("driver_closes", [True, False], ids=["by-its-driver", "by-stop"])
def test_stop_counts_the_trials_it_ended_whether_the_driver_or_stop_marked_them(
        driver_closes: bool, tmp_path: Path, monkeypatch) -> None:
    """A stopped job's driver marks its running trials `stopped` itself (SIGTERM), before `sweep stop` looks: the
    line said '0 trial(s) marked stopped' for a stop that ended one. A trial that had ended before the stop, and
    one of another sweep, are not counted."""
    from types import SimpleNamespace

    from clowncar.store import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        for sweep in ("s", "other"):
            st.create_or_get_sweep(sweep, {**SPEC, "name": sweep}, source="run")
            st.start_trial(sweep, f"{sweep}/0", 0, 0, {}, 1337, "node")
        st.start_trial("s", "s/1", 1, 0, {}, 1337, "node")
        st.close_running("s", "diverged", "loss was nan")  # s/1 ended before the stop
        st.start_trial("s", "s/0", 0, 1, {}, 1337, "node")  # s/0's second attempt runs as the job is stopped
        st.start_trial("s", "s/2", 2, 0, {}, 42, "node")
        st.set_sweep_status("s", "running", None)

    class JobServer:
        def __init__(self) -> None:
            self.stopped: list[str] = []

        def list_jobs(self) -> list[Any]:
            return [SimpleNamespace(submission_id="job-s", status="RUNNING", metadata={"clowncar_sweep": "s"}),
                    SimpleNamespace(submission_id="job-o", status="RUNNING", metadata={"clowncar_sweep": "other"})]

        def stop_job(self, job_id: str) -> None:
            self.stopped.append(job_id)
            if driver_closes:  # the driver's own clean-up on SIGTERM (tune.py: close_stopped)
                with open_store(url) as st:
                    st.close_running("s", "stopped", "sweep stopped")

        def get_job_status(self, job_id: str) -> str:
            return "JobStatus.STOPPED"

    server = JobServer()
    monkeypatch.setattr(submit_mod, "_client", lambda address: server)
    assert submit_mod.stop("s", "http://head:8265", url, wait_s=1.0) == (1, 2)
    assert server.stopped == ["job-s"]
    with open_store(url) as st:
        assert {uid: status for uid, (_, status) in st.trial_states("s").items()} == {
            "s/0": "stopped", "s/1": "diverged", "s/2": "stopped"}
        assert st.trial_states("other") == {"other/0": (0, "running")}
