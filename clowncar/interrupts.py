"""Ctrl-C and SIGTERM end a command the same way: exit code 130 and one line (`clowncar: error: interrupted`).

Python turns SIGINT into a KeyboardInterrupt, which the entry point (`clowncar.cli`) says as one line; SIGTERM
(`timeout`, `kill`, `docker stop`, `ray job stop`) would end the process at once, exit 143 and nothing said,
before any clean-up. `interrupt_on_signals` makes SIGTERM a KeyboardInterrupt too, and records that a signal
came, for code under a library that swallows KeyboardInterrupt (bottle's server, under `clowncar dashboard`)."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Any

from clowncar.errors import EXIT_INTERRUPTED, ClownCarError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(ClownCarError):
    """Ctrl-C or SIGTERM stopped a command."""

    exit_code = EXIT_INTERRUPTED


@contextmanager
def interrupt_on_signals(on_signal: Callable[[], None] | None = None) -> Iterator[threading.Event]:
    """While inside, SIGTERM and SIGINT call `on_signal`, set the yielded event and raise KeyboardInterrupt; the
    old handlers come back on the way out. Off the main thread (where Python cannot set handlers) nothing
    changes and the event is never set."""
    came = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield came
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        came.set()
        if on_signal is not None:
            on_signal()
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        with lost_interrupts_unsaid():
            yield came
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def lost_interrupts_unsaid() -> Iterator[None]:
    """While inside, a KeyboardInterrupt that Python could not raise is dropped without a word: a signal handler
    runs between any two bytecodes, also inside a weakref callback or a `__del__`, where an exception only gets
    `Exception ignored in ...` and a traceback on stderr (seen after a second Ctrl-C during a sweep's clean-up).
    The handlers here record the signal before they raise, so nothing is lost but the traceback."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not KeyboardInterrupt:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


@contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGTERM and SIGINT are ignored while inside: for a short clean-up after an interrupt, which a second
    Ctrl-C would otherwise cut short and leave half done (the command ends with 130 all the same)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def clean_up_unless_forced(notice: Callable[[], str]) -> Iterator[threading.Event]:
    """For the clean-up after a command was told to stop (Ctrl-C or SIGTERM): while inside, the first SIGTERM or
    SIGINT is answered with one line, `clowncar: ` + `notice()` on stderr (what the clean-up does, and that one more
    cuts it short), and the clean-up goes on; the next raises KeyboardInterrupt (again at each one after, should
    Python lose it: `lost_interrupts_unsaid`), and the yielded event then says the clean-up was forced out. An
    impatient second Ctrl-C cut a sweep's clean-up short without a word, left its trials marked running, and the
    line said no trial had started (walk 5, F12). The old handlers come back on the way out; off the main thread
    nothing changes."""
    forced = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield forced
        return
    said: list[bool] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.alarm(0)  # the abort that Ray's C++ failure handler arms for a SIGTERM (sigterm_handler_kept)
        if said:
            forced.set()
            raise KeyboardInterrupt
        said.append(True)
        with contextlib.suppress(Exception):  # a line lost (stderr mid-write, closed) must not stop the clean-up
            print(f"clowncar: {notice()}", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        with lost_interrupts_unsaid():
            yield forced
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)


def signals_ignored_to_the_end() -> None:
    """SIGTERM and SIGINT ignored from now until the process ends: an exit handler the entry point registers before
    any command runs, so that it runs after the exit handlers registered later (Ray's shutdown among them: one that
    hangs can still be stopped), once the command's output and exit code are final. Python then finalizes, and its
    last garbage collection takes seconds after a sweep (2 s measured on 2 busy cores, in gc_collect_main), in
    which SIGTERM had its default action again: the summary printed, then exit -15 (2 in 2 sent 1.8 and 2.2 s
    after the last trial's result)."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)


@contextmanager
def sigterm_handler_kept() -> Iterator[None]:
    """For a library call that sets a SIGTERM handler of its own: `ray.init` sets one that calls `sys.exit(15)`,
    so a SIGTERM while Ray starts ended the command with exit code 15, no line, and none of our clean-up. Inside,
    that exit is a KeyboardInterrupt, as a SIGTERM is everywhere else; on the way out the handler from before the
    block is back (Ray's stays set after `ray.init` returns, until the sweep sets its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGTERM)
    try:
        yield
    except SystemExit as err:
        # only the exit of a handler the block set: a sys.exit(15) of the block's own code is left as it is
        if err.code != signal.SIGTERM or signal.getsignal(signal.SIGTERM) == old:
            raise
        # Once Ray's core worker is up, a SIGTERM goes first through its C++ failure handler (absl's), which logs
        # it, passes it on to the Python handler and arms a 3 s alarm that aborts the process (exit -6, measured):
        # our clean-up and Ray's shutdown take longer. Nothing of ours sets an alarm. (The driver now connects
        # without that handler, `without_ray_failure_handler`; this stays for a Ray that ignores the switch.)
        signal.alarm(0)
        raise KeyboardInterrupt from None
    finally:
        if old is not None:  # None: a handler not set from Python, which cannot be set back
            signal.signal(signal.SIGTERM, old)


@contextmanager
def signals_held() -> Iterator[threading.Event]:
    """SIGTERM and SIGINT are held while inside, and acted on at once on the way out: the old handlers come back
    and, if one came, a KeyboardInterrupt is raised (in place of whatever else ended the block: the user asked to
    stop). For a stretch of library code that an exception must not cut in two; the yielded event says whether a
    signal came. Off the main thread nothing changes."""
    came = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield came
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        came.set()
        signal.alarm(0)  # the abort that Ray's C++ failure handler arms for a SIGTERM (sigterm_handler_kept)

    old = {s: signal.signal(s, hold) for s in SIGNALS}
    try:
        yield came
    finally:
        for s, h in old.items():  # None: a handler set outside Python; the default beats holding them forever
            signal.signal(s, signal.SIG_DFL if h is None else h)
        if came.is_set():
            signal.alarm(0)
            raise KeyboardInterrupt


@contextmanager
def held_from_ray_connect() -> Iterator[None]:
    """Around `ray.init`: SIGTERM and SIGINT are held (`signals_held`) from the moment `ray.init` connects this
    process as a driver until it returns. Connecting creates Ray's core worker, whose C++ side starts its threads
    (`worker.io`) and takes about a second; a KeyboardInterrupt in that stretch (just after the core worker is
    made, before Ray keeps it) left a core worker that nothing shut down, and the process died of SIGSEGV at exit
    (exit -11 instead of 130: 10 Ctrl-C in 10 and 5 SIGTERM in 5 sent when `worker.io` appeared; 0 since). Before
    the connect a signal still stops `ray.init` at once (the node's start can take long); a held one is acted on
    when `ray.init` returns, a second or two later. A Ray without `connect` holds them for all of `ray.init`."""
    # entered into `held`, not around the call: the signals stay held after `connect` returns
    with contextlib.ExitStack() as held, \
            each_ray_connect_in(lambda: contextlib.nullcontext(held.enter_context(signals_held()))) as wrapped:
        if not wrapped:
            held.enter_context(signals_held())
        yield


@contextmanager
def each_ray_connect_in(context: Callable[[], AbstractContextManager[Any]]) -> Iterator[bool]:
    """While inside, every call of Ray's private `worker.connect` (which makes the driver's core worker, inside
    `ray.init`) runs in a fresh `context()`; Ray's own function is put back after. Yields False, wrapping nothing,
    for a Ray without `connect`."""
    import ray._private.worker as ray_worker

    connect = getattr(ray_worker, "connect", None)
    if connect is None:
        yield False
        return

    @functools.wraps(connect)
    def connect_within(*args: Any, **kwargs: Any) -> Any:
        with context():
            return connect(*args, **kwargs)

    ray_worker.connect = connect_within
    try:
        yield True
    finally:
        ray_worker.connect = connect


@contextmanager
def without_ray_failure_handler() -> Iterator[None]:
    """Around `ray.init`: this process connects as a Ray driver without Ray's C++ failure-signal handler (absl's).
    Ray installs it, SIGTERM among its signals, when it makes the driver's core worker, and `ray.shutdown` takes it
    out again by setting SIGTERM to the default action at the OS level, whatever Python has put there since:
    Python still believes SIG_IGN (`signals_ignored`) is in place, and a SIGTERM in the rest of the shutdown (a
    second or so while Ray's processes are stopped, just after a sweep's last result) killed the driver: exit
    -15, no line, no summary (8 in 8 sent 0.7-1.3 s after the result; /proc showed SIGTERM neither caught nor
    ignored). A handler never installed is never taken out. Ray's own processes read the switch from their
    environment, not from this module, and keep theirs; the driver loses absl's stack dump of a crash in Ray's
    C++ code, while a SIGTERM already ended up in our handlers."""
    import ray._private.ray_constants as ray_constants

    switch = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"  # read by Ray's core worker when it is made
    old = getattr(ray_constants, switch, False)
    setattr(ray_constants, switch, True)
    try:
        yield
    finally:
        setattr(ray_constants, switch, old)
