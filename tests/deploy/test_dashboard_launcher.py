"""docker/serve_dashboard.py serves the store named by CLOWNCAR_STORE and never prints its password."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SECRET = "Zq9-dashboard-pw"


def launch(repo: Path, env_extra: dict[str, str], *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "CLOWNCAR_STORE"}
    env.update(env_extra, PYTHONPATH=str(repo))
    return subprocess.Popen([sys.executable, str(repo / "docker/serve_dashboard.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_missing_store_is_a_one_line_error(repo: Path) -> None:
    proc = launch(repo, {})
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip().count("\n") == 0 and "CLOWNCAR_STORE is not set" in err


def test_unreachable_store_error_masks_the_password(repo: Path, closed_port: int) -> None:
    url = f"postgresql+psycopg://clowncar:{SECRET}@127.0.0.1:{closed_port}/runs?connect_timeout=2"
    proc = launch(repo, {"CLOWNCAR_STORE": url})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert SECRET not in out + err
    assert "clowncar:***@127.0.0.1" in err and err.strip().count("\n") == 0


def test_dashboard_serves_a_sqlite_store_on_loopback(repo: Path, tmp_path: Path, free_ports) -> None:
    from clowncar.store import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).close()
    [port] = free_ports(1)
    proc = launch(repo, {"CLOWNCAR_STORE": url}, "--port", str(port))
    try:
        deadline, status = time.time() + 60, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    status = resp.status
                break
            except OSError:
                time.sleep(0.3)
        if status is None:
            pytest.fail(f"dashboard did not answer; exit {proc.poll()}")
        assert status == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    said = out + err  # our line only: no bottle banner, no access-log line for the request above
    assert "Bottle" not in said and "GET /" not in said and out.startswith("optuna-dashboard: http://"), said


def test_a_taken_port_or_a_foreign_host_is_one_line_before_the_server_starts(tmp_path: Path, capsys) -> None:
    from clowncar.dashboard import serve
    from clowncar.errors import ClownCarError
    from clowncar.store import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).close()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ClownCarError) as err:
            serve(url, "127.0.0.1", port)
    assert str(err.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    with pytest.raises(ClownCarError, match=r"^cannot listen on not a host:8080: "):
        serve(url, "not a host", 8080)
    assert capsys.readouterr().out == ""  # no banner for a server that never started
