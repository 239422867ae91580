"""What the sweep's searcher (`orchestrator/search.py`) asks the GPU ledger's gate, and how a held trial waits:
driven directly, without Ray, on an in-memory study, with a gate that records the calls and answers as told."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from clowncar.orchestrator.search import SweepSearch
from clowncar.orchestrator.spec import spec_from_dict

optuna.logging.set_verbosity(optuna.logging.WARNING)


def spec_of(**fields: Any) -> Any:
    data = {"name": "gate", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 4},
            "space": {"model.crawler_loops": {"choice": [1, 2, 3, 4]}}, **fields}
    return spec_from_dict(data)


def searcher(spec: Any) -> SweepSearch:
    return SweepSearch(spec, optuna.storages.InMemoryStorage(), spec.max_trials())


def final(**fields: Any) -> dict[str, Any]:
    return {"final": True, "status": "ok", **fields}


class _Gate:
    """Records what the searcher asks the GPU ledger; admits on the answers it is given (None: not yet)."""

    def __init__(self, answers: list[str | None]) -> None:
        self.answers, self.calls = answers, []

    def admit(self, trial_id: str, first_id: str, seconds: float, backlog: tuple[float, ...]) -> str | None:
        self.calls.append(("admit", trial_id, first_id, seconds, backlog))
        return self.answers.pop(0)

    def confirm(self, trial_id: str, node: str, pg: str) -> None:
        self.calls.append(("confirm", trial_id, node, pg))

    def release(self, trial_id: str) -> None:
        self.calls.append(("release", trial_id))


def test_a_gated_trial_is_asked_once_held_until_admitted_and_taken_over_by_tunes_next_id() -> None:
    search = searcher(spec_of(budget={"max_trials": 3}))
    gate = search.gate = _Gate([None, None, "node-b"])
    assert search.suggest("t0") is None  # asked, held: the ledger has no room yet
    assert search.suggest("t1") is None
    params = search.suggest("t2")
    assert len(search.study.trials) == 1 and search.asked == 1  # one Optuna trial for the three calls
    assert params["_cc"] == {"number": 0, "attempt": 0, "node": "node-b"}
    expected = pytest.approx(66.0)
    assert gate.calls == [("admit", "t0", "t0", expected, (expected, expected)),
                          ("admit", "t1", "t0", expected, (expected, expected)),
                          ("admit", "t2", "t0", expected, (expected, expected))]
    assert set(search.running_since) == {"t2"} and set(search._ot_trials) == {"t2"} and search._held is None
    search.on_trial_result("t2", {"node_id": "node-c", "pg": "ab12"})
    search.on_trial_result("t2", {"step": 3})  # a report without a node says nothing to the ledger
    search.on_trial_complete("t2", final(objective=1.0))
    assert gate.calls[3:] == [("confirm", "t2", "node-c", "ab12"), ("release", "t2")]
    assert search.study.trials[0].state == TrialState.COMPLETE


def test_a_trials_wait_at_the_gate_is_not_committed_against_the_gpu_hour_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # GPU-hours are billed from a trial's worker start (its first report). A trial the ledger held for 500 s
    # commits its expected 66 GPU-seconds, not the 500 it waited, so a second one (66 more) fits a cap of 180; it
    # used to commit the wait and end the sweep with nothing run.
    search = searcher(spec_of(resources={"gpus": 1}, budget={"max_trials": 4, "max_gpu_hours": 0.05}))
    search.gate = _Gate([None, "node-a", "node-a"])
    now = [1000.0]
    monkeypatch.setattr("clowncar.orchestrator.search.time.time", lambda: now[0])
    assert search.suggest("t0") is None  # asked at 1000, held: no room yet
    now[0] = 1500.0
    assert search.suggest("t1")["_cc"]["node"] == "node-a"  # admitted, not started
    second = search.suggest("t2")
    assert second != Searcher.FINISHED, search.end_reason
    assert second["_cc"] == {"number": 1, "attempt": 0, "node": "node-a"}
    search.on_trial_result("t1", {"step": 1})  # t1's worker starts at 1500; at 1620 it has run 120 s
    now[0] = 1620.0
    assert search.suggest("t3") is Searcher.FINISHED  # 120 (t1, started) + 66 (t2, not) + 66 next > 180
    assert search.end_reason == ("GPU-hour budget reached: 0.0000 of 0.05 GPU-hours used (0.0517 committed); "
                                 "the next trial needs ~0.0183")


def test_a_gated_trial_admitted_at_once_keeps_its_id_and_a_report_without_pg_confirms_an_empty_one() -> None:
    search = searcher(spec_of())
    gate = search.gate = _Gate(["node-a"])
    params = search.suggest("t0")
    assert params["_cc"]["node"] == "node-a" and set(search._ot_trials) == {"t0"}
    search.on_trial_result("t0", {"node_id": "node-a"})
    assert gate.calls[-1] == ("confirm", "t0", "node-a", "")


def test_a_gated_search_out_of_budget_asks_nothing() -> None:
    search = searcher(spec_of())
    search.gate = _Gate([])
    search.stopping.set()
    assert search.suggest("t0") == Searcher.FINISHED and search.study.trials == []


def test_the_ledger_is_told_the_expected_time_of_the_trial_it_admits() -> None:
    search = searcher(spec_of(space={"train.max_wallclock_seconds": {"choice": [100]}}))
    gate = search.gate = _Gate(["node-a"])
    search.suggest("t0")
    assert gate.calls[0][3] == pytest.approx(110.0)  # this trial's 100 s cap + 10 %, not the base config's


def test_the_pickled_state_drops_the_hook_and_the_gate_it_was_given() -> None:
    search = SweepSearch(spec_of(), optuna.storages.InMemoryStorage(), 4, on_tell=lambda *a: None)
    search.gate = _Gate([])
    state = search.__getstate__()
    assert state["on_tell"] is None and state["gate"] is None
    with pytest.raises(RuntimeError) as err:
        search.restore("/x")
    assert str(err.value) == "clowncar sweeps resume from the Optuna study (clowncar sweep resume), not Tune state"
