"""Starting a sweep without leaving half of one behind.

`prepare` refuses what must not start (a name that is taken, a resume without a study) before it writes
anything, then creates or reconciles the sweep. Everything between that point and the first trial (the study,
the queued points, Ray, the trainable) runs under `failed_start_marked`: a failure marks the sweep `failed` with
its reason, and because such a sweep never ran a trial, the same `sweep run` starts it over
(`never_started`: no store trial, nothing in the study but queued points) instead of calling it taken.
Once it runs, a store that fails is no longer bad input but a failed run (`store_failure_fails_the_run`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clowncar.errors import EXIT_FAILED, ClownCarError, StoreError, error_line
from clowncar.orchestrator.spec import SweepSpec
from clowncar.redact import redact_text
from clowncar.words import counted

RESTARTABLE = ("created", "running", "failed")
"""Statuses a sweep without trials can be in after a failed start (`running`: a start before this fix)."""
SAME_COMMAND = "the same command"
"""What starts again a sweep that never ran a trial, in the lines that say so: true where the command names the
sweep (a spec's name, --name, a rerun's child name), so that running it again reaches the same sweep; `clowncar
demo` without --name names a new one each time, and says `--name NAME` after these words (demo.py)."""
ASKED_THIS_RUN: dict[str, int] = {}
"""Sweep name -> how many trials this process's run of it asked Tune for, set as its fit ends (tune.py): a line
for an interrupt that then cut the clean-up short never says that no trial of this run started."""


class StartFailed(ClownCarError):
    """A sweep could not start (Ray, the study, ...): it is marked failed, and the same command (SAME_COMMAND)
    starts it again."""

    exit_code = 1


class StoreFailed(StoreError):
    """The store failed while the sweep ran (its server restarted, its disk filled): a run that failed, exit 1.
    A store that cannot be used before the sweep starts stays a StoreError, bad input (exit 2)."""

    exit_code = EXIT_FAILED


@contextlib.contextmanager
def store_failure_fails_the_run() -> Iterator[None]:
    """A StoreError inside the block (the store callback's writes, the sweep's last status) ends the command as
    a failed run (exit 1) with the store's own line, its password already hidden: the sweep did start, so it was
    not bad input, and `sweep resume` continues it once the store is back."""
    try:
        yield
    except StoreFailed:
        raise
    except StoreError as err:
        raise StoreFailed(str(err)) from err


def one_line(err: BaseException) -> str:
    """`Type: first line of the message`, secrets masked: how a failure is stored and shown."""
    return redact_text(error_line(err))[:1000]


def never_started(name: str, store: Any, storage: Any, studies: set[str]) -> bool:
    """Whether sweep `name` got no further than its start: no trial in the store, and nothing in its study
    (if it has one) but the points queued before the start failed."""
    sweep = store.get_sweep(name)
    return bool(sweep) and sweep["status"] in RESTARTABLE and _ran_nothing(name, store, storage, studies)


def prepare(spec: SweepSpec, store: Any, storage: Any, resume: bool, runs_dir: Path | None = None,
            retry_failed: bool = False) -> dict[str, int]:
    """Create or check the sweep in the store; on resume, reconcile the study with the store (and with the trial
    directories under `runs_dir`) and, with `retry_failed`, queue another attempt of the trials that crashed or
    failed. The caller holds the sweep's lease, so no other driver is starting or running it."""
    import optuna

    from clowncar.orchestrator.resume import reconcile

    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if not resume and never_started(spec.name, store, storage, names):
        if spec.name in names:  # only the points queued by the failed start: they are queued again below
            optuna.delete_study(study_name=spec.name, storage=storage)
            names.discard(spec.name)
        store.restart_sweep(spec.name, spec.to_dict())
    existing = store.get_sweep(spec.name)
    if not resume and (spec.name in names or (existing and existing.get("status") != "created")):
        other = "give this rerun another name with --name" if spec.parent else "pick another name (--name)"
        raise ClownCarError(taken_line(spec.name, existing, other))
    if resume and spec.name not in names:
        raise ClownCarError(f"sweep '{spec.name}' has no Optuna study to resume")
    store.create_or_get_sweep(spec.name, spec.to_dict(), parent=spec.parent)
    if not resume:
        return {}
    study = optuna.load_study(study_name=spec.name, storage=storage)
    done = reconcile(study, store, spec, runs_dir)
    if retry_failed:
        from clowncar.orchestrator.resume import requeue_failed

        done.update(requeue_failed(study, store, spec))
    return done


