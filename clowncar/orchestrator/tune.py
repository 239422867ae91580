"""Run a sweep: Ray Tune schedules, Optuna samples (study in the store), the store callback records.

One resource bundle per trial (`PlacementGroupFactory([{"CPU": c, "GPU": g}])`), so all of a trial's GPUs are
on one node; Ray's placement groups stop two sweeps on one cluster from double-booking GPUs, and GPU trials are
admitted by the cluster's GPU ledger (ledger.py: a waiting whole-node trial gets a node reserved, small trials
are packed). Actors are reused (`reuse_actors=True`): a new actor per trial costs ~1 s (measured; ~20 s with 8
starting at once on 2 busy cores), and the reason not to reuse (a stopped trial's child outlives the stop) does
not apply here because the trainable kills the worker's group in `finally` and every worker process carries
PDEATHSIG.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clowncar.errors import StoreError
from clowncar.orchestrator.ray_start import init_ray, loopback_only
from clowncar.orchestrator.spec import SweepSpec
from clowncar.orchestrator.suggest import trials_to_run


@dataclass
class RunOptions:
    store_url: str
    runs_dir: Path
    address: str = ""
    """'' = embedded Ray on loopback; 'auto' or 'host:6379' joins a cluster (never Ray Client's ray://:
    `orchestrator/reach.py`)."""
    num_cpus: int | None = None
    num_gpus: int | None = None
    show: bool = True
    resume: bool = False
    retry_failed: bool = False
    """On resume, run again the trials that crashed or failed (`resume.RETRIED`)."""
    store_retry_s: float = 0.0
    """Once the sweep runs, how long a store or study call that failed because the server is away is retried
    (CLOWNCAR_STORE_RETRY_SECONDS); 0 fails at once."""
    signalled: Any = None
    """The caller's `interrupt_on_signals` event: set by a Ctrl-C or SIGTERM that came while the sweep started,
    whose KeyboardInterrupt Python may have dropped (raised in a weakref callback or a `__del__` during Ray's
    start, `interrupts.lost_interrupts_unsaid`); the start checks it before the first trial."""


def open_study(store_url: str) -> Any:
    import optuna

    from clowncar.orchestrator.study_storage import RetryingRDBStorage
    from clowncar.store import resolve_url

    store_url = resolve_url(store_url)  # the very database open_store opens for the same string
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs: dict[str, Any] = {}
    if store_url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    else:  # as the store's engine: a pooled connection that a server restart closed is replaced, not used
        kwargs = {"pool_pre_ping": True}
        if store_url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(6):
        try:
            with _sqlite_lock(store_url):
                return RetryingRDBStorage(store_url, engine_kwargs=kwargs)
        except Exception as err:  # unreachable server, bad URL: one line
            # Two sweeps starting at once on a new database race to create Optuna's tables (a lock file covers
            # SQLite); the loser sees an IntegrityError or "already exists" and succeeds once the winner is done.
            if ("IntegrityError" in type(err).__name__ or "already exists" in str(err)) and attempt < 5:
                time.sleep(1 + attempt)
                continue
            from clowncar.orchestrator.start import one_line
            from clowncar.redact import redact_url
            from clowncar.store.retry import is_transient

            failed = StoreError(f"optuna storage at {redact_url(store_url)}: {one_line(err)}")
            failed.transient = is_transient(err)  # type: ignore[attr-defined]  # the server away, or for good
            raise failed from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _sqlite_lock(url: str) -> Any:
    """An exclusive lock file beside a SQLite database while Optuna creates or upgrades its tables."""
    import fcntl

    from sqlalchemy.engine import make_url

    # the database file as SQLAlchemy reads it: a query string (even ?password=) is no part of the lock's name
    path = (make_url(url).database or "") if url.startswith("sqlite") else ""
    if not path or path.startswith(":memory:"):
        yield
        return
    lock = Path(path).with_name(Path(path).name + ".optuna-lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_sweep(spec: SweepSpec, opts: RunOptions) -> dict[str, Any]:
    """Run (or resume) a sweep to the end of its budget. Returns the summary the CLI prints.

    The driver holds the sweep's lease throughout (orchestrator/lease.py): a second driver of the same sweep is
    refused with one line before it touches anything."""
    if not opts.address:  # Ray reads it when first imported: set it before any `import ray`
        loopback_only()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Tune's own tables off: our progress line says it all
    # Tune's own CSV/JSON/TensorBoard result files copy what the store already holds, and its TensorBoard logger
    # imports tensorboardX and through it torch in the driver: 1.8 s of every sweep's start (measured), per trial
    # files nobody reads. A user who wants them sets the variable to 0.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1":
        _quiet_missing_result_files()
    from clowncar.orchestrator.lease import DriverLease
    from clowncar.store import open_store

    store = open_store(opts.store_url)
    with DriverLease(store, spec.name) as lease:
        return _drive(spec, opts, store, lease)


class _NoResultFilesWarning(logging.Filter):
    """Drops Tune's end-of-fit warning that each trial lacks result.json and progress.csv: those are the files the
    auto loggers write, switched off above, so the warning (a FileNotFoundError line per trial, 175 lines after a
    Frugendorff sweep) reports our own choice as a failure. Tune's other warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to fetch metrics for")


