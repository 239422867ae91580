"""The store's password goes nowhere: a demo run on a PostgreSQL store that asks for a password, then every
command a user runs on its results, leave the password in no output, error line, log, file, store row, process
command line or process environment (but the driver's own, which the user gave it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.slow


def _files_holding(secret: bytes, roots: list[Path]) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    if secret in path.read_bytes():
                        found.append(str(path))
                except OSError:
                    continue
    return found


def _rows_holding(secret: str, url: str) -> list[str]:
    """Every row of every table of the database (ours and Optuna's), as text."""
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    found = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            found += [f"{table.name}: {row}"[:200] for row in conn.execute(select(table)) if secret in str(row)]
    engine.dispose()
    assert {"clowncar_sweeps", "clowncar_trials", "clowncar_steps", "studies", "trials"} <= set(meta.tables)
    return found


def test_a_demo_on_a_password_store_leaves_the_password_nowhere(sweep_env, helpers, pg_password_store) -> None:
    url, password = pg_password_store
    secret = password.encode()
    home = sweep_env.tmp / "home"
    home.mkdir()
    # The driver gets the URL twice, as a user might: --store, and CLOWNCAR_STORE in its environment.
    env = {**sweep_env.env, "HOME": str(home), "CLOWNCAR_STORE": url}
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    spec = sweep_env.spec("sec", overrides={"data.dataset": "demo_sp1024", "train.iterations": 6,
                                            "train.max_wallclock_seconds": 20, "eval.max_tokens": 4096},
                          space={"model.crawler_loops": {"grid": [1, 2]}}, worker={"module": "clowncar.worker"})
    demo = subprocess.Popen([sys.executable, "-m", "clowncar", "demo", "--spec", str(spec), "--name", "sec",
                             "--store", url, "--num-cpus", "2", "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=sweep_env.tmp)
    watch = helpers.ProcessWatch(secret, skip={os.getpid(), demo.pid})
    watch.start()
    try:
        out, err = demo.communicate(timeout=900)
    finally:
        watch.stop.set()
        watch.join()
    assert demo.returncode == 0, out + err
    assert "store postgresql+psycopg://postgres:***@127.0.0.1" in out, out
    outputs = {"demo": out + err}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "clowncar", *args], capture_output=True, text=True, env=env,
                           cwd=sweep_env.tmp, timeout=300)
        outputs[" ".join(args)] = r.stdout + r.stderr
        return r

    query_form = make_url(url).set(password=None).update_query_dict({"password": password})
    query_url = query_form.render_as_string(hide_password=False)
    unreachable = make_url(url).set(port=1).render_as_string(hide_password=False)
    assert run("sweep", "status", "sec", "--store", url).returncode == 0
    assert run("sweep", "ls", "--store", query_url).returncode == 0  # ?password= reaches the server too
    assert run("store", "ls", "sec", "--store", url).returncode == 0
    assert run("store", "export", "--sweep", "sec", "--out", str(sweep_env.tmp / "export"), "--format", "csv",
               "--store", url).returncode == 0
    assert run("analyze", "sec", "--out", str(sweep_env.tmp / "report"), "--store", url).returncode == 0
    for bad in (unreachable, query_form.set(port=1).render_as_string(hide_password=False)):
        r = run("sweep", "status", "sec", "--store", bad)
        assert r.returncode == 2 and r.stderr.startswith("clowncar: error:"), r.stderr
    assert run("sweep", "run", str(spec), "--store", url).returncode == 2  # refused: the name is taken

    assert {"trial worker", "raylet"} <= watch.seen, watch.seen  # the watch saw the processes that matter
    assert not watch.leaks, watch.leaks
    assert not [name for name, text in outputs.items() if password in text], outputs
    assert not _files_holding(secret, [sweep_env.tmp, sweep_env.ray_tmp])
    assert not _rows_holding(password, url)
    token = home / ".ray" / "auth_token"
    assert token.is_file() and token.stat().st_mode & 0o777 == 0o600
    assert list((sweep_env.runs / "tune" / "sec").glob("tuner.pkl"))  # the pickle exists, and held no secret

