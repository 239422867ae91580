"""A store whose PostgreSQL server restarts while a sweep writes and reads: the write waits for it
(`Store.retry_seconds`, `store/retry.py`) and lands once, every read waits and answers as before; a server away
longer than the window fails the write in one line without the password; an error that another try cannot cure
is raised at the first try. Every server here is this module's own (`restartable_pg`), on 127.0.0.1, stopped and
started as a maintenance restart does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from clowncar.errors import EXIT_FAILED, StoreError
from clowncar.orchestrator.start import StoreFailed, store_failure_fails_the_run
from clowncar.store import Store, open_store
from clowncar.store.pgserver import create_database, drop_database
from clowncar.store.retry import is_transient, retried_read, retried_write

PASSWORD = "hunter2-outage"
"""Carried in the URL (the test server trusts loopback, so it is never checked): it must show in no message."""
STEPS = [{"step": i, "kind": "C", "train_loss": 1.0 / i} for i in range(1, 6)]


@pytest.fixture
def pg_store(restartable_pg: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Store, Any]]:
    """A fresh database on the module's server, opened with a password in its URL, one sweep and one trial in
    it: (the store, the server). The server is running again after the test, whatever the test did."""
    name = f"outage_{request.node.name[5:40]}"
    url = create_database(restartable_pg.url, name).replace("postgres@", f"postgres:{PASSWORD}@")
    store = open_store(url)
    store.create_or_get_sweep("s", {})
    store.start_trial("s", "s/0", 0, 0, {"model": {"loops": 1}}, 1, "node-a")
    yield store, restartable_pg
    store.close()
    if not restartable_pg.running:
        restartable_pg.start()
    drop_database(restartable_pg.url, name)


def count_connects(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many connections the store has asked its engine for (one per try of a write): a one-item list."""
    calls, real = [0], store.engine.connect

    def counting() -> Any:
        calls[0] += 1
        return real()

    monkeypatch.setattr(store.engine, "connect", counting)
    return calls


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except Exception as err:
            out["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def wait_until(cond: Callable[[], bool], limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cond()


def test_a_write_made_while_the_server_restarts_lands_once_when_it_is_back(
        pg_store: tuple[Store, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store, server = pg_store
    store.retry_seconds = 60
    tries = count_connects(store, monkeypatch)
    server.stop()
    thread, out = in_thread(lambda: (store.start_trial("s", "s/1", 1, 0, {"model": {"loops": 2}}, 2, "node-b"),
                                     store.add_steps("s/1", 0, STEPS),
                                     store.finish_trial("s/1", 0, "ok", None, {"val_bpb": 1.25})))
    wait_until(lambda: tries[0] >= 2)  # refused, and tried again: the server is still down
    assert thread.is_alive() and not out
    server.start()
    thread.join(timeout=60)
    assert not thread.is_alive() and "error" not in out, out
    trials = store.trials_frame()
    assert sorted(trials["trial_uid"]) == ["s/0", "s/1"]
    assert list(store.steps_frame().query("trial_uid == 's/1'")["step"]) == [1, 2, 3, 4, 5]
    assert trials.set_index("trial_uid").loc["s/1", "status"] == "ok"


def lost_reply(body: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    """`body` whose first run commits and then fails as if the server's reply to COMMIT never arrived."""
    def run(self: Store, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        value = body(self, *args, **kwargs)
        if calls[0] == 1:
            raise OperationalError("COMMIT", {}, psycopg.errors.AdminShutdown(
                "terminating connection due to administrator command"))
        return value

    return run


@pytest.mark.parametrize("write", ["start_trial", "add_steps", "add_evals", "finish_trial", "add_artifact"])
def test_a_write_whose_commit_landed_but_whose_reply_was_lost_is_recorded_once(
        pg_store: tuple[Store, Any], monkeypatch: pytest.MonkeyPatch, write: str) -> None:
    store, _ = pg_store
    store.retry_seconds = 30
    calls = [0]
    retried = "_add_rows" if write == "add_evals" else write  # add_evals is _add_rows', retried as a whole
    monkeypatch.setattr(Store, retried, retried_write(lost_reply(getattr(Store, retried).__wrapped__, calls)))
    args: dict[str, tuple[Any, ...]] = {
        "start_trial": ("s", "s/1", 1, 0, {"model": {"loops": 2}}, 2, "node-b"),
        "add_steps": ("s/0", 0, iter(STEPS)),  # a generator too: the retry offers the same rows again
        "add_evals": ("s/0", 0, [{"step": 5, "val_loss": 2.0, "val_bpb": 1.5}]),
        "finish_trial": ("s/0", 0, "ok", None, {"val_bpb": 1.25, "steps": 5}),
        "add_artifact": ("s/0", 0, "/runs/s/0/model.ptz", 1000, 50, "ab" * 32)}
    getattr(store, write)(*args[write])
    assert calls[0] == 2  # it was retried, after the first try had committed
    counts = {"trials": len(store.trials_frame()), "steps": len(store.steps_frame()), "evals": len(store.evals_frame())}
    assert counts == {"trials": 1 + (write == "start_trial"), "steps": 5 * (write == "add_steps"),
                      "evals": write == "add_evals"}
    if write == "finish_trial":
        row = store.trials_frame().iloc[0]
        assert row["status"] == "ok" and row["val_bpb"] == 1.25


def every_read(store: Store) -> dict[str, Callable[[], Any]]:
    """Each public read of the store, its answer made plain (lists, dicts) to compare. Where a read takes names,
    they come as a generator: a retry must offer the same names again, not an exhausted one."""
    def names(*items: str) -> Iterator[str]:
        return iter(items)

    return {
        "trials_frame": lambda: store.trials_frame(sweeps=names("s"))[["trial_uid", "status"]].values.tolist(),
        "steps_frame": lambda: store.steps_frame(trial_uids=names("s/0"))["step"].tolist(),
        "evals_frame": lambda: len(store.evals_frame("s")),
        "probes_frame": lambda: len(store.probes_frame("s")),
        "named_evals_frame": lambda: len(store.named_evals_frame("s")),
        "artifacts_frame": lambda: len(store.artifacts_frame("s")),
        "sweeps_frame": lambda: store.sweeps_frame()["name"].tolist(),
        "sweep_names": store.sweep_names,
        "no_sweep_hint": lambda: store.no_sweep_hint("t"),
        "ranked_trials": lambda: store.ranked_trials("s"),
        "get_sweep": lambda: store.get_sweep("s"),
        "sweep_summary": lambda: store.sweep_summary("s"),
        "get_trial": lambda: store.get_trial("s/0"),
        "trial_states": lambda: store.trial_states("s"),
        "trial_sweeps": lambda: store.trial_sweeps(names("s/0", "s/9")),
        "max_step": lambda: store.max_step("s/0", 0),
        "get_lease": lambda: store.get_lease("s"),
    }


def test_every_read_made_while_the_server_restarts_answers_once_it_is_back(
        pg_store: tuple[Store, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store, server = pg_store
    store.add_steps("s/0", 0, STEPS)
    reads = every_read(store)
    before = {name: read() for name, read in reads.items()}
    assert before["steps_frame"] == [1, 2, 3, 4, 5] and before["trial_sweeps"] == {"s/0": "s"}
    server.stop()
    with pytest.raises(StoreError, match=r"^store read failed at .*Connection refused"):
        store.get_sweep("s")  # no window (a one-shot command): the first refusal is the answer
    store.retry_seconds = 60
    tries = count_connects(store, monkeypatch)
    running = {name: in_thread(read) for name, read in reads.items()}
    wait_until(lambda: tries[0] >= 2 * len(reads))  # each refused, and tried again: the server is still down
    assert all(thread.is_alive() for thread, _ in running.values())
    server.start()
    for thread, _ in running.values():
        thread.join(timeout=60)
    assert {name: out.get("value", out.get("error")) for name, (_, out) in running.items()} == before


@pytest.mark.parametrize("given", ["positional", "keyword"])
def test_a_read_cut_off_after_it_ran_is_read_again_with_the_same_names(
        pg_store: tuple[Store, Any], monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    store, _ = pg_store
    store.retry_seconds = 30
    calls = [0]
    monkeypatch.setattr(Store, "trials_frame", retried_read(lost_reply(Store.trials_frame.__wrapped__, calls)))
    names = iter(["s"])  # used up by the first try, which ran to its end before the connection dropped
    trials = store.trials_frame(names) if given == "positional" else store.trials_frame(sweeps=names)
    assert calls[0] == 2 and trials["trial_uid"].tolist() == ["s/0"]


def test_every_store_method_that_reads_is_retried() -> None:
    import inspect

    readers = [name for name, method in inspect.getmembers(Store, inspect.isfunction)
               if "self._read()" in inspect.getsource(inspect.unwrap(method))]
    assert {"_long_frame", "trials_frame", "get_sweep", "trial_states", "get_lease"} <= set(readers)
    retrying = retried_read(lambda self: None).__code__  # every retried method runs this same wrapper's code
    assert [name for name in readers if getattr(Store, name).__code__ is not retrying] == []


def test_a_store_away_longer_than_the_window_fails_the_run_in_one_line_without_the_password(
        pg_store: tuple[Store, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store, server = pg_store
    store.retry_seconds = 1.5
    tries = count_connects(store, monkeypatch)
    server.stop()
    with pytest.raises(StoreFailed) as failed, store_failure_fails_the_run():
        store.add_steps("s/0", 0, STEPS)
    message = str(failed.value)
    assert failed.value.exit_code == EXIT_FAILED
    assert tries[0] >= 2  # it did retry before it gave up
    assert "\n" not in message and PASSWORD not in message
    assert message.startswith(f"store write failed at postgresql+psycopg://postgres:***@127.0.0.1:{server.port}/")
    assert "Connection refused" in message and message.endswith("(still failing after 1.5 s of retries)")


def test_a_failure_that_another_try_cannot_cure_is_raised_at_the_first_try(
        pg_store: tuple[Store, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = pg_store
    store.retry_seconds = 60
    tries = count_connects(store, monkeypatch)
    with pytest.raises(StoreError, match="null value in column"):  # NOT NULL violation: an eval row without step
        store.add_evals("s/0", 0, [{"val_bpb": 1.5}])
    assert tries[0] == 1


def test_a_database_that_is_gone_is_not_waited_for(pg_store: tuple[Store, Any], restartable_pg: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = pg_store
    store.retry_seconds = 60
    name = store.engine.url.database
    drop_database(restartable_pg.url, name)  # ends the store's sessions too: the next write must reconnect
    tries = count_connects(store, monkeypatch)
    with pytest.raises(StoreError, match=f'database "{name}" does not exist'):
        store.add_steps("s/0", 0, STEPS)
    assert tries[0] == 1
    create_database(restartable_pg.url, name)  # for the fixture's own drop


def pg_error(cls: type[Exception], text: str) -> Exception:
    """A psycopg error as SQLAlchemy raises it: wrapped in `cls`, the driver's error as `orig`."""
    orig = {"57P01": psycopg.errors.AdminShutdown, "57P03": psycopg.errors.CannotConnectNow,
            "08006": psycopg.errors.ConnectionFailure, "08P01": psycopg.errors.ProtocolViolation,
            "23505": psycopg.errors.UniqueViolation}.get(text[:5], psycopg.OperationalError)(text)
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(("err", "transient"), [
    (pg_error(OperationalError, "57P01 terminating connection due to administrator command"), True),
    (pg_error(OperationalError, "57P03 the database system is starting up"), True),
    (pg_error(OperationalError, "08006 connection failure"), True),
    (pg_error(OperationalError, 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
                                "Connection refused"), True),
    (pg_error(OperationalError, "consuming input failed: server closed the connection unexpectedly"), True),
    (pg_error(OperationalError, "08P01 protocol violation"), False),
    (pg_error(IntegrityError, "23505 duplicate key value violates unique constraint"), False),
    (pg_error(OperationalError, 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
                                'FATAL:  password authentication failed for user "postgres"'), False),
    (pg_error(OperationalError, 'connection failed: FATAL:  database "x" does not exist'), False),
    (OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked")), False),
    (ProgrammingError("SELECT 'Connection refused'", {}, Exception("syntax error")), False),
])
def test_only_a_server_that_is_away_counts_as_transient(err: Exception, transient: bool) -> None:
    assert is_transient(err) is transient


def test_an_outage_waited_out_by_several_threads_is_one_line_when_it_begins_and_one_when_it_ends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tune's control thread and the callbacks write at once while the server is away: each of them retries, the
    console says it once, with the reason in words (the SQLSTATE's meaning, never the driver's message)."""
    from clowncar.store import retry

    said: list[str] = []
    monkeypatch.setattr(retry, "_outage", retry.OutageNotice())
    retry.announce_outages(said.append)
    away = threading.Event()
    away.set()

    def write() -> str:
        if away.is_set():
            raise pg_error(OperationalError, "57P01 terminating connection due to administrator command")
        return "landed"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(retry.retry_transient(
        write, 30, lambda e, w: RuntimeError("gave up"), sleep=lambda s: time.sleep(0.02)))) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    assert said == ["the store stopped answering (the server shut down); the sweep waits for it, up to 30 s per "
                    "read or write (CLOWNCAR_STORE_RETRY_SECONDS)"]
    away.clear()
    for t in threads:
        t.join(10)
    assert results == ["landed"] * 3
    assert len(said) == 2 and said[1].startswith("the store answers again, after ") and said[1].endswith(
        " s; the sweep goes on")
    # a write that lands at its first try says nothing; a failure no retry can cure says nothing either
    assert retry.retry_transient(lambda: "landed", 30, lambda e, w: RuntimeError("gave up")) == "landed"
    with pytest.raises(IntegrityError):
        retry.retry_transient(lambda: (_ for _ in ()).throw(pg_error(IntegrityError, "23505 duplicate key")), 30,
                              lambda e, w: RuntimeError("gave up"))
    assert len(said) == 2


@pytest.mark.parametrize(("err", "words"), [
    (pg_error(OperationalError, "57P03 the database system is starting up"),
     "the server is starting up or not yet accepting connections"),
    (pg_error(OperationalError, "08006 connection failure"), "connection failure, SQLSTATE 08006"),
    (pg_error(OperationalError, 'connection failed: connection to server at "db.example", port 5432 failed: '
                                "Connection refused"), "connection refused"),
])
def test_an_outage_is_named_by_its_kind_not_by_the_drivers_message(err: Exception, words: str) -> None:
    from clowncar.store.retry import away_reason

    assert away_reason(err) == words
