"""docker/compose.yaml carries what clowncar relies on: loopback-only ports, GPU reservations on the workers, a
PostgreSQL volume, optuna-dashboard on the head's database, credentials from git-ignored files, the database
password for PostgreSQL only, the store URL as a secret file (never in a Ray process's environment), Ray token
authentication on every Ray node and no database credentials on the workers."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def ray_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services(compose).items() if "ray start" in " ".join(_command(s))}


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return [cmd] if isinstance(cmd, str) else list(cmd)


def env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file", [])
    files = [files] if isinstance(files, str) else files
    return [f["path"] if isinstance(f, dict) else f for f in files]


def test_every_published_port_is_bound_to_loopback(compose: dict[str, Any]) -> None:
    published = 0
    for name, svc in services(compose).items():
        for port in svc.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} is not bound to 127.0.0.1"
    assert published >= 2  # at least the Ray dashboard and optuna-dashboard


def test_gpu_workers_reserve_nvidia_devices(compose: dict[str, Any]) -> None:
    workers = {n: s for n, s in ray_services(compose).items() if "--head" not in " ".join(_command(s))}
    assert workers
    for name, svc in workers.items():
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), name


def test_postgres_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    pg = services(compose)["postgres"]
    mounts = [v.split(":") for v in pg["volumes"] if isinstance(v, str)]
    named = [src for src, dst, *_ in mounts if dst == "/var/lib/postgresql/data"]
    assert named and named[0] in compose["volumes"]


def test_dashboard_reads_the_same_store_as_the_ray_head(compose: dict[str, Any]) -> None:
    head, dash = services(compose)["ray-head"], services(compose)["optuna-dashboard"]
    assert compose["secrets"]["store_url"]["file"] == "./store_url"
    for svc in (head, dash):
        assert "store_url" in svc["secrets"]
        assert "CLOWNCAR_STORE" not in (svc.get("environment") or {})  # the URL is never a service variable
    assert head["environment"]["CLOWNCAR_STORE_FILE"] == "/run/secrets/store_url"
    script = " ".join(_command(dash))
    assert "/opt/clowncar/serve_dashboard.py" in script and 'CLOWNCAR_STORE="$$(cat /run/secrets/store_url)"' in script
    assert "postgresql" not in script  # the URL never goes on a command line


def test_only_postgres_gets_the_database_password(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        if name == "postgres":
            assert env_files(svc) == ["postgres.env"]
            continue
        assert not env_files(svc), f"{name} must not read an env file (it holds the database password)"
        assert not any("POSTGRES" in k for k in (svc.get("environment") or {})), name


def test_env_file_is_used_and_never_committed(compose: dict[str, Any], repo: Path,
                                              git_ignored: Callable[[str], bool],
                                              read_env_file: Callable[[Path], dict[str, str]]) -> None:
    used = {f for svc in services(compose).values() for f in env_files(svc)}
    assert used
    for rel in used:
        assert git_ignored(f"docker/{rel}"), f"docker/{rel} must be git-ignored"
    for secret in compose.get("secrets", {}).values():
        assert git_ignored(f"docker/{Path(secret['file']).as_posix().removeprefix('./')}")
    example = read_env_file(repo / "docker/example.env")
    assert not git_ignored("docker/example.env")
    assert set(example) == {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    assert example["POSTGRES_PASSWORD"] == "CHANGE-ME"  # a template, not a credential


@pytest.mark.parametrize("password", [None, "p@ss/w:rd%40#?x"], ids=["example", "url-special"])
def test_the_documented_store_url_matches_the_database(compose: dict[str, Any], repo: Path, password: str | None,
                                                       read_env_file: Callable[[Path], dict[str, str]]) -> None:
    """The recipe in compose.yaml's header, run as written: the URL it writes names PostgreSQL's user, password
    and database, also for a password with the URL's own characters (printf put them in as is: an `@` or `/`
    moved the host, a `%40` was read as `@`)."""
    header = (repo / "docker/compose.yaml").read_text().split("\nname:", 1)[0]
    recipe = re.search(r"^#   (\((?:set -a && )?\. docker/postgres\.env.*?> docker/store_url\))$", header,
                       re.MULTILINE | re.DOTALL)
    assert recipe, "the header shows how docker/store_url is made from docker/postgres.env"
    header_command = re.sub(r"\n#   ", "\n", recipe.group(1))  # as pasted: its line breaks kept
    readme = re.search(r"^(\((?:set -a && )?\. docker/postgres\.env.*?> docker/store_url\))",
                       (repo / "docker/README.md").read_text(), re.MULTILINE | re.DOTALL)
    assert readme, "docker/README.md shows the same recipe"
    text = (repo / "docker/example.env").read_text()
    if password is not None:
        text = text.replace("POSTGRES_PASSWORD=CHANGE-ME", f"POSTGRES_PASSWORD={password}")
    for command in (header_command, readme.group(1)):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "docker").mkdir()
            (Path(tmp) / "docker/postgres.env").write_text(text)
            example = read_env_file(Path(tmp) / "docker/postgres.env")
            subprocess.run(["sh", "-c", command], cwd=tmp, check=True)
            made = Path(tmp) / "docker/store_url"
            url = make_url(made.read_text())
            assert made.stat().st_mode & 0o777 == 0o600
        assert url.drivername == "postgresql+psycopg" and (url.host, url.port) == ("postgres", 5432)
        assert (url.username, url.password, url.database) == (
            example["POSTGRES_USER"], example["POSTGRES_PASSWORD"], example["POSTGRES_DB"])


def test_every_ray_node_keeps_token_authentication_on(compose: dict[str, Any]) -> None:
    nodes = ray_services(compose)
    assert {"ray-head", "ray-worker"} <= set(nodes)
    for name, svc in nodes.items():
        env = svc.get("environment") or {}
        assert env.get("RAY_AUTH_MODE") == "token", name
        token_path = env.get("RAY_AUTH_TOKEN_PATH", "")
        assert token_path.startswith("/run/secrets/"), name
        assert token_path.rsplit("/", 1)[-1] in svc.get("secrets", []), name


def test_workers_get_no_database_credentials(compose: dict[str, Any]) -> None:
    for name, svc in ray_services(compose).items():
        if "--head" in " ".join(_command(svc)):
            continue
        assert not env_files(svc), f"{name} must not read the database env file"
        assert not any("STORE" in k or "POSTGRES" in k for k in (svc.get("environment") or {})), name
        assert "store_url" not in svc.get("secrets", []), name
