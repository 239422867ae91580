"""What a SIGKILLed embedded driver leaves behind is killed by the next start, by PID and start time, and nothing
else is: real processes (`sleep`) stand in for Ray's agents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clowncar.orchestrator import embedded
from clowncar.orchestrator.embedded import RECORDS, descendants, reap_dead_drivers, record, start_time

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def sleepers():
    procs: list[subprocess.Popen] = []

    def start(n: int = 1) -> list[subprocess.Popen]:
        new = [subprocess.Popen(["sleep", "60"]) for _ in range(n)]
        procs.extend(new)
        return new

    yield start
    for p in procs:
        p.kill()
        p.wait()


def dead_pid() -> tuple[int, int]:
    """A PID and start time of a process that has ended (and been reaped)."""
    p = subprocess.Popen(["sleep", "0"])
    t = start_time(p.pid)
    p.wait()
    return p.pid, t if t is not None else 1


def write_record(runs: Path, driver: list[int], procs: list[list[int]], name: str = "123.json") -> Path:
    folder = runs / RECORDS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"driver": driver, "procs": procs}))
    return path


def alive(p: subprocess.Popen) -> bool:
    return p.poll() is None


def test_start_time_is_the_kernels_and_none_for_a_gone_process() -> None:
    fields = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    assert start_time(os.getpid()) == int(fields[19])
    assert start_time(dead_pid()[0]) is None
    assert embedded._stat("not-a-pid") is None


def test_a_process_name_holding_a_parenthesis_is_read_past(tmp_path: Path) -> None:
    code = ("import ctypes, sys, time\n"
            "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b'x) S 1 2'), 0, 0, 0)\n"  # PR_SET_NAME
            "print('named', flush=True)\ntime.sleep(30)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "named\n"
        assert "x) S 1 2" in Path(f"/proc/{child.pid}/stat").read_text()
        fields = embedded._stat(child.pid)
        assert fields[0] in ("R", "S") and int(fields[1]) == os.getpid()  # its state, and this test is its parent
    finally:
        child.kill()
        child.wait()


def test_a_zombie_has_no_start_time() -> None:
    p = subprocess.Popen(["sleep", "0"])
    for _ in range(200):
        fields = embedded._stat(p.pid)
        if fields and fields[0] == "Z":
            break
        time.sleep(0.01)
    try:
        assert start_time(p.pid) is None
    finally:
        p.wait()


def test_descendants_are_children_and_their_children(sleepers) -> None:
    (a,) = sleepers()
    shell = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    try:
        for _ in range(300):
            grandchildren = [c for c in descendants(shell.pid)]
            if len(grandchildren) == 2:
                break
            time.sleep(0.01)
        mine = descendants(os.getpid())
        assert a.pid in mine and shell.pid in mine and set(grandchildren) <= set(mine)
        assert len(grandchildren) == 2 and descendants(a.pid) == []
    finally:
        for pid in descendants(shell.pid):
            os.kill(pid, 9)
        shell.kill()
        shell.wait()


def test_a_driver_records_itself_and_its_process_tree(tmp_path: Path, sleepers) -> None:
    a, b = sleepers(2)
    path = record(tmp_path / "runs")
    assert path == tmp_path / "runs" / RECORDS / f"{os.getpid()}.json"
    data = json.loads(path.read_text())
    assert data["driver"] == [os.getpid(), start_time(os.getpid())]
    assert [a.pid, start_time(a.pid)] in data["procs"] and [b.pid, start_time(b.pid)] in data["procs"]
    assert not path.with_suffix(".tmp").exists()


def test_a_dead_drivers_processes_are_killed_and_its_record_removed(tmp_path: Path, sleepers) -> None:
    a, b = sleepers(2)
    path = write_record(tmp_path, list(dead_pid()), [[a.pid, start_time(a.pid)], [b.pid, start_time(b.pid)]])
    assert sorted(reap_dead_drivers(tmp_path)) == sorted([a.pid, b.pid])
    assert a.wait(timeout=10) == -9 and b.wait(timeout=10) == -9
    assert not path.exists()


def test_a_reused_pid_is_never_touched(tmp_path: Path, sleepers) -> None:
    (a,) = sleepers()
    path = write_record(tmp_path, list(dead_pid()), [[a.pid, start_time(a.pid) - 1]])
    assert reap_dead_drivers(tmp_path) == []
    assert alive(a) and not path.exists()


def test_a_live_driver_does_not_stop_the_others_being_reaped(tmp_path: Path, sleepers) -> None:
    a, b = sleepers(2)
    write_record(tmp_path, [os.getpid(), start_time(os.getpid())], [[a.pid, start_time(a.pid)]], name="1.json")
    write_record(tmp_path, list(dead_pid()), [[b.pid, start_time(b.pid)]], name="2.json")
    assert reap_dead_drivers(tmp_path) == [b.pid] and alive(a)


def test_a_process_that_ended_meanwhile_is_not_an_error(tmp_path: Path, sleepers, monkeypatch) -> None:
    (a,) = sleepers()
    path = write_record(tmp_path, list(dead_pid()), [[a.pid, start_time(a.pid)]])

    def already_gone(pid: int, sig: int) -> None:
        path.unlink()  # and another start removed the record meanwhile
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(embedded.os, "kill", already_gone)
    assert reap_dead_drivers(tmp_path) == [] and not path.exists()


def test_a_driver_records_itself_again_into_the_existing_folder(tmp_path: Path) -> None:
    first = record(tmp_path)
    assert record(tmp_path) == first and first.is_file()


def test_a_live_drivers_ray_is_left_alone(tmp_path: Path, sleepers) -> None:
    (a,) = sleepers()
    path = write_record(tmp_path, [os.getpid(), start_time(os.getpid())], [[a.pid, start_time(a.pid)]])
    assert reap_dead_drivers(tmp_path) == [] and alive(a) and path.exists()


def test_a_driver_pid_reused_by_another_process_counts_as_dead(tmp_path: Path, sleepers) -> None:
    (a,) = sleepers()
    write_record(tmp_path, [os.getpid(), start_time(os.getpid()) - 5], [[a.pid, start_time(a.pid)]])
    assert reap_dead_drivers(tmp_path) == [a.pid]


def test_unreadable_records_are_skipped_and_the_rest_still_reaped(tmp_path: Path, sleepers) -> None:
    (a,) = sleepers()
    folder = tmp_path / RECORDS
    folder.mkdir()
    bad = {"1.json": "{not json", "2.json": json.dumps({"procs": []}), "3.json": json.dumps({"driver": 5}),
           "4.json": json.dumps({"driver": [1]}), "5.json": json.dumps([1, 2])}
    for name, text in bad.items():
        (folder / name).write_text(text)
    (folder / "6.txt").write_text("ignored")
    write_record(tmp_path, list(dead_pid()), [[a.pid, start_time(a.pid)]], name="9.json")
    assert reap_dead_drivers(tmp_path) == [a.pid]
    assert sorted(os.listdir(folder)) == sorted([*bad, "6.txt"])  # skipped records stay for a person to see


def test_a_record_without_processes_is_just_removed(tmp_path: Path) -> None:
    folder = tmp_path / RECORDS
    folder.mkdir()
    (folder / "7.json").write_text(json.dumps({"driver": list(dead_pid())}))
    assert reap_dead_drivers(tmp_path) == [] and os.listdir(folder) == []


def test_no_records_folder_means_nothing_to_reap(tmp_path: Path) -> None:
    assert reap_dead_drivers(tmp_path / "fresh") == []


def test_a_process_that_cannot_be_killed_is_not_counted(tmp_path: Path, sleepers, monkeypatch) -> None:
    (a,) = sleepers()
    write_record(tmp_path, list(dead_pid()), [[a.pid, start_time(a.pid)]])

    def refuse(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(embedded.os, "kill", refuse)
    assert reap_dead_drivers(tmp_path) == [] and alive(a)


def test_off_linux_no_record_is_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(embedded, "start_time", lambda pid: None)
    assert record(tmp_path) is None and not (tmp_path / RECORDS).exists()


def test_what_a_failed_block_started_is_killed_and_what_was_there_before_is_not(sleepers) -> None:
    (before,) = sleepers()
    started: list[subprocess.Popen] = []
    with pytest.raises(KeyboardInterrupt), embedded.killed_unless_started():
        started += sleepers(2)
        raise KeyboardInterrupt  # as Ctrl-C inside ray.init
    assert [p.wait(timeout=10) for p in started] == [-9, -9]
    assert alive(before)


def test_a_block_that_ends_normally_keeps_what_it_started(sleepers) -> None:
    with embedded.killed_unless_started():
        (kept,) = sleepers()
    assert alive(kept)


def test_grandchildren_a_failed_block_started_are_killed_too(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild"
    with pytest.raises(RuntimeError), embedded.killed_unless_started():
        shell = subprocess.Popen(["sh", "-c", f"sleep 60 & echo $! > {marker}; wait"])
        for _ in range(300):
            if marker.exists() and marker.read_text().strip():
                break
            time.sleep(0.01)
        raise RuntimeError("ray.init failed")
    assert shell.wait(timeout=10) == -9
    grandchild = int(marker.read_text())
    for _ in range(300):  # killed, then reaped by init once its parent is gone
        if start_time(grandchild) is None:
            break
        time.sleep(0.01)
    assert start_time(grandchild) is None


def test_off_linux_nothing_is_snapshotted_or_killed(monkeypatch, sleepers) -> None:
    monkeypatch.setattr(embedded, "start_time", lambda pid: None)
    assert embedded.snapshot() == set()
    with pytest.raises(KeyboardInterrupt), embedded.killed_unless_started():
        (p,) = sleepers()
        raise KeyboardInterrupt
    assert alive(p)


def _recorded(runs: Path) -> list[list[int]] | None:
    """The processes this driver's record lists; None while there is no record."""
    path = runs / RECORDS / f"{os.getpid()}.json"
    try:
        return json.loads(path.read_text())["procs"]
    except (OSError, ValueError):
        return None


