"""The service path: a sweep submitted as a Ray job runs its driver on the cluster and outlives the client.

`submit` ships the project's code (the `clowncar` package, as a `py_modules` entry) and the spec (the job's
`working_dir`) in the job's runtime environment, zipped and uploaded by Ray, starts `python -m clowncar sweep run
spec.yaml --name NAME --address auto`, and waits (`wait_started`, bounded) until the job's driver holds the sweep,
or says in one line why the job ended at once.
`stop` stops the sweep's jobs (Ray sends SIGTERM, then SIGKILL to the driver's group after 3 s) and then closes
what the driver may not have: Optuna trials still RUNNING become closed-with-a-queued-copy and running store
attempts become `stopped`, so nothing is left RUNNING and `sweep resume` continues the sweep. A store that is away
then (its server restarting) is not waited for: one line says the jobs were stopped and the trials may not be marked.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clowncar
from clowncar.errors import ClownCarError, RunFailed
from clowncar.orchestrator.spec import SweepSpec
from clowncar.redact import write_private

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
STORE_FILE = "store.url"
"""The file in a submitted job's working dir that holds an explicit `--store` URL (mode 0600)."""
SERVER_FAULT = re.compile(r"status code 5\d\d")
"""Ray's job client's words for an answer of the job server's own failure (HTTP 5xx)."""


def _refuse_if_driven(store_url: str, name: str) -> None:
    """Refuse here, before anything is shipped, when a live driver runs the sweep, or when the sweep's name is
    taken by a sweep that ran (`_refuse_if_taken`). The URL is the one the head sees, which this machine may not
    reach: then the job's own driver refuses on the head instead."""
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
            _refuse_if_taken(store, name)
        except LeaseHeld:
            raise
        except StoreError:  # an older store without leases, a dropped connection: the head decides
            return


def _refuse_if_taken(store: Any, name: str) -> None:
    """A sweep of this name that got past its start (it has trials, or it ended, stopped or was imported) is
    refused by the job's driver too, as `sweep run` refuses it; but that driver takes the sweep's lease before
    it reads the sweep, so `wait_started` would see a live lease on a stored sweep and report the job as running
    the sweep while it fails. A start that ran nothing (`created`, `failed`, `running` with no trial) is left to
    the head, which starts it again."""
    from clowncar.orchestrator.start import RESTARTABLE

    sweep = store.get_sweep(name)
    if sweep is None or (sweep["status"] in RESTARTABLE and not store.trial_states(name)):
        return
    if sweep["status"] == "done":  # nothing left to resume: as `sweep run` says it (start.taken_line)
        from clowncar.orchestrator.start import taken_line

        raise ClownCarError(taken_line(name, sweep, "pick another name (--name)"))
    how = ("its runs were imported from files: pick another name (--name)" if sweep["status"] == "imported" else
           f"continue it with `clowncar sweep resume {name} --address auto` on a node of the cluster, or pick "
           "another name (--name)")
    raise ClownCarError(f"sweep '{name}' already exists ({sweep['status']}); {how}")


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
    `store_file` the driver reads the store URL from the job's private STORE_FILE, never from this line.

    The driver runs from the home directory of the head's user, its spec and store file named by their full paths:
    Ray may delete and unpack again the job's working_dir while the job runs (see `job_runtime_env`), which left a
    driver inside it in a deleted directory (FileNotFoundError where it asked for its working directory), and a
    relative CLOWNCAR_RUNS_DIR (by default ./clowncar-runs) was inside Ray's copy."""
    entry = " ".join(shlex.quote(a) for a in (python, "-m", "clowncar", "sweep", "run")) + ' "$J/spec.yaml" ' + \
        " ".join(shlex.quote(a) for a in ("--name", name, "--address", "auto", "--quiet"))
    store = f'CLOWNCAR_STORE= CLOWNCAR_STORE_FILE="$J/{STORE_FILE}" ' if store_file else ""
    return f'J="$PWD" && cd "${{HOME:-/tmp}}" && {store}{entry}'


