"""`clowncar trial run` stopped by Ctrl-C (SIGINT) or SIGTERM (`timeout`, `kill`, `docker stop`), as a real
process in the middle of training: exit code 130, the one line `clowncar: error: interrupted`, and no
half-written trial left behind (a folder the run made is gone; in a folder that was there, the user's files
stay and the run's own files go)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

START_S = 60  # torch's import and the first steps; a tiny step takes milliseconds
END_S = 30  # from the signal to the exit: the clean-up is a few unlinks


def _start(out: Path, overrides: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    sets = [a for o in [*overrides, "train.iterations=1000000"] for a in ("--set", o)]  # still training when hit
    return subprocess.Popen([sys.executable, "-m", "clowncar", "trial", "run", "--preset", "tiny-cpu",
                             "--out", str(out), *sets], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd)


def _training(out: Path) -> bool:
    try:
        return '"event":"step"' in (out / "events.jsonl").read_text()
    except OSError:
        return False


def _interrupt_while_training(proc: subprocess.Popen[str], out: Path, sig: signal.Signals) -> tuple[int, str]:
    """Send `sig` once the trial has logged a training step; the exit code and stderr."""
    deadline = time.monotonic() + START_S
    while not _training(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert _training(out), f"the trial never reached a step (exit {proc.poll()})"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=END_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_trial_stopped_by_a_signal_exits_130_in_one_line_and_leaves_no_folder(
        sig: signal.Signals, tiny_overrides: list[str], worker_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "new" / "t"  # both folders are the run's own
    code, err = _interrupt_while_training(_start(out, tiny_overrides, worker_env, tmp_path), out, sig)
    assert code == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "clowncar: error: interrupted" and "Traceback" not in err
    assert not (tmp_path / "new").exists()


def test_a_trial_stopped_in_a_folder_that_was_there_removes_only_its_own_files(
        tiny_overrides: list[str], worker_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "kept"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = _interrupt_while_training(_start(out, tiny_overrides, worker_env, tmp_path), out,
                                          signal.SIGTERM)
    assert code == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "clowncar: error: interrupted"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # no events, log or result of half a trial
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_the_worker_program_stopped_by_a_signal_exits_130_in_one_line_and_keeps_its_log(
        sig: signal.Signals, tiny_overrides: list[str], worker_env: dict[str, str], tmp_path: Path) -> None:
    """`python -m clowncar.worker`, what a sweep's trial and each torchrun rank run: torchrun stops the other
    ranks with SIGTERM. The trial directory is the orchestrator's, so what the run wrote stays for its reason."""
    out, config = tmp_path / "t", tmp_path / "c.yaml"
    config.write_text("train: {iterations: 1000000}\n")  # still training when hit
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    proc = subprocess.Popen([sys.executable, "-m", "clowncar.worker", str(config), "--preset", "tiny-cpu",
                             "--out", str(out), *sets], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=worker_env, cwd=tmp_path)
    code, err = _interrupt_while_training(proc, out, sig)
    assert code == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "clowncar.worker: error: interrupted" and "Traceback" not in err
    assert _training(out) and (out / "train.log").exists()
