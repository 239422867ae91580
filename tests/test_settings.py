"""Deployment settings: the store URL from CLOWNCAR_STORE, or from a file only its owner (and group) can read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clowncar.errors import ConfigError
from clowncar.settings import load_settings

URL = "postgresql+psycopg://clowncar:s3cret@db:5432/runs"


def _url_file(tmp_path: Path, mode: int, text: str = URL + "\n") -> Path:
    path = tmp_path / "store_url"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_store_url_comes_from_a_private_file(tmp_path: Path) -> None:
    for mode in (0o600, 0o400, 0o640):  # group read: Kubernetes hands a mounted Secret to the pod's fsGroup
        path = _url_file(tmp_path, mode)
        assert load_settings({"CLOWNCAR_STORE_FILE": str(path)}).store_url == URL
    assert load_settings({"CLOWNCAR_STORE": URL}).store_url == URL
    assert load_settings({"CLOWNCAR_RUNS_DIR": str(tmp_path)}).store_url == f"sqlite:///{tmp_path}/clowncar.db"


def test_processes_that_never_open_the_store_do_not_need_the_file(tmp_path: Path) -> None:
    settings = load_settings({"CLOWNCAR_STORE_FILE": str(tmp_path / "absent"), "CLOWNCAR_DATA_DIR": "/data"})
    assert settings.data_dir == Path("/data")  # a trial worker reads its data dir; the file is read on demand
    with pytest.raises(ConfigError, match=r"^CLOWNCAR_STORE_FILE .*absent: No such file or directory$"):
        _ = settings.store_url


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o606])
def test_a_store_url_file_other_users_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _url_file(tmp_path, mode)
    with pytest.raises(ConfigError) as err:
        _ = load_settings({"CLOWNCAR_STORE_FILE": str(path)}).store_url
    assert str(err.value) == f"CLOWNCAR_STORE_FILE {path} is readable by other users (mode {mode:04o}): chmod 600 {path}"
    assert "s3cret" not in str(err.value)


def test_an_empty_file_or_both_settings_are_refused(tmp_path: Path) -> None:
    empty = _url_file(tmp_path, 0o600, "\n")
    with pytest.raises(ConfigError, match="is empty"):
        _ = load_settings({"CLOWNCAR_STORE_FILE": str(empty)}).store_url
    both = {"CLOWNCAR_STORE": URL, "CLOWNCAR_STORE_FILE": str(empty)}
    with pytest.raises(ConfigError, match="set CLOWNCAR_STORE or CLOWNCAR_STORE_FILE, not both"):
        _ = load_settings(both).store_url


def test_the_cli_says_so_in_one_line(run_cli, tmp_path: Path) -> None:
    path = _url_file(tmp_path, 0o644)
    r = run_cli("sweep", "ls", env={"CLOWNCAR_STORE": "", "CLOWNCAR_STORE_FILE": str(path)})
    assert r.returncode == 2
    assert r.stderr == (f"clowncar: error: CLOWNCAR_STORE_FILE {path} is readable by other users (mode 0644): "
                        f"chmod 600 {path}\n")


def test_the_cli_keeps_the_store_url_out_of_every_child_process(tmp_path: Path) -> None:
    """CLOWNCAR_STORE may hold the password: a clowncar command reads it, and no process it starts inherits it
    (seen on matplotlib's fc-list during a report; Ray, workers and git would get it too)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import contextlib, subprocess, sys\n"
        "from clowncar import cli\n"
        "from clowncar.settings import load_settings\n"
        "with contextlib.suppress(SystemExit):\n"
        "    cli.main(['config', 'presets'])\n"
        "child = subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"CLOWNCAR_STORE\"))'],\n"
        "                       capture_output=True, text=True).stdout.strip()\n"
        "print('RESULT', load_settings().store_url, child)\n")
    env = {**os.environ, "CLOWNCAR_STORE": "postgresql+psycopg://u:S3cret@127.0.0.1:9/db"}
    out = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, env=env, timeout=120)
    result = next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))
    assert result.split()[1:] == ["postgresql+psycopg://u:S3cret@127.0.0.1:9/db", "None"], out.stderr