def submit(spec: SweepSpec, spec_path: Path, address: str, store_url: str | None, python: str = "python") -> str:
    """Ship the package and the spec as the job's working dir and run `clowncar sweep run` on the head.

    The store URL never travels in the entrypoint, the job's metadata or its environment (anyone holding the
    cluster token can list those, and every worker of the job would inherit the environment): with no
    `store_url` the head's own CLOWNCAR_STORE / CLOWNCAR_STORE_FILE is used (the cluster recipes set the file);
    an explicit URL travels as a file of mode 0600 in the job's working dir, which only the driver reads."""
    if store_url:
        _refuse_if_driven(store_url, spec.name)
    client = _client(address)
    with tempfile.TemporaryDirectory(prefix="clowncar-job-") as tmp:
        runtime_env = job_runtime_env(Path(tmp), spec_path, store_url)
        entry = job_entrypoint(python, spec.name, bool(store_url))
        job_id = f"clowncar-{spec.name}-{int(time.time())}"
        # A head that has just started answers "No available agent" until its job agent is up: retry that,
        # for a bounded time, and turn anything else into one line.
        deadline = time.time() + 60
        while True:
            try:
                with _ray_upload_lines_off():
                    client.submit_job(entrypoint=entry, submission_id=job_id,
                                      metadata={"clowncar_sweep": spec.name}, runtime_env=runtime_env)
                return job_id
            except Exception as err:
                text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                if "No available agent" in text and time.time() <= deadline:
                    time.sleep(2)
                    continue
                if SERVER_FAULT.search(text):  # the cluster's fault, not the user's input: exit 1, not 2
                    raise RunFailed(f"job submission to {address} failed: {text}") from None
                raise ClownCarError(f"job submission to {address} failed: {text}") from None


