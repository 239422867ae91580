"""Ctrl-C and SIGTERM end a command alike: `clowncar.interrupts` turns both into a KeyboardInterrupt and records
that one came, and `clowncar dashboard`, whose server swallows the KeyboardInterrupt, still ends with exit code
130 and the one line `clowncar: error: interrupted` (as a real process too); a signal held while Ray connects a
driver is an interrupt once `ray.init` returns. `trial run`'s signals are proved on a real trial in
tests/worker/test_trial_interrupts.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from clowncar import dashboard
from clowncar.errors import EXIT_INTERRUPTED
from clowncar.interrupts import (
    Interrupted,
    held_from_ray_connect,
    interrupt_on_signals,
    signals_held,
    signals_ignored,
    sigterm_handler_kept,
)

SIGNALS = [signal.SIGTERM, signal.SIGINT]
IDS = ["sigterm", "sigint"]


def _handlers() -> dict[int, object]:
    return {s: signal.getsignal(s) for s in SIGNALS}


@pytest.mark.parametrize("sig", SIGNALS, ids=IDS)
def test_a_signal_inside_becomes_a_keyboard_interrupt_that_is_recorded(sig: signal.Signals) -> None:
    before, called = _handlers(), []
    with pytest.raises(KeyboardInterrupt), interrupt_on_signals(lambda: called.append(1)) as came:
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler runs, and raises, before this ends
    assert came.is_set() and called == [1]
    assert _handlers() == before


def test_no_signal_leaves_the_event_unset_and_the_handlers_as_they_were() -> None:
    before = _handlers()
    with interrupt_on_signals() as came:
        pass
    assert not came.is_set() and _handlers() == before


def test_signals_during_a_clean_up_are_ignored_and_the_handlers_come_back() -> None:
    before = _handlers()
    with signals_ignored():
        os.kill(os.getpid(), signal.SIGTERM)  # would end this process with the default handler
        os.kill(os.getpid(), signal.SIGINT)
    assert _handlers() == before


def _exits_on_sigterm() -> None:
    """What `ray.init` does first: a SIGTERM handler of its own that exits with the signal's number."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))


def test_a_library_sigterm_exit_inside_is_an_interrupt_and_our_handler_comes_back() -> None:
    with interrupt_on_signals():
        ours = signal.getsignal(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt), sigterm_handler_kept():
            _exits_on_sigterm()
            signal.alarm(30)  # the abort alarm Ray's C++ SIGTERM handler arms: cancelled with the interrupt
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs, and exits, before this ends
        assert signal.alarm(0) == 0
        assert signal.getsignal(signal.SIGTERM) is ours


def test_a_library_that_ends_normally_leaves_our_sigterm_handler_in_place() -> None:
    with interrupt_on_signals():
        ours = signal.getsignal(signal.SIGTERM)
        with sigterm_handler_kept():
            _exits_on_sigterm()  # Ray's stays set after ray.init returns
        assert signal.getsignal(signal.SIGTERM) is ours


def test_an_exit_that_no_handler_of_the_block_made_stays_an_exit() -> None:
    with pytest.raises(SystemExit) as err, sigterm_handler_kept():
        sys.exit(15)  # the block's own code, its SIGTERM handler unchanged
    assert err.value.code == 15
    with pytest.raises(SystemExit) as err, sigterm_handler_kept():
        _exits_on_sigterm()
        sys.exit(2)  # another exit code, whatever the handler
    assert err.value.code == 2


def test_an_interrupted_command_exits_130() -> None:
    assert Interrupted("interrupted").exit_code == EXIT_INTERRUPTED == 130


def test_a_dashboard_whose_server_swallowed_the_signal_still_ends_interrupted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def bottle_like(url: str, host: str, port: int) -> None:  # bottle's run: `except KeyboardInterrupt: pass`
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            pass

    monkeypatch.setattr(dashboard, "serve", bottle_like)
    with pytest.raises(Interrupted) as err:
        dashboard.dashboard(store="sqlite:///x.db")
    assert str(err.value) == "interrupted" and err.value.exit_code == 130


def test_a_dashboard_that_ends_without_a_signal_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "serve", lambda url, host, port: None)
    dashboard.dashboard(store="sqlite:///x.db")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("sig", SIGNALS, ids=IDS)
