"""What people see of a running trial: DIR/train.log and a progress line on the terminal.

Machines read events.jsonl, never these. On a terminal the progress bar redraws in place; when stderr is a
file or a pipe (under the orchestrator) one line is printed every few seconds, so a log never goes silent.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

PLAIN_EVERY_S = 5.0


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


class TrialLog:
    """train.log plus the progress display. Ranks other than 0 get `TrialLog(None)`, which does nothing."""

    def __init__(self, path: Path | None, total_steps: int = 0, cap_seconds: float = 0.0,
                 stream: TextIO | None = None) -> None:
        self.enabled = path is not None
        self._fh = path.open("a", encoding="utf-8") if path is not None else None
        self.total, self.cap = total_steps, cap_seconds
        self.stream = stream or sys.stderr
        self.tty = self.enabled and self.stream.isatty()
        self._last_plain = 0.0

    def line(self, text: str, echo: bool = True) -> None:
        if self._fh is None:
            return
        self._fh.write(text + "\n")
        self._fh.flush()
        if echo:
            self._print(text)

    def progress(self, step: int, kind: str, loss: float, tokens_per_s: float, elapsed_s: float) -> None:
        """Step, loss, throughput and what is left: time when capped (the cap, or the steps left at the pace so
        far when those end first), else the step count; nothing when neither is known."""
        if not self.enabled:
            return
        left = ""
        if self.cap > 0:
            left_s = self.cap - elapsed_s
            if self.total and step > 0:
                left_s = min(left_s, elapsed_s / step * (self.total - step))
            left = f", {_duration(left_s)} left"
        elif self.total:
            left = f", {self.total - step} steps left"
        frac = step / self.total if self.total else 0.0
        if self.cap > 0:
            frac = max(frac, elapsed_s / self.cap)
        text = (f"step {step}/{self.total} [{kind}] loss {loss:.4f} {tokens_per_s:,.0f} tok/s "
                f"{_duration(elapsed_s)} elapsed{left}")
        if self.tty:
            width = 24
            filled = min(int(frac * width), width)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
            self.stream.flush()
        else:
            now = time.monotonic()
            if step == 1 or step == self.total or now - self._last_plain >= PLAIN_EVERY_S:
                self._last_plain = now
                self.stream.write(text + "\n")
                self.stream.flush()

    def _print(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._fh is not None:
            if self.tty:
                self.stream.write("\n")
            self._fh.close()
            self._fh = None
