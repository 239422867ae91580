"""`clowncar dashboard` in this process, with the server replaced where it would serve: the store it opens, the
line it says first, what it refuses (a store it cannot open, a taken port, a missing extra), and the warning for an
address other machines can reach. (The server itself, under its launcher, is in tests/deploy.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from clowncar import dashboard
from clowncar.errors import ClownCarError, StoreError
from clowncar.store import open_store


def test_the_dashboard_serves_the_configured_store_on_loopback(monkeypatch, settings_env: Path) -> None:
    served: list[tuple] = []
    monkeypatch.setattr(dashboard, "serve", lambda url, host, port: served.append((url, host, port)))
    dashboard.dashboard()
    dashboard.dashboard(store="sqlite:///x.db", host="0.0.0.0", port=9000)
    assert served == [(f"sqlite:///{settings_env / 'runs' / 'clowncar.db'}", "127.0.0.1", 8080),
                      ("sqlite:///x.db", "0.0.0.0", 9000)]


def test_a_store_the_dashboard_cannot_open_is_one_line_without_the_password(monkeypatch, tmp_path: Path) -> None:
    """Optuna's storage failing on a store that opens (its tables, say): one line, in the store's words. (A store
    that does not open at all is refused before, as every command refuses it: tests/test_cli_rules.py.)"""
    pytest.importorskip("optuna_dashboard")
    import optuna

    from clowncar.store import open_store

    def refuse(url: str) -> None:
        raise RuntimeError("could not connect to postgresql://u:s3cret@h:1/db\ndetail")

    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).close()
    monkeypatch.setattr(optuna.storages, "RDBStorage", refuse)
    with pytest.raises(StoreError) as err:
        dashboard.serve(url)
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"cannot open store {url}: could not connect to postgresql://u:***@h:1/db")
    monkeypatch.setattr(optuna.storages, "RDBStorage", lambda url: (_ for _ in ()).throw(RuntimeError()))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    open_store(url).close()
    with pytest.raises(StoreError, match=r": RuntimeError$"):
        dashboard.serve(url)


def test_the_dashboard_says_where_it_serves_before_serving(monkeypatch, tmp_path: Path, capsys) -> None:
    import optuna

    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    ran: list[tuple] = []
    monkeypatch.setattr(optuna_dashboard, "wsgi", lambda storage: ("app of", storage))
    monkeypatch.setattr(dashboard, "run_quietly", lambda app, host, port: ran.append((app[1], host, port)))
    monkeypatch.setattr(dashboard, "_can_listen", lambda host, port: None)  # 8123 may be taken on this machine
    open_store(f"sqlite:///{tmp_path / 'd.db'}").close()
    dashboard.serve(f"sqlite:///{tmp_path / 'd.db'}", port=8123)
    ((storage, host, port),) = ran
    assert isinstance(storage, optuna.storages.RDBStorage) and (host, port) == ("127.0.0.1", 8123)
    assert capsys.readouterr().out == (f"optuna-dashboard: http://127.0.0.1:8123/ on sqlite:///{tmp_path / 'd.db'} "
                                       "(Ctrl-C stops it)\nno Optuna study in this store yet: a sweep's study "
                                       "appears when the sweep starts, and imported sweeps have none (`clowncar "
                                       "store ls` lists them)\n")
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'd.db'}", study_name="s")
    dashboard.serve(f"sqlite:///{tmp_path / 'd.db'}")  # optuna-dashboard's own default port, on loopback
    assert ran[-1][1:] == ("127.0.0.1", 8080)
    assert capsys.readouterr().out.count("\n") == 1  # a study to show: the one line only


def test_without_optuna_dashboard_the_extra_to_install_is_named(monkeypatch) -> None:

    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)
    with pytest.raises(StoreError) as err:
        dashboard.serve("sqlite:///x.db")
    assert str(err.value) == "optuna-dashboard is not installed (pip install -e '.[dashboard]')"


def test_the_dashboard_line_reaches_a_pipe_before_it_serves(tmp_path: Path) -> None:
    """Under a supervisor (a pipe, not a terminal) the line must be flushed: the server then blocks forever."""
    import subprocess

    pytest.importorskip("optuna_dashboard")
    import clowncar

    code = ("import sys, time, optuna_dashboard\n"
            "import clowncar.dashboard as d\nd.run_quietly = lambda *a, **k: time.sleep(30)\n"
            "d.serve(sys.argv[1], port=int(sys.argv[2]))\n")
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    open_store(f"sqlite:///{tmp_path / 'd.db'}").close()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe buffers, as under a supervisor
    env["PYTHONPATH"] = str(Path(clowncar.__file__).resolve().parents[1])
    child = subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{tmp_path / 'd.db'}", str(port)],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        import select

        ready, _, _ = select.select([child.stdout], [], [], 20)
        assert ready, "nothing reached the pipe while the server ran"
        line = child.stdout.readline()
        assert line.startswith(f"optuna-dashboard: http://127.0.0.1:{port}/ on sqlite:///")
        assert child.poll() is None  # still serving
    finally:
        child.kill()
        child.wait()


def test_the_dashboard_refuses_a_missing_sqlite_store_and_creates_nothing(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard")
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    with pytest.raises(StoreError) as err:
        dashboard.serve(url)
    assert str(err.value) == f"no store at {url} (nothing has been written there yet)"
    assert list(tmp_path.iterdir()) == []


def test_a_port_the_server_cannot_take_is_one_line_whenever_it_fails(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard")
    url = f"sqlite:///{tmp_path / 'd.db'}"
    open_store(url).close()
    with pytest.raises(ClownCarError) as err:  # past 65535 (the CLI refuses it first; serve is also called directly)
        dashboard.serve(url, port=70000)
    assert str(err.value) == "cannot listen on 127.0.0.1:70000: bind(): port must be 0-65535."

    def taken(app, host, port):  # taken between the check and the start
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(dashboard, "_can_listen", lambda host, port: None)
    monkeypatch.setattr(dashboard, "run_quietly", taken)
    with pytest.raises(ClownCarError) as err:
        dashboard.serve(url, port=8123)
    assert str(err.value) == "cannot listen on 127.0.0.1:8123: Address already in use"


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("::", True), ("10.1.2.3", True),
                                              ("dash.example", True), ("127.0.0.1", False), ("127.1.2.3", False),
                                              ("::1", False), ("localhost", False)])
def test_a_dashboard_other_machines_can_reach_is_said_to_have_no_authentication(
        host: str, warned: bool, monkeypatch, capsys) -> None:
    monkeypatch.setattr(dashboard, "serve", lambda url, host, port: None)
    dashboard.dashboard(store="sqlite:///x.db", host=host)
    err = capsys.readouterr().err
    if warned:
        assert err == (f"clowncar: warning: the dashboard has no authentication, and --host {host} lets other "
                       "machines reach it, and delete studies; 127.0.0.1 with an SSH tunnel keeps it yours\n")
    else:
        assert err == ""
