"""Ray's C++ log lines on a sweep driver's stderr, and where they go instead.

Once `ray.init` has made the driver's core worker, Ray's C++ code logs to the process's file descriptor 2 itself,
not through Python: `[2026-12-06 11:16:11,265 E 6894 6932] task_manager.cc:1545: Failed to push error to driver
...` (Ray's own lines), and `E1206 11:16:11.265 ... file.cc:91] ...` from gRPC and absl. When the Ray head dies
under a sweep, about 15 of them flooded the console (walk 2, finding 5). While a sweep runs, fd 2 is a pipe read
by a small router process (`python -m clowncar.orchestrator.native_stderr LOG`): a line in one of those two forms,
and the indented lines that continue it, are appended to the sweep's `ray-errors.log`; anything else written to fd
2 reaches the real stderr. Python's `sys.stderr` (clowncar's lines, tracebacks, warnings) is pointed at the real
stderr directly, so it does not depend on the router at all.

A process, not a thread: Ray's C++ may end the driver at once (`_Exit`, no Python clean-up), and a thread would lose
the lines still in the pipe, the fatal one among them; the router reads to the end of the pipe whatever ends the
driver. And a thread needs the GIL to drain the pipe, which a C++ call holding the GIL while it logs would never
give back once the pipe is full. When the pipe ends without the driver's `DONE` (the driver did not end by our
code) and the last fatal line says Ray ended it, the router says so in one `clowncar: error:` line.
CLOWNCAR_DEBUG=1 leaves the console as it is.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

RAY_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ([DIWEFC]) \d+ \d+\] \S+:\d+: ?(.*)")
"""Ray's own C++ log line: `[DATE TIME,ms SEVERITY PID TID] file:line: message`."""
ABSL_LINE = re.compile(rb"^([DIWEF])\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ?(.*)")
"""gRPC's and absl's: `E1206 11:16:11.265123  6894 file.cc:91] message`."""
DONE = b"\0clowncar: the driver restored its stderr\n"
"""Written by the driver as it takes fd 2 back: the pipe's end after it is no death by Ray's hand."""
IDLE_S = 0.2
"""A line without its newline yet is passed on after this long, so a prompt or a partial line is not held back."""
FATAL_WORDS = (b"The program will terminate", b"Terminating the process")


@dataclass
class _Diversion:
    router: subprocess.Popen[bytes]
    real_stderr_fd: int
    python_stderr: TextIO | None
    """sys.stderr before, when it was the fd-2 stream and was replaced."""


_current: list[_Diversion] = []


def divert(errors_log: Path) -> bool:
    """Send Ray's C++ lines on fd 2 to `errors_log` from now until `restore` (at exit at the latest). False when
    nothing changed: CLOWNCAR_DEBUG=1, already diverted, or no pipe or router process could be made."""
    if os.environ.get("CLOWNCAR_DEBUG") or _current:
        return False
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        read_end, write_end = os.pipe()
        router = subprocess.Popen([sys.executable, "-m", __name__, str(errors_log)], stdin=read_end,
                                  stdout=subprocess.DEVNULL, close_fds=True)
    except OSError:
        return False
    os.close(read_end)
    real = os.dup(2)  # not inherited by children (Python's default), so the router alone holds the real stderr
    os.dup2(write_end, 2)
    os.close(write_end)
    python_stderr = None
    if sys.stderr is sys.__stderr__ and _fileno(sys.stderr) == 2:
        python_stderr = sys.stderr
        sys.stderr = open(real, "w", buffering=1, closefd=False, encoding=sys.stderr.encoding,  # noqa: SIM115
                          errors=sys.stderr.errors)
    _current.append(_Diversion(router, real, python_stderr))
    atexit.register(restore)
    return True


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None


def restore(wait_s: float = 2.0) -> None:
    """Give fd 2 back to the real stderr and let the router pass on what is left in the pipe (at most `wait_s`).
    Safe to call twice, and at exit."""
    if not _current:
        return
    d = _current.pop()
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    if d.python_stderr is not None:
        replaced, sys.stderr = sys.stderr, d.python_stderr
        with contextlib.suppress(Exception):
            replaced.close()
    with contextlib.suppress(OSError):
        os.write(2, DONE)
    os.dup2(d.real_stderr_fd, 2)  # the pipe's last writer here is gone: the router reads to its end and exits
    os.close(d.real_stderr_fd)
    try:
        d.router.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:  # a process started meanwhile holds the pipe open: stop waiting for it
        d.router.kill()
        d.router.wait()


class Router:
    """Reads the driver's fd 2 and routes each line: Ray's (and their continuation lines) to the log file, the
    rest to the console."""

    def __init__(self, log_path: Path, console_fd: int = 2) -> None:
        self.log_path, self.console_fd = log_path, console_fd
        self.in_ray_line = False
        """The last line was Ray's: an indented line after it continues it (a stack trace's frames)."""
        self.partial_to: bool | None = None
        """Where the start of the current line went (True: the log) when it was passed on before its newline."""
        self.fatal: bytes | None = None
        self.done = False

    def line(self, text: bytes) -> None:
        if text.endswith(DONE):  # after a partial line, whose rest never comes: the line is passed on without it
            self.done, text = True, text[:-len(DONE)]
            if not text:
                return
        if self.partial_to is not None:
            to_log = self.partial_to
        else:
            match = RAY_LINE.match(text) or ABSL_LINE.match(text)
            to_log = bool(match) or (self.in_ray_line and text[:1] in (b" ", b"\t", b"*"))
            if match:
                severe = match.group(1) in (b"F", b"C") or any(w in text for w in FATAL_WORDS)
                self.fatal = match.group(2).strip() if severe else self.fatal
            self.in_ray_line = to_log
        self.partial_to = None if text.endswith(b"\n") else to_log
        self._write(text, to_log)

    def _write(self, text: bytes, to_log: bool) -> None:
        if to_log:
            try:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("ab", buffering=0) as fh:
                    fh.write(text)
                return
            except OSError:
                pass  # a log that cannot be written: the console rather than nowhere
        with contextlib.suppress(OSError):
            os.write(self.console_fd, text)

    def run(self, source_fd: int = 0) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([source_fd], [], [], IDLE_S if pending else None)
            if not ready:
                self.line(pending)
                pending = b""
                continue
            chunk = os.read(source_fd, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for text in lines:
                self.line(text + b"\n")
        if pending:
            self.line(pending)
        if self.fatal is not None and not self.done:
            said = " ".join(self.fatal.decode(errors="replace").split()).split(". ")[0].rstrip(".")
            self._write(f"clowncar: error: Ray ended the sweep's driver: {said} (Ray's lines are in "
                        f"{self.log_path})\n".encode(), to_log=False)


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole foreground group and `ray job stop` or `timeout` may signal it too: the router
    # outlives the driver's handling of them and ends when the pipe does
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    Router(Path(argv[0])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
