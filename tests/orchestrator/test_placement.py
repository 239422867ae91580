"""The GPU ledger's policy (orchestrator/placement.py), decided without Ray: packing, gang reservation, backfill,
leases that expire with a silent owner, GPUs that stay booked until Ray has removed the trial's placement group."""

from __future__ import annotations

from typing import Any

from clowncar.orchestrator.placement import UNPINNED, GpuBook


def book(nodes: int = 2, gpus: int = 8, **kw: Any) -> GpuBook:
    b = GpuBook(**{"start_prior_s": 0.0, **kw})  # starts are free unless a test measures them
    b.set_nodes({f"n{i}": gpus for i in range(nodes)})
    return b


def test_small_trials_fill_one_node_before_the_next() -> None:
    b = book()
    nodes = [b.request("a", f"a{i}", 1, 60.0, now=0.0) for i in range(10)]
    assert nodes == ["n0"] * 8 + ["n1"] * 2


GANG_BACKLOG = (50.0,) * 9  # nine more whole-node trials of 50 s: the gang sweep would finish last


def test_waiting_whole_node_trial_gets_the_node_before_later_small_trials() -> None:
    b = book(order="finish")
    for i in range(12):  # n0 full, n1 half full, each small trial ends at t=100 at the latest
        assert b.request("small", f"s{i}", 1, 100.0, now=0.0) is not None
    assert b.request("gang", "g0", 8, 50.0, now=1.0, backlog=GANG_BACKLOG) is None
    assert b.snapshot()["reserved"] == {"n1": "g0"}  # the node with the fewest GPUs to drain
    # More small trials arrive: n1 is held for the gang (they would end after it could start), n0 is full.
    assert b.request("small", "s12", 1, 100.0, now=2.0) is None
    for i in range(8, 12):
        b.release(f"s{i}", now=3.0)
    assert b.request("small", "s12", 1, 100.0, now=3.0) is None
    assert b.request("gang", "g0", 8, 50.0, now=3.0, backlog=GANG_BACKLOG) == "n1"


def test_short_trial_backfills_a_draining_node_without_delaying_the_gang() -> None:
    b = book(nodes=1, order="finish")
    for i in range(4):
        b.request("small", f"s{i}", 1, 100.0, now=0.0)
    assert b.request("gang", "g", 8, 50.0, now=0.0, backlog=GANG_BACKLOG) is None  # expected start: t=100
    assert b.request("other", "short", 1, 30.0, now=10.0) == "n0"  # ends at 40, before 100
    assert b.request("other", "long", 1, 200.0, now=10.0) is None  # would end at 210: waits
    assert b.request("other", "unknown", 1, 0.0, now=10.0) is None  # no estimate, no backfill


def test_silent_owner_loses_leases_and_reservation() -> None:
    b = book(nodes=1, ttl_s=30.0, order="finish")
    assert b.request("dead", "d", 8, 0.0, now=0.0) == "n0"
    assert b.request("gang", "g", 8, 0.0, now=1.0, backlog=GANG_BACKLOG) is None
    assert b.request("small", "s", 1, 10.0, now=2.0) is None
    b.heartbeat("gang", [], now=25.0)
    b.heartbeat("small", [], now=25.0)
    assert b.request("small", "s", 1, 10.0, now=29.0) is None  # 'dead' spoke 29 s ago: still held
    assert b.request("gang", "g", 8, 0.0, now=31.0, backlog=GANG_BACKLOG) == "n0"  # 'dead' silent 31 s
    assert "d" not in b.snapshot()["leases"]


def test_released_gpus_stay_booked_until_the_placement_group_is_gone() -> None:
    b = book(nodes=1, settle_s=10.0)
    assert b.request("a", "a", 8, 0.0, now=0.0) == "n0"
    b.confirm("a", "n0", "pg1")
    b.release("a", now=5.0)
    removed: set[str] = set()
    assert b.request("b", "b", 8, 0.0, now=6.0, gone=lambda pg: pg in removed) is None
    removed.add("pg1")
    assert b.request("b", "b", 8, 0.0, now=7.0, gone=lambda pg: pg in removed) == "n0"
    b.confirm("b", "n0", "pg2")
    b.release("b", now=8.0)
    assert b.request("c", "c", 8, 0.0, now=18.5, gone=lambda pg: False) == "n0"  # settle_s passed


