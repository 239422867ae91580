"""Ray's C++ lines on a driver's fd 2 go to the sweep's ray-errors.log; everything else still reaches the console
(native_stderr.py). Each case is a real process that diverts its fd 2 and then writes to it below Python, as Ray's
core worker does, and ends as a driver can: normally, by an uncaught exception, or at once by `_exit` (Ray's C++
ending it), where the router still passes on what was in the pipe. No Ray: the lines are Ray's own, copied from a
driver's console (walk 2, finding 5)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clowncar.orchestrator import head_watch

REPO = Path(__file__).resolve().parents[2]
RAY_LINE = "[2026-12-06 11:16:11,265 E 6894 6932] task_manager.cc:1545: Failed to push error to driver for task 45"
ABSL_LINE = "E1206 11:16:11.265123  6894 chttp2_transport.cc:1183] ipv4:127.0.0.1:6390: Connection refused"
FATAL_LINE = ("[2026-12-06 11:17:08,325 E 6894 6939] rpc_client.h:204: Failed to connect to GCS within 60 seconds. "
              "GCS may have been killed. The program will terminate.")
NOT_RAYS = "a library's own line, written below Python"


def driver(tmp_path: Path, ending: str, debug: bool = False) -> tuple[subprocess.CompletedProcess[str], Path]:
    """A process that diverts its fd 2 to tmp_path/ray-errors.log, writes Ray's lines and others to fd 2 itself,
    one line through Python's sys.stderr, and ends by `ending`."""
    log = tmp_path / "ray-errors.log"
    code = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from clowncar.orchestrator import native_stderr
        native_stderr.divert(Path({str(log)!r}))
        for line in ({RAY_LINE!r}, "    @ 0x7f3a frame of its stack trace", {ABSL_LINE!r}, {NOT_RAYS!r}):
            os.write(2, (line + "\\n").encode())
        print("clowncar: error: a line of clowncar's own", file=sys.stderr)
        {ending}
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CLOWNCAR_DEBUG", None)
    if debug:
        env["CLOWNCAR_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60), log


def test_ray_lines_written_to_fd_2_go_to_the_log_and_the_rest_to_the_console(tmp_path: Path) -> None:
    # a line without its newline is passed on all the same, before the console is given back
    done, log = driver(tmp_path, "os.write(2, b'a partial line'); native_stderr.restore(); print('after', file=sys.stderr)")
    assert done.returncode == 0, done.stderr
    # Python's lines go to the console directly, the others through the router: in either order
    assert sorted(done.stderr.splitlines()) == sorted([NOT_RAYS, "clowncar: error: a line of clowncar's own",
                                                       "a partial lineafter"]), done.stderr
    assert log.read_text().splitlines() == [RAY_LINE, "    @ 0x7f3a frame of its stack trace", ABSL_LINE]


def test_a_traceback_still_reaches_the_console(tmp_path: Path) -> None:
    done, log = driver(tmp_path, "raise ValueError('a bug')")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "ValueError: a bug" in done.stderr
    assert "task_manager.cc" not in done.stderr and RAY_LINE in log.read_text()
    assert "Ray ended" not in done.stderr


def test_a_driver_that_ray_ends_at_once_leaves_its_fatal_line_in_the_log_and_one_clowncar_line(
        tmp_path: Path) -> None:
    done, log = driver(tmp_path, f"os.write(2, ({FATAL_LINE!r} + '\\n').encode()); os._exit(1)")
    assert done.returncode == 1
    assert FATAL_LINE in log.read_text().splitlines()  # read from the pipe after the process was gone
    errors = [line for line in done.stderr.splitlines() if "clowncar: error:" in line]
    assert errors == ["clowncar: error: a line of clowncar's own",
                      "clowncar: error: Ray ended the sweep's driver: Failed to connect to GCS within 60 seconds "
                      f"(Ray's lines are in {log})"], done.stderr
    assert "rpc_client.h" not in done.stderr and "task_manager.cc" not in done.stderr


def test_with_clowncar_debug_the_console_is_left_as_it_is(tmp_path: Path) -> None:
    done, log = driver(tmp_path, "pass", debug=True)
    assert RAY_LINE in done.stderr.splitlines() and ABSL_LINE in done.stderr.splitlines()
    assert not log.exists()


@pytest.mark.parametrize("closed", [False, True])
def test_the_head_watch_acts_once_the_gcs_port_has_refused_connections_for_its_limit(closed: bool) -> None:
    import socket
    import threading
    import time

    server = socket.create_server(("127.0.0.1", 0))
    target = server.getsockname()[:2]
    lost: list[float] = []
    called = threading.Event()
    watch = head_watch.HeadWatch(target, limit=1.0, on_lost=lambda away: (lost.append(away), called.set()),
                                 every=0.1).start()
    try:
        if closed:
            time.sleep(0.3)
            server.close()  # the GCS is gone: connections refused from now
            stopped = time.monotonic()
            assert called.wait(5)
            assert 1.0 <= lost[0] < 2.0 and time.monotonic() - stopped < 2.0
        else:
            assert not called.wait(2.5)  # a GCS that answers: nothing, however long
    finally:
        watch.stop()
        server.close()
