"""A store that fails once a sweep runs (its PostgreSQL server shuts down, say) and stays away longer than the
retry window (CLOWNCAR_STORE_RETRY_SECONDS) ends `clowncar sweep run` as a failed run, exit 1, with the store's one
line; a store that fails before the sweep starts stays bad input, exit 2.
The sweep runs in this process without Ray: Ray's start is skipped and Tune's fit is one store write, made
through the real store callback after the database went away."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.exc import OperationalError

import clowncar.orchestrator.tune as tune
import clowncar.store
from clowncar.cli import main

SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {"model.crawler_loops": {"grid": [1, 2]}},
        "resources": {"cpus": 1}}
SHUTDOWN = ("FATAL: the database system is shutting down (server postgresql://clowncar:hunter2@db:5432/"
            "clowncar)")
"""What psycopg says while PostgreSQL restarts, with a URL in it to show that no password reaches the user."""


def shut_down(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every later connection of `store` fails as one to a server that is shutting down."""
    def refuse() -> Any:
        raise OperationalError("BEGIN", {}, Exception(SHUTDOWN))

    monkeypatch.setattr(store.engine, "connect", refuse)


class OneTrialTuner:
    """Tune's part: the first trial reports its first step, which the store callback writes."""

    def __init__(self, callback: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.callback, self.monkeypatch = callback, monkeypatch

    def fit(self) -> None:
        shut_down(self.callback.store, self.monkeypatch)
        trial = type("Trial", (), {"trial_id": "t0", "config": {"_cc": {"number": 0, "attempt": 0}}})()
        self.callback.on_trial_result(1, [trial], trial, {"host": "node-a", "new_rows": "{}"})


@pytest.fixture
def sweep_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """`clowncar sweep run` of a two-trial CPU spec on a SQLite store: (exit code, stderr lines, store URL)."""
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    # a server that is shutting down is waited for while the sweep runs (store/retry.py): for one second here
    monkeypatch.setenv("CLOWNCAR_STORE_RETRY_SECONDS", "1")
    for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_SIGINT_HANDLER",
                 "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # run_sweep sets them: restored after the test
    analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    monkeypatch.setattr(analysis, "filters", list(analysis.filters))  # nor does its log filter outlive it
    monkeypatch.setattr("clowncar.orchestrator.preflight.check_local_data", lambda spec: None)
    monkeypatch.setattr(tune, "init_ray", lambda opts: None)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    url = f"sqlite:///{tmp_path / 'store.db'}"

    def run() -> tuple[int, list[str], str]:
        with pytest.raises(SystemExit) as done:
            main(["sweep", "run", str(spec), "--store", url, "--quiet"])
        return int(done.value.code), capsys.readouterr().err.splitlines(), url

    return run


def test_a_store_that_fails_after_the_sweep_started_ends_it_with_exit_1_and_one_line(
        sweep_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune, "_tuner", lambda spec, opts, searcher, callback, *rest: OneTrialTuner(callback,
                                                                                                   monkeypatch))
    code, err, url = sweep_run()
    assert code == 1
    assert err == [  # the wait said once as it began (store/retry.OutageNotice), then the one error line
        "clowncar: the store stopped answering (the database system is shutting down); the sweep waits for it, up "
        "to 1 s per read or write (CLOWNCAR_STORE_RETRY_SECONDS)",
        f"clowncar: error: store write failed at {url}: FATAL: the database system is shutting down "
        "(server postgresql://clowncar:***@db:5432/clowncar) (still failing after 1 s of retries)"]


def test_a_store_that_fails_before_the_sweep_starts_is_still_bad_input(sweep_run: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    opened = clowncar.store.open_store

    def open_then_lose(url: str, **kw: Any) -> Any:
        store = opened(url, **kw)
        shut_down(store, monkeypatch)  # it answered once, then went away before the driver took its lease
        return store

    monkeypatch.setattr(clowncar.store, "open_store", open_then_lose)
    code, err, url = sweep_run()
    assert code == 2
    assert err == [f"clowncar: error: store write failed at {url}: FATAL: the database system is shutting down "
                   "(server postgresql://clowncar:***@db:5432/clowncar)"]


def test_a_bad_retry_window_is_bad_input_before_the_sweep_is_recorded(sweep_run: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOWNCAR_STORE_RETRY_SECONDS", "two minutes")
    code, err, url = sweep_run()
    assert code == 2
    assert err == ["clowncar: error: CLOWNCAR_STORE_RETRY_SECONDS must be a number of seconds >= 0, not "
                   "'two minutes'"]
    assert not Path(url.removeprefix("sqlite:///")).exists()
