"""The steps of `sweep submit` in this process, without Ray: the job server reached (or why not, in one line), a
name a live driver holds refused before anything is shipped, the job shipped (package, spec, private store file,
its command line) and its submission retried while the head's job agent starts; then the wait until the job's
driver holds the sweep (`submit.wait_started`), which says in words what it saw: the driver running the sweep, a
job that runs, a job that ended as it started, or one still waiting. The job server is a fake answering a script,
and the clock only moves when the module sleeps, so every bound is checked to the half second; the store is a real
SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from clowncar.errors import EXIT_BAD_INPUT, EXIT_FAILED, ClownCarError, RunFailed
from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator import submit as submit_mod
from clowncar.store import open_store
from clowncar.store.lease import Claimant

from .submit_fakes import ADDRESS, JOB, SPEC, Clock, serve, use_clock


class JobServer:
    """Answers `get_job_status` from `statuses` (the last one repeats) as Ray's client does: a JobStatus, whose
    str() is "RUNNING" on this Ray and was "JobStatus.RUNNING" on older ones (the two forms alternate);
    `on_poll(n)` runs before the n-th answer (from 0), as a driver on the cluster would act meanwhile."""

    def __init__(self, *statuses: str, on_poll: Any = None, logs: str = "") -> None:
        self.statuses, self.on_poll, self.logs, self.polls = list(statuses), on_poll, logs, 0

    def get_job_status(self, job_id: str) -> Any:
        from ray.job_submission import JobStatus

        assert job_id == JOB
        if self.on_poll:
            self.on_poll(self.polls)
        status = self.statuses[min(self.polls, len(self.statuses) - 1)]
        self.polls += 1
        return JobStatus[status] if self.polls % 2 else f"JobStatus.{status}"

    def get_job_logs(self, job_id: str) -> str:
        assert job_id == JOB
        return self.logs


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return use_clock(monkeypatch)


def drive(url: str, sweep: bool = True, lease: bool = True) -> None:
    """What the job's driver does on the head: takes the sweep's lease and stores the sweep (making the store)."""
    with open_store(url) as store:
        if lease:
            store.acquire_lease("s", Claimant("tok-driver", "the job's driver"), ttl_s=600)
        if sweep:
            store.create_or_get_sweep("s", SPEC, source="run")


def test_submit_reports_the_driver_once_it_holds_the_sweeps_lease_and_has_stored_the_sweep(
        tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store does not exist until the driver makes it; the lease alone (the sweep not yet stored) is not yet
    the driver running the sweep."""
    url = f"sqlite:///{tmp_path / 'store.db'}"

    def driver(poll: int) -> None:
        if poll == 4:
            drive(url, sweep=False)
        if poll == 8:
            drive(url)

    serve(monkeypatch, JobServer("PENDING", "PENDING", "RUNNING", on_poll=driver))
    said = submit_mod.wait_started(JOB, "s", ADDRESS, url, wait_s=60, every=0.5)
    assert said == "its driver on the cluster runs it"
    assert clock.waited == 4.0 and set(clock.slept) == {0.5}  # asked at 0, 0.5, ... 4.0: the 9th answer


def test_submit_takes_a_job_that_runs_as_started_after_three_seconds_when_the_head_keeps_the_store(
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the head's own store there is nothing to look at: a job running SETTLE_S (counted from the first
    RUNNING, not from the submission) has got past importing clowncar."""
    serve(monkeypatch, JobServer("PENDING", "PENDING", "RUNNING"))
    assert submit_mod.wait_started(JOB, "s", ADDRESS, None, every=0.5) == "the job runs"
    assert clock.waited == 1.0 + submit_mod.SETTLE_S == 4.0


def test_submit_waits_twenty_seconds_for_a_store_this_machine_cannot_open_and_says_so(
        tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A --store only the head reaches: never opened here, so neither the driver nor SETTLE_S decides."""
    url = f"sqlite:///{tmp_path / 'not-here' / 'store.db'}"
    serve(monkeypatch, JobServer("PENDING", "RUNNING"))
    said = submit_mod.wait_started(JOB, "s", ADDRESS, url, every=0.5)
    assert said == "the job runs (this machine cannot open its store to see the sweep)"
    assert clock.waited == 0.5 + submit_mod.UNSEEN_STORE_S == 20.5


