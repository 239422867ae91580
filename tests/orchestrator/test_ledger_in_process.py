"""The GPU ledger's actor body, a driver's gate and the trial bundles, in this process: Ray's node table, its
placement-group table and the actor call are stand-ins, the booking is the real `GpuBook`. (The ledger as a Ray
actor shared by sweeps on a test cluster is in test_gpu_ledger.py.)"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import ray

from clowncar.orchestrator import ledger as ledger_module
from clowncar.orchestrator.ledger import (
    DropsIdleActor,
    Gate,
    Ledger,
)


def placement_group_module() -> Any:
    """ray.util.placement_group the module (`ray.util` exports a function of the same name over it)."""
    import importlib

    return importlib.import_module("ray.util.placement_group")


NODES = [{"NodeID": "n1", "Alive": True, "Resources": {"GPU": 2.0}},
         {"NodeID": "n2", "Alive": True, "Resources": {"GPU": 1.0}},
         {"NodeID": "dead", "Alive": False, "Resources": {"GPU": 8.0}},
         {"NodeID": "cpu", "Alive": True, "Resources": {}}]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(ledger_module.time, "time", c.time)
    return c


@pytest.fixture
def nodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Ray's node table (NODES); counts the lookups."""
    calls: list[int] = []
    monkeypatch.setattr(ray, "nodes", lambda: calls.append(1) or [dict(n) for n in NODES])
    monkeypatch.setattr(Ledger, "_gone", staticmethod(lambda pg: True))
    return calls


def test_a_request_is_granted_on_a_live_gpu_node_and_logged(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=30, settle_s=0)
    node, drop = led.request("sweep-a", "sweep-a/t1", 2, 600.0)
    assert (node, drop) == ("n1", False)  # the only live node with 2 GPUs
    assert led.history() == [(clock.now, "grant", "sweep-a/t1", "n1")]
    snap = led.snapshot()
    assert snap["nodes"] == {"n1": 2, "n2": 1}  # live GPU nodes only, GPUs as whole numbers
    assert snap["leases"] == {"sweep-a/t1": ("sweep-a", 2, "n1", False)}


def test_a_request_that_must_wait_says_so_and_whether_to_drop_an_idle_actor(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=30, settle_s=0)
    assert led.request("a", "a/t1", 2, 600.0)[0] == "n1"
    node, drop = led.request("b", "b/t1", 2, 600.0)
    assert node is None and drop is False
    assert [entry[1] for entry in led.history()] == ["grant"]


def test_a_release_frees_the_gpus_for_the_next_request(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=30, settle_s=0)
    led.request("a", "a/t1", 2, 600.0)
    clock.now += 10
    led.release("a/t1")
    assert led.history()[-1] == (clock.now, "release", "a/t1", "n1")
    led.release("a/unknown")  # a lease it never had: nothing logged
    assert len(led.history()) == 2
    assert led.request("b", "b/t1", 2, 600.0)[0] == "n1"
    assert led.history()[-1][1:] == ("grant", "b/t1", "n1")


def test_the_node_table_is_read_at_most_every_two_seconds(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=30, settle_s=0)
    led.request("a", "a/1", 1, 60.0)
    led.request("a", "a/2", 1, 60.0)
    assert len(nodes) == 1
    clock.now += 1.99
    led.heartbeat("a", [])
    assert len(nodes) == 1
    clock.now += 0.01
    led.heartbeat("a", [])
    assert len(nodes) == 2


def test_the_history_is_a_copy_of_the_last_twenty_thousand_events(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=30, settle_s=0)
    assert led.log.maxlen == 20_000
    led.request("a", "a/1", 1, 60.0)
    history = led.history()
    history.clear()
    assert len(led.history()) == 1


def test_a_confirmed_lease_and_a_closed_owner_reach_the_book(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=30, settle_s=0)
    led.request("a", "a/1", 1, 60.0)
    led.confirm("a/1", "n2", "pg-hex")
    assert led.snapshot()["leases"]["a/1"][2] == "n2"
    led.close("a")
    assert led.snapshot()["leases"] == {}


def test_a_removed_or_unknown_placement_group_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    pgmod = placement_group_module()

    tables: dict[str, Any] = {}

    def table(pg: Any) -> Any:
        key = pg.id.hex()
        if key not in tables:
            raise ValueError("unknown placement group")
        return tables[key]

    monkeypatch.setattr(pgmod, "placement_group_table", table)
    pid = "ab" * 18
    assert Ledger._gone(pid) is True  # Ray does not know it: nothing holds it
    tables[pid] = {"state": "CREATED"}
    assert Ledger._gone(pid) is False
    tables[pid] = {"state": "REMOVED"}
    assert Ledger._gone(pid) is True
    tables[pid] = {}
    assert Ledger._gone(pid) is True


