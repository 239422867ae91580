"""`clowncar sweep stop NAME` without --address stops the sweep's driver on this machine through its lease: the
driver gets SIGINT (Ctrl-C), the command waits for the lease to be released and says so in one line. A driver on
another machine, a sweep with no driver, an unknown sweep: one line each. The driver here is a plain Python child
that holds the lease with `DriverLease` (no Ray)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from clowncar.errors import EXIT_BAD_INPUT, EXIT_FAILED
from clowncar.store import open_store
from clowncar.store.lease import Claimant

DRIVER = textwrap.dedent("""
    import sys, time
    from clowncar.orchestrator.lease import DriverLease
    from clowncar.store import open_store
    store = open_store(sys.argv[1])
    try:
        with DriverLease(store, "sw", beat_s=60):
            print("holding", flush=True)
            while True:
                time.sleep(0.05)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        store.create_or_get_sweep("sw", {"name": "sw"})
    yield url


@pytest.fixture
def driver(url: str) -> Iterator[subprocess.Popen[str]]:
    """A process on this machine holding sweep sw's lease until Ctrl-C."""
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, url], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def stop(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    import clowncar.cli as cli

    code = 0
    try:
        cli.main(["sweep", "stop", "sw", "--store", url])
    except SystemExit as ended:
        code = int(ended.code or 0)
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_a_driver_on_this_machine_gets_ctrl_c_and_the_command_waits_for_its_lease(
        url: str, driver: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = stop(url, capsys)
    assert (code, err) == (0, "")
    assert out == (f"stopped sweep sw: its driver (pid {driver.pid}) got Ctrl-C (SIGINT), closed its running trials "
                   "and ended; continue it with `clowncar sweep resume sw`")
    assert driver.wait(timeout=10) == 130 and driver.stdout is not None and driver.stdout.read() == "interrupted\n"
    with open_store(url, create=False) as store:
        assert not (store.get_lease("sw") or {}).get("token")  # released by the driver, not left to expire


def test_a_driver_that_does_not_let_go_in_time_is_a_failed_stop(
        url: str, driver: subprocess.Popen[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.orchestrator import local_stop

    monkeypatch.setattr(local_stop, "_interrupt", lambda name, pid: None)  # a driver stuck in its clean-up
    monkeypatch.setattr(local_stop, "STOP_WAIT_S", 0.5)
    code, out, err = stop(url, capsys)
    assert code == EXIT_FAILED and out == ""
    assert err == (f"clowncar: error: sweep sw: its driver (pid {driver.pid}) got Ctrl-C (SIGINT) but still holds "
                   "the sweep after 0.5 s; `clowncar sweep status sw` says when it has ended, and "
                   f"`kill -INT {driver.pid}` again cuts its clean-up short")
    assert driver.poll() is None


def test_a_driver_on_another_machine_is_named_with_how_it_stops(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store(url, create=False) as store:
        store.acquire_lease("sw", Claimant("tok-x", "pid 7 on node-b", machine="other", pid=7, pid_started=1), 600)
    code, out, err = stop(url, capsys)
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert err == ("clowncar: error: sweep sw is being run by pid 7 on node-b, not on this machine: stop it with "
                   "Ctrl-C there, or, for a sweep submitted as a Ray job, `clowncar sweep stop sw --address "
                   "http://HEAD:8265`")


def test_a_sweep_with_no_live_driver_has_nothing_to_stop(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = stop(url, capsys)
    assert (code, err) == (0, "")
    assert out.startswith("sweep sw: no live driver holds it, so there is nothing to stop (")


def test_an_unknown_sweep_is_one_line_of_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import clowncar.cli as cli

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url):
        pass
    for command in (["sweep", "stop", "nope"], ["sweep", "resume", "nope"]):  # the store named (walk 6, F20)
        with pytest.raises(SystemExit) as ended:
            cli.main([*command, "--store", url])
        err = capsys.readouterr().err
        assert (ended.value.code, err) == (EXIT_BAD_INPUT, f"clowncar: error: no sweep named 'nope' in {url}\n")
