"""How embedded Ray is started, in this process with `ray.init` and the reaper replaced: loopback only, the store's
URL kept out of Ray's environment, token authentication said explicitly, and Ray's token file private (made so,
closed if left open, a race for it lost politely). The real embedded start runs in the sweep tests."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray

from clowncar.orchestrator import ray_start, tune


def test_the_store_secret_stays_out_of_rays_environment(monkeypatch) -> None:
    monkeypatch.setenv("CLOWNCAR_STORE", "postgresql://u:pw@h/db")
    monkeypatch.setenv("PGPASSWORD", "pw")
    monkeypatch.delenv("CLOWNCAR_STORE_FILE", raising=False)
    monkeypatch.setenv("OTHER", "kept")
    with ray_start._secrets_kept_from_ray():
        assert not {"CLOWNCAR_STORE", "PGPASSWORD"} & set(os.environ) and os.environ["OTHER"] == "kept"
    assert os.environ["CLOWNCAR_STORE"] == "postgresql://u:pw@h/db" and os.environ["PGPASSWORD"] == "pw"
    assert "CLOWNCAR_STORE_FILE" not in os.environ
    with pytest.raises(RuntimeError), ray_start._secrets_kept_from_ray():
        raise RuntimeError
    assert os.environ["PGPASSWORD"] == "pw"  # put back after a failed start too
    assert ray_start.SECRET_ENV == ("CLOWNCAR_STORE", "CLOWNCAR_STORE_FILE", "PGPASSWORD")


def test_token_auth_is_said_explicitly_unless_the_user_chose(monkeypatch) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    ray_start._token_auth_explicit()
    assert os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_start._token_auth_explicit()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"


def token_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """HOME at `home`, token authentication on, no token given: the default token file applies."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    return home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return token_env(monkeypatch, tmp_path)


def test_the_auth_token_is_created_private(home: Path) -> None:
    ray_start._private_auth_token()
    path = home / ".ray" / "auth_token"
    assert path.is_file() and len(path.read_text().strip()) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = path.read_text()
    ray_start._private_auth_token()
    assert path.read_text() == token  # an existing token is kept


def test_a_token_left_readable_by_others_is_closed(home: Path) -> None:
    path = home / ".ray" / "auth_token"
    path.parent.mkdir()
    path.write_text("x" * 32)
    path.chmod(0o644)
    ray_start._private_auth_token()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "x" * 32


@pytest.mark.parametrize("env", [{"RAY_AUTH_MODE": "disabled"}, {"RAY_AUTH_TOKEN": "t"},
                                 {"RAY_AUTH_TOKEN_PATH": "/elsewhere"}])
def test_no_token_file_when_auth_is_off_or_given(home: Path, monkeypatch, env: dict[str, str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ray_start._private_auth_token()
    assert not (home / ".ray").exists()


def test_token_mode_is_read_without_regard_to_case(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "TOKEN")
    ray_start._private_auth_token()
    assert (home / ".ray" / "auth_token").is_file()


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    from clowncar.orchestrator import embedded

    seen: dict[str, Any] = {"init": [], "reaped": [], "atexit": [], "recorded": []}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen["init"].append((kw, dict(os.environ))))
    monkeypatch.setattr(embedded, "reap_dead_drivers", lambda d: seen["reaped"].append(d))
    monkeypatch.setattr(embedded, "record", lambda d: d / "me.json")
    monkeypatch.setattr(embedded, "recorded_while_starting",
                        lambda d: (seen["recorded"].append(d), contextlib.nullcontext())[1])
    monkeypatch.setattr(ray_start.atexit, "register", lambda f, **kw: seen["atexit"].append((f, kw)))
    monkeypatch.setattr(ray_start, "_private_auth_token", lambda: None)
    monkeypatch.setenv("CLOWNCAR_STORE", "postgresql://u:pw@h/db")
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    return seen


def test_embedded_ray_starts_on_loopback_without_the_store_secret(fake_ray, tmp_path: Path) -> None:
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path, num_cpus=3, num_gpus=1))
    ((kwargs, env),) = fake_ray["init"]
    assert kwargs == {"address": "local", "num_cpus": 3, "num_gpus": 1, "include_dashboard": False,
                      "log_to_driver": False, "logging_level": 30}
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0" and "CLOWNCAR_STORE" not in env
    assert os.environ["CLOWNCAR_STORE"] == "postgresql://u:pw@h/db"
    assert fake_ray["reaped"] == [tmp_path]  # a dead driver's Ray is reaped first
    assert fake_ray["recorded"] == [tmp_path]  # what it starts is recorded where the next start looks
    ((func, kw),) = fake_ray["atexit"]
    assert (func.__self__, func.__name__, kw) == (tmp_path / "me.json", "unlink", {"missing_ok": True})


