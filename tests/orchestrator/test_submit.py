"""`sweep submit` / `sweep stop` against a Ray head whose dashboard and job server listen on 127.0.0.1, with Ray
token authentication on (as every cluster recipe runs it) and the store given with `--store`."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def auth_token(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One random token for every head of the session: Ray's client loads the token once per process and keeps
    it, so a second head with a new token would refuse this process's requests."""
    import secrets

    token = tmp_path_factory.mktemp("ray-auth") / "ray_auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return token


@pytest.fixture
def auth_env(auth_token: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Token authentication for the head and its clients: the token in a file of its own, also set in this
    process's environment for anything of Ray's that reads it there (`_client` sends the token itself)."""
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(auth_token)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


WORKER_NODE = """
import sys, time
import ray._private.node, ray._private.parameter
ray._private.node.Node(ray._private.parameter.RayParams(
    gcs_address=sys.argv[1], node_ip_address="127.0.0.1", num_cpus=1, num_gpus=0, min_worker_port=0,
    max_worker_port=0, node_manager_port=0, include_log_monitor=False), head=False, shutdown_at_exit=True,
    spawn_reaper=True)
print("node started", flush=True)
while True:
    time.sleep(3600)
"""
"""A worker node on this machine, started as ray.cluster_utils adds one (conftest's loopback_cluster): `ray start`
refuses a worker node while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and that setting is what keeps Ray's processes
on 127.0.0.1 (without it the raylet and the GCS listen on every interface)."""


def _node_env(sweep_env: Any, auth_env: dict[str, str]) -> dict[str, str]:
    env = {**sweep_env.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **auth_env,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("CLOWNCAR_STORE")  # the head has no store of its own: the one given with --store must reach the job
    return env


def _start(cmd: list[str], env: dict[str, str], out: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    """In the background, in a session of its own (stopped by process group), output kept for a failure (in a
    pipe, or in the file `out`)."""
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):  # `ray start --block` takes over 20 s to stop here:
        proc.wait(timeout=5)                               # what is left of the node is killed here
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def head(sweep_env, helpers, auth_env, free_ports, request: pytest.FixtureRequest) -> Iterator[str]:
    """A Ray head on 127.0.0.1; with the parameter "two nodes" (indirect), a second node on this machine too, in
    the same Ray temp dir, as a loopback cluster of a head and a worker is started by hand; with "one gpu", a head
    with one logical GPU. Every port is picked free so that other Ray instances on this machine (their dashboard
    agents take 52365 by default) do not collide."""
    port, gcs, agent, client = free_ports(4)
    nodes = 2 if getattr(request, "param", "") == "two nodes" else 1
    gpus = ["--num-gpus=1"] if getattr(request, "param", "") == "one gpu" else []
    # `ray start --block` stops cleanly on SIGTERM
    proc = _start([str(Path(sys.executable).parent / "ray"), "start", "--block", "--head", "--node-ip-address=127.0.0.1",
                   "--dashboard-host=127.0.0.1", f"--dashboard-port={port}", f"--port={gcs}",
                   f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
                   "--num-cpus=2", *gpus, "--disable-usage-stats"], _node_env(sweep_env, auth_env))
    node = None
    address = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            with contextlib.suppress(Exception):
                _client(address, auth_env).list_jobs()
                return True
            return False

        if not helpers.wait_for(up, 180, every=1.0):
            os.killpg(proc.pid, signal.SIGTERM)
            out = proc.communicate(timeout=30)[0]
            pytest.fail(f"head did not come up; `ray start` printed:\n{out[-4000:]}")
        if nodes == 2:
            node = _join_second_node(f"127.0.0.1:{gcs}", address, _node_env(sweep_env, auth_env), auth_env, helpers,
                                     sweep_env.tmp / "second-node")
        bad = helpers.non_loopback_listeners({proc.pid, *helpers.pids_with(str(sweep_env.ray_tmp))})
        assert not bad, bad
        yield address
    finally:
        if node is not None:
            _stop(node)
        _stop(proc)
        helpers.reap(str(sweep_env.ray_tmp))


def _join_second_node(gcs: str, address: str, env: dict[str, str], auth_env: dict[str, str], helpers: Any,
                      log: Path, tries: int = 3) -> subprocess.Popen[str]:
    """The second node, started again (at most `tries` times) when Ray's own start gives up: a worker node waits
    only about 60 s for its raylet to register with the GCS, and on a crowded 2-core CI machine it once did not
    (`The current node timed out during startup`). Each failed start is killed as a process group, its raylet
    with it; a start counts only once its own process says it has started (Ray returns from the node's start
    only after finding it registered) and the head lists two nodes alive."""
    for attempt in range(tries):
        out = log.with_suffix(f".{attempt}.log")
        with out.open("w") as f:
            node = _start([sys.executable, "-c", WORKER_NODE, gcs], env, f)

        def joined(node: subprocess.Popen[str] = node, out: Path = out) -> bool:
            return node.poll() is not None or ("node started" in out.read_text()
                                               and _alive_nodes(address, auth_env) == 2)

        if helpers.wait_for(joined, 150, every=1.0) and node.poll() is None:
            return node
        _stop(node)
    pytest.fail(f"the second node did not join in {tries} starts; the last printed:\n{out.read_text()[-4000:]}")


def _alive_nodes(address: str, auth_env: dict[str, str]) -> int:
    """How many nodes the head's state API lists alive (0 while it does not answer)."""
    import json
    import urllib.request

    token = Path(auth_env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    req = urllib.request.Request(f"{address}/api/v0/nodes?limit=100", headers={"Authorization": f"Bearer {token}"})
    with contextlib.suppress(Exception), urllib.request.urlopen(req, timeout=5) as resp:
        nodes = json.load(resp)["data"]["result"]["result"]
        return sum(1 for n in nodes if n.get("state") == "ALIVE")
    return 0


def _client(address: str, auth_env: dict[str, str]) -> Any:
    """A job client of this process that presents the session's token itself: Ray decides whether to send a
    token from process-wide state that the first `ray.init` of this pytest process fixed (auth off for the
    embedded tests), so a client that relied on it sent none once another test had started Ray."""
    from ray.job_submission import JobSubmissionClient

    token = Path(auth_env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    return JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})


def _job_status(address: str, job_id: str, auth_env: dict[str, str]) -> str:
    return str(_client(address, auth_env).get_job_status(job_id)).rsplit(".", 1)[-1]


@pytest.mark.parametrize("head", ["two nodes"], indirect=True)
def test_first_sweep_submitted_to_a_fresh_two_node_cluster_runs_and_stop_leaves_nothing_running(
        head, sweep_env, helpers, auth_env) -> None:
    """The cluster: a head and a second node on one machine, sharing Ray's temp dir, as a loopback cluster is
    started by hand. The first job submitted to it makes the second node unpack the job's working_dir again
    (deleting it first) as the driver connects: the driver must neither run from it nor import from it."""
    env = {**auth_env, "CLOWNCAR_STORE": ""}  # the client names the store only with --store
    store = ["--store", sweep_env.store_url]
    # the spec's own name is another: the sweep runs on the head under the name submitted (`--name`)
    spec = sweep_env.spec("jobspec", overrides={"train.iterations": 3, "train.max_wallclock_seconds": 0.3})
    r = sweep_env.cli("sweep", "submit", str(spec), "--address", head, "--python", sys.executable,
                      extra={**env, "RAY_AUTH_MODE": "disabled"})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stdout + r.stderr  # no token: refused
    r = sweep_env.cli("sweep", "submit", str(spec), "--address", head, "--python", sys.executable, *store,
                      "--name", "jobsweep", extra=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("submitted sweep jobsweep as Ray job clowncar-jobsweep-"), r.stdout
    job_id = r.stdout.split("Ray job ", 1)[1].split()[0]
    # submit returned once the driver held the sweep (or had run it through), not merely once Ray took the job
    assert r.stdout.splitlines()[1].strip() in ("its driver on the cluster runs it",
                                                "the job has run the sweep to its end"), r.stdout
    assert "ray job logs" in r.stdout
    done = ("SUCCEEDED", "FAILED", "STOPPED")
    assert helpers.wait_for(lambda: _job_status(head, job_id, auth_env) in done, 300, 1.0)
    assert _job_status(head, job_id, auth_env) == "SUCCEEDED", _client(head, auth_env).get_job_logs(job_id)[-3000:]
    # the store URL never travels in the entrypoint (anyone with the token can list entrypoints)
    entrypoint = _client(head, auth_env).get_job_info(job_id).entrypoint
    assert "--store" not in entrypoint and sweep_env.store_url not in entrypoint
    assert sweep_env.store().sweeps_frame()["name"].tolist() == ["jobsweep"]  # none under the spec's own name
    trials = sweep_env.store().trials_frame(sweeps="jobsweep")
    assert len(trials) == 3 and set(trials["status"]) == {"ok"}

    # A head whose `python` cannot run clowncar: the job dies at once, and submit says why (exit 1), instead of
    # "submitted" and a sweep that `sweep status` then does not know.
    bare = sweep_env.tmp / "bare-python"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")  # no site-packages, no PYTHONPATH
    bare.chmod(0o755)
    r = sweep_env.cli("sweep", "submit", str(spec), "--address", head, "--python", str(bare), *store,
                      "--name", "jobbare", extra=env)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stdout + r.stderr
    assert "of sweep jobbare failed as it started: " in r.stderr and "No module named" in r.stderr, r.stderr
    assert f"ray job logs --address {head} clowncar-jobbare-" in r.stderr, r.stderr

    long = sweep_env.spec("jobstop", overrides={"train.iterations": 100, "train.max_wallclock_seconds": 100.0})
    r = sweep_env.cli("sweep", "submit", str(long), "--address", head, "--python", sys.executable, *store,
                      extra=env)
    assert r.returncode == 0, r.stdout + r.stderr

    def training() -> bool:
        return bool(sweep_env.worker_pids("jobstop"))

    assert helpers.wait_for(training, 300, 1.0)
    pids = sweep_env.worker_pids("jobstop")
    r = sweep_env.cli("sweep", "stop", "jobstop", "--address", head, *store, extra=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stopped 1 job" in r.stdout
    assert "; 0 trial(s)" not in r.stdout, r.stdout  # it stopped a training trial, whoever marked it
    study: Any = sweep_env.study("jobstop")
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    store = sweep_env.store()
    assert store.get_sweep("jobstop")["status"] == "stopped"
    assert "running" not in set(store.trials_frame(sweeps="jobstop")["status"])
    assert helpers.wait_for(lambda: not [p for p in pids if helpers.alive(p)], 20)
    time.sleep(0.1)


LEDGER_SEEN = """
import json, os, ray
ray.init(address="auto")
ledger = ray.get_actor("clowncar-gpu-ledger", namespace="clowncar")
seen = ray.get(ledger.__ray_call__.remote(lambda self: {
    "cwd": sorted(os.listdir(".")), "env": ray.get_runtime_context().get_runtime_env_string(), "log": len(self.log)}))
print("LEDGER " + json.dumps(seen))
"""
"""A job that prints what the GPU ledger's actor holds: its working directory's files, its runtime env, how many
grants and releases it has logged."""


def _ledger_seen(address: str, auth_env: dict[str, str], helpers: Any) -> dict[str, Any]:
    import json

    jobs = _client(address, auth_env)
    job_id = jobs.submit_job(entrypoint=f"{sys.executable} -c {shlex.quote(LEDGER_SEEN)}")
    assert helpers.wait_for(lambda: _job_status(address, job_id, auth_env) in ("SUCCEEDED", "FAILED", "STOPPED"),
                            60, 0.5)
    logs = jobs.get_job_logs(job_id)
    lines = [ln for ln in logs.splitlines() if ln.startswith("LEDGER ")]
    assert lines, logs[-3000:]
    return dict(json.loads(lines[-1].removeprefix("LEDGER ")))


@pytest.mark.parametrize("head", ["one gpu"], indirect=True)
def test_a_submitted_store_url_reaches_only_the_driver_through_a_private_file(head, sweep_env, helpers, auth_env,
                                                                              pg_password_store) -> None:
    """A GPU sweep (the GPU ledger, a detached actor that outlives the job, is made by the job's driver): the
    ledger keeps neither the store file nor a reference to the job's package that holds it."""
    from clowncar.store import open_store

    url, password = pg_password_store
    spec = sweep_env.spec("jobsecret", resources={"gpus": 1},
                          overrides={"train.iterations": 3, "train.max_wallclock_seconds": 0.3})
    client = subprocess.Popen([sys.executable, "-m", "clowncar", "sweep", "submit", str(spec), "--address", head,
                               "--store", url, "--python", sys.executable], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=sweep_env.tmp,
                              env={**sweep_env.env, **auth_env})
    # The client was handed the URL on its command line by the user; every other process must not see it.
    watch = helpers.ProcessWatch(password.encode(), skip={os.getpid(), client.pid})
    watch.start()
    try:
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, out + err
        job_id = out.split("Ray job ", 1)[1].split()[0]
        ended = ("SUCCEEDED", "FAILED", "STOPPED")
        assert helpers.wait_for(lambda: _job_status(head, job_id, auth_env) in ended, 300, 1.0)
    finally:
        watch.stop.set()
        watch.join()
    jobs = _client(head, auth_env)
    assert _job_status(head, job_id, auth_env) == "SUCCEEDED", jobs.get_job_logs(job_id)[-3000:]
    info = jobs.get_job_info(job_id)
    listed = repr(jobs.list_jobs())
    assert password not in repr(info) and password not in listed  # entrypoint, metadata, runtime env
    assert "store.url" in info.entrypoint and "--store" not in info.entrypoint
    assert password not in jobs.get_job_logs(job_id) and password not in out + err
    assert "trial worker" in watch.seen and not watch.leaks, (watch.seen, watch.leaks)
    shipped = list(sweep_env.ray_tmp.rglob("store.url"))
    assert shipped and all(p.stat().st_mode & 0o777 == 0o600 for p in shipped), shipped
    ledger = _ledger_seen(head, auth_env, helpers)
    assert ledger["log"] >= 3, ledger  # it granted the sweep's 3 trials their GPU
    assert "store.url" not in ledger["cwd"] and "spec.yaml" not in ledger["cwd"], ledger
    package = info.runtime_env["working_dir"]  # the job's package with the store file, in the head's GCS
    assert package.startswith("gcs://") and package not in ledger["env"], (package, ledger)
    assert info.runtime_env["py_modules"][0] in ledger["env"], ledger  # the job's code, which it imports
    with open_store(url) as store:
        trials = store.trials_frame(sweeps="jobsecret")
    assert len(trials) == 3 and set(trials["status"]) == {"ok"}
