"""Riding out a short store outage: bounded retries of transient connection failures, nothing else.

A PostgreSQL server that restarts (maintenance, a minor upgrade, a failover) ends its open sessions (57P01
admin_shutdown), refuses connections for a few seconds, then answers "starting up" (57P03) until it is ready.
A sweep driver that writes in that window retries the whole transaction with backoff, for at most its window
(`CLOWNCAR_STORE_RETRY_SECONDS`); then it fails as before. Errors that another try cannot cure (a constraint,
a wrong password, a missing database, a schema that is too new) are raised at once.

SQLite is never retried here: its one failure of that kind, "database is locked", already waits in the driver
(busy_timeout, BEGIN IMMEDIATE: `engine._sqlite_setup`), and its messages match nothing below.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from clowncar.errors import StoreError

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0
"""Backoff between tries: 0.5, 1, 2, 4, 5, 5 ... s. A restart takes a few seconds; a long outage costs one
connection attempt per 5 s, nothing a recovering server notices."""

_SQLSTATES = {"57P01", "57P02", "57P03"}
"""admin_shutdown, crash_shutdown, cannot_connect_now; plus the connection exceptions of class 08 (below)."""

_TEXTS = (
    # libpq reports a failed connect as text without a SQLSTATE: only these texts mean "the server is away"
    "connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "terminating connection due to administrator command",
    "server closed the connection unexpectedly",
    "the connection is closed",
    "the connection is lost",
    "could not receive data from server",
    "could not send data to server",
    "consuming input failed",
    "connection timeout expired",
    "connection reset by peer",
    "no connection to the server",
)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err`, the DBAPI error SQLAlchemy wraps (`orig`), and the causes below them. An implicit context is left
    out: an error raised while handling a transient one is what happened last, and is judged by itself."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__]


def is_transient(err: BaseException) -> bool:
    """Whether `err` says only that the database server is away for now (restarting, not yet accepting, the
    connection dropped), so that the same transaction may succeed once it is back."""
    from sqlalchemy.exc import DBAPIError

    for e in _chain(err):
        marked = getattr(e, "transient", None)  # a StoreError made from a database error (engine.store_error)
        if isinstance(marked, bool):
            return marked
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)  # psycopg 3, psycopg2
        if isinstance(state, str) and state:
            # 08P01 (protocol violation) would fail the same way again: not a connection that went away
            return state in _SQLSTATES or (state.startswith("08") and state != "08P01")
        if isinstance(e, DBAPIError) and e.connection_invalidated:  # SQLAlchemy's own "disconnect" verdict
            return True
    # the driver's own message: a StatementError's text also holds the statement and its parameters; each error's
    # text alone, so that a phrase never spans two of them
    texts = [str(e.orig if isinstance(e, DBAPIError) else e).lower() for e in _chain(err) if _is_operational(e)]
    return any(t in text for text in texts for t in _TEXTS)


def _is_operational(e: BaseException) -> bool:
    """An OperationalError of SQLAlchemy or of any DBAPI driver (psycopg, psycopg2): the class connection
    failures belong to. An IntegrityError or a ProgrammingError never is, whatever its text says."""
    return any(c.__name__ == "OperationalError" for c in type(e).__mro__)


def retry_transient(call: Callable[[], T], window_s: float, gave_up: Callable[[BaseException, float], Exception],
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, tried again after a transient failure (`is_transient`) with backoff, for at most `window_s`
    seconds from the first failure; then `gave_up(last error, window_s)` is raised. Any other error is raised
    at once. `call` must be a whole transaction that is safe to repeat: its COMMIT may have landed though its
    reply was lost."""
    delay, deadline = FIRST_DELAY_S, None
    while True:
        try:
            result = call()
        except Exception as err:
            if window_s <= 0 or not is_transient(err):
                raise
            now = time.monotonic()
            deadline = now + window_s if deadline is None else deadline
            if now >= deadline:
                raise gave_up(err, window_s) from None
            _outage.began(err, window_s)
            sleep(min(delay, deadline - now))
            delay = min(delay * 2, MAX_DELAY_S)
        else:
            if deadline is not None:
                _outage.ended()
            return result


class OutageNotice:
    """One console line when the store stops answering and one when it answers again, however many threads wait
    for it meanwhile: a driver that goes quiet for a minute looks hung. Silent until `say` is set (the sweep
    driver sets it while its sweep runs: `announce_outages`)."""

    def __init__(self) -> None:
        self.say: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._since: float | None = None

    def began(self, err: BaseException, window_s: float) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        if self.say is not None:
            self.say(f"the store stopped answering ({away_reason(err)}); the sweep waits for it, up to "
                     f"{window_s:g} s per read or write (CLOWNCAR_STORE_RETRY_SECONDS)")

    def ended(self) -> None:
        with self._lock:
            since, self._since = self._since, None
        if since is not None and self.say is not None:
            self.say(f"the store answers again, after {time.monotonic() - since:.1f} s; the sweep goes on")


_outage = OutageNotice()


def announce_outages(say: Callable[[str], None] | None) -> None:
    """Where this process says that the store went away and came back (None: nowhere)."""
    _outage.say = say


_STATE_WORDS = {"57P01": "the server shut down", "57P02": "the server crashed",
                "57P03": "the server is starting up or not yet accepting connections"}


def away_reason(err: BaseException) -> str:
    """In a few words why a transient failure counts as the server being away: the SQLSTATE's meaning or the
    phrase of the driver's message that matched (never the message itself, which may name more than that)."""
    for e in _chain(err):
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and state:
            return _STATE_WORDS.get(state, f"connection failure, SQLSTATE {state}")
    texts = [str(e).lower() for e in _chain(err)]
    return next((t for t in _TEXTS if any(t in text for text in texts)), "the connection was lost")


F = TypeVar("F", bound=Callable[..., Any])


def retried_write(method: F) -> F:
    """A `Store` write retried as a whole transaction while the store is away for a moment (`Store.retry_seconds`,
    `retry.retry_transient`). Only writes that are safe to repeat carry it: their COMMIT may have landed with
    its reply lost, so the second run must find its rows there and change nothing (insert-if-absent on a
    natural key, an upsert, an UPDATE to fixed values). Inside `transaction()` the caller's block is the
    transaction, so nothing is retried here: a statement cannot be replayed alone."""
    return _retried(method)


def retried_read(method: F) -> F:
    """A `Store` read retried as a whole while the store is away for a moment, in the same window and by the same
    rules as `retried_write`. A read is always safe to repeat; a read made inside `transaction()` belongs to that
    transaction and is not retried alone. Where one retried read calls another, the inner one's give-up is no
    transient failure: the outer one raises it at once, so the window is never spent twice."""
    return _retried(method)


def _retried(method: F) -> F:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self._local, "conn", None) is not None or self.retry_seconds <= 0:
            return method(self, *args, **kwargs)
        # arguments given as a generator would be used up by the first try: a retry must offer the same again
        args = tuple(list(a) if isinstance(a, Iterator) else a for a in args)
        kwargs = {k: list(v) if isinstance(v, Iterator) else v for k, v in kwargs.items()}
        return retry_transient(lambda: method(self, *args, **kwargs), self.retry_seconds, _gave_up)

    return call  # type: ignore[return-value]


def _gave_up(err: BaseException, window_s: float) -> StoreError:
    return StoreError(f"{err} (still failing after {window_s:g} s of retries)")
