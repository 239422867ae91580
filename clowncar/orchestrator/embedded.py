"""Embedded Ray (the default `sweep run` / `sweep resume`): what a SIGKILLed driver leaves behind.

When the driver of an embedded `ray.init` is SIGKILLed, GCS, raylet and the trial actors die with it (and the
workers with them, by PDEATHSIG), but Ray 2.60's `ray::DashboardAgent` and `ray::RuntimeEnvAgent` do not: they
notice the raylet is gone, then block for up to 60 s trying to report it to the GCS that died too, re-parented
to PID 1 (measured; reference/ray_tune_optuna_facts.md section 6). So every embedded driver records its Ray
process tree (PID and start time) in `RUNS_DIR/ray-embedded/DRIVER_PID.json`, deletes the record when it ends
normally, and the next embedded start kills, by PID, what a dead driver's record still lists. The start time
guards against a reused PID: a process that is not the one recorded is never touched. While `ray.init` runs the
record is kept up to date (`recorded_while_starting`), so a driver SIGKILLed then is reaped too; one interrupted
then kills what it started itself (`kill_started_since`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

RECORDS = "ray-embedded"


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...), None if the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None if it is gone or a zombie."""
    fields = _stat(pid)
    return None if fields is None or fields[0] == "Z" else int(fields[19])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (fields := _stat(d.name)) is not None:
            tree.setdefault(int(fields[1]), []).append(int(d.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def snapshot() -> set[tuple[int, int]]:
    """This process's descendants as (PID, start time); empty off Linux."""
    if start_time(os.getpid()) is None:
        return set()
    return {(p, t) for p in descendants(os.getpid()) if (t := start_time(p)) is not None}


def kill_started_since(before: set[tuple[int, int]]) -> list[int]:
    """SIGKILL every descendant of this process that is not in `before` (a `snapshot`); returns their PIDs.

    For an embedded `ray.init` that did not return (Ctrl-C, SIGTERM, a failure): Ray has it shut down at exit
    only once its node is up, and the raylet's dashboard and runtime-env agents, started a few seconds before
    that, outlive it (measured: Ctrl-C just after they start leaves both running). While this process lives they
    are still its descendants, found through the raylet; all are listed before any is killed."""
    new = snapshot() - before
    killed = []
    for pid, _ in sorted(new):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


@contextlib.contextmanager
def killed_unless_started() -> Iterator[None]:
    """What the block starts (an embedded `ray.init`) is killed if the block does not end normally: Ctrl-C,
    SIGTERM (Ray's own handler, set inside `ray.init`, exits) or a failure."""
    before = snapshot()
    try:
        yield
    except BaseException:
        from clowncar.interrupts import signals_ignored

        with signals_ignored():  # a second Ctrl-C must not cut the clean-up short
            kill_started_since(before)
        raise


def record(runs_dir: Path) -> Path | None:
    """Write this driver's Ray process tree; returns the record to delete at a normal end (None off Linux)."""
    me = start_time(os.getpid())
    if me is None:
        return None
    procs = [[p, t] for p in descendants(os.getpid()) if (t := start_time(p)) is not None]
    path = _record_path(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"driver": [os.getpid(), me], "procs": procs}))
    tmp.replace(path)
    return path


def _record_path(runs_dir: Path) -> Path:
    return runs_dir / RECORDS / f"{os.getpid()}.json"


@contextlib.contextmanager
def recorded_while_starting(runs_dir: Path, every: float = 0.5) -> Iterator[None]:
    """While the block runs (an embedded `ray.init`: seconds), this driver's record is written again every `every`
    seconds with what it has started so far. A driver SIGKILLed inside `ray.init` used to leave no record, and
    Ray's dashboard and runtime-env agents, up seconds before `ray.init` returns, lived on for 60 s that the next
    start did not shorten (measured: both alive 60 s after a SIGKILL sent as the dashboard agent appeared,
    through another sweep's whole run). A block that fails takes its record away (what it started is killed:
    `killed_unless_started`); after one that ends normally the caller writes the final record (`record`)."""
    stop = threading.Event()

    def keep_recording() -> None:
        while not stop.wait(every):
            with contextlib.suppress(OSError):  # best effort: a write missed now is made next time round
                record(runs_dir)

    writer = threading.Thread(target=keep_recording, name="clowncar-ray-record", daemon=True)
    writer.start()
    try:
        yield
    except BaseException:
        stop.set()
        writer.join()
        _record_path(runs_dir).unlink(missing_ok=True)
        raise
    finally:
        stop.set()
        writer.join()


def reap_dead_drivers(runs_dir: Path) -> list[int]:
    """Kill what the records of dead embedded drivers still list (by PID and start time); returns the PIDs."""
    killed: list[int] = []
    for path in sorted((runs_dir / RECORDS).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            driver, started = data["driver"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if start_time(int(driver)) == started:
            continue  # that driver is alive: its Ray is in use
        for pid, t in data.get("procs", []):
            if start_time(int(pid)) == t:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
        path.unlink(missing_ok=True)
    return killed