# --- the gate --------------------------------------------------------------------------------------------------

@pytest.fixture
def open_gate(gate_env: dict[str, Any]) -> Any:
    """Gate(...) for a test, closed when the test ends (its heartbeat thread stops)."""
    opened: list[Gate] = []

    def make(*args: Any, **kwargs: Any) -> Gate:
        opened.append(Gate(*args, **kwargs))
        return opened[-1]

    yield make
    for gate in opened:
        gate.close()


class Handle:
    """The ledger actor's handle: `handle.method.remote(*args)` calls the in-process Ledger (or raises)."""

    def __init__(self, led: Ledger | None, fail: BaseException | None = None) -> None:
        self.led, self.fail, self.calls = led, fail, []

    def __getattr__(self, method: str) -> Any:
        handle = self

        class Method:
            @staticmethod
            def remote(*args: Any) -> Any:
                handle.calls.append((method, args))
                if handle.fail is not None:
                    raise handle.fail
                return getattr(handle.led, method)(*args)

        return Method


@pytest.fixture
def gate_env(monkeypatch: pytest.MonkeyPatch, clock: Clock, nodes: list[int]) -> dict[str, Any]:
    env: dict[str, Any] = {"led": Ledger(ttl_s=30, settle_s=0), "timeouts": []}
    env["handle"] = Handle(env["led"])

    class Context:
        @staticmethod
        def get_job_id() -> str:
            return "job01"

    monkeypatch.setattr(ray, "get_runtime_context", lambda: Context)
    monkeypatch.setattr(ray, "get", lambda ref, timeout=None: env["timeouts"].append(timeout) or ref)
    monkeypatch.setattr(ledger_module, "ledger_handle", lambda: env["handle"])
    return env


def test_a_gate_admits_with_the_ledgers_node_and_remembers_the_lease(open_gate, gate_env: dict[str, Any], clock: Clock) -> None:
    gate = open_gate(2, limit=3, beat_s=3600, timeout_s=7.5)
    assert gate.owner.startswith("job01-") and len(gate.owner.split("-")[-1]) == 8
    assert gate.admit("trial_1", "k1", 600.0, backlog=(300.0, 200.0)) == "n1"
    method, args = gate_env["handle"].calls[0]
    assert (method, args) == ("request", (gate.owner, f"{gate.owner}/k1", 2, 600.0, [300.0, 200.0], 3))
    assert gate_env["timeouts"] == [7.5]
    assert gate.leases == {"trial_1": (f"{gate.owner}/k1", 2, "n1", 600.0, clock.now)}
    assert gate.admit("trial_2", "k2", 600.0) is None  # no room: ask again later
    assert "trial_2" not in gate.leases


def test_confirm_tells_the_ledger_only_what_is_new(open_gate, gate_env: dict[str, Any]) -> None:
    gate = open_gate(1, beat_s=3600)
    gate.admit("t", "k", 60.0)
    calls = gate_env["handle"].calls
    gate.confirm("unknown", "n1", "pg0")
    gate.confirm("t", "n2", "pg1")
    gate.confirm("t", "n2", "pg1")  # the same again: no call
    gate.confirm("t", "n2", "pg2")  # a new placement group (a restart): told
    assert [c for c in calls if c[0] == "confirm"] == [("confirm", (f"{gate.owner}/k", "n2", "pg1")),
                                                        ("confirm", (f"{gate.owner}/k", "n2", "pg2"))]
    assert gate.leases["t"][2] == "n2" and gate.pgs == {"t": "pg2"}


def test_release_forgets_the_lease_and_tells_the_ledger_once(open_gate, gate_env: dict[str, Any]) -> None:
    gate = open_gate(1, beat_s=3600)
    gate.admit("t", "k", 60.0)
    gate.confirm("t", "n1", "pg1")
    gate.release("t")
    gate.release("t")
    assert [c for c in gate_env["handle"].calls if c[0] == "release"] == [("release", (f"{gate.owner}/k",))]
    assert gate.leases == {} and gate.pgs == {}


