"""store/retry.py's rules on their own, without a server: which errors mean that the server is away, and how
`retry_transient` spaces its tries and when it gives up (a fake clock: the sleeps move it)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from clowncar.store import retry
from clowncar.store.retry import is_transient, retry_transient


class Psycopg2Error(Exception):
    """psycopg2 names a server error's SQLSTATE `pgcode` (psycopg 3: `sqlstate`)."""

    def __init__(self, text: str, pgcode: str) -> None:
        super().__init__(text)
        self.pgcode = pgcode


class NoStateError(Exception):
    sqlstate = ""  # a driver error without a SQLSTATE: judged by its text


def test_psycopg2s_pgcode_counts_like_psycopg3s_sqlstate() -> None:
    assert is_transient(OperationalError("SELECT 1", {}, Psycopg2Error("x", "57P01")))
    assert not is_transient(OperationalError("SELECT 1", {}, Psycopg2Error("the connection is closed", "23505")))


def test_an_empty_sqlstate_leaves_the_verdict_to_the_text() -> None:
    assert is_transient(OperationalError("SELECT 1", {}, NoStateError("Connection refused")))
    assert not is_transient(OperationalError("SELECT 1", {}, NoStateError("disk full")))


def test_a_connection_sqlalchemy_invalidated_is_transient_whatever_its_text() -> None:
    assert is_transient(OperationalError("SELECT 1", {}, Exception("odd"), connection_invalidated=True))
    assert not is_transient(OperationalError("SELECT 1", {}, Exception("odd")))


def test_only_the_drivers_own_text_of_an_operational_error_is_read() -> None:
    # the statement (and its parameters) may quote anything: it is not the server speaking
    assert not is_transient(OperationalError("SELECT 'connection refused'", {}, Exception("disk full")))
    assert not is_transient(IntegrityError("SELECT 1", {}, Exception("connection refused")))


def test_the_chain_reads_every_cause_and_wrapped_error_once_even_in_a_cycle() -> None:
    wrapped, cause = Exception("wrapped"), Exception("cause")
    err = OperationalError("SELECT 1", {}, wrapped)
    err.__cause__ = cause
    cause.__cause__ = err  # a loop: must not be walked for ever
    assert sorted(map(id, itertools.islice(retry._chain(err), 10))) == sorted(map(id, (err, wrapped, cause)))


class Clock:
    """time.monotonic for retry.py: moves only when retry_transient sleeps."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, tries: list[int]) -> Callable[[], str]:
    """A call that is refused `times` times, then answers; more than 20 tries is a bug of the loop."""
    def call() -> str:
        tries[0] += 1
        if tries[0] > 20:
            raise RuntimeError("tried for ever")
        if tries[0] <= times:
            raise OperationalError("SELECT 1", {}, Exception("Connection refused"))
        return "ok"
    return call


def gave_up(err: BaseException, window: float) -> Exception:
    return LookupError(f"gave up after {window} s")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(retry.time, "monotonic", lambda: c.now)
    return c


def test_the_tries_back_off_from_half_a_second_doubling_up_to_five(clock: Clock) -> None:
    tries = [0]
    assert retry_transient(failing(7, tries), 100.0, gave_up, clock.sleep) == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0] and tries[0] == 8


def test_the_last_sleep_ends_at_the_deadline_and_a_failure_there_gives_up(clock: Clock) -> None:
    tries = [0]
    with pytest.raises(LookupError, match=r"gave up after 1\.0 s"):
        retry_transient(failing(99, tries), 1.0, gave_up, clock.sleep)
    assert clock.sleeps == [0.5, 0.5] and tries[0] == 3  # at 0, 0.5 and 1.0 (the deadline itself)


def test_a_window_of_zero_raises_the_first_failure_itself_and_a_short_one_still_retries(clock: Clock) -> None:
    tries = [0]
    with pytest.raises(OperationalError):
        retry_transient(failing(1, tries), 0.0, gave_up, clock.sleep)
    assert tries[0] == 1 and clock.sleeps == []
    tries = [0]
    assert retry_transient(failing(1, tries), 1.0, gave_up, clock.sleep) == "ok" and tries[0] == 2


def test_an_outage_is_named_from_psycopg2s_pgcode_as_from_psycopg3s_sqlstate() -> None:
    assert retry.away_reason(OperationalError("SELECT 1", {}, Psycopg2Error("x", "57P01"))) == "the server shut down"


def test_a_connection_dropped_without_a_code_or_a_known_phrase_is_named_as_lost() -> None:
    lost = OperationalError("SELECT 1", {}, Exception("odd"), connection_invalidated=True)
    assert is_transient(lost) and retry.away_reason(lost) == "the connection was lost"


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What this process says about outages, on a notice of the test's own (as a sweep sets it: announce_outages)."""
    lines: list[str] = []
    monkeypatch.setattr(retry, "_outage", retry.OutageNotice())
    retry.announce_outages(lines.append)
    return lines


def test_the_store_answering_again_says_how_long_it_was_away(clock: Clock, said: list[str]) -> None:
    clock.now = 1000.0  # a monotonic clock starts anywhere
    tries = [0]
    assert retry_transient(failing(3, tries), 100.0, gave_up, clock.sleep) == "ok"
    assert said == ["the store stopped answering (connection refused); the sweep waits for it, up to 100 s per read "
                    "or write (CLOWNCAR_STORE_RETRY_SECONDS)", "the store answers again, after 3.5 s; the sweep goes on"]


def test_a_store_retried_where_no_one_announces_outages_waits_in_silence(clock: Clock,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a sweep (`clowncar import`, `analyze`, the dashboard) nothing says where the lines go: the store is
    still waited for, without a word and without failing on the missing place."""
    monkeypatch.setattr(retry, "_outage", retry.OutageNotice())
    tries = [0]
    assert retry_transient(failing(2, tries), 100.0, gave_up, clock.sleep) == "ok" and tries[0] == 3