def test_embedded_ray_defaults_to_every_cpu_and_no_gpu(fake_ray, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ray_start.os, "cpu_count", lambda: 6)
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path))
    monkeypatch.setattr(ray_start.os, "cpu_count", lambda: None)
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path))
    assert [(k["num_cpus"], k["num_gpus"]) for k, _ in fake_ray["init"]] == [(6, 0), (1, 0)]


def test_a_cluster_is_joined_as_given_and_nothing_is_reaped(fake_ray, tmp_path: Path) -> None:
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path, address="ray://head:10001"))
    ((kwargs, env),) = fake_ray["init"]
    assert kwargs == {"address": "ray://head:10001", "log_to_driver": False, "logging_level": 30}
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in env  # a real cluster must be able to join other hosts
    assert fake_ray["reaped"] == [] and fake_ray["atexit"] == []


def test_ray_connects_this_driver_without_its_failure_signal_handler(fake_ray, tmp_path: Path, monkeypatch) -> None:
    """Ray's C++ failure-signal handler, once installed in the driver, is taken out by `ray.shutdown`, which sets
    SIGTERM to its default action under our SIG_IGN: a SIGTERM after a sweep's last trial ended it -15
    (tests/orchestrator/test_interrupts.py). Embedded or on a cluster, `ray.init` runs with Ray's switch that
    leaves it out; afterwards the switch is as it was."""
    import ray._private.ray_constants as ray_constants

    before, switch = ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER, []
    monkeypatch.setattr(ray, "init", lambda **kw: switch.append(ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER))
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path))
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path, address="head:6379"))
    assert switch == [True, True]
    assert ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER is before


def test_a_running_ray_is_used_as_it_is(fake_ray, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path))
    assert fake_ray["init"] == []


def test_no_record_means_nothing_to_remove_at_exit(fake_ray, tmp_path: Path, monkeypatch) -> None:
    from clowncar.orchestrator import embedded

    monkeypatch.setattr(embedded, "record", lambda d: None)
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path))
    assert fake_ray["atexit"] == []


def test_no_token_file_when_the_mode_is_unset(home: Path, monkeypatch) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE")
    ray_start._private_auth_token()
    assert not (home / ".ray").exists()


def test_the_token_folder_is_made_with_its_parents(tmp_path: Path, monkeypatch) -> None:
    token_env(monkeypatch, tmp_path / "new" / "home")
    ray_start._private_auth_token()
    assert (tmp_path / "new" / "home" / ".ray" / "auth_token").is_file()


def test_a_token_another_driver_wrote_first_is_kept(home: Path, monkeypatch) -> None:
    import importlib

    gen = importlib.import_module("ray._private.authentication.authentication_token_generator")
    path = home / ".ray" / "auth_token"

    def racing() -> str:
        path.write_text("theirs")  # another driver wins the race between the check and the write
        path.chmod(0o600)
        return "ours"

    monkeypatch.setattr(gen, "generate_new_authentication_token", racing)
    ray_start._private_auth_token()
    assert path.read_text() == "theirs"


def test_a_home_that_cannot_hold_the_token_is_not_an_error(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "file").write_text("")
    token_env(monkeypatch, tmp_path / "file")  # a file: the folder cannot be made
    ray_start._private_auth_token()