def test_restarted_ledger_relearns_leases_from_heartbeats() -> None:
    b = book(nodes=1)
    b.heartbeat("a", [("a0", 6, "n0", 60.0, 0.0)], now=1.0)
    assert b.free("n0") == 2
    assert b.request("b", "b0", 4, 10.0, now=1.0) is None


def test_confirm_moves_a_lease_to_the_node_where_the_trial_runs() -> None:
    b = book()
    assert b.request("a", "a", 8, 0.0, now=0.0) == "n0"
    b.confirm("a", "n1", "pg")
    assert (b.free("n0"), b.free("n1")) == (8, 0)


def test_request_larger_than_every_node_is_left_to_ray() -> None:
    assert book().request("a", "huge", 16, 0.0, now=0.0) == UNPINNED


def test_owner_close_drops_requests_and_drains_leases() -> None:
    b = book(nodes=1)
    b.request("a", "a0", 4, 0.0, now=0.0)
    b.confirm("a0", "n0", "pg")
    b.request("a", "a1", 8, 0.0, now=0.0)
    b.close("a", now=1.0)
    assert b.snapshot()["requests"] == {}
    assert b.request("b", "b", 8, 0.0, now=2.0, gone=lambda pg: True) == "n0"


def test_next_trial_of_a_sweep_takes_over_its_finished_trials_slot() -> None:
    b = book()
    for i in range(9):  # n0 full, one on n1
        b.request("a", f"a{i}", 1, 0.0, now=0.0)
        b.confirm(f"a{i}", "n0" if i < 8 else "n1", f"pg{i}")
    b.release("a3", now=1.0)  # its actor (and GPU) kept by Tune for reuse
    assert b.request("other", "o", 1, 0.0, now=1.5, gone=lambda pg: False) == "n1"  # not promised to others
    assert b.request("a", "a9", 1, 0.0, now=2.0, gone=lambda pg: False) == "n0"  # the same sweep reuses it
    assert b.free("n0") == 0 and "a3" not in b.snapshot()["leases"]


def test_the_sweep_that_would_finish_last_gets_freed_gpus_first() -> None:
    b = book(nodes=1, order="finish")
    assert b.request("a", "a0", 4, 100.0, now=0.0) == "n0"
    assert b.request("b", "b0", 4, 100.0, now=0.0) == "n0"
    assert b.request("a", "a1", 4, 100.0, now=1.0) is None  # the node is full: both wait
    assert b.request("b", "b1", 4, 100.0, now=2.0, backlog=(100.0,) * 5) is None
    assert b.finish_estimates(2.0) == {"a": (4 * 98 + 4 * 100) / 4, "b": (4 * 98 + 4 * 100 + 2000) / 4}
    b.release("a0", now=10.0)
    assert b.request("a", "a1", 4, 100.0, now=10.0) is None  # 'a' asked first, but 'b' has far more left to do
    assert b.request("b", "b1", 4, 100.0, now=10.0, backlog=(100.0,) * 5) == "n0"


def test_stream_of_whole_node_trials_delays_a_small_trial_by_one_trial_at_most() -> None:
    b = book(nodes=1, ttl_s=1000.0, order="finish")
    assert b.request("gangs", "g1", 8, 100.0, now=0.0, backlog=GANG_BACKLOG) == "n0"
    assert b.request("small", "s", 1, 100.0, now=1.0) is None
    assert b.request("gangs", "g2", 8, 100.0, now=2.0, backlog=GANG_BACKLOG) is None
    b.release("g1", now=50.0)
    assert b.request("small", "s", 1, 100.0, now=50.0) is None  # the gang sweep would finish last: it goes first
    assert b.request("gangs", "g2", 8, 100.0, now=50.0, backlog=GANG_BACKLOG) == "n0"
    assert b.request("gangs", "g3", 8, 100.0, now=51.0, backlog=GANG_BACKLOG) is None
    b.release("g2", now=150.0)  # 'small' has waited its own expected duration: it goes first now
    assert b.request("gangs", "g3", 8, 100.0, now=150.0, backlog=GANG_BACKLOG) is None
    assert b.request("small", "s", 1, 100.0, now=150.0) == "n0"


