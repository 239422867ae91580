"""Shared fixtures. Tests are collected with --import-mode=importlib (no tests package), so shared helpers
are fixtures here rather than importable modules."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SLOW_TIMEOUT_S = 1200  # per-test limit of tests marked slow (pyproject's `timeout` is the default for the rest)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


# Modules of tests/orchestrator that may run beside the other worker's tests: they start no Ray of their own
# (each under 5 s in all), or run embedded sweeps of the contract worker whose assertions read what the store and
# the study hold, never how long a trial took. The rest (clusters, signals, head loss, timed trials) stay on one
# worker, in order. Measured 2026-12-06: the orchestrator unit took 966 s of a 989 s suite, the other worker 553 s;
# 2026-12-07 (a451baf, idle): 1014 s and 1081 s of a 1090 s suite, and a third worker made it slower (1146 s).
BESIDE_OTHERS = {
    # embedded sweeps, no timing asserted (~280 s; test_sweep_driver's in this process)
    "test_budget_samplers", "test_seed_sweeps", "test_sweep_driver", "test_sweep_outcomes",
    # no Ray started (~30 s)
    "test_address_form", "test_asha_seed", "test_distinct_configs", "test_driver_state", "test_embedded_ray_start",
    "test_embedded_reaper", "test_gpu_book_rules", "test_gpu_hours", "test_gpu_preflight", "test_grid_order",
    "test_launcher", "test_ledger_creation", "test_ledger_in_process", "test_placement", "test_plan", "test_preflight", "test_reach",
    "test_record", "test_rerun_command", "test_rerun_spec", "test_resume", "test_resume_cut_short_asks",
    "test_rung_rules", "test_same_code", "test_search_budget", "test_search_gate", "test_search_replay",
    "test_search_rules", "test_search_tells", "test_spec_domain", "test_spec_refusal_places", "test_spec_rules", "test_study_open", "test_submit_entry",
    "test_submit_steps", "test_submit_stop", "test_sweep_plan_lines",
    "test_sweep_status_reasons", "test_trial_bundles", "test_trial_process", "test_tune_parts", "test_tune_retry",
    "test_worker_registry",
}


def _work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: the one orchestrator unit, or the test alone."""
    if not nodeid.startswith("tests/orchestrator/"):
        return nodeid
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return nodeid if module in BESIDE_OTHERS else "tests/orchestrator"


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: `scripts/test.sh` runs the suite on two workers
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The tests of tests/orchestrator that start Ray clusters or time trials run on one worker, one after another
    (a single work unit, and the biggest, so it is handed out first): they leave most of the CPU idle while they
    wait, which the other worker fills with the rest of the suite, one test at a time (`BESIDE_OTHERS`).
    (xdist's own `loadgroup` cannot do this under pytest 9: it renames node ids through an attribute pytest no
    longer reads.)"""
    if config.getvalue("dist") != "load":
        return None  # another mode asked for by name: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class OrchestratorApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return OrchestratorApart(config, log)


@pytest.fixture(autouse=True)
def _no_secret_held_across_tests() -> Iterator[None]:
    """`clowncar.cli.main` moves CLOWNCAR_STORE out of the environment into memory (`settings._held`), where a
    test's monkeypatch cannot undo it: a store URL one test set would be the default of the next. (Not through
    `monkeypatch`: an autouse fixture that takes it would undo every test's patches last, after the test's other
    fixtures have torn down under them.)"""
    import clowncar.settings as settings

    saved, settings._held = settings._held, {}
    yield
    settings._held = saved


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Run the code of this checkout, whatever is installed in the environment.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("CLOWNCAR_DEBUG", None)
    env.update(extra or {})
    return env


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `clowncar ARGS` as a user would (a new process), in tmp_path, with the store and data under it."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        base = {"CLOWNCAR_RUNS_DIR": str(tmp_path / "runs"), "CLOWNCAR_DATA_DIR": str(tmp_path / "data")}
        return subprocess.run([sys.executable, "-m", "clowncar", *args], capture_output=True, text=True,
                              env=cli_env({**base, **(env or {})}), timeout=timeout, cwd=cwd or tmp_path)

    return run


@pytest.fixture
def ascii_locale_child() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run Python `code` (with `args` as sys.argv[1:]) in a child whose locale encoding is ASCII and that imports
    the same `clowncar` as this process (under mutation testing, the mutated one); fails on a non-zero exit.

    The child switches its LC_CTYPE to C itself, after start-up, with UTF-8 mode off: LC_ALL=C in its environment
    would also change how it decodes that environment, where mutmut names a method's mutant with a non-ASCII
    character, and the child would silently run the original code."""
    import clowncar

    env = {**os.environ, "PYTHONPATH": str(Path(clowncar.__file__).parents[1]), "PYTHONUTF8": "0"}

    def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
        script = "import locale; locale.setlocale(locale.LC_CTYPE, 'C')\n" + code
        proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    return run


