"""`sweep stop` in this process, without Ray: only the sweep's live jobs are stopped and waited for (at most a
minute, polled every half second), then its running trials are closed, counted once whoever marked them; a store
this machine has not got is not made, and a study whose database is away is one line naming the jobs stopped. Then
`close_stopped`, the clean-up both a stop and a stopped driver run. The job server is a fake (submit_fakes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator import submit as submit_mod
from clowncar.store import open_store

from .submit_fakes import ADDRESS, SPEC, Clock, serve, use_clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return use_clock(monkeypatch)


class Jobs:
    """A job server with the jobs `listed` (submission id, status, sweep); a stopped job's status answers
    `RUNNING` for `stops_after` more polls, then `STOPPED`, in Ray's "JobStatus.X" form."""

    def __init__(self, listed: list[tuple[str, str, str]], stops_after: int | None = 0) -> None:
        from types import SimpleNamespace

        self.listed = [SimpleNamespace(submission_id=j, status=st, metadata={"clowncar_sweep": sw})
                       for j, st, sw in listed]
        self.stops_after, self.stopped, self.polls = stops_after, [], []

    def list_jobs(self) -> list[Any]:
        return self.listed

    def stop_job(self, job_id: str) -> None:
        self.stopped.append(job_id)

    def get_job_status(self, job_id: str) -> str:
        assert job_id in self.stopped
        self.polls.append(job_id)
        ended = self.stops_after is not None and self.polls.count(job_id) > self.stops_after
        return "JobStatus.STOPPED" if ended else "JobStatus.RUNNING"


def running_sweep(url: str) -> None:
    """Sweep `s` with trial s/0 running, and s/1 stopped by an earlier stop (which this stop does not count)."""
    with open_store(url) as store:
        store.create_or_get_sweep("s", SPEC, source="run")
        store.start_trial("s", "s/1", 1, 0, {}, 1337, "node")
        store.close_running("s", "stopped", "sweep stopped")
        store.start_trial("s", "s/0", 0, 0, {}, 1337, "node")
        store.set_sweep_status("s", "running", None)


@pytest.mark.parametrize("listed", [
    [("job-s", "RUNNING", "s")],
    [("job-s", "JobStatus.RUNNING", "s"), ("job-old", "SUCCEEDED", "s"), ("job-older", "JobStatus.FAILED", "s"),
     ("job-other", "PENDING", "other")]], ids=["one-job", "with-ended-and-others"])
