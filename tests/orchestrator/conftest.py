"""Helpers for the orchestrator tests: specs that run the contract worker, per-test Ray temp dirs, process
bookkeeping by PID, a loopback check of every listening socket, and the study and store a dead head leaves."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from clowncar.orchestrator.embedded import start_time

if TYPE_CHECKING:
    import optuna

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "benchmarks"


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    return start_time(pid) is not None


def cmdline(pid: int | str) -> str | None:
    """The process's command line, arguments joined by spaces; None once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def pids_with(marker: str) -> list[int]:
    """Processes whose command line names `marker`, or whose environment does (Ray's agents rename themselves
    `ray::DashboardAgent` etc., so only their environment, RAY_TMPDIR, still names the test's Ray temp dir)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if marker in (cmdline(d.name) or "") or \
                        f"RAY_TMPDIR={marker}".encode() in (d / "environ").read_bytes().split(b"\0"):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def reap(marker: str) -> list[int]:
    """SIGKILL, by PID, every process whose command line names `marker` (this test's Ray temp dir)."""
    pids = pids_with(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def non_loopback_listeners(pids: set[int]) -> list[str]:
    """Listening TCP sockets of `pids` on anything but 127.0.0.1 / ::ffff:127.0.0.1 / ::1."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    bad = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if not owners & pids:
            continue
        local = line.split()[3]
        host = local.rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "::ffff:127.0.0.1", "::1"):
            bad.append(line)
    return bad


class SweepEnv:
    """One test's world: runs dir, SQLite store, Ray temp dir, and `clowncar` as a user runs it."""

    def __init__(self, tmp: Path, ray_tmp: Path) -> None:
        self.tmp, self.ray_tmp = tmp, ray_tmp
        self.runs = tmp / "runs"
        self.store_url = f"sqlite:///{tmp / 'store.db'}"
        self.env = dict(os.environ)
        # benchmarks/ holds the contract worker and the entry point that registers it (orchestrator/workers.py)
        self.env.update({"PYTHONPATH": os.pathsep.join([str(REPO), str(CONTRACT)]), "CLOWNCAR_RUNS_DIR": str(self.runs),
                         "CLOWNCAR_STORE": self.store_url, "RAY_TMPDIR": str(ray_tmp),
                         "CLOWNCAR_DATA_DIR": str(tmp / "data")})
        self.env.pop("CLOWNCAR_DEBUG", None)

    def spec(self, name: str, **fields: Any) -> Path:
        data: dict[str, Any] = {
            "name": name, "preset": "tiny-cpu",
            "overrides": {"data.dataset": "ok", "train.iterations": 4, "train.max_wallclock_seconds": 0.4},
            "space": {"model.crawler_loops": {"grid": [1, 2, 3]}}, "sampler": "grid",
            "resources": {"cpus": 1}, "max_concurrent": 2, "max_failures": 1,
            "worker": {"module": "contract_worker"}}
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "space":
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def cli(self, *args: str, timeout: float = 240, extra: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clowncar", *args], capture_output=True, text=True,
                              env={**self.env, **(extra or {})}, cwd=self.tmp, timeout=timeout)

    def popen(self, *args: str, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "clowncar", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env={**self.env, **(extra or {})},
                                cwd=self.tmp)

    def store(self) -> Any:
        from clowncar.store import open_store

        return open_store(self.store_url)

    def study(self, name: str) -> Any:
        import optuna

        return optuna.load_study(study_name=name, storage=self.store_url)

    def worker_pids(self, name: str) -> list[int]:
        """PIDs the contract worker wrote for every trial of sweep `name` (itself and any child it started)."""
        out = []
        for f in (self.runs / "trials" / name).glob("*/*pid"):
            out.append(int(f.read_text()))
        return out


@pytest.fixture
def sweep_env(tmp_path: Path) -> Iterator[SweepEnv]:
    # A short Ray temp dir (unix socket paths are limited to ~107 bytes) that marks every Ray process of this
    # test, so leftovers (agents that outlive a SIGKILLed driver) can be killed by PID afterwards.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    env = SweepEnv(tmp_path, ray_tmp)
    yield env
    reap(str(ray_tmp))
    shutil.rmtree(ray_tmp, ignore_errors=True)  # Ray's session logs: tens of MB per test


def wait_for(cond: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()


def add_worker_node(cluster: Any, node: dict[str, Any], ray_tmp: str, tries: int = 3) -> Any:
    """`cluster.add_node(**node)`, tried again when Ray gives up on the node's start: a worker node waits about
    60 s for its raylet to register with the GCS, and on a crowded 2-core CI machine one once did not. What the
    failed start left running (its raylet and the agents under it: the processes of this Ray temp dir that were
    not there before) is killed first, so it cannot join late as a third node."""
    for attempt in range(1, tries + 1):
        before = set(pids_with(ray_tmp))
        try:
            return cluster.add_node(**node)
        except Exception:
            if attempt == tries:
                raise
            for pid in set(pids_with(ray_tmp)) - before:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def loopback_cluster(node: dict[str, Any], prefix: str) -> Iterator[Any]:
    """A Ray head with 0 CPUs and two worker nodes of `node` resources, all on 127.0.0.1, in a temp dir that
    marks its processes; afterwards whatever of it is left is killed by PID and the environment restored."""
    ray_tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    old = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_TMPDIR", "PYTHONPATH")}
    # The nodes' trial processes import the contract worker from benchmarks/, where its entry point registers it.
    paths = [str(REPO), str(CONTRACT), os.environ.get("PYTHONPATH", "")]
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TMPDIR": ray_tmp,
                       "PYTHONPATH": os.pathsep.join(p for p in paths if p)})
    import ray._private.ray_constants as ray_constants
    from ray.cluster_utils import Cluster

    # Ray read the variable at its first import in this process, before it was set here (other test modules import
    # Ray): without the constant its nodes would take the machine's network address and listen on every interface.
    was_cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    c = None
    try:  # a start that fails half-way is cleaned up as a finished test is
        # A killed node is found dead in ~3 s, not Ray's ~15 s (5 missed checks 3 s apart): the node-kill tests
        # wait less.
        c = Cluster(initialize_head=True, connect=False, head_node_args={
            "num_cpus": 0, "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}})
        c.ray_tmp = ray_tmp
        c.workers = [add_worker_node(c, node, ray_tmp) for _ in range(2)]
        c.wait_for_nodes()
        assert c.address.startswith("127.0.0.1:"), c.address
        bad = non_loopback_listeners(set(pids_with(ray_tmp)))
        assert not bad, f"the loopback cluster listens beyond 127.0.0.1: {bad}"
        yield c
    finally:
        if c is not None:
            with contextlib.suppress(Exception):
                c.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = was_cluster
        reap(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cmdline_bytes(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class ProcessWatch(threading.Thread):
    """Reads every process's command line and environment a few times a second, looking for `secret`
    (processes in `skip` aside); `seen` names the kinds of process it read (trial worker, raylet, Ray actor)."""

    FORK_SCANS = 3
    """Scans (0.3 s apart) a process may show a skipped process's command line before it counts as a leak."""

    def __init__(self, secret: bytes, skip: set[int]) -> None:
        super().__init__(daemon=True)
        self.secret, self.skip = secret, skip
        self.stop, self.leaks, self.seen = threading.Event(), set(), set()
        self.parents = {cmd for cmd in (_cmdline_bytes(pid) for pid in skip) if cmd}
        self._forks: dict[int, int] = {}

    def run(self) -> None:
        while not self.stop.wait(0.3):
            # A skipped process may retitle itself (the driver masks the store URL in its title once it has
            # parsed its arguments): its forks show the title it has now, so read it again each scan.
            self.parents |= {cmd for cmd in (_cmdline_bytes(pid) for pid in self.skip) if cmd}
            forks: dict[int, int] = {}
            for d in Path("/proc").iterdir():
                if not d.name.isdigit() or int(d.name) in self.skip:
                    continue
                try:
                    cmd = (d / "cmdline").read_bytes()
                    env = (d / "environ").read_bytes()
                except OSError:
                    continue
                pid = int(d.name)
                if cmd in self.parents and self._forks.get(pid, 0) + 1 < self.FORK_SCANS:
                    # A child of a skipped process between fork and exec shows its parent's command line (and,
                    # if it execs between the two reads, its new environment): the parent's own, not a leak,
                    # unless the process keeps it over several scans.
                    forks[pid] = self._forks.get(pid, 0) + 1
                    continue
                text = cmd.replace(b"\0", b" ").decode(errors="replace")[:160]
                for where, data in (("command line", cmd), ("environment", env)):
                    if self.secret in data:
                        self.leaks.add((where, text))
                if "clowncar.orchestrator.launch" in text:
                    self.seen.add("trial worker")
                elif "raylet" in text:
                    self.seen.add("raylet")
                elif "ray::" in text:
                    self.seen.add("ray actor")
            self._forks = forks


@pytest.fixture(scope="session")
def helpers() -> Any:
    class H:
        alive = staticmethod(alive)
        cmdline = staticmethod(cmdline)
        reap = staticmethod(reap)
        pids_with = staticmethod(pids_with)
        non_loopback_listeners = staticmethod(non_loopback_listeners)
        wait_for = staticmethod(wait_for)
        loopback_cluster = staticmethod(loopback_cluster)
        add_worker_node = staticmethod(add_worker_node)

    H.ProcessWatch = ProcessWatch  # a class, not a function: set after the class body
    return H


@pytest.fixture
def pg_password_store() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database on 127.0.0.1 that asks for a password: (its URL, password included; the password)."""
    import secrets

    from clowncar.store.pgserver import create_database, find_bin_dir, throwaway_postgres

    if find_bin_dir() is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    password = f"Pw-{secrets.token_hex(12)}"  # appears nowhere else, so any copy of it is a leak
    with throwaway_postgres(password=password) as admin:
        yield create_database(admin, "clowncar"), password


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite store URL in tmp_path, with the runs dir there too and no CLOWNCAR_STORE from the environment: the
    store of the command tests that call the sweep commands in this process (a file of tests may define its own)."""
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("CLOWNCAR_STORE", raising=False)
    return f"sqlite:///{tmp_path / 'store.db'}"


class Pipe:
    """Standard output as a pipe (a log file, `tee`): what was written, and where it was flushed."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        self.parts.append("<flush>")


@pytest.fixture
def pipe() -> Pipe:
    """A `Pipe` for a test to set as `sys.stdout` itself (pytest's capture puts its own back after the setup)."""
    return Pipe()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The record callback's clock, moved on by the test: it bills GPU time between its readings
    (test_record*.py)."""
    import types

    import clowncar.orchestrator.record as record

    now = [1000.0]
    monkeypatch.setattr(record, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


# -- what a dead head leaves: the study and store `reconcile` and `close_stopped` find (test_resume*.py) ----------
# The imports are inside: the search modules load Ray's packages, seconds every other test here would pay.

WORLD_KEY = "model.crawler_loops"
"""The one parameter a `World`'s sweep searches."""


class World:
    """A sweep's study and store, with helpers that leave trials as a dead head would."""

    def __init__(self, tmp: Path, sampler: str = "grid") -> None:
        import optuna

        from clowncar.orchestrator.spec import spec_from_dict
        from clowncar.store import open_store

        self.url = f"sqlite:///{tmp / 'store.db'}"
        self.spec = spec_from_dict({"name": "rs", "preset": "tiny-cpu", "sampler": sampler,
                                    "space": {WORLD_KEY: {"grid": [1, 2, 3, 4]} if sampler == "grid"
                                              else {"choice": [1, 2, 3, 4]}},
                                    **({} if sampler == "grid" else {"budget": {"max_trials": 8}})})
        self.store = open_store(self.url)
        self.store.create_or_get_sweep("rs", self.spec.model_dump())
        # Optuna's in-memory storage: reconcile only talks to the study's API, and it keeps each test fast
        # (the sweep tests run it on the SQLite storage the CLI uses).
        self.study = optuna.create_study(study_name="rs", storage=optuna.storages.InMemoryStorage(),
                                         directions=["minimize"] * len(self.spec.metrics()))

    def running(self, number: int, loops: int, attempt: int = 0) -> optuna.trial.Trial:
        import optuna

        from clowncar.orchestrator.search import ATTEMPT, NUMBER

        t = self.study.ask()
        self.study._storage.set_trial_param(t._trial_id, WORLD_KEY, float([1, 2, 3, 4].index(loops)),
                                            optuna.distributions.CategoricalDistribution([1, 2, 3, 4]))
        t.set_user_attr(NUMBER, number)
        t.set_user_attr(ATTEMPT, attempt)
        return t

    def stored(self, number: int, attempt: int, status: str, result: dict[str, Any] | None = None,
               reason: str | None = None) -> None:
        from clowncar.orchestrator.record import trial_uid

        uid = trial_uid("rs", number)
        self.store.start_trial("rs", uid, number, attempt, {"model": {"crawler_loops": number}}, None, "n0")
        if status != "running":
            self.store.finish_trial(uid, attempt, status, reason or f"{status} here", result)

    def trial(self, number: int, attempt: int) -> optuna.trial.FrozenTrial:
        from clowncar.orchestrator.search import ATTEMPT, NUMBER

        (t,) = [t for t in self.study.get_trials() if t.user_attrs.get(NUMBER) == number
                and t.user_attrs.get(ATTEMPT) == attempt]
        return t

    def attempt_status(self, number: int, attempt: int) -> str:
        return self.attempt(number, attempt)["status"]

    def attempt(self, number: int, attempt: int) -> dict[str, Any]:
        from clowncar.orchestrator.record import trial_uid

        trial = self.store.get_trial(trial_uid("rs", number))
        return next(a for a in trial["attempts"] if a["attempt"] == attempt)


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A grid sweep's `World` in tmp_path."""
    return World(tmp_path)


@pytest.fixture
def make_world() -> type[World]:
    """`World` itself, for a test that needs another sampler or a second sweep: `make_world(folder, sampler)`."""
    return World