def test_the_dashboard_process_stopped_by_a_signal_exits_130_in_one_line(sig: signal.Signals, tmp_path: Path,
                                                                          free_ports) -> None:
    pytest.importorskip("optuna_dashboard")
    from clowncar.store import open_store

    url = f"sqlite:///{tmp_path / 'd.db'}"
    open_store(url).close()
    [port] = free_ports(1)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("CLOWNCAR_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "clowncar", "dashboard", "--store", url, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _listening(port), f"the dashboard never listened (exit {proc.poll()})"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "clowncar: error: interrupted" and "Traceback" not in err


@pytest.mark.parametrize("sig", SIGNALS, ids=IDS)
def test_a_signal_while_held_is_an_interrupt_once_the_block_ends(sig: signal.Signals) -> None:
    before, ran_to_the_end = _handlers(), []
    with pytest.raises(KeyboardInterrupt), signals_held() as came:
        os.kill(os.getpid(), sig)
        time.sleep(0.2)  # the handler runs meanwhile, and raises nothing
        ran_to_the_end.append(came.is_set())
    assert ran_to_the_end == [True] and _handlers() == before


def test_nothing_held_raises_nothing_and_the_handlers_come_back() -> None:
    before = _handlers()
    with signals_held() as came:
        pass
    assert not came.is_set() and _handlers() == before


def test_a_held_signal_is_not_lost_to_the_error_that_ended_the_block() -> None:
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        raise RuntimeError("ray.init failed after the signal")


def test_a_held_sigterm_cancels_the_abort_alarm_of_rays_cpp_handler() -> None:
    with pytest.raises(KeyboardInterrupt), signals_held():
        signal.alarm(30)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
    assert signal.alarm(0) == 0


@pytest.fixture
def ray_connect(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Ray's worker module (`module`) with a `connect` that only records (`log`) that it ran to its end: a signal
    it sends itself stays held (the handler runs, connect goes on), and so does one in the stretch after it, up to
    `ray.init`'s return."""
    module = pytest.importorskip("ray._private.worker")
    log: list[str] = []

    def connect(sig: int | None = None) -> None:
        if sig is not None:
            os.kill(os.getpid(), sig)
            time.sleep(0.2)
        log.append("connected")

    monkeypatch.setattr(module, "connect", connect)
    return SimpleNamespace(module=module, log=log)


@pytest.mark.parametrize("sig", SIGNALS, ids=IDS)
def test_a_signal_while_ray_connects_is_acted_on_when_ray_init_returns(ray_connect: SimpleNamespace,
                                                                      sig: signal.Signals) -> None:
    connect, before = ray_connect.module.connect, _handlers()
    with pytest.raises(KeyboardInterrupt), interrupt_on_signals(), held_from_ray_connect():  # as in `sweep run`
        ray_connect.module.connect(sig)  # as ray.init calls it: through the module
        os.kill(os.getpid(), sig)  # a second one, after connect and before ray.init returns: held as well
        time.sleep(0.2)
        ray_connect.log.append("ray.init returned")
    assert ray_connect.log == ["connected", "ray.init returned"]
    assert ray_connect.module.connect is connect and _handlers() == before


def test_a_signal_before_ray_connects_stops_ray_init_at_once(ray_connect: SimpleNamespace) -> None:
    with pytest.raises(KeyboardInterrupt), interrupt_on_signals(), held_from_ray_connect():
        os.kill(os.getpid(), signal.SIGINT)  # the node's start: may take long, so not held
        time.sleep(5)
        ray_connect.module.connect()
    assert ray_connect.log == []


def test_ray_connect_is_put_back_whatever_ends_the_block(ray_connect: SimpleNamespace) -> None:
    connect = ray_connect.module.connect
    with pytest.raises(RuntimeError), held_from_ray_connect():
        ray_connect.module.connect()
        raise RuntimeError("ray.init failed")
    assert ray_connect.module.connect is connect
    with held_from_ray_connect():
        ray_connect.module.connect()
    assert ray_connect.module.connect is connect and ray_connect.log == ["connected", "connected"]


def test_a_ray_without_connect_holds_signals_for_all_of_ray_init(ray_connect: SimpleNamespace,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(ray_connect.module, "connect")
    with pytest.raises(KeyboardInterrupt), interrupt_on_signals(), held_from_ray_connect():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        ray_connect.log.append("ray.init returned")
    assert ray_connect.log == ["ray.init returned"]


SIGNALLED_AS_PYTHON_FINALIZES = """
import atexit, os, signal, sys

# registered before the entry point's own exit handler, so it runs after it: as the interpreter finalizes
atexit.register(lambda: (print("the command is over: signals sent", file=sys.stderr, flush=True),
                         os.kill(os.getpid(), signal.SIGTERM), os.kill(os.getpid(), signal.SIGINT)))
sys.argv = ["clowncar", *sys.argv[1:]]
from clowncar.cli import main

main()
"""


def test_a_signal_once_a_command_is_over_leaves_its_output_and_exit_code(tmp_path: Path) -> None:
    """A command as a real process (its entry point with no argv) sent SIGTERM and SIGINT after it ended, while
    Python finalizes: after a sweep that is seconds of garbage collection, and SIGTERM there ended the command
    -15, its summary printed (2 in 2 real SIGTERMs 1.8 and 2.2 s after the last result). A bad command stands in
    for the sweep: its one line and exit code 2 stay as they were decided."""
    hook = tmp_path / "signalled_as_python_finalizes.py"
    hook.write_text(SIGNALLED_AS_PYTHON_FINALIZES)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, str(hook), "no-such-command"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60)
    assert "the command is over: signals sent" in r.stderr, r.stderr
    assert r.returncode == 2, r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("clowncar: error:")]) == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