def missing(message: str) -> None:
    """A fixture's file or service is not here: skip on a developer's machine, fail in CI (CI set), where
    everything the suite needs must be present and a skip would hide that it no longer ran."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: a missing fixture is a failure there)", pytrace=False)
    pytest.skip(message)


def free_loopback_ports(n: int) -> list[int]:
    """`n` distinct ports on 127.0.0.1 that nothing listens on now: held open together while picked, so the kernel
    cannot hand the same one out twice (picked one at a time, a Ray head's GCS and dashboard agent once drew the
    same port), then released."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


@pytest.fixture
def free_ports() -> Callable[[int], list[int]]:
    return free_loopback_ports


@pytest.fixture(scope="session")
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for "nobody answers" errors): bound once by us, then released."""
    return free_loopback_ports(1)[0]


@pytest.fixture(scope="session")
def legacy_runs() -> Path:
    """The shared legacy runs: $CLOWNCAR_LEGACY_RUNS, else ../shared/legacy-runs beside this checkout or, in a
    git worktree, beside the main repository (found through git's common dir)."""
    places = [Path(p) for p in [os.environ.get("CLOWNCAR_LEGACY_RUNS")] if p]
    places.append(SHARED / "legacy-runs")
    git_dir = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=False).stdout.strip()
    if git_dir:
        places.append(Path(git_dir).parent.parent / "shared" / "legacy-runs")
    found = next((p for p in places if p.is_dir()), None)
    if found is None:
        missing("legacy runs not found in " + ", ".join(map(str, places)))
    return found


@pytest.fixture(scope="session")
def records(legacy_runs: Path) -> Path:
    """The Parameter Golf record logs (legacy-runs/parameter-golf-records)."""
    path = legacy_runs / "parameter-golf-records"
    if not path.is_dir():
        missing(f"record logs not found at {path}")
    return path


@pytest.fixture(scope="session")
def kjv_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Builds (once per argument set) shards and a SentencePiece model from the first `lines` KJV verses with
    clowncar.data: a small real dataset for trials and bad-input cases."""
    import json

    built: dict[tuple[int, int, int, int], Path] = {}

    def build(lines: int, vocab_size: int, val_docs: int, shard_tokens: int) -> Path:
        from clowncar.data.build import build_dataset
        from clowncar.data.demo import locate_kjv

        key = (lines, vocab_size, val_docs, shard_tokens)
        if key not in built:
            root = tmp_path_factory.mktemp("kjv")
            verses = locate_kjv().read_text(encoding="utf-8").splitlines()[:lines]
            text = root / "verses.jsonl"
            text.write_text("\n".join(json.dumps({"text": json.loads(v)["text"]}) for v in verses) + "\n")
            build_dataset([text], root / "kjv", vocab_size=vocab_size, val_docs=val_docs,
                          shard_tokens=shard_tokens, progress=False, log=lambda *_: None)
            built[key] = root / "kjv"
        return built[key]

    return build


@pytest.fixture(scope="module")
def restartable_pg() -> Iterator[Any]:
    """A PostgreSQL server of this module's own on 127.0.0.1 (`pgserver.PgServer`), which its tests stop and start
    as a maintenance restart does (never the session's shared server, which other tests are using). A test that
    stops it starts it again before it ends."""
    from clowncar.store.pgserver import find_bin_dir, restartable_postgres

    if find_bin_dir() is None:
        missing("PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)")
    with restartable_postgres() as server:
        yield server


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The settings of a user with nothing configured: runs and data under `tmp_path`, no store URL."""
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLOWNCAR_STORE", raising=False)
    return tmp_path
