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