def _quiet_missing_result_files() -> None:
    tune_analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    if not any(isinstance(f, _NoResultFilesWarning) for f in tune_analysis.filters):
        tune_analysis.addFilter(_NoResultFilesWarning())


def _drive(spec: SweepSpec, opts: RunOptions, store: Any, lease: Any) -> dict[str, Any]:
    from ray import tune

    from clowncar.interrupts import clean_up_unless_forced
    from clowncar.orchestrator.ray_console import RAY_ERRORS, quiet_ray_console
    from clowncar.orchestrator.ray_oom import oom_kills_as_actor_deaths
    from clowncar.orchestrator.record import StoreCallback, Tally
    from clowncar.orchestrator.search import SweepSearch
    from clowncar.orchestrator.start import (
        ASKED_THIS_RUN,
        StartFailed,
        cleanup_notice,
        failed_start_marked,
        one_line,
        prepare,
        store_failure_fails_the_run,
    )
    from clowncar.orchestrator.status_lines import objective_name
    from clowncar.orchestrator.study_results import count_earlier, summarize
    from clowncar.orchestrator.trainable import TrialContext, run_trial

    ASKED_THIS_RUN.pop(spec.name, None)  # an earlier run of it in this process asked for its own trials
    storage = open_study(opts.store_url)
    reconciled = prepare(spec, store, storage, opts.resume, Path(opts.runs_dir), opts.retry_failed)
    found = store.get_sweep(spec.name) or {}  # what an interrupt before the first trial puts back (a resume's)
    earlier = (found.get("status", "created"), found.get("reason"))
    with failed_start_marked(store, spec.name, earlier):  # from here to the first trial: a failure leaves no half sweep
        tally = Tally(total=trials_to_run(spec), gpus=spec.resources.gpus,
                      metric=objective_name(spec.objective.metric))
        trials_dir = Path(opts.runs_dir).resolve() / "trials"
        callback = StoreCallback(spec, store, tally, show=opts.show, runs_dir=trials_dir.parent)
        searcher = SweepSearch(spec, storage, spec.max_trials(), on_tell=callback.on_tell)
        callback.on_retry = searcher.retried  # a Tune retry is the trial's next attempt, in the study too
        searcher.error_outcome = callback.error_outcome  # a trial Ray's memory monitor killed is told `oom`
        lease.on_lost = searcher.stopping.set  # another driver owns the sweep now: start no more trials
        if not opts.resume:
            for point in spec.distinct_enqueue().points:
                searcher.study.enqueue_trial(point, skip_if_exists=False)
        already = count_earlier(tally, spec, searcher.study)
        remaining = max(0, spec.max_trials() - already)
        store.set_sweep_status(spec.name, "running")
        if not searcher.budget_left():  # max_trials reached or no GPU-hours left: nothing starts, no Ray
            store.set_sweep_status(spec.name, "done")
            return {**summarize(spec, searcher.study, reconciled, 0), "ended": searcher.end_reason}
        quiet_ray_console(trials_dir / spec.name / RAY_ERRORS)  # Ray's failure texts to files, one line here
        try:
            init_ray(opts)
        except Exception as err:
            raise StartFailed(f"Ray did not start: {one_line(err)}") from err
        _watched_from_now(spec.name, opts.address, lease, trials_dir / spec.name / RAY_ERRORS)
        if opts.address:  # embedded Ray refused such a sweep before it started (preflight.check_embedded_gpus)
            from clowncar.orchestrator.preflight import warn_of_missing_gpu_node

            warn_of_missing_gpu_node(spec)
        tuner = _tuner(spec, opts, searcher, callback, remaining, tune, run_trial, TrialContext, store)
        if opts.signalled is not None and opts.signalled.is_set():  # a signal whose KeyboardInterrupt was lost
            raise KeyboardInterrupt  # in Ray's start: no trial runs, the sweep is marked as interrupted there
    status, reason = "failed", None
    fit_started = time.time()
    # from here on the sweep runs: a store that is away for a moment (its server restarts) is waited for, one that
    # stays away longer than the window is a failed run, not bad input
    store.retry_seconds = storage.retry_seconds = opts.store_retry_s
    with _stop_on_signals(searcher.stopping) as signalled, store_failure_fails_the_run(), _outages_on_the_console(), \
            oom_kills_as_actor_deaths():
        try:
            tuner.fit()
            status = "done"
            searcher.budget_left()  # why it ended, with the final counts (Tune may stop at num_samples unasked)
        except Exception as err:
            reason = one_line(err)
            raise
        finally:
            ASKED_THIS_RUN[spec.name] = searcher.asked  # for the line of an interrupt that cuts what follows short
            # a second Ctrl-C says what this clean-up does and leaves it to finish; a third cuts it short
            with clean_up_unless_forced(lambda: cleanup_notice(spec.name, searcher.stopping, callback.tally)):
                callback.close()
                if searcher.gate is not None:
                    searcher.gate.close()
                if lease.lost.is_set():
                    pass  # the sweep's new driver reconciles what this one leaves; writing here would undo its work
                elif searcher.stopping.is_set():  # Ctrl-C or `sweep stop`: nothing stays RUNNING, resume re-runs it
                    from clowncar.orchestrator.submit import close_stopped

                    close_stopped(spec.name, opts.store_url, Path(opts.runs_dir))
                else:
                    store.set_sweep_status(spec.name, status, reason)
    return {**summarize(spec, searcher.study, reconciled, searcher.asked), "fit_seconds": time.time() - fit_started,
            "ended": searcher.end_reason, "interrupted": signalled.is_set()}


