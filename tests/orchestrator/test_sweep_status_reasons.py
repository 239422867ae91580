"""`clowncar sweep status` says why trials failed: each status and reason with its count, the most common first,
at most five, one line each; in this process, a SQLite store filled here."""

from __future__ import annotations

from typing import Any

from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator.status_lines import failure_lines
from clowncar.store import open_store

SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {"model.crawler_loops": {"grid": [1, 2, 3]}}}



def test_status_says_why_trials_failed_the_most_common_reason_first(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        for number, (status, reason) in enumerate([
                ("error", "DataError: dataset nope: shard directory not found"), ("ok", None),
                ("oom", "CUDA out of memory"), ("error", "DataError: dataset nope: shard directory not found"),
                ("crashed", "worker died\n  exit code -9"), ("pruned", "asha"), ("stopped", "sweep stopped"),
                ("diverged", "loss was nan at step 12")]):
            st.start_trial("s", f"t{number}", number, 0, {}, 1337, "n")
            st.finish_trial(f"t{number}", 0, status, reason, {})
        st.create_or_get_sweep("other", SPEC)  # another sweep's failures are not this one's
        st.start_trial("other", "o0", 0, 0, {}, 1337, "n")
        st.finish_trial("o0", 0, "error", "other sweep's error", {})
    cmd.status_cmd("s", store=url)
    assert capsys.readouterr().out.splitlines()[1:6] == [
        "  crashed 1, diverged 1, error 2, ok 1, oom 1, pruned 1, stopped 1",
        "  error x2: DataError: dataset nope: shard directory not found",
        "  oom x1: CUDA out of memory",
        "  crashed x1: worker died exit code -9",  # one line, whatever the reason held
        "  diverged x1: loss was nan at step 12"]  # pruned and stopped trials did not fail


def test_status_points_at_store_ls_when_there_are_more_reasons_than_it_shows(url: str, capsys) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        for number in range(6):
            st.start_trial("s", f"t{number}", number, 0, {}, 1337, "n")
            st.finish_trial(f"t{number}", 0, "error", f"reason {chr(97 + number)}", {})
    cmd.status_cmd("s", store=url)
    assert capsys.readouterr().out.splitlines()[2:8] == [
        *(f"  error x1: reason {chr(97 + n)}" for n in range(5)),
        "  and 1 other failure reasons: `clowncar store ls s` lists every trial"]


def test_failure_reasons_are_shortened_and_at_most_five_are_listed() -> None:
    assert failure_lines("s", []) == []
    long = "x" * 300
    assert failure_lines("s", [("error", long), ("error", None), ("oom", float("nan")), ("oom", "  ")]) == [
        "  oom x2: no reason recorded", f"  error x1: {'x' * 197}...", "  error x1: no reason recorded"]
    assert failure_lines("s", [("error", "y" * 200)]) == [f"  error x1: {'y' * 200}"]  # exactly the limit
    many = [("error", f"reason {c}") for c in "abcdefg"] + [("error", "reason g")]
    assert failure_lines("s", many) == [
        "  error x2: reason g", "  error x1: reason a", "  error x1: reason b", "  error x1: reason c",
        "  error x1: reason d", "  and 2 other failure reasons: `clowncar store ls s` lists every trial"]
    assert len(failure_lines("s", many[:5])) == 5  # five reasons: all shown, no "other" line


def test_reasons_that_differ_only_in_their_numbers_are_one_way_to_fail() -> None:
    # walk 5: two divergences at other losses and steps were "most common (1x)" of two
    diverged = [("diverged", "train loss 3050.1914 at step 2, above the limit 20.7944"),
                ("diverged", "train loss 828.849 at step 12, above the limit 20.7944"),
                ("error", "disk full at step 3"), ("diverged", "train loss 1e+05 at step -1, above the limit 20.7944")]
    assert failure_lines("s", diverged) == [
        "  diverged x3: train loss 3050.1914 at step 2, above the limit 20.7944 (one of them: the numbers vary)",
        "  error x1: disk full at step 3"]
    same = [("oom", "CUDA out of memory at step 4")] * 2
    assert failure_lines("s", same) == ["  oom x2: CUDA out of memory at step 4"]  # one text: nothing varies
    assert len(failure_lines("s", [("error", "disk full"), ("error", "disk fell")])) == 2  # words still count


def test_two_reasons_that_differ_only_in_their_numbers_say_the_numbers_vary() -> None:
    assert failure_lines("s", [("diverged", "loss nan at step 2"), ("diverged", "loss nan at step 12")]) == [
        "  diverged x2: loss nan at step 2 (one of them: the numbers vary)"]


def test_the_failed_line_counts_only_its_own_sweeps_trials_and_never_creates_a_store(url: str, tmp_path) -> None:
    from clowncar.orchestrator.status_lines import failures_line

    with open_store(url) as st:
        st.create_or_get_sweep("s", SPEC)
        st.start_trial("s", "t0", 0, 0, {}, 1337, "n")
        st.finish_trial("t0", 0, "error", "disk full", {})
        st.create_or_get_sweep("other", SPEC)  # more failures, of another sweep
        for number in range(2):
            st.start_trial("other", f"o{number}", number, 0, {}, 1337, "n")
            st.finish_trial(f"o{number}", 0, "oom", "CUDA out of memory", {})
    assert failures_line(url, "s") == (
        "failed: 1 trial; most common (1x): error: disk full (`clowncar sweep status s` lists the reasons)")
    gone = tmp_path / "gone.db"  # a store removed since the sweep ran: no line, and no new empty store
    assert failures_line(f"sqlite:///{gone}", "s") is None
    assert not gone.exists()


def test_sweep_run_ends_with_how_many_trials_failed_and_the_most_common_reason(url: str, monkeypatch, capsys) -> None:
    import clowncar.orchestrator.tune as tune
    from clowncar.orchestrator.spec import spec_from_dict

    rejected = "ConfigError: model.param_budget 10 is below the smallest legal model"
    outcomes: list[tuple[str, str | None]] = [("rejected", rejected), ("oom", "CUDA out of memory"), ("ok", None),
                                              ("rejected", rejected)]

    def runner(spec: object, opts: Any) -> dict[str, object]:
        with open_store(opts.store_url) as st:
            st.create_or_get_sweep("s", SPEC)
            for number, (status, reason) in enumerate(outcomes):
                st.start_trial("s", f"t{number}", number, 0, {}, 1337, "n")
                st.finish_trial(f"t{number}", 0, status, reason, {})
        return {"sweep": "s", "optuna_states": {"FAIL": 3, "COMPLETE": 1}}

    monkeypatch.setattr(tune, "run_sweep", runner)
    monkeypatch.setattr("clowncar.orchestrator.preflight.check_local_data", lambda spec: None)
    cmd.run_spec(spec_from_dict(SPEC), url, None, 1, 0, True, resume=False)
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"failed: 3 trials; most common (2x): rejected: {rejected} (`clowncar sweep status s` lists the reasons)")
    outcomes[:] = [("ok", None)]
    cmd.run_spec(spec_from_dict(SPEC), url.replace("store.db", "ok.db"), None, 1, 0, True, resume=False)
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("failed:")]
