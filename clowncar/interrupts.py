"""Ctrl-C and SIGTERM end a command the same way: exit code 130 and one line (`clowncar: error: interrupted`).

Python turns SIGINT into a KeyboardInterrupt, which the entry point (`clowncar.cli`) says as one line; SIGTERM
(`timeout`, `kill`, `docker stop`, `ray job stop`) would end the process at once, exit 143 and nothing said,
before any clean-up. `interrupt_on_signals` makes SIGTERM a KeyboardInterrupt too, and records that a signal
came, for code under a library that swallows KeyboardInterrupt (bottle's server, under `clowncar dashboard`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

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
        yield came
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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
        # our clean-up and Ray's shutdown take longer. Nothing of ours sets an alarm.
        signal.alarm(0)
        raise KeyboardInterrupt from None
    finally:
        if old is not None:  # None: a handler not set from Python, which cannot be set back
            signal.signal(signal.SIGTERM, old)
