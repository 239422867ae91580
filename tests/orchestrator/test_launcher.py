"""The worker launcher (`python -m clowncar.orchestrator.launch MODULE ARGS`): it runs MODULE as `__main__` with
its arguments, and a launched worker never outlives the process that started it. Real processes throughout (the
launcher's child imports this checkout's clowncar, so mutation testing sees it)."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import clowncar

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
ROOT = str(Path(clowncar.__file__).resolve().parents[1])


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CLOWNCAR_LAUNCHER_PARENT", "LOCAL_RANK")}
    return {**base, "PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT]), **extra}


def module(tmp_path: Path, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(body)
    return name


def launch(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clowncar.orchestrator.launch", *args], capture_output=True,
                          text=True, env=env(tmp_path, **extra), timeout=60)


def test_without_a_module_it_prints_its_usage_and_exits_2(tmp_path: Path) -> None:
    proc = launch(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "usage: python -m clowncar.orchestrator.launch MODULE [ARGS...]\n"


def test_the_module_runs_as_main_with_its_own_arguments(tmp_path: Path) -> None:
    name = module(tmp_path, "echo_worker", "import sys\nif __name__ == '__main__':\n"
                                           "    print(sys.argv)\n    sys.exit(7)\n")
    proc = launch(tmp_path, name, "trial.json", "--out", "dir")
    assert proc.returncode == 7, proc.stderr
    argv = ast.literal_eval(proc.stdout)
    assert argv[0] == str(tmp_path / "echo_worker.py")  # as `python -m` sets it
    assert argv[1:] == ["trial.json", "--out", "dir"]


def test_a_worker_whose_parent_is_not_the_expected_one_does_not_run(tmp_path: Path) -> None:
    name = module(tmp_path, "ran", "print('ran')\n")
    proc = launch(tmp_path, name, CLOWNCAR_LAUNCHER_PARENT="1")
    assert proc.returncode == 137 and proc.stdout == ""
    proc = launch(tmp_path, name, CLOWNCAR_LAUNCHER_PARENT=str(os.getpid()))
    assert proc.returncode == 0 and proc.stdout == "ran\n"  # its parent is this test: the expected one
    proc = launch(tmp_path, name, CLOWNCAR_LAUNCHER_PARENT="")
    assert proc.stdout == "ran\n"  # no expectation set
    proc = launch(tmp_path, name, CLOWNCAR_LAUNCHER_PARENT="1", LOCAL_RANK="3")
    assert proc.stdout == "ran\n"  # a torchrun rank's parent is torchrun, not the trial


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_launched_worker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    name = module(tmp_path, "sleeper", "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    parent_code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-m', 'clowncar.orchestrator.launch', sys.argv[1]],"
        " stdout=subprocess.PIPE, text=True)\n"
        "assert p.stdout.readline() == 'up\\n'\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code, name], stdout=subprocess.PIPE, text=True,
                              env=env(tmp_path))
    try:
        worker = int(parent.stdout.readline())
        assert not gone(worker)
        parent.send_signal(signal.SIGKILL)  # no finally, no cleanup: only the kernel can end the worker
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not gone(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(worker)
    finally:
        parent.kill()
        parent.wait()


# --- the same rules in this process (the child processes above are what a trial does; these reach every branch) --

class Libc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def prctl(self, *args: int) -> int:
        self.calls.append(args)
        return 0


@pytest.fixture
def launch_module(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    import ctypes

    from clowncar.orchestrator import launch as launch_module

    state: dict[str, object] = {"libc": Libc(), "ppids": [4242, 4242], "exited": None}
    monkeypatch.setattr(ctypes, "CDLL", lambda name, use_errno=False: state["libc"])
    monkeypatch.setattr(launch_module.os, "getppid", lambda: state["ppids"].pop(0))  # type: ignore[union-attr]

    def exit_(code: int) -> None:
        state["exited"] = code
        raise SystemExit(code)

    monkeypatch.setattr(launch_module.os, "_exit", exit_)
    monkeypatch.delenv("CLOWNCAR_LAUNCHER_PARENT", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    state["module"] = launch_module
    return state


def test_the_kernel_is_asked_to_kill_the_worker_with_its_parent(launch_module) -> None:
    launch_module["module"].die_with_parent()  # type: ignore[attr-defined]
    assert launch_module["libc"].calls == [(1, signal.SIGKILL, 0, 0, 0)]  # type: ignore[attr-defined]
    assert launch_module["exited"] is None


def test_a_parent_that_died_before_the_request_took_effect_means_no_run(launch_module) -> None:
    launch_module["ppids"] = [4242, 1]  # re-parented to init between the two looks
    with pytest.raises(SystemExit):
        launch_module["module"].die_with_parent()  # type: ignore[attr-defined]
    assert launch_module["exited"] == 137


@pytest.mark.parametrize(("expected", "local_rank", "runs"), [("4242", None, True), ("999", None, False),
                                                              ("999", "0", True), ("", None, True),
                                                              ("0", None, True)])
def test_the_expected_parent_is_checked_except_under_torchrun(launch_module, monkeypatch, expected: str,
                                                              local_rank: str | None, runs: bool) -> None:
    monkeypatch.setenv("CLOWNCAR_LAUNCHER_PARENT", expected)
    if local_rank is not None:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    if runs:
        launch_module["module"].die_with_parent()  # type: ignore[attr-defined]
    else:
        with pytest.raises(SystemExit):
            launch_module["module"].die_with_parent()  # type: ignore[attr-defined]
    assert (launch_module["exited"] is None) is runs


def test_without_prctl_the_worker_just_runs(launch_module, monkeypatch) -> None:
    import ctypes

    monkeypatch.setattr(ctypes, "CDLL", lambda name, use_errno=False: object())  # no prctl here
    monkeypatch.setenv("CLOWNCAR_LAUNCHER_PARENT", "999")
    launch_module["module"].die_with_parent()  # type: ignore[attr-defined]
    assert launch_module["exited"] is None

    def no_libc(name: object, use_errno: bool = False) -> object:
        raise OSError("no C library")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    launch_module["module"].die_with_parent()  # type: ignore[attr-defined]
    assert launch_module["exited"] is None


def test_main_runs_the_module_with_its_arguments_after_the_check(monkeypatch, capsys) -> None:
    import runpy

    from clowncar.orchestrator import launch as launch_module

    order: list[object] = []
    monkeypatch.setattr(launch_module, "die_with_parent", lambda: order.append("checked"))
    monkeypatch.setattr(runpy, "run_module", lambda module, run_name, alter_sys: order.append(
        (module, run_name, alter_sys, list(sys.argv))))
    monkeypatch.setattr(sys, "argv", ["launch.py", "clowncar.worker", "trial.json", "--out", "d"])
    launch_module.main()
    assert order == ["checked", ("clowncar.worker", "__main__", True, ["clowncar.worker", "trial.json", "--out", "d"])]
    monkeypatch.setattr(sys, "argv", ["launch.py", "bare_worker"])
    launch_module.main()  # a module without arguments runs too
    assert order[-1] == ("bare_worker", "__main__", True, ["bare_worker"])
    monkeypatch.setattr(sys, "argv", ["launch.py"])
    with pytest.raises(SystemExit) as ended:
        launch_module.main()
    assert ended.value.code == 2
    assert capsys.readouterr().err == "usage: python -m clowncar.orchestrator.launch MODULE [ARGS...]\n"