def _watched_from_now(sweep: str, address: str, lease: Any, errors_log: Path) -> None:
    """Once the driver is connected: Ray's C++ lines on fd 2 go to `errors_log` (native_stderr.py), and a head that
    stops answering ends the driver with one line (head_watch.py). `commands.ray_shut_down` undoes both."""
    import ray

    from clowncar.orchestrator import head_watch, native_stderr

    if not ray.is_initialized():  # no core worker, no head: nothing to divert or watch
        return
    native_stderr.divert(errors_log)
    head_watch.watch_head(sweep, address, lease)


def _tuner(spec: SweepSpec, opts: RunOptions, searcher: Any, callback: Any, remaining: int, tune: Any,
           run_trial: Any, context: Any, store: Any = None) -> Any:
    """The Tuner: one resource bundle per trial (or the GPU ledger's), the searcher, the scheduler, the store
    callback."""
    ctx = context(sweep=spec.name, spec=spec.to_dict(), runs_dir=str(opts.runs_dir.resolve()),
                  size_cap=spec.size_cap())
    res = spec.resources
    gated = res.gpus > 0 and res.placement == "ledger"
    if gated:
        from clowncar.orchestrator.ledger import Gate, trial_resources

        searcher.gate = Gate(res.gpus, limit=spec.max_concurrent)
        resources: Any = functools.partial(trial_resources, res.cpus, res.gpus)
    else:
        resources = tune.PlacementGroupFactory([{"CPU": res.cpus, "GPU": res.gpus}])
    from clowncar.orchestrator.same_code import SameCode  # the driver's code, read as the sweep starts

    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), resources)
    # a resumed sweep's ASHA starts with the rung values of the trials that ran before (asha.seed_rungs)
    earlier = (store, searcher.study) if opts.resume else (None, None)
    scheduler = build_scheduler(spec, searcher.gate, *earlier)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                    max_concurrent_trials=spec.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=spec.name, storage_path=str((opts.runs_dir / "tune").resolve()),
                                  failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                                  callbacks=[callback, SameCode.at_sweep_start()], verbose=0,
                                  log_to_file=False),
    )