def test_the_gate_heartbeats_what_it_holds_and_closes_its_owner(open_gate, gate_env: dict[str, Any]) -> None:
    gate = open_gate(1, beat_s=0.01)
    gate.admit("t", "k", 60.0)
    deadline = time.monotonic() + 10
    while not any(c[0] == "heartbeat" for c in gate_env["handle"].calls) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.close()
    beats = [c for c in gate_env["handle"].calls if c[0] == "heartbeat"]
    assert beats and beats[0][1][0] == gate.owner and beats[0][1][1] == [gate.leases["t"]]
    assert gate_env["handle"].calls[-1] == ("close", (gate.owner,))
    gate._beat.join(timeout=5)
    assert not gate._beat.is_alive()


def test_a_ledger_that_times_out_is_asked_again_and_its_late_grant_is_found(open_gate, gate_env: dict[str, Any],
                                                                          caplog) -> None:
    # A crowded head: the ledger's actor still starting, or slow. Giving up on the first timeout sent that sweep to
    # Ray's own placement for good, whose trials then took the GPUs the ledger drained for another sweep's gang.
    gate_env["handle"] = Handle(gate_env["led"], fail=TimeoutError("ledger did not answer"))
    caplog.set_level(logging.WARNING, logger=ledger_module.__name__)
    gate = open_gate(1, beat_s=3600, patience_s=120.0)
    assert gate.admit("t1", "k1", 60.0) is None and gate.admit("t1", "k1", 60.0) is None  # not yet: ask again
    assert not gate.broken and gate.leases == {} and not caplog.records
    gate_env["led"].request(gate.owner, f"{gate.owner}/k1", 1, 60.0)  # what the timed-out call did meanwhile
    gate_env["handle"].fail = None
    assert gate.admit("t1", "k1", 60.0) == "n2"  # the repeat finds that grant (best fit), not a second one
    assert list(gate_env["led"].book.leases) == [f"{gate.owner}/k1"]


def test_a_ledger_silent_for_the_gates_patience_admits_at_once_and_warns_once(open_gate, gate_env: dict[str, Any],
                                                                            caplog) -> None:
    gate_env["handle"] = Handle(None, fail=TimeoutError("ledger did not answer\nmore"))
    caplog.set_level(logging.WARNING, logger=ledger_module.__name__)
    gate = open_gate(1, beat_s=3600, patience_s=0.05)
    assert gate.admit("t1", "k1", 60.0) is None  # patient for 0.05 s
    time.sleep(0.06)
    assert gate.admit("t1", "k1", 60.0) == ""  # no pin: Ray places it
    assert gate.broken and gate.leases["t1"][2] == ""
    assert gate.admit("t2", "k2", 60.0) == ""
    assert len(gate_env["handle"].calls) == 2  # a broken gate stops asking
    assert [r.getMessage() for r in caplog.records] == [
        "GPU ledger unreachable (TimeoutError: ledger did not answer); trials are placed by Ray alone from now on"]


def test_an_answer_restarts_the_gates_patience(open_gate, gate_env: dict[str, Any]) -> None:
    gate = open_gate(1, beat_s=3600, patience_s=0.2)
    time.sleep(0.25)
    assert gate.admit("t1", "k1", 60.0) == "n2"  # answered: silent from now on only
    gate_env["handle"].fail = TimeoutError("slow")
    assert gate.admit("t2", "k2", 60.0) is None and not gate.broken
    time.sleep(0.25)
    assert gate.admit("t2", "k2", 60.0) == "" and gate.broken


def test_an_error_other_than_a_timeout_breaks_the_gate_at_once(open_gate, gate_env: dict[str, Any],
                                                               caplog) -> None:
    gate_env["handle"] = Handle(None, fail=RuntimeError("actor died"))
    caplog.set_level(logging.WARNING, logger=ledger_module.__name__)
    gate = open_gate(1, beat_s=3600, patience_s=120.0)
    assert gate.admit("t1", "k1", 60.0) == "" and gate.broken
    assert [r.getMessage() for r in caplog.records] == [
        "GPU ledger unreachable (RuntimeError: actor died); trials are placed by Ray alone from now on"]


def test_a_gate_waits_10_s_a_call_and_120_s_for_any_answer(open_gate) -> None:
    gate = open_gate(1, beat_s=3600)
    assert (gate.timeout_s, gate.patience_s) == (10.0, 120.0)


def test_a_ledger_that_cannot_be_created_breaks_the_gate_at_once(open_gate, monkeypatch,
                                                                 caplog) -> None:
    def cannot() -> Any:
        raise RuntimeError("")

    monkeypatch.setattr(ledger_module, "ledger_handle", cannot)
    caplog.set_level(logging.WARNING, logger=ledger_module.__name__)
    gate = open_gate(1, beat_s=3600)
    assert gate.broken and gate.admit("t", "k", 1.0) == ""
    assert caplog.records[0].getMessage() == ("GPU ledger unreachable (RuntimeError: ); trials are placed by Ray "
                                              "alone from now on")