def taken_line(name: str, existing: Any, other: str) -> str:
    """The line refusing a new sweep named `name` where sweep row `existing` (or only a study) has it; `other`
    says how to name the new one. A resume is advised only where it has something to do: a sweep that is done
    has nothing left to run, and an imported one has no spec to resume (`sweep resume` refuses it)."""
    status = existing and ("imported" if existing.get("source") == "import" else existing.get("status"))
    if status in ("done", "imported"):
        return f"sweep '{name}' already exists ({status}: `clowncar sweep status {name}`); {other}"
    return f"sweep '{name}' already exists; continue it with `clowncar sweep resume {name}` or {other}"


def _mark_failed(store: Any, name: str, reason: str) -> None:
    with contextlib.suppress(Exception):  # no sweep row yet, or the store itself is what failed
        store.set_sweep_status(name, "failed", reason)


@contextlib.contextmanager
def failed_start_marked(store: Any, name: str, earlier: tuple[str, str | None] | None = None) -> Iterator[None]:
    """Any failure inside the block marks sweep `name` failed with its reason. Bad input (a ClownCarError)
    keeps its own message and exit code; anything else becomes one `StartFailed` line (exit 1).

    An interrupt (Ctrl-C, SIGTERM: exit 130, resumable) of a sweep that ran before, `earlier` its status and
    reason as this start found them (a resume of a stopped sweep), puts them back: no trial of this run started, so
    nothing of the sweep changed. A first start (`earlier` None or `created`) is marked failed, `interrupted while
    starting`, and the same command starts it over (`never_started`)."""
    try:
        yield
    except KeyboardInterrupt:
        ASKED_THIS_RUN[name] = 0  # for its line (interrupted_line): this run asked for no trial
        if earlier is None or earlier[0] == "created":
            _mark_failed(store, name, "interrupted while starting")
        else:
            with contextlib.suppress(Exception):  # the store itself is what failed: the interrupt is what to say
                store.set_sweep_status(name, *earlier)
        raise
    except Exception as err:
        reason = redact_text(str(err)) if isinstance(err, ClownCarError) else one_line(err)
        _mark_failed(store, name, reason)
        if isinstance(err, ClownCarError) and not isinstance(err, StartFailed):
            raise
        raise StartFailed(f"sweep {name} did not start: {reason}; it is marked failed, and {SAME_COMMAND} "
                          "starts it again") from err


def resumable(url: str, name: str) -> bool:
    """Whether `sweep resume NAME` has something to continue: the sweep is stored and has its Optuna study."""
    import optuna

    from clowncar.orchestrator.tune import open_study
    from clowncar.store import open_store

    try:
        store = open_store(url, create=False)  # never made here: an interrupt must not leave a store behind
    except Exception:  # none yet, or none that opens: resume could not continue anything either
        return False
    with store:
        if store.get_sweep(name) is None:
            return False
    try:
        return name in {s.study_name for s in optuna.get_all_study_summaries(open_study(url))}
    except Exception:  # the study's tables cannot say: the usual advice, which resume checks again
        return True


def _ran_nothing(name: str, store: Any, storage: Any, studies: set[str]) -> bool:
    """No trial of sweep `name` in the store, and none in its study but queued points (whatever its status)."""
    import optuna
    from optuna.trial import TrialState

    if store.trial_states(name):
        return False
    if name not in studies:
        return True
    study = optuna.load_study(study_name=name, storage=storage)
    return all(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))


