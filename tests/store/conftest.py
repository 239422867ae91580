"""Store fixtures: every contract test runs against SQLite (a file) and a real PostgreSQL server that this
session starts on 127.0.0.1 (initdb + pg_ctl as the postgres user, fsync off) and stops at the end. Without
the server binaries the PostgreSQL half is skipped, unless CI is set: then it fails."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clowncar.store import Store, open_store
from clowncar.store.pgserver import create_database, drop_database, find_bin_dir, throwaway_postgres

ASSETS = Path(__file__).parent / "assets"
_db_names = itertools.count()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    shared = os.environ.get("CLOWNCAR_TEST_PG_ADMIN_URL")
    if shared:  # a server started once for many pytest sessions (scripts/mutation.sh); must be on loopback
        assert "@127.0.0.1:" in shared, "CLOWNCAR_TEST_PG_ADMIN_URL must name a server on 127.0.0.1"
        yield shared
        return
    if find_bin_dir() is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend; the PostgreSQL one is dropped after the test, so a server
    shared by many sessions (mutation runs) does not fill its disk."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    name = f"t{os.getpid()}_{next(_db_names)}"
    yield create_database(admin, name)
    drop_database(admin, name)


@pytest.fixture
def eastern_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone five hours behind UTC, so a local time passed off as UTC shows."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    st = open_store(store_url)
    yield st
    st.close()


@pytest.fixture
def step_rows() -> Callable[..., list[dict]]:
    """Step event records as the worker writes them (floats chosen to need all 17 digits)."""

    def make(first: int, last: int) -> list[dict]:
        return [{"event": "step", "step": i, "kind": "C" if i % 2 else "N", "train_loss": 7.0 / (i + 0.1),
                 "lr_scale": 1.0 - i / 3e4, "phase": "warmup" if i < 10 else "main", "elapsed_ms": i * 85.33,
                 "tokens": i * 524288} for i in range(first, last + 1)]

    return make


@pytest.fixture
def legacy_copy(legacy_runs: Path, tmp_path: Path) -> Callable[[str], Path]:
    """Copy one legacy file into tmp_path (so a test may cut it short) and return the copy's path."""

    def copy(rel: str) -> Path:
        dst = tmp_path / "legacy" / Path(rel).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((legacy_runs / rel).read_bytes())
        return dst

    return copy


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """`clowncar ARGS` run in this process through the real entry point (exit code, stdout, stderr): the same
    code path as `run_cli` without a new interpreter, for the many small command checks."""
    from clowncar.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