def test_the_ledgers_word_to_drop_an_idle_actor_reaches_the_scheduler(open_gate, gate_env: dict[str, Any]) -> None:
    led = gate_env["led"]
    led.request = lambda *args: (None, True)  # type: ignore[method-assign]
    gate = open_gate(1, beat_s=3600)
    dropped: list[int] = []
    assert gate.admit("t", "k", 1.0) is None  # told to drop, nothing listens yet: fine
    gate.on_idle_blocks = lambda: dropped.append(1)
    assert gate.admit("t", "k", 1.0) is None
    assert dropped == [1]


# --- the scheduler's idle actors ----------------------------------------------------------------------------------

class Group:
    def __init__(self, gid: str) -> None:
        self.id = gid


class Controller:
    def __init__(self, live: dict[str, Group], stopping: list[str]) -> None:
        self._actor_manager = type("M", (), {"_live_actors_to_ray_actors_resources": {
            a: (object(), type("R", (), {"placement_group": g})()) for a, g in live.items()}})()
        self._stopping_actors = list(stopping)
        self.cleaned: list[bool] = []

    def _cleanup_cached_actors(self, force_all: bool) -> None:
        self.cleaned.append(force_all)


def test_idle_actors_placement_groups_are_removed_once(open_gate, monkeypatch: pytest.MonkeyPatch) -> None:
    pgmod = placement_group_module()

    removed: list[str] = []
    monkeypatch.setattr(pgmod, "remove_placement_group", lambda g: removed.append(g.id))
    sched = DropsIdleActor()
    gate = open_gate(1, beat_s=3600)
    sched.listen(gate)
    assert gate.on_idle_blocks == sched.drop_idle_actors
    sched.drop_idle_actors()  # no controller yet: nothing to do
    ctl = Controller({"a1": Group("g1"), "a2": Group("g2"), "a3": Group("g3")}, stopping=["a1", "a3", "a9"])
    sched.controller = ctl
    sched.drop_idle_actors()
    sched.drop_idle_actors()  # still listed as stopping: not removed twice
    assert ctl.cleaned == [True, True] and removed == ["g1", "g3"]


def test_another_ray_without_those_internals_leaves_the_actor(caplog) -> None:
    sched = DropsIdleActor()
    sched.removed = set()
    sched.controller = object()
    caplog.set_level(logging.WARNING, logger=ledger_module.__name__)
    sched.drop_idle_actors()
    assert sched.controller is None
    assert caplog.records[0].getMessage() == ("this Ray Tune cannot drop an idle trial actor ('object' object has no "
                                              "attribute '_actor_manager'); a waiting gang may stall")


def test_the_scheduler_keeps_the_inner_controller_and_pickles_without_it() -> None:
    class Base:
        def on_trial_add(self, controller: Any, trial: Any) -> None:
            self.seen = (controller, trial)

    class Sched(DropsIdleActor, Base):
        pass

    inner = object()
    wrapper = type("W", (), {"_tune_controller": inner})()
    s = Sched()
    s.on_trial_add(wrapper, "trial")
    assert s.controller is inner and s.seen == (wrapper, "trial")
    s.on_trial_add(inner, "t2")
    assert s.controller is inner
    assert s.__getstate__()["controller"] is None and s.controller is inner


# --- what the actor body hands the book (the book's own rules: test_gpu_book_rules.py) ----------------------------

class RecordingBook:
    def __init__(self, node: str | None = "n1", idle: bool = False) -> None:
        self.calls: list[tuple] = []
        self.leases: dict[str, Any] = {}
        self.node, self.idle = node, idle

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if name == "request":
                return self.node
            if name == "idle_blocks":
                return self.idle
            if name == "snapshot":
                return {"snap": True}
            return None

        return record