def test_what_starts_while_ray_starts_is_recorded_before_the_block_ends(tmp_path: Path, sleepers) -> None:
    """A driver SIGKILLed inside `ray.init` left no record: Ray's agents lived on 60 s, through the next start."""
    with embedded.recorded_while_starting(tmp_path, every=0.05):
        (agent,) = sleepers()
        deadline = time.time() + 10
        while [agent.pid, start_time(agent.pid)] not in (_recorded(tmp_path) or []) and time.time() < deadline:
            time.sleep(0.02)
        assert [agent.pid, start_time(agent.pid)] in (_recorded(tmp_path) or [])
    assert _recorded(tmp_path) is not None  # kept: the caller writes the final record over it


def test_a_block_that_fails_takes_its_record_away(tmp_path: Path, sleepers) -> None:
    with pytest.raises(KeyboardInterrupt), embedded.recorded_while_starting(tmp_path, every=0.05):
        sleepers()
        deadline = time.time() + 10
        while _recorded(tmp_path) is None and time.time() < deadline:
            time.sleep(0.02)
        assert _recorded(tmp_path) is not None
        raise KeyboardInterrupt  # as Ctrl-C inside ray.init: killed_unless_started kills what it started
    time.sleep(0.2)  # no write comes after the block
    assert _recorded(tmp_path) is None
