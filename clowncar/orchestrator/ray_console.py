"""What Ray prints on the driver's console when a trial's actor or node dies, and where that text goes instead.

Measured with Ray 2.60 (a sweep whose trial actor is SIGKILLed): two things reach the console of `sweep run`.
- Tune's controller logs `ERROR tune_controller.py -- Trial task failed for trial ...` with the whole traceback
  of its `ray.get` (logger `ray.tune.execution.tune_controller`, on every failure, retried or not), unless
  TUNE_PRINT_ALL_TRIAL_ERRORS=0. The exception's text is written by Tune all the same, to the trial's `error.txt`
  in Ray's session dir, which the store callback copies into the trial's directory (`ray_error.txt`).
- Every driver's `ray_listen_error_messages` thread prints the errors the raylet and GCS publish (`(raylet) A
  worker died or was killed ...`, a node marked dead) to stdout with `ray._private.worker.print_to_stdstream`,
  whatever `log_to_driver` says; no setting turns it off. Those messages go to `trials/SWEEP/ray-errors.log`.
- At the end, `ray.tune.tune` logs `ERROR ... Trials did not complete: [run_trial_...]`, Tune's ids of what failed.
The console says one line per failure instead (record.py). CLOWNCAR_DEBUG=1 leaves Ray's console as it is.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RAY_ERRORS = "ray-errors.log"
"""In `RUNS_DIR/trials/SWEEP/`: the errors Ray published to the driver, and each failure Tune retried."""
TRIAL_ERROR = "ray_error.txt"
"""In a trial's directory: Ray's full text of every failure of that trial (Tune's error.txt)."""

_target: dict[str, Path] = {}


def debugging() -> bool:
    return bool(os.environ.get("CLOWNCAR_DEBUG"))


def quiet_ray_console(errors_log: Path) -> None:
    """Keep Ray's failure texts off the console, in `errors_log` and the trial directories, unless
    CLOWNCAR_DEBUG=1. Call before the Tuner is built: Tune's controller reads its variable when it is made."""
    if debugging():
        return
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # a user who set it to 1 keeps Tune's traces
    tune_log = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _IncompleteTrialsError) for f in tune_log.filters):
        tune_log.addFilter(_IncompleteTrialsError())
    import ray._private.worker as ray_worker

    _target["path"] = errors_log
    current = getattr(ray_worker, "print_to_stdstream", None)
    if current is not None and not getattr(current, "clowncar_diverted", False):
        ray_worker.print_to_stdstream = divert_published_errors(current)


class _IncompleteTrialsError(logging.Filter):
    """Drops Tune's end-of-fit `ERROR ... Trials did not complete: [run_trial_...]`: the trials it names are
    Tune's ids, each crashed one has had its own line, and the sweep's summary counts them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trials did not complete")


def divert_published_errors(original: Callable[[dict[str, Any], bool], None]) -> Callable[[dict[str, Any], bool], None]:
    """Ray's printer with the published errors (batches Ray marks `pid: raylet`) appended to the current target
    file instead; worker output (log_to_driver) passes through. A file that cannot be written: the console."""

    def print_to_stdstream(data: dict[str, Any], ignore_prefix: bool) -> None:
        path = _target.get("path")
        if data.get("pid") != "raylet" or path is None:
            original(data, ignore_prefix)
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                fh.writelines(f"{stamp} (raylet) {line}\n" for line in data.get("lines", []))
        except OSError:
            original(data, ignore_prefix)

    print_to_stdstream.clowncar_diverted = True  # type: ignore[attr-defined]
    return print_to_stdstream


def error_text(trial: Any) -> str:
    """Tune's error.txt of `trial` (every failure, each under `Failure # N (occurred at ...)`); '' if none."""
    path = getattr(trial, "error_file", None)
    if not path:
        return ""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def last_failure(text: str) -> str:
    """The last failure of an error.txt in one line: the exception a traceback ended with, or Ray's first line
    and the first sentence of its cause (`The actor is dead because its worker process has died.`)."""
    block = re.split(r"^Failure # \d+ \(occurred at [^)]*\)$", text, flags=re.M)[-1]
    lines = [line.rstrip() for line in block.splitlines() if line.strip()]
    if not lines:
        return ""
    if any(line.lstrip().startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1].strip()[:300]
    head = lines[0].strip()
    # the detail lines of an actor's death are indented (class_name, pid, ...); the cause follows them
    cause = next((line.strip() for line in lines[1:] if not line[0].isspace()), "")
    first_sentence = cause.split(". ")[0].rstrip(".")
    return (f"{head} {first_sentence}." if first_sentence else head)[:300]


_NODE_DIED = re.compile(r"its node has died|NodeDiedError|node \S* ?(?:has died|is dead|died)", re.I)
_UNREACHABLE = re.compile(r"ActorUnavailableError|The actor \S+ is unavailable|is temporarily unavailable")
_PROCESS_DIED = re.compile(r"ActorDiedError|The actor died unexpectedly|worker process has died")


def failure_cause(text: str) -> str:
    """What the last failure of an error.txt was, in words: a node Ray marked dead; an actor Ray lost contact
    with (ActorUnavailableError: measured when its node's raylet was killed, the walk's dead node); an actor
    whose own process died; anything else is the trainable's error."""
    block = re.split(r"^Failure # \d+ \(occurred at [^)]*\)$", text, flags=re.M)[-1]
    if _NODE_DIED.search(block):
        return "its node died"
    if _UNREACHABLE.search(block):
        return "its node died or stopped answering"
    if _PROCESS_DIED.search(block):
        return "its Ray actor's process died"
    return "its trainable raised an error" if block.strip() else "its Ray actor failed"
