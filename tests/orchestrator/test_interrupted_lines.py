"""The one line `sweep run` ends with when Ctrl-C or SIGTERM interrupts it: chosen from what the store holds
afterwards (whether any trial ever started), never from whether the study exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.tune import open_study
from clowncar.store import open_store

LOOPS = "model.crawler_loops"
SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {LOOPS: {"grid": [1, 2, 3]}}}



def _interrupted(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The line `run_spec` ends with when the sweep runner is interrupted, the store as it is now."""
    import clowncar.orchestrator.tune as tune

    def interrupted(spec: Any, opts: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "run_sweep", interrupted)
    monkeypatch.setattr("clowncar.orchestrator.preflight.check_local_data", lambda spec: None)
    with pytest.raises(cmd.SweepInterrupted) as err:
        cmd.run_spec(spec_from_dict(SPEC), url, None, None, None, False, resume=False)
    assert err.value.exit_code == 130
    return str(err.value)


NOTHING_RAN = "sweep s interrupted before any trial started: nothing ran; start it again with the same command"
STOPPED = "sweep s interrupted: its running trials were stopped; continue it with `clowncar sweep resume s`"


def test_a_sweep_interrupted_before_its_study_exists_says_to_start_it_again(url: str, monkeypatch,
                                                                            tmp_path: Path) -> None:
    before = "sweep s interrupted before it started: nothing ran; start it again with the same command"
    assert _interrupted(url, monkeypatch) == before  # nothing recorded: resume has nothing
    assert not (tmp_path / "store.db").exists()  # looking made no store
    with open_store(url) as st:
        st.create_or_get_sweep("other", SPEC)
    assert _interrupted(url, monkeypatch) == before  # a store, but not this sweep
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
    assert _interrupted(url, monkeypatch) == before  # stored, but no study yet: `sweep run` starts it over
    import optuna

    def unreadable(storage: Any) -> list[Any]:
        raise RuntimeError("the study tables cannot be read")

    with monkeypatch.context() as m:  # the store cannot say: the usual advice, which resume checks again
        m.setattr(optuna, "get_all_study_summaries", unreadable)
        assert _interrupted(url, monkeypatch) == STOPPED


def test_an_interrupted_sweep_says_whether_any_trial_started(url: str, monkeypatch) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        st.set_sweep_status("s", "failed", "interrupted while starting")
    study = optuna.create_study(study_name="s", storage=open_study(url))
    study.enqueue_trial({LOOPS: 1})  # what the start queues before Ray starts: no trial ran
    assert _interrupted(url, monkeypatch) == NOTHING_RAN
    with open_store(url) as st:
        st.set_sweep_status("s", "stopped")  # stopped by the interrupt before Tune asked for a trial
    assert _interrupted(url, monkeypatch) == ("sweep s interrupted before any trial started: nothing ran; "
                                              "continue it with `clowncar sweep resume s`")
    study.ask()  # asked: it started, and the interrupt stopped it
    assert _interrupted(url, monkeypatch) == STOPPED
    with open_store(url) as st:
        st.set_sweep_status("s", "failed", "interrupted while starting")  # a resume interrupted while it starts
    assert _interrupted(url, monkeypatch) == ("sweep s interrupted before any trial of this run started; "
                                              "continue it with `clowncar sweep resume s`")
    with open_store(url) as st:
        st.set_sweep_status("s", "done")
    assert _interrupted(url, monkeypatch) == "sweep s interrupted; continue it with `clowncar sweep resume s`"


def test_a_sweep_whose_trials_are_stored_is_never_said_to_have_run_nothing(url: str, monkeypatch) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        st.start_trial("s", "u0", 0, 0, {"model": {"crawler_loops": 1}}, 1337, "node-a")
        st.finish_trial("u0", 0, "ok", None, {})
        st.set_sweep_status("s", "stopped")
    optuna.create_study(study_name="s", storage=open_study(url))  # its study says nothing ran: the store does
    assert _interrupted(url, monkeypatch) == STOPPED