@pytest.mark.parametrize("status", ["PENDING", "RUNNING"])
def test_submit_gives_up_waiting_at_the_deadline_and_says_what_the_job_is_doing(
        status: str, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store this machine opens but where no driver holds the sweep: the job may still be starting."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    drive(url, lease=False)  # a sweep stored, but its driver's lease not taken
    serve(monkeypatch, JobServer(status))
    said = submit_mod.wait_started(JOB, "s", ADDRESS, url, wait_s=30.0, every=0.5)
    assert said == f"the job is {status} after 30 s: its driver has not taken the sweep yet"
    assert clock.waited == 30.0


def test_submit_reports_a_job_that_ran_the_sweep_to_its_end_before_it_looked(
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, JobServer("PENDING", "SUCCEEDED"))
    assert submit_mod.wait_started(JOB, "s", ADDRESS, None, every=0.5) == "the job has run the sweep to its end"
    assert clock.waited == 0.5


@pytest.mark.parametrize("status", ["FAILED", "STOPPED"])
def test_a_job_that_ends_as_it_starts_fails_the_submit_with_its_last_error_and_how_to_see_its_log(
        status: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = "clowncar: error: sweep 's' already exists (stopped)\n"
    serve(monkeypatch, JobServer("RUNNING", status, logs=logs))
    with pytest.raises(RunFailed) as failed:
        submit_mod.wait_started(JOB, "s", ADDRESS, None, every=0.5)
    assert str(failed.value) == (
        f"the Ray job {JOB} of sweep s {status.lower()} as it started: sweep 's' already exists (stopped) "
        f"(its whole log: ray job logs --address {ADDRESS} {JOB})")
    assert failed.value.exit_code == EXIT_FAILED and clock.waited == 0.5


@pytest.mark.parametrize("ends", ["driven", "failed"])
def test_the_store_submit_opened_to_watch_the_driver_is_closed_however_the_wait_ends(
        ends: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []

    class Store:
        closed = False

        def get_lease(self, name: str) -> dict[str, Any]:
            import datetime as dt

            return {"token": "tok", "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)}

        def get_sweep(self, name: str) -> dict[str, Any]:
            return {"name": name}

        def close(self) -> None:
            self.closed = True

    def store_or_none(url: str | None) -> Store:
        assert url == "sqlite:///elsewhere.db"
        opened.append(Store())
        return opened[-1]

    monkeypatch.setattr(submit_mod, "_store_or_none", store_or_none)
    serve(monkeypatch, JobServer("PENDING", "PENDING", "FAILED" if ends == "failed" else "RUNNING"))
    if ends == "failed":
        with pytest.raises(RunFailed):
            submit_mod.wait_started(JOB, "s", ADDRESS, "sqlite:///elsewhere.db")
    else:
        assert submit_mod.wait_started(JOB, "s", ADDRESS, "sqlite:///elsewhere.db") == \
            "its driver on the cluster runs it"
    assert len(opened) == 1 and opened[0].closed  # opened once, kept, then closed
    assert clock.slept == [0.5, 0.5]  # asked every half second


@pytest.mark.parametrize(("lease", "sweep", "driven"), [
    ("live", True, True), ("live", False, False), ("expired", True, False), ("none", True, False)])
def test_a_sweep_is_driven_when_a_live_lease_holds_it_and_it_is_stored(
        lease: str, sweep: bool, driven: bool, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        if lease != "none":
            store.acquire_lease("s", Claimant("tok", "a driver"), ttl_s=600 if lease == "live" else 0.001)
        if sweep:
            store.create_or_get_sweep("s", SPEC, source="run")
        if lease == "expired":
            import time

            time.sleep(0.01)
        assert submit_mod._driven(store, "s") is driven


def test_a_store_that_fails_to_answer_is_not_yet_a_driven_sweep() -> None:
    class Away:
        def get_lease(self, name: str) -> None:
            raise ConnectionError("server closed the connection")

    assert submit_mod._driven(Away(), "s") is False


def test_the_store_submit_watches_is_the_given_one_when_this_machine_can_open_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert submit_mod._store_or_none(None) is None and submit_mod._store_or_none("") is None
    assert submit_mod._store_or_none(url) is None  # not made yet: it is not made here either
    assert not (tmp_path / "store.db").exists()
    drive(url)
    store = submit_mod._store_or_none(url)
    try:
        assert store.get_sweep("s") is not None
    finally:
        store.close()


class Ray:
    """ray.job_submission.JobSubmissionClient: built for an address, or failing to reach it with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.built = error, []

    def __call__(self, address: str) -> Any:
        if self.error:
            raise self.error
        self.built.append(address)
        return self


def test_the_job_client_is_built_for_the_address_given_whether_or_not_a_cluster_runs_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ray.job_submission

    from clowncar.orchestrator import reach

    ray_client = Ray()
    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", ray_client)
    monkeypatch.setattr(reach, "auto_cluster", lambda: None)
    assert submit_mod._client(ADDRESS) is ray_client  # no cluster on this machine: the head is elsewhere
    monkeypatch.setattr(reach, "auto_cluster", lambda: "127.0.0.1:6379")
    assert submit_mod._client("auto") is ray_client
    assert ray_client.built == [ADDRESS, "auto"]


@pytest.mark.parametrize(("error", "said"), [
    (ConnectionError("Failed to connect to Ray at address: http://head:8265.\nmore lines"),
     "Failed to connect to Ray at address: http://head:8265."),
    (ConnectionError("  "), "ConnectionError")], ids=["its-first-line", "its-type-when-it-says-nothing"])
def test_a_job_server_that_cannot_be_reached_is_one_line_of_bad_input(
        error: Exception, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray.job_submission

    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", Ray(error))
    with pytest.raises(ClownCarError) as failed:
        submit_mod._client(ADDRESS)
    assert str(failed.value) == f"cannot reach the Ray job server at {ADDRESS}: {said}"
    assert failed.value.exit_code == EXIT_BAD_INPUT and failed.value.__cause__ is None


def test_the_jobs_command_line_is_the_sweep_run_of_the_shipped_spec_from_the_home_directory() -> None:
    assert submit_mod.job_entrypoint("/opt/py 3/python", "s-again", False) == (
        'J="$PWD" && cd "${HOME:-/tmp}" && \'/opt/py 3/python\' -m clowncar sweep run "$J/spec.yaml" '
        "--name s-again --address auto --quiet")
    assert submit_mod.job_entrypoint("python", "s", True) == (
        'J="$PWD" && cd "${HOME:-/tmp}" && CLOWNCAR_STORE= CLOWNCAR_STORE_FILE="$J/store.url" '
        'python -m clowncar sweep run "$J/spec.yaml" --name s --address auto --quiet')


class Head:
    """A job server that takes submissions, after answering `refusals` ones with `refusal`; each answer `takes`
    seconds of `clock`."""

    def __init__(self, refusals: int = 0, refusal: str = "", clock: Clock | None = None, takes: float = 0) -> None:
        self.refusals, self.refusal, self.jobs, self.clock, self.takes = refusals, refusal, [], clock, takes

    def submit_job(self, **kw: Any) -> str:
        if self.clock:
            self.clock.now += self.takes  # the answer takes this long
        if self.refusals:
            self.refusals -= 1
            raise RuntimeError(self.refusal)
        env = kw["runtime_env"]
        job, (code,) = Path(env["working_dir"]), [Path(p) for p in env["py_modules"]]
        store = job / submit_mod.STORE_FILE
        self.jobs.append({
            **{k: v for k, v in kw.items() if k != "runtime_env"}, "env": sorted(env),
            "job": sorted(p.name for p in job.iterdir()), "spec": yaml.safe_load((job / "spec.yaml").read_text()),
            "store": (store.read_text(), store.stat().st_mode & 0o777) if store.exists() else None,
            "code": code.name, "cli": (code / "cli.py").is_file(),
            "cache": any(p.name == "__pycache__" or p.suffix == ".pyc" for p in code.rglob("*"))})
        return kw["submission_id"]


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


@pytest.mark.parametrize("store", [None, "explicit"])
def test_submit_ships_the_package_and_the_spec_and_a_given_store_only_in_a_private_file(
        store: str | None, spec_file: Path, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'made-by-the-driver' / 'store.db'}" if store else None
    head = Head()
    monkeypatch.setattr(submit_mod, "_client", lambda address: head)
    job_id = submit_mod.submit(cmd.load_named_spec(spec_file, None), spec_file, ADDRESS, url)
    assert job_id == "clowncar-s-1000"
    assert head.jobs == [{
        "entrypoint": submit_mod.job_entrypoint("python", "s", bool(url)), "submission_id": job_id,
        "metadata": {"clowncar_sweep": "s"}, "env": ["py_modules", "working_dir"],
        "job": ["spec.yaml", "store.url"] if url else ["spec.yaml"], "spec": SPEC,
        "store": (url, 0o600) if url else None, "code": "clowncar", "cli": True, "cache": False}]
    assert not (tmp_path / "made-by-the-driver").exists()  # a store not made yet is left to the head to make


def test_submit_refuses_a_sweep_a_live_driver_holds_before_anything_is_shipped(
        spec_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.store.lease import LeaseHeld

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        store.acquire_lease("s", Claimant("tok", "pid 1 on elsewhere", machine="elsewhere"), ttl_s=600)
    head = Head()
    monkeypatch.setattr(submit_mod, "_client", lambda address: head)
    with pytest.raises(LeaseHeld) as refused:
        submit_mod.submit(cmd.load_named_spec(spec_file, None), spec_file, ADDRESS, url)
    assert refused.value.sweep == "s" and refused.value.exit_code == EXIT_BAD_INPUT and head.jobs == []


def test_submit_retries_a_head_whose_job_agent_is_not_up_yet_for_a_minute(
        spec_file: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = cmd.load_named_spec(spec_file, None)
    head = Head(refusals=31, refusal="No available agent to submit job, please try later.")
    monkeypatch.setattr(submit_mod, "_client", lambda address: head)
    assert submit_mod.submit(spec, spec_file, ADDRESS, None) == "clowncar-s-1000"
    # tried every 2 s; the try refused at the deadline (60 s) is still retried
    assert len(head.jobs) == 1 and clock.slept == [2] * 31 and clock.waited == 62
    clock.start, clock.slept = clock.now, []
    # each answer takes 1 s: refused at 1, 4, ... 58 s and retried, refused at 61 s and given up
    head = Head(refusals=21, refusal="No available agent to submit job, please try later.\nmore", clock=clock,
                takes=1.0)
    with pytest.raises(ClownCarError) as failed:
        submit_mod.submit(spec, spec_file, ADDRESS, None)
    assert str(failed.value) == (f"job submission to {ADDRESS} failed: No available agent to submit job, please "
                                 "try later.")
    assert failed.value.exit_code == EXIT_BAD_INPUT and head.jobs == [] and head.refusals == 0
    assert clock.slept == [2] * 20 and clock.waited == 61


def test_a_submission_refused_without_a_word_is_named_by_its_error_type(
        spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Silent:
        def submit_job(self, **_: Any) -> str:
            raise TimeoutError()

    monkeypatch.setattr(submit_mod, "_client", lambda address: Silent())
    with pytest.raises(ClownCarError) as failed:
        submit_mod.submit(cmd.load_named_spec(spec_file, None), spec_file, ADDRESS, None)
    assert str(failed.value) == f"job submission to {ADDRESS} failed: TimeoutError"


def test_the_job_ships_the_package_without_compiled_files_and_the_spec_under_its_fixed_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package with bytecode beside its sources (a __pycache__ folder, a stray .pyc): the job gets the sources."""
    from types import SimpleNamespace

    package = tmp_path / "site" / "clowncar"
    (package / "__pycache__").mkdir(parents=True)
    (package / "orchestrator" / "__pycache__").mkdir(parents=True)
    for source in ("__init__.py", "cli.py", "orchestrator/__init__.py", "orchestrator/tune.py"):
        (package / source).write_text("# source\n")
    for compiled in ("__pycache__/cli.cpython-312.pyc", "orchestrator/__pycache__/tune.cpython-312.pyc", "stale.pyc"):
        (package / compiled).write_bytes(b"\0")
    monkeypatch.setattr(submit_mod, "clowncar", SimpleNamespace(__file__=str(package / "__init__.py")))
    spec = tmp_path / "my-sweep.yml"
    spec.write_text("name: s\n")
    env = submit_mod.job_runtime_env(tmp_path / "tmp", spec, None)
    (code,) = env["py_modules"]
    assert sorted(env) == ["py_modules", "working_dir"] and Path(code).name == "clowncar"
    assert sorted(str(p.relative_to(code)) for p in Path(code).rglob("*")) == [
        "__init__.py", "cli.py", "orchestrator", "orchestrator/__init__.py", "orchestrator/tune.py"]
    assert [p.name for p in Path(env["working_dir"]).iterdir()] == ["spec.yaml"]
    assert (Path(env["working_dir"]) / "spec.yaml").read_text() == "name: s\n"


class Logs:
    """A job server's `get_job_logs` (text, or an exception) and `get_job_info(...).message`."""

    def __init__(self, logs: str | Exception, message: str | None = None) -> None:
        self.logs, self.message = logs, message

    def get_job_logs(self, job_id: str) -> str:
        assert job_id == JOB
        if isinstance(self.logs, Exception):
            raise self.logs
        return self.logs

    def get_job_info(self, job_id: str) -> Any:
        from types import SimpleNamespace

        if job_id != JOB:
            raise ValueError(f"no job {job_id}")
        return SimpleNamespace(message=self.message)


def test_the_last_error_of_a_job_skips_rays_info_lines_written_after_it() -> None:
    logs = ("clowncar: error: cannot open postgresql://u:s3cret@db/runs: connection refused\n\n"
            "2026-12-07 09:31:51,459\tINFO job_manager.py:581 -- Job supervisor actor exited.\n")
    assert submit_mod._last_error(Logs(logs), JOB) == "cannot open postgresql://u:***@db/runs: connection refused"


@pytest.mark.parametrize(("logs", "message", "said"), [
    (ConnectionError("the job server went away"), "Job entrypoint failed.\nURL postgresql://u:s3cret@db/x",
     "URL postgresql://u:***@db/x"),
    ("", "Job was stopped by the user.", "Job was stopped by the user."),
    ("\n  \n", None, "no log"), (ConnectionError("away"), "  ", "no log")],
    ids=["logs-unreadable", "logs-empty", "nothing", "blank-message"])
def test_a_job_without_log_lines_is_told_by_rays_message_else_as_having_no_log(
        logs: str | Exception, message: str | None, said: str) -> None:
    assert submit_mod._last_error(Logs(logs, message), JOB) == said