def test_the_actor_hands_the_book_its_clock_and_rays_facts(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=12.5, settle_s=7.0)
    assert (led.book.ttl_s, led.book.settle_s) == (12.5, 7.0)
    book = led.book = RecordingBook()  # type: ignore[assignment]
    assert led.request("o", "o/1", 2, 60.0, backlog=[30.0], limit=4) == ("n1", False)
    name, args, kwargs = book.calls[-1]
    assert (name, args) == ("request", ("o", "o/1", 2, 60.0, clock.now))
    assert kwargs == {"gone": Ledger._gone, "backlog": [30.0], "limit": 4}
    led.request("o", "o/2", 1, 5.0)
    assert book.calls[-1][2]["limit"] == 0 and book.calls[-1][2]["backlog"] == ()  # defaults: no cap, no backlog
    led.confirm("o/1", "n2", "pg")
    assert book.calls[-1] == ("confirm", ("o/1", "n2", "pg", clock.now), {})
    led.heartbeat("o", [("o/1", 2, "n2", 60.0, 1.0)])
    assert ("heartbeat", ("o", [("o/1", 2, "n2", 60.0, 1.0)], clock.now), {}) in book.calls
    assert book.calls[-1] == ("tick", (clock.now,), {"gone": Ledger._gone})
    led.release("o/1")
    assert book.calls[-2:] == [("release", ("o/1", clock.now), {}), ("tick", (clock.now,), {"gone": Ledger._gone})]
    led.close("o")
    assert book.calls[-1] == ("close", ("o", clock.now), {})
    assert led.snapshot() == {"snap": True} and book.calls[-2] == ("tick", (clock.now,), {"gone": Ledger._gone})


def test_only_a_waiting_request_asks_whether_an_idle_actor_blocks(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=30, settle_s=0)
    led.book = RecordingBook(node=None, idle=True)  # type: ignore[assignment]
    assert led.request("o", "o/1", 1, 1.0) == (None, True)
    assert led.book.calls[-1] == ("idle_blocks", ("o",), {})
    led.book = RecordingBook(node="n1", idle=True)  # type: ignore[assignment]
    assert led.request("o", "o/2", 1, 1.0) == ("n1", False)
    assert all(c[0] != "idle_blocks" for c in led.book.calls)


def test_a_grant_made_by_a_release_is_logged_with_the_time(clock: Clock, nodes: list[int]) -> None:
    led = Ledger(ttl_s=30, settle_s=0)
    led.request("a", "a/1", 2, 600.0)
    assert led.request("b", "b/1", 2, 600.0)[0] is None  # waits for a/1's GPUs
    clock.now += 5
    led.release("a/1")  # frees them: b/1 is granted inside the release
    assert led.history()[-2:] == [(clock.now, "release", "a/1", "n1"), (clock.now, "grant", "b/1", "n1")]


def test_a_node_without_a_resources_entry_has_no_gpus(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    monkeypatch.setattr(ray, "nodes", lambda: [{"NodeID": "bare", "Alive": True},
                                               {"NodeID": "g", "Alive": True, "Resources": {"GPU": 1.0}}])
    led = Ledger(ttl_s=30, settle_s=0)
    led._refresh(clock.now)
    assert led.book.nodes == {"g": 1}


def test_the_gates_heartbeat_thread_is_a_named_daemon(open_gate) -> None:
    gate = open_gate(1, beat_s=3600)
    assert gate._beat.daemon and gate._beat.name == "clowncar-gate" and gate.broken is False


def test_a_broken_gate_never_asks_to_drop_an_actor(open_gate, gate_env: dict[str, Any]) -> None:
    gate_env["handle"] = Handle(None, fail=TimeoutError("x"))
    gate = open_gate(1, beat_s=3600, patience_s=0.0)
    dropped: list[int] = []
    gate.on_idle_blocks = lambda: dropped.append(1)
    assert gate.admit("t", "k", 1.0) == "" and dropped == []


def test_confirming_the_granted_node_without_a_group_is_nothing_new(open_gate, gate_env: dict[str, Any], clock: Clock) -> None:
    gate = open_gate(2, beat_s=3600)
    gate.admit("t", "k", 60.0)
    gate.confirm("t", "n1", "")  # the node it was granted, no placement group known yet: no call
    assert all(c[0] != "confirm" for c in gate_env["handle"].calls)
    gate.confirm("t", "n2", "pg")
    assert gate.leases["t"] == (f"{gate.owner}/k", 2, "n2", 60.0, clock.now)  # only the node changed


def test_a_gate_asks_without_a_cap_beats_every_five_seconds_and_waits_ten(open_gate, gate_env: dict[str, Any]) -> None:
    gate = open_gate(1)
    assert (gate.limit, gate.timeout_s, gate._beat._args) == (0, 10.0, (5.0,))  # type: ignore[attr-defined]
    gate.admit("t", "k", 1.0)
    assert gate_env["handle"].calls[0][1][-1] == 0 and gate_env["timeouts"] == [10.0]