def test_idle_actor_on_a_node_reserved_for_another_sweep_is_told_to_go() -> None:
    b = book(nodes=1)
    for i in range(8):  # a 1-GPU sweep fills the node
        assert b.request("small", f"s{i}", 1, 30.0, now=0.0) == "n0"
        b.confirm(f"s{i}", "n0", f"pg{i}")
    assert b.request("gang", "g", 8, 60.0, now=1.0) is None  # reserves n0: it drains
    for i in range(8):
        b.release(f"s{i}", now=30.0)
    held = {"pg7"}  # Tune keeps the last trial's actor (and its GPU) while the sweep's next trial waits
    # The gang goes first (both orders end at 190.5; the gang's first ends the sweeps sooner).
    assert b.request("small", "s8", 1, 100.0, now=30.5, gone=lambda pg: pg not in held) is None
    assert b.idle_blocks("small") and not b.idle_blocks("gang")
    assert b.request("gang", "g", 8, 60.0, now=31.0, gone=lambda pg: pg not in held) is None  # the actor holds it
    held.clear()  # the driver dropped it
    assert b.request("gang", "g", 8, 60.0, now=32.0, gone=lambda pg: pg not in held) == "n0"
    assert not b.idle_blocks("small")


def test_idle_actor_on_a_node_no_other_sweep_waits_for_is_kept() -> None:
    b = book()
    for i in range(4):
        assert b.request("small", f"s{i}", 1, 30.0, now=0.0) == "n0"
        b.confirm(f"s{i}", "n0", f"pg{i}")
    b.release("s3", now=10.0)  # kept by Tune: the sweep's next trial may reuse it there
    assert b.request("gang", "g", 8, 60.0, now=11.0, gone=lambda pg: False) == "n1"  # a free node: no reservation
    assert b.request("other", "o", 1, 60.0, now=11.0, gone=lambda pg: False) == "n0"
    assert not b.idle_blocks("small")


def test_free_gpus_are_held_for_the_trials_a_sweep_is_about_to_ask_when_that_ends_the_run_sooner() -> None:
    b = book(ttl_s=30.0)
    assert b.request("small", "s0", 1, 60.0, now=0.0, backlog=(60.0,) * 15, limit=16) == "n0"
    # Both orders end at 110 s; the small sweep first ends the sweeps sooner (60 + 110 against 110 + 110), so n1
    # stays free for its next fifteen trials, which its driver asks one after the other.
    assert b.request("gangs", "g0", 8, 50.0, now=0.1, backlog=(50.0,)) is None
    assert [b.request("small", f"s{i}", 1, 60.0, now=0.2, backlog=(60.0,) * (15 - i), limit=16)
            for i in range(1, 16)] == ["n0"] * 7 + ["n1"] * 8
    # A sweep whose driver went silent holds nothing: neither its leases nor the trials it would have asked.
    b.heartbeat("gangs", [], now=20.0)
    assert b.request("gangs", "g0", 8, 50.0, now=31.0, backlog=(50.0,)) == "n0"
    assert "small" not in b.queued and not any(k.startswith("s") for k in b.leases)


def test_start_cost_is_measured_from_grant_to_first_report_over_the_new_actors_starting() -> None:
    from clowncar.orchestrator.placement import START_PRIOR_S

    b = book(nodes=1, start_prior_s=None)
    assert b.start_s == START_PRIOR_S  # nothing measured yet
    assert b.request("a", "a0", 1, 60.0, now=0.0) == "n0"
    assert b.request("a", "a1", 1, 60.0, now=0.0) == "n0"  # two new actors start together
    b.confirm("a0", "n0", "pg0", now=3.0)  # 3 s, alone in the queue when granted
    b.confirm("a1", "n0", "pg1", now=6.0)  # 6 s, behind a0: 3 s each
    assert b.start_s == 3.0
    b.release("a0", now=60.0)  # its actor stays for the sweep's next trial, which takes it over: not a new start
    assert b.request("a", "a2", 1, 60.0, now=60.5, gone=lambda pg: False) == "n0"
    b.confirm("a2", "n0", "pg0", now=61.0)
    assert list(b.cold_starts) == [3.0, 3.0]