def test_a_ray_without_the_token_generator_is_not_an_error(home: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray._private.authentication.authentication_token_generator", None)
    ray_start._private_auth_token()
    assert not (home / ".ray" / "auth_token").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_token_file_of_another_user_is_left_alone(home: Path) -> None:
    path = home / ".ray" / "auth_token"
    path.parent.mkdir()
    path.write_text("x")
    path.chmod(0o644)
    os.chown(path, 12345, 12345)
    ray_start._private_auth_token()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_private_token_is_not_touched(home: Path) -> None:
    path = home / ".ray" / "auth_token"
    path.parent.mkdir()
    path.write_text("x")
    path.chmod(0o400)
    ray_start._private_auth_token()
    assert stat.S_IMODE(path.stat().st_mode) == 0o400


@pytest.mark.parametrize("module", [None, "no Config"])
def test_a_ray_without_its_config_refresh_still_gets_token_mode(monkeypatch, module: str | None) -> None:
    import sys
    import types

    fake = None if module is None else types.ModuleType("ray._raylet")
    if fake is not None:
        fake.Config = object  # type: ignore[attr-defined]  # no initialize
    monkeypatch.setitem(sys.modules, "ray._raylet", fake)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    ray_start._token_auth_explicit()
    assert os.environ["RAY_AUTH_MODE"] == "token"


@pytest.mark.parametrize(("entrypoint", "unpadded"), [
    ('clowncar sweep run s.yaml "" "" ""', "clowncar sweep run s.yaml"),
    ('clowncar sweep run "" s.yaml ""', 'clowncar sweep run "" s.yaml'),  # an empty argument inside stays
    ("clowncar sweep run s.yaml", "clowncar sweep run s.yaml"),
    ('""', '""'),  # no space before it: a line that is one empty argument is left as it is
])
def test_only_trailing_empty_arguments_are_taken_off_the_entrypoint(entrypoint: str, unpadded: str) -> None:
    assert ray_start._unpadded(entrypoint) == unpadded


def test_rays_job_table_shows_a_masked_driver_command_line_without_empty_arguments() -> None:
    """A driver whose title was rewritten (a password on its command line) has the rest of its old arguments'
    memory as NULs in /proc/PID/cmdline, which Ray listed as `""` after the masked line in its job table."""
    from subprocess import list2cmdline

    title = "clowncar sweep run s.yaml --store 'postgresql://u:***@db/clowncar'"
    code = (f"import setproctitle, ray._private.utils as u\n"
            f"from clowncar.orchestrator.ray_start import entrypoint_unpadded\n"
            f"setproctitle.setproctitle({title!r})\n"
            f"print(u.get_entrypoint_name())\n"
            f"with entrypoint_unpadded():\n    print(u.get_entrypoint_name())\n"
            f"print(u.get_entrypoint_name())\n")
    r = subprocess.run([sys.executable, "-c", code, "--store", "postgresql://u:" + "p" * 80 + "@db/clowncar"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert r.returncode == 0, r.stderr
    padded, inside, after = r.stdout.splitlines()
    assert padded.startswith(list2cmdline([title]) + ' ""')  # Ray's own reading, as the walk found it
    assert inside == list2cmdline([title])
    assert after == padded  # Ray's function is put back


def test_embedded_ray_picks_loopback_even_where_ray_was_imported_first(fake_ray, tmp_path: Path,
                                                                       monkeypatch) -> None:
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, at its first import: in a process that imported it
    before (this test session), the variable set later would leave the node on the machine's network address."""
    import ray._private.ray_constants as ray_constants
    from ray._private.services import get_node_ip_address

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)  # as read at an import with the variable unset
    seen = []
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append((kw["address"], get_node_ip_address())))
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path, address="head:6379"))
    assert ray_constants.ENABLE_RAY_CLUSTER is True  # a cluster's driver is left free to join other hosts
    ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=tmp_path))
    assert seen[1] == ("local", "127.0.0.1") and ray_constants.ENABLE_RAY_CLUSTER is False


EMBEDDED_AFTER_IMPORT = """
import sys
from pathlib import Path
import ray, ray._private.ray_constants as constants
assert constants.ENABLE_RAY_CLUSTER, "the variable was set before Ray's import: nothing to prove"
from clowncar.orchestrator import ray_start, tune
ray_start.init_ray(tune.RunOptions(store_url="sqlite://", runs_dir=Path(sys.argv[1]), num_cpus=1))
print("started", flush=True)
sys.stdin.readline()
ray.shutdown()
"""


@pytest.mark.slow
def test_a_real_embedded_ray_started_after_importing_ray_listens_only_on_loopback(sweep_env, helpers) -> None:
    env = {k: v for k, v in sweep_env.env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    proc = subprocess.Popen([sys.executable, "-c", EMBEDDED_AFTER_IMPORT, str(sweep_env.runs)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline()
        assert first.strip() == "started", first + proc.stdout.read()
        pids = {proc.pid, *helpers.pids_with(str(sweep_env.ray_tmp))}
        assert len(pids) > 2  # Ray's GCS, raylet and agents are up: the check below has listeners to look at
        assert helpers.non_loopback_listeners(pids) == []
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