def build_scheduler(spec: SweepSpec, gate: Any, store: Any = None, study: Any = None) -> Any:
    """The sweep's Tune trial scheduler: ASHA when asked, else Tune's default; one that drops the sweep's idle
    trial actor on the ledger's word when its trials are admitted by the GPU ledger (`gate`). With a `store`
    (`sweep resume`), ASHA's rungs start with the values of the sweep's stored trials, but those the `study`
    has queued to run again (asha.seed_rungs)."""
    from optuna.trial import TrialState
    from ray.tune.schedulers import FIFOScheduler

    from clowncar.orchestrator import ledger
    from clowncar.orchestrator.asha import FinishingASHA, clock, seed_rungs
    from clowncar.orchestrator.record import trial_uid
    from clowncar.orchestrator.search import number_and_attempt

    asha, fifo = (ledger.GatedASHA, ledger.GatedFIFO) if gate is not None else (FinishingASHA, FIFOScheduler)
    if spec.scheduler.type == "asha":
        s = spec.scheduler
        max_t = s.max_t or spec.trial_config({}).train.iterations
        # stop_last_trials=False: Tune's default stops every trial whose step reaches max_t, which is the last
        # training step, before the trial's final evaluation; it would then end pruned, without a score.
        # FinishingASHA also spares a trial at its last step from a rung at max_t (asha.py).
        scheduler = asha(time_attr=clock(s.metric), metric=s.metric, mode="min", max_t=max_t,
                         grace_period=min(s.grace_period, max_t), reduction_factor=s.reduction_factor,
                         stop_last_trials=False)
        if store is not None:
            queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) if study is not None else []
            rerun = {trial_uid(spec.name, number_and_attempt(t)[0]) for t in queued}
            seed_rungs(scheduler, store, spec.name, s.metric, rerun)
    else:
        scheduler = fifo()
    if gate is not None:
        scheduler.listen(gate)
    return scheduler


@contextlib.contextmanager
def _stop_on_signals(flag: threading.Event) -> Any:
    """Ctrl-C and `ray job stop` (SIGTERM) stop the sweep: the flag makes the searcher close (not prune) the
    trials Tune stops, and the driver ends. Tune's own SIGINT handler is off (TUNE_DISABLE_SIGINT_HANDLER), as it
    would end trials as if they had finished. The handlers are `clowncar.interrupts`', shared with `trial run`
    and `dashboard`; the yielded event says whether a signal came."""
    from clowncar.interrupts import interrupt_on_signals

    with interrupt_on_signals(flag.set) as came:
        yield came


@contextlib.contextmanager
def _outages_on_the_console() -> Any:
    """While the sweep runs, a store that stops answering and answers again is one stderr line each."""
    import sys

    from clowncar.store.retry import announce_outages

    announce_outages(lambda text: print(f"clowncar: {text}", file=sys.stderr, flush=True))
    try:
        yield
    finally:
        announce_outages(None)