def test_ray_is_shut_down_deaf_to_signals_however_the_sweep_ends(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C during Ray's own exit-time shutdown printed a traceback and could leave Ray's agents running."""
    import signal

    import ray

    from clowncar.errors import ClownCarError

    handlers: list[tuple[Any, Any]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: not handlers)
    monkeypatch.setattr(ray, "shutdown", lambda: handlers.append(
        (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))))
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    _interrupted(url, monkeypatch)
    assert handlers == [(signal.SIG_IGN, signal.SIG_IGN)]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before

    def failing(spec: Any, opts: Any) -> dict[str, Any]:
        raise ClownCarError("the store went away")

    import clowncar.orchestrator.tune as tune

    handlers.clear()
    monkeypatch.setattr(tune, "run_sweep", failing)
    with pytest.raises(ClownCarError, match="the store went away"):
        cmd.run_spec(spec_from_dict(SPEC), url, None, None, None, False, resume=False)
    assert handlers == [(signal.SIG_IGN, signal.SIG_IGN)]
    cmd.ray_shut_down()  # Ray no longer up: nothing to shut down
    assert len(handlers) == 1


def test_a_sweep_stopped_by_a_signal_whose_keyboardinterrupt_was_lost_still_ends_with_130(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGINT that lands while Python runs a callback mid-import ('Exception ignored in ... _get_module_lock')
    loses its KeyboardInterrupt; the sweep stops all the same (the flag was set) and used to exit 0 (seen once in
    the fresh-clone suite, test_gpu_ledger). The runner's summary says a signal came: 130 and the one line."""
    import clowncar.orchestrator.tune as tune

    monkeypatch.setattr(tune, "run_sweep", lambda spec, opts: {"interrupted": True})
    monkeypatch.setattr("clowncar.orchestrator.preflight.check_local_data", lambda spec: None)
    with pytest.raises(cmd.SweepInterrupted) as err:
        cmd.run_spec(spec_from_dict(SPEC), url, None, None, None, False, resume=False)
    assert err.value.exit_code == 130 and "interrupted" in str(err.value)


def test_the_signal_handlers_of_a_running_sweep_say_whether_a_signal_came() -> None:
    import signal
    import threading

    from clowncar.orchestrator.tune import _stop_on_signals

    flag = threading.Event()
    with _stop_on_signals(flag) as came:
        assert not came.is_set()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert came.is_set() and flag.is_set()


def test_a_signal_during_a_sweeps_clean_up_is_answered_and_only_the_next_one_cuts_it_short(capfd) -> None:
    """Walk 5, F12: a second Ctrl-C 0.5 s after the first cut the stopped sweep's clean-up short without a word."""
    import signal

    from clowncar.interrupts import clean_up_unless_forced

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    done = []
    with pytest.raises(KeyboardInterrupt), clean_up_unless_forced(lambda: "stopping: closing 2 trials") as forced:
        signal.raise_signal(signal.SIGINT)  # the impatient second Ctrl-C: said, and the clean-up goes on
        done.append("closed the first trial")
        assert not forced.is_set() and capfd.readouterr().err == "clowncar: stopping: closing 2 trials\n"
        signal.raise_signal(signal.SIGTERM)  # one more: the user insists
        done.append("closed the second trial")
    assert done == ["closed the first trial"] and forced.is_set()
    assert capfd.readouterr().err == ""
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_the_line_for_a_signal_during_the_clean_up_says_what_one_more_leaves_behind() -> None:
    import threading

    from clowncar.orchestrator.record import Tally
    from clowncar.orchestrator.start import cleanup_notice

    stopping, tally = threading.Event(), Tally(total=4, running={"t0", "t1"})
    assert cleanup_notice("f3", stopping, tally) == ("finishing: recording the sweep's end (a few seconds); Ctrl-C "
                                                     "again quits now")  # the sweep had ended on its own
    stopping.set()
    assert cleanup_notice("f3", stopping, tally) == (
        "stopping: closing 2 running trials in the store (a few seconds); Ctrl-C again quits now and leaves them "
        "marked running until `clowncar sweep resume f3` queues them again")
    tally.running.discard("t1")
    assert "closing 1 running trial in the store" in cleanup_notice("f3", stopping, tally)
    assert "leaves it marked running until `clowncar sweep resume f3` queues it again" in \
        cleanup_notice("f3", stopping, tally)
    tally.running.clear()
    assert cleanup_notice("f3", stopping, tally) == ("stopping: closing the sweep in the store (a few seconds); "
                                                     "Ctrl-C again quits now")


def test_a_signal_while_the_store_is_read_for_the_line_still_ends_with_the_sweeps_line(url: str, monkeypatch) -> None:
    """A third Ctrl-C 0.6 s after the first (the trials already closed) came while the line was being read from the
    store, and the command ended with the bare `clowncar: error: interrupted`, no sweep named, no resume."""
    import clowncar.orchestrator.start as start

    def interrupted_again(url: str, name: str) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(start, "interrupted_line", interrupted_again)
    try:
        line = _interrupted(url, monkeypatch)
    except KeyboardInterrupt:  # caught here: escaping, it would end the whole pytest session as a user's Ctrl-C
        pytest.fail("a Ctrl-C while the line was read escaped as a bare KeyboardInterrupt")
    assert line == "sweep s interrupted; continue it with `clowncar sweep resume s`"


def test_a_sweep_whose_clean_up_was_cut_short_names_the_trials_still_marked_running(url: str, monkeypatch) -> None:
    """The walk's line was `interrupted before any trial of this run started`, with trials 0 and 1 running."""
    from clowncar.orchestrator import start

    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        st.set_sweep_status("s", "running")  # the status the sweep runs under, never set to `stopped`
        for number in (0, 1):
            st.start_trial("s", f"s/{number}", number, 0, {"model": {"crawler_loops": number + 1}}, 1337, "node-a")
    optuna.create_study(study_name="s", storage=open_study(url)).ask()
    monkeypatch.setitem(start.ASKED_THIS_RUN, "s", 2)
    assert _interrupted(url, monkeypatch) == (
        "sweep s interrupted before its running trials were closed: trials 0 and 1 are still marked running, but "
        "nothing runs them once this command ends; `clowncar sweep resume s` queues them again")
    with open_store(url) as st:
        st.finish_trial("s/0", 0, "ok", None, {})
    assert "trial 1 is still marked running, but nothing runs it once" in _interrupted(url, monkeypatch)
    with open_store(url) as st:  # cut short after its trials were closed, before its status was written
        st.finish_trial("s/1", 0, "stopped", "sweep stopped", None)
    assert _interrupted(url, monkeypatch) == "sweep s interrupted; continue it with `clowncar sweep resume s`"
    monkeypatch.setitem(start.ASKED_THIS_RUN, "s", 0)  # a run that asked for no trial: its earlier ones are stored
    assert _interrupted(url, monkeypatch) == ("sweep s interrupted before any trial of this run started; "
                                              "continue it with `clowncar sweep resume s`")


def test_a_keyboardinterrupt_python_could_not_raise_prints_no_traceback(monkeypatch) -> None:
    """A handler that runs inside a weakref callback or a `__del__` loses its KeyboardInterrupt to `Exception ignored
    in ...` and a traceback on stderr (Python's unraisable hook; seen after a third Ctrl-C in a sweep's clean-up);
    the handler has recorded the signal already, so the traceback is all that goes. Other such errors still go to
    the hook."""
    import sys

    from clowncar.interrupts import lost_interrupts_unsaid

    reported: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))

    class Raises:
        def __init__(self, error: type[BaseException]) -> None:
            self.error = error

        def __del__(self) -> None:
            raise self.error

    with lost_interrupts_unsaid():
        Raises(KeyboardInterrupt)
        Raises(ValueError)
    Raises(KeyboardInterrupt)
    assert reported == [ValueError, KeyboardInterrupt]
