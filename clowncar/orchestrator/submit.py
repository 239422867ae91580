"""The service path: a sweep submitted as a Ray job runs its driver on the cluster and outlives the client.

`submit` ships the project's code (the `clowncar` package) and the spec in the job's runtime environment
(`working_dir`, zipped and uploaded by Ray) and starts `python -m clowncar sweep run spec.yaml --name NAME
--address auto`.
`stop` stops the sweep's jobs (Ray sends SIGTERM, then SIGKILL to the driver's group after 3 s) and then closes
what the driver may not have: Optuna trials still RUNNING become closed-with-a-queued-copy and running store
attempts become `stopped`, so nothing is left RUNNING and `sweep resume` continues the sweep. A store that is away
then (its server restarting) is not waited for: one line says the jobs were stopped and the trials may not be marked.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import clowncar
from clowncar.errors import ClownCarError
from clowncar.orchestrator.spec import SweepSpec
from clowncar.redact import write_private

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
STORE_FILE = "store.url"
"""The file in a submitted job's working dir that holds an explicit `--store` URL (mode 0600)."""


def _refuse_if_driven(store_url: str, name: str) -> None:
    """Refuse here, before anything is shipped, when a live driver runs the sweep. The URL is the one the head
    sees, which this machine may not reach: then the job's own driver refuses on the head instead."""
    from clowncar.errors import StoreError
    from clowncar.orchestrator.lease import refuse_if_driven
    from clowncar.store import open_store
    from clowncar.store.lease import LeaseHeld

    try:
        store = open_store(store_url, create=False)
    except StoreError:
        return
    with store:
        try:
            refuse_if_driven(store, name)
        except LeaseHeld:
            raise
        except StoreError:  # an older store without leases, a dropped connection: the head decides
            return


def _client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    from clowncar.orchestrator.reach import AUTO, NO_CLUSTER, auto_cluster

    if address == AUTO and auto_cluster() is None:  # Ray's own words point at its RAY_ADDRESS, not at the fix
        raise ClownCarError(f"--address auto: {NO_CLUSTER}; start one with `ray start --head`, or give the "
                            "head's dashboard, --address http://HEAD:8265")
    try:
        return JobSubmissionClient(address)
    except Exception as err:  # connection refused, auth: one line
        raise ClownCarError(f"cannot reach the Ray job server at {address}: "
                            f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
                            ) from None


def job_entrypoint(python: str, name: str, store_file: bool) -> str:
    """The job's command: `sweep run` of the shipped spec.yaml under `name`, the name this client checked, tagged
    the job with and printed (`sweep submit --name` gives a spec another one, as `sweep run --name` does). With
    `store_file` the driver reads the store URL from the job's private STORE_FILE, never from this line."""
    entry = " ".join(shlex.quote(a) for a in (python, "-m", "clowncar", "sweep", "run", "spec.yaml",
                                              "--name", name, "--address", "auto", "--quiet"))
    return f'CLOWNCAR_STORE= CLOWNCAR_STORE_FILE="$PWD/{STORE_FILE}" {entry}' if store_file else entry