def interrupted_line(url: str, name: str) -> str:
    """The line for a sweep command that Ctrl-C or SIGTERM ended, from what the store holds afterwards. Whether a
    trial ever started decides it, not whether the study exists: a start interrupted while Ray comes up has its
    study and queued points, and nothing ran. `stopped` is the status only the running sweep's interrupt
    (`close_stopped`) sets; an interrupt while it starts leaves `failed` or `running`. Trials the store still holds
    as running are named: a clean-up that more Ctrl-C cut short left them so (`ASKED_THIS_RUN`)."""
    import optuna

    from clowncar.orchestrator.tune import open_study
    from clowncar.store import open_store

    resume = f"continue it with `clowncar sweep resume {name}`"
    running: list[int] = []
    if not resumable(url, name):
        return f"sweep {name} interrupted before it started: nothing ran; start it again with {SAME_COMMAND}"
    try:
        with open_store(url, create=False) as store:
            storage = open_study(url)
            studies = {s.study_name for s in optuna.get_all_study_summaries(storage)}
            if never_started(name, store, storage, studies):  # `sweep run` starts it over, `sweep resume` too
                return (f"sweep {name} interrupted before any trial started: nothing ran; start it again with "
                        f"{SAME_COMMAND}")
            status = (store.get_sweep(name) or {}).get("status")
            if status == "stopped" and _ran_nothing(name, store, storage, studies):  # before Tune asked one
                return f"sweep {name} interrupted before any trial started: nothing ran; {resume}"
            running = sorted(int(r["number"]) for r in store.sweep_summary(name)["running"])
    except Exception:  # the store cannot say: the usual line, which resume checks again
        status = "stopped"
    if running:  # its clean-up was cut short (Ctrl-C three times): the store still says they run
        them = "it" if len(running) == 1 else "them"
        return (f"sweep {name} interrupted before its running trials were closed: {_trials(running)} still "
                f"marked running, but nothing runs {them} once this command ends; `clowncar sweep resume {name}` "
                f"queues {them} again")
    asked = ASKED_THIS_RUN.get(name)
    if status == "stopped" and asked != 0:
        return f"sweep {name} interrupted: its running trials were stopped; {resume}"
    # this run asked for no trial: its earlier trials (if any) are stored, or it is a stopped sweep whose resume was
    # interrupted while it started
    if status in (*RESTARTABLE, "stopped") and not asked:
        return f"sweep {name} interrupted before any trial of this run started; {resume}"
    return f"sweep {name} interrupted; {resume}"  # after its trials ended (`done`)


def _trials(numbers: list[int]) -> str:
    """`trial 3 is`, `trials 0 and 1 are`, `trials 0, 1 and 4 are`."""
    if len(numbers) == 1:
        return f"trial {numbers[0]} is"
    return f"trials {', '.join(map(str, numbers[:-1]))} and {numbers[-1]} are"


def cleanup_notice(name: str, stopping: Any, tally: Any) -> str:
    """What a sweep driver says when a signal comes during its clean-up (`interrupts.clean_up_unless_forced`): what
    it is doing, and what one more signal leaves behind. `stopping`: the sweep was told to stop (its trials are
    being closed); `tally.running`: the trials it started that the store holds as running."""
    if not stopping.is_set():
        return "finishing: recording the sweep's end (a few seconds); Ctrl-C again quits now"
    n = len(tally.running)
    if not n:
        return "stopping: closing the sweep in the store (a few seconds); Ctrl-C again quits now"
    them = "it" if n == 1 else "them"
    return (f"stopping: closing {counted(n, 'running trial')} in the store (a few seconds); Ctrl-C again quits now "
            f"and leaves {them} marked running until `clowncar sweep resume {name}` queues {them} again")
