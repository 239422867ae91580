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
- When no waiting trial fits the whole cluster for a while (its only GPU node died), Tune warns with advice for
  rllib and Ray Train; the console says it in one clowncar line (`_TooSmallCluster`), the text goes to the log.
The console says one line per failure instead (record.py). CLOWNCAR_DEBUG=1 leaves Ray's console as it is.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clowncar.words import counted

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
    waiting_log = logging.getLogger(INSUFFICIENT_LOGGER)
    if not any(isinstance(f, _TooSmallCluster) for f in waiting_log.filters):
        waiting_log.addFilter(_TooSmallCluster())
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


INSUFFICIENT_LOGGER = "ray.tune.execution.insufficient_resources_manager"
ASKED = re.compile(r"You asked for (\S+) CPUs and (\S+) GPUs per trial, but the cluster only has (\S+) CPUs and "
                   r"(\S+) GPUs available")
"""Tune's words when no waiting trial fits the whole cluster (its insufficient-resources warning, Ray 2.60)."""


class _TooSmallCluster(logging.Filter):
    """Tune's warning that no waiting trial fits the cluster (it advises rllib's `num_workers` and a
    `ScalingConfig`) becomes one clowncar line on stderr; its text goes to the errors log. Seen when a sweep's only
    GPU node died and its trial waits to run again."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        path = _target.get("path")
        if path is not None:
            _append(path, [text])
        asked = ASKED.search(text)
        need = (f"a trial asks for {_count(asked[1], 'CPU')} and {_count(asked[2], 'GPU')}, and the cluster has "
                f"{_count(asked[3], 'CPU')} and {_count(asked[4], 'GPU')} in all" if asked else
                "no waiting trial fits the cluster's resources")
        where = f" (Ray's words: {path})" if path is not None else ""
        print(f"clowncar: waiting: {need}; the trials wait until nodes join or `clowncar sweep stop` ends the "
              f"sweep{where}", file=sys.stderr, flush=True)
        return False


def _count(text: str, noun: str) -> str:
    """Ray's resource figure as a person writes it: '8.0' as 8 GPUs, '1.0' as 1 GPU, '0.5' as 0.5 GPUs."""
    try:
        value = float(text)
    except ValueError:
        return f"{text} {noun}s"
    return counted(int(value), noun) if value.is_integer() else f"{value:g} {noun}s"


def _append(path: Path, lines: list[str]) -> bool:
    """Append stamped lines to an errors log; False when it cannot be written."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.writelines(f"{stamp} {line}\n" for line in lines)
    except OSError:
        return False
    return True


def divert_published_errors(original: Callable[[dict[str, Any], bool], None]) -> Callable[[dict[str, Any], bool], None]:
    """Ray's printer with the published errors (batches Ray marks `pid: raylet`) appended to the current target
    file instead; worker output (log_to_driver) passes through. A file that cannot be written: the console."""

    def print_to_stdstream(data: dict[str, Any], ignore_prefix: bool) -> None:
        path = _target.get("path")
        if data.get("pid") != "raylet" or path is None:
            original(data, ignore_prefix)
            return
        if not _append(path, [f"(raylet) {line}" for line in data.get("lines", [])]):
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