def job_runtime_env(tmp: Path, spec_path: Path, store_url: str | None) -> dict[str, Any]:
    """The job's runtime environment, laid out in `tmp`: the `clowncar` package as a `py_modules` entry, the spec
    (and an explicit store URL, mode 0600) as the `working_dir`.

    Not the package inside the working_dir: Ray unpacks a working_dir on a node whose runtime-env agent has not
    cached it yet by deleting the directory first (`overwrite=True`), and nodes on one machine share that
    directory (one Ray temp dir). So a second node on the head's machine, installing the job's environment as the
    driver connects (Ray's eager install) or when it joins later, deleted the package under the running driver,
    whose next import failed (`No module named 'clowncar.orchestrator.ledger'`, the first sweep submitted to a
    fresh two-node loopback cluster). A py_modules package is reused where it exists, never deleted first.

    A detached actor the job creates (the GPU ledger) would inherit the working_dir, store file and all, beyond
    the job's end: it is given the py_modules package as its working_dir instead (`ledger.ledger_runtime_env`)."""
    code, job = tmp / "code" / "clowncar", tmp / "job"
    shutil.copytree(Path(clowncar.__file__).resolve().parent, code,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    job.mkdir()
    shutil.copy(spec_path, job / "spec.yaml")
    if store_url:
        write_private(job / STORE_FILE, store_url)  # Ray keeps the mode when it unpacks the dir
    return {"working_dir": str(job), "py_modules": [str(code)]}


@contextlib.contextmanager
def _ray_upload_lines_off() -> Iterator[None]:
    """Ray's INFO lines about zipping and uploading the packages are not the command's output."""
    loggers = [logging.getLogger(n) for n in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


START_WAIT_S = 60.0
"""How long `sweep submit` waits for the job's driver to hold the sweep: a busy head takes 10-20 s to start the
driver's Python (torch, Ray) after Ray has unpacked the job."""
UNSEEN_STORE_S = 20.0
"""A `--store` this client cannot open while the job runs this long: taken as one only the head reaches (a new
store is made by the driver within seconds of its start)."""
SETTLE_S = 3.0
"""With no store to look at, a job running this long is taken as started (one that cannot import clowncar ends
within a second or two)."""


def wait_started(job_id: str, name: str, address: str, store_url: str | None, wait_s: float = START_WAIT_S,
                 every: float = 0.5) -> str:
    """Wait, at most `wait_s`, until the submitted job's driver holds sweep `name` (its lease is live and the sweep
    is stored in `store_url`; with the head's own store, until the job has run SETTLE_S) and say so in words; a job
    that ended otherwise raises `RunFailed` with the job's last error line, and what shows its whole log."""
    client = _client(address)
    store = None
    deadline, running_since = time.time() + wait_s, None
    try:
        while True:
            store = store or _store_or_none(store_url)  # a new store exists once the driver has made it
            status = str(client.get_job_status(job_id)).rsplit(".", 1)[-1]
            if status in ("FAILED", "STOPPED"):
                raise RunFailed(f"the Ray job {job_id} of sweep {name} {status.lower()} as it started: "
                                f"{_last_error(client, job_id)} (its whole log: ray job logs --address {address} "
                                f"{job_id})")
            if status == "SUCCEEDED":
                return "the job has run the sweep to its end"
            if status == "RUNNING":
                running_since = running_since or time.time()
                if store is not None and _driven(store, name):
                    return "its driver on the cluster runs it"
                if not store_url and time.time() - running_since >= SETTLE_S:
                    return "the job runs"
                if store is None and time.time() - running_since >= UNSEEN_STORE_S:
                    return "the job runs (this machine cannot open its store to see the sweep)"
            if time.time() >= deadline:
                return f"the job is {status} after {wait_s:.0f} s: its driver has not taken the sweep yet"
            time.sleep(every)
    finally:
        if store is not None:
            store.close()


def _store_or_none(store_url: str | None) -> Any:
    """The store the job's driver writes to, when this client can open it (an explicit URL it can reach)."""
    from clowncar.errors import StoreError
    from clowncar.store import open_store

    if not store_url:
        return None
    try:
        return open_store(store_url, create=False)
    except StoreError:
        return None


def _driven(store: Any, name: str) -> bool:
    """A driver holds sweep `name` (live lease) and has stored it. A store that stops answering: not yet."""
    from clowncar.store.lease import is_live

    try:
        return is_live(store.get_lease(name)) and store.get_sweep(name) is not None
    except Exception:  # the store away for a moment, an older store without leases: ask again
        return False


def _last_error(client: Any, job_id: str) -> str:
    """The job's last log line that is not one of Ray's own lines (its INFO lines, and the `Running entrypoint for
    job ...` line it may write after the entrypoint's shell has failed: then the shell's `python: not found` is
    the error), i.e. the driver's one-line error or Python's last traceback line, else Ray's message about the
    job; passwords masked."""
    from clowncar.redact import redact_text

    with contextlib.suppress(Exception):
        lines = [ln.strip() for ln in client.get_job_logs(job_id).splitlines() if ln.strip()]
        lines = [ln for ln in lines if not re.match(r"^\d{4}-\d\d-\d\d [\d:,]+\s+INFO ", ln)
                 and not ln.startswith(f"Running entrypoint for job {job_id}: ")]
        if lines:
            return redact_text(lines[-1].removeprefix("clowncar: error: "))
    with contextlib.suppress(Exception):
        message = str(client.get_job_info(job_id).message or "").strip()
        if message:
            return redact_text(message.splitlines()[-1])
    return "no log"


def stop(name: str, address: str, store_url: str, wait_s: float = 60.0) -> tuple[int, int]:
    client = _client(address)
    jobs = [j for j in client.list_jobs() if (j.metadata or {}).get("clowncar_sweep") == name
            and str(j.status) not in TERMINAL and not str(j.status).endswith(TERMINAL)]
    before = _attempt_states(name, store_url) if jobs else {}
    running = {(uid, att) for uid, (att, status) in before.items() if status == "running"}
    for job in jobs:
        client.stop_job(job.submission_id)
    deadline = time.time() + wait_s
    for job in jobs:
        while time.time() < deadline and not str(client.get_job_status(job.submission_id)).endswith(TERMINAL):
            time.sleep(0.5)
    closed = close_after_stop(name, store_url, len(jobs))
    # The driver marks its running trials stopped itself on SIGTERM, before `close_after_stop` looks: the attempts
    # running as the jobs were stopped and marked `stopped` now are what the stop ended, whoever marked them.
    after = _attempt_states(name, store_url) if running else {}
    return len(jobs), max(closed, sum((uid, att) in running and status == "stopped"
                                      for uid, (att, status) in after.items()))


def _attempt_states(name: str, store_url: str) -> dict[str, tuple[int, str]]:
    """The store's `trial_states` of the sweep, or none where this machine cannot read the store (the head's URL
    may not reach it from here): the count of `stop` is then `close_after_stop`'s alone."""
    from clowncar.store import open_store

    try:
        with open_store(store_url, create=False) as store:
            return store.trial_states(name)
    except Exception:  # unreachable or unknown here: the stop goes on, `close_after_stop` speaks for the store
        return {}


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

    from clowncar.orchestrator.resume import close_for_rerun, recorded_from_disk, told_if_finished
    from clowncar.orchestrator.stored_sweep import spec_of
    from clowncar.orchestrator.tune import open_study
    from clowncar.store import open_store

    store = open_store(store_url, create=False)
    sweep = store.get_sweep(name)
    if not sweep:
        raise ClownCarError(f"no sweep named '{name}' in {store.url}{store.no_sweep_hint(name)}")
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