def test_stop_stops_only_the_sweeps_live_jobs_and_waits_for_them_before_closing_its_trials(
        listed: list[tuple[str, str, str]], tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that ended already, in either of Ray's spellings of a status, is neither stopped nor counted."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    running_sweep(url)
    jobs = Jobs(listed, stops_after=3)
    serve(monkeypatch, jobs)
    closing: list[list[str]] = []
    real_close = submit_mod.close_after_stop
    monkeypatch.setattr(submit_mod, "close_after_stop", lambda name, store_url, n: closing.append(list(jobs.polls))
                        or real_close(name, store_url, n))
    assert submit_mod.stop("s", ADDRESS, url) == (1, 1)
    assert jobs.stopped == ["job-s"] and clock.slept == [0.5] * 3 and clock.waited == 1.5
    assert closing == [["job-s"] * 4]  # its trials closed once the job had stopped
    with open_store(url) as store:
        assert store.trial_states("s") == {"s/0": (0, "stopped"), "s/1": (0, "stopped")}
        assert store.get_sweep("s")["status"] == "stopped"


def test_stop_waits_a_minute_at_most_for_a_job_that_does_not_stop(
        tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    running_sweep(url)
    serve(monkeypatch, Jobs([("job-s", "RUNNING", "s")], stops_after=None))
    assert submit_mod.stop("s", ADDRESS, url) == (1, 1)
    assert clock.waited == 60.0 and set(clock.slept) == {0.5}


def test_stop_with_a_store_this_machine_has_not_got_makes_none_here(
        tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nor does the count of what it stopped: the store's own error says where it looked."""
    from clowncar.errors import StoreError

    url = f"sqlite:///{tmp_path / 'store.db'}"
    jobs = Jobs([("job-s", "RUNNING", "s")])
    serve(monkeypatch, jobs)
    with pytest.raises(StoreError) as failed:
        submit_mod.stop("s", ADDRESS, url)
    assert str(failed.value) == f"no store at {url} (nothing has been written there yet)"
    assert jobs.stopped == ["job-s"] and not (tmp_path / "store.db").exists()


def transient_optuna_error() -> Exception:
    """What Optuna raises when the database went away under the study: its own error over SQLAlchemy's."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import OperationalError

    err = StorageInternalError("An exception is raised during the commit. This typically happens due to ...")
    err.__cause__ = OperationalError("SELECT 1", {}, Exception(
        "connection to server at \"db\" (10.0.0.5), port 5432 failed: Connection refused\n\tIs the server running?"))
    return err


def test_stop_with_the_study_away_names_the_jobs_it_stopped_and_the_studys_store_error(
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.errors import StoreError

    url = "postgresql+psycopg://u:s3cret@db:5432/runs"

    def close_stopped(name: str, store_url: str) -> int:
        raise transient_optuna_error()

    monkeypatch.setattr(submit_mod, "close_stopped", close_stopped)
    monkeypatch.setattr(submit_mod, "_attempt_states", lambda name, store_url: {})
    serve(monkeypatch, Jobs([("job-s", "RUNNING", "s"), ("job-t", "RUNNING", "s")]))
    with pytest.raises(StoreError) as failed:
        submit_mod.stop("s", ADDRESS, url)
    assert str(failed.value) == (
        "stopped 2 job(s) of sweep s, but the store did not answer (the study's store failed at "
        "postgresql+psycopg://u:***@db:5432/runs: connection to server at \"db\" (10.0.0.5), port 5432 failed: "
        "Connection refused): its trials may still be marked running; once the store is back, run this command "
        "again, or `clowncar sweep resume s`, which closes them")


def test_a_stops_clean_up_closes_and_queues_each_running_trial_of_its_own_study_only(world: Any) -> None:
    """Trials running in the study that never reached the store count as closed (the store closes none of them);
    a finished trial and a copy queued by an earlier stop are left as they are; the study of another sweep in the
    same database keeps its running trial. Closed trials and attempts say why: the sweep was stopped."""
    import optuna
    from optuna.trial import TrialState

    from clowncar.orchestrator.search import CLOSED, NUMBER

    directions = ["minimize"] * len(world.spec.metrics())
    world.study = optuna.create_study(study_name="rs", storage=world.url, directions=directions)
    other = optuna.create_study(study_name="other", storage=world.url, directions=directions)
    other.ask()
    done = world.study.ask()
    done.set_user_attr(NUMBER, 0)
    world.study.tell(done, [2.0] * len(directions))
    world.running(1, 1)
    world.running(2, 2)
    world.running(3, 3)
    world.stored(3, 0, "running")
    world.study.enqueue_trial({"model.crawler_loops": 4})  # queued by an earlier stop

    assert submit_mod.close_stopped("rs", world.url) == 3
    states = sorted((t.user_attrs.get(NUMBER, -1), t.state.name) for t in world.study.get_trials())
    assert states == [(-1, "WAITING"), (0, "COMPLETE"), (1, "FAIL"), (1, "WAITING"), (2, "FAIL"), (2, "WAITING"),
                      (3, "FAIL"), (3, "WAITING")]
    assert {world.trial(n, 0).user_attrs[CLOSED] for n in (1, 2, 3)} == {"sweep stopped"}
    assert world.attempt(3, 0)["status"] == "stopped" and world.attempt(3, 0)["reason"] == "sweep stopped"
    assert [t.state for t in other.get_trials()] == [TrialState.RUNNING]
