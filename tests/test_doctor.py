"""`clowncar doctor`: each row says ok when the part is there and missing/optional, with a fix, when it is not."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from clowncar import doctor
from clowncar.doctor import MISSING, OK, OPTIONAL


def versions(**installed: str) -> doctor.VersionOf:
    """A version lookup over a fixed set of installed distributions (names as pip spells them)."""
    table = {k.replace("_", "-"): v for k, v in installed.items()}
    return lambda dist: table.get(dist)


def test_python_row_accepts_311_and_refuses_310() -> None:
    assert doctor.check_python((3, 11, 0)).status == OK
    row = doctor.check_python((3, 10, 12))
    assert row.status == MISSING and "3.11" in row.fix


def test_torch_row_names_the_build_or_the_setup_command() -> None:
    assert doctor.check_torch(versions(torch="2.13.0+cpu"), None).detail == "2.13.0+cpu, CPU build"
    assert "CUDA 12.8" in doctor.check_torch(versions(torch="2.8.0"), "12.8").detail
    row = doctor.check_torch(versions(), None)
    assert row.status == MISSING and "scripts/setup.sh" in row.fix


def test_gpu_row_counts_devices_and_is_optional_without_any() -> None:
    row = doctor.check_gpus(["NVIDIA H100 80GB HBM3"] * 8)
    assert row.status == OK and row.detail.startswith("8: NVIDIA H100")
    assert doctor.check_gpus([]).status == OPTIONAL


@pytest.mark.parametrize("dist", ["flash-attn", "flash-linear-attention"])
def test_gpu_kernel_rows_are_optional_and_say_how_to_add_them(dist: str) -> None:
    assert doctor.check_kernel(dist, "x", versions(**{dist: "1.0"})).status == OK
    row = doctor.check_kernel(dist, "x", versions())
    assert row.status == OPTIONAL and ".[gpu]" in row.fix


def test_ray_row_embedded_reachable_and_unreachable_cluster(monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    from ray._private import ray_constants

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # a loopback address stays on 127.0.0.1
    have = versions(ray="2.60.0")
    assert "embedded" in doctor.check_ray(have, "").detail
    assert doctor.check_ray(versions(), "").status == MISSING
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert doctor.check_ray(have, f"127.0.0.1:{port}").status == OK
        assert doctor.check_ray(have, f"ray://127.0.0.1:{port}").status == MISSING  # answers, but cannot drive a sweep
    row = doctor.check_ray(have, f"127.0.0.1:{closed_port}", timeout=1)
    assert row.status == MISSING and "does not answer" in row.detail
    assert doctor.check_ray(have, "10.0.0.1").status == MISSING


def test_store_row_opens_sqlite_and_masks_an_unreachable_servers_password(tmp_path: Path, closed_port: int) -> None:
    fresh = doctor.check_store(f"sqlite:///{tmp_path / 'runs' / 'clowncar.db'}")
    assert fresh.status == OK and "created by the first sweep" in fresh.detail
    from clowncar.store import open_store

    open_store(f"sqlite:///{tmp_path / 'x.db'}").close()
    assert doctor.check_store(f"sqlite:///{tmp_path / 'x.db'}").detail.endswith("answers")
    row = doctor.check_store(f"postgresql+psycopg://u:Sekret99@127.0.0.1:{closed_port}/db?connect_timeout=2")
    assert row.status == MISSING and "Sekret99" not in row.detail and "u:***@" in row.detail
    assert doctor.check_store("not a url").status == MISSING


def test_store_row_reads_a_home_path_as_every_opener_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.store import open_store

    monkeypatch.setenv("HOME", str(tmp_path))
    assert doctor.check_store("sqlite:///~/c.db").detail == "sqlite:///~/c.db (created by the first sweep)"
    open_store(f"sqlite:///{tmp_path / 'c.db'}").close()
    assert doctor.check_store("sqlite:///~/c.db").detail == "sqlite:///~/c.db answers"


def test_store_row_says_missing_when_sqlite_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    row = doctor.check_store(f"sqlite:///{blocker / 'sub' / 'clowncar.db'}")
    assert row.status == MISSING and str(blocker) in row.detail


def test_data_row_knows_the_demo_build(tmp_path: Path) -> None:
    assert doctor.check_data(tmp_path / "nowhere").status == OPTIONAL
    (tmp_path / "empty").mkdir()
    row = doctor.check_data(tmp_path / "empty")
    assert row.status == OPTIONAL and "clowncar data demo" in row.fix
    from clowncar.data.demo import run_demo

    run_demo(tmp_path / "built", progress=False, log=lambda *_: None)
    assert doctor.check_data(tmp_path / "built").status == OK


def test_disk_row_compares_free_space_with_the_threshold(tmp_path: Path) -> None:
    assert doctor.check_disk(tmp_path / "not" / "yet", min_free_gib=0.0).status == OK
    assert doctor.check_disk(tmp_path, min_free_gib=1e9).status == MISSING


def test_test_server_rows(tmp_path: Path) -> None:
    ok = doctor.check_test_servers(tmp_path, tmp_path)
    assert [r.status for r in ok] == [OK, OK]
    absent = doctor.check_test_servers(None, tmp_path / "chromium")
    assert [r.status for r in absent] == [OPTIONAL, OPTIONAL] and all("scripts/test.sh" in r.fix for r in absent)


def test_doctor_command_exits_1_naming_an_unreachable_store(run_cli, tmp_path: Path, closed_port: int) -> None:
    url = f"postgresql+psycopg://clowncar:Pw-in-url-7@127.0.0.1:{closed_port}/runs?connect_timeout=2"
    proc = run_cli("doctor", env={"CLOWNCAR_STORE": url})
    assert proc.returncode == 1, proc.stderr
    assert "Pw-in-url-7" not in proc.stdout + proc.stderr
    store = next(line for line in proc.stdout.splitlines() if line.startswith("store"))
    assert "missing" in store


def test_doctor_json_lists_every_row_and_exits_0_when_nothing_is_missing(run_cli, tmp_path: Path) -> None:
    proc = run_cli("doctor", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["check"] for r in rows][:7] == ["python", "torch", "GPUs", "flash-attn", "flash-linear-attention",
                                              "ray", "store"]
    assert [r["check"] for r in rows][7:9] == ["data", "fineweb sp1024"]
    assert {r["status"] for r in rows} <= {OK, OPTIONAL}


def test_doctor_command_prints_the_whole_table_and_exits_1_for_a_store_file_readable_by_others(
        run_cli, tmp_path: Path) -> None:
    """Every store command refuses such a file (exit 2); doctor, a diagnostic, shows it as a row and goes on."""
    secret = tmp_path / "store-url"
    secret.write_text("postgresql+psycopg://u:Pw-in-file-9@127.0.0.1:1/db\n")
    secret.chmod(0o644)
    proc = run_cli("doctor", env={"CLOWNCAR_STORE_FILE": str(secret)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Pw-in-file-9" not in proc.stdout + proc.stderr and proc.stderr == ""
    lines = proc.stdout.splitlines()
    store = next(i for i, line in enumerate(lines) if line.startswith("store"))
    assert lines[store].split()[1] == "missing" and "readable by other users" in lines[store]
    assert lines[store + 1].strip().startswith("fix: ") and lines[-1].startswith("chromium")