def submit(spec: SweepSpec, spec_path: Path, address: str, store_url: str | None, python: str = "python") -> str:
    """Ship the package and the spec as the job's working dir and run `clowncar sweep run` on the head.

    The store URL never travels in the entrypoint, the job's metadata or its environment (anyone holding the
    cluster token can list those, and every worker of the job would inherit the environment): with no
    `store_url` the head's own CLOWNCAR_STORE / CLOWNCAR_STORE_FILE is used (the cluster recipes set the file);
    an explicit URL travels as a file of mode 0600 in the job's working dir, which only the driver reads."""
    if store_url:
        _refuse_if_driven(store_url, spec.name)
    client = _client(address)
    package = Path(clowncar.__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="clowncar-job-") as tmp:
        shutil.copytree(package, Path(tmp) / "clowncar", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy(spec_path, Path(tmp) / "spec.yaml")
        if store_url:
            write_private(Path(tmp) / STORE_FILE, store_url)  # Ray keeps the mode when it unpacks the dir
        entry = job_entrypoint(python, spec.name, bool(store_url))
        job_id = f"clowncar-{spec.name}-{int(time.time())}"
        # A head that has just started answers "No available agent" until its job agent is up: retry that,
        # for a bounded time, and turn anything else into one line.
        deadline = time.time() + 60
        while True:
            try:
                client.submit_job(entrypoint=entry, submission_id=job_id, metadata={"clowncar_sweep": spec.name},
                                  runtime_env={"working_dir": tmp})
                return job_id
            except Exception as err:
                text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                if "No available agent" not in text or time.time() > deadline:
                    raise ClownCarError(f"job submission to {address} failed: {text}") from None
                time.sleep(2)


def stop(name: str, address: str, store_url: str, wait_s: float = 60.0) -> tuple[int, int]:
    client = _client(address)
    jobs = [j for j in client.list_jobs() if (j.metadata or {}).get("clowncar_sweep") == name
            and str(j.status) not in TERMINAL and not str(j.status).endswith(TERMINAL)]
    for job in jobs:
        client.stop_job(job.submission_id)
    deadline = time.time() + wait_s
    for job in jobs:
        while time.time() < deadline and not str(client.get_job_status(job.submission_id)).endswith(TERMINAL):
            time.sleep(0.5)
    return len(jobs), close_after_stop(name, store_url, len(jobs))


def close_after_stop(name: str, store_url: str, jobs: int) -> int:
    """`close_stopped` for `sweep stop`, whose `jobs` are stopped already. A store that is away (its server
    restarting: `retry.is_transient`) is not waited for by a one-shot command: one line says what was done, what
    was not, and what does it later (exit 2, as any command that cannot reach its store)."""
    from clowncar.errors import StoreError
    from clowncar.store.retry import is_transient

    try:
        return close_stopped(name, store_url)
    except Exception as err:
        if not is_transient(err):
            raise
        raise StoreError(f"stopped {jobs} job(s) of sweep {name}, but the store did not answer "
                         f"({_store_line(err, store_url)}): its trials may still be marked running; once the store "
                         f"is back, run this command again, or `clowncar sweep resume {name}`, which closes them"
                         ) from None


def _store_line(err: BaseException, store_url: str) -> str:
    """What the store said, in one line, its password hidden: a StoreError's own text, or the database error under
    an Optuna StorageInternalError."""
    from clowncar.errors import StoreError
    from clowncar.store import resolve_url
    from clowncar.store.engine import parse_url, store_error

    if isinstance(err, StoreError):
        return str(err)
    return str(store_error(err.__cause__ or err, parse_url(resolve_url(store_url)), "the study's store failed at"))


def close_stopped(name: str, store_url: str, runs_dir: Path | None = None) -> int:
    """Nothing of a stopped sweep stays RUNNING: not in the study, not in the store. A trial whose worker had
    finished (its result.json in `runs_dir`, this machine's: the driver's own stop) is recorded, not queued again."""
    import optuna
    from optuna.trial import TrialState

    from clowncar.orchestrator.commands import spec_of
    from clowncar.orchestrator.resume import close_for_rerun, recorded_from_disk, told_if_finished
    from clowncar.orchestrator.tune import open_study
    from clowncar.store import open_store

    store = open_store(store_url, create=False)
    sweep = store.get_sweep(name)
    if not sweep:
        raise ClownCarError(f"no sweep named '{name}' in the store{store.no_sweep_hint(name)}")
    storage = open_study(store_url)
    closed = 0
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        study = optuna.load_study(study_name=name, storage=storage)
        spec = spec_of(sweep)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # Stopped after its final result was stored but before the study was told (SIGTERM or Ctrl-C as the
            # last trial ends): it finished, so it is told, not queued to run again (resume ran it twice).
            if told_if_finished(study, store, spec, t) or recorded_from_disk(study, store, spec, runs_dir, t):
                continue
            # a driver stopped while it asked may leave a trial with part of its point: not queued as such
            closed += close_for_rerun(study, spec, t, "sweep stopped")
    closed = max(closed, store.close_running(name, "stopped", "sweep stopped"))
    store.set_sweep_status(name, "stopped")
    return closed
